package loadgen

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"imload/loadgen/wire"
	"imload/reports"
)

// centrifugoBin returns a Centrifugo 6.9.1 binary, built once into
// bench/.cache/bin by bench/build-centrifugo.sh (go install from the module
// proxy; minutes the first time). It skips the test, saying so on stderr,
// when it cannot be built, and fails instead when
// IMLOAD_REQUIRE_CENTRIFUGO=1 (CI, where it must run).
func centrifugoBin(t *testing.T) string {
	t.Helper()
	script := filepath.Join("..", "bench", "build-centrifugo.sh")
	bash, err := exec.LookPath("bash")
	var out []byte
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, bash, script)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err = cmd.Output()
		if err != nil {
			err = fmt.Errorf("%s: %w\n%s", script, err, stderr.String())
		}
	}
	if err != nil {
		msg := fmt.Sprintf("SKIPPED: the Centrifugo integration tests need bash, go and the Go module proxy to build "+
			"Centrifugo (bench/build-centrifugo.sh); set IMLOAD_REQUIRE_CENTRIFUGO=1 to make this a failure: %v", err)
		if os.Getenv("IMLOAD_REQUIRE_CENTRIFUGO") == "1" {
			t.Fatal(msg)
		}
		fmt.Fprintln(os.Stderr, "loadgen: "+t.Name()+": "+msg)
		t.Skip(msg)
	}
	return strings.TrimSpace(string(out))
}

// startCentrifugo starts Centrifugo with config (bench/centrifugo.json when
// empty) on a free loopback port and returns its ws://127.0.0.1:PORT once
// /health answers. It is stopped when the test ends.
func startCentrifugo(t *testing.T, config string) string {
	t.Helper()
	bin := centrifugoBin(t)
	if config == "" {
		config = filepath.Join("..", "bench", "centrifugo.json")
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		logf, err := os.Create(filepath.Join(t.TempDir(), "centrifugo.log"))
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "-c", config, "--http_server.address", "127.0.0.1",
			"--http_server.port", strconv.Itoa(port), "--health.enabled")
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			logf.Close()
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		stop := func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(10 * time.Second):
				_ = cmd.Process.Kill()
				<-exited
			}
			logf.Close()
		}
		if err = waitHealth(port, exited); err == nil {
			t.Cleanup(stop)
			return "ws://127.0.0.1:" + strconv.Itoa(port)
		}
		stop()
		log, _ := os.ReadFile(logf.Name())
		lastErr = fmt.Errorf("%w; its log:\n%s", err, log)
	}
	t.Fatalf("Centrifugo did not start: %v", lastErr)
	return ""
}

// waitHealth waits (20 s at most) until Centrifugo's /health on port
// answers 200, or its process exits.
func waitHealth(port int, exited <-chan struct{}) error {
	c := &http.Client{Timeout: time.Second}
	u := "http://127.0.0.1:" + strconv.Itoa(port) + "/health"
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); {
		select {
		case <-exited:
			return fmt.Errorf("centrifugo exited at start")
		default:
		}
		if resp, err := c.Get(u); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				c.CloseIdleConnections()
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("no answer from %s within 20s", u)
}

func cfScenario(target string, clients, tabs int) Scenario {
	sc := smallScenario(target, clients, tabs)
	sc.Protocol = ProtocolCentrifugo
	sc.Rooms = 2
	sc.History = 0
	return sc
}

