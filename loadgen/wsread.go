package loadgen

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"imload/mux/wsframe"
)

// Reading the server's side of a WebSocket.
//
// gorilla/websocket dials, does the handshake and writes every frame; the
// generator reads frames itself. That lets a socket with nothing to read
// hold no read buffer and no goroutine (see linkPoller): gorilla's reader
// keeps a buffer per connection and needs a goroutine blocked in it. The
// server's frames are simple to read (RFC 6455 §5: unmasked, no extension is
// negotiated), and reading them here is as cheap as gorilla's reader.

// WebSocket opcodes (short names for mux/wsframe's).
const (
	opCont  = wsframe.OpContinuation
	opText  = wsframe.OpText
	opBin   = wsframe.OpBinary
	opClose = wsframe.OpClose
	opPing  = wsframe.OpPing
	opPong  = wsframe.OpPong
)

// readLimit is the largest message accepted from the server.
const readLimit = 1 << 20

var errCut = errors.New("link cut by the generator")

// newWSIn returns the read state of one connection: frames from the server
// are unmasked, messages at most readLimit (mux/wsframe.Reader keeps the
// bytes of a frame not complete yet and a fragmented message, both nil in
// the normal case, so an idle connection holds no buffer).
func newWSIn() wsframe.Reader { return wsframe.Reader{Limit: readLimit} }

// recConn wraps the TCP connection while gorilla does the handshake and
// records what gorilla reads: whatever its buffer read beyond the HTTP
// response (the start of the server's first message, if it came in the
// same segment) is where the generator's own reading starts.
type recConn struct {
	net.Conn
	rec []byte
	on  bool
}

func (c *recConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if c.on && n > 0 {
		c.rec = append(c.rec, p[:n]...)
	}
	return n, err
}

// leftover stops recording and returns what was read after the HTTP
// response.
func (c *recConn) leftover() []byte {
	c.on = false
	rec := c.rec
	c.rec = nil
	i := bytes.Index(rec, []byte("\r\n\r\n"))
	if i < 0 || i+4 == len(rec) {
		return nil
	}
	return bytes.Clone(rec[i+4:])
}

// wsLink is one WebSocket connection of a socket: gorilla's Conn for the
// handshake and every write, and the generator's read side.
// closeTooManyConns is the close code after a goaway too_many_connections
// (docs/protocol.md).
const closeTooManyConns = 4003

type wsLink struct {
	s   *sock
	gen uint32 // the socket's generation this link belongs to
	ws  *websocket.Conn
	tcp net.Conn // the TCP connection itself

	id uint64 // in the poller (0: read by a goroutine)
	fd int    // its descriptor (poller)

	cut atomic.Bool // cut by the generator: reads end
	// closeCode is the code of the server's close frame (0: none yet).
	closeCode atomic.Int32

	in   wsframe.Reader
	rbuf []byte // read buffer of blocking reads (l.in's pending bytes are in it)
}

// newLink wraps a connection that gorilla just dialed.
func newLink(s *sock, ws *websocket.Conn) *wsLink {
	l := &wsLink{s: s, ws: ws, tcp: ws.NetConn(), in: newWSIn()}
	if rc, ok := l.tcp.(*recConn); ok {
		l.in.SetPending(rc.leftover())
		l.tcp = rc.Conn
	}
	return l
}

// cutLink ends the link from the generator's side: the TCP connection is
// shut down (the server sees it closed, without a close frame), and its
// reader, a goroutine or the poller, ends it (closes the socket, and the
// socket goes down). Safe from any goroutine, any number of times.
func (l *wsLink) cutLink() {
	if l.cut.Swap(true) {
		return
	}
	if tc, ok := l.tcp.(*net.TCPConn); ok {
		_ = tc.CloseRead()  // wakes the reader (end of stream)
		_ = tc.CloseWrite() // the server sees the connection closed
		return
	}
	_ = l.tcp.Close()
}

// closeWith sends a close frame (best effort) and cuts the link.
func (l *wsLink) closeWith(code int, text string) {
	_ = l.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, text), time.Now().Add(100*time.Millisecond))
	l.cutLink()
}

