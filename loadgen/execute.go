package loadgen

// Executing one mode: the observers and shards start, the browsers ramp
// up, faults are injected, the tabs chat; then the drain, the verification
// of what is left open, the stop, and the run's result.

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"imload/loadgen/wire"
	"imload/reports"
)

// execute runs the engine's mode from connect to verification.
func (e *engine) execute(ctx context.Context) reports.Run {
	sc := e.sc
	run := reports.Run{Mode: e.mode, Clients: sc.Clients, Tabs: sc.Tabs, Start: time.Now()}
	e.o.logf("%s: %d browsers × %d tabs (%d sockets), ramp %s, duration %s",
		e.mode, sc.Clients, sc.Tabs, sc.Sockets(e.mode), sc.Ramp, sc.Duration)

	e.t0 = time.Now()
	e.dialCtx, e.cancel = context.WithCancel(context.Background())
	defer e.cancel()
	if p, err := newReader(sc.Reader); err != nil {
		// Validate has ruled out every other error: a system without
		// epoll falls back to a goroutine per socket.
		e.o.logf("%s: %v: reading with a goroutine per socket", e.mode, err)
	} else {
		e.poller = p
	}

	// Observers: /stats (the run's server, and each node's when there are
	// several), this process, the server process, the series.
	statsCtx, stopStats := context.WithCancel(context.Background())
	var polls *statsPolls
	if !e.o.noStats {
		polls = newStatsPolls(e.base, e.addrList(), e.sc.StatsURLs)
		polls.start(statsCtx) // a first sample before any connection: the baseline
	}
	redisBefore := e.redisCounters()
	self := watchProc(0)
	var server *procWatch
	switch {
	case len(e.o.serverPS) > 0:
		server = watchProcs(e.o.serverPS)
	case e.o.serverPID != nil:
		server = watchProcOf(e.o.serverPID)
	}
	ser := newSeries(e)
	serStop := make(chan struct{})
	serDone := make(chan struct{})
	go func() { defer close(serDone); ser.loop(serStop) }()

	// Scheduler shards.
	quit := make(chan struct{})
	var shardWG sync.WaitGroup
	e.sending.Store(true)
	for _, sh := range e.shards {
		shardWG.Add(1)
		go func() { defer shardWG.Done(); sh.loop(quit) }()
		sh.add(event{at: int64(time.Second), kind: evTick})
	}
	// The ramp: browser i connects at i/N of the ramp.
	n := int64(len(e.browsers))
	for i, b := range e.browsers {
		at := int64(sc.Ramp) * int64(i) / n
		slot := int64(sc.Ramp) / n / int64(len(b.socks)) // per-tab: spread a browser's sockets over its slot
		for k, s := range b.socks {
			s.connecting = true
			b.sh.add(event{at: at + int64(k)*slot, kind: evConnect, s: s})
		}
	}
	if sc.TabChurn > 0 {
		e.shards[0].add(event{at: int64(sc.Ramp) + int64(PoissonPacer{sc.TabChurn}.Next(e.shards[0].rng)), kind: evTabClose})
	}
	if sc.ConnKill > 0 {
		sh := e.shards[len(e.shards)-1]
		sh.add(event{at: int64(sc.Ramp) + int64(PoissonPacer{sc.ConnKill}.Next(sh.rng)), kind: evKill})
	}

	// Faults on demand.
	faultStop := make(chan struct{})
	faultDone := make(chan struct{})
	go func() { defer close(faultDone); e.injectFaults(ctx, faultStop) }()

	// Chat until the end or until interrupted.
	total := sc.Ramp + sc.Duration
	select {
	case <-ctx.Done():
	case <-time.After(total - time.Since(e.t0)):
	}
	// A fault under way ends with its restart before the drain.
	close(faultStop)
	<-faultDone
	e.sending.Store(false)
	ser.setPhase("drain")
	drain := sc.Drain
	if ctx.Err() != nil {
		drain = min(drain, 2*time.Second)
	}
	drained := e.drain(drain)
	if !drained {
		e.o.logf("%s: drain timed out after %s (outstanding replies or deliveries count as lost)", e.mode, drain)
	}
	if n := e.dialFailures.Load(); n > 0 {
		e.o.logf("%s: %d dials or greetings failed (the ladder retried them); the last: %v", e.mode, n, e.dialErr.Load())
	}
	e.finalize()
	redisAfter := e.redisCounters() // before the connections close
	if polls != nil {
		polls.sample(statsCtx) // after the drain: the final counters
	}

	// Stop: close every socket, then the scheduler.
	e.stopping.Store(true)
	e.cancel()
	for _, b := range e.browsers {
		b.mu.Lock()
		for _, s := range b.socks {
			if s.link != nil {
				s.link.closeWith(websocket.CloseNormalClosure, "load run over")
			}
		}
		b.mu.Unlock()
	}
	close(quit)
	shardWG.Wait()
	// Every socket goroutine ends now: a dial with e.cancel, a greeting
	// within its 10 s read deadline, a link when its reader sees it cut.
	// Only a greeting's write to a server that stopped reading (10 s write
	// deadline) could outlast the wait. If one does, it is left behind,
	// said and counted (an error: the run did not end cleanly).
	if left := e.live.wait(15 * time.Second); left > 0 {
		e.o.logf("%s: %d socket goroutines still running 15 s after the end, left behind", e.mode, left)
		e.cnt.errs[eStuck].Add(left)
	}
	if e.poller != nil {
		e.poller.close()
	}
	close(serStop)
	<-serDone
	stopStats()
	if polls != nil {
		polls.wait()
	}

	// Collect.
	run.End = time.Now()
	run.PhysicalConnectionsPeak = e.cnt.connsPeak.Load()
	run.SessionsPeak = e.cnt.sessionsPeak.Load()
	run.LoadProcess = self.finish()
	if server != nil {
		run.ServerProcess = server.finish()
	}
	notes := map[string]int64{
		reports.NoteDeliveriesByPush:   e.ver.deliveredPush.Load(),
		reports.NoteDeliveriesByResume: e.ver.deliveredRe.Load(),
	}
	for k, v := range redisDeltas(redisBefore, redisAfter) {
		notes[k] = v
	}
	run.Nodes = e.nodeResults()
	if polls != nil {
		run.ServerStatsPeak = polls.runPeak()
		if len(run.Nodes) > 1 {
			for i := range run.Nodes {
				run.Nodes[i].ServerStatsPeak = polls.nodePeak(i)
			}
		}
		// Deltas only when no server restarted meanwhile (its counters
		// start again from zero), nor a fault restarted it (its uptime
		// may have caught up).
		if d, ok := polls.deltas([]string{"messages_in", "messages_out", "dms_in", "dms_out"}); ok && len(e.o.faults) == 0 {
			for k, v := range d {
				notes[reports.NoteServerPrefix+k] = v
			}
		}
	}
	run.Faults = e.faultResults()
	if sp := run.ServerProcess; sp != nil {
		for _, f := range run.Faults {
			for i := range sp.Processes {
				if f.Kind == reports.FaultKillNode && f.Error == "" && sp.Processes[i].Target == f.Node {
					sp.Processes[i].Killed = true
				}
			}
		}
	}
	run.Delivery = e.ver.delivery()
	for _, n := range run.Nodes {
		run.Delivery.CrossNode += n.CrossNode
	}
	if e.content != nil {
		run.Delivery.Mismatched = e.content.mismatched.Load()
		notes[reports.NoteContentUnchecked] = e.content.unchecked.Load()
	}
	hs, above := mergeHists(e.allHists())
	run.Latency = make(map[string]reports.Latency, nHist)
	for i := range hs {
		run.Latency[histNames[i]] = reports.NewLatency(hs[i], above[i])
	}
	dmo := e.dms.outcome()
	run.Counters = reports.Counters{
		MessagesSent:  e.cnt.msgsSent.Load(),
		DMsSent:       e.cnt.dmsSent.Load(),
		FramesOut:     e.cnt.framesOut.Load(),
		FramesIn:      e.cnt.framesIn.Load(),
		WSMessagesOut: e.cnt.wsOut.Load(),
		WSMessagesIn:  e.cnt.wsIn.Load(),
		BytesOut:      e.cnt.bytesOut.Load(),
		BytesIn:       e.cnt.bytesIn.Load(),
		Errors:        e.cnt.errorsMap(),
		Reconnects:    e.cnt.reconnectsMap(),
		Kicks:         e.cnt.kicks.Load(),
		Resets:        e.joinResets.Load(),
	}
	if dmo.Lost > 0 {
		run.Counters.Errors[reports.ErrorDMLost] = dmo.Lost
	}
	if dmo.Duplicated > 0 {
		run.Counters.Errors[reports.ErrorDMDuplicated] = dmo.Duplicated
	}
	if dmo.Misdelivered > 0 {
		run.Counters.Errors[reports.ErrorDMMisdelivered] = dmo.Misdelivered
	}
	if dmo.CountMismatch > 0 {
		run.Counters.Errors[reports.ErrorDMCountMismatch] = dmo.CountMismatch
	}
	for k, v := range map[string]int64{
		reports.NoteDMExpected:             dmo.Expected,
		reports.NoteDMDelivered:            dmo.Delivered,
		reports.NoteDMLostExcused:          dmo.Excused,
		reports.NoteDMUnconfirmed:          dmo.Unconfirmed,
		reports.NoteDMTargetOffline:        e.dmOffline.Load(),
		reports.NoteDMExtra:                dmo.Extra,
		reports.NoteDMCountMismatchExcused: dmo.CountExcused,
		reports.NoteDMNotSentOffline:       e.dmNotSent.Load(),
		reports.NoteGoAways:                e.cnt.goaways.Load(),
		reports.NoteSocketsKilled:          e.cnt.killed.Load(),
		reports.NoteTabsClosed:             e.cnt.tabsClosed.Load(),
		reports.NoteEpochResets:            e.epochResets.Load(),
		reports.NoteResumeResets:           e.resumeResets.Load(),
		reports.NoteResumeResetOffsets:     e.ver.gone.Load(),
		reports.NoteTracksExcused:          e.ver.excusedTracks.Load(),
		reports.NoteLBSRefetches:           e.lbsFetch.Load(),
		reports.NoteBrowsersGaveUp:         e.gaveUp.Load(),
		reports.NoteDialFailures:           e.dialFailures.Load(),
		reports.NoteSendsRefusedShutdown:   e.refusedShutdown.Load(),
		reports.NoteSendsResent:            e.resent.Load(),
		reports.NoteSendsResentDup:         e.resentDup.Load(),
		reports.NoteTokensMinted:           e.tokensMinted.Load(),
		reports.NoteTokenExpiring:          e.tokenExpiring.Load(),
		reports.NoteTokenRefreshes:         e.refreshes.Load(),
	} {
		notes[k] = v
	}
	if !e.traits.Resumes {
		// Sends whose reply never came (socket lost, tab closed, timeout):
		// without resume they are not re-sent (at most once).
		notes[reports.NoteSendsUnconfirmed] = e.unconfirmed.Load()
	}
	if dmo.Expected > 0 || dmo.Delivered > 0 || e.cnt.dmsSent.Load() > 0 {
		d := dmo.Delivery
		d.CrossNode = e.dmCross.Load()
		run.DMDelivery = &d
	}
	for k, v := range notes {
		if v == 0 && k != reports.NoteDeliveriesByPush {
			delete(notes, k)
		}
	}
	run.Notes = notes
	run.Series = ser.points()
	e.o.logf("%s: done: %d physical connections and %d sessions at peak, %d messages sent, %d/%d delivered, %d lost",
		e.mode, run.PhysicalConnectionsPeak, run.SessionsPeak, run.Counters.MessagesSent,
		run.Delivery.Delivered, run.Delivery.Expected, run.Delivery.Lost)
	return run
}

