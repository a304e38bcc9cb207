package loadgen

import (
	"sync"
	"sync/atomic"
)

// Content verification: within an epoch an offset names one message. Offsets
// alone cannot see a server that hands one offset to two messages (a crash
// that loses an acknowledged tail and renumbers new messages from the old
// top): a receiver that saw the first drops the second as a duplicate, and
// another receiver gets a different message under the same number. So every
// (room, epoch, offset) the generator meets (send replies, pushes, messages in
// join replies and history pages) is checked against a 64-bit FNV-1a hash of
// (sender name, cid, text): the first record wins, the sender's record
// (its send reply: the generator knows what it sent) is the authority, and
// any other content under that number is a mismatch.
//
// Memory is bounded: per room, one window of recent offsets for each of the
// last two epochs seen. A window grows by doubling up to contentWindow
// offsets; beyond that the oldest offsets are forgotten and a message that
// old is not checked (counted in unchecked, the note content_unchecked).
// 2,048 offsets cover a resume of several seconds at any room rate this
// generator produces; a window at its cap costs 32 KiB.

// contentWindow is the most offsets a room's window keeps per epoch (a
// power of two).
const contentWindow = 2048

// contentEntry is one recorded offset: off (0: empty slot) with its hash;
// sender says the sender's send reply recorded it.
type contentEntry struct {
	off    uint64
	hash   uint64
	sender bool
}

// epochWindow holds the recent offsets of one epoch of a room in a ring
// indexed by offset.
type epochWindow struct {
	epoch string
	ring  []contentEntry // len is a power of two
	top   uint64         // highest offset recorded
	used  uint64         // last use (roomContent.clock), to replace the older epoch
}

type roomContent struct {
	mu    sync.Mutex
	win   [2]epochWindow
	clock uint64
}

// contentTable checks message content per (room, epoch, offset). Its
// methods are safe for concurrent use (one lock per room).
type contentTable struct {
	rooms      []roomContent
	mismatched atomic.Int64 // deliveries (or send replies) whose content differed
	unchecked  atomic.Int64 // offsets older than the window: not checked
}

func newContentTable(rooms int) *contentTable {
	return &contentTable{rooms: make([]roomContent, rooms)}
}

// contentHash hashes what identifies a message's content: sender, cid and
// text (FNV-1a, 64 bits, with a separator between the fields).
func contentHash(from, cid, text []byte) uint64 {
	const (
		offset64 = 14695981039346656037
		prime64  = 1099511628211
	)
	h := uint64(offset64)
	for _, part := range [3][]byte{from, cid, text} {
		for _, c := range part {
			h ^= uint64(c)
			h *= prime64
		}
		h ^= 0xff // not a byte of UTF-8 text: the fields cannot shift into each other
		h *= prime64
	}
	return h
}

// window returns the window of epoch in rc, taking over the least recently
// used one for a new epoch (rc.mu held).
func (rc *roomContent) window(epoch []byte) *epochWindow {
	rc.clock++
	for i := range rc.win {
		if w := &rc.win[i]; w.ring != nil && w.epoch == string(epoch) { // no allocation
			w.used = rc.clock
			return w
		}
	}
	w := &rc.win[0]
	if rc.win[1].used < w.used {
		w = &rc.win[1]
	}
	*w = epochWindow{epoch: string(epoch), ring: make([]contentEntry, 64), used: rc.clock}
	return w
}

// slot returns the entry for off, growing or sliding the window as needed;
// nil when off is older than the window keeps.
func (w *epochWindow) slot(off uint64) *contentEntry {
	if off > w.top {
		for off-w.lowest() >= uint64(len(w.ring)) && len(w.ring) < contentWindow && w.top > 0 {
			w.grow()
		}
		w.top = off
	} else if w.top-off >= uint64(len(w.ring)) {
		return nil
	}
	return &w.ring[off&uint64(len(w.ring)-1)]
}

// lowest returns the oldest offset the window would still hold.
func (w *epochWindow) lowest() uint64 {
	if w.top < uint64(len(w.ring)) {
		return 1
	}
	return w.top - uint64(len(w.ring)) + 1
}

func (w *epochWindow) grow() {
	old := w.ring
	w.ring = make([]contentEntry, 2*len(old))
	for _, e := range old {
		if e.off != 0 {
			w.ring[e.off&uint64(len(w.ring)-1)] = e
		}
	}
}

// check records or compares the content hash h of (room, epoch, off), seen
// by the sender's send reply (sender) or by a receiver. It reports whether it
// matched (true also when first seen, or too old to check).
func (ct *contentTable) check(room int32, epoch []byte, off, h uint64, sender bool) bool {
	if off == 0 || int(room) >= len(ct.rooms) || room < 0 {
		return true
	}
	rc := &ct.rooms[room]
	rc.mu.Lock()
	defer rc.mu.Unlock()
	w := rc.window(epoch)
	e := w.slot(off)
	if e == nil {
		ct.unchecked.Add(1)
		return true
	}
	if e.off != off { // empty, or an older offset that shared the slot
		*e = contentEntry{off: off, hash: h, sender: sender}
		return true
	}
	if e.hash == h {
		e.sender = e.sender || sender
		return true
	}
	ct.mismatched.Add(1)
	if sender && !e.sender {
		// The sender knows what it sent: it is the reference from now on.
		e.hash, e.sender = h, true
	}
	return false
}
