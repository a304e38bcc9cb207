package enginetest

import (
	"context"
	"sync"

	"imload/server/engine"
)

// Async wraps an engine so that every done function is called after the
// method returns, from a goroutine of the wrapper's, in the order of the
// calls: as the Redis engine answers (after a round trip to Redis), where
// the local engine answers at once. What the wrapped engine does is
// unchanged (a Claim takes the name at once; its answer comes later).
// Pause holds the answers until Resume, so a test can look at a node while
// its commands wait.
type Async struct {
	engine.Engine

	mu      sync.Mutex
	queue   []func()
	paused  bool
	stopped bool
	wake    chan struct{}
	done    chan struct{}
	started bool
}

// NewAsync wraps e.
func NewAsync(e engine.Engine) *Async {
	return &Async{Engine: e, wake: make(chan struct{}, 1), done: make(chan struct{})}
}

// Start starts the wrapped engine and the goroutine that answers.
func (a *Async) Start(ctx context.Context, sink engine.Sink) error {
	if err := a.Engine.Start(ctx, sink); err != nil {
		return err
	}
	a.mu.Lock()
	a.started = true
	a.mu.Unlock()
	go a.run()
	return nil
}

// Close stops answering (answers still held are dropped: no done is called
// once Close has returned), then closes the wrapped engine.
func (a *Async) Close() error {
	a.mu.Lock()
	a.stopped = true
	started := a.started
	a.mu.Unlock()
	a.kick()
	if started {
		<-a.done
	}
	return a.Engine.Close()
}

// Pause holds every answer until Resume.
func (a *Async) Pause() {
	a.mu.Lock()
	a.paused = true
	a.mu.Unlock()
}

// Resume gives the answers held, and those that follow, again.
func (a *Async) Resume() {
	a.mu.Lock()
	a.paused = false
	a.mu.Unlock()
	a.kick()
}

// Held is the number of answers waiting.
func (a *Async) Held() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.queue)
}

func (a *Async) kick() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// later queues an answer.
func (a *Async) later(f func()) {
	a.mu.Lock()
	a.queue = append(a.queue, f)
	a.mu.Unlock()
	a.kick()
}

// run gives the queued answers, in order, until Close.
func (a *Async) run() {
	defer close(a.done)
	for range a.wake {
		for {
			a.mu.Lock()
			if a.stopped {
				a.queue = nil
				a.mu.Unlock()
				return
			}
			if a.paused || len(a.queue) == 0 {
				a.mu.Unlock()
				break
			}
			f := a.queue[0]
			a.queue[0] = nil
			a.queue = a.queue[1:]
			a.mu.Unlock()
			f()
		}
	}
}

// answer returns a done function that hands its answer to done later.
func answer[T any](a *Async, done func(T, error)) func(T, error) {
	return func(v T, err error) { a.later(func() { done(v, err) }) }
}

// Open opens through the wrapped engine; the log comes later.
func (a *Async) Open(name string, create bool, done func(engine.Opened, error)) {
	a.Engine.Open(name, create, answer(a, done))
}

// Who asks the wrapped engine; the answer comes later.
func (a *Async) Who(room string, done func([]engine.Present, error)) {
	a.Engine.Who(room, answer(a, done))
}

// Claim claims through the wrapped engine; the answer comes later.
func (a *Async) Claim(c engine.Claim, done func(engine.Claimed, error)) {
	a.Engine.Claim(c, answer(a, done))
}

// DM sends through the wrapped engine; the answer comes later (the
// deliveries are the wrapped engine's: the local engine's are made at
// once).
func (a *Async) DM(d engine.DMSend, done func(engine.DMSent, error)) {
	a.Engine.DM(d, answer(a, done))
}

// Nodes asks the wrapped engine; the answer comes later.
func (a *Async) Nodes(done func([]engine.Node, error)) {
	a.Engine.Nodes(answer(a, done))
}

// Disconnect asks the wrapped engine; the answer comes later (the local
// engine's Sink.Disconnect is made at once).
func (a *Async) Disconnect(name, reason string, done func(int, error)) {
	a.Engine.Disconnect(name, reason, answer(a, done))
}

// Conns asks the wrapped engine; the answer comes later.
func (a *Async) Conns(name string, done func([]engine.UserConn, error)) {
	a.Engine.Conns(name, answer(a, done))
}

// DMHistory reads through the wrapped engine; the answer comes later.
func (a *Async) DMHistory(q engine.DMQuery, done func(engine.DMPage, error)) {
	a.Engine.DMHistory(q, answer(a, done))
}

// DMList lists through the wrapped engine; the answer comes later.
func (a *Async) DMList(user, gen string, limit int, done func([]engine.DMConv, bool, error)) {
	a.Engine.DMList(user, gen, limit, func(cs []engine.DMConv, more bool, err error) {
		a.later(func() { done(cs, more, err) })
	})
}