func (e *engine) allHists() []*hists {
	out := make([]*hists, len(e.shards))
	for i, sh := range e.shards {
		out[i] = sh.hists
	}
	return out
}

// liveCount is a WaitGroup that knows its count.
type liveCount struct {
	wg sync.WaitGroup
	n  atomic.Int64
}

func (c *liveCount) add() { c.n.Add(1); c.wg.Add(1) }

func (c *liveCount) done() { c.n.Add(-1); c.wg.Done() }

// wait waits until the count is zero, at most d, and returns how many are
// still running (0: all ended).
func (c *liveCount) wait(d time.Duration) int64 {
	done := make(chan struct{})
	go func() { c.wg.Wait(); close(done) }()
	select {
	case <-done:
		return 0
	case <-time.After(d):
		return max(c.n.Load(), 1)
	}
}

// drain waits, after sends stopped, until every reply is in, every socket
// with open tabs is up and resumed, every member tab has received its
// room's top offset and every DM answered has reached the tabs it must;
// at most d.
func (e *engine) drain(d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		if e.quiet() && !e.dms.awaiting() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (e *engine) quiet() bool {
	for _, b := range e.browsers {
		b.mu.Lock()
		ok := b.quietLocked()
		b.mu.Unlock()
		if !ok {
			return false
		}
	}
	return true
}

func (b *browser) quietLocked() bool {
	e := b.e
	for _, s := range b.socks {
		open := false
		for _, t := range s.tabs {
			open = open || t.open
		}
		if !open {
			continue
		}
		if !s.up || s.resumeWait > 0 {
			return false
		}
		for _, p := range s.pend {
			if p.kind != wire.Detach {
				return false
			}
		}
		for _, t := range s.tabs {
			if !t.open {
				continue
			}
			if !t.att {
				return false
			}
			for i := range t.tracks {
				tr := &t.tracks[i]
				if tr.paging || !tr.joined {
					return false
				}
				if e.late != nil {
					if !e.late.caughtUp(tr, e.tops[tr.room].Load()) {
						return false
					}
					continue
				}
				if tr.epoch == e.roomEpoch(tr.room) && tr.last() < e.tops[tr.room].Load() {
					return false
				}
			}
		}
	}
	return true
}

// finalize closes every open tab's tracks at the room's top: what it should
// have received by the end.
func (e *engine) finalize() {
	for _, b := range e.browsers {
		b.mu.Lock()
		for _, t := range b.tabs {
			if !t.open {
				continue
			}
			for i := range t.tracks {
				tr := &t.tracks[i]
				to := tr.got.maxOffset()
				if tr.epoch == e.roomEpoch(tr.room) {
					to = max(to, e.tops[tr.room].Load())
				} else {
					e.ver.excusedTracks.Add(1)
				}
				e.closeTrack(tr, to)
			}
			t.tracks = t.tracks[:0]
			t.open = false
		}
		b.mu.Unlock()
	}
	if e.late != nil {
		e.late.count(&e.ver)
	}
}
