// Command redisclient measures the two Redis clients imload may use for its
// Redis engine, github.com/redis/rueidis and github.com/redis/go-redis/v9,
// on the engine's workload, against a redis-server it starts itself (from
// PATH, on a free loopback port, killed at the end):
//
//   - sends: the send script (sendScript) by EVALSHA from 1, 16 and 256
//     concurrent callers over 100 rooms;
//   - receives: one subscriber on the 100 rooms' channels (SUBSCRIBE and
//     SSUBSCRIBE) while a raw connection publishes as fast as the
//     subscriber keeps up;
//   - reads: XRANGE key (0-<after> + COUNT 100 from concurrent callers.
//
// Each configuration runs -runs times, the clients interleaved (their order
// rotated each run), each after a warm-up; the tables give medians and the
// spread. Run it from this directory:
//
//	go run . [-runs 3] [-duration 3s]
//
// This is its own module (bench/redisclient/go.mod) so that imload's module
// depends only on the client it chose.
package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

var (
	flagRuns     = flag.Int("runs", 3, "runs of each configuration (clients interleaved)")
	flagDuration = flag.Duration("duration", 3*time.Second, "measured time of each run")
	flagWarmup   = flag.Duration("warmup", time.Second, "warm-up before each run")
	flagRooms    = flag.Int("rooms", 100, "rooms (keys and channels)")
	flagSendConc = flag.String("send-conc", "1,4,16,256", "concurrent callers for sends")
	flagReadConc = flag.String("read-conc", "1,16,256", "concurrent callers for reads")
	flagMaxLen   = flag.Int("maxlen", 500, "stream length (XADD MAXLEN ~)")
	flagPublish  = flag.String("publish", "PUBLISH", "the script's publish command: PUBLISH or SPUBLISH")
	flagWindow   = flag.Int("window", 20000, "receives: most messages published and not yet received")
	flagOnly     = flag.String("only", "sends,receives,reads", "workloads to run")
	flagClients  = flag.String("clients", strings.Join(clientNames, ","), "clients to measure")
	flagProbe    = flag.Bool("probe", false, "instead of measuring, show what each way of subscribing does when Redis drops the connection")
)

// result is one run of one client on one configuration.
type result struct {
	workload, config, client string
	run                      int
	ops                      int64
	elapsed                  time.Duration
	p50, p99                 time.Duration // zero for receives
	allocs, bytes            float64       // per op, whole process
	cpu, redisCPU            time.Duration // per op
}

func (r result) rate() float64 { return float64(r.ops) / r.elapsed.Seconds() }

func main() {
	flag.Parse()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "redisclient:", err)
		os.Exit(1)
	}
}

func run() error {
	srv, err := startRedis()
	if err != nil {
		return err
	}
	defer srv.stop()
	if *flagProbe {
		return probe(srv)
	}
	printMachine(srv)

	rooms := makeRooms(*flagRooms)
	names := strings.Split(*flagClients, ",")
	var results []result
	add := func(r result) {
		results = append(results, r)
		fmt.Printf("  %-8s %-22s %-12s run %d: %10.0f ops/s  p50 %7s  p99 %7s  %6.1f allocs  %7.0f B  cpu %6.2f µs  redis %6.2f µs\n",
			r.workload, r.config, r.client, r.run, r.rate(), r.p50, r.p99, r.allocs, r.bytes,
			us(r.cpu), us(r.redisCPU))
	}
	only := strings.Split(*flagOnly, ",")
	for run := 1; run <= *flagRuns; run++ {
		order := rotate(names, run-1)
		if slices.Contains(only, "sends") {
			for _, conc := range ints(*flagSendConc) {
				for _, name := range order {
					r, err := sends(srv, name, rooms, conc)
					if err != nil {
						return fmt.Errorf("sends %s ×%d: %w", name, conc, err)
					}
					r.run = run
					add(r)
				}
			}
		}
		if slices.Contains(only, "receives") {
			for _, sharded := range []bool{false, true} {
				for _, name := range order {
					if name == "go-redis-ap" {
						continue // subscriptions do not go through the AutoPipeliner
					}
					r, err := receives(srv, name, rooms, sharded)
					if err != nil {
						return fmt.Errorf("receives %s: %w", name, err)
					}
					r.run = run
					add(r)
				}
			}
		}
		if slices.Contains(only, "reads") {
			for _, conc := range ints(*flagReadConc) {
				for _, name := range rotate(append(slices.Clone(names), "rueidis-maps"), run-1) {
					r, err := reads(srv, name, rooms, conc)
					if err != nil {
						return fmt.Errorf("reads %s ×%d: %w", name, conc, err)
					}
					r.run = run
					add(r)
				}
			}
		}
	}
	printTable(results)
	la, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("\nload average at the end: %s", la)
	return nil
}

