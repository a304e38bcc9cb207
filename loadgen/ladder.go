package loadgen

import (
	"math/rand/v2"
	"time"

	"imload/reports"
)

// LadderConfig is the reconnect ladder of a browser, as the seed article's
// client does it (§3.1.3) and the browser side does it
// (worker-js/static/core/backoff.js; both are tested against
// testdata/ladder.json): retry the same address with exponential back-off
// and jitter; after RetrySame failures move to the next address of the list;
// when every address has failed, fetch the address list (/lbs) again and
// start over; after Refetches such rounds, give up and report the browser
// as lost.
type LadderConfig struct {
	// RetrySame is the number of attempts on one address before moving on.
	RetrySame int
	// Base is the first back-off delay, doubled at each failed attempt since
	// the last success (whatever the step: retry, switch or refetch) up to
	// Max.
	Base time.Duration
	// Max is the longest delay, jitter included.
	Max time.Duration
	// Jitter is the relative random spread of every delay (0.5 = ±50%,
	// as socket.io does), cut at Max.
	Jitter float64
	// Refetches is how many times the address list is fetched again before
	// giving up.
	Refetches int
}

// DefaultLadder returns the default ladder: 4 tries per address from 250 ms
// doubling to 5 s with ±50% jitter, 3 refetches of /lbs.
func DefaultLadder() LadderConfig {
	return LadderConfig{RetrySame: 4, Base: 250 * time.Millisecond, Max: 5 * time.Second, Jitter: 0.5, Refetches: 3}
}

func (c LadderConfig) withDefaults() LadderConfig {
	d := DefaultLadder()
	if c.RetrySame <= 0 {
		c.RetrySame = d.RetrySame
	}
	if c.Base <= 0 {
		c.Base = d.Base
	}
	if c.Max <= 0 {
		c.Max = d.Max
	}
	if c.Max < c.Base {
		c.Max = c.Base
	}
	if c.Jitter < 0 || c.Jitter >= 1 {
		c.Jitter = d.Jitter
	}
	if c.Refetches < 0 {
		c.Refetches = 0
	}
	return c
}

// Ladder is the reconnect state of one socket. It is not safe for
// concurrent use. The zero Ladder is not usable: use NewLadder.
type Ladder struct {
	cfg       LadderConfig
	nAddrs    int // addresses in the current list
	addr      int // index of the current address
	tries     int // failures on the current address
	left      int // addresses left behind in this round of the list
	attempts  int // failures since the last success: the back-off's exponent
	refetches int // list refetches since the last success
}

// Step is one decision of the ladder.
type Step struct {
	// Name is reports.StepRetry, StepSwitch, StepRefetch or StepGiveUp.
	Name string
	// Addr is the index of the address to try (after a refetch: in the new
	// list, which the caller installs with SetAddrs before dialling).
	Addr int
	// Delay is the wait before the attempt.
	Delay time.Duration
}

// NewLadder returns a ladder over a list of nAddrs addresses, starting at
// address start (mod nAddrs).
func NewLadder(cfg LadderConfig, nAddrs, start int) *Ladder {
	if nAddrs < 1 {
		nAddrs = 1
	}
	return &Ladder{cfg: cfg.withDefaults(), nAddrs: nAddrs, addr: start % nAddrs}
}

// Addr returns the index of the current address.
func (l *Ladder) Addr() int { return l.addr }

// SetAddrs installs a new address list of n entries (after a refetch) and
// starts again at its first address.
func (l *Ladder) SetAddrs(n int) {
	if n < 1 {
		n = 1
	}
	l.nAddrs, l.addr, l.tries, l.left = n, 0, 0, 0
}

// Success resets the ladder after a connection was established and resumed.
// The socket stays on the address that worked (the browser's hub goes back
// to the first address of its list instead: sockets of the load generator
// start spread over the list, see NewLadder).
func (l *Ladder) Success() { l.tries, l.left, l.attempts, l.refetches = 0, 0, 0, 0 }

// Failed records a failed connection (or a lost link) and returns what to do
// next. Every step but the last waits Base·2^(n-1), n the failures since the
// last success, capped at Max and jittered within the cap. r is the random
// source for jitter (nil: the global one); a step that waits draws one value
// from it when Jitter > 0.
func (l *Ladder) Failed(r *rand.Rand) Step {
	l.tries++
	l.attempts++
	var name string
	switch {
	case l.tries < l.cfg.RetrySame:
		name = reports.StepRetry
	case l.left+1 < l.nAddrs:
		// This address has had its RetrySame attempts: the next one.
		l.left++
		l.addr = (l.addr + 1) % l.nAddrs
		l.tries = 0
		name = reports.StepSwitch
	case l.refetches < l.cfg.Refetches:
		// Every address has failed RetrySame times: fetch the list again
		// and start over at its first address.
		l.refetches++
		l.addr, l.tries, l.left = 0, 0, 0
		name = reports.StepRefetch
	default:
		return Step{Name: reports.StepGiveUp, Addr: l.addr}
	}
	return Step{Name: name, Addr: l.addr, Delay: l.backoff(l.attempts, r)}
}

// backoff returns Base·2^(n-1), capped at Max, with jitter, capped at Max.
func (l *Ladder) backoff(n int, r *rand.Rand) time.Duration {
	d := l.cfg.Base
	for i := 1; i < n && d < l.cfg.Max; i++ {
		d *= 2
	}
	return min(l.cfg.Max, l.jitter(min(l.cfg.Max, d), r))
}

func (l *Ladder) jitter(d time.Duration, r *rand.Rand) time.Duration {
	if l.cfg.Jitter <= 0 {
		return d
	}
	u := rand.Float64()
	if r != nil {
		u = r.Float64()
	}
	f := 1 + l.cfg.Jitter*(2*u-1)
	return time.Duration(float64(d) * f)
}
