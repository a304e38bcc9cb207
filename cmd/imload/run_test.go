package main

import (
	"bufio"
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

// TestRunCommandWithChildServer builds the imload binary and runs
// `imload run` with no --target: it must start `imload serve` as a child
// process, measure it, verify both modes with zero loss, write the results
// and stop the child.
func TestRunCommandWithChildServer(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "imload")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out := filepath.Join(dir, "out")
	cmd := exec.Command(bin, "run", "--clients", "40", "--tabs", "2", "--rooms", "5", "--rate", "2",
		"--duration", "2s", "--ramp", "500ms", "--drain", "5s", "--out", out, "--no-progress")
	cmd.Env = os.Environ()
	done := make(chan struct{})
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var err error
	go func() { err = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(90 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("imload run did not finish in 90s\nstderr:\n%s", stderr.String())
	}
	if err != nil {
		t.Fatalf("imload run: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	if !strings.Contains(stderr.String(), "started a local server") || !strings.Contains(stderr.String(), "local server stopped") {
		t.Errorf("stderr does not say it started and stopped the local server:\n%s", stderr.String())
	}
	last := strings.TrimSpace(stdout.String())
	if i := strings.LastIndexByte(last, '\n'); i >= 0 {
		last = last[i+1:]
	}
	if !strings.HasPrefix(last, "imload run: PASS") {
		t.Errorf("last line %q", last)
	}
	res, err := reports.Load(filepath.Join(out, reports.FileResult))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Runs) != 2 {
		t.Fatalf("%d runs", len(res.Runs))
	}
	for _, run := range res.Runs {
		want := int64(40)
		if run.Mode == reports.ModePerTab {
			want = 80
		}
		if run.PhysicalConnectionsPeak != want || run.SessionsPeak != 80 {
			t.Errorf("%s: %d connections, %d sessions", run.Mode, run.PhysicalConnectionsPeak, run.SessionsPeak)
		}
		if run.ServerProcess == nil || run.ServerProcess.CPUSeconds <= 0 || run.ServerProcess.RSSPeakBytes <= 0 {
			t.Errorf("%s: server process %+v", run.Mode, run.ServerProcess)
		}
		if run.ServerStatsPeak == nil || run.Delivery.Lost != 0 || run.Delivery.Expected == 0 {
			t.Errorf("%s: stats %v delivery %+v", run.Mode, run.ServerStatsPeak != nil, run.Delivery)
		}
		// The local server is the one node.
		if len(run.Nodes) != 1 || run.Nodes[0].Target != res.Scenario.Targets[0] || run.Nodes[0].PhysicalConnectionsPeak != want {
			t.Errorf("%s: nodes %+v, targets %v", run.Mode, run.Nodes, res.Scenario.Targets)
		}
	}
	// One node: the summary and the last line read as before nodes.
	if strings.Contains(stdout.String(), "node") {
		t.Errorf("a one-node run's output mentions nodes:\n%s", stdout.String())
	}
	for _, f := range []string{reports.FileSummary, reports.FileReportHTML, "server.log", "shared-delivery.hgrm"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("missing %s: %v", f, err)
		}
	}
}

func TestRunModes(t *testing.T) {
	for _, c := range []struct {
		protocol, mode string
		want           string // modes joined, or "error"
		note           bool
	}{
		{"imload", "both", "shared,per-tab", false},
		{"imload", "shared", "shared", false},
		{"imload", "per-tab", "per-tab", false},
		{"imload", "nope", "error", false},
		{"socketio", "both", "per-tab", true},
		{"socketio", "per-tab", "per-tab", false},
		{"socketio", "shared", "error", false},
		{"centrifugo", "both", "per-tab", true},
		{"centrifugo", "per-tab", "per-tab", false},
		{"centrifugo", "shared", "error", false},
		{"mqtt", "both", "error", false},
	} {
		modes, note, err := runModes(c.protocol, c.mode)
		got := strings.Join(modes, ",")
		if err != nil {
			got = "error"
		}
		if got != c.want || (note != "") != c.note {
			t.Errorf("%s %s: %q (note %q, err %v), want %q", c.protocol, c.mode, got, note, err, c.want)
		}
	}
}

