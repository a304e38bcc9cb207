// Package redis is the Redis engine (see package engine): any number of
// imload nodes share every room, user name, presence list and private
// message through one Redis (or a Redis Cluster: every script touches one
// slot, and channels are sharded). docs/scaling.md describes the model.
//
// No method waits for Redis: a request goes into a bounded queue (a shard,
// chosen by the hash tag of its room or user, so that the requests of one
// room or user reach Redis in the order they were made), each shard sends
// what it has queued as one pipelined batch (DoMulti), and the answers
// come back through the done functions, Take and the Sink, from the
// engine's goroutines. Messages published on the channels of the rooms
// and users this node holds arrive on one dedicated connection; a
// dispatcher goroutine hands them to the rooms' logs (replicas of the
// rooms' streams) and to the Sink.
package redis

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"imload/server/engine"
)

// Options configures an Engine.
type Options struct {
	// URL is the Redis to use: redis://[user:password@]host:port/db.
	URL string
	// Prefix goes before every key and channel name (tests share one
	// redis-server with a prefix each; pub/sub ignores database indexes).
	Prefix string
	// Node is this node's id in the node list and in presence and session
	// entries (required; no '|', no white space).
	Node string
	// Advertise is the ws:// URL clients reach this node at, for /lbs ("":
	// the URL a client used).
	Advertise string
	// HistoryMax bounds the messages a room retains (default 1000);
	// HistoryAge is the oldest message a node loads when it opens a room,
	// and how long a room's keys live once nobody writes to or holds it
	// (default 24h).
	HistoryMax int
	HistoryAge time.Duration
	// NameGrace is how long a name stays reserved to its token after its
	// last session on every node goes (0: not reserved). MaxReservedNames
	// bounds the reservations this node keeps track of (default 100,000):
	// beyond it the oldest ends early (OnNameEvicted is then called).
	NameGrace        time.Duration
	MaxReservedNames int
	OnNameEvicted    func()
	// DMInRate and DMInBurst bound the private messages one user receives
	// per second from everyone, on every node (defaults 20 and 40).
	DMInRate  float64
	DMInBurst int
	// DMHistoryMax bounds the messages a conversation of private messages
	// retains (0: none are kept, DMs are live only); DMHistoryAge is how
	// long they are kept (default 7 days), and how long a conversation's
	// keys live after its last message; DMMaxConversations bounds the
	// conversations of the deployment (default 100,000): beyond it the
	// least recently active go (OnDMEvicted is called for each this node
	// deletes).
	DMHistoryMax       int
	DMHistoryAge       time.Duration
	DMMaxConversations int
	OnDMEvicted        func()
	// Shards is the number of request queues, each sending its requests
	// in order as pipelined batches (default 4); QueueLen bounds the
	// requests queued in each (default 8192): beyond it a request is
	// refused with engine.ErrUnavailable.
	Shards   int
	QueueLen int
	// InboxLen bounds the published messages received and not yet handed
	// to the logs (default 65536): beyond it they are dropped and every
	// open room resynchronises from its stream.
	InboxLen int
	// OpTimeout bounds a batch's round trip to Redis (default 5s).
	OpTimeout time.Duration
	// NodeTTL is how long a node stays in the node list after its last
	// heartbeat (default 3s); heartbeats go every NodeTTL/3.
	NodeTTL time.Duration
	// SessionTTL is how long a session, and a presence entry, outlive the
	// last refresh of their node (default 15s); refreshes go every
	// SessionTTL/3.
	SessionTTL time.Duration
	// Logger receives the engine's warnings (default: discard).
	Logger *slog.Logger
	// Now is the engine's clock (default time.Now).
	Now func() time.Time
}

