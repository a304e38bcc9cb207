package loadgen

// A socket's lifecycle: dial, greet and come up (run), go down and climb the
// reconnect ladder (down), give up, and resume (resumed).

import (
	"math/rand/v2"
	"time"

	"imload/loadgen/wire"
	"imload/reports"
)

// run dials, greets and brings the socket up, on a goroutine of its own.
// Then it hands the link to the poller, or (goroutine reader) reads it
// until it ends.
func (s *sock) run(gen uint32, addrIdx int, refetch bool) {
	e := s.b.e
	b := s.b
	handed := false // e.live's count passed on to the link (wsLink.end)
	defer func() {
		if !handed {
			e.live.done()
		}
	}()
	if refetch {
		// The ladder climbs the list it fetched (from its first address).
		n := e.refetchAddrs()
		b.mu.Lock()
		s.ladder.SetAddrs(n)
		b.mu.Unlock()
	}
	addr := e.addrAt(addrIdx)
	nd := e.nodeOf(addr)
	t0 := time.Now()
	conn, err := e.dial(addr)
	var l *wsLink
	if err == nil {
		e.shardHists(b.sh).recordOne(hConnect, time.Since(t0).Microseconds())
		l = newLink(s, conn)
		err = s.greet(l)
		if err != nil {
			conn.Close()
		}
	}
	b.mu.Lock()
	s.connecting = false
	if err != nil {
		if !e.stopping.Load() {
			// Not an error by itself: the ladder retries; a socket that
			// goes down the whole ladder is (gave_up).
			e.dialFailures.Add(1)
			e.noteDialError(err)
		}
		s.down(false)
		b.mu.Unlock()
		return
	}
	if e.stopping.Load() || s.closing || s.gen != gen {
		b.mu.Unlock()
		conn.Close()
		return
	}
	s.gen++
	gen = s.gen
	l.gen = gen
	s.link = l
	s.up = true
	s.upAt = e.now()
	s.addr = addrIdx
	s.lastRecv.Store(e.now())
	s.setOutput(l)
	addPeak(&e.cnt.conns, &e.cnt.connsPeak, 1)
	s.linkUp(nd) // on nd from now on
	// Sends that were in flight when the last link died are re-sent after
	// the resume with the same client id (the server answers a repeat with
	// the first offset); everything else in flight is forgotten.
	s.attachTabs()
	b.mu.Unlock()
	if e.traits.ClientPings {
		b.sh.add(event{at: e.now() + jitterDur(s.hb), kind: evPing, s: s, gen: gen})
	}

	handed = true
	if p := e.poller; p != nil {
		l.compact()
		if p.add(l) == nil {
			return // this goroutine, with its stack grown by the dial, ends here
		}
	}
	_ = l.readLoop()
	l.end()
}

