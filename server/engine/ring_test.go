package engine

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func push(r *Ring, max int, from, to uint64, ts int64) {
	for off := from; off <= to; off++ {
		r.Push(Entry{Off: off, TS: ts, Who: &Author{}}, max)
	}
}

func offsets(es []*Entry, _ ...bool) []uint64 {
	out := make([]uint64, len(es))
	for i, e := range es {
		out[i] = e.Off
	}
	return out
}

// The ring keeps the newest max entries in order through wrap-around,
// expiry and growth after expiry.
func TestRing(t *testing.T) {
	var r Ring
	const max = 5
	push(&r, max, 1, 12, 100)
	top := uint64(12)
	if r.Len() != max || r.First() != 8 {
		t.Fatalf("n=%d first=%d", r.Len(), r.First())
	}
	if es, more := r.Latest(top, 3); len(es) != 3 || es[0].Off != 10 || es[2].Off != 12 || !more {
		t.Fatalf("latest 3: %v more=%v", offsets(es), more)
	}
	if es, more := r.Latest(top, 10); len(es) != 5 || more {
		t.Fatalf("latest 10 of 5: %v more=%v", offsets(es), more)
	}
	got, more := r.After(9, top, 2)
	if o := offsets(got); len(o) != 2 || o[0] != 10 || o[1] != 11 || !more {
		t.Fatalf("after 9: %v more=%v", o, more)
	}
	got, more = r.Before(10, top, 10)
	if o := offsets(got); len(o) != 2 || o[0] != 8 || o[1] != 9 || more {
		t.Fatalf("before 10: %v more=%v", o, more)
	}
	if !r.Resumable(7, top, 100) || r.Resumable(6, top, 100) || !r.Resumable(12, top, 100) || r.Resumable(13, top, 100) || r.Resumable(7, top, 4) {
		t.Fatal("resumable")
	}
	// A top below the newest entry hides the entries after it.
	if es, more := r.Latest(10, 10); len(es) != 3 || es[2].Off != 10 || more {
		t.Fatalf("latest up to 10: %v more=%v", offsets(es), more)
	}
	if es, more := r.After(8, 10, 10); len(es) != 2 || es[1].Off != 10 || more {
		t.Fatalf("after 8 up to 10: %v more=%v", offsets(es), more)
	}
	if es, _ := r.Before(20, 10, 10); len(es) != 3 || es[2].Off != 10 {
		t.Fatalf("before 20 up to 10: %v", offsets(es))
	}
	if r.Resumable(11, 10, 100) || !r.Resumable(10, 10, 100) {
		t.Fatal("resumable beyond top")
	}
	// Expire the oldest two (older timestamps), then add more: order holds.
	var r2 Ring
	push(&r2, max, 1, 3, 10)
	push(&r2, max, 4, 7, 100) // wraps: holds 3..7
	r2.Expire(50)             // drops 3 (ts 10)
	if r2.Len() != 4 || r2.First() != 4 {
		t.Fatalf("after expiry n=%d first=%d", r2.Len(), r2.First())
	}
	push(&r2, max, 8, 9, 100)
	if o := offsets(r2.Latest(9, 10)); len(o) != 5 || o[0] != 5 || o[4] != 9 {
		t.Fatalf("after refill: %v", o)
	}
	r2.Expire(1000)
	if r2.Len() != 0 || r2.First() != 0 {
		t.Fatalf("all expired: n=%d first=%d", r2.Len(), r2.First())
	}
	if r2.Resumable(5, 9, 100) || !r2.Resumable(9, 9, 100) {
		t.Fatal("resumable after expiry")
	}
	push(&r2, max, 10, 11, 2000)
	if o := offsets(r2.Latest(11, 10)); len(o) != 2 || o[0] != 10 {
		t.Fatalf("after emptying: %v", o)
	}
}

// A retried send's cid is forgotten when its message leaves the ring.
func TestRingCIDForgotten(t *testing.T) {
	var r Ring
	r.Push(Entry{Off: 1, Who: &Author{Name: "a"}, Data: "hic1", CIDLen: 2}, 2)
	if e := r.Find("a", "c1"); e == nil || e.Off != 1 || e.Text() != "hi" {
		t.Fatal("cid of a retained message not known")
	}
	if r.Find("b", "c1") != nil {
		t.Fatal("another sender's cid taken for a duplicate")
	}
	push(&r, 2, 2, 3, 0)
	if r.Find("a", "c1") != nil {
		t.Fatal("cid of a dropped message still known")
	}
	if len(r.cids) != 0 {
		t.Fatalf("%d cids left for messages sent without one", len(r.cids))
	}
}

// Two (sender, cid) pairs whose hashes collide: the second message is not
// taken for a duplicate of the first (which would lose it).
func TestRingCIDHashCollision(t *testing.T) {
	var r Ring
	r.Push(Entry{Off: 1, Who: &Author{Name: "a"}, Data: "c1", CIDLen: 2}, 10)
	r.cids[r.cidHash("b", "c2")] = 1 // as if ("b", "c2") hashed like ("a", "c1")
	if r.Find("b", "c2") != nil {
		t.Fatal("a colliding hash was taken for a duplicate")
	}
	if r.Find("a", "c1") == nil {
		t.Fatal("the real duplicate is no longer found")
	}
}
