package loadgen

import (
	"testing"
	"time"
)

// The end of a mode waits for its socket goroutines, and says how many it
// left behind when they outlast the wait.
func TestLiveCountWait(t *testing.T) {
	var c liveCount
	c.add()
	c.add()
	c.done()
	if left := c.wait(20 * time.Millisecond); left != 1 {
		t.Fatalf("%d left, want 1", left)
	}
	go func() { time.Sleep(10 * time.Millisecond); c.done() }()
	if left := c.wait(5 * time.Second); left != 0 {
		t.Fatalf("%d left after the last ended", left)
	}
}
