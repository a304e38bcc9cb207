package loadgen

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"imload/reports"
)

// startSocketIOServer starts the plain socket.io chat server of bench/
// (`node bench/server.js --port 0`) and returns its ws://HOST:PORT. It skips
// the test when node or bench/node_modules is missing, and fails instead
// when IMLOAD_REQUIRE_SOCKETIO=1 (CI, where it must run).
func startSocketIOServer(t *testing.T) string {
	t.Helper()
	bench := filepath.Join("..", "bench")
	node, err := exec.LookPath("node")
	if err == nil {
		_, err = os.Stat(filepath.Join(bench, "node_modules", "socket.io", "package.json"))
	}
	if err != nil {
		msg := fmt.Sprintf("SKIPPED: the socket.io integration test needs node and bench/node_modules "+
			"(cd bench && npm ci); set IMLOAD_REQUIRE_SOCKETIO=1 to make this a failure: %v", err)
		if os.Getenv("IMLOAD_REQUIRE_SOCKETIO") == "1" {
			t.Fatal(msg)
		}
		fmt.Fprintln(os.Stderr, "loadgen: "+t.Name()+": "+msg)
		t.Skip(msg)
	}
	cmd := exec.Command(node, filepath.Join(bench, "server.js"), "--port", "0")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	first := make(chan string, 1)
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		br := bufio.NewReader(out)
		line, err := br.ReadString('\n')
		if err == nil {
			first <- strings.TrimSpace(line)
		}
		close(first)
		_, _ = io.Copy(io.Discard, br)
	}()
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-drained:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-drained
		}
		_ = cmd.Wait()
	}
	select {
	case line, ok := <-first:
		const prefix = "listening on http://"
		if !ok || !strings.HasPrefix(line, prefix) {
			stop()
			t.Fatalf("node bench/server.js printed %q, want %q…; stderr:\n%s", line, prefix, stderr.String())
		}
		t.Cleanup(stop)
		return "ws://" + strings.TrimPrefix(line, prefix)
	case <-time.After(20 * time.Second):
		stop()
		t.Fatalf("node bench/server.js did not say it was listening within 20s; stderr:\n%s", stderr.String())
	}
	return ""
}

func sioScenario(target string, clients, tabs int) Scenario {
	sc := smallScenario(target, clients, tabs)
	sc.Protocol = ProtocolSocketIO
	sc.Rooms = 5
	return sc
}

// The same scenario against a real socket.io server: every room message
// reaches every member socket once and in seq order, every DM every socket
// of its target, and the counts agree with the server's /stats.
func TestRunSocketIO(t *testing.T) {
	base := startSocketIOServer(t)
	const clients, tabs = 60, 2
	sc := sioScenario(base, clients, tabs)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := Run(ctx, sc, WithLogf(t.Logf)) // default modes: per-tab only
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Runs) != 1 {
		t.Fatalf("%d runs", len(res.Runs))
	}
	if got := res.Scenario.Extra["protocol"]; got != ProtocolSocketIO {
		t.Errorf("scenario protocol %q", got)
	}
	if !strings.HasPrefix(res.Scenario.Targets[0], base+"/socket.io/?") {
		t.Errorf("target %q", res.Scenario.Targets[0])
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
	if run.ServerStatsPeak == nil || statNum(run.ServerStatsPeak, "physical_connections") != clients*tabs {
		t.Errorf("server stats at peak %v", run.ServerStatsPeak)
	}
	if run.Notes["server_messages_out"] != run.Notes["deliveries_by_push"] {
		t.Errorf("server messages_out %d, generator deliveries %d", run.Notes["server_messages_out"], run.Notes["deliveries_by_push"])
	}
	if run.Notes["server_dms_out"] != run.Notes["dm_delivered"]+run.Notes["dm_extra"] {
		t.Errorf("server dms_out %d, generator %d + %d extra", run.Notes["server_dms_out"], run.Notes["dm_delivered"], run.Notes["dm_extra"])
	}
	if !res.Verdict.Pass {
		t.Errorf("verdict %+v", res.Verdict)
	}
}

// Tabs closing and sockets cut: a socket.io socket that comes back rejoins
// (no recovery); what it missed while away is excused, nothing else is lost.
func TestRunSocketIOChurnAndKills(t *testing.T) {
	base := startSocketIOServer(t)
	checkChurnAndKills(t, sioScenario(base, 40, 2))
}

func TestRunSocketIOIsPerTabOnly(t *testing.T) {
	checkPerTabOnly(t, sioScenario("ws://127.0.0.1:1", 10, 1))
}

