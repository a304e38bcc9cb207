package server

import (
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/time/rate"

	"imload/mux"
	"imload/mux/wsframe"
)

// Close codes of the protocol (docs/protocol.md §6).
const (
	closeHeartbeat    = 4002
	closeTooManyConns = 4003
	closeSlowConsumer = 4008
)

// outItem is one queued frame: head alone, or a push made of three shared
// pieces: head (mux.PushPrefix of the event), sids (the session-id array,
// cached per room member) and body (encoded once per message).
type outItem struct {
	head, sids, body []byte
}

func (it outItem) size() int {
	if it.sids == nil {
		return len(it.head) + 1
	}
	return len(it.head) + len(it.sids) + len(mux.PushBodyKey) + len(it.body) + 2
}

// conn is one physical WebSocket (gorilla did the handshake; the server
// reads and writes the frames itself). Reads happen on a goroutine per
// connection or, with epoll, on a worker when the poller finds the
// connection readable (see poller and read.go). Writes go through a queue
// bounded in bytes. The worker that queued frames writes them itself,
// without blocking, once it has handled its message (see outbox); a writer
// goroutine exists only while a socket is full or when frames are queued
// from elsewhere.
type conn struct {
	id   uint64
	srv  *Server
	nc   net.Conn        // the socket while the runtime owns it (goroutine mode); nil in epoll mode
	raw  syscall.RawConn // nc's, for writes that must not block; nil: none
	sock rawSock         // the socket once the server owns it (epoll mode)

	lastRead  atomic.Int64 // Unix nanoseconds of the last message read
	ended     atomic.Bool  // finish has run or is running (set under readMu)
	closeOnce sync.Once

	// readMu is held while a message is handled and during cleanup; the
	// fields below belong to whoever holds it.
	readMu   sync.Mutex
	pollMu   sync.Mutex     // held by the worker reading a ready connection (epoll mode)
	in       wsframe.Reader // half-read frames (held by the reading goroutine)
	out      *outbox        // where the holder of readMu collects connections to write
	sessions []*session     // at most Limits.MaxSessions; a slice is smaller than a map
	mode     int
	modeSet  bool
	// roomLimiter limits how fast the connection creates rooms (made on
	// its first join).
	roomLimiter *rate.Limiter
	cmdTAT      int64    // the connection's command bucket (limits.go)
	ip          *ipEntry // its source address's limits; nil: exempt

	// wmu serialises writes to the socket (batches and control frames);
	// wdeadline is the write deadline last set, under wmu. rest is the
	// unwritten end of a batch the socket did not take at once: wmu stays
	// locked from that write until the writer goroutine has written rest.
	wmu       sync.Mutex
	wdeadline time.Time
	tat       int64 // write pacing (pace.go): theoretical time of the next write; the writer's
	rest      []byte
	restBuf   *[]byte // rest's pooled buffer

	qmu         sync.Mutex
	queue       []outItem
	spare       []outItem
	qbytes      int
	writing     bool
	closing     bool // accepts no more frames
	closeCode   int  // close with this code once the queue is written
	closeReason string
}

// enqueue queues a whole frame from any goroutine and makes sure a writer
// writes it. It never blocks; a connection whose queue would pass the limit
// is closed as a slow consumer.
func (c *conn) enqueue(frame []byte) {
	if c.queueItem(outItem{head: frame}) {
		c.startWriter()
	}
}

// reply queues a frame to c from the goroutine that holds c.readMu (a
// worker handling c's message, or finish), to be written when it is done.
func (c *conn) reply(frame []byte) { c.pushTo(c, outItem{head: frame}) }

// pushTo queues it to the connection to, on behalf of c, whose readMu the
// caller holds: when to needs a writer, c's outbox takes it (written after
// c's message is handled) or, without an outbox, a writer goroutine.
func (c *conn) pushTo(to *conn, it outItem) {
	if !to.queueItem(it) {
		return
	}
	if c.out != nil {
		c.out.add(to)
	} else {
		to.startWriter()
	}
}