func rotate(s []string, k int) []string {
	k %= len(s)
	return append(slices.Clone(s[k:]), s[:k]...)
}

func ints(s string) []int {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err == nil {
			out = append(out, n)
		}
	}
	return out
}

func callers(n int) string {
	if n == 1 {
		return "1 caller"
	}
	return strconv.Itoa(n) + " callers"
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// printMachine prints what the figures depend on.
func printMachine(srv *redisServer) {
	v, _ := exec.Command("redis-server", "--version").Output()
	la, _ := os.ReadFile("/proc/loadavg")
	model := ""
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				model = strings.TrimSpace(l[strings.IndexByte(l, ':')+1:])
				break
			}
		}
	}
	fmt.Printf("%s, %s/%s, GOMAXPROCS %d, %d CPUs (%s)\n", runtime.Version(), runtime.GOOS, runtime.GOARCH,
		runtime.GOMAXPROCS(0), runtime.NumCPU(), model)
	fmt.Printf("%s", v)
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if strings.HasPrefix(d.Path, "github.com/redis/") {
				fmt.Printf("%s %s\n", d.Path, d.Version)
			}
		}
	}
	fmt.Printf("redis-server on %s; load average at the start: %s", srv.addr, la)
	fmt.Printf("runs %d × %v after a %v warm-up; %d rooms\n\n", *flagRuns, *flagDuration, *flagWarmup, *flagRooms)
}

// --- measurement

// snapshot is the process's (and redis-server's) counters at one moment.
type snapshot struct {
	at             time.Time
	mallocs, bytes uint64
	cpu, redisCPU  time.Duration
}

func take(srv *redisServer) snapshot {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return snapshot{
		at: time.Now(), mallocs: ms.Mallocs, bytes: ms.TotalAlloc,
		cpu:      time.Duration(ru.Utime.Nano() + ru.Stime.Nano()),
		redisCPU: srv.cpu(),
	}
}

// fill sets r's per-op figures from the counters before and after ops
// operations.
func fill(r *result, a, b snapshot, ops int64) {
	r.ops, r.elapsed = ops, b.at.Sub(a.at)
	if ops == 0 {
		return
	}
	r.allocs = float64(b.mallocs-a.mallocs) / float64(ops)
	r.bytes = float64(b.bytes-a.bytes) / float64(ops)
	r.cpu = (b.cpu - a.cpu) / time.Duration(ops)
	r.redisCPU = (b.redisCPU - a.redisCPU) / time.Duration(ops)
}

// drive runs op from conc goroutines for d and returns the operations
// done and their latencies. It stops at the first error.
func drive(conc int, d time.Duration, op func(g int, rng *rand.Rand) error) (int64, *hdrhistogram.Histogram, error) {
	var stop atomic.Bool
	var firstErr error
	var errOnce sync.Once
	hists := make([]*hdrhistogram.Histogram, conc)
	counts := make([]int64, conc)
	var wg sync.WaitGroup
	for g := range conc {
		hists[g] = hdrhistogram.New(1, int64(10*time.Second/time.Microsecond), 3)
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), uint64(time.Now().UnixNano())))
			h := hists[g]
			for !stop.Load() {
				t0 := time.Now()
				if err := op(g, rng); err != nil {
					errOnce.Do(func() { firstErr = err })
					stop.Store(true)
					return
				}
				_ = h.RecordValue(int64(time.Since(t0) / time.Microsecond))
				counts[g]++
			}
		})
	}
	timer := time.AfterFunc(d, func() { stop.Store(true) })
	wg.Wait()
	timer.Stop()
	total := hdrhistogram.New(1, int64(10*time.Second/time.Microsecond), 3)
	var n int64
	for g := range conc {
		total.Merge(hists[g])
		n += counts[g]
	}
	return n, total, firstErr
}

func quantile(h *hdrhistogram.Histogram, q float64) time.Duration {
	return time.Duration(h.ValueAtQuantile(q)) * time.Microsecond
}

// --- sends

const text100 = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore." // 100 bytes

// payload197 is the rest of the published message after "offset|epoch|"
// (about 210 bytes in all): the encoded message the nodes deliver.
const payload197 = `{"t":"msg","room":"room-042","from":"user-0001","cid":"c-000000001","ts":1764201600000,"text":"` + text100 + `"}`

