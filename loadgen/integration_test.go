package loadgen

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"imload/reports"
	"imload/server"
	"imload/server/redistest"
	"imload/server/servertest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(redistest.WithShared(m),
		// The shared HTTP client's idle connections close on their own.
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
	)
}

// testServerConfig is the test configuration of the servers these tests
// run (servertest.Config, with the reader IMLOAD_TEST_READER names), with
// history in dir (SQLite) or, with "", in memory. Goaway retry hints are
// 50-300 ms: a reconnect storm after a restart is spread a little.
func testServerConfig(dir string) server.Config {
	cfg := servertest.Config()
	if dir != "" {
		cfg.Memory = false
		cfg.DataDir = dir
	}
	cfg.GoAwayRetryMin, cfg.GoAwayRetryMax = 50*time.Millisecond, 300*time.Millisecond
	return cfg
}

func smallScenario(target string, clients, tabs int) Scenario {
	return Scenario{
		Targets:  []string{target},
		Clients:  clients,
		Tabs:     tabs,
		Rooms:    10,
		Rate:     2,
		DMRatio:  0.1,
		History:  5,
		Ramp:     500 * time.Millisecond,
		Duration: 2 * time.Second,
		Drain:    10 * time.Second,
		Seed:     42,
	}
}

func checkRun(t *testing.T, run *reports.Run, clients, tabs int) {
	t.Helper()
	wantConns := int64(clients)
	if run.Mode == reports.ModePerTab {
		wantConns = int64(clients * tabs)
	}
	if run.PhysicalConnectionsPeak != wantConns {
		t.Errorf("%s: physical connections peak %d, want %d", run.Mode, run.PhysicalConnectionsPeak, wantConns)
	}
	if run.SessionsPeak != int64(clients*tabs) {
		t.Errorf("%s: sessions peak %d, want %d", run.Mode, run.SessionsPeak, clients*tabs)
	}
	d := run.Delivery
	if d.Expected == 0 || d.Lost != 0 || d.Duplicated != 0 || d.Reordered != 0 || d.Mismatched != 0 || d.Delivered != d.Expected {
		t.Errorf("%s: delivery %+v", run.Mode, d)
	}
	if run.Counters.Kicks != 0 {
		t.Errorf("%s: %d kicks", run.Mode, run.Counters.Kicks)
	}
	if n := run.Counters.TotalErrors(); n != 0 {
		t.Errorf("%s: errors %v", run.Mode, run.Counters.Errors)
	}
	if run.Latency[reports.HistDelivery].Count != d.Delivered {
		t.Errorf("%s: %d delivery latencies for %d deliveries", run.Mode, run.Latency[reports.HistDelivery].Count, d.Delivered)
	}
	// One node: it carried everything, nothing crossed nodes.
	if len(run.Nodes) != 1 {
		t.Errorf("%s: nodes %+v, want one", run.Mode, run.Nodes)
	} else if n := run.Nodes[0]; n.PhysicalConnectionsPeak != run.PhysicalConnectionsPeak || n.SessionsPeak != run.SessionsPeak ||
		n.Delivered != d.Delivered || n.MessagesSent != run.Counters.MessagesSent || n.DMsSent != run.Counters.DMsSent ||
		n.CrossNode != 0 || d.CrossNode != 0 || n.Reconnects != 0 || n.ServerStatsPeak != nil {
		t.Errorf("%s: node %+v, run peaks %d/%d, %d delivered, %d/%d sent, %d cross-node", run.Mode, n, run.PhysicalConnectionsPeak,
			run.SessionsPeak, d.Delivered, run.Counters.MessagesSent, run.Counters.DMsSent, d.CrossNode)
	}
	if run.ServerStatsPeak == nil {
		t.Errorf("%s: no server stats", run.Mode)
	} else {
		if got := statNum(run.ServerStatsPeak, "physical_connections"); int64(got) != wantConns {
			t.Errorf("%s: server physical connections at peak %v, want %d", run.Mode, got, wantConns)
		}
		if got := statNum(run.ServerStatsPeak, "logical_sessions"); int64(got) != int64(clients*tabs) {
			t.Errorf("%s: server sessions at peak %v, want %d", run.Mode, got, clients*tabs)
		}
	}
	if run.Notes["server_messages_out"] != run.Notes["deliveries_by_push"] {
		t.Errorf("%s: server messages_out %d, generator push deliveries %d", run.Mode,
			run.Notes["server_messages_out"], run.Notes["deliveries_by_push"])
	}
	if run.DMDelivery == nil || run.DMDelivery.Lost != 0 || run.DMDelivery.Delivered == 0 ||
		run.DMDelivery.Delivered != run.DMDelivery.Expected {
		t.Errorf("%s: dm delivery %+v", run.Mode, run.DMDelivery)
	}
	// The generator's own expectation agrees with what the server says it
	// pushed (no churn: nothing excused), counting the copies to tabs that
	// were still attaching during the ramp.
	if run.Notes["server_dms_out"] != run.Notes["dm_delivered"]+run.Notes["dm_extra"] || run.Notes["dm_lost_excused"] != 0 {
		t.Errorf("%s: server dms_out %d, generator dm deliveries %d + %d extra, excused %d", run.Mode,
			run.Notes["server_dms_out"], run.Notes["dm_delivered"], run.Notes["dm_extra"], run.Notes["dm_lost_excused"])
	}
}

