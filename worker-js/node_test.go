package workerjs

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// TestNodeUnitTests runs the JavaScript unit tests (test/*.test.js: backoff
// ladder, flush buffer, offsets, cache ordering, the hub against a fake
// socket) with Node's built-in runner, so that go test ./... covers them.
// Skipped when node is not installed.
func TestNodeUnitTests(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node not found on PATH: JavaScript unit tests skipped")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "--test", "--test-reporter=tap", "test/")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node --test test/: %v\n%s", err, out)
	}
	// A run that found no test, or skipped some, exits 0 too.
	tests, pass := tapCount(out, "tests"), tapCount(out, "pass")
	if tests <= 0 || pass != tests {
		t.Fatalf("node --test test/: %d tests, %d passed: want every one of at least one to pass\n%s", tests, pass, out)
	}
	t.Logf("node --test test/: %d tests passed", pass)
}

// tapCount returns the count of the TAP summary line "# name N", or -1.
func tapCount(out []byte, name string) int {
	m := regexp.MustCompile(`(?m)^# ` + name + ` (\d+)$`).FindSubmatch(out)
	if m == nil {
		return -1
	}
	n, err := strconv.Atoi(string(m[1]))
	if err != nil {
		return -1
	}
	return n
}

// TestTypeCheck runs TypeScript's checker over the browser code (JSDoc
// types, // @ts-check) and the hand-written types/*.d.ts, page and worker
// each with their globals: tsc --noEmit -p tsconfig.json, and
// tsconfig.worker.json. TypeScript comes from npm (npm ci in worker-js);
// without it the test skips, or fails when IMLOAD_REQUIRE_TSC=1 (.ci/run).
func TestTypeCheck(t *testing.T) {
	node, err := exec.LookPath("node")
	tsc := filepath.Join("node_modules", "typescript", "bin", "tsc")
	if _, serr := os.Stat(tsc); err != nil || serr != nil {
		msg := "TypeScript not installed (cd worker-js && npm ci): type check skipped"
		if os.Getenv("IMLOAD_REQUIRE_TSC") == "1" {
			t.Fatal(msg + " (IMLOAD_REQUIRE_TSC=1)")
		}
		t.Skip(msg)
	}
	for _, cfg := range []string{"tsconfig.json", "tsconfig.worker.json"} {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		out, err := exec.CommandContext(ctx, node, tsc, "--noEmit", "-p", cfg).CombinedOutput()
		cancel()
		if err != nil {
			t.Errorf("tsc --noEmit -p %s: %v\n%s", cfg, err, out)
		}
	}
}