// A small run against a real Centrifugo: every room message reaches every
// member socket once and in offset order, every DM every socket of its
// target, with latencies recorded.
func TestRunCentrifugo(t *testing.T) {
	base := startCentrifugo(t, "")
	const clients, tabs = 20, 2
	sc := cfScenario(base, clients, tabs)
	sc.Duration = 3 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := Run(ctx, sc, WithLogf(t.Logf)) // default modes: per-tab only
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Runs) != 1 {
		t.Fatalf("%d runs", len(res.Runs))
	}
	if got := res.Scenario.Extra["protocol"]; got != ProtocolCentrifugo {
		t.Errorf("scenario protocol %q", got)
	}
	if res.Scenario.Targets[0] != base+"/connection/websocket" {
		t.Errorf("target %q", res.Scenario.Targets[0])
	}
	if !strings.HasPrefix(res.Environment.ServerVersion, "Centrifugo 6.9.1 ") {
		t.Errorf("server version %q", res.Environment.ServerVersion)
	}
	run := &res.Runs[0]
	t.Logf("delivery %+v dm %+v notes %v", run.Delivery, run.DMDelivery, run.Notes)
	if run.Mode != reports.ModePerTab || run.PhysicalConnectionsPeak != clients*tabs || run.SessionsPeak != clients*tabs {
		t.Errorf("%s: %d connections, %d sessions at peak", run.Mode, run.PhysicalConnectionsPeak, run.SessionsPeak)
	}
	d := run.Delivery
	if d.Expected == 0 || d.Lost != 0 || d.Duplicated != 0 || d.Reordered != 0 || d.Delivered != d.Expected {
		t.Errorf("delivery %+v", d)
	}
	// 2 rooms of 10 users × 2 tabs: each message reaches 20 sockets, less
	// the ones not subscribed yet during the ramp.
	if most := run.Counters.MessagesSent * clients * tabs / 2; d.Expected > most || d.Expected < most*8/10 {
		t.Errorf("expected %d deliveries for %d messages, want at most %d", d.Expected, run.Counters.MessagesSent, most)
	}
	if n := run.Latency[reports.HistDelivery].Count; n != d.Delivered {
		t.Errorf("%d delivery latencies for %d deliveries", n, d.Delivered)
	}
	if run.Counters.TotalErrors() != 0 {
		t.Errorf("errors %v", run.Counters.Errors)
	}
	if run.DMDelivery == nil || run.DMDelivery.Delivered == 0 || run.DMDelivery.Lost != 0 || run.DMDelivery.Delivered != run.DMDelivery.Expected {
		t.Errorf("dm delivery %+v", run.DMDelivery)
	}
	for _, h := range []string{reports.HistReply, reports.HistConnect, reports.HistAttach, reports.HistDM} {
		if run.Latency[h].Count == 0 {
			t.Errorf("no %s latency", h)
		}
	}
	if !res.Verdict.Pass {
		t.Errorf("verdict %+v", res.Verdict)
	}
}

// Tabs closing and sockets cut: a socket that comes back subscribes again
// (no recovery); what it missed while away is excused, nothing else is lost.
func TestRunCentrifugoChurnAndKills(t *testing.T) {
	base := startCentrifugo(t, "")
	sc := cfScenario(base, 30, 2)
	sc.Rooms = 5
	checkChurnAndKills(t, sc)
}

// A Centrifugo whose chat channels have no history (no offsets to verify
// with) is refused before the run, with what to change.
func TestRunCentrifugoNeedsPositioning(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "centrifugo.json")
	err := os.WriteFile(cfg, []byte(`{"usage_stats":{"disabled":true},"log":{"level":"warn"},
	  "client":{"allow_anonymous_connect_without_token":true},
	  "channel":{"namespaces":[{"name":"chat","allow_subscribe_for_client":true,"allow_subscribe_for_anonymous":true,
	    "allow_publish_for_subscriber":true,"allow_publish_for_anonymous":true}]}}`), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	base := startCentrifugo(t, cfg)
	sc := cfScenario(base, 2, 1)
	sc.DMRatio = 0
	_, err = Run(context.Background(), sc)
	if err == nil || !strings.Contains(err.Error(), "not positioned") || !strings.Contains(err.Error(), "bench/centrifugo.json") {
		t.Fatalf("err %v", err)
	}
}

func TestRunCentrifugoIsPerTabOnly(t *testing.T) {
	checkPerTabOnly(t, cfScenario("ws://127.0.0.1:1", 10, 1))
}

