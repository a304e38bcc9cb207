package store

import (
	"sync"

	"imload/mux"
)

// opKind is what a queued change does.
type opKind uint8

const (
	opCreate opKind = iota + 1 // CreateRoom, CreateConv: m.Room, m.Epoch, m.TS = created ms
	opDelete                   // DeleteRoom, DeleteConv: m.Room, m.Epoch
	opAppend                   // Append, AppendDM: m
	opFlush                    // Flush: done receives the outcome
)

// op is one queued change, or a flush marker.
type op struct {
	op   opKind
	kind logKind // a room's change, or a conversation's
	m    mux.Message
	conv *ConvMeta  // CreateConv only: its users and generations
	done chan error // opFlush only; buffered, so the writer never blocks
}

// queue hands changes from any goroutine to the writer, in order. It holds
// at most max changes that are queued or being written (flush markers do
// not count): put refuses a change beyond that (ErrFull) instead of
// waiting, so that a caller holding a lock (the hub queues a room's
// messages under the room's lock, to keep their order) never waits for the
// disk.
type queue struct {
	mu      sync.Mutex
	pending []op
	spare   []op // the writer's last batch, cleared, to reuse
	held    int  // changes queued or taken and not yet released
	flushes int  // flush markers in pending
	closed  bool
	max     int
	batch   int
	eager   bool          // no linger: every change is due at once (durable mode)
	wake    chan struct{} // capacity 1: "look at the queue"
}

func newQueue(max, batch int, eager bool) *queue {
	return &queue{max: max, batch: batch, eager: eager, wake: make(chan struct{}, 1)}
}

// signal wakes the writer, or leaves it a token if it is busy.
func (q *queue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// put queues a change without waiting: ErrFull when limit changes (at
// most max) are held already, ErrClosed once the queue is closed. A change
// that can wait (a deletion by the janitor) is put with a lower limit, so
// that it never takes the room that messages need.
func (q *queue) put(o op, limit int) error {
	q.mu.Lock()
	switch {
	case q.closed:
		q.mu.Unlock()
		return ErrClosed
	case q.held >= min(limit, q.max):
		q.mu.Unlock()
		q.signal() // make sure the writer is not lingering
		return ErrFull
	}
	q.pending = append(q.pending, o)
	q.held++
	n := len(q.pending)
	q.mu.Unlock()
	// The first change starts the writer's linger (or, eager, wakes it); a
	// full batch ends the linger.
	if n == 1 || n%q.batch == 0 {
		q.signal()
	}
	return nil
}

// putFlush queues a flush marker without waiting for room. It returns false
// once the queue is closed.
func (q *queue) putFlush(o op) bool {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return false
	}
	q.pending = append(q.pending, o)
	q.flushes++
	q.mu.Unlock()
	q.signal()
	return true
}

// close makes put and putFlush refuse and wakes the writer. It reports
// whether the queue was open.
func (q *queue) close() bool {
	q.mu.Lock()
	was := !q.closed
	q.closed = true
	q.mu.Unlock()
	q.signal()
	return was
}

// isClosed reports whether close was called.
func (q *queue) isClosed() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.closed
}

// take returns the pending ops if they are due: the queue is eager, force
// is set (the linger is over), the queue is closed, a flush is asked for, a
// batch is full or the queue is.
// Otherwise it returns nil and how many are pending. closed reports whether
// the queue was closed; if so, nothing can be queued after what take
// returned.
func (q *queue) take(force bool) (ops []op, pending int, closed bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := len(q.pending)
	if n == 0 || !(q.eager || force || q.closed || q.flushes > 0 || n >= q.batch || q.held >= q.max) {
		return nil, n, q.closed
	}
	ops = q.pending
	q.pending, q.spare = q.spare, nil
	q.flushes = 0
	return ops, n, q.closed
}

// release frees room for n changes that were written (or dropped).
func (q *queue) release(n int) {
	if n == 0 {
		return
	}
	q.mu.Lock()
	q.held -= n
	q.mu.Unlock()
}

// recycle gives back a slice returned by take, to be reused as the next
// pending slice (unless a backlog made it large: that memory is let go).
func (q *queue) recycle(ops []op) {
	if cap(ops) > 8*q.batch {
		return
	}
	clear(ops) // drop references to the message strings
	q.mu.Lock()
	if q.spare == nil {
		q.spare = ops[:0]
	}
	q.mu.Unlock()
}
