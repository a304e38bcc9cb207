package localserver

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"testing"
	"time"

	"go.uber.org/goleak"

	"imload/server/redistest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Without redis-server on PATH: ErrNoRedis, which names the package.
func TestStartRedisMissing(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := StartRedis(context.Background(), RedisConfig{})
	if !errors.Is(err, ErrNoRedis) {
		t.Fatalf("error %v, want ErrNoRedis", err)
	}
	if _, err := StartCluster(context.Background(), ClusterConfig{Nodes: 2}); !errors.Is(err, ErrNoRedis) {
		t.Fatalf("cluster: error %v, want ErrNoRedis", err)
	}
}

// A real redis-server: on a loopback port, answering as itself, stopped
// with its directory removed.
func TestStartRedis(t *testing.T) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv(redistest.RequireEnv) == "1" {
			t.Fatalf("%s=1 but %v", redistest.RequireEnv, err)
		}
		t.Skipf("SKIPPED: needs redis-server on PATH: %v", err)
	}
	r, err := StartRedis(context.Background(), RedisConfig{StartTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := r.ours(r.PID()); !ok || err != nil {
		t.Errorf("the server at %s is not ours: %v", r.Addr, err)
	}
	if r.URL != "redis://"+r.Addr+"/0" {
		t.Errorf("URL %s", r.URL)
	}
	// Its counters: INFO stats, and commandstats' calls per command.
	before, err := r.Counters(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	after, err := r.Counters(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if d := after["total_commands_processed"] - before["total_commands_processed"]; d != 2 {
		t.Errorf("two INFO commands between the samples counted %d (before %v)", d, before)
	}
	if after["cmdstat_info"] < 4 || after["total_net_input_bytes"] <= before["total_net_input_bytes"] {
		t.Errorf("counters after: cmdstat_info %d, bytes in %d (before %d)", after["cmdstat_info"], after["total_net_input_bytes"], before["total_net_input_bytes"])
	}
	if err := r.Stop(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(r.dir); !os.IsNotExist(err) {
		t.Errorf("directory %s left behind: %v", r.dir, err)
	}
	if ok, _ := r.ours(r.PID()); ok {
		t.Error("still answering after Stop")
	}
}
