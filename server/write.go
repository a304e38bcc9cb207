package server

import (
	"errors"
	"os"
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
// writer's role instead and returns nil.
func (c *conn) nextBatch() (batch []outItem) {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	if len(c.queue) == 0 {
		c.writing = false
		// An idle connection holds no queue memory.
		c.srv.queues.put(c.queue)
		c.srv.queues.put(c.spare)
		c.queue, c.spare = nil, nil
		return nil
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
	return batch
}

// batchStat is what one encoded batch holds.
type batchStat struct {
	frames, msgs, n int  // protocol frames, WebSocket text messages, their payload bytes
	close           bool // the batch ends with the close frame
}

// encodeBatch frames batch in a pooled buffer (give it back with
// putFrameBuf) as WebSocket text messages of up to MaxFramesPerWrite frames
// and about MaxMessageBytes bytes each, with the control frames among them
// in their place.
func (c *conn) encodeBatch(batch []outItem) (bp *[]byte, buf []byte, st batchStat) {
	cfg := &c.srv.cfg
	bp = frameBufPool.Get().(*[]byte)
	buf = (*bp)[:0]
	whole := batch
	for len(batch) > 0 {
		if batch[0].ctl {
			buf = append(buf, batch[0].head...)
			st.close = batch[0].isClose()
			batch[0] = outItem{}
			batch = batch[1:]
			continue
		}
		k, size := 0, -1 // frames in this message and its payload (with separators)
		for k < len(batch) && k < cfg.MaxFramesPerWrite && !batch[k].ctl {
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
		st.frames += k
		st.msgs++
		st.n += size
	}
	c.qmu.Lock()
	if c.spare == nil && !c.closing.Load() {
		c.spare = whole[:0]
	} else {
		c.srv.queues.put(whole)
	}
	c.qmu.Unlock()
	return bp, buf, st
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

// wrote counts what a written batch held.
func (c *conn) wrote(st batchStat) {
	ct := &c.srv.counters
	ct.framesOut.Add(int64(st.frames))
	ct.bytesOut.Add(int64(st.n))
	ct.wsMsgsOut.Add(int64(st.msgs))
}

// writeFailed ends a connection whose socket write failed.
func (c *conn) writeFailed() {
	c.qmu.Lock()
	c.closing.Store(true)
	c.queue, c.spare, c.qbytes, c.writing = nil, nil, 0, false
	c.qmu.Unlock()
	c.closeAsync() // the writer may be the pacer or a worker: clean up elsewhere
}

// mayPace reports whether frames wait that the write pace may hold back:
// a close frame is never held back.
func (c *conn) mayPace() bool {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	return len(c.queue) > 0 && !c.closeQueued
}

// maxInlineWrites bounds how many writes writeNow makes to one connection
// before it leaves the rest to a writer goroutine.
const maxInlineWrites = 4

// writeNow writes the queue of a connection whose writer the caller has
// become, on the caller's goroutine and without blocking: a write the socket
// does not take whole, and a long queue, go on on a writer goroutine; a
// connection past its write pace waits for the pacer (see pace.go). This
// is how a worker writes what it queued: a delivery costs a write system
// call, without a goroutine or a wake-up of another thread. The caller
// must not hold c.readMu (writing the close frame may end the connection).
func (c *conn) writeNow() {
	if (c.nc != nil && c.raw == nil) || c.srv.cfg.WriteDelay > 0 {
		c.startWriter()
		return
	}
	for range maxInlineWrites {
		now := c.srv.clock()
		if at := c.paceAt(now); at != 0 && c.mayPace() && c.srv.pacer.add(c, at, true) {
			return // the pacer writes c at its next turn, merging what comes meanwhile
		}
		batch := c.nextBatch()
		if batch == nil {
			return
		}
		bp, buf, st := c.encodeBatch(batch)
		c.wmu.Lock()
		rest, err := c.tryWrite(buf)
		if err != nil {
			c.wmu.Unlock()
			putFrameBuf(bp, buf)
			c.writeFailed()
			return
		}
		c.paced(now)
		if len(rest) > 0 {
			// The socket is full: the writer goroutine writes the rest
			// first and unlocks wmu (no frame may come in between).
			c.rest, c.restBuf, c.restStat = rest, bp, st
			c.srv.counters.socketFull.Add(1)
			c.startWriter()
			return
		}
		c.wmu.Unlock()
		putFrameBuf(bp, buf)
		c.wrote(st)
		if st.close {
			c.closeWritten()
			return
		}
	}
	c.startWriter()
}

// writeLoop is the writer goroutine: it writes the rest of a message
// writeNow could not finish, then queued frames until the queue is empty,
// waiting for a full socket up to the write timeout.
func (c *conn) writeLoop() {
	defer c.srv.writers.Done()
	if c.rest != nil { // handed over by writeNow, with wmu locked
		rest, bp, st := c.rest, c.restBuf, c.restStat
		c.rest, c.restBuf, c.restStat = nil, nil, batchStat{}
		left, err := c.writeBlocking(rest)
		if err != nil {
			c.writeError(err, left, st.close) // unlocks wmu
			putFrameBuf(bp, rest)
			return
		}
		c.wmu.Unlock()
		putFrameBuf(bp, rest)
		c.wrote(st)
		if st.close {
			c.closeWritten()
			return
		}
	}
	if d := c.srv.cfg.WriteDelay; d > 0 {
		time.Sleep(d)
	}
	for {
		batch := c.nextBatch()
		if batch == nil {
			return
		}
		bp, buf, st := c.encodeBatch(batch)
		c.wmu.Lock()
		left, err := c.writeBlocking(buf)
		if err != nil {
			c.writeError(err, left, st.close) // unlocks wmu
			putFrameBuf(bp, buf)
			return
		}
		c.wmu.Unlock()
		putFrameBuf(bp, buf)
		c.wrote(st)
		if st.close {
			c.closeWritten()
			return
		}
	}
}

// writeBlocking writes buf, waiting for a full socket as long as it keeps
// taking bytes: it gives up, with os.ErrDeadlineExceeded and the unwritten
// rest, once the socket has taken nothing for the write timeout. Called
// under wmu, by a writer goroutine only.
func (c *conn) writeBlocking(buf []byte) (rest []byte, err error) {
	wt := c.srv.cfg.WriteTimeout
	if c.nc == nil {
		return c.sock.writeWait(buf, wt)
	}
	if c.raw != nil {
		return c.waitWrite(buf, wt)
	}
	c.wdeadline = time.Now().Add(wt)
	if err := c.nc.SetWriteDeadline(c.wdeadline); err != nil {
		return buf, err
	}
	n, err := c.nc.Write(buf)
	return buf[n:], err
}

// writeError ends the connection after a failed blocking write (rest is
// what it left unwritten; hadClose: the batch held the close frame), and
// unlocks wmu. A socket that took nothing for the write timeout belongs to
// a slow consumer: it is counted as one, and closed with 4008 if the rest
// and the close frame still fit in the socket (they rarely do).
func (c *conn) writeError(err error, rest []byte, hadClose bool) {
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		c.wmu.Unlock()
		c.writeFailed()
		return
	}
	c.srv.counters.writeTimeouts.Add(1)
	c.qmu.Lock()
	counted := c.countSlowLocked()
	c.closing.Store(true)
	c.queue, c.spare, c.qbytes = nil, nil, 0
	c.qmu.Unlock()
	if counted {
		c.srv.logger.Info("slow consumer disconnected: write timeout", "conn", c.id, "write_timeout", c.srv.cfg.WriteTimeout)
	}
	if c.nc == nil || c.raw != nil {
		if left, err := c.tryWrite(rest); err == nil && len(left) == 0 && !hadClose {
			closeFrame := controlItem(finClose, wsframe.AppendClosePayload(nil, closeSlowConsumer, "slow consumer"))
			_, _ = c.tryWrite(closeFrame.head)
		}
	}
	c.wmu.Unlock()
	c.closeNow() // a writer goroutine holds nothing else
}

// closeWritten ends the connection once its close frame is written: at
// once when its peer has closed or it is aborted, else once the peer has
// had closeGrace to answer with its own close frame.
func (c *conn) closeWritten() {
	c.qmu.Lock()
	c.closeSent = true
	now := c.endNow
	c.qmu.Unlock()
	if now {
		c.closeNow()
	} else {
		c.srv.afterFunc(closeGrace, c.closeNow)
	}
}
