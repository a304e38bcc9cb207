package loadgen

import (
	"math/rand/v2"
	"testing"
	"time"

	"imload/reports"
)

func TestLadderSteps(t *testing.T) {
	cfg := LadderConfig{RetrySame: 3, Base: 100 * time.Millisecond, Max: 300 * time.Millisecond, Jitter: 0.5, Refetches: 2}
	l := NewLadder(cfg, 2, 0)
	r := rand.New(rand.NewPCG(7, 8))
	var names []string
	var addrs []int
	for i := 0; i < 20; i++ {
		s := l.Failed(r)
		names = append(names, s.Name)
		addrs = append(addrs, s.Addr)
		if s.Name == reports.StepGiveUp {
			break
		}
		if s.Delay < 0 || s.Delay > time.Duration(float64(cfg.Max)*1.5)+time.Millisecond {
			t.Fatalf("step %d: delay %v out of bounds", i, s.Delay)
		}
		if s.Name == reports.StepRefetch {
			l.SetAddrs(2)
		}
	}
	// Per round: 2 retries on address 0, switch to 1, 2 retries, then a
	// refetch; two refetches; then give up.
	want := []string{
		"retry", "retry", "switch", "retry", "retry", "refetch",
		"retry", "retry", "switch", "retry", "retry", "refetch",
		"retry", "retry", "switch", "retry", "retry", "give_up",
	}
	if len(names) != len(want) {
		t.Fatalf("steps %v, want %v", names, want)
	}
	for i := range want {
		if names[i] != want[i] {
			t.Fatalf("steps %v, want %v", names, want)
		}
	}
	if addrs[0] != 0 || addrs[2] != 1 || addrs[3] != 1 || addrs[6] != 0 {
		t.Fatalf("addresses %v", addrs)
	}
	// Success resets the ladder.
	l2 := NewLadder(cfg, 1, 0)
	l2.Failed(r)
	l2.Failed(r)
	l2.Success()
	if s := l2.Failed(r); s.Name != reports.StepRetry {
		t.Fatalf("after success: %v", s.Name)
	}
}

func TestLadderBackoffGrowsAndCaps(t *testing.T) {
	cfg := LadderConfig{RetrySame: 10, Base: 100 * time.Millisecond, Max: 800 * time.Millisecond, Jitter: 0.01, Refetches: 0}
	l := NewLadder(cfg, 1, 0)
	r := rand.New(rand.NewPCG(9, 10))
	want := []time.Duration{100, 200, 400, 800, 800, 800}
	for i, w := range want {
		s := l.Failed(r)
		w *= time.Millisecond
		if s.Delay < w*98/100 || s.Delay > w*102/100 {
			t.Fatalf("attempt %d: delay %v, want about %v", i+1, s.Delay, w)
		}
	}
}

func TestLadderJitterSpreads(t *testing.T) {
	cfg := LadderConfig{RetrySame: 5, Base: time.Second, Max: time.Second, Jitter: 0.5}
	r := rand.New(rand.NewPCG(11, 12))
	lo, hi := time.Hour, time.Duration(0)
	for i := 0; i < 1000; i++ {
		d := NewLadder(cfg, 1, 0).Failed(r).Delay
		lo, hi = min(lo, d), max(hi, d)
	}
	if lo > 600*time.Millisecond || hi < 1400*time.Millisecond || lo < 500*time.Millisecond || hi > 1500*time.Millisecond {
		t.Fatalf("jitter range %v..%v, want about 0.5s..1.5s", lo, hi)
	}
}
