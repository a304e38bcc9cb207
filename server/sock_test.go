//go:build unix

package server

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// sockPair returns a raw socket the server owns and the client end of the
// same loopback connection.
func sockPair(t *testing.T) (*rawSock, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	nc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	fd, err := detachSocket(nc)
	if err != nil {
		t.Fatal(err)
	}
	s := &rawSock{fd: int32(fd)}
	t.Cleanup(func() {
		if s.state.Load()&sockClosing == 0 {
			s.close()
		}
	})
	return s, client
}

func fdOpen(fd int32) bool {
	_, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	return err == nil
}

// The descriptor outlives close while an operation uses it (its number
// cannot go to another connection meanwhile), and no operation starts
// after close.
func TestRawSockCloseWaitsForUse(t *testing.T) {
	s, client := sockPair(t)
	if _, err := client.Write([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 8)
	var n int
	var err error
	for deadline := time.Now().Add(2 * time.Second); ; {
		if n, err = s.read(buf); !errors.Is(err, errWouldBlock) || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if err != nil || string(buf[:n]) != "hi" {
		t.Fatalf("read %q, %v", buf[:n], err)
	}
	if _, err := s.read(buf); !errors.Is(err, errWouldBlock) {
		t.Fatalf("read of an empty socket: %v", err)
	}
	if !s.acquire() {
		t.Fatal("acquire of an open socket failed")
	}
	s.close()
	if !fdOpen(s.fd) {
		t.Fatal("descriptor closed under an operation")
	}
	if _, err := s.write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write after close: %v", err)
	}
	s.release()
	if fdOpen(s.fd) {
		t.Fatal("descriptor still open after the last operation")
	}
	// The peer sees the end of the stream.
	client.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := client.Read(buf); err != io.EOF {
		t.Fatalf("client read after close: %v", err)
	}
}

// fillSocket writes until the socket takes no more.
func fillSocket(t *testing.T, s *rawSock) int {
	t.Helper()
	chunk := bytes.Repeat([]byte{'a'}, 64<<10)
	total := 0
	for {
		rest, err := s.write(chunk)
		if err != nil {
			t.Fatal(err)
		}
		total += len(chunk) - len(rest)
		if len(rest) > 0 {
			return total
		}
	}
}

// writeWait waits for a full socket: until it has taken nothing for the
// timeout (and returns what is left), until the peer reads (then
// everything arrives, in order), or until close.
func TestRawSockWriteWait(t *testing.T) {
	s, _ := sockPair(t) // the client never reads
	fillSocket(t, s)
	more := bytes.Repeat([]byte{'b'}, 8<<20) // more than the socket's buffers can grow to
	start := time.Now()
	if rest, err := s.writeWait(more, 100*time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) || len(rest) == 0 || len(rest) > len(more) {
		t.Fatalf("write to a full socket past its timeout: %v, %d of %d bytes left", err, len(rest), len(more))
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("deadline of 100ms took %v", d)
	}

	s2, client2 := sockPair(t)
	filled2 := fillSocket(t, s2)
	tail := bytes.Repeat([]byte("0123456789"), 100_000)
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(client2)
		got <- b
	}()
	if _, err := s2.writeWait(tail, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	s2.close()
	b := <-got
	if len(b) != filled2+len(tail) || !bytes.Equal(b[filled2:], tail) {
		t.Fatalf("peer got %d bytes, want %d with the tail in order", len(b), filled2+len(tail))
	}

	// close ends a waiting write at once.
	done := make(chan error, 1)
	go func() { _, err := s.writeWait(more, 10*time.Second); done <- err }()
	time.Sleep(50 * time.Millisecond)
	s.close()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("write to a closed socket succeeded")
		}
	case <-time.After(2 * time.Second):
		t.Fatal("close did not end a waiting write")
	}
}

// writeRetry, the wait used when no descriptor is left: the same outcomes
// as writeWait.
func TestRawSockWriteRetry(t *testing.T) {
	s, _ := sockPair(t) // the client never reads
	fillSocket(t, s)
	more := bytes.Repeat([]byte{'b'}, 8<<20)
	if rest, err := s.writeRetry(more, 50*time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) || len(rest) == 0 {
		t.Fatalf("retry on a full socket past its deadline: %v", err)
	}

	s2, client2 := sockPair(t)
	filled := fillSocket(t, s2)
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(client2)
		got <- b
	}()
	tail := bytes.Repeat([]byte("0123456789"), 100_000)
	if _, err := s2.writeRetry(tail, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	s2.close()
	if b := <-got; len(b) != filled+len(tail) || !bytes.Equal(b[filled:], tail) {
		t.Fatalf("peer got %d bytes, want %d with the tail in order", len(b), filled+len(tail))
	}
}

// slowReader reads 64 KiB every 10 ms from r until it ends, then sends
// how much it read.
func slowReader(r io.Reader, got chan<- int) {
	buf := make([]byte, 64<<10)
	total := 0
	for {
		n, err := io.ReadFull(r, buf)
		total += n
		if err != nil {
			got <- total
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The write timeout is how long a full socket may take nothing, not how
// long a whole write may take: a peer that reads slowly but steadily gets
// everything, both with the server's own socket (epoll mode) and with the
// runtime's (goroutine mode).
func TestWriteWaitTimesOutOnlyWithoutProgress(t *testing.T) {
	const wt = time.Second
	payload := bytes.Repeat([]byte{'c'}, 16<<20) // 2.5 s or more at the reader's pace

	s, client := sockPair(t)
	filled := fillSocket(t, s)
	got := make(chan int, 1)
	go slowReader(client, got)
	start := time.Now()
	if rest, err := s.writeWait(payload, wt); err != nil {
		t.Fatalf("raw socket: slow but steady reader cut off after %v: %v (%d bytes left)", time.Since(start), err, len(rest))
	}
	t.Logf("raw socket: %d bytes in %v", len(payload), time.Since(start))
	s.close()
	if n := <-got; n != filled+len(payload) {
		t.Fatalf("raw socket: peer got %d bytes, want %d", n, filled+len(payload))
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client2, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client2.Close()
	nc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	c := &conn{nc: nc, raw: rawConnOf(nc)}
	go slowReader(client2, got)
	start = time.Now()
	if rest, err := c.waitWrite(payload, wt); err != nil {
		t.Fatalf("runtime socket: slow but steady reader cut off after %v: %v (%d bytes left)", time.Since(start), err, len(rest))
	}
	nc.Close()
	if n := <-got; n != len(payload) {
		t.Fatalf("runtime socket: peer got %d bytes, want %d", n, len(payload))
	}
}
