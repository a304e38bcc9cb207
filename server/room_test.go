package server

import (
	"testing"

	"imload/mux"
)

func addMsgs(r *room, max int, from, to uint64, ts int64) {
	for off := from; off <= to; off++ {
		r.top, r.released = off, off
		r.add(&mux.Message{Offset: off, TS: ts}, &author{}, max)
	}
}

func offsets(es []*entry, _ ...bool) []uint64 {
	out := make([]uint64, len(es))
	for i, e := range es {
		out[i] = e.off
	}
	return out
}

// The ring keeps the newest max entries in order through wrap-around,
// expiry and growth after expiry.
func TestRoomRing(t *testing.T) {
	r := newRoom("r", "e")
	const max = 5
	addMsgs(r, max, 1, 12, 100)
	if r.n != max || r.first() != 8 {
		t.Fatalf("n=%d first=%d", r.n, r.first())
	}
	if es, more := r.last(3); len(es) != 3 || es[0].off != 10 || es[2].off != 12 || !more {
		t.Fatalf("last 3: %v more=%v", offsets(es), more)
	}
	if es, more := r.last(10); len(es) != 5 || more {
		t.Fatalf("last 10 of 5: %v more=%v", offsets(es), more)
	}
	got, more := r.after(9, 2)
	if o := offsets(got); len(o) != 2 || o[0] != 10 || o[1] != 11 || !more {
		t.Fatalf("after 9: %v more=%v", o, more)
	}
	got, more = r.before(10, 10)
	if o := offsets(got); len(o) != 2 || o[0] != 8 || o[1] != 9 || more {
		t.Fatalf("before 10: %v more=%v", o, more)
	}
	if !r.resumable("e", 7, 100) || r.resumable("e", 6, 100) || r.resumable("x", 12, 100) || !r.resumable("e", 12, 100) || r.resumable("e", 13, 100) {
		t.Fatal("resumable")
	}
	// Expire the oldest two (older timestamps), then add more: order holds.
	r2 := newRoom("r", "e")
	addMsgs(r2, max, 1, 3, 10)
	addMsgs(r2, max, 4, 7, 100) // wraps: holds 3..7
	r2.expire(50)               // drops 3 (ts 10)
	if r2.n != 4 || r2.first() != 4 {
		t.Fatalf("after expiry n=%d first=%d", r2.n, r2.first())
	}
	addMsgs(r2, max, 8, 9, 100)
	if o := offsets(r2.last(10)); len(o) != 5 || o[0] != 5 || o[4] != 9 {
		t.Fatalf("after refill: %v", o)
	}
	r2.expire(1000)
	if r2.n != 0 || r2.first() != 0 || r2.top != 9 {
		t.Fatalf("all expired: n=%d first=%d top=%d", r2.n, r2.first(), r2.top)
	}
	if r2.resumable("e", 5, 100) || !r2.resumable("e", 9, 100) {
		t.Fatal("resumable after expiry")
	}
	addMsgs(r2, max, 10, 11, 2000)
	if o := offsets(r2.last(10)); len(o) != 2 || o[0] != 10 {
		t.Fatalf("after emptying: %v", o)
	}
}

// A retried send's cid is forgotten when its message leaves the ring.
func TestRoomCIDForgotten(t *testing.T) {
	r := newRoom("r", "e")
	r.top = 1
	m := mux.Message{Offset: 1, From: "a", CID: "c1"}
	r.add(&m, &author{name: m.From}, 2)
	if e, ok := r.sentBefore("a", "c1"); !ok || e.off != 1 {
		t.Fatal("cid of a retained message not known")
	}
	if _, ok := r.sentBefore("b", "c1"); ok {
		t.Fatal("another sender's cid taken for a duplicate")
	}
	addMsgs(r, 2, 2, 3, 0)
	if _, ok := r.sentBefore("a", "c1"); ok {
		t.Fatal("cid of a dropped message still known")
	}
	if len(r.cids) != 0 {
		t.Fatalf("%d cids left for messages sent without one", len(r.cids))
	}
}

// Two (sender, cid) pairs whose hashes collide: the second message is not
// taken for a duplicate of the first (which would lose it).
func TestRoomCIDHashCollision(t *testing.T) {
	r := newRoom("r", "e")
	r.top = 1
	m := mux.Message{Offset: 1, From: "a", CID: "c1"}
	r.add(&m, &author{name: m.From}, 10)
	r.cids[r.cidHash("b", "c2")] = 1 // as if ("b", "c2") hashed like ("a", "c1")
	if _, ok := r.sentBefore("b", "c2"); ok {
		t.Fatal("a colliding hash was taken for a duplicate")
	}
	if _, ok := r.sentBefore("a", "c1"); !ok {
		t.Fatal("the real duplicate is no longer found")
	}
}

// A retained message is encoded for history replies exactly as its push
// was, with and without a cid, and a resent cid finds its own text.
func TestRoomEntryEncodesAsSent(t *testing.T) {
	r := newRoom("room-1", "ep0ch")
	who := &author{name: "alice", color: "#d9480f"}
	for i, m := range []mux.Message{
		{Text: "plain", CID: "c-1"},
		{Text: "<b>\"q\"</b> \u2028 日本", CID: ""},
		{Text: "", CID: "only-cid"},
	} {
		r.top++
		m.Room, m.Epoch, m.Offset, m.From, m.Color, m.TS = r.name, r.epoch, r.top, who.name, who.color, int64(1000+i)
		r.add(&m, who, 10)
		pushed := mux.AppendMessage(nil, &m)
		e := r.at(r.n - 1)
		if got := r.appendEntry(nil, e); string(got) != string(pushed) {
			t.Fatalf("message %d: history %s, push %s", i, got, pushed)
		}
		if e.text() != m.Text || e.cid() != m.CID {
			t.Fatalf("message %d: text %q cid %q", i, e.text(), e.cid())
		}
	}
	if e, ok := r.sentBefore("alice", "only-cid"); !ok || e.off != 3 || e.text() != "" {
		t.Fatalf("resent cid: %v %v", e, ok)
	}
}
