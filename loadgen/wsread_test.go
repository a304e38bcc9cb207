package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"imload/loadgen/wire"

	"github.com/gorilla/websocket"
)

// wsFrame encodes a server frame (unmasked).
func wsFrame(op byte, fin bool, payload []byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	var h []byte
	switch n := len(payload); {
	case n < 126:
		h = []byte{b0, byte(n)}
	case n <= 0xffff:
		h = []byte{b0, 126, 0, 0}
		binary.BigEndian.PutUint16(h[2:], uint16(n))
	default:
		h = make([]byte, 10)
		h[0], h[1] = b0, 127
		binary.BigEndian.PutUint64(h[2:], uint64(n))
	}
	return append(h, payload...)
}

// (Frames, fragments and bad frames are tested in mux/wsframe; the tests
// here run the generator's readers on real sockets.)

// rawWSServer accepts one connection, answers the handshake with the first
// frames in the same write, and runs script on it.
func rawWSServer(t *testing.T, first []byte, script func(c net.Conn, br *bufio.Reader)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		h := sha1.Sum([]byte(req.Header.Get("Sec-WebSocket-Key") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
		resp := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
			base64.StdEncoding.EncodeToString(h[:]) + "\r\n\r\n"
		if _, err := c.Write(append([]byte(resp), first...)); err != nil {
			return
		}
		script(c, br)
	}()
	return "ws://" + ln.Addr().String() + "/ws"
}

// readClientFrame reads one (masked) client frame.
func readClientFrame(br *bufio.Reader) (op byte, payload []byte, err error) {
	var h [2]byte
	if _, err = io.ReadFull(br, h[:]); err != nil {
		return
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var x [2]byte
		if _, err = io.ReadFull(br, x[:]); err != nil {
			return
		}
		n = uint64(binary.BigEndian.Uint16(x[:]))
	case 127:
		var x [8]byte
		if _, err = io.ReadFull(br, x[:]); err != nil {
			return
		}
		n = binary.BigEndian.Uint64(x[:])
	}
	var mask [4]byte
	if _, err = io.ReadFull(br, mask[:]); err != nil {
		return
	}
	payload = make([]byte, n)
	if _, err = io.ReadFull(br, payload); err != nil {
		return
	}
	for i := range payload {
		payload[i] ^= mask[i%4]
	}
	return h[0] & 0x0f, payload, nil
}

// capWire records the messages a link hands to the protocol (only its
// Reader is used).
type capWire struct {
	wire.Wire
	ch chan string
}

func (w capWire) NewReader() wire.Reader { return capReader(w.ch) }

type capReader chan string

func (r capReader) Read(msg []byte, _ func(uint64) (wire.CmdKind, bool), _ func(*wire.Event)) int {
	r <- string(msg)
	return 1
}

// testLink dials url as the engine does and returns the link of a bare
// socket whose engine is stopping (the link's end takes nothing else down).
// startReading reads l with the reader rd (an epoll loop closed at the end
// of the test, or a goroutine of its own).
func startReading(t *testing.T, rd string, l *wsLink) {
	t.Helper()
	if rd != ReaderEpoll {
		go func() { _ = l.readLoop(); l.end() }()
		return
	}
	p, err := newReader(ReaderEpoll)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.close)
	l.compact()
	if err := p.add(l); err != nil {
		t.Fatal(err)
	}
}

func testLink(t *testing.T, url string) (*wsLink, *engine, chan string) {
	t.Helper()
	ch := make(chan string, 100)
	e := &engine{wire: capWire{ch: ch}, t0: time.Now()}
	e.stopping.Store(true)
	e.dialer = &websocket.Dialer{NetDialContext: e.netDial, ReadBufferSize: 125, HandshakeTimeout: 5 * time.Second}
	e.dialCtx = context.Background()
	s := &sock{b: &browser{e: e}}
	ws, err := e.dial(url)
	if err != nil {
		t.Fatal(err)
	}
	e.live.add()
	return newLink(s, ws), e, ch
}

// Both readers: messages that came with the handshake, a fragmented message
// with a ping inside (answered), a message larger than a read, a burst of
// small ones, and the server's close (answered, then the link ends).
func TestLinkReaders(t *testing.T) {
	for _, rd := range readers() {
		t.Run(rd, func(t *testing.T) {
			big := bytes.Repeat([]byte("b"), 100000)
			pong := make(chan string, 1)
			closed := make(chan int, 1)
			url := rawWSServer(t, append(wsFrame(opText, true, []byte("hello")), wsFrame(opText, true, []byte("second"))...),
				func(c net.Conn, br *bufio.Reader) {
					parts := [][]byte{
						wsFrame(opText, false, []byte("fr")), wsFrame(opPing, true, []byte("pi")),
						wsFrame(opCont, true, []byte("agment")),
					}
					for _, p := range parts {
						for i := range p { // byte by byte: frames split over reads
							c.Write(p[i : i+1])
							time.Sleep(time.Millisecond)
						}
					}
					if op, p, err := readClientFrame(br); err == nil && op == opPong {
						pong <- string(p)
					}
					c.Write(wsFrame(opText, true, big))
					var burst []byte
					for i := range 50 {
						burst = append(burst, wsFrame(opText, true, []byte(fmt.Sprint("s", i)))...)
					}
					c.Write(burst)
					c.Write(wsFrame(opClose, true, []byte{0x03, 0xe8}))
					if op, p, err := readClientFrame(br); err == nil && op == opClose && len(p) >= 2 {
						closed <- int(binary.BigEndian.Uint16(p))
					}
				})
			l, e, ch := testLink(t, url)
			startReading(t, rd, l)
			want := []string{"hello", "second", "fragment", string(big)}
			for i := range 50 {
				want = append(want, fmt.Sprint("s", i))
			}
			for i, w := range want {
				select {
				case got := <-ch:
					if got != w {
						t.Fatalf("message %d: %.40q, want %.40q", i, got, w)
					}
				case <-time.After(5 * time.Second):
					t.Fatalf("message %d (%.20q) did not come", i, w)
				}
			}
			select {
			case p := <-pong:
				if p != "pi" {
					t.Errorf("pong %q", p)
				}
			case <-time.After(5 * time.Second):
				t.Error("the ping was not answered with a pong")
			}
			select {
			case c := <-closed:
				if c != 1000 {
					t.Errorf("close code %d", c)
				}
			case <-time.After(5 * time.Second):
				t.Error("the close was not answered with a close")
			}
			if e.live.wait(5*time.Second) != 0 {
				t.Fatal("the link did not end after the close")
			}
		})
	}
}

// A link cut by the generator ends (its reader notices and takes the socket
// down), and the server sees the connection closed.
func TestLinkCut(t *testing.T) {
	for _, rd := range readers() {
		t.Run(rd, func(t *testing.T) {
			eof := make(chan error, 1)
			url := rawWSServer(t, wsFrame(opText, true, []byte("hello")), func(c net.Conn, br *bufio.Reader) {
				_, err := br.ReadByte()
				eof <- err
			})
			l, e, ch := testLink(t, url)
			startReading(t, rd, l)
			if m := <-ch; m != "hello" {
				t.Fatalf("first message %q", m)
			}
			l.cutLink()
			if e.live.wait(5*time.Second) != 0 {
				t.Fatal("the link did not end after the cut")
			}
			select {
			case err := <-eof:
				if err != io.EOF {
					t.Errorf("server read %v, want EOF", err)
				}
			case <-time.After(5 * time.Second):
				t.Error("the server did not see the connection closed")
			}
		})
	}
}
