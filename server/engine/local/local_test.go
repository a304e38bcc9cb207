package local

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"imload/server/engine"
	"imload/server/engine/enginetest"
	"imload/server/store"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// sqlite returns an OpenStore for a SQLite store in dir.
func sqlite(dir string, durable bool) func(func([]store.Committed)) (store.Store, error) {
	return func(onCommit func([]store.Committed)) (store.Store, error) {
		return store.OpenSQLite(context.Background(), dir, store.Options{Durable: durable, OnCommit: onCommit})
	}
}

// options are the engine's options for the suite's configuration.
func options(cfg enginetest.Config) Options {
	return Options{
		Node:               "node-a",
		HistoryMax:         cfg.HistoryMax,
		NameGrace:          cfg.NameGrace,
		MaxReservedNames:   cfg.MaxReservedNames,
		DMInRate:           cfg.DMInRate,
		DMInBurst:          cfg.DMInBurst,
		DMHistoryMax:       cfg.DMHistoryMax,
		DMHistoryAge:       cfg.DMHistoryAge,
		DMMaxConversations: cfg.DMMaxConversations,
	}
}

func newEngine(t *testing.T, opts Options) *Engine {
	t.Helper()
	e, err := New(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// The engine contract, with each store: memory, SQLite released at once
// (relaxed), SQLite released on commit (durable); and with its answers
// made asynchronous (enginetest.Async), as the node must take them.
func TestConformance(t *testing.T) {
	for _, c := range []struct {
		name  string
		store func(t *testing.T) (func(func([]store.Committed)) (store.Store, error), bool)
		async bool
	}{
		{"memory", func(*testing.T) (func(func([]store.Committed)) (store.Store, error), bool) { return nil, false }, false},
		{"relaxed", func(t *testing.T) (func(func([]store.Committed)) (store.Store, error), bool) {
			return sqlite(t.TempDir(), false), false
		}, false},
		{"durable", func(t *testing.T) (func(func([]store.Committed)) (store.Store, error), bool) {
			return sqlite(t.TempDir(), true), true
		}, false},
		{"memory-async", func(*testing.T) (func(func([]store.Committed)) (store.Store, error), bool) { return nil, false }, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			enginetest.Run(t, enginetest.Traits{Forgets: true}, func(t *testing.T, cfg enginetest.Config) engine.Engine {
				opts := options(cfg)
				opts.OpenStore, opts.Durable = c.store(t)
				e := newEngine(t, opts)
				if c.async {
					return enginetest.NewAsync(e)
				}
				return e
			})
		})
	}
}

// recorder is a Sink that records the rooms made ready.
type recorder struct {
	*enginetest.Sink
	mu    sync.Mutex
	rooms []string
}

func (r *recorder) Ready(room string) {
	r.mu.Lock()
	r.rooms = append(r.rooms, room)
	r.mu.Unlock()
	r.Sink.Ready(room)
}

func (r *recorder) readied() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.rooms)
}

func open(t *testing.T, e *Engine, name string, create bool) (engine.Log, error) {
	t.Helper()
	var l engine.Log
	var err error
	called := false
	e.Open(name, create, func(o engine.Opened, oerr error) { l, err, called = o.Log, oerr, true })
	if !called {
		t.Fatal("the local engine did not answer before Open returned")
	}
	return l, err
}

// A durable engine releases a message once its store has committed it:
// the commit makes the room ready (Sink.Ready), and the Take after it
// returns the message.
func TestDurableReleaseOnCommit(t *testing.T) {
	dir := t.TempDir()
	e := newEngine(t, Options{OpenStore: sqlite(dir, true), Durable: true})
	sink := &recorder{Sink: enginetest.NewSink("local")}
	if err := e.Start(context.Background(), sink); err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	l, err := open(t, e, "r", true)
	if err != nil {
		t.Fatal(err)
	}
	tk, err := l.Publish(&engine.Draft{Who: &engine.Author{Name: "a"}, Text: "x", TS: time.Now().UnixMilli()})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	var got []engine.Released
	for len(got) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("not released within 10s")
		}
		time.Sleep(time.Millisecond)
		if len(sink.readied()) > 0 {
			got = l.Take(nil)
		}
	}
	if len(got) != 1 || got[0].Ticket != tk || got[0].Off != 1 || !slices.Equal(sink.readied(), []string{"r"}) {
		t.Fatalf("took %+v after Ready %v", got, sink.readied())
	}
}

