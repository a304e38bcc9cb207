package servertest_test

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"imload/mux"
	"imload/server"
	"imload/server/servertest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// get makes one request on a connection of its own.
func get(t *testing.T, url string) int {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// hello dials the WebSocket endpoint and returns the server's hello.
func hello(t *testing.T, url string) mux.Frame {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial(url, nil)
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
	if err != nil || f.T != mux.TypeHello {
		t.Fatalf("first frame %s (%v), want a hello", msg, err)
	}
	return f
}

// A server serves HTTP and WebSocket at the addresses it gives, stops on
// Close (any number of times), and a new one starts on the same address.
func TestStartCloseRestart(t *testing.T) {
	ts := servertest.Start(t, servertest.Config())
	addr := ts.Addr()
	if !strings.HasPrefix(addr, "127.0.0.1:") || ts.URL() != "http://"+addr || ts.WSURL() != "ws://"+addr+"/ws" {
		t.Fatalf("addr %s, URL %s, WSURL %s", addr, ts.URL(), ts.WSURL())
	}
	if code := get(t, ts.URL()+"/healthz"); code != http.StatusOK {
		t.Fatalf("healthz: %d", code)
	}
	hello(t, ts.WSURL())
	ts.Close()
	ts.Close()
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Fatal("the server still accepts after Close")
	}
	ts2 := servertest.StartOn(t, servertest.Config(), addr)
	if ts2.Addr() != addr {
		t.Fatalf("restarted on %s, want %s", ts2.Addr(), addr)
	}
	hello(t, ts2.WSURL())
	if st := ts2.Server.Stats(); st.PhysicalConnections > 1 {
		t.Fatalf("restarted server: %d connections", st.PhysicalConnections)
	}
}

// recTB records the errors a helper reports instead of failing the test.
type recTB struct {
	testing.TB
	mu   sync.Mutex
	errs []string
}

func (r *recTB) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

// lockedBuffer is a log that tests read while the server writes it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Close fails the test when Serve failed: here its listener was closed
// under it.
func TestCloseReportsServeError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	var logs lockedBuffer
	cfg := servertest.Config()
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	rec := &recTB{TB: t}
	ts := servertest.StartListener(rec, cfg, ln)
	// Serve logs that it shuts down once it stopped serving: on its own,
	// as nothing stopped it yet. (Closed at once, it would shut down
	// without looking at the listener's error.)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), "shutting down") {
		if time.Now().After(deadline) {
			t.Fatalf("Serve did not stop on a closed listener; log:\n%s", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	ts.Close()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.errs) != 1 || !strings.Contains(rec.errs[0], "use of closed network connection") {
		t.Fatalf("reported %q, want Serve's error", rec.errs)
	}
}

// Config is the memory store with short timeouts, and the reader
// IMLOAD_TEST_READER names.
func TestConfig(t *testing.T) {
	t.Setenv(servertest.ReaderEnv, server.ReaderGoroutine)
	cfg := servertest.Config()
	if !cfg.Memory || cfg.ShutdownTimeout > 5*time.Second || cfg.GoAwayRetryMax > time.Second || cfg.Reader != server.ReaderGoroutine {
		t.Fatalf("config: memory %v, shutdown %v, goaway ≤ %v, reader %q", cfg.Memory, cfg.ShutdownTimeout, cfg.GoAwayRetryMax, cfg.Reader)
	}
	ts := servertest.Start(t, cfg)
	hello(t, ts.WSURL())
	t.Setenv(servertest.ReaderEnv, "")
	if r := servertest.Config().Reader; r != server.DefaultConfig().Reader {
		t.Fatalf("reader %q without %s, want the default %q", r, servertest.ReaderEnv, server.DefaultConfig().Reader)
	}
	t.Setenv(servertest.ReaderEnv, "poller")
	cfg = servertest.Config()
	if _, err := server.New(cfg); err == nil {
		t.Fatalf("%s=poller: the server accepted reader %q", servertest.ReaderEnv, cfg.Reader)
	}
}
