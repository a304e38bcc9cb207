package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"
)

// The reconnect probe (-probe): what each way of subscribing does when
// Redis drops its connections, and whether it tells the application, which
// must then fill the gap from the room's stream. A raw connection publishes
// message 1, 2, 3, ... every 10 ms to one sharded channel; after 300 ms the
// probe kills every client connection but its own (CLIENT KILL), and after
// another 1.5 s it reports which messages were lost and what the
// subscriber was told.

// probeEvent is something the subscriber saw, at a time since the kill.
type probeEvent struct {
	at   time.Duration
	what string
}

// probeVariant subscribes to ch and reports each message's payload with
// msg and anything else it is told with signal; it returns a stop func.
type probeVariant struct {
	name      string
	subscribe func(addr, ch string, msg func(string), signal func(string)) (stop func(), err error)
}

var probeVariants = []probeVariant{
	{"rueidis client.Receive (shared connection) + WithOnSubscriptionHook", func(addr, ch string, msg, signal func(string)) (func(), error) {
		c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{addr}})
		if err != nil {
			return nil, err
		}
		ctx, cancel := context.WithCancel(context.Background())
		ctx = rueidis.WithOnSubscriptionHook(ctx, func(s rueidis.PubSubSubscription) {
			signal("subscription hook: " + s.Kind + " " + s.Channel)
		})
		done := make(chan struct{})
		go func() {
			defer close(done)
			err := c.Receive(ctx, c.B().Ssubscribe().Channel(ch).Build(), func(m rueidis.PubSubMessage) { msg(m.Message) })
			signal(fmt.Sprintf("Receive returned %v", err))
		}()
		return func() { cancel(); <-done; c.Close() }, nil
	}},
	{"rueidis Dedicate + SetPubSubHooks (the engine re-subscribes itself when the wait channel reports)", func(addr, ch string, msg, signal func(string)) (func(), error) {
		c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{addr}})
		if err != nil {
			return nil, err
		}
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			for {
				d, release := c.Dedicate()
				wait := d.SetPubSubHooks(rueidis.PubSubHooks{
					OnMessage:      func(m rueidis.PubSubMessage) { msg(m.Message) },
					OnSubscription: func(s rueidis.PubSubSubscription) { signal("OnSubscription: " + s.Kind + " " + s.Channel) },
				})
				if err := d.Do(context.Background(), d.B().Ssubscribe().Channel(ch).Build()).Error(); err != nil {
					signal("SSUBSCRIBE: " + err.Error())
				}
				select {
				case err := <-wait:
					signal(fmt.Sprintf("wait channel: %v (re-subscribing)", err))
					release()
					time.Sleep(10 * time.Millisecond)
				case <-stop:
					release()
					return
				}
			}
		}()
		return func() { close(stop); <-done; c.Close() }, nil
	}},
	{"go-redis PubSub.Channel()", func(addr, ch string, msg, signal func(string)) (func(), error) {
		c := redis.NewClient(&redis.Options{Addr: addr})
		ps := c.SSubscribe(context.Background(), ch)
		if _, err := ps.Receive(context.Background()); err != nil {
			return nil, err
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			for m := range ps.Channel() {
				msg(m.Payload)
			}
		}()
		return func() { ps.Close(); <-done; c.Close() }, nil
	}},
	{"go-redis PubSub.ChannelWithSubscriptions()", func(addr, ch string, msg, signal func(string)) (func(), error) {
		c := redis.NewClient(&redis.Options{Addr: addr})
		ps := c.SSubscribe(context.Background(), ch)
		if _, err := ps.Receive(context.Background()); err != nil {
			return nil, err
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			for v := range ps.ChannelWithSubscriptions() {
				switch m := v.(type) {
				case *redis.Message:
					msg(m.Payload)
				case *redis.Subscription:
					signal("*Subscription: " + m.Kind + " " + m.Channel)
				}
			}
		}()
		return func() { ps.Close(); <-done; c.Close() }, nil
	}},
	{"go-redis PubSub.Receive() loop", func(addr, ch string, msg, signal func(string)) (func(), error) {
		c := redis.NewClient(&redis.Options{Addr: addr})
		ps := c.SSubscribe(context.Background(), ch)
		if _, err := ps.Receive(context.Background()); err != nil {
			return nil, err
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			for {
				v, err := ps.Receive(context.Background())
				if err != nil {
					if strings.Contains(err.Error(), "closed") {
						return
					}
					signal("Receive error: " + err.Error())
					time.Sleep(10 * time.Millisecond)
					continue
				}
				switch m := v.(type) {
				case *redis.Message:
					msg(m.Payload)
				case *redis.Subscription:
					signal("*Subscription: " + m.Kind + " " + m.Channel)
				}
			}
		}()
		return func() { ps.Close(); <-done; c.Close() }, nil
	}},
}