// readers are the ways of reading sockets the tests run the generator
// with: the one IMLOAD_TEST_READER names (the servers' reader too, so a
// second pass with IMLOAD_TEST_READER=goroutine runs the portable readers
// end to end), else every one this system has.
func readers() []string {
	if rd := servertest.Reader(); rd != "" {
		return []string{rd}
	}
	if pollerAvailable {
		return []string{ReaderEpoll, ReaderGoroutine}
	}
	return []string{ReaderGoroutine}
}

func TestRunBothModesInProcess(t *testing.T) {
	for _, rd := range readers() {
		t.Run(rd, func(t *testing.T) {
			ts := servertest.Start(t, testServerConfig(""))
			sc := smallScenario(ts.WSURL(), 200, 3)
			sc.Reader = rd
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			res, err := Run(ctx, sc, WithSettle(500*time.Millisecond), WithLogf(t.Logf))
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Runs) != 2 {
				t.Fatalf("%d runs", len(res.Runs))
			}
			for i := range res.Runs {
				checkRun(t, &res.Runs[i], 200, 3)
				t.Logf("%s: delivery %+v dm %+v notes %v", res.Runs[i].Mode, res.Runs[i].Delivery, res.Runs[i].DMDelivery, res.Runs[i].Notes)
			}
			if !res.Verdict.Pass {
				t.Errorf("verdict: %+v", res.Verdict)
			}
		})
	}
}

// Tabs closing and reopening, and sockets cut on purpose: every socket comes
// back through the ladder, resumes from its last offsets, and nothing is lost.
func TestRunChurnAndKillsLoseNothing(t *testing.T) {
	for _, rd := range readers() {
		t.Run(rd, func(t *testing.T) { testChurnAndKills(t, rd) })
	}
}

