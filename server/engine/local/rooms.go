package local

import (
	"context"
	"sync"
	"time"

	"imload/mux"
	"imload/server/engine"
	"imload/server/store"
)

// rooms is the engine's table of rooms: every room that exists, by name.
// A room exists from its Open with create (or its load at start) until
// the node drops it; then its deletion waits in a backlog that the feeder
// hands the store a few at a time.
type rooms struct {
	mu       sync.Mutex
	m        map[string]*log
	retained []string // the rooms loaded at start, for Retained

	// delMu guards toDelete: rooms dropped, for the store to forget.
	delMu    sync.Mutex
	toDelete []deletion
}

// deletion is a dropped room (or conversation: dm) that the store is
// still to forget.
type deletion struct {
	name, epoch string
	dm          bool
}

// load fills the table with the rooms of the store: the messages within
// HistoryAge, a run of consecutive offsets. A room left without messages
// is deleted (its last offset is unknown: a later join makes it anew with
// a new epoch).
func (e *Engine) load(ctx context.Context) error {
	loaded, err := e.store.Load(ctx)
	if err != nil {
		return err
	}
	cutoff := e.opts.Now().Add(-e.opts.HistoryAge).UnixMilli()
	authors := make(authorTable) // one per sender, shared by the rooms
	for _, sr := range loaded {
		if !mux.ValidRoom(sr.Name) {
			continue
		}
		l := e.newLog(sr.Name, sr.Epoch)
		for i := range sr.Messages {
			m := &sr.Messages[i]
			if m.TS < cutoff || (l.top != 0 && m.Offset != l.top+1) {
				continue
			}
			l.hist.Push(authors.entry(m), e.opts.HistoryMax)
			l.top, l.released = m.Offset, m.Offset
		}
		if l.hist.Len() == 0 {
			_ = e.store.DeleteRoom(sr.Name, sr.Epoch)
			continue
		}
		e.rooms.m[sr.Name] = l
		e.rooms.retained = append(e.rooms.retained, sr.Name)
	}
	return nil
}

// Retained calls fn with the name of every room loaded from the store.
func (e *Engine) Retained(fn func(name string)) {
	e.rooms.mu.Lock()
	names := e.rooms.retained
	e.rooms.retained = nil
	e.rooms.mu.Unlock()
	for _, n := range names {
		fn(n)
	}
}

// Open gives the room's log; with create, a room that does not exist is
// made, with a new epoch, and recorded in the store (a non-blocking
// enqueue: a full queue fails the Open with engine.ErrUnavailable).
func (e *Engine) Open(name string, create bool, done func(engine.Opened, error)) {
	e.rooms.mu.Lock()
	l := e.rooms.m[name]
	if l == nil {
		if !create {
			e.rooms.mu.Unlock()
			done(engine.Opened{}, engine.ErrUnknownRoom)
			return
		}
		l = e.newLog(name, randomID(6))
		// Queued under the lock, so that the creations of a room reach
		// the store in their order.
		if err := e.store.CreateRoom(name, l.epoch); err != nil {
			e.rooms.mu.Unlock()
			done(engine.Opened{}, unavailable(err))
			return
		}
		e.rooms.m[name] = l
	}
	e.rooms.mu.Unlock()
	done(engine.Opened{Log: l}, nil)
}

// Drop forgets the room (a later Open makes it anew, with a new epoch) and
// queues its deletion from the store.
func (e *Engine) Drop(name string, l engine.Log) {
	e.rooms.mu.Lock()
	ll, ok := l.(*log)
	if !ok || e.rooms.m[name] != ll {
		e.rooms.mu.Unlock()
		return
	}
	delete(e.rooms.m, name)
	e.rooms.mu.Unlock()
	e.rooms.delMu.Lock()
	e.rooms.toDelete = append(e.rooms.toDelete, deletion{name: name, epoch: ll.epoch})
	e.rooms.delMu.Unlock()
}

