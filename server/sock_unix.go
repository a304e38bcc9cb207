//go:build unix

package server

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// rawSock is a connection's socket once the server owns it outright (epoll
// mode): the descriptor alone. A net.Conn would keep, for as long as the
// connection lives, the runtime's poll descriptor with its two deadline
// timers, a finalizer, the netFD and both addresses: about 700 bytes a
// connection, more than the rest of an idle connection's state. Reads and
// writes do not block; a writer goroutine that has to wait for a full
// socket waits on a short-lived duplicate of the descriptor that the
// runtime polls (writeWait).
//
// The descriptor is closed once close has been asked and no read, write or
// epoll call is using it (refs): its number cannot be reused by a new
// connection under an operation of this one.
type rawSock struct {
	fd    int32
	state atomic.Int32 // sockRef × operations using fd | sockClosing | sockGone
}

const (
	sockClosing = 1 // close asked: no new operation starts
	sockGone    = 2 // descriptor closed
	sockRef     = 4
)

// detachSocket takes the descriptor of a TCP connection from the runtime:
// it duplicates it and closes the net.Conn, which drops the runtime's poll
// descriptor and the rest. The duplicate shares the socket and its
// non-blocking mode.
func detachSocket(nc net.Conn) (int, error) {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return -1, errors.New("connection has no file descriptor")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd, derr := -1, error(nil)
	if err := rc.Control(func(f uintptr) {
		fd, derr = unix.FcntlInt(f, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return -1, err
	}
	if derr != nil {
		return -1, fmt.Errorf("dup: %w", derr)
	}
	if err := nc.Close(); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// acquire reports whether the descriptor may be used; release must follow.
func (s *rawSock) acquire() bool {
	if s.state.Add(sockRef)&sockClosing != 0 {
		s.release()
		return false
	}
	return true
}

func (s *rawSock) release() {
	if s.state.Add(-sockRef) == sockClosing {
		s.closeFD()
	}
}

func (s *rawSock) closeFD() {
	if s.state.CompareAndSwap(sockClosing, sockClosing|sockGone) {
		unix.Close(int(s.fd))
	}
}

// close shuts the socket down (a write waiting in writeWait fails at once,
// the peer gets its FIN) and closes the descriptor when the last operation
// using it ends. Called once.
func (s *rawSock) close() {
	s.state.Add(sockRef) // keeps fd valid for the shutdown
	s.state.Or(sockClosing)
	_ = unix.Shutdown(int(s.fd), unix.SHUT_RDWR)
	s.release()
}

// read reads what the socket has into p without waiting: errWouldBlock
// when it has nothing, 0 bytes and no error at the end of the stream.
func (s *rawSock) read(p []byte) (int, error) {
	if !s.acquire() {
		return 0, net.ErrClosed
	}
	defer s.release()
	for {
		n, err := unix.Read(int(s.fd), p)
		switch err {
		case nil:
			return n, nil
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return 0, errWouldBlock
		}
		return 0, err
	}
}

// write writes what the socket takes of buf at once and returns the rest.
func (s *rawSock) write(buf []byte) (rest []byte, err error) {
	if !s.acquire() {
		return nil, net.ErrClosed
	}
	defer s.release()
	for {
		n, err := unix.Write(int(s.fd), buf)
		switch err {
		case nil:
			return buf[n:], nil
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return buf, nil
		}
		return nil, err
	}
}

// writeWait writes all of buf, waiting while the socket is full for as
// long as it keeps taking bytes: it gives up with os.ErrDeadlineExceeded,
// returning the unwritten rest, once the socket has taken nothing for wt.
// The wait is the runtime's, on a duplicate of the descriptor made for it:
// a goroutine parks, no thread blocks. Only a writer goroutine calls it.
func (s *rawSock) writeWait(buf []byte, wt time.Duration) ([]byte, error) {
	rest, err := s.write(buf)
	if err != nil || len(rest) == 0 {
		return rest, err
	}
	if !s.acquire() {
		return rest, net.ErrClosed
	}
	defer s.release()
	fd, err := unix.FcntlInt(uintptr(s.fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil { // out of descriptors: many sockets are full at once
		return s.writeRetry(rest, wt)
	}
	f := os.NewFile(uintptr(fd), "socket") // non-blocking: the runtime polls it
	defer f.Close()
	rc, err := f.SyscallConn()
	if err != nil {
		return rest, err
	}
	var n int
	var werr error
	step := func(fd uintptr) bool { // one write; false: wait until writable
		for {
			n, werr = unix.Write(int(fd), rest)
			if werr != unix.EINTR {
				return werr != unix.EAGAIN
			}
		}
	}
	for len(rest) > 0 {
		// Each write that takes bytes buys the socket another wt.
		if err := f.SetWriteDeadline(time.Now().Add(wt)); err != nil {
			return rest, err
		}
		if err := rc.Write(step); err != nil {
			return rest, err
		}
		if werr != nil {
			return rest, werr
		}
		rest = rest[n:]
	}
	return nil, nil
}

// writeRetry writes buf by trying again every few milliseconds until the
// socket has taken nothing for wt: the wait of writeWait when no
// descriptor is left for a duplicate. A sleeping goroutine, still no
// blocked thread.
func (s *rawSock) writeRetry(buf []byte, wt time.Duration) ([]byte, error) {
	deadline := time.Now().Add(wt)
	for {
		rest, err := s.write(buf)
		if err != nil || len(rest) == 0 {
			return rest, err
		}
		if len(rest) < len(buf) {
			deadline = time.Now().Add(wt)
		}
		buf = rest
		if !time.Now().Before(deadline) {
			return buf, os.ErrDeadlineExceeded
		}
		time.Sleep(2 * time.Millisecond)
	}
}
