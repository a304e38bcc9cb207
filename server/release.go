package server

import (
	"errors"

	"imload/mux"
	"imload/server/store"
)

// Releasing messages. A message is released when it may be seen: its send
// is acknowledged, it is pushed to the room's members, and history and join
// replies show it. Without a durable store (memory, or --durability
// relaxed) a message is released as it is sent. On a durable server it is
// released once the store has committed it (group commit: one transaction
// and one fsync for everything queued meanwhile), so nothing anyone has
// seen can be lost by a crash, and a restart keeps the room's epoch and
// offsets.
//
// The send queues the message to the store under the room's lock (a
// non-blocking enqueue, so a room's messages reach the store in offset
// order) and keeps it in room.unreleased. After each commit the store's
// writer reports the newest committed offset of every room it appended to
// (onCommit); a worker then releases each room's messages up to that
// offset, in order, and writes what that queued. Commits are in queue
// order, so a commit of offset n means every offset before n is committed
// too, and releasing "up to n" is right whichever worker gets there first.

// pendingSend is a sent message waiting to be released: its push body and
// who to answer.
type pendingSend struct {
	off  uint64
	ts   int64
	body []byte // the msg push body, encoded once
	by   *conn  // the sender's connection
	sid  uint32
	seq  uint64
	dups []waiter // retries of the same cid meanwhile, answered dup:true
}

// waiter is a command waiting for a reply: a retry of a send whose first
// copy is not released yet.
type waiter struct {
	c   *conn
	sid uint32
	seq uint64
}

// releaseJob releases the messages of room r up to off (in epoch).
type releaseJob struct {
	r     *room
	epoch string
	off   uint64
}

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

// publish releases p, the oldest unreleased message of r: the sender's
// reply (and those of its retries), then a push to every member. Called
// under r.mu.
func (r *room) publish(p *pendingSend, out *outbox, ct *counters) {
	r.released = p.off
	reply := mux.EncodeBody(mux.SendResp{Room: r.name, Epoch: r.epoch, Offset: p.off, TS: p.ts})
	out.push(p.by, outItem{head: mux.AppendReply(nil, p.sid, p.seq, reply)})
	if len(p.dups) > 0 {
		dup := mux.EncodeBody(mux.SendResp{Room: r.name, Epoch: r.epoch, Offset: p.off, TS: p.ts, Dup: true})
		for _, w := range p.dups {
			out.push(w.c, outItem{head: mux.AppendReply(nil, w.sid, w.seq, dup)})
		}
	}
	for mc, mem := range r.members {
		out.push(mc, outItem{head: pushMsg, sids: mem.sids, body: p.body})
	}
	ct.messagesOut.Add(int64(r.count))
}

// releaseUpTo releases, in order, r's messages up to offset off of epoch
// (a commit of an older epoch of the room releases nothing). Called under
// r.mu.
func (r *room) releaseUpTo(epoch string, off uint64, out *outbox, ct *counters) {
	if epoch != r.epoch {
		return
	}
	n := 0
	for n < len(r.unreleased) && r.unreleased[n].off <= off {
		r.publish(&r.unreleased[n], out, ct)
		r.unreleased[n] = pendingSend{}
		n++
	}
	if n == 0 {
		return
	}
	if n == len(r.unreleased) {
		r.unreleased = r.unreleased[:0]
		if cap(r.unreleased) > 64 {
			r.unreleased = nil // a burst: let its array go
		}
		return
	}
	r.unreleased = append(r.unreleased[:0], r.unreleased[n:]...)
}

// waitRelease makes w wait for the release of unreleased offset off (a
// retry of a send not yet committed). Called under r.mu.
func (r *room) waitRelease(off uint64, w waiter) {
	if len(r.unreleased) == 0 || off < r.unreleased[0].off {
		return
	}
	if i := int(off - r.unreleased[0].off); i < len(r.unreleased) {
		p := &r.unreleased[i]
		p.dups = append(p.dups, w)
	}
}

// onCommit is the store's commit callback (on its writer goroutine): it has
// a worker release what was committed. It waits while the workers are
// behind (the store's queue then fills and senders are told 503), and
// drops the jobs once the workers have stopped (no connection is left).
func (s *Server) onCommit(cs []store.Committed) {
	jobs := make([]releaseJob, 0, len(cs))
	for _, c := range cs {
		if r := s.hub.room(c.Room); r != nil {
			jobs = append(jobs, releaseJob{r: r, epoch: c.Epoch, off: c.Offset})
		}
	}
	if len(jobs) == 0 {
		return
	}
	select {
	case s.releases <- jobs:
	case <-s.stopReleases:
	}
}

// release runs release jobs on a worker, collecting what to write in out.
func (s *Server) release(jobs []releaseJob, out *outbox) {
	for _, j := range jobs {
		j.r.mu.Lock()
		j.r.releaseUpTo(j.epoch, j.off, out, &s.counters)
		j.r.mu.Unlock()
	}
}

// storeRefused is the error a command gets when the store refused the
// change it needs.
func storeRefused(err error) error {
	if errors.Is(err, store.ErrClosed) {
		return mux.Errorf(mux.CodeShuttingDown, mux.ErrShuttingDown, "the server is shutting down")
	}
	return mux.Errorf(mux.CodeUnavailable, mux.ErrUnavailable, "the history store is not keeping up: try again shortly")
}

// queuedBytes returns how many bytes wait in c's queue.
func (c *conn) queuedBytes() int {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	return c.qbytes
}
