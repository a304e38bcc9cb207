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

// maxIn returns the highest offset in the set that is at most hi (0 if none).
func (rs rangeSet) maxIn(hi uint64) uint64 {
	for i := len(rs) - 1; i >= 0; i-- {
		if rs[i].lo <= hi {
			return min(rs[i].hi, hi)
		}
	}
	return 0
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
	// asked is the offset the last resume or history request asked for
	// messages after (everything up to it was fetched or pushed). While
	// paging, a resume starts from it, not from the highest offset pushed
	// meanwhile.
	asked uint64
	// gone holds the offsets the server said it no longer had (a resume or
	// history answered with reset in the same epoch), as disjoint increasing
	// spans: not expected, counted apart (the server's history bound, not a
	// loss).
	gone []span
	// joinAt is when the join's reply arrived (ns since start): where the
	// reply gives no join point, from is worked out from it at the end of
	// the run (lateStarts).
	joinAt int64
}

// last returns the offset to resume from.
func (t *roomTrack) last() uint64 {
	if t.paging && t.asked > 0 {
		return max(t.from, t.asked)
	}
	return max(t.from, t.got.maxOffset())
}

// goneIn returns how many offsets in (lo, hi] the server declared gone and
// the tab did not receive anyway.
func (t *roomTrack) goneIn(lo, hi uint64) int64 {
	var n int64
	for _, g := range t.gone {
		a, b := max(g.lo, lo+1), min(g.hi, hi)
		if a <= b {
			n += int64(b-a+1) - t.got.countIn(a-1, b)
		}
	}
	return n
}

