package loadgen

import (
	"testing"

	"imload/loadgen/wire"
	"imload/reports"
)

// Where join replies do not say (socket.io), the start of a track is worked
// out at the end: the highest offset of the sends issued before its join
// reply, lowered below the first offset it received.
func TestLateTrackStart(t *testing.T) {
	st := newLateStarts(1)
	// (issue time, seq): seq 3 was issued before the join ack at 250 (and
	// handled after it, or not: unknown); 4 and 5 after.
	for _, x := range []lateSend{{100, 1, 0}, {200, 2, 0}, {245, 3, 0}, {400, 4, 0}, {500, 5, 0}} {
		st.acked(0, x.issued, x.seq)
	}
	track := func(joinAt int64, got ...uint64) *roomTrack {
		tr := &roomTrack{joined: true, joinAt: joinAt}
		for _, o := range got {
			tr.receive(o, true)
		}
		return tr
	}
	cases := []struct {
		name string
		tr   *roomTrack
		to   uint64
		want reports.Delivery
	}{
		{"got 3 (uncertain) and everything after", track(250, 3, 4, 5), 5, reports.Delivery{Expected: 3, Delivered: 3}},
		{"3 not received: it was handled before the join", track(250, 4, 5), 5, reports.Delivery{Expected: 2, Delivered: 2}},
		{"a gap after the first one received is lost", track(250, 3, 5), 5, reports.Delivery{Expected: 3, Delivered: 2, Lost: 1}},
		{"nothing received, sends after the join are due", track(250), 5, reports.Delivery{Expected: 2, Lost: 2, LostTail: 2}},
		{"closed by a lost link before anything came", track(450), 0, reports.Delivery{}},
		{"joined after everything", track(600), 5, reports.Delivery{}},
	}
	for _, c := range cases {
		var v verifier
		st.closed(c.tr, c.to)
		st.count(&v)
		if got := v.delivery(); got != c.want {
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
		}
	}
	// A send whose ack was lost is placed by its delivery.
	st2 := newLateStarts(1)
	st2.acked(0, 100, 1)
	tb := &browser{rooms: []int32{0}}
	st2.unconfirmed(pending{kind: wire.Send, t: &tab{b: tb, gid: 7}, mseq: 9, issued: 200})
	st2.resolve(0, dmKey{sender: 7, seq: 9}, 2)
	var v verifier
	st2.closed(track(250), 2)
	st2.count(&v)
	if got := v.delivery(); got != (reports.Delivery{}) {
		t.Errorf("unconfirmed send before the join: %+v", got)
	}
	// Drain: a track that got nothing waits only for sends after its join.
	if !st.caughtUp(track(600), 5) || st.caughtUp(track(250), 5) || st.caughtUp(track(250, 3), 5) || !st.caughtUp(track(250, 4, 5), 5) {
		t.Error("caughtUp")
	}
}
