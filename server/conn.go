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
	"imload/server/engine"
)

// Concurrency of a connection.
//
// Locks, outermost first (the hub's roomsMu and room.mu come between readMu
// and qmu: hub.go):
//   - readMu: held while one of c's messages is handled and while c is
//     cleaned up (finish); it guards c's sessions, their rooms and the
//     per-connection limiters. Handling is in order, one message at a time.
//   - pollMu: held by the worker reading c in epoll mode (read.go), so that
//     one readiness is handled after the previous one.
//   - wmu: held by whoever writes to c's socket, from the write until its
//     end; a write the socket did not take whole keeps wmu locked while the
//     writer goroutine finishes it (rest), so nothing comes in between.
//   - qmu: innermost; guards the queue, its byte count, the writer flag and
//     the close state. Nothing blocks under it.
//
// The writer: whoever queues to an idle queue becomes c's writer
// (queueItem reports it) and must see the queue written: a worker through
// its outbox (writeNow after the message is handled, every lock
// released), anyone else through startWriter. The writer writes without
// blocking; only when the socket is full does it hand the role, with wmu,
// to a writer goroutine (writeLoop), the one goroutine that ever waits
// for c's socket. nextBatch gives the role up when the queue is empty.
//
// Closing, and which call to make from where:
//   - closeWith (read.go), from c's reader when a frame ends c (the
//     peer's close, a bad frame): it queues the close frame; the reader
//     then finishes c itself (errClosed) or leaves that to whoever writes
//     the close frame (errClosing);
//   - abort or closeNow, from goroutines that do not hold readMu (the
//     janitor's heartbeat close, shutdown, the end of a writer): they end
//     c on the calling goroutine;
//   - closeAsync, from anywhere, readMu held or not (a failed write): it
//     closes the socket and has another goroutine finish c;
//   - goAway, from anywhere: a goaway frame, then the close once written.
// finish removes c's sessions and runs once (ended), under readMu.

// Close codes of the protocol (docs/protocol.md §6).
const (
	closeHeartbeat    = 4002
	closeTooManyConns = 4003
	closeSlowConsumer = 4008
)

// closeGrace is how long a connection the server closes waits, once its
// close frame is written, for the peer's close frame before the socket is
// closed anyway.
const closeGrace = time.Second

// outItem is one queued frame: head alone, or a push made of three shared
// pieces: head (mux.PushPrefix of the event), sids (the session-id array,
// cached per room member) and body (encoded once per message). With ctl,
// head is a whole WebSocket control frame (a pong or the close frame),
// written between text messages: control frames take the same queue, the
// same limit and the same non-blocking writes as everything else.
type outItem struct {
	head, sids, body []byte
	ctl              bool
}

// controlItem frames a control frame (op with Fin) as a queue item.
func controlItem(op byte, payload []byte) outItem {
	frame := wsframe.AppendHeader(make([]byte, 0, len(payload)+2), op, len(payload))
	return outItem{head: append(frame, payload...), ctl: true}
}

func (it outItem) isClose() bool { return it.ctl && it.head[0] == finClose }

func (it outItem) size() int {
	if it.ctl {
		return len(it.head)
	}
	if it.sids == nil {
		return len(it.head) + 1
	}
	return len(it.head) + len(it.sids) + len(mux.PushBodyKey) + len(it.body) + 2
}

