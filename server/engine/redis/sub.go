package redis

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/redis/rueidis"
)

// subscriber keeps one dedicated connection subscribed (SSUBSCRIBE) to the
// channels of the rooms and users this node holds. Its goroutine makes the
// connection, subscribes what is wanted, follows the changes of what is
// wanted, and when the connection is lost (Redis restarted, a network
// blip) makes it again and subscribes everything again; the logs then
// fill what they missed from their streams (pub/sub is at most once).
type subscriber struct {
	e    *Engine
	wake chan struct{} // capacity 1: want changed

	mu      sync.Mutex
	want    map[string]int           // channel → holders
	have    map[string]bool          // subscribed on the current connection
	waiters map[string][]func(error) // called once the channel is subscribed
	down    error                    // why the connection is not up (nil: up)
}

func newSubscriber(e *Engine) *subscriber {
	return &subscriber{
		e: e, wake: make(chan struct{}, 1),
		want: make(map[string]int), have: make(map[string]bool), waiters: make(map[string][]func(error)),
		down: errors.New("subscription connection not made yet"),
	}
}

// err is nil while the connection is up.
func (s *subscriber) err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.down
}

// subscribe adds a holder of channel ch; cb (if not nil) is called once
// the channel is subscribed, or with an error at once if the connection is
// down (the channel is subscribed when it is up again, as long as it is
// held).
func (s *subscriber) subscribe(ch string, cb func(error)) {
	s.mu.Lock()
	s.want[ch]++
	switch {
	case s.have[ch]:
		s.mu.Unlock()
		if cb != nil {
			cb(nil)
		}
		return
	case s.down != nil:
		err := s.down
		s.mu.Unlock()
		if cb != nil {
			cb(err)
		}
	default:
		if cb != nil {
			s.waiters[ch] = append(s.waiters[ch], cb)
		}
		s.mu.Unlock()
	}
	s.kick()
}

// unsubscribe removes a holder of channel ch.
func (s *subscriber) unsubscribe(ch string) {
	s.mu.Lock()
	if s.want[ch]--; s.want[ch] <= 0 {
		delete(s.want, ch)
	}
	s.mu.Unlock()
	s.kick()
}