func probe(srv *redisServer) error {
	for _, v := range probeVariants {
		if err := probeOne(srv, v); err != nil {
			return fmt.Errorf("%s: %w", v.name, err)
		}
	}
	return nil
}

func probeOne(srv *redisServer, v probeVariant) error {
	ch := "{probe}:c"
	var mu sync.Mutex
	var killAt time.Time
	var events []probeEvent
	got := map[int]bool{}
	since := func() time.Duration {
		if killAt.IsZero() {
			return 0
		}
		return time.Since(killAt)
	}
	stop, err := v.subscribe(srv.addr, ch,
		func(p string) {
			n, _ := strconv.Atoi(p)
			mu.Lock()
			got[n] = true
			if !killAt.IsZero() && len(events) < 40 {
				events = append(events, probeEvent{since(), "message " + p})
			}
			mu.Unlock()
		},
		func(s string) {
			mu.Lock()
			events = append(events, probeEvent{since(), s})
			mu.Unlock()
		})
	if err != nil {
		return err
	}
	time.Sleep(200 * time.Millisecond) // subscribed (some variants subscribe in a goroutine)
	sent := 0
	publish := func(d time.Duration) error {
		end := time.Now().Add(d)
		for time.Now().Before(end) {
			sent++
			if _, err := srv.do("SPUBLISH", ch, strconv.Itoa(sent)); err != nil {
				return err
			}
			time.Sleep(10 * time.Millisecond)
		}
		return nil
	}
	if err := publish(300 * time.Millisecond); err != nil {
		return err
	}
	mu.Lock()
	killAt = time.Now()
	lastBefore := sent
	mu.Unlock()
	// Every connection but the one that sends this: the subscriber's and
	// any other of the client's.
	if _, err := srv.do("CLIENT", "KILL", "TYPE", "pubsub"); err != nil {
		return err
	}
	if _, err := srv.do("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"); err != nil {
		return err
	}
	if err := publish(1500 * time.Millisecond); err != nil {
		return err
	}
	time.Sleep(100 * time.Millisecond)
	stop()

	mu.Lock()
	defer mu.Unlock()
	var lost []int
	firstAfter := 0
	for n := 1; n <= sent; n++ {
		if !got[n] {
			lost = append(lost, n)
		} else if n > lastBefore && firstAfter == 0 {
			firstAfter = n
		}
	}
	fmt.Printf("\n%s\n", v.name)
	fmt.Printf("  published %d (kill after #%d); lost %d: %s; first received after the kill: #%d\n",
		sent, lastBefore, len(lost), spans(lost), firstAfter)
	shown := 0
	for _, e := range events {
		if strings.HasPrefix(e.what, "message") {
			if shown > 0 {
				continue
			}
			shown++
		}
		fmt.Printf("  +%-8s %s\n", e.at.Round(time.Millisecond), e.what)
	}
	return nil
}

// spans writes sorted numbers as ranges: "3-7, 9".
func spans(ns []int) string {
	if len(ns) == 0 {
		return "none"
	}
	var b strings.Builder
	for i := 0; i < len(ns); {
		j := i
		for j+1 < len(ns) && ns[j+1] == ns[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteString(", ")
		}
		if j > i {
			fmt.Fprintf(&b, "#%d–#%d", ns[i], ns[j])
		} else {
			fmt.Fprintf(&b, "#%d", ns[i])
		}
		i = j + 1
	}
	return b.String()
}
