package loadgen

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"imload/reports"
)

// startSocketIOServer starts the plain socket.io chat server of bench/
// (`node bench/server.js --port 0`) and returns its ws://HOST:PORT. It skips
// the test when node or bench/node_modules is missing, and fails instead
// when IMLOAD_REQUIRE_SOCKETIO=1 (CI, where it must run).
func startSocketIOServer(t *testing.T) string {
	t.Helper()
	bench := filepath.Join("..", "bench")
	node, err := exec.LookPath("node")
	if err == nil {
		_, err = os.Stat(filepath.Join(bench, "node_modules", "socket.io", "package.json"))
	}
	if err != nil {
		msg := fmt.Sprintf("SKIPPED: the socket.io integration test needs node and bench/node_modules "+
			"(cd bench && npm ci); set IMLOAD_REQUIRE_SOCKETIO=1 to make this a failure: %v", err)
		if os.Getenv("IMLOAD_REQUIRE_SOCKETIO") == "1" {
			t.Fatal(msg)
		}
		fmt.Fprintln(os.Stderr, "loadgen: "+t.Name()+": "+msg)
		t.Skip(msg)
	}
	cmd := exec.Command(node, filepath.Join(bench, "server.js"), "--port", "0")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	first := make(chan string, 1)
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		br := bufio.NewReader(out)
		line, err := br.ReadString('\n')
		if err == nil {
			first <- strings.TrimSpace(line)
		}
		close(first)
		_, _ = io.Copy(io.Discard, br)
	}()
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-drained:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-drained
		}
		_ = cmd.Wait()
	}
	select {
	case line, ok := <-first:
		const prefix = "listening on http://"
		if !ok || !strings.HasPrefix(line, prefix) {
			stop()
			t.Fatalf("node bench/server.js printed %q, want %q…; stderr:\n%s", line, prefix, stderr.String())
		}
		t.Cleanup(stop)
		return "ws://" + strings.TrimPrefix(line, prefix)
	case <-time.After(20 * time.Second):
		stop()
		t.Fatalf("node bench/server.js did not say it was listening within 20s; stderr:\n%s", stderr.String())
	}
	return ""
}

func sioScenario(target string, clients, tabs int) Scenario {
	sc := smallScenario(target, clients, tabs)
	sc.Protocol = ProtocolSocketIO
	sc.Rooms = 5
	return sc
}

// The same scenario against a real socket.io server: every room message
// reaches every member socket once and in seq order, every DM every socket
// of its target, and the counts agree with the server's /stats.
func TestRunSocketIO(t *testing.T) {
	base := startSocketIOServer(t)
	const clients, tabs = 60, 2
	sc := sioScenario(base, clients, tabs)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := Run(ctx, sc, WithLogf(t.Logf)) // default modes: per-tab only
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Runs) != 1 {
		t.Fatalf("%d runs", len(res.Runs))
	}
	if got := res.Scenario.Extra["protocol"]; got != ProtocolSocketIO {
		t.Errorf("scenario protocol %q", got)
	}
	if !strings.HasPrefix(res.Scenario.Targets[0], base+"/socket.io/?") {
		t.Errorf("target %q", res.Scenario.Targets[0])
	}
	run := &res.Runs[0]
	t.Logf("delivery %+v dm %+v notes %v", run.Delivery, run.DMDelivery, run.Notes)
	if run.Mode != reports.ModePerTab || run.PhysicalConnectionsPeak != clients*tabs || run.SessionsPeak != clients*tabs {
		t.Errorf("%s: %d connections, %d sessions at peak", run.Mode, run.PhysicalConnectionsPeak, run.SessionsPeak)
	}
	d := run.Delivery
	if d.Expected == 0 || d.Lost != 0 || d.Duplicated != 0 || d.Reordered != 0 || d.Delivered != d.Expected {
		t.Errorf("delivery %+v", d)
	}
	if n := run.Latency[reports.HistDelivery].Count; n != d.Delivered {
		t.Errorf("%d delivery latencies for %d deliveries", n, d.Delivered)
	}
	if run.Counters.TotalErrors() != 0 {
		t.Errorf("errors %v", run.Counters.Errors)
	}
	if run.DMDelivery == nil || run.DMDelivery.Delivered == 0 || run.DMDelivery.Lost != 0 || run.DMDelivery.Delivered != run.DMDelivery.Expected {
		t.Errorf("dm delivery %+v", run.DMDelivery)
	}
	for _, h := range []string{reports.HistReply, reports.HistConnect, reports.HistAttach, reports.HistDM} {
		if run.Latency[h].Count == 0 {
			t.Errorf("no %s latency", h)
		}
	}
	if run.ServerStatsPeak == nil || statNum(run.ServerStatsPeak, "physical_connections") != clients*tabs {
		t.Errorf("server stats at peak %v", run.ServerStatsPeak)
	}
	if run.Notes["server_messages_out"] != run.Notes["deliveries_by_push"] {
		t.Errorf("server messages_out %d, generator deliveries %d", run.Notes["server_messages_out"], run.Notes["deliveries_by_push"])
	}
	if run.Notes["server_dms_out"] != run.Notes["dm_delivered"]+run.Notes["dm_extra"] {
		t.Errorf("server dms_out %d, generator %d + %d extra", run.Notes["server_dms_out"], run.Notes["dm_delivered"], run.Notes["dm_extra"])
	}
	if !res.Verdict.Pass {
		t.Errorf("verdict %+v", res.Verdict)
	}
}

// Tabs closing and sockets cut: a socket.io socket that comes back rejoins
// (no recovery); what it missed while away is excused, nothing else is lost.
func TestRunSocketIOChurnAndKills(t *testing.T) {
	base := startSocketIOServer(t)
	checkChurnAndKills(t, sioScenario(base, 40, 2))
}

func TestRunSocketIOIsPerTabOnly(t *testing.T) {
	checkPerTabOnly(t, sioScenario("ws://127.0.0.1:1", 10, 1))
}
