package loadgen

// The engine's shards: each is one goroutine that drives every timer of its
// browsers (sends, heartbeats, flushes, timeouts and dead links, reconnects,
// churn) from one min-heap of events, which is here too.

import (
	"math/rand/v2"
	"sync"
	"time"

	"imload/loadgen/wire"
)

type shard struct {
	e        *engine
	id       int
	rng      *rand.Rand
	hists    *hists
	browsers []*browser

	mu      sync.Mutex
	h       eventHeap
	dirty   []*sock
	flushAt int64
	wake    chan struct{}
}

func (sh *shard) add(ev event) {
	sh.mu.Lock()
	sh.h.push(ev)
	first := sh.h[0].at == ev.at
	sh.mu.Unlock()
	if first {
		select {
		case sh.wake <- struct{}{}:
		default:
		}
	}
}

// markDirty notes that s has output to flush: at the next flush tick, or
// right away when now is set (a full batch).
func (sh *shard) markDirty(s *sock, now bool) {
	e := sh.e
	at := e.now()
	if !now && e.sc.FlushInterval > 0 {
		at += int64(e.sc.FlushInterval)
	}
	sh.mu.Lock()
	sh.dirty = append(sh.dirty, s)
	schedule := sh.flushAt == 0 || at < sh.flushAt
	if schedule {
		sh.flushAt = at
		sh.h.push(event{at: at, kind: evFlush})
	}
	sh.mu.Unlock()
	if schedule {
		select {
		case sh.wake <- struct{}{}:
		default:
		}
	}
}

// startSends starts t's send chain (called with its browser's lock held).
func (sh *shard) startSends(t *tab) {
	sh.add(event{at: sh.e.now(), kind: evSend, t: t, sched: -1})
}

func (sh *shard) loop(quit <-chan struct{}) {
	e := sh.e
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var due []event
	for {
		sh.mu.Lock()
		now := e.now()
		due = due[:0]
		for len(sh.h) > 0 && sh.h.peek() <= now && len(due) < 4096 {
			due = append(due, sh.h.pop())
		}
		wait := time.Second
		if len(sh.h) > 0 {
			wait = time.Duration(sh.h.peek() - now)
		}
		sh.mu.Unlock()
		for i := range due {
			sh.handle(&due[i])
			due[i] = event{}
		}
		select {
		case <-quit:
			return
		default:
		}
		if len(due) > 0 {
			continue
		}
		timer.Reset(wait)
		select {
		case <-quit:
			return
		case <-sh.wake:
		case <-timer.C:
		}
	}
}

func (sh *shard) handle(ev *event) {
	e := sh.e
	switch ev.kind {
	case evFlush:
		sh.mu.Lock()
		dirty := sh.dirty
		sh.dirty = nil
		sh.flushAt = 0
		sh.mu.Unlock()
		for _, s := range dirty {
			s.flush()
		}
	case evSend:
		sh.send(ev)
	case evPing:
		s := ev.s
		b := s.b
		b.mu.Lock()
		if s.up && s.gen == ev.gen && !e.stopping.Load() {
			s.ping()
			sh.add(event{at: e.now() + int64(s.hb), kind: evPing, s: s, gen: ev.gen})
		}
		b.mu.Unlock()
	case evTick:
		sh.tick()
		if !e.stopping.Load() {
			sh.add(event{at: e.now() + int64(time.Second), kind: evTick})
		}
	case evConnect:
		s := ev.s
		b := s.b
		b.mu.Lock()
		if !e.stopping.Load() && !s.closing && !s.up && s.gen == ev.gen {
			s.connecting = true
			e.live.add()
			go s.run(s.gen, s.addr, ev.refetch)
		}
		b.mu.Unlock()
	case evTabClose:
		sh.churnTab()
	case evTabOpen:
		sh.reopen(ev.t)
	case evKill:
		sh.killOne()
	}
}