func testChurnAndKills(t *testing.T, rd string) {
	ts := servertest.Start(t, testServerConfig(""))
	for _, mode := range []string{reports.ModeShared, reports.ModePerTab} {
		sc := smallScenario(ts.WSURL(), 100, 3)
		sc.Reader = rd
		sc.Duration = 4 * time.Second
		sc.TabChurn = 15
		sc.ConnKill = 10
		sc.Ladder = LadderConfig{Base: 50 * time.Millisecond, Max: 500 * time.Millisecond}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		res, err := Run(ctx, sc, WithModes(mode))
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		run := &res.Runs[0]
		d := run.Delivery
		if d.Lost != 0 || d.Duplicated != 0 || d.Reordered != 0 || d.Expected == 0 {
			t.Errorf("%s: delivery %+v", mode, d)
		}
		if run.Counters.TotalErrors() != 0 {
			t.Errorf("%s: errors %v", mode, run.Counters.Errors)
		}
		if run.Notes["tabs_closed"] == 0 || run.Notes["sockets_killed"] == 0 {
			t.Errorf("%s: no churn happened: %v", mode, run.Notes)
		}
		// A killed socket is away for tens of milliseconds while its rooms
		// get a message every ~20 ms: its resume brings what it missed.
		if run.Notes[reports.NoteDeliveriesByResume] == 0 {
			t.Errorf("%s: %d sockets killed, yet no message delivered by a resume", mode, run.Notes[reports.NoteSocketsKilled])
		}
		if run.Latency[reports.HistReconnect].Count == 0 {
			t.Errorf("%s: no reconnect measured", mode)
		}
		// One node: every reconnect is onto it, none from elsewhere.
		if len(run.Nodes) != 1 || run.Nodes[0].Reconnects == 0 || run.Nodes[0].SwitchedIn != 0 || d.CrossNode != 0 {
			t.Errorf("%s: nodes %+v, %d cross-node", mode, run.Nodes, d.CrossNode)
		}
		if run.DMDelivery != nil && run.DMDelivery.Lost != 0 {
			t.Errorf("%s: dm %+v", mode, run.DMDelivery)
		}
		t.Logf("%s: delivery %+v, reconnects %v, notes %v", mode, d, run.Counters.Reconnects, run.Notes)
	}
}