func (s *subscriber) kick() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// run is the subscriber's goroutine.
func (s *subscriber) run() {
	e := s.e
	defer e.wg.Done()
	backoff := 20 * time.Millisecond
	first := true
	for {
		dc, cancel := e.client.Dedicate()
		lost := dc.SetPubSubHooks(rueidis.PubSubHooks{OnMessage: e.onMessage})
		err := s.sync(dc)
		if err == nil {
			s.mu.Lock()
			s.down = nil
			s.mu.Unlock()
			if !first {
				e.stats.reconnects.Add(1)
				e.opts.Logger.Info("redis engine: subscribed again; the rooms fill what they missed")
				e.resyncAll()
				e.beatNow()
			}
			first = false
			backoff = 20 * time.Millisecond
			err = s.serve(dc, lost)
		}
		cancel()
		if err == nil { // stopped
			return
		}
		s.lost(err)
		select {
		case <-e.stop:
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

// serve follows the changes of what is wanted on an established
// connection until it is lost (the error) or the engine stops (nil).
func (s *subscriber) serve(dc rueidis.DedicatedClient, lost <-chan error) error {
	e := s.e
	for {
		select {
		case err := <-lost:
			if err == nil {
				err = errors.New("subscription connection closed")
			}
			return err
		case <-s.wake:
			if err := s.sync(dc); err != nil {
				return err
			}
		case <-e.stop:
			return nil
		}
	}
}

// lost marks the connection down: every waiter gets the error.
func (s *subscriber) lost(err error) {
	s.mu.Lock()
	if s.down == nil {
		s.e.opts.Logger.Warn("redis engine: subscription connection lost: sends are refused until it is back", "err", err)
	}
	s.down = err
	clear(s.have)
	var cbs []func(error)
	for ch, ws := range s.waiters {
		cbs = append(cbs, ws...)
		delete(s.waiters, ch)
	}
	s.mu.Unlock()
	for _, cb := range cbs {
		cb(s.e.unavailable("subscribe", err))
	}
}

// sync subscribes the channels wanted and not subscribed, and
// unsubscribes those subscribed and no longer wanted, in one batch.
func (s *subscriber) sync(dc rueidis.DedicatedClient) error {
	e := s.e
	for {
		s.mu.Lock()
		var sub, unsub []string
		for ch := range s.want {
			if !s.have[ch] {
				sub = append(sub, ch)
			}
		}
		for ch := range s.have {
			if s.want[ch] == 0 {
				unsub = append(unsub, ch)
			}
		}
		s.mu.Unlock()
		if len(sub) == 0 && len(unsub) == 0 {
			return nil
		}
		if len(sub) > maxBatch {
			sub = sub[:maxBatch]
		}
		if len(unsub) > maxBatch {
			unsub = unsub[:maxBatch]
		}
		cmds := make([]rueidis.Completed, 0, len(sub)+len(unsub))
		for _, ch := range sub {
			cmds = append(cmds, dc.B().Ssubscribe().Channel(ch).Build())
		}
		for _, ch := range unsub {
			cmds = append(cmds, dc.B().Sunsubscribe().Channel(ch).Build())
		}
		ctx, cancel := context.WithTimeout(e.ctx, e.opts.OpTimeout)
		res := dc.DoMulti(ctx, cmds...)
		cancel()
		for _, r := range res {
			if err := r.Error(); err != nil {
				return err
			}
		}
		var cbs []func(error)
		s.mu.Lock()
		for _, ch := range sub {
			s.have[ch] = true
			cbs = append(cbs, s.waiters[ch]...)
			delete(s.waiters, ch)
		}
		for _, ch := range unsub {
			delete(s.have, ch)
		}
		s.mu.Unlock()
		for _, cb := range cbs {
			cb(nil)
		}
	}
}

// onMessage is called by the connection's reading goroutine for each
// message published: it queues it for the dispatcher, or, if the inbox is
// full, drops it and has every log fill from its stream.
func (e *Engine) onMessage(m rueidis.PubSubMessage) {
	select {
	case e.inbox <- m:
	default:
		e.stats.inboxDropped.Add(1)
		select {
		case e.resync <- struct{}{}:
		default:
		}
	}
}

// dispatch is the dispatcher's goroutine: it hands each message received
// to its room's logs or to the Sink, in the order received.
func (e *Engine) dispatch() {
	defer e.wg.Done()
	for {
		select {
		case <-e.stop:
			return
		case m := <-e.inbox:
			e.stats.received.Add(1)
			e.handle(m)
		case <-e.resync:
			e.resyncAll()
		}
	}
}

// handle hands one message received to where it goes.
func (e *Engine) handle(m rueidis.PubSubMessage) {
	kind, name, ok := e.channelOf(m.Channel)
	if !ok || len(m.Message) == 0 {
		e.stats.malformed.Add(1)
		return
	}
	var err error
	switch {
	case kind == 'r' && m.Message[0] == 'm':
		err = e.roomMessage(name, m.Message[1:])
	case kind == 'r' && m.Message[0] == 'p':
		err = e.presenceMessage(name, m.Message[1:])
	case kind == 'u' && m.Message[0] == 'd':
		err = e.dmMessage(name, m.Message[1:])
	case kind == 'u' && m.Message[0] == 'k':
		err = e.kickMessage(m.Message[1:])
	case kind == 'u' && m.Message[0] == 'x':
		err = e.disconnectMessage(name, m.Message[1:])
	default:
		err = errPayload
	}
	if err != nil {
		e.stats.malformed.Add(1)
		e.opts.Logger.Warn("redis engine: a malformed message", "channel", m.Channel, "err", err)
	}
}
