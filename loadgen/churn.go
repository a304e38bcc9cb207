package loadgen

// Churn on purpose: tabs closed and reopened (Scenario.TabChurn) and sockets
// killed (Scenario.ConnKill).

import (
	"time"

	"github.com/gorilla/websocket"

	"imload/loadgen/wire"
	"imload/reports"
)

func (sh *shard) churnTab() {
	e := sh.e
	if !e.sending.Load() {
		return
	}
	defer sh.scheduleChurn(evTabClose, e.sc.TabChurn)
	b := e.browsers[sh.rng.IntN(len(e.browsers))]
	b.mu.Lock()
	defer b.mu.Unlock()
	t := b.tabs[sh.rng.IntN(len(b.tabs))]
	s := t.s
	if !t.open || !t.att || !s.up || s.resumeWait > 0 {
		return
	}
	e.cnt.tabsClosed.Add(1)
	b.disrupted(t)
	// The tab closes: its rooms are counted up to what it received.
	for i := range t.tracks {
		e.closeTrack(&t.tracks[i], t.tracks[i].got.maxOffset())
	}
	if e.mode == reports.ModePerTab {
		// Closing the tab closes its socket.
		s.closing = true
		s.link.closeWith(websocket.CloseGoingAway, "tab closed")
	} else {
		s.issue(pending{t: t}, b.command(wire.Detach))
		t.att = false
		e.cnt.sessions.Add(-1)
		s.node.addSessions(-1)
		b.online.Add(-1)
	}
	t.open = false
	t.sid = 0 // forget the session: in-flight pushes to it are ignored
	t.tracks = t.tracks[:0]
	// Drop its held and in-flight sends.
	kept := s.pend[:0]
	for _, p := range s.pend {
		if p.t != t || p.kind == wire.Detach {
			kept = append(kept, p)
		} else if p.kind == wire.Send {
			e.sendUnconfirmed(p)
		}
	}
	s.pend = kept
	delay := 500*time.Millisecond + time.Duration(sh.rng.Int64N(int64(2500*time.Millisecond)))
	b.sh.add(event{at: e.now() + int64(delay), kind: evTabOpen, t: t})
}

func (sh *shard) reopen(t *tab) {
	e := sh.e
	b := t.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if e.stopping.Load() || t.open || b.gaveUp {
		return
	}
	if e.mode == reports.ModePerTab && (t.s.up || t.s.connecting) {
		// The old socket has not finished closing yet: try again shortly.
		b.sh.add(event{at: e.now() + int64(100*time.Millisecond), kind: evTabOpen, t: t})
		return
	}
	t.open = true
	b.disrupted(t)
	s := t.s
	if e.mode == reports.ModePerTab {
		s.closing = false
		if !s.up && !s.connecting {
			s.connecting = true
			e.live.add()
			go s.run(s.gen, s.addr, false)
		}
		return
	}
	if s.up && s.resumeWait == 0 {
		s.attachTab(t)
	}
	// Otherwise the socket is (re)connecting and attaches it when it is up.
}

func (sh *shard) killOne() {
	e := sh.e
	if !e.sending.Load() {
		return
	}
	defer sh.scheduleChurn(evKill, e.sc.ConnKill)
	b := e.browsers[sh.rng.IntN(len(e.browsers))]
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.socks[sh.rng.IntN(len(b.socks))]
	if !s.up || s.closing {
		return
	}
	e.cnt.killed.Add(1)
	s.kill(false)
}

func (sh *shard) scheduleChurn(kind uint8, perSecond float64) {
	if perSecond <= 0 {
		return
	}
	d := PoissonPacer{PerSecond: perSecond}.Next(sh.rng)
	sh.add(event{at: sh.e.now() + int64(d), kind: kind})
}
