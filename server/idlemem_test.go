package server

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"imload/mux"
)

// BenchmarkIdleMemory measures the RSS of a real `imload serve` child
// process holding IMLOAD_IDLE_CONNS (default 10,000) idle loopback
// connections opened from this process, then one attached session in a
// room per connection, then three more sessions per connection. It reports
// bytes of server RSS per idle connection, per first session and per extra
// session. Before each reading the server collects garbage (through its
// --pprof heap endpoint). It runs once whatever b.N is; run it with
// -benchtime 1x.
func BenchmarkIdleMemory(b *testing.B) {
	n := 10000
	if v := os.Getenv("IMLOAD_IDLE_CONNS"); v != "" {
		n, _ = strconv.Atoi(v)
	}
	bin := filepath.Join(b.TempDir(), "imload")
	if out, err := exec.Command("go", "build", "-o", bin, "imload/cmd/imload").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "serve", "--memory", "--addr", "127.0.0.1:0", "--heartbeat", "10m", "--heartbeat-timeout", "20m", "--log-level", "warn", "--pprof")
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() }()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		b.Fatal(err)
	}
	base := strings.TrimSpace(strings.TrimPrefix(line, "listening on "))
	wsURL := "ws" + strings.TrimPrefix(base, "http") + "/ws"
	stats := func() mux.Stats {
		resp, err := http.Get(base + "/stats")
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		var st mux.Stats
		json.NewDecoder(resp.Body).Decode(&st)
		return st
	}
	settle := func() int64 {
		// Collect garbage twice (the heap profile endpoint runs a GC
		// first; what sync.Pools hold survives one GC), then give the
		// scavenger a moment to return freed pages: the RSS then shows
		// what the server keeps, not the garbage of the last burst.
		for range 2 {
			if resp, err := http.Get(base + "/debug/pprof/heap?gc=1"); err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}
		time.Sleep(5 * time.Second)
		rss := rssOf(b, cmd.Process.Pid)
		b.Logf("RSS %d KiB; %s", rss>>10, goMem(b, base))
		return rss
	}
	b.ResetTimer()
	rss0 := settle()
	conns := make([]*websocket.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	d := websocket.Dialer{ReadBufferSize: 256, WriteBufferSize: 256}
	for i := range n {
		c, _, err := d.Dial(wsURL, nil)
		if err != nil {
			b.Fatalf("dial %d: %v", i, err)
		}
		conns = append(conns, c)
	}
	for stats().PhysicalConnections != int64(n) {
		time.Sleep(50 * time.Millisecond)
	}
	rss1 := settle()
	attach := func(sid uint32) {
		for i, c := range conns {
			msg := mux.AppendCmd(nil, sid, 1, mux.CmdAttach, mux.EncodeBody(mux.AttachReq{Name: fmt.Sprint("u", i), Mode: mux.ModeLoadgen}))
			msg = append(msg, '\n')
			msg = mux.AppendCmd(msg, sid, 2, mux.CmdJoin, mux.EncodeBody(mux.JoinReq{Room: fmt.Sprint("room", i%100)}))
			if err := c.WriteMessage(websocket.TextMessage, msg); err != nil {
				b.Fatal(err)
			}
		}
	}
	attach(1)
	for stats().LogicalSessions != int64(n) {
		time.Sleep(50 * time.Millisecond)
	}
	rss2 := settle()
	for sid := uint32(2); sid <= 4; sid++ {
		attach(sid)
	}
	for stats().LogicalSessions != int64(4*n) {
		time.Sleep(50 * time.Millisecond)
	}
	rss3 := settle()
	b.StopTimer()
	b.ReportMetric(float64(rss1-rss0)/float64(n), "B/idle-conn")
	b.ReportMetric(float64(rss2-rss1)/float64(n), "B/first-session")
	b.ReportMetric(float64(rss3-rss2)/float64(3*n), "B/extra-session")
	b.Logf("server RSS: start %d KiB, %d idle conns %d KiB, +1 session each %d KiB, +3 more each %d KiB", rss0>>10, n, rss1>>10, rss2>>10, rss3>>10)
}

// rssOf reads VmRSS of a process from /proc, in bytes.
func rssOf(tb testing.TB, pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		tb.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			f := strings.Fields(l)
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	tb.Fatal("no VmRSS")
	return 0
}

// goMem returns the Go runtime's memory figures from /metrics, to explain
// what the RSS holds.
func goMem(tb testing.TB, base string) string {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	var out []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		l := sc.Text()
		for _, k := range []string{"go_memstats_heap_alloc_bytes ", "go_memstats_heap_inuse_bytes ", "go_memstats_stack_inuse_bytes ", "go_goroutines "} {
			if strings.HasPrefix(l, k) {
				f := strings.Fields(l)
				v, _ := strconv.ParseFloat(f[1], 64)
				if strings.HasSuffix(f[0], "bytes") {
					out = append(out, fmt.Sprintf("%s=%dKiB", strings.TrimPrefix(f[0], "go_memstats_"), int64(v)>>10))
				} else {
					out = append(out, fmt.Sprintf("%s=%d", f[0], int64(v)))
				}
			}
		}
	}
	return strings.Join(out, " ")
}