// readBlocking returns the next data message, reading from the connection
// as needed (blocking). Control frames are handled on the way: a ping is
// answered, a close ends the link. msg is valid until the next read.
func (l *wsLink) readBlocking() (msg []byte, err error) {
	for {
		if l.cut.Load() {
			return nil, errCut
		}
		pend := l.in.Pending()
		op, m, n, need, err := l.in.Next(pend)
		if err != nil {
			return nil, err
		}
		pend = pend[n:]
		l.in.SetPending(pend)
		switch op {
		case opText, opBin:
			return m, nil
		case 0:
		default:
			if err := l.control(op, m); err != nil {
				return nil, err
			}
			continue
		}
		// More bytes needed: move what is pending to the start of the read
		// buffer (grown for the frame when needed) and read after it.
		size := max(need, len(pend)+512, 1024)
		if cap(l.rbuf) < size {
			l.rbuf = make([]byte, 0, max(size, 2*cap(l.rbuf)))
		}
		p := l.rbuf[:copy(l.rbuf[:cap(l.rbuf)], pend)]
		k, err := l.tcp.Read(p[len(p):cap(p)])
		l.in.SetPending(p[:len(p)+k])
		if k == 0 && err != nil {
			return nil, err
		}
	}
}

// control handles a control frame: a ping is answered with a pong, a close
// with a close (then the link ends), a pong is ignored.
func (l *wsLink) control(op byte, payload []byte) error {
	dl := time.Now().Add(time.Second)
	switch op {
	case opPing:
		_ = l.ws.WriteControl(websocket.PongMessage, payload, dl)
	case opClose:
		code := websocket.CloseNoStatusReceived
		if len(payload) >= 2 {
			code = int(binary.BigEndian.Uint16(payload))
		}
		msg := []byte{}
		if code != websocket.CloseNoStatusReceived {
			msg = websocket.FormatCloseMessage(code, "")
		}
		_ = l.ws.WriteControl(websocket.CloseMessage, msg, dl)
		l.closeCode.Store(int32(code))
		return &websocket.CloseError{Code: code, Text: string(payload[min(2, len(payload)):])}
	}
	return nil
}

// compact releases the buffer used while reading blocking (the greeting):
// only bytes not consumed yet are kept, in a buffer of their own.
func (l *wsLink) compact() {
	if pend := l.in.Pending(); len(pend) > 0 {
		l.in.SetPending(bytes.Clone(pend))
	} else {
		l.in.SetPending(nil)
	}
	l.rbuf = nil
}

// handle gives one data message to the protocol.
func (l *wsLink) handle(r *reader, msg []byte) {
	s := l.s
	e := s.b.e
	s.lastRecv.Store(e.now())
	e.cnt.wsIn.Add(1)
	e.cnt.bytesIn.Add(int64(len(msg)))
	r.read(s, msg)
}

// readLoop reads the link on the calling goroutine until it ends (the
// goroutine reader).
func (l *wsLink) readLoop() error {
	r := &reader{}
	for {
		msg, err := l.readBlocking()
		if err != nil {
			return err
		}
		l.handle(r, msg)
		if cap(l.rbuf) > 64<<10 && len(l.in.Pending()) == 0 {
			l.rbuf = nil // after a large message: do not keep its buffer
		}
	}
}

// process handles the messages in data (the pending bytes, or what was just
// read after them); what is left of an incomplete frame is kept.
func (l *wsLink) process(r *reader, data []byte) error {
	off := 0
	for {
		if l.cut.Load() {
			return errCut
		}
		op, m, n, need, err := l.in.Next(data[off:])
		off += n
		if err != nil {
			return err
		}
		if op == 0 {
			l.in.Keep(data[off:], need)
			return nil
		}
		if op == opText || op == opBin {
			l.handle(r, m)
		} else if err := l.control(op, m); err != nil {
			return err
		}
	}
}

// end closes the link after its reader stopped and takes the socket down.
func (l *wsLink) end() {
	s := l.s
	b := s.b
	e := b.e
	l.cut.Store(true)
	_ = l.ws.Close()
	l.in.Reset()
	b.mu.Lock()
	if s.gen == l.gen {
		if l.closeCode.Load() == closeTooManyConns {
			s.kicked = true // even without the goaway frame before it
		}
		s.down(true)
	}
	b.mu.Unlock()
	e.live.done()
}
