package redistest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(WithShared(m)) }

// rawPing sends an inline PING (the command as a plain line, as telnet
// would) and returns the first reply line.
func rawPing(addr string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(c, "PING\r\n"); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return line, err
}

func TestSharedServer(t *testing.T) {
	s := Shared(t)
	if s2 := Shared(t); s2 != s {
		t.Fatal("a second Shared call started another server")
	}
	if got, err := rawPing(s.Addr()); err != nil || got != "+PONG\r\n" {
		t.Fatalf("raw PING to %s: %q, %v", s.Addr(), got, err)
	}
	if !strings.HasPrefix(s.Addr(), "127.0.0.1:") || s.URL() != "redis://"+s.Addr()+"/0" {
		t.Fatalf("Addr %q, URL %q", s.Addr(), s.URL())
	}
	// No persistence, loopback only, the databases the leases need.
	for k, want := range map[string]string{"save": "", "appendonly": "no", "bind": "127.0.0.1", "databases": strconv.Itoa(Databases)} {
		v, err := s.Do("CONFIG", "GET", k)
		if err != nil {
			t.Fatal(err)
		}
		if a, ok := v.([]any); !ok || len(a) != 2 || a[1] != want {
			t.Errorf("CONFIG GET %s = %#v, want %q", k, v, want)
		}
	}
}

