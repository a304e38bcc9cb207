package redis

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"imload/server/engine"
	"imload/server/engine/enginetest"
	"imload/server/redistest"
)

// benchSink is a test sink whose Ready wakes the benchmark.
type benchSink struct {
	*enginetest.Sink
	ready chan struct{}
}

func (s benchSink) Ready(string) {
	select {
	case s.ready <- struct{}{}:
	default:
	}
}

// benchNode is an engine with a room open, taken by the benchmark.
type benchNode struct {
	e    *Engine
	sink benchSink
	mu   sync.Mutex
	log  engine.Log
	rel  []engine.Released
	seen uint64 // the newest offset taken
}

func startBenchNodes(b *testing.B, n int) []*benchNode {
	db := redistest.Shared(b).DB(b)
	nodes := make([]*benchNode, n)
	for i := range nodes {
		bn := &benchNode{sink: benchSink{enginetest.NewSink(fmt.Sprint("n", i)), make(chan struct{}, 1)}}
		bn.e = newTestEngine(b, db.URL, db.Prefix, fmt.Sprint("n", i), nil)
		startEngine(b, bn.e, bn.sink)
		o, err := await(b, "Open", func(done func(engine.Opened, error)) { bn.e.Open("bench", true, done) })
		if err != nil {
			b.Fatal(err)
		}
		bn.log = o.Log
		nodes[i] = bn
	}
	return nodes
}

// waitFor takes until the message at offset off is visible.
func (bn *benchNode) waitFor(b *testing.B, off uint64) {
	for {
		bn.mu.Lock()
		bn.rel = bn.log.Take(bn.rel[:0])
		for _, r := range bn.rel {
			if r.Body != nil {
				bn.seen = r.Off
			}
		}
		clear(bn.rel)
		bn.seen = max(bn.seen, bn.log.Top()) // after a reset, without their Released
		seen := bn.seen
		bn.mu.Unlock()
		if seen >= off {
			return
		}
		select {
		case <-bn.sink.ready:
		case <-time.After(5 * time.Second):
			b.Fatalf("message %d not seen within 5s (seen %d)", off, seen)
		}
	}
}

// BenchmarkRoundTrip publishes one message at a time on node 0 and waits
// until every node has taken it: the publish → deliver round trip through
// Redis (the send script, the sharded publish, each node's subscription,
// Take). Allocations are the whole process's (every node's engine).
func BenchmarkRoundTrip(b *testing.B) {
	for _, n := range []int{1, 3} {
		b.Run(fmt.Sprint("nodes=", n), func(b *testing.B) {
			nodes := startBenchNodes(b, n)
			who := author("bench")
			d := engine.Draft{Who: who, Text: strings.Repeat("x", 100)}
			pub := nodes[0]
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				d.TS = time.Now().UnixMilli()
				pub.mu.Lock()
				_, err := pub.log.Publish(&d)
				pub.mu.Unlock()
				if err != nil {
					b.Fatal(err)
				}
				for _, bn := range nodes {
					bn.waitFor(b, uint64(i+1))
				}
			}
		})
	}
}

