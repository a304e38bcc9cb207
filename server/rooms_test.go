package server

import (
	"fmt"
	"strings"
	"testing"

	"imload/mux"
)

// Rooms are bounded server-wide (--max-rooms) and per connection in how
// fast they are created (--room-create-rate): each with its own error, and
// joining a room that exists is never refused by either.
func TestRoomCreationBounded(t *testing.T) {
	cfg := testConfig()
	cfg.MaxRooms = 5
	cfg.RoomCreateRate, cfg.RoomCreateBurst = 1000, 1000
	ts := startServer(t, cfg)
	a := dial(t, ts, nil)
	a.attach(1, "alice")
	for i := range 5 {
		a.join(1, fmt.Sprint("r", i))
	}
	a.fails(1, mux.CmdJoin, mux.JoinReq{Room: "one-too-many"}, mux.CodeUnavailable, mux.ErrTooManyRooms)
	b := dial(t, ts, nil)
	b.attach(1, "bob")
	b.join(1, "r3") // exists: allowed
	if n := ts.srv.counters.roomsRefused.Load(); n != 1 {
		t.Fatalf("rooms_refused %d, want 1", n)
	}

	cfg = testConfig()
	cfg.RoomCreateRate, cfg.RoomCreateBurst = 0.001, 3
	ts = startServer(t, cfg)
	a = dial(t, ts, nil)
	a.attach(1, "alice")
	for i := range 3 {
		a.join(1, fmt.Sprint("r", i))
	}
	a.fails(1, mux.CmdJoin, mux.JoinReq{Room: "r3"}, mux.CodeRateLimited, mux.ErrRoomRateLimited)
	a.join(1, "r1") // exists: allowed
	b = dial(t, ts, nil)
	b.attach(1, "bob")
	b.join(1, "r3") // another connection has its own rate
}

// A window of the latest messages (join with history, history without
// after/before) carries the newest that fit, with more saying older ones
// remain; a resume carries the oldest, with more saying newer ones remain
// (finding 12: it used to return the oldest of the window).
func TestHistoryWindowsAreTheNewestThatFit(t *testing.T) {
	cfg := testConfig()
	cfg.MaxQueueBytes = 65536 // replies carry at most 16 KiB of messages
	ts := startServer(t, cfg)
	a := dial(t, ts, nil)
	a.attach(1, "alice")
	j := a.join(1, "r")
	pad := strings.Repeat("x", 1500)
	for i := 1; i <= 30; i++ {
		a.send(1, "r", fmt.Sprintf("m%d %s", i, pad))
	}
	offsets := func(ms []mux.Message) (lo, hi uint64) {
		if len(ms) == 0 {
			return 0, 0
		}
		for i := 1; i < len(ms); i++ {
			if ms[i].Offset != ms[i-1].Offset+1 {
				t.Fatalf("offsets not consecutive: %d then %d", ms[i-1].Offset, ms[i].Offset)
			}
		}
		return ms[0].Offset, ms[len(ms)-1].Offset
	}
	var h mux.HistoryResp
	a.ok(1, mux.CmdHistory, mux.HistoryReq{Room: "r", Limit: 20}, &h)
	lo, hi := offsets(h.Messages)
	if hi != 30 || lo <= 11 || !h.More {
		t.Fatalf("history limit 20: offsets %d..%d more=%v, want the newest (..30) and more", lo, hi, h.More)
	}
	b := dial(t, ts, nil)
	b.attach(1, "bob")
	var jr mux.JoinResp
	b.ok(1, mux.CmdJoin, mux.JoinReq{Room: "r", History: 20}, &jr)
	if lo2, hi2 := offsets(jr.Messages); hi2 != 30 || lo2 != lo || !jr.More {
		t.Fatalf("join history 20: offsets %d..%d more=%v, want %d..30 and more", lo2, hi2, jr.More, lo)
	}
	// before: the newest before the offset that fit, more: older remain.
	a.ok(1, mux.CmdHistory, mux.HistoryReq{Room: "r", Before: 25, Limit: 20}, &h)
	if lo3, hi3 := offsets(h.Messages); hi3 != 24 || !h.More || lo3 <= 5 {
		t.Fatalf("history before 25: offsets %d..%d more=%v", lo3, hi3, h.More)
	}
	// A resume goes on from its offset: the oldest first, more: newer remain.
	var rr mux.JoinResp
	b.ok(1, mux.CmdJoin, mux.JoinReq{Room: "r", Epoch: j.Epoch, Offset: 5}, &rr)
	if lo4, hi4 := offsets(rr.Messages); lo4 != 6 || hi4 >= 30 || !rr.More {
		t.Fatalf("resume from 5: offsets %d..%d more=%v", lo4, hi4, rr.More)
	}
	a.ok(1, mux.CmdHistory, mux.HistoryReq{Room: "r", Epoch: j.Epoch, After: 5, Limit: 500}, &h)
	if lo5, hi5 := offsets(h.Messages); lo5 != 6 || hi5 >= 30 || !h.More {
		t.Fatalf("history after 5: offsets %d..%d more=%v", lo5, hi5, h.More)
	}
}

