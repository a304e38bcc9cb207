package local

import (
	"sync/atomic"

	"imload/mux"
	"imload/server/engine"
)

// log is one room's engine.Log. Its methods run under the node's lock of
// the room, which guards every field but committed (set by the store's
// writer, onCommit).
//
// A published message is assigned the next offset (top) and retained at
// once, in the ring, where a retry of its cid finds it; it becomes visible
// (released) when Take returns it: at the next Take, or, with a durable
// store, at the first Take after its commit. Until then it waits in
// pending, with the tickets of the retries of its cid that wait for it.
type log struct {
	e           *Engine
	name, epoch string
	hist        engine.Ring
	top         uint64    // offset of the newest message published (0: none)
	released    uint64    // offset of the newest message visible (≤ top)
	ticket      uint64    // the last ticket given
	pending     []pending // published, not visible yet: offsets released+1 … top, in order
	// outcomes waits for the next Take: outcomes that need no release
	// (a retry of a visible message).
	outcomes []engine.Released
	// committed is the newest offset the store has committed (durable).
	committed atomic.Uint64
}

// pending is a published message waiting to become visible.
type pending struct {
	ticket uint64
	off    uint64
	ts     int64
	body   []byte   // its push body, encoded once
	dups   []uint64 // tickets of retries of its cid meanwhile
}

func (e *Engine) newLog(name, epoch string) *log {
	return &log{e: e, name: name, epoch: epoch}
}

// Epoch is the room's epoch.
func (l *log) Epoch() string { return l.epoch }

// Top is the offset of the newest visible message.
func (l *log) Top() uint64 { return l.released }

// First is the offset of the oldest visible message retained (0: none).
func (l *log) First() uint64 {
	if f := l.hist.First(); f != 0 && f <= l.released {
		return f
	}
	return 0
}

// Resumable reports whether a client at offset after of epoch can be
// given exactly the rest.
func (l *log) Resumable(epoch string, after uint64, max int) bool {
	return epoch == l.epoch && l.hist.Resumable(after, l.released, max)
}

// After returns visible messages after offset after.
func (l *log) After(after uint64, limit int) ([]*engine.Entry, bool) {
	return l.hist.After(after, l.released, limit)
}

// Last returns the newest visible messages.
func (l *log) Last(limit int) ([]*engine.Entry, bool) { return l.hist.Latest(l.released, limit) }

// Before returns the visible messages before offset before.
func (l *log) Before(before uint64, limit int) ([]*engine.Entry, bool) {
	return l.hist.Before(before, l.released, limit)
}

// Expire drops the retained messages older than cutoff.
func (l *log) Expire(cutoff int64) { l.hist.Expire(cutoff) }

// Idle reports whether nothing is retained or waiting.
func (l *log) Idle() bool {
	return l.hist.Len() == 0 && len(l.pending) == 0 && len(l.outcomes) == 0
}

// Publish assigns m the next offset, retains it and queues it to the store
// (a non-blocking enqueue under the room's lock: a room's messages reach
// the store in offset order). A retry of a retained message's cid is not
// appended: its outcome is the first copy's, at once if that one is
// visible, else with it.
func (l *log) Publish(m *engine.Draft) (uint64, error) {
	if m.CID != "" {
		if first := l.hist.Find(m.Who.Name, m.CID); first != nil {
			l.ticket++
			if first.Off > l.released { // waits for its first copy
				p := &l.pending[first.Off-l.pending[0].off]
				p.dups = append(p.dups, l.ticket)
			} else {
				l.outcomes = append(l.outcomes, engine.Released{Ticket: l.ticket, Dup: true, Off: first.Off, TS: first.TS})
			}
			return l.ticket, nil
		}
	}
	msg := mux.Message{Room: l.name, Offset: l.top + 1, Epoch: l.epoch, From: m.Who.Name, Color: m.Who.Color, Display: m.Who.Display, Text: m.Text, TS: m.TS, CID: m.CID}
	if err := l.e.store.Append(msg); err != nil {
		return 0, unavailable(err)
	}
	l.top = msg.Offset
	l.hist.Push(engine.Entry{Off: msg.Offset, TS: msg.TS, Who: m.Who, Data: m.Text + m.CID, CIDLen: uint8(len(m.CID))}, l.e.opts.HistoryMax)
	l.ticket++
	l.pending = append(l.pending, pending{
		ticket: l.ticket, off: msg.Offset, ts: msg.TS,
		body: mux.AppendMessage(make([]byte, 0, 128+len(m.Text)+len(m.CID)), &msg),
	})
	return l.ticket, nil
}

// commit notes that the store has committed the room up to offset off. It
// reports whether messages may now be released. Called by onCommit.
func (l *log) commit(off uint64) bool {
	for {
		old := l.committed.Load()
		if off <= old {
			return false
		}
		if l.committed.CompareAndSwap(old, off) {
			return true
		}
	}
}

// Take releases, in order, the pending messages that may be seen (all of
// them, or with a durable store those committed), each with its outcome
// and then the outcomes of the retries that waited for it, followed by the
// outcomes that needed no release.
func (l *log) Take(dst []engine.Released) []engine.Released {
	limit := l.top
	if l.e.opts.Durable {
		limit = min(limit, l.committed.Load())
	}
	n := 0
	for n < len(l.pending) && l.pending[n].off <= limit {
		p := &l.pending[n]
		l.released = p.off
		dst = append(dst, engine.Released{Ticket: p.ticket, Off: p.off, TS: p.ts, Entry: l.entry(p.off), Body: p.body})
		for _, t := range p.dups {
			dst = append(dst, engine.Released{Ticket: t, Dup: true, Off: p.off, TS: p.ts})
		}
		*p = pending{}
		n++
	}
	switch {
	case n == 0:
	case n == len(l.pending):
		l.pending = l.pending[:0]
		if cap(l.pending) > 64 {
			l.pending = nil // a burst: let its array go
		}
	default:
		l.pending = append(l.pending[:0], l.pending[n:]...)
	}
	if len(l.outcomes) > 0 {
		dst = append(dst, l.outcomes...)
		clear(l.outcomes)
		l.outcomes = l.outcomes[:0]
	}
	return dst
}

// entry returns the retained message at offset off, or nil when it is no
// longer retained (more messages were published meanwhile than the ring
// holds).
func (l *log) entry(off uint64) *engine.Entry {
	f := l.hist.First()
	if f == 0 || off < f || off-f >= uint64(l.hist.Len()) {
		return nil
	}
	return l.hist.At(int(off - f))
}
