package reports

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// fixture describes a synthetic result made by makeResult.
type fixture struct {
	seed  uint64
	host  string
	start time.Time
	// lost is the number of lost messages in every run (0 = pass).
	lost int64
	// modes to generate; nil means both.
	modes []string
	// protocol is "" (imload v1) or ProtocolSocketIO: the scenario then
	// records the protocol as loadgen does (version 0, extra.protocol) and
	// the notes are a socket.io run's.
	protocol string
	// faulty adds, to every run, content mismatches, kicks and a server
	// crash with its resets.
	faulty bool
	// nodes is the number of nodes the load was spread over (0: one, as a
	// run against one server writes it); noNodes makes a result written
	// before nodes were reported (no nodes, cross_node not measured).
	nodes   int
	noNodes bool
}

// fixtureValues holds every recorded value (µs) by mode and histogram, so that
// tests can build reference histograms.
type fixtureValues map[string]map[string][]int64

var fixtureStart = time.Date(2026, 11, 26, 14, 0, 0, 0, time.UTC)

// makeResult builds a realistic result: 100 browsers × 3 tabs chatting in 10
// rooms for 60 s after a 10 s ramp, measured in shared and per-tab modes, with
// latencies drawn from a seeded RNG.
func makeResult(t testing.TB, f fixture) (*Result, fixtureValues) {
	t.Helper()
	if f.start.IsZero() {
		f.start = fixtureStart
	}
	if f.host == "" {
		f.host = "load-1"
	}
	if f.modes == nil {
		f.modes = []string{ModeShared, ModePerTab}
	}
	rng := rand.New(rand.NewPCG(f.seed, 42))
	r := &Result{
		Version: SchemaVersion,
		Scenario: Scenario{
			Targets:       []string{"ws://127.0.0.1:8080/ws"},
			Protocol:      1,
			Rooms:         10,
			RoomsPerUser:  2,
			Rate:          0.2,
			Duration:      Duration(60 * time.Second),
			Ramp:          Duration(10 * time.Second),
			MsgSize:       200,
			DMRatio:       0.1,
			TabChurn:      0.5,
			ConnKill:      0.1,
			FlushInterval: Duration(5 * time.Millisecond),
			FlushMax:      16,
			Seed:          int64(f.seed),
			Extra:         map[string]string{"history": "true", "cmd_timeout": "5s"},
		},
		Environment: Environment{
			ImloadVersion:   "v0.1.0",
			ProtocolVersion: 1,
			GoVersion:       "go1.26.8",
			GOOS:            "linux",
			GOARCH:          "amd64",
			NumCPU:          2,
			GOMAXPROCS:      2,
			Hostname:        f.host,
			ServerVersion:   "v0.1.0",
		},
		Thresholds: Thresholds{MaxP99Ms: 250, MaxErrors: -1},
	}
	vals := fixtureValues{}
	at := f.start
	for _, mode := range f.modes {
		run, v := makeRun(rng, mode, at, f.lost)
		r.Runs = append(r.Runs, run)
		vals[mode] = v
		at = run.End.Add(5 * time.Second)
	}
	if f.nodes > 1 {
		r.Scenario.Targets = nil
		for k := range f.nodes {
			r.Scenario.Targets = append(r.Scenario.Targets, fmt.Sprintf("ws://127.0.0.1:%d/ws", 8081+k))
		}
	}
	if !f.noNodes {
		for i := range r.Runs {
			addNodes(&r.Runs[i], r.Scenario.Targets)
		}
	}
	if f.faulty {
		for i := range r.Runs {
			run := &r.Runs[i]
			run.Delivery.Mismatched = 3
			run.Counters.Kicks = 2
			run.Counters.Resets = 4
			run.Faults = []Fault{{Kind: FaultCrash, AtMs: 20_000, DownMs: 1_240, LinkLosses: run.PhysicalConnectionsPeak}}
		}
		r.Evaluate()
	}
	r.Environment.Start = f.start
	r.Environment.End = r.Runs[len(r.Runs)-1].End
	if f.protocol == ProtocolSocketIO {
		r.Scenario.Protocol = 0
		r.Scenario.Extra = map[string]string{"protocol": ProtocolSocketIO, "cmd_timeout": "5s"}
		for i := range r.Runs {
			n := r.Runs[i].Notes
			// No resume in socket.io: a reconnecting socket joins again
			// and what it missed is excused; a send in flight is not re-sent.
			n["deliveries_by_push"] += n["deliveries_by_resume"]
			n["server_messages_out"] = n["deliveries_by_push"]
			for _, k := range []string{"deliveries_by_resume", "resume_resets", "resume_reset_offsets", "goaways"} {
				delete(n, k)
			}
			n["tracks_excused"] = 6
			n["sends_unconfirmed"] = 4
		}
	}
	r.Evaluate()
	return r, vals
}

