package server

import (
	"container/heap"
	"sync"
	"time"
)

// Write pacing. A socket write costs the server about as much as everything
// else a delivery needs (a loopback write is 9-13 µs of system time on the
// benchmark machine, docs/benchmarks.md), and one write per frame is what a
// busy connection would otherwise get. So each connection may write a burst
// of WriteBurst messages at once, then one message per WritePace: frames
// queued meanwhile wait (at most WritePace) and go out merged into the next
// message. The rule is a GCRA (a token bucket kept as one timestamp, conn.tat):
// a quiet connection is never delayed; a connection receiving more than
// 1/WritePace messages a second gets its frames in fewer, larger writes.

// paceAt returns the earliest time (ns on the server's clock) c may write
// again, or 0 if it may write now. Called by the connection's writer.
func (c *conn) paceAt(now int64) int64 {
	pace := int64(c.srv.cfg.WritePace)
	if pace <= 0 {
		return 0
	}
	at := c.tat - int64(c.srv.cfg.WriteBurst-1)*pace
	if now >= at {
		return 0
	}
	return at
}

// paced records a write at now. Called by the connection's writer.
func (c *conn) paced(now int64) {
	pace := int64(c.srv.cfg.WritePace)
	if pace <= 0 {
		return
	}
	c.tat = max(c.tat, now) + pace
}

// clock is the server's monotonic clock, in ns.
func (s *Server) clock() int64 { return int64(time.Since(s.started)) }

// pacer writes the connections whose pace made them wait, when it allows,
// on one goroutine. Due times are rounded up to the millisecond, so a busy
// server wakes it about once a millisecond, not once per connection.
type pacer struct {
	srv  *Server
	mu   sync.Mutex
	due  dueHeap[*conn]
	next int64 // due time the goroutine sleeps until (0: none)
	stop bool
	wake chan struct{}
	done chan struct{}
}

func newPacer(s *Server) *pacer {
	p := &pacer{srv: s, wake: make(chan struct{}, 1), done: make(chan struct{})}
	go p.run()
	return p
}

// add has the pacer write c at (server clock, ns); paced tells whether the
// write pace holds c back (or a busy worker handed it over). It returns
// false once the pacer has stopped: then the caller writes c at once.
func (p *pacer) add(c *conn, at int64, paced bool) bool {
	const ms = int64(time.Millisecond)
	at = (at + ms - 1) / ms * ms
	p.mu.Lock()
	if p.stop {
		p.mu.Unlock()
		return false
	}
	heap.Push(&p.due, due[*conn]{at: at, v: c})
	kick := p.next == 0 || at < p.next
	if kick {
		p.next = at
	}
	p.mu.Unlock()
	if kick {
		select {
		case p.wake <- struct{}{}:
		default:
		}
	}
	if paced {
		p.srv.counters.pacedWrites.Add(1)
	} else {
		p.srv.counters.handedOver.Add(1)
	}
	return true
}

// run sleeps until the earliest due time, then writes every due connection.
func (p *pacer) run() {
	defer close(p.done)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var batch []*conn
	for {
		p.mu.Lock()
		now := p.srv.clock()
		for len(p.due) > 0 && (p.due[0].at <= now || p.stop) {
			batch = append(batch, heap.Pop(&p.due).(due[*conn]).v)
		}
		stop := p.stop && len(p.due) == 0
		p.next = 0
		if len(p.due) > 0 {
			p.next = p.due[0].at
		}
		next := p.next
		p.mu.Unlock()
		for i, c := range batch {
			c.writeNow()
			batch[i] = nil
		}
		batch = batch[:0]
		if stop {
			return
		}
		if next != 0 {
			timer.Reset(time.Duration(next - p.srv.clock()))
		}
		select {
		case <-p.wake:
		case <-timer.C:
		}
		timer.Stop()
	}
}

// close writes what waits, then stops the pacer; later adds return false.
func (p *pacer) close() {
	p.mu.Lock()
	p.stop = true
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
	<-p.done
}
