package enginetest

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"imload/mux"
	"imload/server/engine"
)

var (
	alice = &engine.Author{Name: "alice", Color: engine.Color("alice")}
	bob   = &engine.Author{Name: "bob", Color: engine.Color("bob")}
)

// draft is a message from who, sent now (or at ts, Unix ms, if given).
func draft(who *engine.Author, text, cid string, ts ...int64) engine.Draft {
	d := engine.Draft{Who: who, Text: text, CID: cid, TS: time.Now().UnixMilli()}
	if len(ts) > 0 {
		d.TS = ts[0]
	}
	return d
}

func offs(es []*engine.Entry) []uint64 {
	out := make([]uint64, len(es))
	for i, e := range es {
		out[i] = e.Off
	}
	return out
}

func testOpenUnknownRoom(t *testing.T, h *harness) {
	_, err := await(t, "Open", func(done func(engine.Opened, error)) { h.e.Open("nowhere", false, done) })
	errIs(t, "Open without create of a room that does not exist", err, engine.ErrUnknownRoom)
	_, err = await(t, "Who", func(done func([]engine.Present, error)) { h.e.Who("nowhere", done) })
	errIs(t, "Who of a room that does not exist", err, engine.ErrUnknownRoom)
}

func testOpenCreates(t *testing.T, h *harness) {
	r := h.open("r")
	r.locked(func(l engine.Log) {
		if l.Epoch() == "" || l.Top() != 0 || l.First() != 0 || !l.Idle() {
			t.Fatalf("new room: epoch %q top %d first %d idle %v", l.Epoch(), l.Top(), l.First(), l.Idle())
		}
	})
	r.send(draft(alice, "one", ""))
	o, err := await(t, "Open", func(done func(engine.Opened, error)) { h.e.Open("r", false, done) })
	if err != nil {
		t.Fatalf("Open of an existing room: %v", err)
	}
	// A second log of the room (or the same one) shows what the first does.
	var epoch string
	r.locked(func(l engine.Log) { epoch = l.Epoch() })
	if o.Log.Epoch() != epoch || o.Log.Top() != 1 {
		t.Fatalf("opened again: epoch %q top %d, want %q and 1", o.Log.Epoch(), o.Log.Top(), epoch)
	}
	if o.Log != r.log {
		h.e.Drop("r", o.Log) // the node keeps one
	}
	if _, err := await(t, "Who", func(done func([]engine.Present, error)) { h.e.Who("r", done) }); err != nil {
		t.Fatalf("Who of an existing room: %v", err)
	}
}

func testOffsets(t *testing.T, h *harness) {
	r := h.open("r")
	var epoch string
	r.locked(func(l engine.Log) { epoch = l.Epoch() })
	tickets := make([]uint64, 0, 10)
	drafts := make(map[uint64]engine.Draft)
	for i := range 10 {
		d := draft(alice, fmt.Sprint("m", i), "")
		if i%2 == 0 {
			d.CID = fmt.Sprint("c", i)
		}
		tk := r.publish(d)
		tickets = append(tickets, tk)
		drafts[tk] = d
	}
	seen := make(map[uint64]bool)
	var next uint64 = 1
	for _, rel := range r.take(tickets...) {
		if rel.Err != nil || rel.Dup || rel.Reset {
			t.Fatalf("outcome %+v", rel)
		}
		if rel.Ticket != 0 {
			if seen[rel.Ticket] {
				t.Fatalf("ticket %d reported twice", rel.Ticket)
			}
			seen[rel.Ticket] = true
		}
		if rel.Body == nil {
			continue
		}
		if rel.Off != next {
			t.Fatalf("offset %d, want %d (from 1, without gaps)", rel.Off, next)
		}
		next++
		d, mine := drafts[rel.Ticket]
		if !mine {
			t.Fatalf("message %d without the outcome of its publish", rel.Off)
		}
		var m mux.Message
		if err := json.Unmarshal(rel.Body, &m); err != nil {
			t.Fatalf("body %s: %v", rel.Body, err)
		}
		want := mux.Message{Room: "r", Offset: rel.Off, Epoch: epoch, From: d.Who.Name, Color: d.Who.Color, Text: d.Text, TS: d.TS, CID: d.CID}
		if m != want || rel.TS != d.TS {
			t.Fatalf("body %+v (ts %d), want %+v", m, rel.TS, want)
		}
		// Taken together, the oldest are no longer retained: no entry.
		if e := rel.Entry; e == nil && rel.Off > 10-uint64(h.cfg.HistoryMax) ||
			e != nil && (e.Off != rel.Off || e.Who != d.Who || e.Text() != d.Text || e.CID() != d.CID || e.TS != d.TS) {
			t.Fatalf("message %d: entry %+v, want the message of %+v with its author pointer", rel.Off, e, d)
		}
	}
	if next != 11 {
		t.Fatalf("%d messages, want 10", next-1)
	}
	r.locked(func(l engine.Log) {
		if l.Top() != 10 || l.First() != 6 || l.Epoch() != epoch { // 5 retained
			t.Fatalf("top %d first %d epoch %q", l.Top(), l.First(), l.Epoch())
		}
	})
}