func TestSocketIOURL(t *testing.T) {
	for in, want := range map[string]string{
		"ws://127.0.0.1:3000":                           "ws://127.0.0.1:3000/socket.io/?EIO=4&transport=websocket",
		"ws://127.0.0.1:3000/":                          "ws://127.0.0.1:3000/socket.io/?EIO=4&transport=websocket",
		"ws://h:1/socket.io/?EIO=4&transport=websocket": "ws://h:1/socket.io/?EIO=4&transport=websocket",
		"wss://h/chat/":                                 "wss://h/chat/?EIO=4&transport=websocket",
	} {
		if got, err := SocketIOURL(in); err != nil || got != want {
			t.Errorf("%s: %q %v, want %q", in, got, err, want)
		}
	}
}

func TestSocketIOPacketArgs(t *testing.T) {
	id, hasID, a, b, ok := sioArgs([]byte(`17[{"ok":true,"seq":3}]`))
	if !ok || !hasID || id != 17 || string(a) != `{"ok":true,"seq":3}` || b != nil {
		t.Fatalf("ack: %d %v %q %q %v", id, hasID, a, b, ok)
	}
	_, hasID, a, b, ok = sioArgs([]byte(`["message",{"room":"r","text":"x,]","seq":2}]`))
	if !ok || hasID || string(a) != `"message"` || string(b) != `{"room":"r","text":"x,]","seq":2}` {
		t.Fatalf("event: %v %q %q %v", hasID, a, b, ok)
	}
	for _, bad := range []string{``, `5`, `{"a":1}`, `["x",{`} {
		if _, _, _, _, ok := sioArgs([]byte(bad)); ok {
			t.Errorf("%q parsed", bad)
		}
	}
	var o sioOpen
	if err := parseSioOpen([]byte(`0{"sid":"abc","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}`), &o); err != nil ||
		o.SID != "abc" || o.PingInterval != 25000 || o.MaxPayload != 1000000 {
		t.Fatalf("open %+v %v", o, err)
	}
	if err := parseSioOpen([]byte(`{"t":"hello"}`), &o); err == nil {
		t.Fatal("an imload hello taken for an Engine.IO open packet")
	}
}

// The start of a socket.io track is worked out at the end: the highest seq
// of the sends issued before its join ack, lowered below the first seq it
// received.
func TestSocketIOTrackStart(t *testing.T) {
	st := newSioState(1)
	// (issue time, seq): seq 3 was issued before the join ack at 250 (and
	// handled after it, or not: unknown); 4 and 5 after.
	for _, x := range []sioSend{{100, 1, 0}, {200, 2, 0}, {245, 3, 0}, {400, 4, 0}, {500, 5, 0}} {
		st.acked(0, x.issued, x.seq)
	}
	track := func(joinAt int64, got ...uint64) *roomTrack {
		tr := &roomTrack{joined: true, joinAt: joinAt}
		for _, o := range got {
			tr.receive(o, true)
		}
		return tr
	}
	cases := []struct {
		name string
		tr   *roomTrack
		to   uint64
		want reports.Delivery
	}{
		{"got 3 (uncertain) and everything after", track(250, 3, 4, 5), 5, reports.Delivery{Expected: 3, Delivered: 3}},
		{"3 not received: it was handled before the join", track(250, 4, 5), 5, reports.Delivery{Expected: 2, Delivered: 2}},
		{"a gap after the first one received is lost", track(250, 3, 5), 5, reports.Delivery{Expected: 3, Delivered: 2, Lost: 1}},
		{"nothing received, sends after the join are due", track(250), 5, reports.Delivery{Expected: 2, Lost: 2, LostTail: 2}},
		{"closed by a lost link before anything came", track(450), 0, reports.Delivery{}},
		{"joined after everything", track(600), 5, reports.Delivery{}},
	}
	for _, c := range cases {
		var v verifier
		st.closed(c.tr, c.to)
		st.count(&v)
		if got := v.delivery(); got != c.want {
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
		}
	}
	// A send whose ack was lost is placed by its delivery.
	st2 := newSioState(1)
	st2.acked(0, 100, 1)
	tb := &browser{rooms: []int32{0}}
	st2.unconfirmed(pending{kind: cSend, t: &tab{b: tb, gid: 7}, mseq: 9, issued: 200})
	st2.resolve(0, dmKey{sender: 7, seq: 9}, 2)
	var v verifier
	st2.closed(track(250), 2)
	st2.count(&v)
	if got := v.delivery(); got != (reports.Delivery{}) {
		t.Errorf("unconfirmed send before the join: %+v", got)
	}
	// Drain: a track that got nothing waits only for sends after its join.
	if !st.caughtUp(track(600), 5) || st.caughtUp(track(250), 5) || st.caughtUp(track(250, 3), 5) || !st.caughtUp(track(250, 4, 5), 5) {
		t.Error("caughtUp")
	}
}
