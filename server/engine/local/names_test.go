package local

import (
	"sync"
	"testing"
	"time"

	"imload/mux"
	"imload/server/engine"
	"imload/server/engine/enginetest"
)

// clock is a settable clock for the engine.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func claimed(t *testing.T, e *Engine, name, token string, conn uint64) (engine.Claimed, error) {
	t.Helper()
	var cl engine.Claimed
	var err error
	e.Claim(engine.Claim{Name: name, Token: token, Session: ref(conn)}, func(c engine.Claimed, cerr error) { cl, err = c, cerr })
	return cl, err
}

func ref(conn uint64) engine.SessionRef {
	return engine.SessionRef{Conn: engine.ConnRef{Node: "local", ID: conn}, SID: 1}
}

// A reservation whose owner came back and went again is kept for the
// grace from its last going (it goes to the back of the FIFO), not from
// its first; the table is swept where it grows, and an eviction beyond
// MaxReservedNames is reported.
func TestReservationFIFO(t *testing.T) {
	clk := &clock{now: time.Unix(1e9, 0)}
	evicted := 0
	e := newEngine(t, Options{NameGrace: 10 * time.Second, MaxReservedNames: 2, Now: clk.Now, OnNameEvicted: func() { evicted++ }})
	if err := e.Start(t.Context(), enginetest.NewSink("local")); err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	a, _ := claimed(t, e, "alice", "", 1)
	e.Release("alice", ref(1))
	clk.add(6 * time.Second)
	if _, err := claimed(t, e, "alice", a.Token, 2); err != nil { // back
		t.Fatal(err)
	}
	e.Release("alice", ref(2)) // gone again, 6 s after the first time
	clk.add(6 * time.Second)   // 12 s after the first, 6 s after the second
	if _, err := claimed(t, e, "alice", "", 3); err == nil || mux.AsError(err).Name != mux.ErrNameTaken {
		t.Fatalf("a name reserved 6 s ago (grace 10 s): %v, want name_taken", err)
	}
	if e.Reserved() != 1 {
		t.Fatalf("%d reserved", e.Reserved())
	}
	clk.add(5 * time.Second)
	if _, err := claimed(t, e, "alice", "", 3); err != nil {
		t.Fatalf("after the grace: %v", err)
	}
	// Three reservations for a bound of two: the oldest ends early.
	for i, n := range []string{"n1", "n2", "n3"} {
		claimed(t, e, n, "", uint64(10+i))
		e.Release(n, ref(uint64(10+i)))
	}
	if e.Reserved() != 2 || evicted != 1 {
		t.Fatalf("%d reserved, %d evicted; want 2 and 1", e.Reserved(), evicted)
	}
	if _, err := claimed(t, e, "n1", "", 20); err != nil {
		t.Fatalf("the evicted name: %v", err)
	}
}