// Who answers for a room this node has not opened: with one node, a room
// that exists is open, so there is nobody to list (an unknown room is
// engine.ErrUnknownRoom).
func (e *Engine) Who(room string, done func([]engine.Present, error)) {
	e.rooms.mu.Lock()
	l := e.rooms.m[room]
	e.rooms.mu.Unlock()
	if l == nil {
		done(nil, engine.ErrUnknownRoom)
		return
	}
	done(nil, nil)
}

// SetPresent does nothing: there is no other node to tell.
func (e *Engine) SetPresent(string, engine.Author, bool) {}

// onCommit is the store's commit callback (on its writer goroutine): it
// notes the newest committed offset in each room's log and tells the node
// which rooms have messages to take. It waits while the node's workers are
// behind (Sink.Ready may), and with them the store's queue fills.
func (e *Engine) onCommit(cs []store.Committed) {
	var ready []string
	dms := false
	e.rooms.mu.Lock()
	for _, c := range cs {
		if c.DM {
			dms = true
			continue
		}
		if l := e.rooms.m[c.Room]; l != nil && l.epoch == c.Epoch && l.commit(c.Offset) {
			ready = append(ready, c.Room)
		}
	}
	e.rooms.mu.Unlock()
	if dms {
		e.onCommitDMs(cs)
	}
	if e.sink == nil {
		return
	}
	for _, name := range ready {
		e.sink.Ready(name)
	}
}

// maxDeletionsPerFeed is how many deletions the feeder hands the store at
// a time (every deletionFeedEvery): a mass expiry of rooms reaches the
// disk at a pace that leaves the store's transactions short for messages.
const (
	maxDeletionsPerFeed = 256
	deletionFeedEvery   = 100 * time.Millisecond
)

// feedDeletions is the goroutine that hands the store the deletions of
// dropped rooms, until Close.
func (e *Engine) feedDeletions() {
	defer close(e.done)
	t := time.NewTicker(deletionFeedEvery)
	defer t.Stop()
	lastSweep := time.Now()
	for {
		select {
		case <-e.stop:
			return
		case now := <-t.C:
			if now.Sub(lastSweep) >= dmSweepEvery {
				lastSweep = now
				e.sweepDMs()
			}
			e.feedOnce()
		}
	}
}

// feedOnce hands the store the next deletions; what the store refuses
// (its queue is busy) waits for the next feed. The backlog holds at most
// the rooms the node held.
func (e *Engine) feedOnce() {
	e.rooms.delMu.Lock()
	defer e.rooms.delMu.Unlock()
	n := 0
	for n < len(e.rooms.toDelete) && n < maxDeletionsPerFeed {
		d := e.rooms.toDelete[n]
		del := e.store.DeleteRoom
		if d.dm {
			del = e.store.DeleteConv
		}
		if del(d.name, d.epoch) != nil {
			break
		}
		n++
	}
	if n == 0 {
		return
	}
	rest := copy(e.rooms.toDelete, e.rooms.toDelete[n:])
	clear(e.rooms.toDelete[rest:])
	e.rooms.toDelete = e.rooms.toDelete[:rest]
	if rest == 0 && cap(e.rooms.toDelete) > 4096 {
		e.rooms.toDelete = nil // a mass expiry: let its array go
	}
}

// authorTable interns the authors of the messages a load reads: one
// Author per sender (name, colour and display name), shared by its
// entries.
type authorTable map[engine.Author]*engine.Author

// entry returns m as a retained entry, its author shared.
func (t authorTable) entry(m *mux.Message) engine.Entry {
	k := engine.Author{Name: m.From, Color: m.Color, Display: m.Display}
	who := t[k]
	if who == nil {
		who = &k
		t[k] = who
	}
	return engine.Entry{Off: m.Offset, TS: m.TS, Who: who, Data: m.Text + m.CID, CIDLen: uint8(len(m.CID))}
}
