package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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
	}
	for _, f := range []string{reports.FileSummary, reports.FileReportHTML, "server.log", "shared-delivery.hgrm"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("missing %s: %v", f, err)
		}
	}
}
