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
