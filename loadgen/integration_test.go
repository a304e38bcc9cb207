package loadgen

import (
	"context"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"

	"imload/reports"
	"imload/server"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// The shared HTTP client's idle connections close on their own.
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	)
}

type testServer struct {
	t      testing.TB
	srv    *server.Server
	addr   string
	cancel context.CancelFunc
	done   chan error
}

func testServerConfig(dir string) server.Config {
	cfg := server.DefaultConfig()
	if dir == "" {
		cfg.Memory = true
	} else {
		cfg.DataDir = dir
	}
	cfg.ShutdownTimeout = 3 * time.Second
	cfg.GoAwayRetryMin, cfg.GoAwayRetryMax = 50*time.Millisecond, 300*time.Millisecond
	return cfg
}

func startServer(t testing.TB, cfg server.Config, addr string) *testServer {
	t.Helper()
	srv, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var ln net.Listener
	for i := 0; i < 50; i++ { // the port may still be held for a moment after a restart
		ln, err = net.Listen("tcp", addr)
		if err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		srv.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ts := &testServer{t: t, srv: srv, addr: ln.Addr().String(), cancel: cancel, done: make(chan error, 1)}
	go func() { ts.done <- srv.Serve(ctx, ln) }()
	t.Cleanup(ts.stop)
	return ts
}

func (ts *testServer) stop() {
	if ts.cancel == nil {
		return
	}
	ts.cancel()
	ts.cancel = nil
	select {
	case <-ts.done:
	case <-time.After(20 * time.Second):
		ts.t.Fatal("server did not stop within 20s")
	}
}

func (ts *testServer) url() string { return "ws://" + ts.addr + "/ws" }

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
	if d.Expected == 0 || d.Lost != 0 || d.Duplicated != 0 || d.Reordered != 0 || d.Delivered != d.Expected {
		t.Errorf("%s: delivery %+v", run.Mode, d)
	}
	if n := run.Counters.TotalErrors(); n != 0 {
		t.Errorf("%s: errors %v", run.Mode, run.Counters.Errors)
	}
	if run.Latency[reports.HistDelivery].Count != d.Delivered {
		t.Errorf("%s: %d delivery latencies for %d deliveries", run.Mode, run.Latency[reports.HistDelivery].Count, d.Delivered)
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
	if run.DMDelivery == nil || run.DMDelivery.Lost != 0 || run.DMDelivery.Delivered == 0 {
		t.Errorf("%s: dm delivery %+v", run.Mode, run.DMDelivery)
	}
}

func TestRunBothModesInProcess(t *testing.T) {
	ts := startServer(t, testServerConfig(""), "127.0.0.1:0")
	sc := smallScenario(ts.url(), 200, 3)
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
}
