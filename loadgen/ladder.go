package loadgen

import (
	"math/rand/v2"
	"time"

	"imload/reports"
)

// LadderConfig is the reconnect ladder of a browser, as the seed article's
// client does it (§3.1.3): retry the same address with exponential back-off
// and jitter; after RetrySame failures move to the next address of the list;
// when every address has failed, fetch the address list (/lbs) again and
// start over; after Refetches such rounds, give up and report the browser
// as lost.
type LadderConfig struct {
	// RetrySame is the number of attempts on one address before moving on.
	RetrySame int
	// Base is the first back-off delay, doubled at each retry up to Max.
	Base time.Duration
	Max  time.Duration
	// Jitter is the relative random spread of every delay (0.5 = ±50%,
	// as socket.io does).
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
	l.nAddrs, l.addr, l.tries = n, 0, 0
}

// Success resets the ladder after a connection was established and resumed.
// The socket stays on the address that worked.
func (l *Ladder) Success() { l.tries, l.refetches = 0, 0 }

// Failed records a failed connection (or a lost link) and returns what to do
// next. r is the random source for jitter (nil: the global one).
func (l *Ladder) Failed(r *rand.Rand) Step {
	l.tries++
	if l.tries < l.cfg.RetrySame {
		return Step{Name: reports.StepRetry, Addr: l.addr, Delay: l.backoff(l.tries, r)}
	}
	// This address has had its RetrySame attempts.
	switched := l.tries / l.cfg.RetrySame // addresses tried in this round
	if switched < l.nAddrs {
		if l.tries%l.cfg.RetrySame == 0 {
			l.addr = (l.addr + 1) % l.nAddrs
			return Step{Name: reports.StepSwitch, Addr: l.addr, Delay: l.jitter(l.cfg.Base, r)}
		}
		return Step{Name: reports.StepRetry, Addr: l.addr, Delay: l.backoff(l.tries%l.cfg.RetrySame, r)}
	}
	// Every address has failed RetrySame times.
	if l.refetches < l.cfg.Refetches {
		l.refetches++
		l.tries = 0
		l.addr = 0
		return Step{Name: reports.StepRefetch, Addr: 0, Delay: l.backoff(l.refetches+1, r)}
	}
	return Step{Name: reports.StepGiveUp, Addr: l.addr}
}

// backoff returns Base·2^(n-1), capped at Max, with jitter.
func (l *Ladder) backoff(n int, r *rand.Rand) time.Duration {
	d := l.cfg.Base
	for i := 1; i < n && d < l.cfg.Max; i++ {
		d *= 2
	}
	if d > l.cfg.Max {
		d = l.cfg.Max
	}
	return l.jitter(d, r)
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