func makeRun(rng *rand.Rand, mode string, start time.Time, lost int64) (Run, map[string][]int64) {
	const (
		clients = 100
		tabs    = 3
		seconds = 70 // 10 s ramp + 60 s
		ramp    = 10
	)
	conns := int64(clients)
	base := 1.6 // median delivery ms
	if mode == ModePerTab {
		conns = clients * tabs
		base = 2.3
	}
	sessions := int64(clients * tabs)
	run := Run{
		Mode:                    mode,
		Clients:                 clients,
		Tabs:                    tabs,
		Start:                   start,
		End:                     start.Add(seconds * time.Second),
		PhysicalConnectionsPeak: conns,
		SessionsPeak:            sessions,
		Latency:                 map[string]Latency{},
	}
	vals := map[string][]int64{}
	lognormal := func(medianMs, sigma float64) int64 {
		v := medianMs * math.Exp(sigma*rng.NormFloat64())
		if rng.Float64() < 0.003 { // a GC pause or a slow flush now and then
			v += 20 + rng.Float64()*120
		}
		us := int64(v * 1000)
		if us < 1 {
			us = 1
		}
		return us
	}
	record := func(name string, n int, medianMs, sigma float64) {
		h := NewHistogram()
		vs := make([]int64, 0, n)
		for range n {
			v := lognormal(medianMs, sigma)
			vs = append(vs, v)
			if err := h.RecordValue(v); err != nil {
				panic(err)
			}
		}
		vals[name] = vs
		run.Latency[name] = NewLatency(h, 0)
	}

	// Series: connections ramp up over 10 s, then hold; deliveries follow.
	var sent, delivered float64
	membersPerMsg := float64(clients*2/10) * tabs // users per room × tabs
	for s := 1; s <= seconds; s++ {
		frac := math.Min(1, float64(s)/ramp)
		c := int64(math.Round(float64(conns) * frac))
		ss := int64(math.Round(float64(sessions) * frac))
		if s == 40 { // a killed connection or two
			c -= conns / 50
		}
		sendRate := float64(ss) * 0.2 * (0.9 + 0.2*rng.Float64())
		delRate := sendRate * 0.9 * membersPerMsg
		sent += sendRate
		delivered += delRate
		p50 := base * (0.9 + 0.2*rng.Float64())
		p99 := base * 4 * (0.8 + 0.6*rng.Float64())
		if s == 40 {
			p99 *= 6
		}
		errs := int64(0)
		if rng.Float64() < 0.05 {
			errs = 1
		}
		run.Series = append(run.Series, Point{
			T:           start.Add(time.Duration(s) * time.Second).UnixMilli(),
			Connections: c,
			Sessions:    ss,
			Sent:        math.Round(sendRate),
			Delivered:   math.Round(delRate),
			P50Ms:       math.Round(p50*1000) / 1000,
			P99Ms:       math.Round(p99*1000) / 1000,
			Errors:      errs,
		})
	}
	nDel := int(delivered / 20) // keep the fixture small: 1 in 20 deliveries
	record(HistDelivery, nDel, base, 0.45)
	record(HistDM, nDel/20, base*1.1, 0.45)
	record(HistReply, int(sent/10), base*0.8, 0.4)
	record(HistConnect, int(conns)+10, 1.2, 0.3)
	record(HistAttach, int(sessions)+30, 0.9, 0.3)
	record(HistHeartbeat, int(conns)*3, 0.4, 0.3)
	record(HistReconnect, 12, 180, 0.5)
	record(HistResume, 10, 240, 0.5)

	delivered = float64(run.Latency[HistDelivery].Count)
	run.Delivery = Delivery{
		Expected:  int64(delivered) + lost,
		Delivered: int64(delivered),
		Lost:      lost,
	}
	framesIn := delivered
	if mode == ModeShared {
		framesIn = delivered / tabs // one frame reaches every tab of a browser
	}
	run.Counters = Counters{
		MessagesSent:  int64(sent / 20),
		DMsSent:       int64(sent / 200),
		FramesOut:     int64(sent/20) + conns*70/15,
		FramesIn:      int64(framesIn),
		WSMessagesOut: int64(sent/20) + conns*70/15,
		WSMessagesIn:  int64(framesIn / 2.5),
		BytesOut:      int64(sent/20) * 290,
		BytesIn:       int64(framesIn * 310),
		Errors:        map[string]int64{"timeout": 3, "dial": 1},
		Reconnects:    map[string]int64{StepRetry: 9, StepSwitch: 2, StepRefetch: 1, StepGiveUp: 0},
	}
	if mode == ModePerTab {
		run.Counters.Reconnects = map[string]int64{StepRetry: 27, StepSwitch: 5, StepRefetch: 2, StepGiveUp: 1}
		run.Counters.Errors = map[string]int64{"timeout": 5, "dial": 4}
	}
	run.ServerStatsPeak = map[string]any{
		"connections": float64(conns),
		"sessions":    float64(sessions),
		"users":       float64(clients),
		"rooms":       float64(10),
		"goroutines":  float64(conns*2 + 20),
		"heap_bytes":  float64(24<<20 + conns*18<<10),
		"frames_out":  float64(framesIn),
		"version":     "v0.1.0",
	}
	// Notes and DM delivery from the figures above (no RNG draw, so that
	// the latencies stay those of the seed).
	dmCopies := run.Latency[HistDM].Count
	run.DMDelivery = &Delivery{Expected: dmCopies, Delivered: dmCopies}
	byResume := int64(37)
	if mode == ModePerTab {
		byResume = 112
	}
	run.Notes = map[string]int64{
		"deliveries_by_push":   run.Delivery.Delivered - byResume,
		"deliveries_by_resume": byResume,
		"dm_expected":          dmCopies,
		"dm_delivered":         dmCopies,
		"dm_extra":             2,
		"dm_lost_excused":      3,
		"sockets_killed":       conns / 50,
		"tabs_closed":          21,
		"resume_resets":        1,
		"resume_reset_offsets": 14,
		"server_messages_in":   run.Counters.MessagesSent,
		"server_messages_out":  run.Delivery.Delivered - byResume,
	}
	if mode == ModePerTab {
		run.Notes["goaways"] = 2
	}
	run.ServerProcess = &Process{CPUSeconds: 8.5 + float64(conns)/60, RSSPeakBytes: 40<<20 + conns*30<<10}
	run.LoadProcess = &Process{CPUSeconds: 11.2 + float64(conns)/50, RSSPeakBytes: 60<<20 + conns*20<<10}
	return run, vals
}