func TestDBLeasesAreApart(t *testing.T) {
	s := Shared(t)
	a, b := s.DB(t), s.DB(t)
	if a.Index == b.Index || a.Prefix == b.Prefix {
		t.Fatalf("two leases share index or prefix: %+v %+v", a, b)
	}
	if a.URL != fmt.Sprintf("redis://%s/%d", s.Addr(), a.Index) {
		t.Fatalf("URL %q", a.URL)
	}
	if _, err := a.Do("SET", "k", "in a"); err != nil {
		t.Fatal(err)
	}
	if v, err := b.Do("GET", "k"); err != nil || v != nil {
		t.Fatalf("b sees a's key: %#v, %v", v, err)
	}
	if v, err := a.Do("GET", "k"); err != nil || v != "in a" {
		t.Fatalf("GET in a: %#v, %v", v, err)
	}
	// Reply types.
	if v, err := a.Do("INCRBY", "n", "41"); err != nil || v != int64(41) {
		t.Fatalf("INCRBY: %#v, %v", v, err)
	}
	if _, err := a.Do("RPUSH", "l", "x", "y"); err != nil {
		t.Fatal(err)
	}
	if v, err := a.Do("LRANGE", "l", "0", "-1"); err != nil || fmt.Sprint(v) != "[x y]" {
		t.Fatalf("LRANGE: %#v, %v", v, err)
	}
	var rerr Error
	if _, err := a.Do("NOSUCHCOMMAND"); !errors.As(err, &rerr) || !strings.HasPrefix(string(rerr), "ERR") {
		t.Fatalf("an unknown command gave %v", err)
	}

	// A lease given back is emptied for the next test.
	var idx int
	t.Run("lease", func(t *testing.T) {
		db := s.DB(t)
		idx = db.Index
		if _, err := db.Do("SET", "left", "over"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("again", func(t *testing.T) {
		db := s.DB(t)
		if db.Index != idx {
			t.Fatalf("index %d, want the released %d", db.Index, idx)
		}
		if v, err := db.Do("DBSIZE"); err != nil || v != int64(0) {
			t.Fatalf("a new lease holds %v keys (%v)", v, err)
		}
	})
}

func TestKillRestartStop(t *testing.T) {
	s := Start(t)
	if s == Shared(t) {
		t.Fatal("Start returned the shared server")
	}
	db := s.DB(t)
	if _, err := db.Do("SET", "k", "v"); err != nil {
		t.Fatal(err)
	}
	pid := s.Pid()

	if err := s.Kill(); err != nil {
		t.Fatal(err)
	}
	if s.Running() || s.Pid() != 0 {
		t.Fatal("running after Kill")
	}
	if _, err := rawPing(s.Addr()); err == nil {
		t.Fatal("a killed server answered PING")
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("the killed process %d is still there (not reaped?): %v", pid, err)
	}
	if err := s.Kill(); err != nil {
		t.Fatalf("Kill of a killed server: %v", err)
	}

	port := s.Port()
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	if s.Port() != port || !s.Running() || s.Pid() == pid {
		t.Fatalf("after Restart: port %d (was %d), running %v, pid %d (was %d)", s.Port(), port, s.Running(), s.Pid(), pid)
	}
	if got, err := rawPing(s.Addr()); err != nil || got != "+PONG\r\n" {
		t.Fatalf("raw PING after Restart: %q, %v", got, err)
	}
	if v, err := db.Do("GET", "k"); err != nil || v != nil {
		t.Fatalf("data survived the restart: %#v, %v", v, err)
	}

	// Restart of a running server is a kill and a start.
	pid = s.Pid()
	if _, err := db.Do("SET", "k", "v"); err != nil {
		t.Fatal(err)
	}
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	if s.Pid() == pid {
		t.Fatal("Restart of a running server kept the process")
	}
	if v, err := db.Do("EXISTS", "k"); err != nil || v != int64(0) {
		t.Fatalf("EXISTS after Restart: %#v, %v", v, err)
	}

	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := rawPing(s.Addr()); err == nil {
		t.Fatal("a stopped server answered PING")
	}
	if err := s.Stop(); err != nil {
		t.Fatalf("Stop of a stopped server: %v", err)
	}
}

func TestExtraArgs(t *testing.T) {
	s := Start(t, "--maxmemory", "7mb")
	v, err := s.Do("CONFIG", "GET", "maxmemory")
	if err != nil {
		t.Fatal(err)
	}
	if a, _ := v.([]any); len(a) != 2 || a[1] != strconv.Itoa(7<<20) {
		t.Fatalf("maxmemory %#v", v)
	}
}

// A server that cannot start is reported with the end of its log.
func TestStartFailureShowsLog(t *testing.T) {
	bin, err := lookPath()
	if err != nil {
		skipOrFail(t, err)
	}
	s := &Server{bin: bin, dir: t.TempDir(), extra: []string{"--no-such-directive", "1"}}
	err = s.startFree()
	if err == nil {
		s.Stop()
		t.Fatal("started with a bad directive")
	}
	if !strings.Contains(err.Error(), "did not start") || !strings.Contains(err.Error(), "no-such-directive") {
		t.Fatalf("the error does not say why: %v", err)
	}
	if s.Running() {
		t.Fatal("running after a failed start")
	}
}

// A port someone else holds is noticed (as errPortTaken, so startFree
// tries another), whether the holder is a Redis or not.
func TestPortTaken(t *testing.T) {
	other := Start(t)
	bin, _ := lookPath()

	s := &Server{bin: bin, dir: t.TempDir(), port: other.Port()}
	s.mu.Lock()
	err := s.start()
	s.mu.Unlock()
	if !errors.Is(err, errPortTaken) {
		s.Stop()
		t.Fatalf("starting on a Redis's port: %v", err)
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	s.port = l.Addr().(*net.TCPAddr).Port
	s.mu.Lock()
	err = s.start()
	s.mu.Unlock()
	if !errors.Is(err, errPortTaken) {
		s.Stop()
		t.Fatalf("starting on a taken port: %v", err)
	}
}

// childEnv is the environment of a child test binary: ours without
// RequireEnv, with mode and extra set.
func childEnv(mode string, extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, RequireEnv+"=") && !strings.HasPrefix(kv, "REDISTEST_CHILD=") {
			env = append(env, kv)
		}
	}
	return append(append(env, "REDISTEST_CHILD="+mode), extra...)
}

// TestChildMissing runs only in a child test binary (TestMissing): with no
// redis-server on PATH, Start and Shared skip, or fail under RequireEnv.
func TestChildMissing(t *testing.T) {
	if os.Getenv("REDISTEST_CHILD") != "missing" {
		t.Skip("run by TestMissing")
	}
	t.Run("start", func(t *testing.T) { Start(t); t.Log("NOT SKIPPED") })
	t.Run("shared", func(t *testing.T) { Shared(t); t.Log("NOT SKIPPED") })
}

func TestMissing(t *testing.T) {
	empty := t.TempDir()
	for _, tc := range []struct {
		require string
		want    []string
	}{
		{"", []string{"--- SKIP: TestChildMissing/start", "--- SKIP: TestChildMissing/shared", "set IMLOAD_REQUIRE_REDIS=1 to make this a failure", "redis-server not found on PATH", "\nPASS\n"}},
		{"1", []string{"--- FAIL: TestChildMissing/start", "--- FAIL: TestChildMissing/shared", "IMLOAD_REQUIRE_REDIS=1 but redis-server not found on PATH", "\nFAIL\n"}},
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestChildMissing$", "-test.v", "-test.count=1")
		cmd.Env = childEnv("missing", "PATH="+empty, RequireEnv+"="+tc.require)
		out, err := cmd.CombinedOutput()
		if (tc.require == "1") != (err != nil) {
			t.Errorf("%s=%q: exit %v\n%s", RequireEnv, tc.require, err, out)
		}
		for _, w := range tc.want {
			if !strings.Contains(string(out), w) {
				t.Errorf("%s=%q: the output lacks %q:\n%s", RequireEnv, tc.require, w, out)
			}
		}
		if strings.Contains(string(out), "NOT SKIPPED") {
			t.Errorf("a test went on without redis-server:\n%s", out)
		}
	}
}

// TestChildOrphan runs only in a child test binary (TestDiesWithTestBinary):
// it starts a server, prints its pid and waits to be killed.
func TestChildOrphan(t *testing.T) {
	if os.Getenv("REDISTEST_CHILD") != "orphan" {
		t.Skip("run by TestDiesWithTestBinary")
	}
	s := Start(t)
	fmt.Printf("PID %d\n", s.Pid())
	time.Sleep(time.Minute)
}

// When the test binary dies without its cleanups (SIGKILL), the kernel
// kills its redis-server (Pdeathsig).
func TestDiesWithTestBinary(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("Pdeathsig is Linux only")
	}
	Start(t) // skips when redis-server is missing
	cmd := exec.Command(os.Args[0], "-test.run=^TestChildOrphan$", "-test.count=1")
	cmd.Env = childEnv("orphan", "TMPDIR="+t.TempDir())
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	cmd.Process.Kill()
	cmd.Wait()
	var pid int
	if _, perr := fmt.Sscanf(line, "PID %d", &pid); perr != nil || pid <= 0 {
		t.Fatalf("the child printed %q (%v, %v)", line, err, perr)
	}
	deadline := time.Now().Add(5 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("redis-server %d outlived its test binary", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// alive reports whether process pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}
