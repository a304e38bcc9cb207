// Package local is the engine of one imload node on its own (see package
// engine): the rooms' logs in memory, kept in a history store (SQLite
// under --data, or nothing with --memory), the user-name table with its
// reservations, private messages between the node's users, and a node
// list of this node (or --lbs).
//
// Nothing it does waits: every done function is called before the method
// that takes it returns (but a DM's with a durable store and DM history:
// after its commit, from the store's writer goroutine), and the Sink is
// called by the store's writer goroutine (Ready, after a commit; a DM's
// deliveries after its commit) or, for the deliveries of a private
// message, on the goroutine of the DM call, before done.
package local

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"imload/server/engine"
	"imload/server/store"
)

// Options configures an Engine.
type Options struct {
	// Node names this node: the Node of the ConnRefs the node gives, and
	// its entry in the node list (default "local").
	Node string
	// OpenStore opens the history store and makes it report its commits
	// to onCommit (store.Options.OnCommit); nil keeps nothing
	// (store.NewMemory).
	OpenStore func(onCommit func([]store.Committed)) (store.Store, error)
	// Durable releases a message (Take returns it) only once the store
	// has committed it; without it a message is released as it is
	// published.
	Durable bool
	// HistoryMax bounds the messages a room retains (default 1000);
	// HistoryAge is the oldest message the engine loads from the store at
	// start (default 24h; later expiry is the node's, Log.Expire).
	HistoryMax int
	HistoryAge time.Duration
	// NameGrace is how long a name stays reserved to its token after its
	// last session goes (0 or less: not reserved); MaxReservedNames bounds
	// the names reserved at once (default 100,000), the oldest
	// reservation ending early beyond it (OnNameEvicted is then called).
	NameGrace        time.Duration
	MaxReservedNames int
	OnNameEvicted    func()
	// DMInRate and DMInBurst bound the private messages one user receives,
	// per second, from everyone (defaults 20 and 40).
	DMInRate  float64
	DMInBurst int
	// DMHistoryMax bounds the messages a conversation of private
	// messages retains (0: none are kept: DMs are live only);
	// DMHistoryAge is how long they are kept (default 7 days);
	// DMMaxConversations bounds the conversations kept (default
	// 100,000): beyond it the least recently active goes (OnDMEvicted is
	// then called).
	DMHistoryMax       int
	DMHistoryAge       time.Duration
	DMMaxConversations int
	OnDMEvicted        func()
	// LBS lists the addresses of the node list (/lbs), best first; empty
	// lists this node, at the address its clients used (Node.Advertise
	// "").
	LBS []string
	// Logger receives the engine's warnings (default: discard).
	Logger *slog.Logger
	// Now is the engine's clock (default time.Now).
	Now func() time.Time
}

func (o Options) withDefaults() Options {
	if o.Node == "" {
		o.Node = "local"
	}
	if o.HistoryMax <= 0 {
		o.HistoryMax = store.DefaultMaxMessages
	}
	if o.HistoryAge <= 0 {
		o.HistoryAge = store.DefaultMaxAge
	}
	if o.MaxReservedNames <= 0 {
		o.MaxReservedNames = 100000
	}
	if o.DMInRate <= 0 {
		o.DMInRate = 20
	}
	if o.DMInBurst <= 0 {
		o.DMInBurst = 40
	}
	if o.DMHistoryMax < 0 {
		o.DMHistoryMax = 0
	}
	if o.DMHistoryAge <= 0 {
		o.DMHistoryAge = store.DefaultDMMaxAge
	}
	if o.DMMaxConversations <= 0 {
		o.DMMaxConversations = 100000
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Engine is the local engine. Make it with New.
type Engine struct {
	opts  Options
	store store.Store
	sink  engine.Sink // set by Start

	rooms rooms
	users users
	dms   dms

	started   atomic.Bool
	closed    atomic.Bool
	stop      chan struct{} // closed by Close: the deletion feeder stops
	done      chan struct{} // closed when the feeder has stopped
	closeOnce sync.Once

	// afterDMAppend, if set (tests), runs between a durable DM's append
	// and the engine noting it as waiting for its commit, under users.mu.
	afterDMAppend func()
}

var _ engine.Engine = (*Engine)(nil)

// New opens the store and loads the rooms it holds (Retained lists them).
// Close releases the store, whether Start was called or not.
func New(ctx context.Context, opts Options) (*Engine, error) {
	e := &Engine{opts: opts.withDefaults(), stop: make(chan struct{}), done: make(chan struct{})}
	e.rooms.m = make(map[string]*log)
	e.users.m = make(map[string]*user)
	e.dms.m = make(map[string]*conv)
	e.dms.byUser = make(map[string]map[*conv]struct{})
	if e.opts.OpenStore == nil {
		e.store = store.NewMemory()
	} else {
		st, err := e.opts.OpenStore(e.onCommit)
		if err != nil {
			return nil, fmt.Errorf("local engine: open the store: %w", err)
		}
		e.store = st
	}
	if err := e.load(ctx); err != nil {
		_ = e.store.Close()
		return nil, fmt.Errorf("local engine: load the rooms: %w", err)
	}
	if err := e.loadDMs(ctx); err != nil {
		_ = e.store.Close()
		return nil, fmt.Errorf("local engine: load the conversations: %w", err)
	}
	return e, nil
}

// Start records the node's sink and starts the goroutine that hands the
// store the deletions of dropped rooms.
func (e *Engine) Start(_ context.Context, sink engine.Sink) error {
	if sink == nil {
		return errors.New("local engine: Start without a sink")
	}
	if e.started.Swap(true) {
		return errors.New("local engine: started twice")
	}
	e.sink = sink
	go e.feedDeletions()
	return nil
}

// Health is nil while the store writes; else why not (wrapping
// engine.ErrUnavailable).
func (e *Engine) Health() error {
	if e.closed.Load() {
		return fmt.Errorf("%w: %w", engine.ErrUnavailable, engine.ErrClosed)
	}
	if err := e.store.Err(); err != nil {
		return fmt.Errorf("%w: history store: %w", engine.ErrUnavailable, err)
	}
	return nil
}

// Close stops the deletion feeder and closes the store, which writes what
// is queued first (and reports those commits: Sink.Ready may be called
// until Close returns).
func (e *Engine) Close() error {
	var err error
	e.closeOnce.Do(func() {
		e.closed.Store(true)
		close(e.stop)
		if e.started.Load() {
			<-e.done
		}
		if cerr := e.store.Close(); cerr != nil {
			err = fmt.Errorf("local engine: close the store: %w", cerr)
		}
		e.failPending()
	})
	return err
}

// Nodes lists this node, or the --lbs addresses.
func (e *Engine) Nodes(done func([]engine.Node, error)) {
	if len(e.opts.LBS) == 0 {
		done([]engine.Node{{ID: e.opts.Node, Conns: e.sink.Conns()}}, nil)
		return
	}
	nodes := make([]engine.Node, len(e.opts.LBS))
	for i, a := range e.opts.LBS {
		nodes[i] = engine.Node{ID: a, Advertise: a}
	}
	done(nodes, nil)
}

// unavailable is the error of a request the store refused.
func unavailable(err error) error {
	if errors.Is(err, store.ErrClosed) {
		return fmt.Errorf("%w: %w", engine.ErrClosed, err)
	}
	return fmt.Errorf("%w: %w", engine.ErrUnavailable, err)
}

// randomID returns n random bytes as hex.
func randomID(n int) string {
	b := make([]byte, n)
	rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b)
}