func testVisibleOnlyThroughTake(t *testing.T, h *harness) {
	r := h.open("r")
	r.send(draft(alice, "one", ""))
	tk := r.publish(draft(alice, "two", ""))
	r.locked(func(l engine.Log) {
		es, _ := l.Last(10)
		after, _ := l.After(1, 10)
		if l.Top() != 1 || len(es) != 1 || len(after) != 0 || !l.Resumable(l.Epoch(), 1, 10) || l.Resumable(l.Epoch(), 2, 10) {
			t.Fatalf("before its Take a message shows: top %d, last %v, after 1 %v", l.Top(), offs(es), offs(after))
		}
		if l.Idle() {
			t.Fatal("a log with a publish waiting is idle")
		}
	})
	r.take(tk)
	r.locked(func(l engine.Log) {
		es, _ := l.Last(10)
		if l.Top() != 2 || len(es) != 2 || es[1].Text() != "two" {
			t.Fatalf("after its Take: top %d, last %v", l.Top(), offs(es))
		}
	})
}

func testOutcomeOrder(t *testing.T, h *harness) {
	r := h.open("r")
	var tickets []uint64
	for i := range 4 {
		tickets = append(tickets, r.publish(draft(bob, fmt.Sprint("m", i), "")))
	}
	all := r.take(tickets...)
	outcome := make(map[uint64]int) // ticket → index of its outcome
	for i, rel := range all {
		if rel.Ticket != 0 {
			outcome[rel.Ticket] = i
		}
	}
	for i, tk := range tickets {
		oi, ok := outcome[tk]
		if !ok {
			t.Fatalf("no outcome for ticket %d", tk)
		}
		if i > 0 && tk <= tickets[i-1] {
			t.Fatalf("tickets %v do not increase", tickets)
		}
		off := all[oi].Off
		for j, rel := range all {
			if rel.Body != nil && rel.Off == off && j < oi {
				t.Fatalf("message %d taken (at %d) before its outcome (at %d)", off, j, oi)
			}
		}
	}
}

func testDup(t *testing.T, h *harness) {
	r := h.open("r")
	first := r.send(draft(alice, "hi", "c1"))
	r.send(draft(alice, "other", ""))
	again := r.send(draft(alice, "hi", "c1"))
	if !again.Dup || again.Off != first.Off || again.TS != first.TS || again.Body != nil || again.Entry != nil {
		t.Fatalf("retry: %+v, want dup of %d (ts %d) without a message", again, first.Off, first.TS)
	}
	r.locked(func(l engine.Log) {
		if l.Top() != 2 {
			t.Fatalf("top %d after a retry, want 2", l.Top())
		}
	})
	if rel := r.send(draft(bob, "hi", "c1")); rel.Dup || rel.Off != 3 {
		t.Fatalf("another sender's cid: %+v, want a new message", rel)
	}
	if rel := r.send(draft(alice, "hi", "c2")); rel.Dup || rel.Off != 4 {
		t.Fatalf("another cid: %+v, want a new message", rel)
	}
}

func testDupWait(t *testing.T, h *harness) {
	r := h.open("r")
	t1 := r.publish(draft(alice, "once", "w-1"))
	t2 := r.publish(draft(alice, "once", "w-1")) // before the first is visible
	all := r.take(t1, t2)
	i1, i2 := -1, -1
	for i, rel := range all {
		switch rel.Ticket {
		case t1:
			i1 = i
		case t2:
			i2 = i
		}
	}
	a, b := all[i1], all[i2]
	if a.Dup || a.Body == nil || !b.Dup || b.Off != a.Off || b.TS != a.TS || i2 < i1 {
		t.Fatalf("first %+v (at %d), retry %+v (at %d): want the retry a dup of the first, after it", a, i1, b, i2)
	}
	r.locked(func(l engine.Log) {
		if l.Top() != 1 {
			t.Fatalf("top %d, want 1", l.Top())
		}
	})
}

func testDupForgotten(t *testing.T, h *harness) {
	r := h.open("r")
	first := r.send(draft(alice, "old", "x"))
	for i := range h.cfg.HistoryMax {
		r.send(draft(alice, fmt.Sprint("m", i), ""))
	}
	if rel := r.send(draft(alice, "old", "x")); rel.Dup || rel.Off == first.Off {
		t.Fatalf("a retry of a message no longer retained: %+v, want a new message", rel)
	}
}