// The replies that one message's commands cause are budgeted against the
// connection's queue before they are built: 128 history commands in one
// message get replies that shrink (down to none, with more) instead of
// overflowing the queue and closing the connection as a slow consumer
// (finding 10: they built ~32 MB and were closed with 4008).
func TestManyHistoryCommandsAreBudgeted(t *testing.T) {
	cfg := testConfig()
	cfg.RateLimit, cfg.RateBurst = 1e6, 1e6
	cfg.ConnRate, cfg.ConnBurst = 1e6, 1e6
	ts := startServer(t, cfg)
	a := dial(t, ts, nil)
	a.attach(1, "alice")
	a.join(1, "r")
	pad := strings.Repeat("y", 4000)
	var sends []byte
	for i := 1; i <= 500; i++ { // 10 a message, one reply waited for each
		sends = mux.AppendCmd(sends, 1, uint64(i), mux.CmdSend, mux.EncodeBody(mux.SendReq{Room: "r", Text: fmt.Sprintf("m%d %s", i, pad)}))
		sends = append(sends, '\n')
		if i%10 == 0 {
			a.sendRaw(string(sends))
			sends = sends[:0]
			a.next(replyTo(1, uint64(i)))
		}
	}
	var batch []byte
	for i := range 128 {
		if i > 0 {
			batch = append(batch, '\n')
		}
		batch = mux.AppendCmd(batch, 1, uint64(1000+i), mux.CmdHistory, mux.EncodeBody(mux.HistoryReq{Room: "r", Limit: 500}))
	}
	a.sendRaw(string(batch))
	total, empty := 0, 0
	for i := range 128 {
		f := a.next(replyTo(1, uint64(1000+i)))
		if f.Code != mux.CodeOK {
			t.Fatalf("history %d: %d %s", i, f.Code, f.Err)
		}
		total += len(f.Body)
		if !strings.Contains(string(f.Body), `"more":true`) {
			t.Fatalf("history %d of a room of 500 × 4 KB without more", i)
		}
		if strings.Contains(string(f.Body), `"messages":[]`) {
			empty++
		}
	}
	a.ok(1, mux.CmdWho, mux.WhoReq{Room: "r"}, nil) // still connected
	if n := ts.srv.counters.slowConsumers.Load(); n != 0 {
		t.Fatalf("%d slow consumers", n)
	}
	if total > 2*cfg.MaxQueueBytes || empty == 0 {
		t.Fatalf("128 replies: %d bytes in all, %d empty; want them bounded by the queue", total, empty)
	}
	t.Logf("128 history replies: %d bytes, %d without messages", total, empty)
}