// BenchmarkBurstCommands sends a burst of messages from every node of 3 at
// once into one room open on all of them, and reports the Redis commands
// per message sent (INFO commandstats before and after: the EVALSHAs the
// engine sends, and every command Redis ran, those inside the scripts
// included), the messages' rate, and the resets and gap fills the burst
// caused (a node that falls more than HistoryMax behind resets).
func BenchmarkBurstCommands(b *testing.B) {
	for _, n := range []int{1, 3} {
		b.Run(fmt.Sprint("nodes=", n), func(b *testing.B) {
			nodes := startBenchNodes(b, n)
			srv := redistest.Shared(b)
			before := commandStats(b, srv)
			who := author("bench")
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			per := b.N
			for _, bn := range nodes {
				wg.Add(1)
				go func() {
					defer wg.Done()
					d := engine.Draft{Who: who, Text: strings.Repeat("x", 100)}
					for range per {
						d.TS = time.Now().UnixMilli()
						for {
							bn.mu.Lock()
							_, err := bn.log.Publish(&d)
							bn.mu.Unlock()
							if err == nil {
								break
							}
							time.Sleep(100 * time.Microsecond) // a full queue: wait
						}
					}
				}()
			}
			wg.Wait()
			total := uint64(per * n)
			for _, bn := range nodes {
				bn.waitFor(b, total)
			}
			elapsed := time.Since(start)
			b.StopTimer()
			after := commandStats(b, srv)
			var cmds int64
			var detail []string
			for name, c := range after {
				if dc := c - before[name]; dc > 0 && name != "info" {
					cmds += dc
					detail = append(detail, fmt.Sprintf("%s=%.3f", name, float64(dc)/float64(total)))
				}
			}
			var resets, fills int64
			for _, bn := range nodes {
				st := bn.e.Stats()
				resets, fills = resets+st.Resets, fills+st.GapFills
			}
			b.ReportMetric(float64(after["evalsha"]-before["evalsha"])/float64(total), "evalsha/msg")
			b.ReportMetric(float64(cmds)/float64(total), "redis-cmds/msg")
			b.ReportMetric(float64(resets), "resets")
			b.ReportMetric(float64(fills), "gapfills")
			b.ReportMetric(float64(total)/elapsed.Seconds(), "msgs/s")
			b.Logf("%d messages from %d nodes: per message %s", total, n, strings.Join(detail, " "))
		})
	}
}

// commandStats reads INFO commandstats: calls per command.
func commandStats(b *testing.B, srv *redistest.Server) map[string]int64 {
	r, err := srv.Do("INFO", "commandstats")
	if err != nil {
		b.Fatal(err)
	}
	out := map[string]int64{}
	for _, line := range strings.Split(fmt.Sprint(r), "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		for _, kv := range strings.Split(rest, ",") {
			if v, ok := strings.CutPrefix(kv, "calls="); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				out[strings.TrimPrefix(name, "cmdstat_")] = n
			}
		}
	}
	return out
}

// BenchmarkDM sends private messages one at a time between two users of
// one node and waits for each answer: the DM's cost in round trips to
// Redis, with DM history (dm_check, dm_append, dm_deliver, dm_sender: the
// conversation's offset given with the append) and without it
// (DMHistoryMax 0: the dm script and dm_sender).
func BenchmarkDM(b *testing.B) {
	for _, hist := range []int{0, 500} {
		b.Run(fmt.Sprint("history=", hist), func(b *testing.B) {
			db := redistest.Shared(b).DB(b)
			e := newTestEngine(b, db.URL, db.Prefix, "n0", func(o *Options) {
				o.DMHistoryMax = hist                // 0: DMs are live only
				o.DMInRate, o.DMInBurst = 1e9, 1<<30 // the benchmark is not a flood
			})
			startEngine(b, e, enginetest.NewSink("n0"))
			ref := func(id uint64) engine.SessionRef {
				return engine.SessionRef{Conn: engine.ConnRef{Node: "n0", ID: id, Since: time.Unix(1e9, 0)}, SID: 1}
			}
			claim := func(name string, id uint64) engine.Claimed {
				c, err := await(b, "Claim", func(done func(engine.Claimed, error)) {
					e.Claim(engine.Claim{Name: name, Session: ref(id)}, done)
				})
				if err != nil {
					b.Fatal(err)
				}
				return c
			}
			a := claim("alice", 1)
			claim("bob", 2)
			text := strings.Repeat("x", 100)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				d := engine.DMSend{From: a.User, FromGen: a.Gen, To: "bob", Text: text, TS: time.Now().UnixMilli(), Sender: ref(1)}
				if _, err := await(b, "DM", func(done func(engine.DMSent, error)) { e.DM(d, done) }); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