func testWindows(t *testing.T, h *harness) {
	r := h.open("r")
	for i := 1; i <= 12; i++ {
		r.send(draft(alice, fmt.Sprint("m", i), ""))
	}
	r.locked(func(l engine.Log) {
		ep := l.Epoch()
		if l.Top() != 12 || l.First() != 8 {
			t.Fatalf("top %d first %d, want 12 and 8 (5 retained)", l.Top(), l.First())
		}
		if es, more := l.Last(3); fmt.Sprint(offs(es)) != "[10 11 12]" || !more {
			t.Fatalf("last 3: %v more=%v", offs(es), more)
		}
		if es, more := l.Last(10); fmt.Sprint(offs(es)) != "[8 9 10 11 12]" || more {
			t.Fatalf("last 10: %v more=%v", offs(es), more)
		}
		if es, more := l.After(9, 2); fmt.Sprint(offs(es)) != "[10 11]" || !more {
			t.Fatalf("after 9 limit 2: %v more=%v", offs(es), more)
		}
		if es, more := l.After(12, 10); len(es) != 0 || more {
			t.Fatalf("after top: %v more=%v", offs(es), more)
		}
		if es, more := l.Before(10, 10); fmt.Sprint(offs(es)) != "[8 9]" || more {
			t.Fatalf("before 10: %v more=%v", offs(es), more)
		}
		if es, more := l.Before(12, 2); fmt.Sprint(offs(es)) != "[10 11]" || !more {
			t.Fatalf("before 12 limit 2: %v more=%v", offs(es), more)
		}
		for _, c := range []struct {
			epoch string
			after uint64
			max   int
			want  bool
		}{
			{ep, 7, 100, true}, {ep, 6, 100, false}, {ep, 12, 100, true}, {ep, 13, 100, false},
			{ep, 7, 4, false}, {ep, 8, 4, true}, {"other", 12, 100, false},
		} {
			if got := l.Resumable(c.epoch, c.after, c.max); got != c.want {
				t.Fatalf("Resumable(%q, %d, %d) = %v", c.epoch, c.after, c.max, got)
			}
		}
	})
}

func testExpiry(t *testing.T, h *harness) {
	r := h.open("r")
	old := time.Now().Add(-time.Hour).UnixMilli()
	r.send(draft(alice, "old1", "o", old))
	r.send(draft(alice, "old2", "", old+1))
	r.send(draft(alice, "new", "", old+10_000))
	r.locked(func(l engine.Log) {
		l.Expire(old + 5)
		if l.First() != 3 || l.Top() != 3 {
			t.Fatalf("after expiry first %d top %d, want 3 and 3", l.First(), l.Top())
		}
		if l.Resumable(l.Epoch(), 1, 100) || !l.Resumable(l.Epoch(), 2, 100) {
			t.Fatal("resumable from an expired offset, or not from the oldest kept")
		}
		if h.traits.Forgets && l.Idle() {
			t.Fatal("a log retaining a message is idle")
		}
	})
	if rel := r.send(draft(alice, "old1", "o")); rel.Dup || rel.Off != 4 {
		t.Fatalf("a retry of an expired message: %+v, want a new message", rel)
	}
	r.locked(func(l engine.Log) {
		l.Expire(time.Now().Add(time.Hour).UnixMilli())
		if es, _ := l.Last(10); len(es) != 0 || l.First() != 0 || l.Top() != 4 {
			t.Fatalf("all expired: last %v first %d top %d", offs(es), l.First(), l.Top())
		}
		if !l.Idle() {
			t.Fatal("not idle with nothing retained or waiting")
		}
		if !l.Resumable(l.Epoch(), 4, 10) || l.Resumable(l.Epoch(), 3, 10) {
			t.Fatal("resumable after everything expired")
		}
	})
}

func testDropThenOpen(t *testing.T, h *harness) {
	r := h.open("r")
	r.send(draft(alice, "m", ""))
	var epoch string
	r.locked(func(l engine.Log) {
		epoch = l.Epoch()
		l.Expire(time.Now().Add(time.Hour).UnixMilli())
		if !l.Idle() {
			t.Fatal("not idle")
		}
		h.e.Drop("r", l)
	})
	again := h.open("r")
	again.locked(func(l engine.Log) {
		switch {
		case h.traits.Forgets && (l.Epoch() == epoch || l.Top() != 0):
			t.Fatalf("dropped and opened again: epoch %q (was %q) top %d, want a new room", l.Epoch(), epoch, l.Top())
		case !h.traits.Forgets && (l.Epoch() != epoch || l.Top() != 1):
			t.Fatalf("dropped and opened again: epoch %q (was %q) top %d, want the room as it was", l.Epoch(), epoch, l.Top())
		}
	})
	if rel := again.send(draft(alice, "n", "")); h.traits.Forgets && rel.Off != 1 {
		t.Fatalf("first message of the room made again: offset %d", rel.Off)
	}
}
