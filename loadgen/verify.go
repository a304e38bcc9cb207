package loadgen

import (
	"sync"
	"sync/atomic"
	"time"

	"imload/reports"
)

// Verification of room messages.
//
// The server numbers the messages of a room (offsets 1, 2, … within an
// epoch). A tab session that joined a room when its top was F must receive
// every offset above F, exactly once and in increasing order, for as long as
// it is a member, across reconnects (it resumes from its last offset). So each
// (tab incarnation, room) keeps a roomTrack: F, the epoch, and the set of
// offsets received (a list of ranges; normally a single one). At the end of the
// tab's membership the track is closed at an upper bound T and counted:
// expected T−F, delivered = offsets received in (F, T], lost = the rest.
//
//   - still a member at the end of the run: T is the room's top, the highest
//     offset the generator saw for that room (in send replies and deliveries;
//     every sender is a tab of this run, and the drain waits for every reply);
//   - closed on purpose (tab churn), or the browser gave up, or the epoch
//     changed (the server lost the room's history): T is the highest offset
//     the tab received, since what the server would have sent after is not
//     knowable from the client side. Losses before that point still count.
//
// Duplicates (an offset received twice) and reorders (an offset below one
// already received, arriving for the first time) are counted as they happen.

// span is an inclusive range of offsets.
type span struct{ lo, hi uint64 }

// rangeSet is a set of offsets kept as sorted, disjoint, non-adjacent spans.
type rangeSet []span

// add inserts o and reports whether it was already present.
func (rs *rangeSet) add(o uint64) (dup bool) {
	s := *rs
	n := len(s)
	// Fast path: extend or follow the last span.
	if n > 0 {
		last := &s[n-1]
		switch {
		case o == last.hi+1:
			last.hi = o
			return false
		case o > last.hi+1:
			*rs = append(s, span{o, o})
			return false
		case o >= last.lo:
			return true
		}
	} else {
		*rs = append(s, span{o, o})
		return false
	}
	// General case: find the first span with hi+1 >= o.
	i := 0
	for i < n && s[i].hi+1 < o {
		i++
	}
	if i < n && o >= s[i].lo && o <= s[i].hi {
		return true
	}
	switch {
	case i < n && o+1 == s[i].lo: // extend span i down
		s[i].lo = o
		if i > 0 && s[i-1].hi+1 == o {
			s[i-1].hi = s[i].hi
			s = append(s[:i], s[i+1:]...)
		}
	case i < n && s[i].hi+1 == o: // extend span i up
		s[i].hi = o
		if i+1 < n && s[i+1].lo == o+1 {
			s[i].hi = s[i+1].hi
			s = append(s[:i+1], s[i+2:]...)
		}
	default: // new span before i
		s = append(s, span{})
		copy(s[i+1:], s[i:])
		s[i] = span{o, o}
	}
	*rs = s
	return false
}

// countIn returns how many offsets in (lo, hi] the set holds.
func (rs rangeSet) countIn(lo, hi uint64) int64 {
	var n int64
	for _, s := range rs {
		a, b := max(s.lo, lo+1), min(s.hi, hi)
		if a <= b {
			n += int64(b - a + 1)
		}
	}
	return n
}

// max returns the highest offset in the set (0 if empty).
func (rs rangeSet) maxOffset() uint64 {
	if len(rs) == 0 {
		return 0
	}
	return rs[len(rs)-1].hi
}

// roomTrack is one tab incarnation's membership of one room.
type roomTrack struct {
	room   int32
	joined bool   // a join reply was received (from is valid)
	paging bool   // fetching missed messages with history after a resume
	epoch  string // epoch of from
	from   uint64 // top when the tab joined: offsets above it are expected
	got    rangeSet
}

// last returns the offset to resume from.
func (t *roomTrack) last() uint64 {
	return max(t.from, t.got.maxOffset())
}

// receive records offset o and classifies it.
func (t *roomTrack) receive(o uint64) (res recvResult) {
	if o <= t.from {
		return recvOld
	}
	top := t.got.maxOffset()
	if t.got.add(o) {
		return recvDup
	}
	if o < top && !t.paging {
		return recvReordered
	}
	return recvOK
}

type recvResult uint8

const (
	recvOK        recvResult = iota
	recvDup                  // already received
	recvReordered            // first copy, but after a later offset
	recvOld                  // at or below the join point: history, not a delivery
)