// startSocketIO starts bench/server.js (see loadgen's socket.io tests: skips
// without node or bench/node_modules, fails then if IMLOAD_REQUIRE_SOCKETIO=1)
// and returns its ws://HOST:PORT.
func startSocketIO(t *testing.T) string {
	t.Helper()
	bench := filepath.Join("..", "..", "bench")
	node, err := exec.LookPath("node")
	if err == nil {
		_, err = os.Stat(filepath.Join(bench, "node_modules", "socket.io", "package.json"))
	}
	if err != nil {
		msg := "SKIPPED: needs node and bench/node_modules (cd bench && npm ci); IMLOAD_REQUIRE_SOCKETIO=1 makes this a failure: " + err.Error()
		if os.Getenv("IMLOAD_REQUIRE_SOCKETIO") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	cmd := exec.Command(node, filepath.Join(bench, "server.js"), "--port", "0")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(out)
	line, err := br.ReadString('\n')
	drained := make(chan struct{})
	go func() { defer close(drained); io.Copy(io.Discard, br) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-drained:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-drained
		}
		_ = cmd.Wait()
	})
	const prefix = "listening on http://"
	if err != nil || !strings.HasPrefix(line, prefix) {
		t.Fatalf("node bench/server.js: first line %q, %v", line, err)
	}
	return "ws://" + strings.TrimSpace(strings.TrimPrefix(line, prefix))
}

// imload run --protocol socketio against bench/server.js: per-tab only (with a
// note for the default --mode both), zero loss, the protocol in the result.
func TestRunCommandSocketIO(t *testing.T) {
	if _, _, err := runCLI(t, "run", "--protocol", "socketio", "--mode", "shared", "--target", "ws://127.0.0.1:1"); err == nil ||
		!strings.Contains(err.Error(), "per-tab") {
		t.Errorf("--mode shared: %v", err)
	}
	if _, _, err := runCLI(t, "run", "--protocol", "socketio"); err == nil || !strings.Contains(err.Error(), "--target") {
		t.Errorf("no --target: %v", err)
	}
	target := startSocketIO(t)
	out := filepath.Join(t.TempDir(), "out")
	stdout, stderr, err := runCLI(t, "run", "--protocol", "socketio", "--target", target, "--clients", "30", "--tabs", "2",
		"--rooms", "4", "--rate", "2", "--duration", "2s", "--ramp", "500ms", "--drain", "5s", "--out", out, "--no-progress")
	if err != nil {
		t.Fatalf("%v\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr)
	}
	if !strings.Contains(stderr, "runs per-tab only") {
		t.Errorf("no note about per-tab only:\n%s", stderr)
	}
	if !strings.Contains(stdout, "imload run: PASS") || !strings.Contains(stdout, "socketio") {
		t.Errorf("stdout:\n%s", stdout)
	}
	res, err := reports.Load(filepath.Join(out, reports.FileResult))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Runs) != 1 || res.Runs[0].Mode != reports.ModePerTab || res.Scenario.Extra["protocol"] != "socketio" {
		t.Fatalf("%d runs, scenario %+v", len(res.Runs), res.Scenario)
	}
	if r := res.Runs[0]; r.PhysicalConnectionsPeak != 60 || r.Delivery.Lost != 0 || r.Delivery.Expected == 0 {
		t.Errorf("%d connections, delivery %+v", r.PhysicalConnectionsPeak, r.Delivery)
	}
}

// --protocol centrifugo needs a --target and runs per-tab only (the runs
// themselves are tested in loadgen, against a real Centrifugo).
func TestRunCommandCentrifugoChecks(t *testing.T) {
	if _, _, err := runCLI(t, "run", "--protocol", "centrifugo", "--mode", "shared", "--target", "ws://127.0.0.1:1"); err == nil ||
		!strings.Contains(err.Error(), "per-tab") {
		t.Errorf("--mode shared: %v", err)
	}
	if _, _, err := runCLI(t, "run", "--protocol", "centrifugo"); err == nil || !strings.Contains(err.Error(), "--target") ||
		!strings.Contains(err.Error(), "bench/centrifugo.json") {
		t.Errorf("no --target: %v", err)
	}
}

// TestVerdictLineNodes: the last line names the nodes and the cross-node
// deliveries of a run over several nodes, and nothing of the kind for one.
func TestVerdictLineNodes(t *testing.T) {
	run := reports.Run{Mode: reports.ModeShared, PhysicalConnectionsPeak: 30, SessionsPeak: 90,
		Delivery: reports.Delivery{Expected: 500, Delivered: 500, CrossNode: 333},
		Nodes:    []reports.Node{{Target: "ws://a/ws"}, {Target: "ws://b/ws"}, {Target: "ws://c/ws"}}}
	r := &reports.Result{Verdict: reports.Verdict{Pass: true, Reason: "ok"}, Runs: []reports.Run{run}}
	got := verdictLine(r, "out")
	if want := "imload run: PASS — shared 30 conns/90 sessions over 3 nodes, 500/500 delivered, 0 lost, 0 mismatched, p99 0.0 ms, 333 cross-node; results in out"; got != want {
		t.Errorf("3 nodes:\n got %s\nwant %s", got, want)
	}
	r.Runs[0].Nodes = r.Runs[0].Nodes[:1]
	r.Runs[0].Delivery.CrossNode = 0
	if got := verdictLine(r, "out"); strings.Contains(got, "node") {
		t.Errorf("one node: %s", got)
	}
}