// down handles the end of a connection (or a failed attempt). b.mu is held.
func (s *sock) down(wasConn bool) {
	e := s.b.e
	b := s.b
	now := e.now()
	wasUp := s.up
	s.up = false
	s.link = nil
	s.setOutput(nil)
	if wasUp {
		e.cnt.conns.Add(-1)
		s.node.conns.Add(-1)
	}
	for _, t := range s.tabs {
		if t.att {
			t.att = false
			e.cnt.sessions.Add(-1)
			s.node.addSessions(-1)
			b.online.Add(-1)
		}
		// Tracks that were paging stay so: the resume starts from the
		// last offset fetched (roomTrack.last).
	}
	resumes := e.traits.Resumes
	if !resumes {
		e.linkLost(s)
	}
	// Keep the sends for re-sending after the resume (without resume: only
	// those not sent yet); forget the rest.
	kept := s.pend[:0]
	for _, p := range s.pend {
		if p.kind == wire.Send && p.t.open && (resumes || p.issued == 0) {
			p.issued = 0
			kept = append(kept, p)
		} else if p.kind == wire.Send {
			e.sendUnconfirmed(p)
		}
	}
	for i := len(kept); i < len(s.pend); i++ {
		s.pend[i] = pending{}
	}
	s.pend = kept
	s.resumeWait = 0
	if e.stopping.Load() || s.closing || b.gaveUp {
		return
	}
	b.disrupted(s.tabs...)
	if s.kicked {
		// The server closed this connection because the user has too many
		// (its per-user cap). Reconnecting would only kick the next oldest
		// one: like a browser, close its tabs instead, and count the kick.
		s.kicked, s.goaway = false, 0
		e.cnt.kicks.Add(1)
		s.closeTabs()
		return
	}
	if s.downAt == 0 {
		s.downAt = now
	}
	if wasUp && b.lostAt == 0 {
		b.lostAt = now
	}
	var step Step
	switch {
	case wasUp && s.goaway > 0:
		e.faultCut(s) // a graceful stop says goaway first
		e.cnt.goaways.Add(1)
		step = Step{Name: reports.StepRetry, Addr: s.addr, Delay: s.goaway}
		s.goaway = 0
	case wasUp && s.killed:
		s.killed = false
		step = s.ladder.Failed(nil)
	default:
		if wasUp && !s.dead && !e.faultCut(s) {
			e.cnt.err(eLinkLost)
		}
		step = s.ladder.Failed(nil)
	}
	s.dead = false
	e.cnt.step(step.Name)
	if step.Name == reports.StepGiveUp {
		s.giveUp()
		return
	}
	s.connecting = true
	b.sh.add(event{at: now + int64(step.Delay), kind: evConnect, s: s, gen: s.gen,
		refetch: step.Name == reports.StepRefetch})
	s.addr = step.Addr
}

// giveUp closes the browser's sessions carried by s for good.
func (s *sock) giveUp() {
	e := s.b.e
	e.cnt.err(eGaveUp)
	s.closeTabs()
	e.gaveUp.Add(1)
}

// closeTabs closes the tabs carried by s (their tracks are counted up to
// what they received, excused) and stops the socket from reconnecting.
func (s *sock) closeTabs() {
	e := s.b.e
	for _, t := range s.tabs {
		if t.open {
			t.open = false
			for i := range t.tracks {
				e.closeTrack(&t.tracks[i], t.tracks[i].got.maxOffset())
				e.ver.excusedTracks.Add(1)
			}
			t.tracks = t.tracks[:0]
		}
	}
	s.pend = s.pend[:0]
	s.closing = true
}

// resumed is called when every attach and join of a (re)connection has its
// reply: sends held meanwhile go out, and new tabs start sending.
func (s *sock) resumed() {
	e := s.b.e
	now := e.now()
	if s.downAt > 0 {
		e.shardHists(s.b.sh).recordOne(hReconnect, (now-s.downAt)/1000)
		s.downAt = 0
	}
	s.ladder.Success()
	// Re-send held sends in their original order.
	held := 0
	for i := range s.pend {
		if s.pend[i].issued == 0 {
			held++
		}
	}
	if held > 0 {
		old := s.pend
		s.pend = make([]pending, 0, len(old))
		for _, p := range old {
			if p.issued > 0 {
				s.pend = append(s.pend, p)
			}
		}
		for _, p := range old {
			if p.issued == 0 && p.t.open && p.t.att {
				s.sendMsg(p)
			}
		}
	}
	for _, t := range s.tabs {
		if t.open && t.att && !t.sends {
			t.sends = true
			s.b.sh.startSends(t)
		}
	}
}

// kill cuts the socket's connection (b.mu held). failed marks it as a
// failure of the link (counted by the caller), not a deliberate kill.
func (s *sock) kill(failed bool) {
	if s.link == nil {
		return
	}
	if failed {
		s.dead = true
	} else {
		s.killed = true
	}
	s.link.cutLink()
}

func jitterDur(d time.Duration) int64 {
	if d <= 0 {
		return int64(time.Second)
	}
	return int64(d/2) + rand.Int64N(int64(d/2)+1)
}
