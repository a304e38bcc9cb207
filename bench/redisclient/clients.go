package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"
)

// sendScript is the send the engine will run: in one atomic call on one
// room's keys (all with the room's hash tag), the room's next offset (and
// its epoch, made when the counter is new: Redis lost the room, or it never
// had it), the append to the room's stream under the id 0-<offset>,
// trimmed to about ARGV[2] entries, and the publish of the message with
// its offset and epoch to the room's channel.
//
// KEYS: meta hash, stream, channel (a channel is not a key, but naming it
// in KEYS lets Redis Cluster check that it hashes to the same slot, which
// SPUBLISH needs).
// ARGV: epoch candidate, max length, from, text, cid, ts, PUBLISH or
// SPUBLISH, the rest of the published payload.
// Returns {offset, epoch}.
const sendScript = `
local top = redis.call('HINCRBY', KEYS[1], 'top', 1)
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[1]
  redis.call('HSET', KEYS[1], 'epoch', epoch)
end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '0-' .. top,
  'o', top, 'f', ARGV[3], 't', ARGV[4], 'c', ARGV[5], 'ts', ARGV[6])
redis.call(ARGV[7], KEYS[3], top .. '|' .. epoch .. '|' .. ARGV[8])
return {top, epoch}
`

// room is one room's key names.
type room struct {
	meta, stream, channel string
}

func makeRooms(n int) []room {
	rs := make([]room, n)
	for i := range rs {
		tag := "{r" + strconv.Itoa(i) + "}"
		rs[i] = room{meta: tag + ":m", stream: tag + ":s", channel: tag + ":c"}
	}
	return rs
}

// sendArgs are a send's arguments, as the engine would have them.
type sendArgs struct {
	epoch, maxLen, from, text, cid, ts, publish, payload string
}

// client is one library used as the engine would use it.
type client interface {
	send(ctx context.Context, r *room, a *sendArgs) (offset int64, epoch string, err error)
	// read reads up to 100 entries after offset and returns how many.
	read(ctx context.Context, r *room, after int64) (int, error)
	// subscribe subscribes to channels (SSUBSCRIBE when sharded) and calls
	// onMsg with each message's payload until stop is called.
	subscribe(ctx context.Context, channels []string, sharded bool, onMsg func(string)) (stop func(), err error)
	close()
}

// clientNames are the variants measured, in the order of the tables.
var clientNames = []string{"rueidis", "go-redis", "go-redis-ap"}

func newClient(name, addr string) (client, error) {
	switch name {
	case "rueidis":
		return newRueidis(addr)
	case "rueidis-maps":
		c, err := newRueidis(addr)
		if err == nil {
			c.maps = true
		}
		return c, err
	case "go-redis":
		return newGoRedis(addr, false)
	case "go-redis-ap":
		return newGoRedis(addr, true)
	}
	return nil, fmt.Errorf("unknown client %q", name)
}

// --- rueidis: the default client (auto-pipelining over a few shared
// connections, RESP3), commands from its builder, the script through
// rueidis.NewLuaScript (EVALSHA, EVAL on NOSCRIPT).

type rueidisClient struct {
	c      rueidis.Client
	script *rueidis.Lua
	maps   bool // reads parse entries into maps (AsXRange), as go-redis does, not slices (AsXRangeSlices)
}

func newRueidis(addr string) (*rueidisClient, error) {
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{addr}})
	if err != nil {
		return nil, err
	}
	return &rueidisClient{c: c, script: rueidis.NewLuaScript(sendScript)}, nil
}

func (c *rueidisClient) close() { c.c.Close() }

func (c *rueidisClient) send(ctx context.Context, r *room, a *sendArgs) (int64, string, error) {
	res, err := c.script.Exec(ctx, c.c,
		[]string{r.meta, r.stream, r.channel},
		[]string{a.epoch, a.maxLen, a.from, a.text, a.cid, a.ts, a.publish, a.payload}).ToArray()
	if err != nil {
		return 0, "", err
	}
	if len(res) != 2 {
		return 0, "", fmt.Errorf("script returned %d values", len(res))
	}
	off, err := res[0].AsInt64()
	if err != nil {
		return 0, "", err
	}
	ep, err := res[1].ToString()
	return off, ep, err
}