// queueItem queues it. It reports whether the caller has become the
// connection's writer (the queue was idle) and must see that the queue is
// written: through an outbox or startWriter.
func (c *conn) queueItem(it outItem) (mustWrite bool) {
	size := it.size()
	c.qmu.Lock()
	if c.closing {
		c.qmu.Unlock()
		return false
	}
	if c.qbytes+size > c.srv.cfg.MaxQueueBytes {
		// Drop what is queued; the writer finishes the message it is
		// writing (its write has a deadline), then sends close 4008.
		c.closing = true
		c.queue, c.spare, c.qbytes = nil, nil, 0
		c.closeCode, c.closeReason = closeSlowConsumer, "slow consumer"
		mustWrite = c.claimWriterLocked()
		c.qmu.Unlock()
		c.srv.counters.slowConsumers.Add(1)
		c.srv.logger.Info("slow consumer disconnected", "conn", c.id, "queued_bytes", c.srv.cfg.MaxQueueBytes)
		return mustWrite
	}
	if c.queue == nil {
		c.queue = c.srv.queues.get()
	}
	c.queue = append(c.queue, it)
	c.qbytes += size
	mustWrite = c.claimWriterLocked()
	c.qmu.Unlock()
	return mustWrite
}

// claimWriterLocked makes the caller the writer if there is none.
func (c *conn) claimWriterLocked() bool {
	if c.writing {
		return false
	}
	c.writing = true
	return true
}

// startWriter starts a writer goroutine for a queue the caller has claimed.
func (c *conn) startWriter() {
	c.srv.writers.Add(1)
	go c.writeLoop()
}

// goAway queues a goaway frame and closes the connection with code once it
// is written.
func (c *conn) goAway(reason string, retry time.Duration, code int) {
	frame := mux.AppendGoAway(nil, mux.GoAway{Reason: reason, RetryMS: retry.Milliseconds()})
	c.qmu.Lock()
	defer c.qmu.Unlock()
	if c.closing {
		return
	}
	c.closing = true
	c.closeCode, c.closeReason = code, reason
	c.queue = append(c.queue, outItem{head: frame})
	c.qbytes += len(frame)
	if c.claimWriterLocked() {
		c.startWriter()
	}
}

// abort closes the connection at once with a close code. The caller must
// not hold c.readMu.
func (c *conn) abort(code int, reason string) {
	c.refuseFrames()
	c.writeControl(finClose, wsframe.AppendClosePayload(nil, code, reason), 250*time.Millisecond)
	c.closeNow()
}

// closeNow closes the socket and cleans the connection up on the caller's
// goroutine, which must not hold c.readMu. A connection ends without a
// goroutine of its own: when thousands of clients leave at once, a
// goroutine (and stack) each would be the server's largest peak of memory.
func (c *conn) closeNow() {
	c.closeSocket()
	c.finish()
}

// closeAsync closes the socket and has the connection cleaned up on
// another goroutine, unless that is already under way: for callers that
// may hold c.readMu.
func (c *conn) closeAsync() {
	c.closeSocket()
	if !c.ended.Load() {
		c.srv.goAsync(c.finish)
	}
}

// closeSocket stops watching the socket and closes it, once.
func (c *conn) closeSocket() {
	c.closeOnce.Do(func() {
		if c.nc != nil {
			c.nc.Close()
			return
		}
		c.srv.poller.forget(c)
		c.sock.close()
	})
}

// refuseFrames makes the queue take no more frames: the connection is
// closing.
func (c *conn) refuseFrames() {
	c.qmu.Lock()
	c.closing = true
	c.qmu.Unlock()
}

func (c *conn) isClosing() bool {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	return c.closing
}

// finish removes every session of the connection and closes it, once.
func (c *conn) finish() {
	var out outbox
	defer out.flush() // the presence pushes, after readMu is unlocked
	c.readMu.Lock()
	defer c.readMu.Unlock()
	if c.ended.Load() {
		return
	}
	c.ended.Store(true)
	c.refuseFrames()
	c.out = &out
	for _, s := range c.sessions {
		c.srv.removeSession(s)
	}
	c.out = nil
	c.sessions = nil
	c.closeSocket()
	c.srv.hub.removeConn(c)
	c.srv.ips.release(c.ip)
	c.srv.counters.physical.Add(-1)
	c.srv.counters.byMode[c.mode].Add(-1)
	c.srv.live.Done()
}

// session returns the attached session sid, or nil.
func (c *conn) session(sid uint32) *session {
	for _, s := range c.sessions {
		if s.sid == sid {
			return s
		}
	}
	return nil
}