func sends(srv *redisServer, name string, rooms []room, conc int) (result, error) {
	if _, err := srv.do("FLUSHALL"); err != nil {
		return result{}, err
	}
	cl, err := newClient(name, srv.addr)
	if err != nil {
		return result{}, err
	}
	defer cl.close()
	ctx := context.Background()
	epoch := strconv.FormatInt(time.Now().UnixNano(), 36)
	maxLen := strconv.Itoa(*flagMaxLen)
	froms := make([]string, conc)
	for g := range froms {
		froms[g] = "user-" + strconv.Itoa(g)
	}
	var seq atomic.Int64
	op := func(g int, rng *rand.Rand) error {
		r := &rooms[rng.IntN(len(rooms))]
		a := sendArgs{
			epoch: epoch, maxLen: maxLen, from: froms[g], text: text100,
			cid: "c" + strconv.FormatInt(seq.Add(1), 10), ts: strconv.FormatInt(time.Now().UnixMilli(), 10),
			publish: *flagPublish, payload: payload197,
		}
		off, ep, err := cl.send(ctx, r, &a)
		if err != nil {
			return err
		}
		if off <= 0 || ep != epoch {
			return fmt.Errorf("send returned offset %d epoch %q (want %q)", off, ep, epoch)
		}
		return nil
	}
	warm, _, err := drive(conc, *flagWarmup, op)
	if err != nil {
		return result{}, err
	}
	runtime.GC()
	a := take(srv)
	ops, h, err := drive(conc, *flagDuration, op)
	b := take(srv)
	if err != nil {
		return result{}, err
	}
	// Every send got its own offset: the rooms' tops add up to the sends.
	var tops int64
	for i := range rooms {
		v, err := srv.do("HGET", rooms[i].meta, "top")
		if err != nil {
			return result{}, err
		}
		if s, ok := v.(string); ok {
			n, _ := strconv.ParseInt(s, 10, 64)
			tops += n
		}
	}
	if tops != warm+ops {
		return result{}, fmt.Errorf("the rooms' tops add up to %d, %d sends were made", tops, warm+ops)
	}
	r := result{workload: "sends", config: callers(conc), client: name,
		p50: quantile(h, 50), p99: quantile(h, 99)}
	fill(&r, a, b, ops)
	return r, nil
}

// --- reads

// readsTop is the number of messages each room holds before the reads.
const readsTop = 600

var populated bool

