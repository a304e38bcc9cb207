package redis

import (
	"fmt"
	"strconv"
	"sync"

	"imload/mux"
	"imload/server/engine"
)

// A log is this node's replica of a room (engine.Log): the room's epoch,
// top and a ring of its retained messages, read from the room's stream
// when the room is opened and kept up to date from the room's channel.
//
// What the node sees (ring, epoch, top) is guarded by the node's lock of
// the room. What the engine's goroutines bring (messages received, the
// outcomes of publishes, a reset) is guarded by mu and waits there until
// Take moves it into the node's view, in offset order: a message that
// arrives after a gap is held until the gap is filled from the stream
// (pub/sub is at most once); a message of another epoch, or a gap whose
// messages are no longer retained, makes the log read the room's newest
// messages again and Take report a Reset.

// log states (log.state).
const (
	opening = iota // its first read is in flight: what arrives waits in early
	live           // up to date as far as it knows
	syncing        // a read of its stream is in flight: what arrives waits in early
	dropped        // the node dropped it
)

// msg is a message as the engine received it.
type msg struct {
	off    uint64
	b      blob
	who    *engine.Author
	node   string // the node that published it
	ticket uint64 // its publish's ticket on that node
	mine   bool   // a publish of this log: its outcome goes with it
}

// pub is a publish of this log waiting for its outcome.
type pub struct {
	who *engine.Author
	b   blob
}

// early is a message that arrived while the log was reading its stream.
type early struct {
	epoch string
	m     msg
}

// snapshot is a room's newest messages, read to reset a log.
type snapshot struct {
	epoch string
	top   uint64
	msgs  []msg
}

type log struct {
	e    *Engine
	name string
	keys roomKeys

	// The node's view, under the node's lock of the room.
	ring  engine.Ring
	epoch string
	top   uint64

	mu       sync.Mutex
	state    int
	rEpoch   string         // the epoch of what was received
	rTop     uint64         // the newest offset received in order
	inbox    []msg          // received in order, not taken yet: (top, rTop]
	held     map[uint64]msg // received after a gap
	early    []early        // received while opening or syncing
	presence []presenceCall // presence changes received while opening
	pend     map[uint64]*pub
	outcomes []engine.Released // outcomes without a message (dups, errors)
	snap     *snapshot         // a reset for the next Take
	signaled bool              // Sink.Ready called since the last Take
	stale    bool              // a read failed: the heartbeat tries again
}

// presenceCall is a presence change to hand the node.
type presenceCall struct {
	p  engine.Present
	in bool
}

// maxEarly bounds what waits in early (and in held): beyond it messages
// are dropped, and the gap they leave is filled from the stream.
func (l *log) maxEarly() int { return 4*l.e.opts.HistoryMax + 1024 }

// Epoch is the room's epoch.
func (l *log) Epoch() string { return l.epoch }

// Top is the offset of the newest visible message.
func (l *log) Top() uint64 { return l.top }

// First is the offset of the oldest retained message (0: none).
func (l *log) First() uint64 { return l.ring.First() }

// Resumable reports whether a client at offset after of epoch can be
// given exactly the rest.
func (l *log) Resumable(epoch string, after uint64, max int) bool {
	return epoch == l.epoch && l.ring.Resumable(after, l.top, max)
}

// After returns the visible messages after offset after.
func (l *log) After(after uint64, limit int) ([]*engine.Entry, bool) {
	return l.ring.After(after, l.top, limit)
}

// Last returns the newest visible messages.
func (l *log) Last(limit int) ([]*engine.Entry, bool) { return l.ring.Latest(l.top, limit) }

// Before returns the visible messages before offset before.
func (l *log) Before(before uint64, limit int) ([]*engine.Entry, bool) {
	return l.ring.Before(before, l.top, limit)
}

// Expire drops the retained messages older than cutoff.
func (l *log) Expire(cutoff int64) { l.ring.Expire(cutoff) }

// Idle reports whether nothing published through the log is waiting and
// nothing waits to be taken.
func (l *log) Idle() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.pend) == 0 && len(l.inbox) == 0 && len(l.outcomes) == 0 && l.snap == nil
}

