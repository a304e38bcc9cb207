package server

import (
	"container/heap"
	"sync"
)

// expiries are the sessions whose token expires (--auth jwt), in one
// min-heap by the time each is next due: its token_expiring push, then
// its expiry. One entry per session, whatever its refreshes: a refresh
// moves the session's entry (heap.Fix), a detach removes it, so the heap
// holds exactly the sessions with a token, and a janitor tick costs the
// sessions due in it (and a look at the top when none is). No timer per
// session.
type expiries struct {
	mu sync.Mutex
	h  expHeap
	// popped is the sweep's scratch, kept between ticks.
	popped []*session
}

// expHeap orders sessions by tok.due; each knows its index (tok.idx).
type expHeap []*session

func (h expHeap) Len() int           { return len(h) }
func (h expHeap) Less(i, j int) bool { return h[i].tok.due < h[j].tok.due }
func (h expHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].tok.idx, h[j].tok.idx = int32(i), int32(j)
}
func (h *expHeap) Push(x any) {
	s := x.(*session)
	s.tok.idx = int32(len(*h))
	*h = append(*h, s)
}
func (h *expHeap) Pop() any {
	old := *h
	s := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	s.tok.idx = -1
	return s
}

// schedule makes s (which has a token) due at due (Unix ns):
// added, or moved if it is in the heap already.
func (e *expiries) schedule(s *session, due int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	s.tok.due = due
	if s.tok.idx >= 0 {
		heap.Fix(&e.h, int(s.tok.idx))
		return
	}
	heap.Push(&e.h, s)
}

// remove takes s out of the heap (it is detached).
func (e *expiries) remove(s *session) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if s.tok.idx >= 0 {
		heap.Remove(&e.h, int(s.tok.idx))
	}
	if cap(e.h) > 4096 && len(e.h) < cap(e.h)/4 {
		e.h = append(expHeap(nil), e.h...) // many went: let the array go
	}
}

// popDue takes the sessions due at now out of the heap (the slice is
// reused by the next call). The caller handles each under its
// connection's lock, and schedules it again if it stays.
func (e *expiries) popDue(now int64) []*session {
	e.mu.Lock()
	defer e.mu.Unlock()
	clear(e.popped)
	e.popped = e.popped[:0]
	for len(e.h) > 0 && e.h[0].tok.due <= now {
		e.popped = append(e.popped, heap.Pop(&e.h).(*session))
	}
	return e.popped
}

// size is the number of sessions with a token.
func (e *expiries) size() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.h)
}