// The engine's verification sees what a faulty server would do, in
// Centrifugo's own format: a push dropped, sent twice or out of order, a DM
// lost. No server: the messages are given to the engine's reader as if read
// from the sockets (wire/centrifugo_test.go has the wire's own tests).
func TestCentrifugoFaultsCaught(t *testing.T) {
	sc := cfScenario("ws://127.0.0.1:1/connection/websocket", 2, 1)
	sc.Rooms, sc.RoomsPerUser = 1, 1
	sc = sc.withDefaults()
	w, err := wire.New(sc.Protocol, wire.Config{DMs: sc.DMRatio > 0})
	if err != nil {
		t.Fatal(err)
	}
	e := newEngine(sc, reports.ModePerTab, &options{logf: t.Logf, pacer: func(r float64) Pacer { return PoissonPacer{PerSecond: r} }},
		w, targetList{addrs: sc.Targets, base: "http://127.0.0.1:1"})
	e.t0 = time.Now()
	room := `"chat:` + e.rooms[0] + `"`
	var recv, send *tab
	for i, b := range e.browsers {
		s := b.socks[0]
		b.mu.Lock()
		// As after a greeting: the server pings every 25 s and wants pongs.
		s.setLink(wire.Link{Heartbeat: 25 * time.Second, AnswerPings: true, Attach: time.Millisecond})
		s.up = true
		s.attachTabs()
		b.mu.Unlock()
		if i == 0 {
			recv = b.tabs[0]
		} else {
			send = b.tabs[0]
		}
	}
	r := &reader{}
	feed := func(t2 *tab, lines ...string) { r.read(t2.s, []byte(strings.Join(lines, "\n"))) }
	// Replies to the subscriptions (ids from 2: the personal channel, then
	// the room at offset 10), a ping in the same message.
	for _, tb := range []*tab{recv, send} {
		feed(tb, `{"id":2,"subscribe":{}}`, `{}`, `{"id":3,"subscribe":{"epoch":"ep","offset":10,"positioned":true}}`)
		if !tb.att || !tb.tracks[0].joined || tb.tracks[0].from != 10 || tb.s.resumeWait != 0 {
			t.Fatalf("after the subscribe replies: att %v, track %+v, waiting for %d", tb.att, tb.tracks[0], tb.s.resumeWait)
		}
	}
	if e.tops[0].Load() != 10 || e.roomEpoch(0) != "ep" {
		t.Fatalf("room top %d epoch %q", e.tops[0].Load(), e.roomEpoch(0))
	}
	pub := func(off int, seq uint32) string {
		text := string(appendText(nil, e.tag, send.gid, seq, 0, 0, 48))
		return `{"push":{"channel":` + room + `,"pub":{"data":{"text":"` + text + `","ts":1},"info":{"user":"","client":"c"},"offset":` + strconv.Itoa(off) + `}}}`
	}
	// The sender gets 11..16; the receiver misses 12, gets 15 twice and
	// 14 after 15.
	feed(send, pub(11, 1), pub(12, 2), pub(13, 3), pub(14, 4), pub(15, 5), pub(16, 6))
	feed(recv, pub(11, 1), pub(13, 3), pub(15, 5))
	feed(recv, pub(15, 5), pub(14, 4))
	// A DM to the receiver, acked to the sender, never pushed.
	send.b.mu.Lock()
	send.seq = 7
	p := pending{kind: wire.DM, t: send, target: recv.b, mseq: 7}
	var dmTabs []dmTab
	dmTabs = appendDMTabs(dmTabs, recv.b, nil)
	e.dms.sent(dmKey{sender: send.gid, seq: 7}, send.b, recv.b, dmTabs, e.now())
	send.s.sendMsg(p)
	send.b.mu.Unlock()
	feed(send, `{"id":4,"publish":{}}`)
	if got := string(e.browsers[1].socks[0].batch.Bytes()); !strings.Contains(got, `"publish":{"channel":"dm:`+recv.b.name+`","data":{"text":"`+e.tag) {
		t.Errorf("queued: %s", got)
	}

	e.finalize()
	got := e.ver.delivery()
	// Receiver: expected 11..16 (6), got 11, 13, 14, 15: 12 lost (a gap)
	// and 16 lost (the tail); sender: all 6.
	want := reports.Delivery{Expected: 12, Delivered: 10, Lost: 2, LostTail: 1, Duplicated: 1, Reordered: 1}
	if got != want {
		t.Errorf("delivery %+v, want %+v", got, want)
	}
	if o := e.dms.outcome(); o.Expected != 1 || o.Lost != 1 || o.CountMismatch != 0 {
		t.Errorf("dm outcome %+v", o)
	}
	if n := e.cnt.totalErrors(); n != 0 {
		t.Errorf("errors %v", e.cnt.errorsMap())
	}
	// The pong went out with the replies: queued on each socket.
	if got := string(recv.s.batch.Bytes()); !strings.Contains(got, "\n{}") {
		t.Errorf("no pong queued: %q", got)
	}
	// The attach latency is the greeting's: the personal channel's reply
	// adds none.
	if hs, _ := mergeHists(e.allHists()); hs[hAttach].TotalCount() != 0 {
		n := hs[hAttach].TotalCount()
		t.Errorf("%d attach latencies from subscribe replies", n)
	}
}
