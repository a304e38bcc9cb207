package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"imload/mux"
	"imload/server"
)

// TestServeBinary runs the real `imload serve` binary: flags from IMLOAD_*
// environment variables reach the server (seen in its hello frame), and
// SIGTERM sends connected clients a goaway, flushes and exits in time.
func TestServeBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "imload")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "serve", "--addr", "127.0.0.1:0", "--data", filepath.Join(dir, "data"))
	cmd.Env = append(os.Environ(), "IMLOAD_MAX_TEXT=777", "IMLOAD_HEARTBEAT=7s", "IMLOAD_MAX_SESSIONS=5")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopped := false
	defer func() {
		if !stopped {
			cmd.Process.Kill()
			<-exited
		}
	}()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "listening on http://") {
		t.Fatalf("first line %q, %v; stderr: %s", line, err, stderr.String())
	}
	base := strings.TrimSpace(strings.TrimPrefix(line, "listening on "))

	resp, err := http.Get(base + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz: %v %v", resp, err)
	}
	resp.Body.Close()

	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(base, "http")+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, msg, err := ws.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	f, err := mux.DecodeServerFrame(msg)
	if err != nil {
		t.Fatal(err)
	}
	var hello mux.Hello
	if err := json.Unmarshal(f.Body, &hello); err != nil {
		t.Fatalf("hello %s: %v", f.Body, err)
	}
	if hello.MaxText != 777 || hello.HeartbeatMS != 7000 || hello.MaxSessions != 5 {
		t.Fatalf("environment not applied: hello %+v", hello)
	}

	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	sawGoAway := false
	for {
		_, msg, err := ws.ReadMessage()
		if err != nil {
			if ce, ok := err.(*websocket.CloseError); !ok || ce.Code != websocket.CloseGoingAway {
				t.Fatalf("after SIGTERM: %v, want close 1001", err)
			}
			break
		}
		if f, err := mux.DecodeServerFrame(msg); err == nil && f.T == mux.TypeGoAway {
			sawGoAway = true
		}
	}
	if !sawGoAway {
		t.Fatal("no goaway before the close")
	}
	select {
	case err := <-exited:
		stopped = true
		if err != nil {
			t.Fatalf("serve exited with %v; stderr: %s", err, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not exit within 15s of SIGTERM")
	}
	t.Logf("exited %v after SIGTERM", time.Since(start).Round(time.Millisecond))
}

func TestEnvironmentOverridesOnlyUnsetFlags(t *testing.T) {
	t.Setenv("IMLOAD_MAX_CONNS_PER_USER", "3")
	t.Setenv("IMLOAD_MEMORY", "true")
	t.Setenv("IMLOAD_ADDR", "127.0.0.1:9")
	cmd := newServeCmd()
	if err := cmd.ParseFlags([]string{"--addr", "127.0.0.1:1234"}); err != nil {
		t.Fatal(err)
	}
	if err := applyEnv(cmd.Flags()); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"max-conns-per-user": "3", "memory": "true", "addr": "127.0.0.1:1234"} {
		if got := cmd.Flags().Lookup(name).Value.String(); got != want {
			t.Errorf("--%s = %q, want %q", name, got, want)
		}
	}
	t.Setenv("IMLOAD_HEARTBEAT", "soon")
	cmd = newServeCmd()
	if err := applyEnv(cmd.Flags()); err == nil || !strings.Contains(err.Error(), "IMLOAD_HEARTBEAT") {
		t.Fatalf("bad value: %v", err)
	}
}

// --gc-percent 0 is refused before anything starts (and before the
// process's GC setting is touched).
func TestServeRefusesZeroGCPercent(t *testing.T) {
	cmd := newServeCmd()
	cmd.SetArgs([]string{"--gc-percent", "0", "--memory", "--addr", "127.0.0.1:0"})
	cmd.SetOut(io.Discard)
	cmd.SetErr(io.Discard)
	if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), "--gc-percent") {
		t.Fatalf("got %v, want an error about --gc-percent", err)
	}
}

// --redis with --data or --durability is refused before anything starts:
// the history lives in Redis.
func TestServeRedisRefusesData(t *testing.T) {
	for _, extra := range [][]string{{"--data", t.TempDir()}, {"--durability", "relaxed"}} {
		cmd := newServeCmd()
		cmd.SetArgs(append([]string{"--redis", "redis://127.0.0.1:1/0", "--addr", "127.0.0.1:0"}, extra...))
		cmd.SetOut(io.Discard)
		cmd.SetErr(io.Discard)
		if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), "do not apply with --redis") {
			t.Fatalf("%v: got %v, want an error about --data and --durability with --redis", extra, err)
		}
	}
}

// The node id and advertised URL default from the listen address.
func TestNodeDefaults(t *testing.T) {
	host, _ := os.Hostname()
	var cfg server.Config
	nodeDefaults(&cfg, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8081})
	if cfg.NodeID != host+":8081" || cfg.Advertise != "ws://127.0.0.1:8081/ws" {
		t.Fatalf("defaults %q %q", cfg.NodeID, cfg.Advertise)
	}
	cfg = server.Config{NodeID: "a", Advertise: "ws://x/ws"}
	nodeDefaults(&cfg, &net.TCPAddr{IP: net.IPv4zero, Port: 8081})
	if cfg.NodeID != "a" || cfg.Advertise != "ws://x/ws" {
		t.Fatalf("given values changed: %q %q", cfg.NodeID, cfg.Advertise)
	}
	cfg = server.Config{}
	nodeDefaults(&cfg, &net.TCPAddr{IP: net.IPv4zero, Port: 9})
	if cfg.Advertise != "ws://"+net.JoinHostPort(host, "9")+"/ws" {
		t.Fatalf("unspecified host: %q", cfg.Advertise)
	}
}
