package loadgen

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"imload/reports"
)

// Faults on demand: the target server (a local child) is stopped and
// started again during the run, or one node of several (a local cluster)
// is killed for good. The links a fault cuts are expected: they count as
// the fault's link losses and as reconnects, not as link_lost errors (for
// a node killed, the links to that node only). Everything else is
// verified as usual, so a run with a crash shows what a crash costs:
// messages lost or renumbered, resets, and the time each browser waits
// until every room of its tabs is resumed (HistResume).

// faultState is what the engine knows of the faults of its run.
type faultState struct {
	// cur is the index of the latest fault injected (-1: none yet) and at
	// when its signal was sent (ns since the run's start): a link that was
	// up before at and goes down after it was cut by the fault.
	cur   atomic.Int32
	at    atomic.Int64
	links []atomic.Int64 // links cut, per fault
	// node is the node a kill_node fault killed, per fault (nil: the
	// fault hit the whole server): only links to it were cut.
	node []atomic.Pointer[node]

	mu  sync.Mutex
	res []reports.Fault
}

// injectFaults runs the run's faults in order, each at its time, until stop
// is closed (the end of the sends; a fault under way completes).
func (e *engine) injectFaults(ctx context.Context, stop <-chan struct{}) {
	fs := &e.faults
	for i, f := range e.o.faults {
		wait := time.Until(e.t0.Add(f.At))
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		r := reports.Fault{Kind: f.Kind, AtMs: int64(time.Since(e.t0) / time.Millisecond)}
		if f.Kind == reports.FaultKillNode {
			r = e.killNode(ctx, stop, i, r)
			fs.mu.Lock()
			fs.res = append(fs.res, r)
			fs.mu.Unlock()
			continue
		}
		t := time.Now()
		fs.at.Store(e.now())
		fs.cur.Store(int32(i))
		if f.Kind == reports.FaultCrash {
			e.o.logf("%s: fault: killing the server (SIGKILL) at %s", e.mode, f.At)
			e.o.faultSrv.Kill()
		} else {
			e.o.logf("%s: fault: stopping the server (SIGTERM) at %s", e.mode, f.At)
			if err := e.o.faultSrv.Stop(15 * time.Second); err != nil {
				e.o.logf("%s: fault: %v", e.mode, err)
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(f.RestartDelay):
		}
		if err := e.o.faultSrv.Restart(ctx); err != nil {
			r.Error = err.Error()
			e.o.logf("%s: fault: the server did not restart: %v", e.mode, err)
		} else {
			e.o.logf("%s: fault: server back after %s", e.mode, time.Since(t).Round(time.Millisecond))
		}
		r.DownMs = int64(time.Since(t) / time.Millisecond)
		fs.mu.Lock()
		fs.res = append(fs.res, r)
		fs.mu.Unlock()
	}
}

// killNode kills one node (fault i, a kill_node): the node with the most
// of the generator's connections now, the first of the table on a tie.
// Its links are the fault's from the signal on. With an address list, it
// then watches the list until it no longer names the node.
func (e *engine) killNode(ctx context.Context, stop <-chan struct{}, i int, r reports.Fault) reports.Fault {
	fs := &e.faults
	var victim *node
	for _, n := range e.allNodes() {
		if victim == nil || n.conns.Load() > victim.conns.Load() {
			victim = n
		}
	}
	r.Node, r.NodeConnections = victim.addr, victim.conns.Load()
	e.o.logf("%s: fault: killing node %s (SIGKILL), the one with the most connections (%d), at %s",
		e.mode, victim.addr, r.NodeConnections, time.Duration(r.AtMs)*time.Millisecond)
	t := time.Now()
	fs.node[i].Store(victim)
	fs.at.Store(e.now())
	fs.cur.Store(int32(i))
	if err := e.o.nodeKiller.KillNode(victim.addr); err != nil {
		r.Error = err.Error()
		e.o.logf("%s: fault: %v", e.mode, err)
		return r
	}
	if e.lbs != "" {
		r.GoneFromListMs = e.watchListDrop(ctx, stop, victim.addr, t)
		switch {
		case r.GoneFromListMs > 0:
			e.o.logf("%s: fault: the address list dropped %s %s after the kill", e.mode, victim.addr, time.Duration(r.GoneFromListMs)*time.Millisecond)
		case r.GoneFromListMs < 0:
			e.o.logf("%s: fault: the address list still names %s 10 s after the kill", e.mode, victim.addr)
		}
	}
	return r
}

// watchListDrop reads the address list every 100 ms until it no longer
// names addr, and returns the ms from since until then: -1 if it still
// does after 10 s, 0 if the sends ended first (not measured).
func (e *engine) watchListDrop(ctx context.Context, stop <-chan struct{}, addr string, since time.Time) int64 {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		lctx, cancel := context.WithTimeout(ctx, time.Second)
		addrs, err := e.fetchList(lctx)
		cancel()
		if err == nil && !slices.Contains(addrs, addr) {
			return max(1, int64(time.Since(since)/time.Millisecond))
		}
		if time.Since(since) > 10*time.Second {
			return -1
		}
		select {
		case <-stop:
			return 0
		case <-ctx.Done():
			return 0
		case <-tick.C:
		}
	}
}

// faultCut reports whether the link of s that just went down (it came up
// at s.upAt) was cut by an injected fault, and counts it (b.mu held): a
// link up before the fault's signal and down after it, to the node killed
// for a kill_node fault.
func (e *engine) faultCut(s *sock) bool {
	fs := &e.faults
	i := fs.cur.Load()
	if i < 0 || s.upAt >= fs.at.Load() {
		return false
	}
	if n := fs.node[i].Load(); n != nil {
		if s.node != n {
			return false
		}
		s.b.lastNodeKill.Store(e.now())
	}
	fs.links[i].Add(1)
	return true
}

// faultResults returns the faults injected, with the links each cut.
func (e *engine) faultResults() []reports.Fault {
	fs := &e.faults
	fs.mu.Lock()
	defer fs.mu.Unlock()
	out := append([]reports.Fault(nil), fs.res...)
	for i := range out {
		out[i].LinkLosses = fs.links[i].Load()
	}
	return out
}

// checkResumed records, once every room of every open tab of the browser
// is resumed after a link loss, the time since that loss (HistResume). b.mu
// is held.
func (r *reader) checkResumed() {
	b := r.s.b
	if b.lostAt == 0 {
		return
	}
	for _, s := range b.socks {
		for _, t := range s.tabs {
			if !t.open {
				continue
			}
			if !s.up || s.resumeWait > 0 || !t.att {
				return
			}
			for i := range t.tracks {
				if tr := &t.tracks[i]; !tr.joined || tr.paging {
					return
				}
			}
		}
	}
	r.lat = append(r.lat, latRec{hResume, (b.e.now() - b.lostAt) / 1000})
	b.lostAt = 0
}
