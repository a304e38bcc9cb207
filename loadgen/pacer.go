package loadgen

import (
	"math"
	"math/rand/v2"
	"time"
)

// A Pacer decides when a tab sends: Next returns the interval from one
// scheduled send to the next. Sends are scheduled in an open model: the next
// send time is the previous SCHEDULED time plus Next, whatever the server
// did meanwhile, and latency is measured from the scheduled time (so a slow
// server cannot slow the load down and hide its own latency: no coordinated
// omission). A Pacer is used by one scheduler goroutine at a time, with that
// goroutine's random source.
type Pacer interface {
	// Next returns the time until the next send. A negative value means
	// "never send again".
	Next(r *rand.Rand) time.Duration
	// Rate returns the mean number of sends per second.
	Rate() float64
}

// PoissonPacer sends at exponentially distributed intervals of mean 1/rate:
// a Poisson process, as independent users produce.
type PoissonPacer struct{ PerSecond float64 }

// Next returns an exponentially distributed interval.
func (p PoissonPacer) Next(r *rand.Rand) time.Duration {
	if p.PerSecond <= 0 {
		return -1
	}
	return time.Duration(r.ExpFloat64() / p.PerSecond * float64(time.Second))
}

// Rate returns the mean rate.
func (p PoissonPacer) Rate() float64 { return math.Max(p.PerSecond, 0) }

// ConstantPacer sends at a fixed interval of 1/rate (for tests).
type ConstantPacer struct{ PerSecond float64 }

// Next returns 1/rate.
func (p ConstantPacer) Next(*rand.Rand) time.Duration {
	if p.PerSecond <= 0 {
		return -1
	}
	return time.Duration(float64(time.Second) / p.PerSecond)
}

// Rate returns the rate.
func (p ConstantPacer) Rate() float64 { return math.Max(p.PerSecond, 0) }

// firstDelay returns the delay before a tab's first send: a uniformly random
// phase within one mean interval, so that tabs attached at the same moment
// do not send in lockstep (for a Poisson pacer this is also exact, as
// arrivals are memoryless; for a constant pacer it spreads the phases).
func firstDelay(p Pacer, r *rand.Rand) time.Duration {
	if p.Rate() <= 0 {
		return -1
	}
	if _, ok := p.(PoissonPacer); ok {
		return p.Next(r)
	}
	return time.Duration(r.Float64() * float64(time.Second) / p.Rate())
}

// ---- the scheduler's timer heap ----

// event kinds
const (
	evSend     = iota + 1 // a tab's scheduled send
	evPing                // a socket's heartbeat
	evTick                // once a second per shard: timeouts, dead links
	evFlush               // flush the shard's dirty sockets
	evConnect             // (re)connect a socket
	evTabClose            // churn: close a tab
	evTabOpen             // churn: reopen a tab
	evKill                // churn: kill a socket
	evResend              // retry a history page fetch
)

// event is one timer of a shard. at is in nanoseconds since the run's start.
type event struct {
	at   int64
	kind uint8
	gen  uint32 // socket generation for evPing/evConnect, to drop stale timers
	t    *tab
	s    *sock
	// sched is the scheduled send time (ns since start) for evSend.
	sched int64
}

// eventHeap is a min-heap of events ordered by time.
type eventHeap []event

func (h eventHeap) Len() int { return len(h) }

func (h *eventHeap) push(e event) {
	*h = append(*h, e)
	q := *h
	i := len(q) - 1
	for i > 0 {
		p := (i - 1) / 2
		if q[p].at <= q[i].at {
			break
		}
		q[p], q[i] = q[i], q[p]
		i = p
	}
}

func (h *eventHeap) pop() event {
	q := *h
	e := q[0]
	n := len(q) - 1
	q[0] = q[n]
	q[n] = event{}
	q = q[:n]
	i := 0
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && q[r].at < q[l].at {
			m = r
		}
		if q[i].at <= q[m].at {
			break
		}
		q[i], q[m] = q[m], q[i]
		i = m
	}
	*h = q
	return e
}

func (h eventHeap) peek() int64 { return h[0].at }