// read parses the entries into slices of field-value pairs, in order
// (AsXRangeSlices), or with maps into maps like go-redis's XMessage.
func (c *rueidisClient) read(ctx context.Context, r *room, after int64) (int, error) {
	res := c.c.Do(ctx, c.c.B().Xrange().Key(r.stream).
		Start("(0-"+strconv.FormatInt(after, 10)).End("+").Count(100).Build())
	if c.maps {
		es, err := res.AsXRange()
		return len(es), err
	}
	es, err := res.AsXRangeSlices()
	return len(es), err
}

// subscribe uses client.Receive, on the client's shared connection (the
// README's way). Messages arrive on the connection's reading goroutine.
func (c *rueidisClient) subscribe(ctx context.Context, channels []string, sharded bool, onMsg func(string)) (func(), error) {
	var cmd rueidis.Completed
	if sharded {
		cmd = c.c.B().Ssubscribe().Channel(channels...).Build()
	} else {
		cmd = c.c.B().Subscribe().Channel(channels...).Build()
	}
	ctx, cancel := context.WithCancel(ctx)
	var subscribed atomic.Int64
	ready := make(chan struct{})
	var once sync.Once
	ctx = rueidis.WithOnSubscriptionHook(ctx, func(s rueidis.PubSubSubscription) {
		if subscribed.Add(1) == int64(len(channels)) {
			once.Do(func() { close(ready) })
		}
	})
	done := make(chan error, 1)
	go func() {
		done <- c.c.Receive(ctx, cmd, func(m rueidis.PubSubMessage) { onMsg(m.Message) })
	}()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		return nil, fmt.Errorf("rueidis Receive: %v", err)
	}
	return func() {
		cancel()
		<-done
	}, nil
}

// --- go-redis: the default client (a pool of 10 × GOMAXPROCS connections,
// one command per connection at a time, RESP3), or with ap its
// experimental AutoPipeliner (v9.23: the blocking face, default options:
// one ordered batch stream); the script through redis.NewScript.Run
// (EVALSHA, EVAL on NOSCRIPT).

type goRedisClient struct {
	c      *redis.Client
	cmd    redis.Cmdable // c, or its AutoPipeliner
	script *redis.Script
}

func newGoRedis(addr string, ap bool) (*goRedisClient, error) {
	c := redis.NewClient(&redis.Options{Addr: addr})
	g := &goRedisClient{c: c, cmd: c, script: redis.NewScript(sendScript)}
	if ap {
		p, err := c.AutoPipeline()
		if err != nil {
			c.Close()
			return nil, err
		}
		g.cmd = p
	}
	return g, nil
}

func (c *goRedisClient) close() { c.c.Close() }

func (c *goRedisClient) send(ctx context.Context, r *room, a *sendArgs) (int64, string, error) {
	v, err := c.script.Run(ctx, c.cmd.(redis.Scripter),
		[]string{r.meta, r.stream, r.channel},
		a.epoch, a.maxLen, a.from, a.text, a.cid, a.ts, a.publish, a.payload).Slice()
	if err != nil {
		return 0, "", err
	}
	if len(v) != 2 {
		return 0, "", fmt.Errorf("script returned %d values", len(v))
	}
	off, ok := v[0].(int64)
	ep, ok2 := v[1].(string)
	if !ok || !ok2 {
		return 0, "", fmt.Errorf("script returned %T %T", v[0], v[1])
	}
	return off, ep, nil
}

func (c *goRedisClient) read(ctx context.Context, r *room, after int64) (int, error) {
	es, err := c.cmd.XRangeN(ctx, r.stream, "(0-"+strconv.FormatInt(after, 10), "+", 100).Result()
	return len(es), err
}

// subscribe uses a PubSub (its own connection) and its Channel (the
// documented way: a goroutine reads the connection and hands *Message
// values over a Go channel, here of 1,000).
func (c *goRedisClient) subscribe(ctx context.Context, channels []string, sharded bool, onMsg func(string)) (func(), error) {
	var ps *redis.PubSub
	if sharded {
		ps = c.c.SSubscribe(ctx, channels...)
	} else {
		ps = c.c.Subscribe(ctx, channels...)
	}
	// Wait for the confirmations before handing over to Channel.
	for n := 0; n < len(channels); {
		v, err := ps.Receive(ctx)
		if err != nil {
			ps.Close()
			return nil, err
		}
		if _, ok := v.(*redis.Subscription); ok {
			n++
		} else {
			ps.Close()
			return nil, errors.New("go-redis: a message before the subscriptions were confirmed")
		}
	}
	ch := ps.Channel(redis.WithChannelSize(1000))
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m := range ch {
			onMsg(m.Payload)
		}
	}()
	return func() {
		ps.Close()
		<-done
	}, nil
}