// Publish queues the send script for m. Its outcome comes through Take:
// with the message, when it arrives (on the room's channel, or from the
// script's answer, whichever comes first), or alone (a dup, an error).
func (l *log) Publish(m *engine.Draft) (uint64, error) {
	e := l.e
	if err := e.Health(); err != nil {
		e.stats.publishRefused.Add(1)
		return 0, err
	}
	b := blob{ts: m.TS, from: m.Who.Name, color: m.Who.Color, display: m.Who.Display, cid: m.CID, text: m.Text}
	minOff := l.top + 1 // a retry of a message this node no longer retains is new
	if l.ring.Len() > 0 {
		minOff = l.ring.First()
	}
	dedup := ""
	if m.CID != "" {
		dedup = dedupField(m.Who.Name, m.CID)
	}
	ticket := e.ticket.Add(1)
	l.mu.Lock()
	if l.pend == nil {
		l.pend = make(map[uint64]*pub)
	}
	l.pend[ticket] = &pub{who: m.Who, b: b}
	l.mu.Unlock()
	o := op{
		sc:   e.sc.send,
		keys: []string{l.keys.meta, l.keys.stream, l.keys.cids, l.keys.channel},
		args: []string{
			l.epoch, e.newEpoch(), strconv.Itoa(e.opts.HistoryMax), e.ttlMS(), dedup,
			strconv.FormatUint(minOff, 10), strconv.FormatInt(m.TS, 10),
			encodeBlob(m.TS, m.Who, m.CID, m.Text), e.opts.Node, strconv.FormatUint(ticket, 10),
		},
		done: func(r rueidisMessage, err error) { l.onSent(ticket, r, err) },
	}
	if !e.shardOf('r', l.name).push(o) {
		l.mu.Lock()
		delete(l.pend, ticket)
		l.mu.Unlock()
		e.stats.publishRefused.Add(1)
		return 0, e.unavailable("send", errQueueFull)
	}
	return ticket, nil
}

// onSent handles the send script's answer for ticket.
func (l *log) onSent(ticket uint64, r rueidisMessage, err error) {
	e := l.e
	var sync, gap bool
	l.mu.Lock()
	p := l.pend[ticket]
	switch {
	case err != nil:
		if p != nil {
			delete(l.pend, ticket)
			l.outcomes = append(l.outcomes, engine.Released{Ticket: ticket, Err: err})
		}
	default:
		a, perr := parseSent(r)
		switch {
		case perr != nil:
			if p != nil {
				delete(l.pend, ticket)
				l.outcomes = append(l.outcomes, engine.Released{Ticket: ticket, Err: e.unavailable("send", perr)})
			}
		case a.kind == "ok":
			e.stats.published.Add(1)
			if p != nil { // its message has not arrived yet: here it is
				// Not a gap if it comes before the messages published
				// before it: they are on their way on the channel (this
				// answer came on another connection); it waits for them.
				l.recvLocked(a.epoch, msg{off: a.off, b: p.b, node: e.opts.Node, ticket: ticket})
				gap = len(l.held) > 0
			}
		case a.kind == "dup":
			e.stats.dups.Add(1)
			if p != nil {
				delete(l.pend, ticket)
				l.outcomes = append(l.outcomes, engine.Released{Ticket: ticket, Dup: true, Off: a.off, TS: a.ts})
			}
		default: // "epoch": the room was made again since this log read it
			if p != nil {
				delete(l.pend, ticket)
				l.outcomes = append(l.outcomes, engine.Released{Ticket: ticket,
					Err: fmt.Errorf("%w: room %q was reset (its history was lost): send again", engine.ErrUnavailable, l.name)})
			}
			sync = a.epoch != l.rEpoch && l.state == live
		}
	}
	l.mu.Unlock()
	if sync {
		l.sync()
	}
	if gap {
		// Should what comes before it never come on the channel, the
		// heartbeat fills the gap from the stream.
		e.markDirty(l)
	}
	l.notify()
}

// recv hands the log a message received on the room's channel.
func (l *log) recv(epoch string, m msg) {
	l.mu.Lock()
	sync := l.recvLocked(epoch, m)
	l.mu.Unlock()
	if sync {
		l.sync()
	}
	l.notify()
}

// recvLocked adds a message received: to the inbox if it is the next, to
// held after a gap. It reports whether the log must read its stream (a
// gap, or another epoch). Under l.mu.
func (l *log) recvLocked(epoch string, m msg) bool {
	switch l.state {
	case opening, syncing:
		if len(l.early) < l.maxEarly() {
			l.early = append(l.early, early{epoch, m})
		}
		return false
	case dropped:
		return false
	}
	if epoch != l.rEpoch {
		// Older (from before a reset) or newer (the room was made again):
		// the stream says which.
		return !l.stale
	}
	if m.off <= l.rTop {
		return false
	}
	if _, ok := l.held[m.off]; ok {
		return false
	}
	l.match(&m)
	if m.off == l.rTop+1 {
		l.push(m)
		return false
	}
	if l.held == nil {
		l.held = make(map[uint64]msg)
	}
	if len(l.held) < l.maxEarly() {
		l.held[m.off] = m
	}
	return !l.stale
}

