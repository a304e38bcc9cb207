package store

import (
	"sync"

	"imload/mux"
)

// opKind is the kind of a queued change.
type opKind uint8

const (
	opCreate opKind = iota + 1 // CreateRoom: m.Room, m.Epoch, m.TS = created ms
	opDelete                   // DeleteRoom: m.Room
	opAppend                   // Append: m
	opFlush                    // Flush: done receives the outcome
)

// op is one queued change, or a flush marker.
type op struct {
	kind opKind
	m    mux.Message
	done chan error // opFlush only; buffered, so the writer never blocks
}

// queue hands changes from any goroutine to the writer, in order. It holds
// at most max changes that are queued or being written (flush markers do
// not count): put blocks while that many are held, which is how a slow
// disk pushes back on the senders.
type queue struct {
	mu      sync.Mutex
	notFull sync.Cond
	pending []op
	spare   []op // the writer's last batch, cleared, to reuse
	held    int  // changes queued or taken and not yet released
	flushes int  // flush markers in pending
	closed  bool
	max     int
	batch   int
	wake    chan struct{} // capacity 1: "look at the queue"
}

func newQueue(max, batch int) *queue {
	q := &queue{max: max, batch: batch, wake: make(chan struct{}, 1)}
	q.notFull.L = &q.mu
	return q
}

// signal wakes the writer, or leaves it a token if it is busy.
func (q *queue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// put queues a change, waiting while the queue is full. It returns false,
// without queuing, once the queue is closed.
func (q *queue) put(o op) bool {
	q.mu.Lock()
	if q.held >= q.max && !q.closed {
		// Full: make sure the writer is not lingering, then wait.
		q.signal()
		for q.held >= q.max && !q.closed {
			q.notFull.Wait()
		}
	}
	if q.closed {
		q.mu.Unlock()
		return false
	}
	q.pending = append(q.pending, o)
	q.held++
	n := len(q.pending)
	q.mu.Unlock()
	// The first change starts the writer's linger; a full batch ends it.
	if n == 1 || n%q.batch == 0 {
		q.signal()
	}
	return true
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

// close makes put and putFlush refuse, wakes every waiting put and the
// writer. It reports whether the queue was open.
func (q *queue) close() bool {
	q.mu.Lock()
	was := !q.closed
	q.closed = true
	q.notFull.Broadcast()
	q.mu.Unlock()
	q.signal()
	return was
}

// take returns the pending ops if they are due: force is set (the linger is
// over), the queue is closed, a flush is asked for, a batch is full or the
// queue is.
// Otherwise it returns nil and how many are pending. closed reports whether
// the queue was closed; if so, nothing can be queued after what take
// returned.
func (q *queue) take(force bool) (ops []op, pending int, closed bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := len(q.pending)
	if n == 0 || !(force || q.closed || q.flushes > 0 || n >= q.batch || q.held >= q.max) {
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
	q.notFull.Broadcast()
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
