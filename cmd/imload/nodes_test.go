package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"imload/reports"
	"imload/server/redistest"
)

// requireRedis skips the test without redis-server on PATH, or fails it
// under IMLOAD_REQUIRE_REDIS=1 (as CI sets), as server/redistest does.
func requireRedis(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv(redistest.RequireEnv) == "1" {
			t.Fatalf("%s=1 but redis-server is not on PATH: %v", redistest.RequireEnv, err)
		}
		t.Skipf("SKIPPED: needs redis-server on PATH (%v); set %s=1 to make this a failure", err, redistest.RequireEnv)
	}
}

// imload run --nodes 3 --kill-node-at: the binary starts a redis-server
// and three nodes sharing it, runs both modes against their /lbs, and
// kills the node with the most connections 2 s into each run (SIGKILL,
// restarted before the next run). Its browsers move to the other nodes and
// resume by offset: nothing lost, duplicated or mismatched, no error (the
// links the kill cut are reconnects), the address list drops the dead node
// within ~3 s, deliveries cross nodes, and server_process covers every
// node and redis-server. When imload run exits, none of its children is
// left.
func TestRunNodesKillNode(t *testing.T) {
	requireRedis(t)
	bin := buildImload(t)
	const clients, tabs = 300, 2
	out := filepath.Join(t.TempDir(), "out")
	stdout, stderr, code, res := runBinaryRuns(t, bin, out, 2, "run", "--nodes", "3", "--clients", strconv.Itoa(clients),
		"--tabs", strconv.Itoa(tabs), "--rooms", "25", "--rate", "1", "--duration", "6s", "--ramp", "1s", "--drain", "15s",
		"--kill-node-at", "2s", "--retry-same", "2", "--backoff", "100ms")
	if code != 0 || !res.Verdict.Pass || !strings.Contains(tail(stdout, 1), "imload run: PASS") {
		t.Errorf("exit code %d, verdict %+v\nstdout tail:\n%s\nstderr:\n%s", code, res.Verdict, tail(stdout, 3), stderr)
	}
	if !strings.HasSuffix(res.Scenario.Targets[0], "/lbs") || res.Scenario.Extra["local_nodes"] != "3 over redis-server" {
		t.Errorf("targets %v, extra %v: want the cluster's /lbs", res.Scenario.Targets, res.Scenario.Extra)
	}
	for _, run := range res.Runs {
		d := run.Delivery
		t.Logf("%s: delivery %+v, faults %+v, reconnects %v, notes %v", run.Mode, d, run.Faults, run.Counters.Reconnects, run.Notes)
		if d.Expected == 0 || d.Delivered != d.Expected || d.Lost+d.Duplicated+d.Reordered+d.Mismatched != 0 {
			t.Errorf("%s: delivery %+v", run.Mode, d)
		}
		if n := run.Counters.TotalErrors(); n != 0 {
			t.Errorf("%s: errors %v", run.Mode, run.Counters.Errors)
		}
		if len(run.Nodes) != 3 || d.CrossNode == 0 {
			t.Errorf("%s: %d nodes, %d cross-node deliveries", run.Mode, len(run.Nodes), d.CrossNode)
		}
		// What the run cost Redis: a script call and a sharded publish at
		// least per message sent (the scripts' other calls: claims,
		// presence, refreshes).
		if sent := run.Counters.MessagesSent; run.Notes[reports.NoteRedisSpublish] < sent || run.Notes[reports.NoteRedisEvalsha] < sent || run.Notes[reports.NoteRedisBytesOut] == 0 {
			t.Errorf("%s: Redis notes %v for %d messages sent", run.Mode, run.Notes, sent)
		}
		for _, n := range run.Nodes {
			if n.PhysicalConnectionsPeak == 0 {
				t.Errorf("%s: node %s had no connection: every run starts with every node", run.Mode, n.Target)
			}
		}
		if len(run.Faults) != 1 {
			t.Fatalf("%s: faults %+v", run.Mode, run.Faults)
		}
		f := run.Faults[0]
		if f.Kind != reports.FaultKillNode || f.Error != "" || f.NodeConnections == 0 || f.LinkLosses != f.NodeConnections {
			t.Errorf("%s: fault %+v: want a kill_node whose links lost are the node's connections", run.Mode, f)
		}
		var killed *reports.Node
		for i := range run.Nodes {
			if run.Nodes[i].Target == f.Node {
				killed = &run.Nodes[i]
			}
		}
		if killed == nil {
			t.Fatalf("%s: the node killed, %s, is not among the nodes", run.Mode, f.Node)
		}
		for _, n := range run.Nodes {
			if n.PhysicalConnectionsPeak > killed.PhysicalConnectionsPeak && n.SwitchedIn == 0 {
				t.Errorf("%s: node %s had more connections (%d) than the one killed (%d)", run.Mode, n.Target, n.PhysicalConnectionsPeak, killed.PhysicalConnectionsPeak)
			}
		}
		if f.GoneFromListMs <= 0 || f.GoneFromListMs > 4500 {
			t.Errorf("%s: the address list dropped the killed node after %d ms, want within ~3 s", run.Mode, f.GoneFromListMs)
		}
		var switched int64
		for _, n := range run.Nodes {
			switched += n.SwitchedIn
		}
		if switched != f.LinkLosses || run.Counters.Reconnects[reports.StepSwitch] < f.LinkLosses {
			t.Errorf("%s: %d switched in, reconnects %v, want each of the %d links moved to another node", run.Mode, switched, run.Counters.Reconnects, f.LinkLosses)
		}
		sp := run.ServerProcess
		if sp == nil || len(sp.Processes) != 4 || sp.Processes[3].Name != "redis-server" || sp.CPUSeconds <= 0 || sp.RSSPeakBytes <= 0 {
			t.Fatalf("%s: server_process %+v, want the 3 nodes and redis-server", run.Mode, sp)
		}
		var cpu float64
		nKilled := 0
		for _, p := range sp.Processes {
			cpu += p.CPUSeconds
			if p.Killed {
				nKilled++
				if p.Target != f.Node {
					t.Errorf("%s: process %+v marked killed, the node killed is %s", run.Mode, p, f.Node)
				}
			}
		}
		if nKilled != 1 || cpu < sp.CPUSeconds-0.01 || cpu > sp.CPUSeconds+0.01 {
			t.Errorf("%s: %d processes killed, CPU %.3f over the processes, %.3f in all", run.Mode, nKilled, cpu, sp.CPUSeconds)
		}
		// The nodes' aggregate at its peak: every connection (on three
		// nodes, or on the two left once the killed node's moved).
		agg := run.ServerStatsPeak
		if n := agg[reports.StatNodes]; (n != float64(3) && n != float64(2)) || agg[reports.StatPhysicalConnections] != float64(run.PhysicalConnectionsPeak) {
			t.Errorf("%s: server_stats_peak %v, want the aggregate of the nodes, %d connections", run.Mode, agg, run.PhysicalConnectionsPeak)
		}
	}
	for _, want := range []string{"nodes, shared", "node killed (most connections)", "n0 CPU, RSS peak", "redis-server CPU, RSS peak", "killed at"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("the summary does not say %q", want)
		}
	}
	for _, f := range []string{"server-n0.log", "server-n1.log", "server-n2.log", "server-redis.log"} {
		if fi, err := os.Stat(filepath.Join(out, f)); err != nil || fi.Size() == 0 {
			t.Errorf("log %s: %v", f, err)
		}
	}
	// Every child has exited: redis-server, the nodes, and the node
	// killed in the first run, started again for the second.
	pids := regexp.MustCompile(`pid (\d+)`).FindAllStringSubmatch(stderr, -1)
	if len(pids) != 5 {
		t.Fatalf("stderr names %d processes, want redis-server, 3 nodes and the one restarted:\n%s", len(pids), stderr)
	}
	for _, m := range pids {
		pid, _ := strconv.Atoi(m[1])
		if err := syscall.Kill(pid, 0); err == nil {
			t.Errorf("process %d is still running after imload run exited", pid)
		}
	}
}

