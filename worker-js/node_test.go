package workerjs

import (
	"context"
	"os/exec"
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
	cmd := exec.CommandContext(ctx, node, "--test", "test/")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node --test test/: %v\n%s", err, out)
	}
	t.Logf("node --test test/ passed")
}
