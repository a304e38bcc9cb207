package server

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"imload/mux"
)

// History, offsets and the epoch survive a restart with the SQLite store.
func TestHistorySurvivesRestart(t *testing.T) {
	skipOnRedis(t, "history kept in SQLite across a restart (with Redis it lives in Redis)")
	cfg := testConfig()
	cfg.Memory = false
	cfg.DataDir = t.TempDir()
	ts := startServer(t, cfg)
	addr := ts.addr
	c := dial(t, ts, nil)
	c.attach(1, "alice")
	j := c.join(1, "keep")
	for i := 1; i <= 11; i++ {
		c.send(1, "keep", fmt.Sprint("m", i))
	}
	c.ok(1, mux.CmdSend, mux.SendReq{Room: "keep", Text: "m12 <&>", CID: "c-12"}, nil)
	var before mux.HistoryResp
	c.ok(1, mux.CmdHistory, mux.HistoryReq{Room: "keep", Limit: 3}, &before)
	ts.stop()

	ts2 := startServerOn(t, cfg, addr)
	c2 := dial(t, ts2, nil)
	c2.attach(1, "alice")
	var h mux.HistoryResp
	c2.ok(1, mux.CmdHistory, mux.HistoryReq{Room: "keep", Epoch: j.Epoch, After: 9}, &h)
	if h.Reset || h.Epoch != j.Epoch || h.Top != 12 || len(h.Messages) != 3 || h.Messages[0].Text != "m10" {
		t.Fatalf("after restart: %+v", h)
	}
	for i, m := range h.Messages { // every field as it was, cid included
		if m != before.Messages[i] {
			t.Fatalf("message %d after restart %+v, before %+v", i, m, before.Messages[i])
		}
	}
	var jr mux.JoinResp
	c2.ok(1, mux.CmdJoin, mux.JoinReq{Room: "keep", Epoch: j.Epoch, Offset: 12}, &jr)
	if jr.Reset || len(jr.Messages) != 0 {
		t.Fatalf("resume at top: %+v", jr)
	}
	if s := c2.send(1, "keep", "after"); s.Offset != 13 || s.Epoch != j.Epoch {
		t.Fatalf("offsets continue: %+v", s)
	}
}

// With the memory store a restart loses history: the epoch changes and a
// resuming client is told to reset.
func TestMemoryRestartChangesEpoch(t *testing.T) {
	ts := startServer(t, testConfig())
	addr := ts.addr
	c := dial(t, ts, nil)
	c.attach(1, "a")
	j := c.join(1, "r")
	c.send(1, "r", "x")
	ts.stop()
	ts2 := startServerOn(t, testConfig(), addr)
	c2 := dial(t, ts2, nil)
	c2.attach(1, "a")
	var jr mux.JoinResp
	c2.ok(1, mux.CmdJoin, mux.JoinReq{Room: "r", Epoch: j.Epoch, Offset: 1}, &jr)
	if !jr.Reset || jr.Epoch == j.Epoch {
		t.Fatalf("memory restart: %+v (old epoch %s)", jr, j.Epoch)
	}
}

// Shutdown sends every connection a goaway with a jittered retry hint and
// closes with 1001; Serve returns within the timeout.
func TestGracefulShutdownSendsGoAway(t *testing.T) {
	cfg := testConfig()
	cfg.GoAwayRetryMin, cfg.GoAwayRetryMax = 100*time.Millisecond, 900*time.Millisecond
	ts := startServer(t, cfg)
	var cs []*client
	for i := range 5 {
		c := dial(t, ts, nil)
		c.attach(1, fmt.Sprint("u", i))
		cs = append(cs, c)
	}
	start := time.Now()
	ts.stop()
	if d := time.Since(start); d > cfg.ShutdownTimeout {
		t.Fatalf("shutdown took %v", d)
	}
	retries := map[int64]bool{}
	for _, c := range cs {
		f := c.next(func(f mux.Frame) bool { return f.T == mux.TypeGoAway })
		var g mux.GoAway
		if err := json.Unmarshal(f.Body, &g); err != nil {
			t.Fatal(err)
		}
		if g.Reason != mux.GoAwayShutdown || g.RetryMS < 100 || g.RetryMS > 900 {
			t.Fatalf("goaway %+v", g)
		}
		retries[g.RetryMS] = true
		if ce := c.waitClosed(2 * time.Second); ce == nil || ce.Code != websocket.CloseGoingAway {
			t.Fatalf("close %v, want 1001", ce)
		}
	}
	if len(retries) < 2 {
		t.Fatalf("retry hints not jittered: %v", retries)
	}
}
