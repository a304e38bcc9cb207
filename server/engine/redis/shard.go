package redis

import (
	"context"
	"sync"
	"time"

	"github.com/redis/rueidis"
)

// op is one request to Redis: a script call, and what to do with its
// answer (called on the shard's goroutine).
type op struct {
	sc   *script
	keys []string
	args []string
	done func(rueidis.RedisMessage, error)
}

// shard is one request queue. Its goroutine sends what is queued as one
// pipelined batch (DoMulti: one connection, in order), waits for the
// answers, hands them out, and sends the next batch: so the requests of
// one shard reach Redis in the order they were queued, and a room's (or a
// user's) requests, which all go through one shard, too.
//
// Background requests (bg: the refreshes of this node's sessions,
// presence entries and rooms' keys, thousands every SessionTTL/3) wait in
// a queue of their own and ride along at most maxBackground to a batch,
// after the requests: so a send never waits behind a refresh burst (with
// 5,000 users, one burst put 20–45 ms on W1's per-second p99 every five
// seconds).
type shard struct {
	e    *Engine
	mu   sync.Mutex
	q    []op
	bg   []op
	wake chan struct{} // capacity 1
}

// maxBatch bounds the commands of one batch.
const maxBatch = 512

// maxBackground bounds the background requests of one batch.
const maxBackground = 32

// shardOf returns the shard of a room ('r') or a user ('u').
func (e *Engine) shardOf(kind byte, name string) *shard {
	return e.shards[slotTag(kind, name)%uint32(len(e.shards))]
}

// push queues o; it reports false (and counts it) if the queue is full or
// the engine is closed.
func (s *shard) push(o op) bool {
	s.mu.Lock()
	if len(s.q) >= s.e.opts.QueueLen || s.e.closed.Load() {
		s.mu.Unlock()
		s.e.stats.queueFull.Add(1)
		return false
	}
	s.q = append(s.q, o)
	s.mu.Unlock()
	s.kick()
	return true
}

// pushBG queues a background request (see shard); it reports false (and
// counts it) if the background queue is full or the engine is closed.
func (s *shard) pushBG(o op) bool {
	s.mu.Lock()
	if len(s.bg) >= s.e.opts.QueueLen || s.e.closed.Load() {
		s.mu.Unlock()
		s.e.stats.queueFull.Add(1)
		return false
	}
	s.bg = append(s.bg, o)
	s.mu.Unlock()
	s.kick()
	return true
}

// kick wakes the shard's goroutine.
func (s *shard) kick() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// run is the shard's goroutine: it sends batches until Close, then what
// is left (within OpTimeout).
func (s *shard) run() {
	defer s.e.wg.Done()
	var batch []op
	for {
		select {
		case <-s.wake:
		case <-s.e.stop:
			deadline := time.Now().Add(s.e.opts.OpTimeout)
			for time.Now().Before(deadline) {
				if batch = s.next(batch[:0]); len(batch) == 0 {
					return
				}
				s.exec(batch)
			}
			return
		}
		for {
			if batch = s.next(batch[:0]); len(batch) == 0 {
				break
			}
			s.exec(batch)
		}
	}
}

// next moves up to maxBatch queued requests to batch, then up to
// maxBackground background requests.
func (s *shard) next(batch []op) []op {
	s.mu.Lock()
	defer s.mu.Unlock()
	batch = take(batch, &s.q, maxBatch)
	return take(batch, &s.bg, min(maxBackground, maxBatch-len(batch)))
}

// take moves up to n requests from the front of *q to batch.
func take(batch []op, q *[]op, n int) []op {
	n = min(len(*q), n)
	batch = append(batch, (*q)[:n]...)
	rest := copy(*q, (*q)[n:])
	clear((*q)[rest:])
	*q = (*q)[:rest]
	if rest == 0 && cap(*q) > 4*maxBatch {
		*q = nil // a burst is over: let its array go
	}
	return batch
}

// evalsha builds the command of a request.
func (e *Engine) evalsha(o *op) rueidis.Completed {
	return e.client.B().Evalsha().Sha1(o.sc.sha).Numkeys(int64(len(o.keys))).Key(o.keys...).Arg(o.args...).Build()
}

// exec sends a batch and hands out its answers. Requests answered
// NOSCRIPT (Redis restarted and lost its script cache) are sent again,
// in their order, once the scripts are loaded: a script answered NOSCRIPT
// did not run.
func (s *shard) exec(batch []op) {
	e := s.e
	cmds := make([]rueidis.Completed, len(batch))
	for i := range batch {
		cmds[i] = e.evalsha(&batch[i])
	}
	ctx, cancel := context.WithTimeout(e.ctx, e.opts.OpTimeout)
	defer cancel()
	res := e.client.DoMulti(ctx, cmds...)
	e.stats.batches.Add(1)
	e.stats.commands.Add(int64(len(cmds)))
	var retry []int
	for i := range res {
		if rerr, ok := rueidis.IsRedisErr(res[i].Error()); ok && rerr.IsNoScript() {
			retry = append(retry, i)
		}
	}
	if len(retry) > 0 {
		e.loadScripts(ctx)
		again := make([]rueidis.Completed, len(retry))
		for j, i := range retry {
			again[j] = e.evalsha(&batch[i])
		}
		for j, r := range e.client.DoMulti(ctx, again...) {
			res[retry[j]] = r
		}
	}
	failed := false
	for i := range batch {
		msg, err := res[i].ToMessage()
		if err != nil && !rueidis.IsRedisNil(err) {
			if _, isRedis := rueidis.IsRedisErr(err); !isRedis {
				failed = true
			}
			batch[i].done(msg, e.unavailable(batch[i].sc.name, err))
			continue
		}
		batch[i].done(msg, nil)
	}
	if failed {
		e.stats.batchErrors.Add(1)
	}
	clear(batch)
}

// loadScripts loads every script (SCRIPT LOAD), after a NOSCRIPT.
func (e *Engine) loadScripts(ctx context.Context) {
	cmds := make([]rueidis.Completed, len(e.sc.all))
	for i, sc := range e.sc.all {
		cmds[i] = e.client.B().ScriptLoad().Script(sc.src).Build()
	}
	for i, r := range e.client.DoMulti(ctx, cmds...) {
		if err := r.Error(); err != nil {
			e.opts.Logger.Warn("redis engine: SCRIPT LOAD failed", "script", e.sc.all[i].name, "err", err)
		}
	}
}

// do runs one script now, on the calling goroutine (the heartbeat's),
// loading the scripts on NOSCRIPT.
func (e *Engine) do(ctx context.Context, sc *script, keys, args []string) (rueidis.RedisMessage, error) {
	o := op{sc: sc, keys: keys, args: args}
	msg, err := e.client.Do(ctx, e.evalsha(&o)).ToMessage()
	if rerr, ok := rueidis.IsRedisErr(err); ok && rerr.IsNoScript() {
		e.loadScripts(ctx)
		msg, err = e.client.Do(ctx, e.evalsha(&o)).ToMessage()
	}
	return msg, err
}
