package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"imload/reports"
)

// runBinary runs the imload binary with args (at most 2 minutes, one mode)
// and returns its output, its exit code and the result it wrote to out.
func runBinary(t *testing.T, bin, out string, args ...string) (stdout, stderr string, code int, res *reports.Result) {
	t.Helper()
	return runBinaryRuns(t, bin, out, 1, args...)
}

// runBinaryRuns is runBinary for a result of runs runs (modes).
func runBinaryRuns(t *testing.T, bin, out string, runs int, args ...string) (stdout, stderr string, code int, res *reports.Result) {
	t.Helper()
	cmd := exec.Command(bin, append(args, "--out", out, "--no-progress")...)
	var so, se strings.Builder
	cmd.Stdout, cmd.Stderr = &so, &se
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(2 * time.Minute):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("imload %v did not finish in 2 minutes\nstderr:\n%s", args, se.String())
	}
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	res, lerr := reports.Load(filepath.Join(out, reports.FileResult))
	if lerr != nil {
		t.Fatalf("%v\nstdout:\n%s\nstderr:\n%s", lerr, so.String(), se.String())
	}
	if len(res.Runs) != runs {
		t.Fatalf("%d runs, want %d\nstdout:\n%s", len(res.Runs), runs, so.String())
	}
	return so.String(), se.String(), code, res
}

// TestRunFaults runs imload run with each fault on demand against its local
// server (with a data directory): the server is stopped mid-run (SIGTERM, a
// graceful stop; SIGKILL, a crash) and restarted on the same address and
// data 1 s later. Every link it had is cut, every browser resumes every room,
// and nothing may be lost, duplicated or mismatched; the cut links are
// reconnects, not errors, and the temporary data directory is removed.
//
// The crash case needs a server that acknowledges (and pushes) a message only
// once it is committed and keeps its epoch's offsets across a restart (issue
// 12, finding 1): against a server that acknowledges before its SQLite writer
// commits, it fails with mismatched and duplicated messages.
func TestRunFaults(t *testing.T) {
	bin := buildImload(t)
	for _, c := range []struct {
		name, flag, kind, mode string
	}{
		{"restart", "--restart-server-at", reports.FaultRestart, reports.ModePerTab},
		{"crash", "--crash-server-at", reports.FaultCrash, reports.ModeShared},
	} {
		t.Run(c.name, func(t *testing.T) {
			const clients, tabs = 100, 2
			out := filepath.Join(t.TempDir(), "out")
			stdout, stderr, code, res := runBinary(t, bin, out, "run", "--clients", "100", "--tabs", "2", "--rooms", "10",
				"--rate", "2", "--duration", "8s", "--ramp", "1s", "--drain", "15s", "--mode", c.mode,
				c.flag, "4s", "--restart-delay", "1s")
			run := res.Runs[0]
			t.Logf("delivery %+v, faults %+v, resets %d, reconnects %v, errors %v, resume p99 %.0f ms",
				run.Delivery, run.Faults, run.Counters.Resets, run.Counters.Reconnects, run.Counters.Errors, run.Latency[reports.HistResume].P99Ms)
			sockets := int64(clients)
			if c.mode == reports.ModePerTab {
				sockets = clients * tabs
			}
			if len(run.Faults) != 1 || run.Faults[0].Kind != c.kind || run.Faults[0].Error != "" || run.Faults[0].DownMs < 1000 {
				t.Fatalf("faults %+v, want one %s restarted after at least 1 s", run.Faults, c.kind)
			}
			if got := run.Faults[0].LinkLosses; got != sockets {
				t.Errorf("%d links cut by the fault, want every one of the %d sockets", got, sockets)
			}
			if n := run.Latency[reports.HistResume].Count; n < clients {
				t.Errorf("%d browsers resumed, want %d", n, clients)
			}
			if n := run.Counters.TotalErrors(); n != 0 {
				t.Errorf("errors %v: the links the fault cut are not errors", run.Counters.Errors)
			}
			if d := run.Delivery; d.Expected == 0 || d.Lost != 0 || d.Duplicated != 0 || d.Mismatched != 0 || d.Reordered != 0 {
				t.Errorf("delivery %+v, want every message exactly once, with its content", d)
			}
			if code != 0 || !strings.Contains(stdout, "imload run: PASS") {
				t.Errorf("exit code %d, verdict %+v\nstdout tail:\n%s", code, res.Verdict, tail(stdout, 5))
			}
			m := regexp.MustCompile("imload serve --data ([^`]+)` \\(pid").FindStringSubmatch(stderr)
			if m == nil {
				t.Fatalf("stderr does not name the local server's data directory:\n%s", stderr)
			}
			if _, err := os.Stat(m[1]); !os.IsNotExist(err) {
				t.Errorf("temporary data directory %s left behind (%v)", m[1], err)
			}
		})
	}
}

// TestRunKicksFail is finding 8 of issue 12: more tabs per user than the
// server's per-user cap (default 16) in per-tab mode. Each browser's 17th
// socket makes the server kick its oldest one; the generator must not
// reconnect it (that kicked the next oldest, 67 kicks in 22 s, and the run
// said PASS): 5 kicks, shown, and a failed run.
func TestRunKicksFail(t *testing.T) {
	bin := buildImload(t)
	out := filepath.Join(t.TempDir(), "out")
	stdout, _, code, res := runBinary(t, bin, out, "run", "--mode", "per-tab", "--tabs", "17", "--clients", "5",
		"--duration", "4s", "--ramp", "1s")
	run := res.Runs[0]
	if run.Counters.Kicks != 5 || run.Counters.TotalReconnects() != 0 {
		t.Errorf("%d kicks, reconnects %v: want 5 kicks, none reconnected", run.Counters.Kicks, run.Counters.Reconnects)
	}
	last := tail(stdout, 1)
	if code != 1 || res.Verdict.Pass || !strings.Contains(last, "FAIL") || !strings.Contains(last, "5 KICKS") ||
		!strings.Contains(stdout, "kicks (too_many_connections)") {
		t.Errorf("exit code %d, verdict %+v, last line %q", code, res.Verdict, last)
	}
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// The fault flags are refused with a --target (only the local server can be
// restarted), negative, or outside the run.
func TestRunFaultFlags(t *testing.T) {
	if _, _, err := runCLI(t, "run", "--target", "ws://127.0.0.1:1/ws", "--crash-server-at", "2s"); err == nil ||
		!strings.Contains(err.Error(), "leave out --target") {
		t.Errorf("with --target: %v", err)
	}
	if _, _, err := runCLI(t, "run", "--restart-server-at", "2s", "--restart-delay", "-1s"); err == nil ||
		!strings.Contains(err.Error(), "negative") {
		t.Errorf("negative delay: %v", err)
	}
	fl, err := (faultFlags{crashAt: 5 * time.Second, restartAt: 2 * time.Second, delay: time.Second}).list(false)
	if err != nil {
		t.Fatal(err)
	}
	if len(fl) != 2 || fl[0].Kind != reports.FaultRestart || fl[1].Kind != reports.FaultCrash {
		t.Errorf("faults %+v, want the restart (2 s) before the crash (5 s)", fl)
	}
}
