package loadgen

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"imload/reports"
)

// Faults on demand: the target server (a local child) is stopped and
// started again during the run. The links a fault cuts are expected: they
// count as the fault's link losses and as reconnects, not as link_lost
// errors. Everything else is verified as usual, so a run with a crash shows
// what a crash costs: messages lost or renumbered, resets, and the time each
// browser waits until every room of its tabs is resumed (HistResume).

// faultState is what the engine knows of the faults of its run.
type faultState struct {
	// cur is the index of the latest fault injected (-1: none yet) and at
	// when its signal was sent (ns since the run's start): a link that was
	// up before at and goes down after it was cut by the fault.
	cur   atomic.Int32
	at    atomic.Int64
	links []atomic.Int64 // links cut, per fault

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

// faultCut reports whether the link of s that just went down (it came up
// at s.upAt) was cut by an injected fault, and counts it (b.mu held).
func (e *engine) faultCut(s *sock) bool {
	fs := &e.faults
	i := fs.cur.Load()
	if i < 0 || s.upAt >= fs.at.Load() {
		return false
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
