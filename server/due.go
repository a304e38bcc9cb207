package server

// due is something to do at a time (the server's clock, ns): a connection
// the pacer writes (pace.go), a room whose presence is flushed
// (presence.go).
type due[T any] struct {
	at int64
	v  T
}

// dueHeap is a min-heap of due items by time, for container/heap.
type dueHeap[T any] []due[T]

func (h dueHeap[T]) Len() int           { return len(h) }
func (h dueHeap[T]) Less(i, j int) bool { return h[i].at < h[j].at }
func (h dueHeap[T]) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *dueHeap[T]) Push(x any)        { *h = append(*h, x.(due[T])) }
func (h *dueHeap[T]) Pop() any {
	old := *h
	x := old[len(old)-1]
	old[len(old)-1] = due[T]{} // drop the reference
	*h = old[:len(old)-1]
	return x
}
