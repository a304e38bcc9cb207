package server

import (
	"bytes"
	"sync/atomic"

	"imload/mux"
)

// Answers of the engine. A command that needs the engine (attach and nick
// claim a name, join, history and who open a room, dm routes a message)
// calls it with a done function and goes on with the answer. The local
// engine calls done before it returns: the command goes on at once, as if
// it were one function. The Redis engine calls it later, from its own
// goroutine: the command is then held (call), and so are the commands of
// its connection that follow it — the rest of its WebSocket message and
// the messages after it, copied into a backlog bounded by MaxBacklog
// bytes — so that a connection's commands take effect in the order they
// came (an attach before the join that follows it). A ping is still
// answered at once. When the answer comes, a worker takes the
// connection's read lock, finishes the command (its continuation) and
// handles the backlog in order, until it is empty or another command
// waits.

// call is a command waiting for the engine's answer.
type call struct {
	state atomic.Int32 // callWaiting, then callAnswered (in time) or callHeld
	// k finishes the command with the answer; done sets it.
	k func()
}

const (
	callWaiting  = iota // the engine method has not returned
	callAnswered        // done ran before it returned: the caller runs k
	callHeld            // it returned first: a worker runs k when done runs
)

// backlog is what a connection holds while a command waits: the call and
// the frames that came after it.
type backlog struct {
	call   *call
	frames [][]byte // copies of the frames, in order
	bytes  int      // their size, against MaxBacklog
}

// closeBacklogFull closes a connection that sent more than MaxBacklog
// bytes of commands while one of its commands waited for the engine.
const closeBacklogFull = 4009

// await calls the engine (start, which passes its done function on) on
// behalf of c, whose read lock the caller holds, and finishes the command
// with the answer (k): at once when the answer comes before start returns,
// else later on a worker, c holding its next commands meanwhile (see
// above). k runs under c's read lock, with c.out set; c may have ended
// meanwhile (c.ended), and k must then undo what the engine did for it.
func await[T any](c *conn, start func(done func(T, error)), k func(T, error)) {
	cl := &call{}
	c.srv.enterEngine()
	start(func(v T, err error) {
		cl.k = func() { k(v, err) }
		if cl.state.CompareAndSwap(callWaiting, callAnswered) {
			return // the caller runs it
		}
		c.srv.answered(c, cl)
	})
	c.srv.leaveEngine(c.out)
	if cl.state.CompareAndSwap(callWaiting, callHeld) {
		c.srv.counters.commandsHeld.Add(1)
		c.held = &backlog{call: cl}
		return
	}
	cl.k()
}

// answered has a worker finish a held command (on the engine's goroutine;
// after Close, when no connection is left, the answer is dropped).
func (s *Server) answered(c *conn, cl *call) {
	select {
	case s.jobs <- job{c: c, call: cl}:
	case <-s.stopJobs:
	}
}

// resume finishes the held command cl of c on a worker, then handles the
// commands c held meanwhile.
func (c *conn) resume(cl *call, out *outbox) {
	c.readMu.Lock()
	defer c.readMu.Unlock()
	c.out = out
	defer func() { c.out = nil }()
	b := c.held
	c.held = nil
	cl.k()
	if b == nil {
		return
	}
	if c.held != nil { // the command waits again (a second engine call)
		c.held.frames, c.held.bytes = b.frames, b.bytes
		return
	}
	if c.ended.Load() || c.closing.Load() {
		return // no reply could be sent: what they ask is not done
	}
	for i, f := range b.frames {
		b.frames[i] = nil
		b.bytes -= len(f)
		c.handleFrame(f)
		if c.held != nil { // this one waits in turn: the rest waits behind it
			c.held.frames, c.held.bytes = b.frames[i+1:], b.bytes
			return
		}
	}
}

// hold keeps frame b, which came while a command of c waits, for when it
// is answered: a ping is answered now; beyond MaxBacklog bytes c is closed
// (4009). Called under c's read lock.
func (c *conn) hold(b []byte) {
	if c.closing.Load() {
		return
	}
	if f, err := mux.DecodeFrame(b); err == nil && f.T == mux.TypePing {
		c.reply(mux.AppendPong(nil, f.Seq))
		return
	}
	if c.held.bytes+len(b) > c.srv.cfg.MaxBacklog {
		c.srv.counters.backlogOverflows.Add(1)
		c.srv.logger.Info("connection closed: command backlog full", "conn", c.id, "max_backlog", c.srv.cfg.MaxBacklog)
		c.held.frames, c.held.bytes = nil, 0
		c.qmu.Lock()
		mustWrite := c.closeLocked(closeBacklogFull, "command backlog full", false)
		c.qmu.Unlock()
		if mustWrite {
			c.out.add(c)
		}
		return
	}
	c.held.frames = append(c.held.frames, bytes.Clone(b))
	c.held.bytes += len(b)
}

// Sink calls made inside an engine call. The local engine delivers a DM's
// messages inside DM, on the worker that called it, which holds the
// sender's read lock: writing there could end a connection (and lock its
// read lock) under another's. So while a worker is inside an engine call
// (enterEngine … leaveEngine), what Sink calls queue is written by that
// worker once the call returns; a Sink call made while no worker is
// inside one (on the engine's own goroutine) writes at once.

// enterEngine counts a worker inside an engine call.
func (s *Server) enterEngine() { s.sinkCalls.Add(1) }

// leaveEngine ends it: what Sink calls queued meanwhile goes to out.
func (s *Server) leaveEngine(out *outbox) {
	s.sinkCalls.Add(-1)
	s.flushSinkWrites(out)
}

// sinkWrote takes the connections a Sink call became the writer of.
func (s *Server) sinkWrote(conns []*conn) {
	if len(conns) == 0 {
		return
	}
	s.sinkMu.Lock()
	s.sinkConns = append(s.sinkConns, conns...)
	s.sinkMu.Unlock()
	if s.sinkCalls.Load() == 0 {
		s.flushSinkWrites(nil) // no worker inside a call: write them here
	}
}

// flushSinkWrites writes the connections Sink calls left: through out, or
// at once without one.
func (s *Server) flushSinkWrites(out *outbox) {
	s.sinkMu.Lock()
	conns := s.sinkConns
	s.sinkConns = nil
	s.sinkMu.Unlock()
	for _, c := range conns {
		if out != nil {
			out.add(c)
		} else {
			c.writeNow()
		}
	}
}
