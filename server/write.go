package server

import (
	"sync"
	"time"

	"imload/mux"
	"imload/mux/wsframe"
)

// The server writes its WebSocket frames itself instead of through gorilla's
// writer: a server frame is a short header and an unmasked payload, and
// doing it here saves, per write, gorilla's write-deadline system call and a
// copy into its buffer. (It reads them itself too: read.go.)

var (
	newline   = []byte{'\n'}
	pushClose = []byte{mux.PushTail}
	bodyKey   = []byte(mux.PushBodyKey)
)

// WebSocket opcodes with FIN set.
const (
	finText  = wsframe.Fin | wsframe.OpText
	finClose = wsframe.Fin | wsframe.OpClose
)

var frameBufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// setWriteDeadline keeps a write deadline of at least half the write timeout
// ahead, touching the socket's timer only when the old one runs short (a
// system call per write would cost more than the write). Called under wmu.
func (c *conn) setWriteDeadline(now time.Time) error {
	wt := c.srv.cfg.WriteTimeout
	if c.wdeadline.Sub(now) > wt/2 {
		return nil
	}
	c.wdeadline = now.Add(wt)
	return c.nc.SetWriteDeadline(c.wdeadline)
}

// nextBatch takes queued frames off the queue, all of them up to
// MaxQueueBytes (so a connection's writes never fall behind its queue
// limit, however they are paced). When the queue is empty it gives up the
// writer's role instead and returns the close code the connection is to be
// closed with once its queue is written (0: none).
func (c *conn) nextBatch() (batch []outItem, closeCode int, closeReason string) {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	if len(c.queue) == 0 {
		c.writing = false
		// An idle connection holds no queue memory.
		c.srv.queues.put(c.queue)
		c.srv.queues.put(c.spare)
		c.queue, c.spare = nil, nil
		return nil, c.closeCode, c.closeReason
	}
	n, bytes := 0, 0
	for n < len(c.queue) {
		sz := c.queue[n].size()
		if n > 0 && bytes+sz > c.srv.cfg.MaxQueueBytes {
			break
		}
		bytes += sz
		n++
	}
	batch = c.queue[:n]
	c.queue = append(c.spare[:0], c.queue[n:]...)
	c.spare = nil // the batch's array becomes the spare once it is encoded
	c.qbytes -= bytes
	return batch, 0, ""
}

