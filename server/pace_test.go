package server

import (
	"fmt"
	"testing"
	"time"

	"imload/mux"
)

// Write pacing: a quiet connection is written at once; a busy one gets a
// burst, then its frames merged into one write per pace, nothing lost and
// in order.
func TestWritePace(t *testing.T) {
	cfg := testConfig()
	cfg.WritePace, cfg.WriteBurst = 300*time.Millisecond, 2
	ts := startServer(t, cfg)
	recv := dial(t, ts, nil)
	recv.attach(1, "reader")
	recv.join(1, "r")
	sender := dial(t, ts, nil)
	sender.attach(1, "writer")
	sender.join(1, "r")
	recv.push(mux.EvJoin, nil)

	time.Sleep(2 * cfg.WritePace) // both connections are quiet now
	paced := ts.srv.counters.pacedWrites.Load()
	sender.send(1, "r", "quiet")
	var m mux.Message
	recv.push(mux.EvMsg, &m)
	if m.Text != "quiet" {
		t.Fatalf("got %q", m.Text)
	}
	if n := ts.srv.counters.pacedWrites.Load(); n != paced {
		t.Fatalf("a message to quiet connections was held back by the pace (%d paced writes)", n-paced)
	}

	msgs0, _ := recv.counts()
	const burst = 30
	for i := range burst {
		sender.seq++
		sender.sendRaw(string(mux.AppendCmd(nil, 1, sender.seq, mux.CmdSend, mux.EncodeBody(mux.SendReq{Room: "r", Text: fmt.Sprint(i)}))))
		time.Sleep(5 * time.Millisecond)
	}
	for i := range burst {
		recv.push(mux.EvMsg, &m)
		if m.Text != fmt.Sprint(i) {
			t.Fatalf("message %d: got %q (lost or reordered)", i, m.Text)
		}
	}
	msgs, _ := recv.counts()
	if got := msgs - msgs0; got > 6 {
		t.Fatalf("%d messages sent 5 ms apart reached a reader in %d writes, want at most 6 with a 300 ms pace", burst, got)
	}
	if ts.srv.counters.pacedWrites.Load() == paced {
		t.Fatal("no write was paced")
	}
	t.Logf("%d messages in %d writes", burst, msgs-msgs0)
}
