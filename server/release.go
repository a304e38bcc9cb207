package server

import (
	"errors"

	"github.com/gorilla/websocket"

	"imload/mux"
	"imload/server/engine"
)

// Releasing messages. A message is visible (its send is acknowledged, it
// is pushed to the room's members, history and join replies show it) from
// the moment its room's log gives it back through Take: at once for the
// local engine without a durable store, after its commit with one, after
// the round trip to Redis with the Redis engine. The node takes a room's
// log under the room's lock after each send it publishes there, and when
// the engine says the log has something new (Sink.Ready): a worker then
// takes it (job.ready). What Take gives is handled in its order: the
// outcome of a publish answers its sender (each sender waits in
// room.waiting, by ticket), a newly visible message is pushed to every
// member.

// take takes what the room's log has and handles it, collecting the
// connections to write in out (see outbox.push). Called under r.mu.
func (r *room) take(s *Server, out *outbox) {
	var rel []engine.Released
	if out != nil {
		rel = out.rel[:0]
	}
	rel = r.log.Take(rel)
	for i := range rel {
		r.release(s, &rel[i], out)
	}
	clear(rel)
	if out != nil {
		out.rel = rel[:0]
	}
}

// release handles one thing the log gave: the answer to a send of this
// node, then a message to push, or a reset. Called under r.mu.
func (r *room) release(s *Server, rel *engine.Released, out *outbox) {
	if rel.Ticket != 0 {
		if w, ok := r.popWaiter(rel.Ticket); ok && w.api != nil {
			if rel.Err == nil && !rel.Dup {
				s.counters.messagesIn.Add(1)
			}
			w.api(rel)
		} else if ok {
			var reply []byte
			switch {
			case rel.Err != nil:
				reply = mux.AppendErrorReply(nil, w.sid, w.seq, mux.AsError(engineRefused(rel.Err)))
			default:
				body := mux.EncodeBody(mux.SendResp{Room: r.name, Epoch: r.log.Epoch(), Offset: rel.Off, TS: rel.TS, Dup: rel.Dup})
				reply = mux.AppendReply(nil, w.sid, w.seq, body)
				if !rel.Dup {
					s.counters.messagesIn.Add(1)
				}
			}
			out.push(w.c, outItem{head: reply})
		}
	}
	if rel.Reset {
		r.reset(s)
		return
	}
	if rel.Body == nil {
		return
	}
	for mc, mem := range r.members {
		out.push(mc, outItem{head: pushMsg, sids: mem.sids, body: rel.Body})
	}
	s.counters.messagesOut.Add(int64(r.count))
}

// wait makes a sender wait for the outcome of its publish. Called under
// r.mu.
func (r *room) wait(w waiter) { r.waiting = append(r.waiting, w) }

// popWaiter returns and forgets the sender waiting for ticket: usually
// the oldest (outcomes come in the order of the publishes, but for a
// retry waiting for its first copy). Called under r.mu.
func (r *room) popWaiter(ticket uint64) (waiter, bool) {
	for i := r.whead; i < len(r.waiting); i++ {
		if r.waiting[i].ticket != ticket {
			continue
		}
		w := r.waiting[i]
		if i == r.whead {
			r.waiting[i] = waiter{}
			r.whead++
		} else {
			copy(r.waiting[i:], r.waiting[i+1:])
			r.waiting[len(r.waiting)-1] = waiter{}
			r.waiting = r.waiting[:len(r.waiting)-1]
		}
		if r.whead == len(r.waiting) { // none left: reuse the array
			r.waiting, r.whead = r.waiting[:0], 0
			if cap(r.waiting) > 64 {
				r.waiting = nil // a burst: let its array go
			}
		}
		return w, true
	}
	return waiter{}, false
}

// goAwayRoomReset is the goaway reason of the members of a room whose
// log was reset: they reconnect and resume, and are told to reset.
const goAwayRoomReset = "room_reset"

// reset makes the room's members start again from the log's new state
// (engine.Released.Reset: its history was lost, or what this node missed
// is no longer retained): their connections are told to go away, and they
// resume with a reset. Called under r.mu.
func (r *room) reset(s *Server) {
	s.logger.Warn("room log reset: its members reconnect", "room", r.name, "epoch", r.log.Epoch(), "members", len(r.members))
	for c := range r.members {
		c.goAway(goAwayRoomReset, s.retryHint(), websocket.CloseGoingAway)
	}
}

// ready is the node's Sink.Ready: the room's log has something to take.
// A worker takes it (runWorker, job.ready); rooms made ready before a
// worker gets there are taken in one job.
func (s *Server) ready(name string) {
	r := s.hub.room(name)
	if r == nil || r.ready.Swap(true) {
		return // not open here (adopt takes what it has), or queued already
	}
	s.readyMu.Lock()
	s.readyRooms = append(s.readyRooms, r)
	first := len(s.readyRooms) == 1
	s.readyMu.Unlock()
	if first {
		select {
		case s.jobs <- job{ready: true}:
		case <-s.stopJobs: // no connection is left to push to
		}
	}
}

// takeReady takes the logs of the rooms made ready, on a worker,
// collecting what to write in out.
func (s *Server) takeReady(out *outbox) {
	s.readyMu.Lock()
	rooms := s.readyRooms
	s.readyRooms = nil
	s.readyMu.Unlock()
	for _, r := range rooms {
		r.ready.Store(false) // a Ready from here on queues the room again
		r.mu.Lock()
		r.take(s, out)
		r.mu.Unlock()
	}
}

// engineRefused is the error a command gets when the engine refused what
// it asked (protocol errors of the engine's pass as they are).
func engineRefused(err error) error {
	var me *mux.Error
	switch {
	case errors.As(err, &me):
		return me
	case errors.Is(err, engine.ErrClosed):
		return mux.Errorf(mux.CodeShuttingDown, mux.ErrShuttingDown, "the server is shutting down")
	case errors.Is(err, engine.ErrUnavailable):
		return mux.Errorf(mux.CodeUnavailable, mux.ErrUnavailable, "%v: try again shortly", err)
	}
	return mux.Errorf(mux.CodeInternal, mux.ErrInternal, "%v", err)
}

// roomRefused is engineRefused for a command on room name.
func roomRefused(name string, err error) error {
	if errors.Is(err, engine.ErrUnknownRoom) {
		return unknownRoom(name)
	}
	return engineRefused(err)
}

// queuedBytes returns how many bytes wait in c's queue.
func (c *conn) queuedBytes() int {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	return c.qbytes
}