// send issues one scheduled send of a tab and schedules the next.
func (sh *shard) send(ev *event) {
	e := sh.e
	t := ev.t
	now := e.now()
	if !e.sending.Load() {
		return
	}
	if ev.sched < 0 { // start of the chain
		d := firstDelay(e.pacer, sh.rng)
		if d >= 0 {
			sh.add(event{at: now + int64(d), kind: evSend, t: t, sched: now + int64(d)})
		}
		return
	}
	if d := e.pacer.Next(sh.rng); d >= 0 {
		next := ev.sched + int64(d)
		sh.add(event{at: next, kind: evSend, t: t, sched: next})
	}
	b := t.b
	isDM := e.sc.DMRatio > 0 && sh.rng.Float64() < e.sc.DMRatio
	var target *browser
	if isDM {
		if target = e.pickTarget(sh.rng, b); target == nil {
			isDM = false
		}
	}
	track := int16(sh.rng.IntN(len(b.rooms)))
	var dmTabs []dmTab
	if isDM {
		// Who must receive it, from the generator's own view (the target's
		// first, under its own lock: never two browsers' locks at once).
		target.mu.Lock()
		dmTabs = appendDMTabs(dmTabs, target, nil)
		target.mu.Unlock()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if !t.open {
		return // a closed tab does not chat; its chain goes on
	}
	s := t.s
	online := t.att && s.up && s.resumeWait == 0
	if isDM && !online {
		// DMs are live only: not held while the tab is offline.
		e.dmNotSent.Add(1)
		return
	}
	t.seq++
	p := pending{kind: wire.Send, t: t, track: track, sched: ev.sched, mseq: t.seq}
	if isDM {
		p.kind = wire.DM
		p.target = target
		e.cnt.dmsSent.Add(1)
		dmTabs = appendDMTabs(dmTabs, b, t)
		e.dms.sent(dmKey{sender: t.gid, seq: t.seq}, b, target, dmTabs, e.now())
	} else {
		e.cnt.msgsSent.Add(1)
	}
	if online {
		s.sendMsg(p)
		return
	}
	// Offline (reconnecting): hold it, as the browser would, to send after
	// the resume.
	held := 0
	for i := range s.pend {
		if s.pend[i].issued == 0 {
			held++
		}
	}
	if held >= maxHeld {
		e.cnt.err(eOfflineDrop)
		return
	}
	s.pend = append(s.pend, p)
}

// maxHeld bounds the sends a socket holds while it is reconnecting.
const maxHeld = 256

// tick checks command timeouts and dead links of the shard's sockets.
func (sh *shard) tick() {
	e := sh.e
	now := e.now()
	tmo := int64(e.sc.CmdTimeout)
	for _, b := range sh.browsers {
		b.mu.Lock()
		for _, s := range b.socks {
			if !s.up {
				continue
			}
			kill := false
			kept := s.pend[:0]
			for _, p := range s.pend {
				if p.issued > 0 && now-p.issued > tmo {
					e.cnt.err(eTimeout)
					if p.kind == wire.Send {
						e.sendUnconfirmed(p)
					}
					if p.kind == wire.Attach || p.kind == wire.Join || p.kind == wire.History {
						kill = true
					}
					continue
				}
				kept = append(kept, p)
			}
			for i := len(kept); i < len(s.pend); i++ {
				s.pend[i] = pending{}
			}
			s.pend = kept
			if !kill && now-s.lastRecv.Load() > int64(s.dead2) {
				e.cnt.err(eDeadLink)
				kill = true
			}
			if kill {
				s.kill(true)
			}
		}
		b.mu.Unlock()
	}
}

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
)

// event is one timer of a shard. at is in nanoseconds since the run's start.
type event struct {
	at   int64
	kind uint8
	// refetch: an evConnect fetches the address list (/lbs) again before it
	// dials (the ladder's step "refetch").
	refetch bool
	gen     uint32 // socket generation for evPing/evConnect, to drop stale timers
	t       *tab
	s       *sock
	// sched is the scheduled send time (ns since start) for evSend (-1: the
	// start of the tab's chain of sends).
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