// conn is one physical WebSocket (gorilla did the handshake; the server
// reads and writes the frames itself). Reads happen on a goroutine per
// connection or, with epoll, on a worker when the poller finds the
// connection readable (see poller and read.go). Writes go through a queue
// bounded in bytes, control frames included. The worker that queued frames
// writes them itself, without blocking, once it has handled its message
// (see outbox); a writer goroutine exists only while a socket is full or
// when frames are queued from elsewhere. No goroutine but that writer ever
// waits for the socket.
//
// Closing: the close frame is the last item of the queue (closeLocked);
// whoever writes it then ends the connection, at once if the peer has
// closed or the server aborts it (endNow), else after closeGrace.
type conn struct {
	id   uint64
	srv  *Server
	nc   net.Conn        // the socket while the runtime owns it (goroutine mode); nil in epoll mode
	raw  syscall.RawConn // nc's, for writes that must not block; nil: none
	sock rawSock         // the socket once the server owns it (epoll mode)

	lastRead  atomic.Int64 // Unix nanoseconds of the last message read
	hbSlot    int32        // the heartbeat wheel's slot holding c, -1: none (under heartbeats.mu; a conn never added is found by identity)
	hbIdx     int32        // c's index in it
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
	// held is set while a command waits for the engine's answer: the
	// commands that came after it wait there (await.go).
	held  *backlog
	since int64 // Unix ns the connection was accepted (engine.ConnRef.Since)

	// wmu serialises writes to the socket; wdeadline is the write deadline
	// last set, under wmu. rest is the unwritten end of a batch the socket
	// did not take at once: wmu stays locked from that write until the
	// writer goroutine has written rest.
	wmu       sync.Mutex
	wdeadline time.Time
	tat       int64 // write pacing (pace.go): theoretical time of the next write; the writer's
	rest      []byte
	restBuf   *[]byte // rest's pooled buffer
	restStat  batchStat

	qmu         sync.Mutex
	queue       []outItem
	spare       []outItem
	qbytes      int
	writing     bool
	closing     atomic.Bool // accepts no more frames (stored under qmu; read anywhere)
	closeQueued bool        // the close frame is queued (or written)
	closeSent   bool        // the close frame is written
	endNow      bool        // end the connection as soon as the close frame is written
	slow        bool        // counted as a slow consumer
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
	if c.closing.Load() {
		c.qmu.Unlock()
		return false
	}
	if c.qbytes+size > c.srv.cfg.MaxQueueBytes {
		// Drop what is queued; the writer finishes the message it is
		// writing (within the write timeout), then sends close 4008.
		mustWrite = c.closeLocked(closeSlowConsumer, "slow consumer", true)
		counted := c.countSlowLocked()
		c.qmu.Unlock()
		if counted {
			c.srv.logger.Info("slow consumer disconnected: queue full", "conn", c.id, "queued_bytes", c.srv.cfg.MaxQueueBytes)
		}
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

// closeLocked makes the queue take no more frames and queues a close frame
// (code, reason) as its last item, after what is queued or, with drop,
// instead of it. It reports whether the caller has become the writer. A
// connection already closing is left as it is. Called under qmu.
func (c *conn) closeLocked(code int, reason string, drop bool) (mustWrite bool) {
	if c.closing.Load() {
		return false
	}
	c.closing.Store(true)
	if drop {
		c.srv.queues.put(c.queue)
		c.srv.queues.put(c.spare)
		c.queue, c.spare, c.qbytes = nil, nil, 0
	}
	it := controlItem(finClose, wsframe.AppendClosePayload(nil, code, reason))
	c.queue = append(c.queue, it)
	c.qbytes += it.size()
	c.closeQueued = true
	return c.claimWriterLocked()
}

// countSlowLocked counts c as a slow consumer, once; it reports whether
// this call did. Called under qmu.
func (c *conn) countSlowLocked() bool {
	if c.slow {
		return false
	}
	c.slow = true
	c.srv.counters.slowConsumers.Add(1)
	return true
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
	if c.closing.Load() {
		c.qmu.Unlock()
		return
	}
	it := outItem{head: frame}
	c.queue = append(c.queue, it)
	c.qbytes += it.size()
	mustWrite := c.closeLocked(code, reason, false)
	c.qmu.Unlock()
	if mustWrite {
		c.startWriter()
	}
}

// abort closes the connection at once with a close code: the close frame
// is written if the socket takes it now (what was queued is dropped), and
// the connection ends without waiting for it. The caller must not hold
// c.readMu.
func (c *conn) abort(code int, reason string) {
	c.qmu.Lock()
	mustWrite := c.closeLocked(code, reason, true)
	c.endNow = true
	c.qmu.Unlock()
	if mustWrite {
		c.writeNow()
	}
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
	c.closing.Store(true)
	c.qmu.Unlock()
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
	// Its users' presence in their rooms waits for the presence grace:
	// their browsers may be back in a moment (not when the server stops).
	linger := !c.srv.shuttingDown.Load()
	for _, s := range c.sessions {
		c.srv.removeSession(s, linger)
	}
	c.out = nil
	c.sessions = nil
	c.closeSocket()
	c.srv.heartbeats.remove(c)
	c.srv.hub.removeConn(c)
	c.srv.ips.release(c.ip)
	c.srv.counters.physical.Add(-1)
	c.srv.counters.byMode[c.mode].Add(-1)
	c.srv.live.Done()
}

// ref names the connection for the engine.
func (c *conn) ref() engine.ConnRef {
	return engine.ConnRef{Node: c.srv.node, ID: c.id, Since: time.Unix(0, c.since)}
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

// handleMessage handles every frame of one WebSocket message in order;
// while a command waits for the engine, the frames wait behind it
// (await.go).
func (c *conn) handleMessage(msg []byte) {
	err := mux.SplitMessage(msg, c.srv.cfg.Limits, func(b []byte) error {
		c.srv.counters.framesIn.Add(1)
		if c.held != nil {
			c.hold(b)
			return nil
		}
		c.handleFrame(b)
		return nil
	})
	if err != nil {
		c.srv.counters.badFrames.Add(1)
		c.reply(mux.AppendErrorFrame(nil, 0, mux.AsError(err)))
	}
}

// handleFrame handles one frame.
func (c *conn) handleFrame(b []byte) {
	f, err := mux.DecodeFrame(b)
	if err != nil {
		c.srv.counters.badFrames.Add(1)
		c.reply(mux.AppendErrorFrame(nil, f.Seq, mux.AsError(err)))
		return
	}
	switch f.T {
	case mux.TypePing:
		c.reply(mux.AppendPong(nil, f.Seq))
	case mux.TypeCmd:
		c.handleCmd(&f)
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

// job is the engine's work for a worker: the answer to a command of c
// that waited for it (call; await.go), or the logs of the rooms made ready
// (release.go).
type job struct {
	c     *conn
	call  *call
	ready bool
}

// runWorker handles messages. Handling (JSON, rooms, fan-out) needs a deep
// stack; doing it on a few long-lived workers keeps the readers' stacks
// small (goroutine mode), or leaves no reader at all (epoll mode: the
// worker reads the ready connection into its own buffer, so a readable
// connection costs no goroutine and no buffer of its own).
//
// A worker also writes what the message produced (see outbox): the replies
// and the pushes to every connection whose writer it became. And it does
// the engine's jobs: commands whose answer came late (await.go), logs with
// something to take (release.go).
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
		case j := <-s.jobs:
			if j.call != nil {
				j.c.resume(j.call, &out)
			} else {
				s.takeReady(&out)
			}
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
// is done, outside every lock, on the same goroutine. It also holds the
// goroutine's scratch for the engine: what a log's Take returns, and the
// draft of a send.
type outbox struct {
	conns []*conn
	rel   []engine.Released
	draft engine.Draft
}

func (o *outbox) add(c *conn) { o.conns = append(o.conns, c) }

// push queues it to the connection to: when to needs a writer, o takes it
// (written once the caller's handling is done) or, with no outbox, a
// writer goroutine.
func (o *outbox) push(to *conn, it outItem) {
	if !to.queueItem(it) {
		return
	}
	if o != nil {
		o.add(to)
	} else {
		to.startWriter()
	}
}

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
