package server

import (
	"errors"
	"io"
	"time"

	"imload/mux/wsframe"
)

// The server reads its clients' WebSocket frames itself (mux/wsframe)
// instead of through gorilla's reader, which gorilla only does the
// handshake for. gorilla's reader needs a buffer per connection for as long
// as the connection lives (and a goroutine parked in it); here (epoll mode)
// a readable connection is read into the buffer of the worker that
// handles it, and keeps bytes of its own only while a frame or a
// fragmented message is half read. An idle connection holds no read
// buffer.

// readChunk is the size of a worker's read buffer (epoll mode).
const readChunk = 16 << 10

// maxReadsPerTurn bounds the reads a worker makes of one ready connection
// before it re-arms it and takes the next: a client that sends without
// pause cannot hold a worker.
const maxReadsPerTurn = 4

// readScratch is a worker's read buffer.
type readScratch struct {
	buf []byte
}

func newReadScratch() *readScratch {
	return &readScratch{buf: make([]byte, readChunk)}
}

var (
	errClosing    = errors.New("connection closing")
	errClosed     = errors.New("connection closed after its close frame")
	errWouldBlock = errors.New("read would block")
)

// readReady reads what a readable connection has (epoll mode, on a
// worker), handles each message, writes what they produced, and watches
// the connection again.
func (c *conn) readReady(rs *readScratch, out *outbox) {
	// The kernel orders one readiness after the previous one (the next
	// comes only after rearm); pollMu makes that order visible to Go's
	// memory model and race detector.
	c.pollMu.Lock()
	err := c.readFrom(rs.buf, rs, out, nil)
	c.pollMu.Unlock()
	switch {
	case errors.Is(err, errClosing): // the close under way finishes it
	case err != nil:
		c.finish()
	default:
		if err := c.srv.poller.rearm(c); err != nil {
			c.finish()
		}
	}
}

// readLoop is the goroutine-per-connection reader (the portable one): it
// blocks in the socket's Read with a buffer of its own and has a worker
// handle each message.
func (c *conn) readLoop() {
	done := make(chan struct{}, 1)
	if err := c.readFrom(make([]byte, c.srv.cfg.ReadBufferSize), nil, nil, done); !errors.Is(err, errClosing) {
		c.finish() // else the close under way finishes it
	}
}

// readFrom reads the connection into chunk (or, while a frame is half read,
// into the bytes the connection keeps) and handles what arrives. With rs
// nil it blocks in the socket's Read until the connection ends, and hands
// each message to a worker (done is where it answers). With rs (on a
// worker) it reads without blocking and handles the messages itself
// (collecting what to write in out); it returns nil once the socket is
// drained or after maxReadsPerTurn reads. An error means the connection
// ends: errClosing if a goroutine is closing it already (see closeWith);
// on any other the caller ends it (finish).
func (c *conn) readFrom(chunk []byte, rs *readScratch, out *outbox, done chan struct{}) error {
	for reads := 1; ; reads++ {
		fromPend := len(c.in.Pending()) > 0
		buf := chunk[:0]
		if fromPend {
			buf = c.in.Room()
		}
		space := cap(buf) - len(buf)
		var n int
		var err error
		if rs == nil {
			n, err = c.nc.Read(buf[len(buf):cap(buf)])
		} else {
			n, err = c.sock.read(buf[len(buf):cap(buf)])
		}
		if n > 0 {
			data := buf[:len(buf)+n]
			if fromPend {
				c.in.SetPending(data)
			}
			err := c.process(data, out, done)
			if out != nil {
				c.srv.writeOut(out) // what this read's messages produced
			}
			if err != nil {
				return err
			}
		}
		switch {
		case errors.Is(err, errWouldBlock):
			return nil
		case err != nil:
			return err
		case n == 0:
			return io.EOF
		case rs != nil && (n < space || reads == maxReadsPerTurn):
			return nil // drained (no read to EAGAIN), or others' turn
		}
	}
}

// process handles the frames in data: each text message is handled (here,
// with out, or by a worker, waiting on done, so data may be reused after),
// control frames are answered. What is left of an incomplete frame is kept.
// A bad frame, a binary message or the peer's close frame end the
// connection with a close frame (closeWith).
func (c *conn) process(data []byte, out *outbox, done chan struct{}) error {
	off := 0
	for {
		op, msg, n, need, err := c.in.Next(data[off:])
		off += n
		if err != nil {
			reason := "protocol error"
			if errors.Is(err, wsframe.ErrTooLarge) {
				reason = "message too big"
			}
			return c.closeWith(wsframe.CloseCode(err), reason)
		}
		switch op {
		case 0:
			c.in.Keep(data[off:], need)
			return nil
		case wsframe.OpText:
			c.lastRead.Store(time.Now().UnixNano())
			c.srv.counters.bytesIn.Add(int64(len(msg)))
			if c.closing.Load() {
				continue // no reply could be sent: what it asks is not done
			}
			if out != nil {
				c.handle(msg, out)
			} else {
				c.srv.work <- work{c: c, msg: msg, done: done}
				<-done
			}
		case wsframe.OpBinary:
			return c.closeWith(wsframe.CloseUnsupported, "binary messages are not part of the protocol")
		case wsframe.OpPing:
			c.pong(msg, out)
		case wsframe.OpClose:
			code, _, err := wsframe.ParseClose(msg)
			if err != nil {
				return c.closeWith(wsframe.CloseProtocolError, "bad close frame")
			}
			return c.closeWith(code, "") // echo the peer's code, as RFC 6455 asks
		}
	}
}

// pong answers a WebSocket ping: the pong is queued like any frame (it
// counts against the queue limit) and written without blocking, by the
// caller's outbox (epoll mode: a worker) or at once (the reader goroutine).
func (c *conn) pong(payload []byte, out *outbox) {
	if c.closing.Load() {
		return
	}
	if !c.queueItem(controlItem(wsframe.Fin|wsframe.OpPong, payload)) {
		return
	}
	if out != nil {
		out.add(c)
	} else {
		c.writeNow()
	}
}

// closeWith closes c with a close frame (the peer's close, or a bad frame):
// what is queued is dropped, the close frame is queued and, if the queue
// was idle, written now without blocking. It returns errClosed when the
// server's close frame had already gone out: the reader then ends the
// connection on its own goroutine (finish). Otherwise it returns
// errClosing: whoever writes the close frame ends the connection (at once:
// the peer is done), or the writer's timeout does.
func (c *conn) closeWith(code int, reason string) error {
	c.qmu.Lock()
	mustWrite := c.closeLocked(code, reason, true)
	sent := c.closeSent
	c.endNow = true
	c.qmu.Unlock()
	if sent {
		return errClosed
	}
	if mustWrite {
		c.writeNow()
	}
	return errClosing
}
