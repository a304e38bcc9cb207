// Package enginetest is the conformance suite of the engine contract
// (package engine): what a node relies on, checked against an engine
// alone, without a node. An engine's tests run it:
//
//	func TestConformance(t *testing.T) {
//		enginetest.Run(t, enginetest.Traits{Forgets: true}, func(t *testing.T, cfg enginetest.Config) engine.Engine {
//			return newEngineFor(t, cfg)
//		})
//	}
//
// The suite calls the engine as a node does: a Log only under a lock of
// its room, and every done function awaited (it may be called before the
// method returns, or later from the engine's goroutines). It also has
// Async, a wrapper that makes an engine answer later, as the Redis engine
// does, so that a node's handling of late answers is tested with the local
// engine.
package enginetest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"imload/server/engine"
)

// Config is what the suite needs an engine configured with.
type Config struct {
	// HistoryMax is how many messages a room retains.
	HistoryMax int
	// NameGrace is how long a name stays reserved after its last session.
	NameGrace time.Duration
	// MaxReservedNames bounds the names reserved at once.
	MaxReservedNames int
	// DMInRate and DMInBurst bound the private messages one user receives.
	DMInRate  float64
	DMInBurst int
	// DMHistoryMax, DMHistoryAge and DMMaxConversations bound the
	// history of private messages (DMHistoryMax 0: none is kept).
	DMHistoryMax       int
	DMHistoryAge       time.Duration
	DMMaxConversations int
}

// Traits says where engines may differ.
type Traits struct {
	// Forgets is set for an engine whose rooms live in their logs (the
	// local engine): a room with retained messages is never idle, and a
	// dropped room is gone (an Open after Drop makes it anew, with a new
	// epoch). Without it, a dropped room lives on (the Redis engine).
	Forgets bool
}

// wait is how long the suite waits for an engine's answer.
const wait = 10 * time.Second

// Run runs the suite. newEngine makes a new engine, not started, for one
// test, configured with cfg; the suite starts it with a recording Sink
// and closes it when the test ends.
func Run(t *testing.T, traits Traits, newEngine func(t *testing.T, cfg Config) engine.Engine) {
	h := func(t *testing.T, cfg Config) *harness { return start(t, traits, cfg, newEngine) }
	type test struct {
		name string
		run  func(*testing.T, *harness)
	}
	tests := []test{
		{"OpenUnknownRoom", testOpenUnknownRoom},
		{"OpenCreates", testOpenCreates},
		{"OffsetsFromOneWithoutGaps", testOffsets},
		{"VisibleOnlyThroughTake", testVisibleOnlyThroughTake},
		{"OutcomeBeforeOrWithItsMessage", testOutcomeOrder},
		{"DupWhileRetained", testDup},
		{"DupWaitsForItsFirstCopy", testDupWait},
		{"DupForgottenWithItsMessage", testDupForgotten},
		{"Windows", testWindows},
		{"Expiry", testExpiry},
		{"DropThenOpen", testDropThenOpen},
		{"ClaimAndRelease", testClaim},
		{"Reservation", testReservation},
		{"ReservationExpires", testReservationExpires},
		{"ReservedNamesBounded", testReservedBounded},
		{"KickBeyondMaxConns", testKick},
		{"DM", testDM},
		{"DMOfflineAndBusy", testDMRefused},
		{"DMOfflineAndBusyWithoutDMHistory", testDMRefused},
		{"DMWithoutASendingSession", testDMNoSender},
		{"VerifiedClaims", testVerified},
		{"VerifiedReservation", testVerifiedReservation},
		{"Disconnect", testDisconnect},
		{"Conns", testConns},
		{"NodesAndHealth", testNodes},
		{"AfterClose", testAfterClose},
	}
	for _, c := range tests {
		t.Run(c.name, func(t *testing.T) {
			cfg := suiteConfig
			if c.name == "DMOfflineAndBusyWithoutDMHistory" {
				cfg.DMHistoryMax = 0 // the Redis engine's other script
			}
			c.run(t, h(t, cfg))
		})
	}
	// The history of private messages (dmhist.go), with a recipient's rate
	// that does not get in the way.
	for _, c := range []test{
		{"DMHistoryOffsets", testDMHistoryOffsets},
		{"DMHistoryWindows", testDMHistoryWindows},
		{"DMHistoryOthersRead", testDMHistoryOthers},
		{"DMHistoryFreedName", testDMHistoryFreedName},
		{"DMHistoryVerifiedKept", testDMHistoryVerified},
		{"DMHistoryAge", testDMHistoryAge},
		{"DMHistoryMany", testDMHistoryMany},
		{"DMHistoryConversationsBounded", testDMHistoryEvict},
		{"DMList", testDMList},
		{"DMHistoryOff", testDMHistoryOff},
		{"DisplayNames", testDisplayNames},
		{"DisplayNamesWithoutDMHistory", testDisplayNames},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := suiteConfig
			cfg.DMInRate, cfg.DMInBurst = 1000, 1000
			if c.name == "DMHistoryOff" || c.name == "DisplayNamesWithoutDMHistory" {
				cfg.DMHistoryMax = 0
			}
			c.run(t, h(t, cfg))
		})
	}
}