// dropSession forgets session s.
func (c *conn) dropSession(s *session) {
	if i := slices.Index(c.sessions, s); i >= 0 {
		c.sessions = slices.Delete(c.sessions, i, i+1)
	}
}

// handleMessage handles every frame of one WebSocket message in order.
func (c *conn) handleMessage(msg []byte) {
	err := mux.SplitMessage(msg, c.srv.cfg.Limits, func(b []byte) error {
		c.srv.counters.framesIn.Add(1)
		f, err := mux.DecodeFrame(b)
		if err != nil {
			c.srv.counters.badFrames.Add(1)
			c.reply(mux.AppendErrorFrame(nil, f.Seq, mux.AsError(err)))
			return nil
		}
		switch f.T {
		case mux.TypePing:
			c.reply(mux.AppendPong(nil, f.Seq))
		case mux.TypeCmd:
			c.handleCmd(&f)
		}
		return nil
	})
	if err != nil {
		c.srv.counters.badFrames.Add(1)
		c.reply(mux.AppendErrorFrame(nil, 0, mux.AsError(err)))
	}
}

// work is one job for a worker: a message read by a connection's
// goroutine (goroutine mode: msg, and done to answer on once it is
// handled), or a connection the poller found readable (epoll mode: msg and
// done nil), which the worker reads itself.
type work struct {
	c    *conn
	msg  []byte
	done chan struct{}
}

// runWorker handles messages. Handling (JSON, rooms, fan-out) needs a deep
// stack; doing it on a few long-lived workers keeps the readers' stacks
// small (goroutine mode), or leaves no reader at all (epoll mode: the
// worker reads the ready connection into its own buffer, so a readable
// connection costs no goroutine and no buffer of its own).
//
// A worker also writes what the message produced (see outbox): the replies
// and the pushes to every connection whose writer it became. And it
// releases the messages a durable store has committed (release.go).
func (s *Server) runWorker() {
	defer s.workers.Done()
	var out outbox
	rs := newReadScratch()
	for {
		select {
		case w, ok := <-s.work:
			if !ok {
				return
			}
			if w.done == nil {
				w.c.readReady(rs, &out)
				continue
			}
			w.c.handle(w.msg, &out)
			w.done <- struct{}{} // the reader may go on while we write
			s.writeOut(&out)
		case jobs := <-s.releases: // committed messages (release.go)
			s.release(jobs, &out)
			s.writeOut(&out)
		}
	}
}

// handle handles one message of c on the calling worker, collecting the
// connections to write in out.
func (c *conn) handle(msg []byte, out *outbox) {
	c.readMu.Lock()
	if !c.ended.Load() {
		c.out = out
		c.handleMessage(msg)
		c.out = nil
	}
	c.readMu.Unlock()
}

// writeOut writes what a worker collected in out.
func (s *Server) writeOut(out *outbox) {
	if len(s.work) >= cap(s.work)/2 {
		// Work piles up: handling comes first. The pacer writes what this
		// worker produced, and the longer it lags, the more frames each of
		// its writes merges (fewer writes for the same deliveries), so an
		// overloaded server catches up instead of starving its readers.
		out.handOver(s.pacer)
	} else {
		out.flush()
	}
}

// outbox lists the connections whose writer a goroutine became while it
// handled one message (replies, fan-out), to write them once the handling
// is done, outside every lock, on the same goroutine.
type outbox struct{ conns []*conn }

func (o *outbox) add(c *conn) { o.conns = append(o.conns, c) }

// handOver gives every listed connection to the pacer, to be written as
// soon as it gets to it (or written now if it has stopped).
func (o *outbox) handOver(p *pacer) {
	now := p.srv.clock()
	for i, c := range o.conns {
		if !p.add(c, now, false) {
			c.writeNow()
		}
		o.conns[i] = nil
	}
	o.conns = o.conns[:0]
}

// flush writes every listed connection (see conn.writeNow).
func (o *outbox) flush() {
	for _, c := range o.conns {
		c.writeNow()
	}
	clear(o.conns)
	if cap(o.conns) > 4096 {
		o.conns = nil // a burst to a huge room: don't keep its array
	}
	o.conns = o.conns[:0]
}