// A tab away for longer than the server keeps history: the resume is
// answered with reset in the same epoch; the generator pages what the server
// still has and counts the offsets it no longer had apart
// (resume_reset_offsets), not as lost. With history kept but more missed
// than one reply holds (max_history), everything is fetched by paging.
func TestRunResumeBeyondHistory(t *testing.T) {
	for _, c := range []struct {
		name                   string
		historyMax, maxHistory int
		gone                   bool
	}{
		{"history trimmed", 20, 500, true},
		{"more than one reply", 1000, 10, false},
	} {
		cfg := testServerConfig("")
		cfg.HistoryMax = c.historyMax
		cfg.Limits.MaxHistory = c.maxHistory
		ts := servertest.Start(t, cfg)
		sc := Scenario{
			Targets: []string{ts.WSURL()}, Clients: 10, Tabs: 1, Rooms: 1, Rate: 5, History: -1,
			Ramp: 200 * time.Millisecond, Duration: 4 * time.Second, Drain: 10 * time.Second, Seed: 7,
			ConnKill: 2,
			// Killed sockets stay away ~0.5-1.5 s: 25-75 messages of the room.
			Ladder: LadderConfig{Base: time.Second, Max: time.Second},
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		res, err := Run(ctx, sc, WithModes(reports.ModeShared))
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		run := &res.Runs[0]
		d := run.Delivery
		t.Logf("%s: delivery %+v, notes %v", c.name, d, run.Notes)
		if d.Lost != 0 || d.Duplicated != 0 || d.Reordered != 0 || d.Expected == 0 || d.Delivered != d.Expected {
			t.Errorf("%s: delivery %+v", c.name, d)
		}
		if run.Counters.TotalErrors() != 0 {
			t.Errorf("%s: errors %v", c.name, run.Counters.Errors)
		}
		if run.Notes["resume_resets"] == 0 || run.Notes["deliveries_by_resume"] == 0 {
			t.Errorf("%s: no resume was reset and paged: %v", c.name, run.Notes)
		}
		if gone := run.Notes["resume_reset_offsets"]; (gone > 0) != c.gone {
			t.Errorf("%s: %d offsets gone", c.name, gone)
		}
		if !res.Verdict.Pass {
			t.Errorf("%s: verdict %+v", c.name, res.Verdict)
		}
		ts.Close()
	}
}

// The server is stopped mid-run and started again on the same port and data
// directory: every client comes back through the ladder and resumes, and no
// room message is lost.
func TestRunServerRestartLosesNothing(t *testing.T) {
	dir := t.TempDir()
	ts := servertest.Start(t, testServerConfig(dir))
	addr := ts.Addr()
	for _, mode := range []string{reports.ModeShared, reports.ModePerTab} {
		sc := smallScenario(ts.WSURL(), 100, 3)
		sc.Duration = 6 * time.Second
		sc.Ladder = LadderConfig{RetrySame: 4, Base: 100 * time.Millisecond, Max: time.Second, Refetches: 5}
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		type out struct {
			res *reports.Result
			err error
		}
		done := make(chan out, 1)
		go func() {
			r, err := Run(ctx, sc, WithModes(mode))
			done <- out{r, err}
		}()
		time.Sleep(2500 * time.Millisecond)
		ts.Close()
		time.Sleep(500 * time.Millisecond)
		ts = servertest.StartOn(t, testServerConfig(dir), addr)
		o := <-done
		cancel()
		if o.err != nil {
			t.Fatal(o.err)
		}
		run := &o.res.Runs[0]
		d := run.Delivery
		if d.Lost != 0 || d.Duplicated != 0 || d.Reordered != 0 || d.Expected == 0 {
			t.Errorf("%s: delivery %+v", mode, d)
		}
		if run.Counters.TotalErrors() != 0 {
			t.Errorf("%s: errors %v", mode, run.Counters.Errors)
		}
		socks := int64(sc.Sockets(mode))
		if n := run.Latency[reports.HistReconnect].Count; n < socks {
			t.Errorf("%s: %d sockets resumed after the restart, want %d", mode, n, socks)
		}
		if run.Counters.Reconnects[reports.StepGiveUp] != 0 {
			t.Errorf("%s: gave up: %v", mode, run.Counters.Reconnects)
		}
		t.Logf("%s: delivery %+v, reconnects %v, reconnect p99 %.0f ms, notes %v", mode, d, run.Counters.Reconnects,
			run.Latency[reports.HistReconnect].P99Ms, run.Notes)
	}
}

// An unreachable target ends with a clear error, quickly: a closed port, and
// a port that accepts TCP but never speaks.
func TestRunUnreachableTarget(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()

	hole, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan struct{})
	go func() { // owns the accepted connections; closes them when the hole closes
		defer close(accepted)
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := hole.Accept()
			if err != nil {
				return
			}
			held = append(held, c) // never answers
		}
	}()
	defer func() { hole.Close(); <-accepted }()

	for _, addr := range []string{closed, hole.Addr().String()} {
		sc := smallScenario("ws://"+addr+"/ws", 10, 1)
		start := time.Now()
		res, err := Run(context.Background(), sc)
		if err == nil || res != nil {
			t.Fatalf("%s: no error (result %v)", addr, res)
		}
		if !strings.Contains(err.Error(), "cannot reach target ws://"+addr) {
			t.Errorf("%s: unclear error: %v", addr, err)
		}
		if d := time.Since(start); d > 20*time.Second {
			t.Errorf("%s: took %v", addr, d)
		}
		t.Logf("%s: %v (after %v)", addr, err, time.Since(start).Round(time.Millisecond))
	}
}

// Ctrl-C (ctx cancelled) mid-run stops cleanly and still returns a result.
func TestRunInterrupted(t *testing.T) {
	ts := servertest.Start(t, testServerConfig(""))
	sc := smallScenario(ts.WSURL(), 50, 2)
	sc.Duration = time.Minute
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(2*time.Second, cancel)
	start := time.Now()
	res, err := Run(ctx, sc)
	if !errors.Is(err, ErrInterrupted) || !errors.Is(err, context.Canceled) || res == nil || len(res.Runs) != 1 {
		t.Fatalf("err %v, result %v", err, res)
	}
	if time.Since(start) > 15*time.Second {
		t.Fatalf("stopping took %v", time.Since(start))
	}
	if res.Verdict.Pass || res.Runs[0].Counters.MessagesSent == 0 {
		t.Fatalf("verdict %+v, sent %d", res.Verdict, res.Runs[0].Counters.MessagesSent)
	}
}