func (o Options) withDefaults() Options {
	if o.HistoryMax <= 0 {
		o.HistoryMax = 1000
	}
	if o.HistoryAge <= 0 {
		o.HistoryAge = 24 * time.Hour
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
		o.DMHistoryAge = 7 * 24 * time.Hour
	}
	if o.DMMaxConversations <= 0 {
		o.DMMaxConversations = 100000
	}
	if o.Shards <= 0 {
		o.Shards = 4
	}
	if o.QueueLen <= 0 {
		o.QueueLen = 8192
	}
	if o.InboxLen <= 0 {
		o.InboxLen = 65536
	}
	if o.OpTimeout <= 0 {
		o.OpTimeout = 5 * time.Second
	}
	if o.NodeTTL <= 0 {
		o.NodeTTL = 3 * time.Second
	}
	if o.SessionTTL <= 0 {
		o.SessionTTL = 15 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// CheckNode returns an error if id cannot name a node.
func CheckNode(id string) error {
	if id == "" || len(id) > 200 || strings.ContainsAny(id, "| \t\r\n{}") {
		return fmt.Errorf("node id %q: it must be 1-200 bytes without '|', braces or white space", id)
	}
	return nil
}

// Engine is the Redis engine. Make it with New.
type Engine struct {
	opts   Options
	client rueidis.Client
	sc     *scripts
	sink   engine.Sink // set by Start

	shards []*shard
	sub    *subscriber
	inbox  chan rueidis.PubSubMessage
	// resync is signalled when the inbox overflowed: every log fills
	// itself from its stream.
	resync chan struct{}
	// beatWake makes the heartbeat beat and refresh at once.
	beatWake chan struct{}

	ticket    atomic.Uint64
	epochBase uint64 // random: newEpoch counts from it
	epochSeq  atomic.Uint64
	rooms     roomTable
	users     userTable
	nodes     nodeTable
	authors   authorTable
	stats     counters
	dmStats   dmCounters

	ctx      context.Context // cancelled by Close, after the shards drained
	cancel   context.CancelFunc
	stop     chan struct{} // closed by Close
	wg       sync.WaitGroup
	started  atomic.Bool
	closed   atomic.Bool
	closeMu  sync.Mutex
	isClosed bool
}

var _ engine.Engine = (*Engine)(nil)

// New connects to Redis (it fails if Redis cannot be reached now; later
// the engine reconnects by itself).
func New(opts Options) (*Engine, error) {
	o := opts.withDefaults()
	if err := CheckNode(o.Node); err != nil {
		return nil, fmt.Errorf("redis engine: %w", err)
	}
	co, err := rueidis.ParseURL(o.URL)
	if err != nil {
		return nil, fmt.Errorf("redis engine: --redis %q: %w", o.URL, err)
	}
	co.DisableCache = true // the engine never reads a key twice unchanged (docs/benchmarks.md)
	co.ConnWriteTimeout = o.OpTimeout
	// One pipelined connection for every request (rueidis makes 4 by
	// default and spreads commands over them at random): the batches of
	// the shards and the heartbeat then reach Redis in the order they are
	// sent, and once a heartbeat has gone through after Redis came back,
	// the connection the sends use has too (a dead connection fails the
	// first command on it).
	co.PipelineMultiplex = -1
	client, err := rueidis.NewClient(co)
	if err != nil {
		return nil, fmt.Errorf("redis engine: connect to %s: %w", redactURL(o.URL), err)
	}
	sc, err := loadScripts()
	if err != nil {
		client.Close()
		return nil, err
	}
	e := &Engine{
		opts: o, client: client, sc: sc,
		inbox:    make(chan rueidis.PubSubMessage, o.InboxLen),
		resync:   make(chan struct{}, 1),
		beatWake: make(chan struct{}, 1),
		stop:     make(chan struct{}),
	}
	e.ctx, e.cancel = context.WithCancel(context.Background())
	var seed [8]byte
	rand.Read(seed[:])
	e.epochBase = binary.LittleEndian.Uint64(seed[:])
	e.rooms.m = make(map[string][]*log)
	e.rooms.present = make(map[string]map[string]struct{})
	e.users.m = make(map[string]*localUser)
	e.users.reserved = make(map[string]reservation)
	e.nodes.gone = make(map[string]time.Time)
	e.authors.m = make(map[engine.Author]*engine.Author)
	e.shards = make([]*shard, o.Shards)
	for i := range e.shards {
		e.shards[i] = &shard{e: e, wake: make(chan struct{}, 1)}
	}
	e.sub = newSubscriber(e)
	return e, nil
}

// redactURL hides a password in a Redis URL.
func redactURL(u string) string {
	if i := strings.Index(u, "@"); i >= 0 {
		if j := strings.Index(u, "://"); j >= 0 && j < i {
			return u[:j+3] + "…@" + u[i+1:]
		}
	}
	return u
}

// Start starts the engine's goroutines (the shards, the subscriber and
// its dispatcher, the heartbeat) and waits until the subscription
// connection is up and the node registered, at most until ctx is done or
// 10 s have passed.
func (e *Engine) Start(ctx context.Context, sink engine.Sink) error {
	if sink == nil {
		return errors.New("redis engine: Start without a sink")
	}
	if e.started.Swap(true) {
		return errors.New("redis engine: started twice")
	}
	e.sink = sink
	for _, s := range e.shards {
		e.wg.Add(1)
		go s.run()
	}
	e.wg.Add(3)
	go e.sub.run()
	go e.dispatch()
	go e.beatLoop()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for e.Health() != nil {
		select {
		case <-ctx.Done():
			return fmt.Errorf("redis engine: start: %w", e.Health())
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
}

// Health is nil while the subscription connection is up and the last
// heartbeat went through; else why not, wrapping engine.ErrUnavailable.
func (e *Engine) Health() error {
	if e.closed.Load() {
		return fmt.Errorf("%w: %w", engine.ErrUnavailable, engine.ErrClosed)
	}
	if err := e.sub.err(); err != nil {
		return fmt.Errorf("%w: redis: %w", engine.ErrUnavailable, err)
	}
	if err := e.nodes.err(); err != nil {
		return fmt.Errorf("%w: redis: %w", engine.ErrUnavailable, err)
	}
	return nil
}

// Close deregisters the node, sends what is queued (within OpTimeout),
// and stops every goroutine of the engine.
func (e *Engine) Close() error { return e.close(true) }

// close stops the engine; without goodbye it leaves the node's entries
// in Redis to expire, as a node that died would.
func (e *Engine) close(goodbye bool) error {
	e.closeMu.Lock()
	defer e.closeMu.Unlock()
	if e.isClosed {
		return nil
	}
	e.isClosed = true
	e.closed.Store(true)
	if goodbye && e.started.Load() {
		e.deregister()
	}
	close(e.stop)
	e.wg.Wait()
	e.cancel()
	e.client.Close()
	return nil
}

// unavailable wraps an error of Redis as engine.ErrUnavailable (or
// engine.ErrClosed once the engine is closing).
func (e *Engine) unavailable(what string, err error) error {
	if e.closed.Load() {
		return fmt.Errorf("%w: redis engine: %s: %w", engine.ErrClosed, what, err)
	}
	return fmt.Errorf("%w: redis: %s: %w", engine.ErrUnavailable, what, err)
}

// errQueueFull is the error of a request refused because its queue is full.
var errQueueFull = errors.New("request queue full")

// now is the engine's clock in Unix ms.
func (e *Engine) now() int64 { return e.opts.Now().UnixMilli() }

// randomID returns n random bytes as hex.
func randomID(n int) string {
	b := make([]byte, n)
	rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b)
}

// authorTable interns the authors of other nodes' messages: one pointer
// per name, colour and display name, shared by the entries of every room.
type authorTable struct {
	mu sync.Mutex
	m  map[engine.Author]*engine.Author
}

// author returns the shared Author of name, colour and display name.
func (e *Engine) author(name, color, display string) *engine.Author {
	t := &e.authors
	t.mu.Lock()
	defer t.mu.Unlock()
	k := engine.Author{Name: name, Color: color, Display: display}
	if a := t.m[k]; a != nil {
		return a
	}
	if len(t.m) >= 100000 {
		clear(t.m) // the entries keep their pointers; new ones get new ones
	}
	a := &k
	t.m[k] = a
	return a
}