// addNodes spreads run's figures over the nodes at targets, as the load
// generator does (browser i on node i mod N; with several nodes, rooms
// spread over every node, so most deliveries cross nodes), without drawing
// from the RNG.
func addNodes(run *Run, targets []string) {
	n := int64(len(targets))
	share := func(total int64, k int) int64 { // total split over n, the remainder on the first nodes
		v := total / n
		if int64(k) < total%n {
			v++
		}
		return v
	}
	reconnects := run.Counters.TotalReconnects()
	for k, t := range targets {
		node := Node{
			Target:                  t,
			PhysicalConnectionsPeak: share(run.PhysicalConnectionsPeak, k),
			SessionsPeak:            share(run.SessionsPeak, k),
			MessagesSent:            share(run.Counters.MessagesSent, k),
			DMsSent:                 share(run.Counters.DMsSent, k),
			Delivered:               share(run.Delivery.Delivered, k),
			Reconnects:              share(reconnects, k),
		}
		if n > 1 {
			node.CrossNode = node.Delivered * (n - 1) / n
			node.SwitchedIn = node.Reconnects / 3
			node.ServerStatsPeak = map[string]any{
				"physical_connections": float64(node.PhysicalConnectionsPeak),
				"logical_sessions":     float64(node.SessionsPeak),
			}
		}
		run.Delivery.CrossNode += node.CrossNode
		run.Nodes = append(run.Nodes, node)
	}
	if run.DMDelivery != nil && n > 1 {
		run.DMDelivery.CrossNode = run.DMDelivery.Delivered * (n - 1) / n
	}
	if n > 1 && run.ServerProcess != nil {
		// imload run --nodes N: the nodes and redis-server, node 1 killed
		// (--kill-node-at).
		sp := run.ServerProcess
		for k, t := range targets {
			sp.Processes = append(sp.Processes, ProcessPart{Name: fmt.Sprint("n", k), Target: t,
				CPUSeconds: sp.CPUSeconds / float64(n+1), RSSPeakBytes: sp.RSSPeakBytes / (n + 1), Killed: k == 1})
		}
		sp.Processes = append(sp.Processes, ProcessPart{Name: "redis-server", CPUSeconds: sp.CPUSeconds / float64(n+1), RSSPeakBytes: 12 << 20})
		run.Faults = append(run.Faults, Fault{Kind: FaultKillNode, AtMs: 15_000, LinkLosses: run.Nodes[1].PhysicalConnectionsPeak,
			Node: targets[1], NodeConnections: run.Nodes[1].PhysicalConnectionsPeak, GoneFromListMs: 2_350})
	}
}
