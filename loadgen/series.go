package loadgen

// The per-second series of a run (result.json's series, the progress line).

import (
	"sync"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"imload/reports"
)

type series struct {
	e     *engine
	mu    sync.Mutex
	pts   []reports.Point
	phase string
	cum   *hdrhistogram.Histogram
	tmp   *hdrhistogram.Histogram

	lastSent, lastDeliv, lastErr, lastRec int64
}

func newSeries(e *engine) *series {
	return &series{e: e, cum: reports.NewHistogram(), tmp: reports.NewHistogram(), phase: "ramp"}
}

func (s *series) setPhase(p string) {
	s.mu.Lock()
	s.phase = p
	s.mu.Unlock()
}

func (s *series) loop(stop <-chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			s.tick()
		}
	}
}

func (s *series) tick() {
	e := s.e
	for _, sh := range e.shards {
		sh.hists.mu.Lock()
		s.tmp.Merge(sh.hists.sec)
		sh.hists.sec.Reset()
		sh.hists.mu.Unlock()
	}
	sent := e.cnt.msgsSent.Load() + e.cnt.dmsSent.Load()
	deliv := e.cnt.delivered.Load()
	errs := e.cnt.totalErrors()
	rec := e.cnt.totalSteps()
	p := reports.Point{
		T:           time.Now().UnixMilli(),
		Connections: e.cnt.conns.Load(),
		Sessions:    e.cnt.sessions.Load(),
		Sent:        float64(sent - s.lastSent),
		Delivered:   float64(deliv - s.lastDeliv),
		Errors:      errs - s.lastErr,
		Reconnects:  rec - s.lastRec,
	}
	if s.tmp.TotalCount() > 0 {
		p.P50Ms = float64(s.tmp.ValueAtQuantile(50)) / 1000
		p.P99Ms = float64(s.tmp.ValueAtQuantile(99)) / 1000
		s.cum.Merge(s.tmp)
		s.tmp.Reset()
	}
	s.lastSent, s.lastDeliv, s.lastErr, s.lastRec = sent, deliv, errs, rec
	s.mu.Lock()
	s.pts = append(s.pts, p)
	phase := s.phase
	s.mu.Unlock()
	if e.o.progress != nil {
		el := time.Since(e.t0)
		if phase == "ramp" && el > e.sc.Ramp {
			phase = "run"
			s.setPhase(phase)
		}
		e.o.progress(Progress{
			Mode: e.mode, Phase: phase, Elapsed: el, Total: e.sc.Ramp + e.sc.Duration,
			Conns: p.Connections, Sessions: p.Sessions, SendRate: p.Sent, DeliverRate: p.Delivered,
			P99Ms: float64(s.cum.ValueAtQuantile(99)) / 1000, Errors: errs, Reconnects: rec,
		})
	}
}

func (s *series) points() []reports.Point {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]reports.Point(nil), s.pts...)
}
