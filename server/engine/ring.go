package engine

import "hash/maphash"

// Ring is the retained messages of one room, oldest first, with offsets
// increasing by one: at most max entries (given to each Push), in a slice
// that grows by a quarter up to max and then wraps, so a room of steady
// traffic keeps one array of its size. It also indexes the client ids
// (cid) of the retained messages, so that a send retried with the same
// sender and cid is found (Find) for as long as its first copy is
// retained. A log keeps one (the local engine's log, the Redis engine's
// replica of a room's stream); the zero value is an empty ring.
//
// A Ring holds every message pushed into it, visible or not: the windows
// (After, Latest, Before, Resumable) take the newest offset the caller may
// show (top) and never go past it.
type Ring struct {
	ring  []Entry
	start int // index of the oldest entry in ring
	n     int // entries in ring
	// cids maps cidHash(sender, cid) to the offset of the retained message
	// sent with them; made (with seed) on the first message with a cid.
	cids map[uint64]uint64
	seed maphash.Seed
}

// Len is the number of retained messages.
func (r *Ring) Len() int { return r.n }

// At returns the i-th retained message, oldest first (0 ≤ i < Len).
func (r *Ring) At(i int) *Entry { return &r.ring[(r.start+i)%len(r.ring)] }

// First is the offset of the oldest retained message (0: none).
func (r *Ring) First() uint64 {
	if r.n == 0 {
		return 0
	}
	return r.At(0).Off
}

// Push appends e, the message after the newest (or the first, in an empty
// ring), dropping the oldest when the ring holds max, and indexes its cid.
func (r *Ring) Push(e Entry, max int) {
	if e.CIDLen > 0 {
		if r.cids == nil {
			r.cids, r.seed = make(map[uint64]uint64), maphash.MakeSeed()
		}
		r.cids[r.cidHash(e.Who.Name, e.CID())] = e.Off
	}
	switch {
	case r.n >= max && r.n > 0: // full: overwrite the oldest
		old := r.At(0)
		r.forgetCID(old)
		*old = e
		r.start = (r.start + 1) % len(r.ring)
	case r.n < len(r.ring): // room in the slice (after expiry)
		r.ring[(r.start+r.n)%len(r.ring)] = e
		r.n++
	default: // slice full but below max: straighten and grow
		if r.start != 0 || cap(r.ring) == len(r.ring) {
			// Grow by a quarter, not append's doubling: history is most of
			// what a busy node keeps, and a ring stays at its size.
			lin := make([]Entry, r.n, min(max, r.n+r.n/4+8))
			for i := range r.n {
				lin[i] = *r.At(i)
			}
			r.ring, r.start = lin, 0
		}
		r.ring = append(r.ring, e)
		r.n++
	}
}

// Expire drops the messages older than cutoff (Unix ms), oldest first; it
// stops at the first message that is not (messages are in time order).
func (r *Ring) Expire(cutoff int64) {
	for r.n > 0 && r.At(0).TS < cutoff {
		e := r.At(0)
		r.forgetCID(e)
		*e = Entry{}
		r.start = (r.start + 1) % len(r.ring)
		r.n--
	}
	if r.n == 0 {
		r.start = 0
		r.ring = r.ring[:0]
	}
}

// cidHash hashes a sender's name and client id (never 0). Retained
// messages are found by it rather than by the two strings: a hash costs
// no allocation and no string per message, and Find checks the message
// it finds, so a collision can never take one message for another.
func (r *Ring) cidHash(from, cid string) uint64 {
	var h maphash.Hash
	h.SetSeed(r.seed)
	h.WriteString(from)
	h.WriteByte(0)
	h.WriteString(cid)
	return h.Sum64() | 1
}

func (r *Ring) forgetCID(e *Entry) {
	if e.CIDLen == 0 || r.cids == nil {
		return
	}
	if h := r.cidHash(e.Who.Name, e.CID()); r.cids[h] == e.Off {
		delete(r.cids, h)
	}
}

// Find returns the retained message that from sent with client id cid
// (visible or not), or nil: a send retried after a lost reply.
func (r *Ring) Find(from, cid string) *Entry {
	if r.cids == nil || r.n == 0 {
		return nil
	}
	off, ok := r.cids[r.cidHash(from, cid)]
	if !ok || off < r.First() || off-r.First() >= uint64(r.n) {
		return nil
	}
	e := r.At(int(off - r.First()))
	if e.Who.Name != from || e.CID() != cid {
		return nil // another message whose hash collides
	}
	return e
}

// visible returns how many of the oldest messages have an offset ≤ top.
func (r *Ring) visible(top uint64) int {
	if r.n == 0 || top < r.First() {
		return 0
	}
	return min(r.n, int(top-r.First()+1))
}

// After returns the messages with offset > after and ≤ top, at most limit
// of them (oldest first), and whether more remain up to top.
func (r *Ring) After(after, top uint64, limit int) ([]*Entry, bool) {
	n := r.visible(top)
	if n == 0 || after >= top {
		return nil, false
	}
	i := 0
	if f := r.First(); after >= f {
		i = int(after - f + 1)
	}
	out := make([]*Entry, 0, max(0, min(limit, n-i)))
	for ; i < n && len(out) < limit; i++ {
		out = append(out, r.At(i))
	}
	return out, i < n
}

// Latest returns the newest limit messages up to top, oldest first, and
// whether older ones remain.
func (r *Ring) Latest(top uint64, limit int) ([]*Entry, bool) {
	n := r.visible(top)
	k := max(0, min(limit, n))
	out := make([]*Entry, 0, k)
	for i := n - k; i < n; i++ {
		out = append(out, r.At(i))
	}
	return out, n > k
}

// Before returns the limit messages before offset before (and ≤ top),
// oldest first, and whether older ones remain.
func (r *Ring) Before(before, top uint64, limit int) ([]*Entry, bool) {
	n := r.visible(top)
	if n == 0 || before <= r.First() {
		return nil, false
	}
	end := n
	if before <= top {
		end = int(before - r.First())
	}
	begin := max(0, end-limit)
	out := make([]*Entry, 0, end-begin)
	for i := begin; i < end; i++ {
		out = append(out, r.At(i))
	}
	return out, begin > 0
}

// Resumable reports whether a client that has every message up to offset
// after can be given exactly the rest up to top: after ≤ top, and the
// messages after it are retained and at most max of them.
func (r *Ring) Resumable(after, top uint64, max int) bool {
	if after > top {
		return false
	}
	if after == top {
		return true
	}
	return r.visible(top) > 0 && after+1 >= r.First() && top-after <= uint64(max)
}