// encodeBatch frames batch in a pooled buffer (give it back with
// putFrameBuf) as WebSocket text messages of up to MaxFramesPerWrite frames
// and about MaxMessageBytes bytes each. It returns how many messages and
// payload bytes it made.
func (c *conn) encodeBatch(batch []outItem) (bp *[]byte, buf []byte, msgs, n int) {
	cfg := &c.srv.cfg
	bp = frameBufPool.Get().(*[]byte)
	buf = (*bp)[:0]
	whole := batch
	for len(batch) > 0 {
		k, size := 0, -1 // frames in this message and its payload (with separators)
		for k < len(batch) && k < cfg.MaxFramesPerWrite {
			sz := batch[k].size() // includes one separator
			if k > 0 && size+sz > cfg.Limits.MaxMessageBytes {
				break
			}
			size += sz
			k++
		}
		buf = wsframe.AppendHeader(buf, finText, size)
		for i, it := range batch[:k] {
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
		clear(batch[:k]) // the queue's array is reused: drop its references
		batch = batch[k:]
		msgs++
		n += size
	}
	c.qmu.Lock()
	if c.spare == nil && !c.closing {
		c.spare = whole[:0]
	} else {
		c.srv.queues.put(whole)
	}
	c.qmu.Unlock()
	return bp, buf, msgs, n
}

// queueArrays recycles the arrays of the connections' queues: an idle
// connection holds none, and a busy one does not allocate one per write.
// sync.Pool wants pointers: full holds boxed arrays, empty the spare boxes.
type queueArrays struct{ full, empty sync.Pool }

const maxPooledQueue = 256 // items; larger arrays are left to the GC

func (p *queueArrays) get() []outItem {
	if b, ok := p.full.Get().(*[]outItem); ok {
		a := *b
		*b = nil
		p.empty.Put(b)
		return a
	}
	return make([]outItem, 0, 8)
}

func (p *queueArrays) put(a []outItem) {
	if cap(a) == 0 || cap(a) > maxPooledQueue {
		return
	}
	a = a[:cap(a)]
	clear(a) // no references to shared bytes from the pool
	b, ok := p.empty.Get().(*[]outItem)
	if !ok {
		b = new([]outItem)
	}
	*b = a[:0]
	p.full.Put(b)
}

func putFrameBuf(bp *[]byte, buf []byte) {
	if cap(buf) <= 64<<10 {
		*bp = buf[:0]
		frameBufPool.Put(bp)
	}
}

// wrote counts msgs written messages of frames frames and n payload bytes.
func (c *conn) wrote(frames, msgs, n int) {
	ct := &c.srv.counters
	ct.framesOut.Add(int64(frames))
	ct.bytesOut.Add(int64(n))
	ct.wsMsgsOut.Add(int64(msgs))
}

// writeFailed ends a connection whose socket write failed.
func (c *conn) writeFailed() {
	c.qmu.Lock()
	c.closing = true
	c.queue, c.spare, c.qbytes, c.writing = nil, nil, 0, false
	c.qmu.Unlock()
	c.closeAsync() // a worker may hold c.readMu here
}

// hasQueued reports whether frames wait in the queue.
func (c *conn) hasQueued() bool {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	return len(c.queue) > 0
}

// maxInlineWrites bounds how many writes writeNow makes to one connection
// before it leaves the rest to a writer goroutine.
const maxInlineWrites = 4

// writeNow writes the queue of a connection whose writer the caller has
// become, on the caller's goroutine and without blocking: a write the socket
// does not take whole, and a long queue, go on on a writer goroutine; a
// connection past its write pace waits for the pacer (see pace.go). This
// is how a worker writes what it queued: a delivery costs a write system
// call, without a goroutine or a wake-up of another thread.
func (c *conn) writeNow() {
	if (c.nc != nil && c.raw == nil) || c.srv.cfg.WriteDelay > 0 {
		c.startWriter()
		return
	}
	for range maxInlineWrites {
		now := c.srv.clock()
		if at := c.paceAt(now); at != 0 && c.hasQueued() && c.srv.pacer.add(c, at, true) {
			return // the pacer writes c at its next turn, merging what comes meanwhile
		}
		batch, code, reason := c.nextBatch()
		if batch == nil {
			if code != 0 {
				c.srv.goAsync(func() { c.sendClose(code, reason, time.Second) })
			}
			return
		}
		frames := len(batch)
		bp, buf, msgs, n := c.encodeBatch(batch)
		c.wmu.Lock()
		rest, err := c.tryWrite(buf)
		if err != nil {
			c.wmu.Unlock()
			putFrameBuf(bp, buf)
			c.writeFailed()
			return
		}
		c.wrote(frames, msgs, n)
		c.paced(now)
		if len(rest) > 0 {
			// The socket is full: the writer goroutine writes the rest
			// first and unlocks wmu (no frame may come in between).
			c.rest, c.restBuf = rest, bp
			c.srv.counters.socketFull.Add(1)
			c.startWriter()
			return
		}
		c.wmu.Unlock()
		putFrameBuf(bp, buf)
	}
	c.startWriter()
}

// writeLoop is the writer goroutine: it writes the rest of a message
// writeNow could not finish, then queued frames until the queue is empty,
// blocking on a full socket up to the write timeout.
func (c *conn) writeLoop() {
	defer c.srv.writers.Done()
	if c.rest != nil { // handed over by writeNow, with wmu locked
		err := c.writeBlocking(c.rest)
		putFrameBuf(c.restBuf, c.rest)
		c.rest, c.restBuf = nil, nil
		c.wmu.Unlock()
		if err != nil {
			c.writeFailed()
			return
		}
	}
	if d := c.srv.cfg.WriteDelay; d > 0 {
		time.Sleep(d)
	}
	for {
		batch, code, reason := c.nextBatch()
		if batch == nil {
			if code != 0 {
				c.sendClose(code, reason, time.Second)
			}
			return
		}
		frames := len(batch)
		bp, buf, msgs, n := c.encodeBatch(batch)
		c.wmu.Lock()
		err := c.writeBlocking(buf)
		c.wmu.Unlock()
		putFrameBuf(bp, buf)
		if err != nil {
			c.writeFailed()
			return
		}
		c.wrote(frames, msgs, n)
	}
}

// writeBlocking writes buf, waiting for a full socket up to the write
// timeout. Called under wmu.
func (c *conn) writeBlocking(buf []byte) error {
	if c.nc == nil {
		return c.sock.writeWait(buf, time.Now().Add(c.srv.cfg.WriteTimeout))
	}
	if err := c.setWriteDeadline(time.Now()); err != nil {
		return err
	}
	_, err := c.nc.Write(buf)
	return err
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
	c.writeControlLocked(op, payload, deadline)
}

// tryControl writes a control frame if no other write is under way, and
// reports whether it did. A worker uses it: it must not wait for a writer.
func (c *conn) tryControl(op byte, payload []byte) bool {
	if !c.wmu.TryLock() {
		return false
	}
	c.writeControlLocked(op, payload, time.Now().Add(time.Second))
	return true
}

// writeControlLocked writes a control frame and unlocks wmu.
func (c *conn) writeControlLocked(op byte, payload []byte, deadline time.Time) {
	defer c.wmu.Unlock()
	frame := wsframe.AppendHeader(make([]byte, 0, len(payload)+2), op, len(payload))
	frame = append(frame, payload...)
	nc := c.nc
	c.wdeadline = deadline
	if nc == nil {
		_ = c.sock.writeWait(frame, deadline)
	} else if nc.SetWriteDeadline(deadline) == nil {
		_, _ = nc.Write(frame)
	}
}

// sendClose sends a close frame and closes the socket a moment later if the
// peer has not answered by then.
func (c *conn) sendClose(code int, reason string, wait time.Duration) {
	c.writeControl(finClose, wsframe.AppendClosePayload(nil, code, reason), wait)
	c.srv.afterFunc(wait, c.closeNow)
}
