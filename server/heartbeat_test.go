package server

import (
	"slices"
	"testing"
	"time"
)

// The heartbeat wheel returns exactly the connections silent for the
// timeout, at most a tick late, looks only at the connections due, moves on
// those heard from and forgets those that ended.
func TestHeartbeatWheel(t *testing.T) {
	const timeout = 10 * time.Second // tick: 1 s
	var h heartbeats
	t0 := time.Now()
	mk := func() *conn {
		c := &conn{}
		c.lastRead.Store(t0.UnixNano())
		h.add(c, timeout)
		return c
	}
	a, b, gone := mk(), mk(), mk()
	at := func(d time.Duration) time.Time { return t0.Add(d) }

	if got := h.sweep(at(5*time.Second), timeout); len(got) != 0 || len(h.due) != 0 {
		t.Fatalf("at 5s: expired %d, looked at %d; want none", len(got), len(h.due))
	}
	b.lastRead.Store(at(6 * time.Second).UnixNano()) // b pings
	h.remove(gone)                                   // gone ends
	if got := h.sweep(at(9900*time.Millisecond), timeout); len(got) != 0 {
		t.Fatalf("at 9.9s: %d expired before the timeout", len(got))
	}
	if got := h.sweep(at(11*time.Second), timeout); !slices.Equal(got, []*conn{a}) || len(h.due) != 2 {
		t.Fatalf("at 11s: expired %v (looked at %d), want only a (looking at a and b)", got, len(h.due))
	}
	if got := h.sweep(at(15*time.Second), timeout); len(got) != 0 || len(h.due) != 0 {
		t.Fatalf("at 15s: expired %d, looked at %d; want none", len(got), len(h.due))
	}
	if got := h.sweep(at(17*time.Second), timeout); !slices.Equal(got, []*conn{b}) {
		t.Fatalf("at 17s: expired %v, want b (silent since 6s)", got)
	}
	for _, s := range h.slots {
		if len(s) != 0 {
			t.Fatalf("the wheel still holds %d connections", len(s))
		}
	}
	// A janitor that stalls for longer than the wheel's span misses nobody.
	c := &conn{}
	c.lastRead.Store(at(20 * time.Second).UnixNano())
	h.add(c, timeout)
	if got := h.sweep(at(2*time.Minute), timeout); !slices.Equal(got, []*conn{c}) {
		t.Fatalf("after a stall: expired %v, want c", got)
	}
}