// --nodes without redis-server on PATH: an error that names the package to
// install, and no node started.
func TestRunNodesWithoutRedis(t *testing.T) {
	bin := buildImload(t)
	cmd := exec.Command(bin, "run", "--nodes", "2", "--clients", "10", "--duration", "1s", "--out", t.TempDir(), "--no-progress")
	cmd.Env = append(os.Environ(), "PATH="+t.TempDir())
	outb, err := cmd.CombinedOutput()
	out := string(outb)
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() == 0 {
		t.Fatalf("exit %v, output:\n%s", err, out)
	}
	if !strings.Contains(out, "redis-server not found on PATH") || !strings.Contains(out, "install the package redis-server") ||
		strings.Contains(out, "started a local") {
		t.Errorf("output:\n%s", out)
	}
}

// The flags of a local cluster: --nodes with a --target, with the single
// server's faults or its data directory, and --kill-node-at without two
// nodes, are refused.
func TestRunNodesFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--nodes", "3", "--target", "ws://127.0.0.1:1/ws"}, "leave out --target"},
		{[]string{"--nodes", "3", "--crash-server-at", "2s"}, "kill a node with --kill-node-at"},
		{[]string{"--nodes", "2", "--server-data", t.TempDir()}, "history lives in Redis"},
		{[]string{"--kill-node-at", "2s"}, "--kill-node-at needs --nodes 2 or more"},
		{[]string{"--nodes", "1", "--kill-node-at", "2s"}, "--kill-node-at needs --nodes 2 or more"},
		{[]string{"--nodes", "-1"}, "want 1 or more"},
	} {
		if _, _, err := runCLI(t, append([]string{"run"}, c.args...)...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want %q", c.args, err, c.want)
		}
	}
}