// receive records offset o, received by push or (push false) in a resume
// reply or history page, and classifies it. Only a push can be reordered:
// fetched messages fill in below what was pushed meanwhile, by design.
func (t *roomTrack) receive(o uint64, push bool) (res recvResult) {
	if o <= t.from {
		return recvOld
	}
	top := t.got.maxOffset()
	if t.got.add(o) {
		return recvDup
	}
	if o < top && push {
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
	lostTail                   atomic.Int64 // of lost: above the last offset received
	duplicated, reordered      atomic.Int64
	deliveredPush, deliveredRe atomic.Int64 // by push, by resume/history fetch
	excusedTracks              atomic.Int64 // tracks closed early (churn, give-up, epoch change)
	gone                       atomic.Int64 // offsets the server no longer had for a resuming tab
}

// close counts a finished track with upper bound to.
func (v *verifier) close(t *roomTrack, to uint64) {
	if !t.joined || to <= t.from {
		return
	}
	gone := t.goneIn(t.from, to)
	exp := int64(to-t.from) - gone
	got := t.got.countIn(t.from, to)
	v.expected.Add(exp)
	v.delivered.Add(got)
	v.gone.Add(gone)
	if exp > got {
		v.lost.Add(exp - got)
		// Missing offsets above the last one received: a backlog the
		// tab had not got when the run ended, not a gap.
		if last := max(t.from, t.got.maxIn(to)); last < to {
			v.lostTail.Add(int64(to-last) - t.goneIn(last, to))
		}
	}
}

func (v *verifier) delivery() reports.Delivery {
	return reports.Delivery{
		Expected:   v.expected.Load(),
		Delivered:  v.delivered.Load(),
		Lost:       v.lost.Load(),
		LostTail:   v.lostTail.Load(),
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

// Classes of a tab of the sender's or target's browser at the send of a DM,
// in the generator's own view (never the server's).
const (
	dmOther uint8 = iota // closed, or a tab the DM is not for (the sender itself)
	dmWant               // attached on a live link: must receive it exactly once
	dmMaybe              // open but attaching (or reconnecting): may receive it
)

// dmTab is one tab of the sender's or target's browser as it was at the
// send, and what it received.
type dmTab struct {
	t     *tab
	id    uint64 // the tab incarnation (browser.gid) at the send
	dis   uint32 // t.disrupt at the send
	class uint8
	got   uint16 // copies received by this incarnation
	late  uint16 // copies received by a later incarnation (reopened since)
}

// dmRec is what the generator knows of one private message.
type dmRec struct {
	// sessions is the server's count from the reply: -1 no reply yet,
	// dmRefused when the server said the target was offline, dmUncounted
	// when it accepted the DM without saying to how many (Centrifugo).
	sessions  int32
	tabs      []dmTab
	sentAt    int64 // ns since start
	sender    *browser
	target    *browser
	senderGid uint32
	disrupted [2]uint32 // sender's and target's browser disrupt counts at the send
}

const (
	dmRefused   = -2
	dmUncounted = -3
)

// dmTracker verifies private messages independently of the server. At the
// send the generator notes, from its own state, which tabs must receive the
// DM: every attached tab of the target's browser on a live link, plus (when
// the protocol says so: imload, not socket.io) every other attached tab of
// the sender's browser. Each of them must receive it exactly once; a copy
// arriving anywhere else is misdelivered. Tabs that were attaching at the
// send may or may not get it (the server may have attached them before or
// after it handled the DM). The server's own count of recipients (the
// reply's "sessions") is only a cross-check. DMs are live only (not
// resumed): a tab whose link or incarnation was disrupted after the send is
// excused.
type dmTracker struct {
	mu           sync.Mutex
	recs         map[dmKey]*dmRec
	toSenderTabs bool // the protocol also delivers to the sender's other tabs
	dup          int64
	misdelivered int64 // copies to a browser the DM was not for, or to the sending tab
}

func newDMTracker(toSenderTabs bool) *dmTracker {
	return &dmTracker{recs: make(map[dmKey]*dmRec), toSenderTabs: toSenderTabs}
}

// dmClassOf classifies t for a DM sent now (t's browser lock held).
func dmClassOf(t *tab) uint8 {
	switch {
	case !t.open:
		return dmOther
	case t.att && t.s.up:
		return dmWant
	default:
		return dmMaybe
	}
}

// appendDMTabs appends the tabs of b as they are now, except skip (the
// sending tab), which is recorded as dmOther. b's lock is held.
func appendDMTabs(dst []dmTab, b *browser, skip *tab) []dmTab {
	for _, t := range b.tabs {
		c := dmClassOf(t)
		if t == skip {
			c = dmOther
		}
		dst = append(dst, dmTab{t: t, id: b.gid(t), dis: t.disrupt.Load(), class: c})
	}
	return dst
}

// sent registers a DM. tabs are the target's tabs and the sender's tabs as
// they were at the send (see appendDMTabs); the sender's are ignored when
// the protocol does not deliver to them.
func (d *dmTracker) sent(k dmKey, sender, target *browser, tabs []dmTab, now int64) {
	r := &dmRec{sessions: -1, sender: sender, target: target, senderGid: k.sender, sentAt: now,
		disrupted: [2]uint32{sender.disrupt.Load(), target.disrupt.Load()}}
	for _, x := range tabs {
		if x.t.b == sender && !d.toSenderTabs {
			continue
		}
		r.tabs = append(r.tabs, x)
	}
	d.mu.Lock()
	d.recs[k] = r
	d.mu.Unlock()
}

// awaiting reports whether a DM the server answered for is still on its
// way to a tab that must receive it (attached on a live link at the send,
// not disrupted since): the drain waits for those as for room messages. A
// DM's push may come after its reply (the target's node gets it through
// Redis), so a DM sent just before the end would otherwise count as lost.
func (d *dmTracker) awaiting() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, r := range d.recs {
		if r.sessions < 0 && r.sessions != dmUncounted { // no reply (yet), or refused
			continue
		}
		for i := range r.tabs {
			x := &r.tabs[i]
			if x.class == dmWant && x.got == 0 && x.late == 0 && x.t.disrupt.Load() == x.dis {
				return true
			}
		}
	}
	return false
}

// replied records the server's answer: sessions it pushed the DM to,
// dmRefused (target offline) or dmUncounted (accepted, no count).
func (d *dmTracker) replied(k dmKey, sessions int) {
	d.mu.Lock()
	if r := d.recs[k]; r != nil {
		r.sessions = int32(sessions)
	}
	d.mu.Unlock()
}

// received records a copy received by tab t of browser rb (rb's lock held)
// and reports whether it is a first copy of a DM of this run, for a tab it
// may go to.
func (d *dmTracker) received(k dmKey, rb *browser, t *tab) (first bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	r := d.recs[k]
	if r == nil {
		return false
	}
	if t.gid == r.senderGid || (rb != r.target && (rb != r.sender || !d.toSenderTabs)) {
		d.misdelivered++
		return false
	}
	for i := range r.tabs {
		x := &r.tabs[i]
		if x.t != t {
			continue
		}
		if x.id != rb.gid(t) { // reopened since the send: a new session
			x.late++
			if x.late > 1 {
				d.dup++
				return false
			}
			return true
		}
		x.got++
		if x.got > 1 {
			d.dup++
			return false
		}
		return true
	}
	d.misdelivered++ // not a tab of that browser at all
	return false
}

// dmExcuseWindow is how long before a DM's send a disruption of the sender's
// or target's browser still excuses a difference between the server's count
// of recipients and the generator's (the server may still count a session of
// a socket that just died).
const dmExcuseWindow = 3 * time.Second

// dmDeadNodeWindow is how long after a node's death (a kill_node fault)
// a DM to or from a browser that had a link to it may still be counted by
// the server with that browser's sessions on the dead node: with the Redis
// engine a session lives 15 s after its node's last refresh
// (server/engine/redis, Options.SessionTTL), and a DM's reply counts the
// sessions Redis holds (docs/scaling.md, "A node dies").
const dmDeadNodeWindow = 16 * time.Second

// dmOutcome is the end result of DM verification.
type dmOutcome struct {
	reports.Delivery
	Unconfirmed   int64 // no reply (socket lost with the command in flight)
	Excused       int64 // expected copies missing at tabs disrupted after the send
	Misdelivered  int64 // copies that reached a session the DM was not for
	Extra         int64 // copies to tabs that were attaching (or reopened) at the send: allowed, not expected
	CountMismatch int64 // server's recipient count outside the generator's view, no disruption around
	CountExcused  int64 // the same, with a disruption around the send
	Refused       int64 // target offline per the server (its count was 0)
}

func (r *dmRec) disruptedAround() bool {
	recent := r.sentAt - int64(dmExcuseWindow)
	dead := r.sentAt - int64(dmDeadNodeWindow)
	return r.sender.disrupt.Load() != r.disrupted[0] || r.target.disrupt.Load() != r.disrupted[1] ||
		r.sender.lastDisrupt.Load() >= recent || r.target.lastDisrupt.Load() >= recent ||
		killedSince(&r.sender.lastNodeKill, dead) || killedSince(&r.target.lastNodeKill, dead)
}

// killedSince says whether a browser's lastNodeKill is at or after t.
func killedSince(last *atomic.Int64, t int64) bool {
	k := last.Load()
	return k != 0 && k >= t
}

func (d *dmTracker) outcome() dmOutcome {
	d.mu.Lock()
	defer d.mu.Unlock()
	var o dmOutcome
	o.Duplicated = d.dup
	o.Misdelivered = d.misdelivered
	for _, r := range d.recs {
		var want, maybe int64
		for i := range r.tabs {
			x := &r.tabs[i]
			switch x.class {
			case dmWant:
				want++
			case dmMaybe:
				maybe++
			}
		}
		if r.sessions == -1 {
			// No reply: the DM may not have reached the server at all.
			o.Unconfirmed++
			for i := range r.tabs {
				if r.tabs[i].class == dmWant && r.tabs[i].got > 0 {
					o.Delivered++
				}
			}
			continue
		}
		if r.sessions == dmRefused {
			o.Refused++
			var targetWant int64
			for i := range r.tabs {
				if x := &r.tabs[i]; x.class == dmWant && x.t.b == r.target {
					targetWant++
				}
			}
			if targetWant > 0 {
				// The server says offline while the generator had the target
				// attached: only a disruption explains it.
				if r.disruptedAround() {
					o.CountExcused++
				} else {
					o.CountMismatch++
				}
			}
			continue
		}
		for i := range r.tabs {
			x := &r.tabs[i]
			disrupted := x.t.disrupt.Load() != x.dis
			switch {
			case x.class == dmWant:
				o.Expected++
				switch {
				case x.got > 0:
					o.Delivered++
				case disrupted:
					o.Excused++
				default:
					o.Lost++
				}
			case x.got > 0:
				// Attaching, disrupted, or not open yet at the send: the
				// generator's snapshot is taken when the DM is queued, and
				// the server may attach the tab (another socket, in per-tab
				// mode) before it handles the DM. A copy to a session of the
				// right user is allowed, not expected.
				o.Extra++
			}
			if x.late > 0 {
				o.Extra++ // reopened after the send, attached before the DM was handled
			}
		}
		if n := int64(r.sessions); r.sessions != dmUncounted && (n < want || n > want+maybe) {
			if r.disruptedAround() {
				o.CountExcused++
			} else {
				o.CountMismatch++
			}
		}
	}
	return o
}