// match makes m this log's publish if its ticket is one of pend, and
// gives it its author. Under l.mu.
func (l *log) match(m *msg) {
	if m.node == l.e.opts.Node && m.ticket != 0 {
		if p := l.pend[m.ticket]; p != nil {
			m.mine, m.who = true, p.who
			delete(l.pend, m.ticket)
		}
	}
	if m.who == nil {
		m.who = l.e.author(m.b.from, m.b.color, m.b.display)
	}
}

// push adds the next message to the inbox, and those held after it.
// Under l.mu.
func (l *log) push(m msg) {
	l.inbox = append(l.inbox, m)
	l.rTop = m.off
	for len(l.held) > 0 {
		h, ok := l.held[l.rTop+1]
		if !ok {
			break
		}
		delete(l.held, h.off)
		l.inbox = append(l.inbox, h)
		l.rTop = h.off
	}
	for off := range l.held {
		if off <= l.rTop {
			delete(l.held, off)
		}
	}
}

// notify tells the node (Sink.Ready) that the log has something to take,
// once per Take.
func (l *log) notify() {
	l.mu.Lock()
	need := !l.signaled && l.state != opening && l.state != dropped &&
		(l.snap != nil || len(l.inbox) > 0 || len(l.outcomes) > 0)
	if need {
		l.signaled = true
	}
	l.mu.Unlock()
	if need {
		l.e.sink.Ready(l.name)
	}
}

// Take moves what arrived into the node's view, in order: a reset first
// (with the outcomes of this log's publishes it made visible), then each
// message with the outcome of its publish, then the outcomes without a
// message whose first copy is visible.
func (l *log) Take(dst []engine.Released) []engine.Released {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.signaled = false
	if s := l.snap; s != nil {
		l.snap = nil
		l.ring = engine.Ring{}
		for _, m := range s.msgs {
			l.ring.Push(l.entry(&m), l.e.opts.HistoryMax)
		}
		l.epoch, l.top = s.epoch, s.top
		dst = append(dst, engine.Released{Reset: true, Off: s.top})
		for _, m := range s.msgs {
			if m.mine {
				dst = append(dst, engine.Released{Ticket: m.ticket, Off: m.off, TS: m.b.ts})
			}
		}
	}
	if n := len(l.inbox); n > 0 {
		for i := range l.inbox {
			l.ring.Push(l.entry(&l.inbox[i]), l.e.opts.HistoryMax)
		}
		first, size := l.ring.First(), uint64(l.ring.Len())
		for i := range l.inbox {
			m := &l.inbox[i]
			rel := engine.Released{Off: m.off, TS: m.b.ts, Body: l.body(m)}
			if m.mine {
				rel.Ticket = m.ticket
			}
			if m.off >= first && m.off-first < size {
				rel.Entry = l.ring.At(int(m.off - first))
			}
			dst = append(dst, rel)
		}
		l.top = l.inbox[n-1].off
		clear(l.inbox)
		l.inbox = l.inbox[:0]
		if cap(l.inbox) > 256 {
			l.inbox = nil // a burst: let its array go
		}
	}
	if len(l.outcomes) > 0 {
		kept := l.outcomes[:0]
		for _, o := range l.outcomes {
			if o.Dup && o.Off > l.top {
				kept = append(kept, o) // its first copy is not visible yet
				continue
			}
			dst = append(dst, o)
		}
		clear(l.outcomes[len(kept):])
		l.outcomes = kept
	}
	return dst
}

// entry is m as the ring keeps it.
func (l *log) entry(m *msg) engine.Entry {
	return engine.Entry{Off: m.off, TS: m.b.ts, Who: m.who, Data: m.b.text + m.b.cid, CIDLen: uint8(len(m.b.cid))}
}

// body is m's push body.
func (l *log) body(m *msg) []byte {
	mm := mux.Message{Room: l.name, Offset: m.off, Epoch: l.epoch, From: m.who.Name, Color: m.who.Color, Display: m.who.Display, Text: m.b.text, TS: m.b.ts, CID: m.b.cid}
	return mux.AppendMessage(make([]byte, 0, 128+len(l.name)+len(m.b.text)+len(m.b.cid)), &mm)
}