// suiteConfig is the configuration every test of the suite gets.
var suiteConfig = Config{
	HistoryMax:         5,
	NameGrace:          2 * time.Second,
	MaxReservedNames:   3,
	DMInRate:           0.01,
	DMInBurst:          3,
	DMHistoryMax:       4,
	DMHistoryAge:       time.Hour,
	DMMaxConversations: 3,
}

// harness is one started engine and its sink.
type harness struct {
	t      *testing.T
	traits Traits
	cfg    Config
	e      engine.Engine
	sink   *Sink
}

func start(t *testing.T, traits Traits, cfg Config, newEngine func(*testing.T, Config) engine.Engine) *harness {
	t.Helper()
	h := &harness{t: t, traits: traits, cfg: cfg, sink: NewSink("node-a")}
	h.e = newEngine(t, h.cfg)
	if err := h.e.Start(context.Background(), h.sink); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := h.e.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return h
}

// await calls an engine method that answers through done and waits for
// the answer.
func await[T any](t *testing.T, what string, call func(done func(T, error))) (T, error) {
	t.Helper()
	type answer struct {
		v   T
		err error
	}
	ch := make(chan answer, 1)
	var once sync.Once
	call(func(v T, err error) {
		called := false
		once.Do(func() { called = true; ch <- answer{v, err} })
		if !called {
			t.Errorf("%s: done called twice", what)
		}
	})
	select {
	case a := <-ch:
		return a.v, a.err
	case <-time.After(wait):
		t.Fatalf("%s: no answer within %v", what, wait)
		panic("unreachable")
	}
}

// room is a room the suite opened: its log, used only under mu, as a
// node does.
type room struct {
	h    *harness
	name string
	mu   sync.Mutex
	log  engine.Log
}

// open opens (with create) room name and returns it.
func (h *harness) open(name string) *room {
	h.t.Helper()
	o, err := await(h.t, "Open "+name, func(done func(engine.Opened, error)) { h.e.Open(name, true, done) })
	if err != nil {
		h.t.Fatalf("Open %q: %v", name, err)
	}
	if o.Log == nil {
		h.t.Fatalf("Open %q: no log", name)
	}
	return &room{h: h, name: name, log: o.Log}
}

// locked runs f with the room's lock held.
func (r *room) locked(f func(l engine.Log)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f(r.log)
}

// publish publishes d and returns its ticket.
func (r *room) publish(d engine.Draft) uint64 {
	r.h.t.Helper()
	var ticket uint64
	var err error
	r.locked(func(l engine.Log) { ticket, err = l.Publish(&d) })
	if err != nil {
		r.h.t.Fatalf("Publish %+v: %v", d, err)
	}
	if ticket == 0 {
		r.h.t.Fatalf("Publish %+v: ticket 0", d)
	}
	return ticket
}

// take takes from the log until every ticket of tickets has its outcome
// (each message's Released before its waiting retries'), and returns all
// it took, in order.
func (r *room) take(tickets ...uint64) []engine.Released {
	r.h.t.Helper()
	want := make(map[uint64]bool, len(tickets))
	for _, tk := range tickets {
		want[tk] = true
	}
	var all []engine.Released
	deadline := time.Now().Add(wait)
	for {
		r.locked(func(l engine.Log) {
			n := len(all)
			all = l.Take(all)
			// An entry is the ring's slot, valid until the log's next
			// message: keep a copy of what it was when taken.
			for i := n; i < len(all); i++ {
				if e := all[i].Entry; e != nil {
					c := *e
					all[i].Entry = &c
				}
			}
		})
		for _, rel := range all {
			delete(want, rel.Ticket)
		}
		if len(want) == 0 {
			return all
		}
		if !r.h.sink.waitReady(r.name, time.Until(deadline)) {
			r.h.t.Fatalf("room %q: no outcome within %v for tickets %v (took %+v)", r.name, wait, want, all)
		}
	}
}

// send publishes d and takes until its outcome, which it returns.
func (r *room) send(d engine.Draft) engine.Released {
	r.h.t.Helper()
	tk := r.publish(d)
	for _, rel := range r.take(tk) {
		if rel.Ticket == tk {
			return rel
		}
	}
	panic("unreachable")
}

// errIs fails the test unless err wraps target.
func errIs(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: error %v, want %v", what, err, target)
	}
}
