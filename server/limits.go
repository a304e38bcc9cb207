package server

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"imload/mux"
)

// Rate limits above the session's (checkSender: send and dm per session):
//
//   - per connection: every command of every session of the connection
//     (join, leave and nick included), ConnRate/ConnBurst, kept as one
//     timestamp per connection (a GCRA, like the write pace);
//   - per source address: the commands of all its connections together
//     (IPRate/IPBurst) and its open connections (MaxConnsPerIP, refused
//     with HTTP 429 before the upgrade), in ipTable; IPv6 addresses count
//     per /64, the block one host usually holds; IPLimitExempt (loopback by
//     default) is not limited;
//   - per receiver: the private messages one user receives, DMInRate/
//     DMInBurst, whoever sends them.
//
// Each refusal has its own error name (mux.Err*RateLimited,
// ErrRecipientBusy, ErrIPConnLimited) and counter.

// gcraAllow reports whether one more event at now (ns) fits a bucket of
// burst events refilled one per interval (ns), and takes it if so. tat is
// the bucket's theoretical arrival time, the bucket's whole state.
func gcraAllow(tat *int64, now, interval int64, burst int) bool {
	t := max(*tat, now)
	if t-now > int64(burst-1)*interval {
		return false
	}
	*tat = t + interval
	return true
}

// admitCmd counts one command of c against its connection's and its
// address's limits. Called under c.readMu.
func (c *conn) admitCmd() error {
	cfg := &c.srv.cfg
	if !gcraAllow(&c.cmdTAT, c.srv.clock(), int64(float64(time.Second)/cfg.ConnRate), cfg.ConnBurst) {
		c.srv.counters.connRateLimited.Add(1)
		return mux.Errorf(mux.CodeRateLimited, mux.ErrConnRateLimited, "this connection sends more than %g commands per second (burst %d): slow down", cfg.ConnRate, cfg.ConnBurst)
	}
	if c.ip != nil && !c.ip.lim.Allow() {
		c.srv.counters.ipRateLimited.Add(1)
		return mux.Errorf(mux.CodeRateLimited, mux.ErrIPRateLimited, "your address sends more than %g commands per second (burst %d) on all its connections: slow down", cfg.IPRate, cfg.IPBurst)
	}
	return nil
}

// ipEntry is one source address (or IPv6 /64): its open connections and
// its command bucket.
type ipEntry struct {
	addr  netip.Addr
	conns int           // under ipTable.mu
	lim   *rate.Limiter // commands of all its connections (its own lock)
}

// ipTable holds the addresses with open connections, and for a while the
// ones without (until their bucket is full again, so that reconnecting
// does not refill it). It is bounded: entries with connections are at most
// the open connections; idle ones are swept once a second, or when the
// table has doubled since the last sweep, and beyond maxIdleIPs the idle
// ones go even with a partly empty bucket.
type ipTable struct {
	cfg    *Config
	exempt []netip.Prefix

	mu        sync.Mutex
	m         map[netip.Addr]*ipEntry
	lastSweep time.Time
	sweepAt   int // sweep when the table reaches this size
}

// maxIdleIPs bounds the entries kept for addresses without connections.
const maxIdleIPs = 1 << 16

func newIPTable(cfg *Config) *ipTable {
	nets, _ := parseNets(cfg.IPLimitExempt) // checked by Config.validate
	return &ipTable{cfg: cfg, exempt: nets, m: make(map[netip.Addr]*ipEntry), sweepAt: 1024}
}

// parseNets parses CIDR prefixes or single addresses.
func parseNets(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("%q is neither a network (CIDR) nor an address", s)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}

// key returns the address that r's limits count against, and false when
// it is exempt (or unknown).
func (t *ipTable) key(r *http.Request) (netip.Addr, bool) {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}, false
	}
	a := ap.Addr().Unmap().WithZone("")
	for _, p := range t.exempt {
		if p.Contains(a) {
			return netip.Addr{}, false
		}
	}
	if a.Is6() {
		p, _ := a.Prefix(64)
		a = p.Addr()
	}
	return a, true
}

// admit counts a new connection of r's address. It returns the entry to
// release when the connection ends (nil for an exempt address), or a 429
// error when the address has MaxConnsPerIP connections already.
func (t *ipTable) admit(r *http.Request) (*ipEntry, error) {
	a, ok := t.key(r)
	if !ok {
		return nil, nil
	}
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.m) >= t.sweepAt || now.Sub(t.lastSweep) >= time.Second {
		t.sweep(now)
	}
	e := t.m[a]
	if e == nil {
		e = &ipEntry{addr: a, lim: rate.NewLimiter(rate.Limit(t.cfg.IPRate), t.cfg.IPBurst)}
		t.m[a] = e
	}
	if max := t.cfg.MaxConnsPerIP; max > 0 && e.conns >= max {
		return nil, fmt.Errorf("%s: %d connections from %s already (--max-conns-per-ip)", mux.ErrIPConnLimited, e.conns, a)
	}
	e.conns++
	return e, nil
}

// release counts a connection of e's address gone.
func (t *ipTable) release(e *ipEntry) {
	if e == nil {
		return
	}
	t.mu.Lock()
	e.conns--
	t.mu.Unlock()
}

// sweep drops idle entries whose bucket is full again, and idle entries
// beyond maxIdleIPs. Under t.mu.
func (t *ipTable) sweep(now time.Time) {
	idle := 0
	for a, e := range t.m {
		if e.conns > 0 {
			continue
		}
		if e.lim.TokensAt(now) >= float64(t.cfg.IPBurst) {
			delete(t.m, a)
			continue
		}
		if idle++; idle > maxIdleIPs {
			delete(t.m, a)
		}
	}
	t.lastSweep = now
	t.sweepAt = max(1024, 2*len(t.m))
}

// size is the number of addresses in the table.
func (t *ipTable) size() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}

// refuseConn answers a /ws request the address's connection cap refuses.
func (s *Server) refuseConn(w http.ResponseWriter, err error) {
	s.counters.ipConnsRefused.Add(1)
	w.Header().Set("Retry-After", "5")
	http.Error(w, err.Error(), http.StatusTooManyRequests)
}

// limitsHello adds the limits of this file, the name grace and the
// presence interval to c's hello. The per-address ones are left out for an
// exempt address.
func (s *Server) limitsHello(h *mux.Hello, c *conn) {
	h.ConnRate, h.ConnBurst = s.cfg.ConnRate, s.cfg.ConnBurst
	h.DMInRate, h.DMInBurst = s.cfg.DMInRate, s.cfg.DMInBurst
	h.NameGraceMS = s.cfg.nameGrace().Milliseconds()
	h.PresenceMS = s.cfg.PresenceInterval.Milliseconds()
	if c.ip != nil {
		h.IPRate, h.IPBurst, h.MaxConnsPerIP = s.cfg.IPRate, s.cfg.IPBurst, s.cfg.MaxConnsPerIP
	}
}