// Rooms, offsets and epochs survive a restart on SQLite: Retained lists
// the rooms, their logs go on where they were; a dropped room is
// forgotten by the store too.
func TestRestart(t *testing.T) {
	dir := t.TempDir()
	e := newEngine(t, Options{OpenStore: sqlite(dir, false), HistoryMax: 3})
	if err := e.Start(context.Background(), enginetest.NewSink("local")); err != nil {
		t.Fatal(err)
	}
	keep, _ := open(t, e, "keep", true)
	gone, _ := open(t, e, "gone", true)
	who := &engine.Author{Name: "a", Color: engine.Color("a")}
	for i := range 5 {
		for _, l := range []engine.Log{keep, gone} {
			if _, err := l.Publish(&engine.Draft{Who: who, Text: "m", CID: string(rune('a' + i)), TS: time.Now().UnixMilli()}); err != nil {
				t.Fatal(err)
			}
			l.Take(nil)
		}
	}
	gone.Expire(time.Now().Add(time.Hour).UnixMilli())
	e.Drop("gone", gone)
	time.Sleep(3 * deletionFeedEvery) // the feeder hands the deletion over
	epoch := keep.Epoch()
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.Health(); !errors.Is(err, engine.ErrUnavailable) || !errors.Is(err, engine.ErrClosed) {
		t.Fatalf("Health after Close: %v", err)
	}

	e2 := newEngine(t, Options{OpenStore: sqlite(dir, false), HistoryMax: 3})
	var names []string
	e2.Retained(func(n string) { names = append(names, n) })
	if err := e2.Start(context.Background(), enginetest.NewSink("local")); err != nil {
		t.Fatal(err)
	}
	defer e2.Close()
	if !slices.Equal(names, []string{"keep"}) {
		t.Fatalf("retained %v, want [keep]", names)
	}
	l, err := open(t, e2, "keep", false)
	if err != nil {
		t.Fatal(err)
	}
	if es, _ := l.Last(10); l.Epoch() != epoch || l.Top() != 5 || l.First() != 3 || len(es) != 3 || es[0].Who.Name != "a" {
		t.Fatalf("after restart: epoch %q top %d first %d last %d", l.Epoch(), l.Top(), l.First(), len(es))
	}
	tk, _ := l.Publish(&engine.Draft{Who: who, Text: "m", CID: "e", TS: time.Now().UnixMilli()}) // a retry of offset 5
	if rel := l.Take(nil); len(rel) != 1 || rel[0].Ticket != tk || !rel[0].Dup || rel[0].Off != 5 {
		t.Fatalf("retry after restart: %+v", rel)
	}
	if _, err := open(t, e2, "gone", false); !errors.Is(err, engine.ErrUnknownRoom) {
		t.Fatalf("the dropped room after restart: %v", err)
	}
}

// A store that refuses (its queue is full) fails the Publish at once with
// ErrUnavailable, and the room's offsets do not move.
func TestPublishRefusedByTheStore(t *testing.T) {
	dir := t.TempDir()
	e := newEngine(t, Options{OpenStore: func(onCommit func([]store.Committed)) (store.Store, error) {
		return store.OpenSQLite(context.Background(), dir, store.Options{Durable: true, OnCommit: onCommit, QueueLen: 2, BatchSize: 1})
	}, Durable: true})
	if err := e.Start(context.Background(), enginetest.NewSink("local")); err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	l, err := open(t, e, "r", true)
	if err != nil {
		t.Fatal(err)
	}
	refused := 0
	for range 200 {
		if _, err := l.Publish(&engine.Draft{Who: &engine.Author{Name: "a"}, Text: "x", TS: time.Now().UnixMilli()}); err != nil {
			if !errors.Is(err, engine.ErrUnavailable) {
				t.Fatalf("refusal: %v", err)
			}
			refused++
		}
	}
	if refused == 0 {
		t.Skip("the store kept up with 200 sends into a queue of 2")
	}
	// The accepted ones get offsets 1…n, without gaps.
	deadline := time.Now().Add(10 * time.Second)
	var got []engine.Released
	for len(got) < 200-refused && time.Now().Before(deadline) {
		got = l.Take(got)
		time.Sleep(time.Millisecond)
	}
	for i, rel := range got {
		if rel.Off != uint64(i+1) {
			t.Fatalf("offset %d at %d", rel.Off, i)
		}
	}
	if len(got) != 200-refused {
		t.Fatalf("%d released of %d accepted", len(got), 200-refused)
	}
}

// BenchmarkPublishTake is the engine's share of a send on one node (memory
// store): publish and take one message, as the node does under the room's
// lock. The node's share (reply, fan-out) is BenchmarkFanout's.
func BenchmarkPublishTake(b *testing.B) {
	e, err := New(context.Background(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	if err := e.Start(context.Background(), enginetest.NewSink("local")); err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	var l engine.Log
	e.Open("bench", true, func(o engine.Opened, _ error) { l = o.Log })
	who := &engine.Author{Name: "alice", Color: engine.Color("alice")}
	d := engine.Draft{Who: who, Text: "a chat message of about sixty-four bytes, like most of them are."}
	rel := make([]engine.Released, 0, 4)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		d.TS = int64(i)
		if _, err := l.Publish(&d); err != nil {
			b.Fatal(err)
		}
		rel = l.Take(rel[:0])
	}
}

// A durable DM whose commit comes before the engine has noted it as
// waiting (the writer quicker than the sending goroutine) is answered
// all the same: the commit is not missed.
func TestDurableDMCommitBeforeWait(t *testing.T) {
	e := newEngine(t, Options{OpenStore: sqlite(t.TempDir(), true), Durable: true, DMHistoryMax: 10})
	if err := e.Start(context.Background(), enginetest.NewSink("local")); err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	e.afterDMAppend = func() { time.Sleep(200 * time.Millisecond) } // the commit comes meanwhile
	session := func(id uint64) engine.SessionRef {
		return engine.SessionRef{Conn: engine.ConnRef{Node: "local", ID: id, Since: time.Unix(1e9, 0)}, SID: 1}
	}
	claim := func(name string, id uint64) engine.Claimed {
		got := make(chan engine.Claimed, 1)
		e.Claim(engine.Claim{Name: name, Session: session(id)}, func(c engine.Claimed, err error) {
			if err != nil {
				t.Errorf("claim %s: %v", name, err)
			}
			got <- c
		})
		return <-got
	}
	a := claim("alice", 1)
	claim("bob", 2)
	for i := range 3 {
		answered := make(chan error, 1)
		e.DM(engine.DMSend{From: a.User, FromGen: a.Gen, To: "bob", Text: "hi", TS: time.Now().UnixMilli(), Sender: session(1)},
			func(_ engine.DMSent, err error) { answered <- err })
		select {
		case err := <-answered:
			if err != nil {
				t.Fatalf("DM %d: %v", i, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("DM %d: no answer within 5s (its commit was missed)", i)
		}
	}
}