// verifier accumulates the outcome of room-message verification over a run.
// Its methods are safe for concurrent use.
type verifier struct {
	expected, delivered, lost  atomic.Int64
	duplicated, reordered      atomic.Int64
	deliveredPush, deliveredRe atomic.Int64 // by push, by resume/history fetch
	excusedTracks              atomic.Int64 // tracks closed early (churn, give-up, epoch change)
}

// close counts a finished track with upper bound to.
func (v *verifier) close(t *roomTrack, to uint64) {
	if !t.joined || to <= t.from {
		return
	}
	exp := int64(to - t.from)
	got := t.got.countIn(t.from, to)
	v.expected.Add(exp)
	v.delivered.Add(got)
	if exp > got {
		v.lost.Add(exp - got)
	}
}

func (v *verifier) delivery() reports.Delivery {
	return reports.Delivery{
		Expected:   v.expected.Load(),
		Delivered:  v.delivered.Load(),
		Lost:       v.lost.Load(),
		Duplicated: v.duplicated.Load(),
		Reordered:  v.reordered.Load(),
	}
}

// ---- private messages ----

// dmKey identifies a private message by its sender tab and the sender's
// sequence number (carried in the text header).
type dmKey struct {
	sender uint32 // global tab id
	seq    uint32
}

// dmRec is what the generator knows of one private message.
type dmRec struct {
	expected  int32    // sessions it was pushed to (from the reply), -1 = no reply
	recv      []uint64 // receiving session ids, to find duplicates
	disrupted [2]uint32
	sentAt    int64 // ns since start
	sender    *browser
	target    *browser
}

// dmTracker verifies private messages: each DM must reach as many sessions
// as the server says it pushed it to (the reply's "sessions": every session
// of the target user and the sender's other tabs), each exactly once. A DM
// whose sender or target browser lost a socket or churned a tab between the
// send and the end is excused (DMs are live only, not resumed).
type dmTracker struct {
	mu   sync.Mutex
	recs map[dmKey]*dmRec
	dup  int64
}

func newDMTracker() *dmTracker { return &dmTracker{recs: make(map[dmKey]*dmRec)} }

func (d *dmTracker) sent(k dmKey, sender, target *browser, now int64) {
	d.mu.Lock()
	d.recs[k] = &dmRec{expected: -1, sender: sender, target: target, sentAt: now,
		disrupted: [2]uint32{sender.disrupt.Load(), target.disrupt.Load()}}
	d.mu.Unlock()
}

func (d *dmTracker) replied(k dmKey, sessions int) {
	d.mu.Lock()
	if r := d.recs[k]; r != nil {
		r.expected = int32(sessions)
	}
	d.mu.Unlock()
}

// received records a delivery to session id rcv and reports whether it was
// the first copy for that session and a DM of this run.
func (d *dmTracker) received(k dmKey, rcv uint64) (first bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	r := d.recs[k]
	if r == nil {
		return false
	}
	for _, x := range r.recv {
		if x == rcv {
			d.dup++
			return false
		}
	}
	r.recv = append(r.recv, rcv)
	return true
}

// dmExcuseWindow is how long before a DM's send a disruption still excuses
// its loss.
const dmExcuseWindow = 3 * time.Second

// dmOutcome is the end result of DM verification.
type dmOutcome struct {
	reports.Delivery
	Unconfirmed int64 // no reply (socket lost with the command in flight)
	Excused     int64 // losses excused by a disruption of sender or target
}

func (d *dmTracker) outcome() dmOutcome {
	d.mu.Lock()
	defer d.mu.Unlock()
	var o dmOutcome
	o.Duplicated = d.dup
	for _, r := range d.recs {
		got := int64(len(r.recv))
		if r.expected < 0 {
			o.Unconfirmed++
			o.Delivered += got
			continue
		}
		exp := int64(r.expected)
		o.Expected += exp
		o.Delivered += min(got, exp)
		if got < exp {
			// Excused when either browser lost a socket or churned a tab
			// after the send, or shortly before it (the server may still
			// have counted, and pushed to, a session of the dead socket).
			recent := r.sentAt - int64(dmExcuseWindow)
			if r.sender.disrupt.Load() != r.disrupted[0] || r.target.disrupt.Load() != r.disrupted[1] ||
				r.sender.lastDisrupt.Load() >= recent || r.target.lastDisrupt.Load() >= recent {
				o.Excused += exp - got
			} else {
				o.Lost += exp - got
			}
		}
	}
	return o
}