func populate(srv *redisServer, rooms []room) error {
	if _, err := srv.do("FLUSHALL"); err != nil {
		return err
	}
	cl, err := newRueidis(srv.addr)
	if err != nil {
		return err
	}
	defer cl.close()
	var wg sync.WaitGroup
	errs := make(chan error, len(rooms))
	for i := range rooms {
		wg.Go(func() {
			for n := range readsTop {
				a := sendArgs{epoch: "e", maxLen: strconv.Itoa(*flagMaxLen), from: "user-1", text: text100,
					cid: "c" + strconv.Itoa(n), ts: strconv.FormatInt(time.Now().UnixMilli(), 10),
					publish: "PUBLISH", payload: payload197}
				if _, _, err := cl.send(context.Background(), &rooms[i], &a); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

func reads(srv *redisServer, name string, rooms []room, conc int) (result, error) {
	if !populated {
		if err := populate(srv, rooms); err != nil {
			return result{}, err
		}
		populated = true
	}
	cl, err := newClient(name, srv.addr)
	if err != nil {
		return result{}, err
	}
	defer cl.close()
	ctx := context.Background()
	op := func(g int, rng *rand.Rand) error {
		r := &rooms[rng.IntN(len(rooms))]
		after := int64(readsTop - 100 - rng.IntN(300))
		n, err := cl.read(ctx, r, after)
		if err != nil {
			return err
		}
		if n != 100 {
			return fmt.Errorf("XRANGE after %d gave %d entries, want 100", after, n)
		}
		return nil
	}
	if _, _, err := drive(conc, *flagWarmup, op); err != nil {
		return result{}, err
	}
	runtime.GC()
	a := take(srv)
	ops, h, err := drive(conc, *flagDuration, op)
	b := take(srv)
	if err != nil {
		return result{}, err
	}
	r := result{workload: "reads", config: callers(conc), client: name,
		p50: quantile(h, 50), p99: quantile(h, 99)}
	fill(&r, a, b, ops)
	return r, nil
}

// --- receives

// receives subscribes name's client to every room's channel and publishes
// ~200-byte messages to them round robin from a raw pipelined connection,
// keeping at most -window published and not yet received, so the rate is
// what the subscriber keeps up with. The publisher's own allocations are
// none per message (its commands are encoded once).
func receives(srv *redisServer, name string, rooms []room, sharded bool) (result, error) {
	cl, err := newClient(name, srv.addr)
	if err != nil {
		return result{}, err
	}
	defer cl.close()
	channels := make([]string, len(rooms))
	for i := range rooms {
		channels[i] = rooms[i].channel
	}
	msgLen := len(fmt.Sprintf("%d|e|%s", 1000, payload197)) // 204 bytes
	var received atomic.Int64
	var bad atomic.Int64
	stopSub, err := cl.subscribe(context.Background(), channels, sharded, func(p string) {
		if len(p) != msgLen {
			bad.Add(1)
		}
		received.Add(1)
	})
	if err != nil {
		return result{}, err
	}
	defer stopSub()

	pubCmd := "PUBLISH"
	config := "SUBSCRIBE"
	if sharded {
		pubCmd, config = "SPUBLISH", "SSUBSCRIBE"
	}
	var batch bytes.Buffer
	for i, ch := range channels {
		writeCommand(&batch, pubCmd, ch, fmt.Sprintf("%d|e|%s", 1000+i, payload197))
	}
	conn, err := net.Dial("tcp", srv.addr)
	if err != nil {
		return result{}, err
	}
	drained := make(chan error, 1)
	go func() {
		// Replies are ":1\r\n" each (one subscriber); count them to check.
		_, err := io.Copy(io.Discard, bufio.NewReaderSize(conn, 64<<10))
		drained <- err
	}()
	var stop atomic.Bool
	var published atomic.Int64
	pubDone := make(chan error, 1)
	go func() {
		window := int64(*flagWindow)
		for !stop.Load() {
			if published.Load()-received.Load() > window {
				time.Sleep(100 * time.Microsecond)
				continue
			}
			if _, err := conn.Write(batch.Bytes()); err != nil {
				pubDone <- err
				return
			}
			published.Add(int64(len(channels)))
		}
		pubDone <- nil
	}()
	time.Sleep(*flagWarmup)
	runtime.GC()
	a := take(srv)
	n0 := received.Load()
	time.Sleep(*flagDuration)
	n1 := received.Load()
	b := take(srv)
	stop.Store(true)
	perr := <-pubDone
	// Let the subscriber take what is in flight before closing.
	deadline := time.Now().Add(10 * time.Second)
	for received.Load() < published.Load() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	conn.Close()
	<-drained
	if perr != nil {
		return result{}, perr
	}
	if got, want := received.Load(), published.Load(); got != want {
		return result{}, fmt.Errorf("received %d of %d messages published", got, want)
	}
	if bad.Load() > 0 {
		return result{}, fmt.Errorf("%d payloads of another length than %d bytes received", bad.Load(), msgLen)
	}
	r := result{workload: "receives", config: config + " " + strconv.Itoa(len(channels)) + " ch", client: name}
	fill(&r, a, b, n1-n0)
	return r, nil
}

// --- report

func printTable(results []result) {
	type key struct{ workload, config, client string }
	var keys []key
	groups := map[key][]result{}
	for _, r := range results {
		k := key{r.workload, r.config, r.client}
		if _, ok := groups[k]; !ok {
			keys = append(keys, k)
		}
		groups[k] = append(groups[k], r)
	}
	// Order: workload as run, then configuration, then client as listed.
	fmt.Printf("\nMedians of %d runs (min–max of the rate in brackets); allocations, bytes and CPU per op are the whole\n"+
		"bench process's (client, bench loop; for receives the raw publisher too, which allocates nothing per message).\n\n", *flagRuns)
	fmt.Println("| workload | configuration | client | ops/s (median, min–max) | p50 | p99 | allocs/op | B/op | CPU µs/op | redis CPU µs/op |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|")
	for _, k := range keys {
		g := groups[k]
		rates := make([]float64, len(g))
		for i, r := range g {
			rates[i] = r.rate()
		}
		med := func(f func(r result) float64) float64 {
			v := make([]float64, len(g))
			for i, r := range g {
				v[i] = f(r)
			}
			slices.Sort(v)
			return v[len(v)/2]
		}
		lat := func(f func(r result) time.Duration) string {
			if k.workload == "receives" {
				return "–"
			}
			return fmtDur(time.Duration(med(func(r result) float64 { return float64(f(r)) })))
		}
		fmt.Printf("| %s | %s | %s | %s (%s–%s) | %s | %s | %.1f | %.0f | %.2f | %.2f |\n",
			k.workload, k.config, k.client,
			fmtRate(med(result.rate)), fmtRate(slices.Min(rates)), fmtRate(slices.Max(rates)),
			lat(func(r result) time.Duration { return r.p50 }), lat(func(r result) time.Duration { return r.p99 }),
			med(func(r result) float64 { return r.allocs }), med(func(r result) float64 { return r.bytes }),
			med(func(r result) float64 { return us(r.cpu) }), med(func(r result) float64 { return us(r.redisCPU) }))
	}
}

func fmtRate(v float64) string {
	switch {
	case v >= 10000:
		return strconv.FormatFloat(v/1000, 'f', 0, 64) + "k"
	case v >= 1000:
		return strconv.FormatFloat(v/1000, 'f', 1, 64) + "k"
	}
	return strconv.FormatFloat(v, 'f', 0, 64)
}

func fmtDur(d time.Duration) string {
	if d < time.Millisecond {
		return strconv.FormatInt(int64(d/time.Microsecond), 10) + " µs"
	}
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 2, 64) + " ms"
}
