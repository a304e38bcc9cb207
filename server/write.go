package server

import (
	"encoding/binary"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"imload/mux"
)

// The server writes its WebSocket frames itself instead of through gorilla's
// writer: a server frame is a short header and an unmasked payload, and
// doing it here saves, per write, gorilla's write-deadline system call and a
// copy into its buffer. gorilla still reads; its ping and close handlers are
// replaced (see installHandlers) so that gorilla never writes.

var (
	newline   = []byte{'\n'}
	pushClose = []byte{mux.PushTail}
	bodyKey   = []byte(mux.PushBodyKey)
)

// WebSocket opcodes with FIN set.
const (
	finText  = 0x80 | websocket.TextMessage
	finClose = 0x80 | websocket.CloseMessage
	finPong  = 0x80 | websocket.PongMessage
)

var frameBufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// appendFrameHeader appends the header of an unmasked frame of n bytes.
func appendFrameHeader(dst []byte, op byte, n int) []byte {
	switch {
	case n < 126:
		return append(dst, op, byte(n))
	case n <= 0xffff:
		return binary.BigEndian.AppendUint16(append(dst, op, 126), uint16(n))
	default:
		return binary.BigEndian.AppendUint64(append(dst, op, 127), uint64(n))
	}
}

// installHandlers makes gorilla hand pings and close frames to us instead
// of answering them itself.
func (c *conn) installHandlers() {
	c.ws.SetPingHandler(func(data string) error {
		c.writeControl(finPong, []byte(data), time.Second)
		return nil
	})
	c.ws.SetCloseHandler(func(code int, _ string) error {
		// Echo the peer's close code (as RFC 6455 asks), then the read
		// error that follows ends the connection.
		c.writeControl(finClose, closePayload(code, ""), time.Second)
		return nil
	})
}

func closePayload(code int, reason string) []byte {
	if code == websocket.CloseNoStatusReceived {
		return nil
	}
	if len(reason) > 123 {
		reason = reason[:123]
	}
	return append(binary.BigEndian.AppendUint16(nil, uint16(code)), reason...)
}

// setWriteDeadline keeps a write deadline of at least half the write timeout
// ahead, touching the socket's timer only when the old one runs short (a
// system call per write would cost more than the write). Called under wmu.
func (c *conn) setWriteDeadline(now time.Time) error {
	wt := c.srv.cfg.WriteTimeout
	if c.wdeadline.Sub(now) > wt/2 {
		return nil
	}
	c.wdeadline = now.Add(wt)
	return c.ws.NetConn().SetWriteDeadline(c.wdeadline)
}

// writeBatch writes the frames of batch as one WebSocket text message.
func (c *conn) writeBatch(batch []outItem) error {
	n := len(batch) - 1 // separators
	for _, it := range batch {
		n += it.size() - 1
	}
	bp := frameBufPool.Get().(*[]byte)
	buf := appendFrameHeader((*bp)[:0], finText, n)
	for i, it := range batch {
		if i > 0 {
			buf = append(buf, '\n')
		}
		buf = append(buf, it.head...)
		if it.sids != nil {
			buf = append(buf, it.sids...)
			buf = append(buf, bodyKey...)
			buf = append(buf, it.body...)
			buf = append(buf, pushClose...)
		}
	}
	c.wmu.Lock()
	err := c.setWriteDeadline(time.Now())
	if err == nil {
		_, err = c.ws.NetConn().Write(buf)
	}
	c.wmu.Unlock()
	if cap(buf) <= 64<<10 {
		*bp = buf[:0]
		frameBufPool.Put(bp)
	}
	if err != nil {
		return err
	}
	ct := &c.srv.counters
	ct.framesOut.Add(int64(len(batch)))
	ct.bytesOut.Add(int64(n))
	ct.wsMsgsOut.Add(1)
	return nil
}

// writeControl writes a control frame if the socket is free within wait
// (a writer stuck on a full socket holds it; then the frame is skipped:
// nothing could be delivered anyway).
func (c *conn) writeControl(op byte, payload []byte, wait time.Duration) {
	deadline := time.Now().Add(wait)
	for !c.wmu.TryLock() {
		if time.Now().After(deadline) {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	defer c.wmu.Unlock()
	frame := appendFrameHeader(make([]byte, 0, len(payload)+2), op, len(payload))
	frame = append(frame, payload...)
	nc := c.ws.NetConn()
	c.wdeadline = deadline
	if nc.SetWriteDeadline(deadline) == nil {
		_, _ = nc.Write(frame)
	}
}

// sendClose sends a close frame and closes the socket a moment later if the
// peer has not answered by then.
func (c *conn) sendClose(code int, reason string, wait time.Duration) {
	c.writeControl(finClose, closePayload(code, reason), wait)
	c.srv.afterFunc(wait, c.closeNow)
}
