package loadgen

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
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
	cfg := LadderConfig{RetrySame: 5, Base: time.Second, Max: 2 * time.Second, Jitter: 0.5} // the cap out of the way
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

// ladderFixture is testdata/ladder.json, the ladder both this package and
// the browser side (worker-js/test/ladder.test.js) are tested against.
type ladderFixture struct {
	Cases []struct {
		Name   string
		Config struct {
			TriesPerAddr int     `json:"tries_per_addr"`
			BaseMs       int     `json:"base_ms"`
			MaxMs        int     `json:"max_ms"`
			Jitter       float64 `json:"jitter"`
			Refetches    int     `json:"refetches"`
		}
		Addrs             int
		AddrsAfterRefetch int `json:"addrs_after_refetch"`
		Random            []float64
		Repeat            int
		Script            []struct {
			Success bool
			Step    string
			Addr    *int
			DelayMs []int64 `json:"delay_ms"`
		}
	}
}

// seqSource is a rand.Source whose Float64s are vals, in order, cycled.
type seqSource struct {
	vals []float64
	i    int
}

func (s *seqSource) Uint64() uint64 {
	v := s.vals[s.i%len(s.vals)]
	s.i++
	return uint64(v * (1 << 53)) // rand.Rand.Float64 is Uint64's low 53 bits / 2^53
}

// TestLadderFixture walks the ladder through every case of
// testdata/ladder.json: the steps, their addresses and their waits.
func TestLadderFixture(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "ladder.json"))
	if err != nil {
		t.Fatal(err)
	}
	var fx ladderFixture
	if err := json.Unmarshal(data, &fx); err != nil {
		t.Fatal(err)
	}
	if len(fx.Cases) == 0 {
		t.Fatal("no case in testdata/ladder.json")
	}
	for _, c := range fx.Cases {
		t.Run(c.Name, func(t *testing.T) {
			if len(c.Script) == 0 {
				t.Fatal("empty script")
			}
			cfg := LadderConfig{RetrySame: c.Config.TriesPerAddr, Base: time.Duration(c.Config.BaseMs) * time.Millisecond,
				Max: time.Duration(c.Config.MaxMs) * time.Millisecond, Jitter: c.Config.Jitter, Refetches: c.Config.Refetches}
			if cfg.withDefaults() != cfg {
				t.Fatalf("config %+v is not used as given (%+v)", cfg, cfg.withDefaults())
			}
			r := rand.New(rand.NewPCG(13, 14))
			if len(c.Random) > 0 {
				r = rand.New(&seqSource{vals: c.Random})
			}
			for rep := 0; rep < max(1, c.Repeat); rep++ {
				l := NewLadder(cfg, c.Addrs, 0)
				for i, want := range c.Script {
					if want.Success {
						l.Success()
						continue
					}
					s := l.Failed(r)
					if s.Name != want.Step || (want.Addr != nil && s.Addr != *want.Addr) {
						t.Fatalf("failure %d: step %s to address %d, want %s to %v", i+1, s.Name, s.Addr, want.Step, derefInt(want.Addr))
					}
					if want.DelayMs != nil {
						lo, hi := time.Duration(want.DelayMs[0])*time.Millisecond, time.Duration(want.DelayMs[1])*time.Millisecond
						if s.Delay < lo || s.Delay > hi {
							t.Fatalf("failure %d (%s): wait %v, want %v..%v", i+1, s.Name, s.Delay, lo, hi)
						}
					}
					if s.Name == reports.StepRefetch && c.AddrsAfterRefetch > 0 {
						l.SetAddrs(c.AddrsAfterRefetch)
					}
				}
			}
		})
	}
}

func derefInt(p *int) any {
	if p == nil {
		return "any"
	}
	return *p
}
