package server

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"imload/mux"
)

func TestAttachSessionsOnOneAndManySockets(t *testing.T) {
	ts := startServer(t, testConfig())
	a := dial(t, ts, nil)
	for sid := uint32(1); sid <= 3; sid++ {
		r := a.attach(sid, "alice")
		if r.SID != sid || r.User != "alice" || r.Color == "" || r.Token == "" {
			t.Fatalf("attach reply %+v", r)
		}
	}
	b := dial(t, ts, nil)
	b.attach(1, "bob")
	b.attach(2, "bob")
	st := ts.srv.Stats()
	if st.PhysicalConnections != 2 || st.LogicalSessions != 5 || st.Users != 2 || st.PhysicalByMode[mux.ModeLoadgen] != 2 {
		t.Fatalf("stats %+v", st)
	}
	b.ok(2, mux.CmdDetach, nil, nil)
	if st := ts.srv.Stats(); st.LogicalSessions != 4 {
		t.Fatalf("after detach: %d sessions", st.LogicalSessions)
	}
	a.ws.Close()
	eventually(t, 2e9, "alice's sessions to go", func() bool { return ts.srv.Stats().LogicalSessions == 1 && ts.srv.Stats().Users == 1 })
}

// Every member session gets every room message exactly once and in offset
// order, whichever connection it is on.
func TestRoomDeliveryExactlyOnceInOrder(t *testing.T) {
	ts := startServer(t, testConfig())
	const conns, tabs, perSender = 4, 3, 30
	var cs []*client
	for i := range conns {
		c := dial(t, ts, nil)
		for sid := uint32(1); sid <= tabs; sid++ {
			c.attach(sid, fmt.Sprintf("u%d", i))
			c.join(sid, "lobby")
		}
		cs = append(cs, c)
	}
	// Pipeline all sends at once from every connection.
	for i, c := range cs {
		var msg []byte
		for k := range perSender {
			c.seq++
			msg = mux.AppendCmd(msg, 1, c.seq, mux.CmdSend, mux.EncodeBody(mux.SendReq{Room: "lobby", Text: fmt.Sprintf("m%d-%d", i, k)}))
			msg = append(msg, '\n')
		}
		c.sendRaw(string(msg))
	}
	total := conns * perSender
	for i, c := range cs {
		next := map[uint32]uint64{1: 1, 2: 1, 3: 1}
		for got := 0; got < total; {
			var m mux.Message
			f := c.push(mux.EvMsg, &m)
			if len(f.SIDs) != tabs {
				t.Fatalf("conn %d: push for sids %v, want all %d tabs in one frame", i, f.SIDs, tabs)
			}
			for _, sid := range f.SIDs {
				if m.Offset != next[sid] {
					t.Fatalf("conn %d sid %d: offset %d, want %d", i, sid, m.Offset, next[sid])
				}
				next[sid]++
			}
			got++
		}
	}
	st := ts.srv.Stats()
	if st.MessagesIn != int64(total) || st.MessagesOut != int64(total*conns*tabs) {
		t.Fatalf("messages in/out %d/%d, want %d/%d", st.MessagesIn, st.MessagesOut, total, total*conns*tabs)
	}
}

// A message for three tabs of one connection crosses the socket once.
func TestOneFrameForThreeTabs(t *testing.T) {
	ts := startServer(t, testConfig())
	tabs := dial(t, ts, nil)
	for sid := uint32(1); sid <= 3; sid++ {
		tabs.attach(sid, "alice")
		tabs.join(sid, "r")
	}
	sender := dial(t, ts, nil)
	sender.attach(1, "bob")
	sender.join(1, "r")
	tabs.push(mux.EvJoin, nil) // bob joined
	_, before := tabs.counts()
	before += len(tabs.buf)
	sender.send(1, "r", "hello tabs")
	var m mux.Message
	f := tabs.push(mux.EvMsg, &m)
	if fmt.Sprint(f.SIDs) != "[1 2 3]" || m.Text != "hello tabs" || m.From != "bob" {
		t.Fatalf("push %+v body %+v", f, m)
	}
	eventually(t, 2e9, "frame count", func() bool { _, n := tabs.counts(); return n >= before+1 })
	if _, n := tabs.counts(); n != before+1 {
		t.Fatalf("%d frames arrived for one message, want 1", n-before)
	}
	if st := ts.srv.Stats(); st.MessagesOut != 4 { // three tabs + bob
		t.Fatalf("messages_out %d, want 4", st.MessagesOut)
	}
}

func TestPrivateMessages(t *testing.T) {
	cfg := testConfig()
	ts := startServer(t, cfg)
	alice := dial(t, ts, nil)
	tok := alice.attach(1, "alice").Token
	alice.attach(2, "alice") // alice's second tab, same socket
	alice2 := dial(t, ts, nil)
	alice2.fails(1, mux.CmdAttach, mux.AttachReq{Name: "alice"}, mux.CodeNameTaken, mux.ErrNameTaken)
	alice2.ok(1, mux.CmdAttach, mux.AttachReq{Name: "alice", Token: tok}, nil) // same browser, other socket
	bob := dial(t, ts, nil)
	bob.attach(1, "bob")
	bob.attach(2, "bob")
	carol := dial(t, ts, nil)
	carol.attach(1, "carol")

	var r mux.DMResp
	bob.ok(1, mux.CmdDM, mux.DMReq{To: "alice", Text: "psst"}, &r)
	if r.Sessions != 4 { // alice ×3 + bob's other tab
		t.Fatalf("dm went to %d sessions, want 4", r.Sessions)
	}
	var d mux.DM
	f := alice.push(mux.EvDM, &d)
	if fmt.Sprint(f.SIDs) != "[1 2]" || d.From != "bob" || d.To != "alice" || d.Text != "psst" {
		t.Fatalf("alice got %+v %+v", f, d)
	}
	if f := alice2.push(mux.EvDM, nil); fmt.Sprint(f.SIDs) != "[1]" {
		t.Fatalf("alice2 got %+v", f)
	}
	if f := bob.push(mux.EvDM, nil); fmt.Sprint(f.SIDs) != "[2]" {
		t.Fatalf("bob's other tab got %+v", f)
	}
	carol.fails(1, mux.CmdDM, mux.DMReq{To: "dave", Text: "x"}, mux.CodeUserOffline, mux.ErrUserOffline)
	for _, f := range carol.buf {
		if f.T == mux.TypePush && f.Ev == mux.EvDM {
			t.Fatalf("carol received someone else's dm: %+v", f)
		}
	}
	if st := ts.srv.Stats(); st.DMsIn != 1 || st.DMsOut != 4 {
		t.Fatalf("dm stats %d/%d", st.DMsIn, st.DMsOut)
	}
}

func TestPresenceAndWho(t *testing.T) {
	ts := startServer(t, testConfig())
	a := dial(t, ts, nil)
	a.attach(1, "alice")
	a.join(1, "r")
	b := dial(t, ts, nil)
	b.attach(1, "bob")
	b.attach(2, "bob")
	b.join(1, "r")
	var p mux.Presence
	a.push(mux.EvJoin, &p)
	if p.User != "bob" || p.Room != "r" || p.Color == "" {
		t.Fatalf("presence %+v", p)
	}
	b.join(2, "r") // bob's second tab: no second join notice
	anon := dial(t, ts, nil)
	anon.ok(1, mux.CmdAttach, mux.AttachReq{Mode: mux.ModeDirect}, nil)
	anon.join(1, "r")
	anon.fails(1, mux.CmdSend, mux.SendReq{Room: "r", Text: "x"}, mux.CodeNameRequired, mux.ErrNameRequired)
	var w mux.WhoResp
	a.ok(1, mux.CmdWho, mux.WhoReq{Room: "r"}, &w)
	if len(w.Users) != 2 || w.Users[0].Name != "alice" || w.Users[1].Name != "bob" || w.Anonymous != 1 {
		t.Fatalf("who %+v", w)
	}
	anon.ok(1, mux.CmdNick, mux.NickReq{Name: "carol"}, nil)
	p = mux.Presence{}
	f := a.push(mux.EvJoin, &p)
	if p.User != "carol" || p.Room != "r" || strings.Count(string(f.Body), `"room"`) != 1 {
		t.Fatalf("nick presence %+v", p)
	}
	b.ok(1, mux.CmdLeave, mux.LeaveReq{Room: "r"}, nil)
	b.ok(2, mux.CmdLeave, mux.LeaveReq{Room: "r"}, nil)
	a.push(mux.EvLeave, &p)
	if p.User != "bob" {
		t.Fatalf("leave presence %+v", p)
	}
	for _, f := range a.buf {
		if f.Ev == mux.EvJoin {
			t.Fatalf("extra join notice %+v", f)
		}
	}
}

func TestHistoryAndResume(t *testing.T) {
	cfg := testConfig()
	cfg.HistoryMax = 20
	ts := startServer(t, cfg)
	a := dial(t, ts, nil)
	a.attach(1, "alice")
	j := a.join(1, "r")
	if j.Top != 0 || j.Epoch == "" {
		t.Fatalf("join %+v", j)
	}
	for i := 1; i <= 30; i++ {
		a.send(1, "r", fmt.Sprint("m", i))
	}
	var h mux.HistoryResp
	a.ok(1, mux.CmdHistory, mux.HistoryReq{Room: "r", Limit: 5}, &h)
	if len(h.Messages) != 5 || h.Messages[0].Offset != 26 || h.Top != 30 || h.First != 11 || !h.More {
		t.Fatalf("last 5: %+v", h)
	}
	a.ok(1, mux.CmdHistory, mux.HistoryReq{Room: "r", Epoch: j.Epoch, After: 24, Limit: 3}, &h)
	if len(h.Messages) != 3 || h.Messages[0].Offset != 25 || !h.More || h.Reset {
		t.Fatalf("after 24: %+v", h)
	}
	h = mux.HistoryResp{}
	a.ok(1, mux.CmdHistory, mux.HistoryReq{Room: "r", Epoch: j.Epoch, After: 5}, &h)
	if !h.Reset || len(h.Messages) != 20 || h.Messages[0].Offset != 11 {
		t.Fatalf("after 5 (gone): reset=%v n=%d", h.Reset, len(h.Messages))
	}
	a.ok(1, mux.CmdHistory, mux.HistoryReq{Room: "r", Epoch: "other", After: 29}, &h)
	if !h.Reset {
		t.Fatal("wrong epoch not reset")
	}
	h = mux.HistoryResp{}
	a.ok(1, mux.CmdHistory, mux.HistoryReq{Room: "r", Before: 14, Limit: 10}, &h)
	if len(h.Messages) != 3 || h.Messages[0].Offset != 11 || h.More {
		t.Fatalf("before 14: %+v", h)
	}
	a.fails(1, mux.CmdHistory, mux.HistoryReq{Room: "nope"}, mux.CodeUnknownRoom, mux.ErrUnknownRoom)

	// A reconnecting tab resumes exactly after its last offset.
	b := dial(t, ts, nil)
	b.attach(1, "bob")
	var jr mux.JoinResp
	b.ok(1, mux.CmdJoin, mux.JoinReq{Room: "r", Epoch: j.Epoch, Offset: 27}, &jr)
	if jr.Reset || len(jr.Messages) != 3 || jr.Messages[0].Offset != 28 || jr.Messages[2].Text != "m30" {
		t.Fatalf("resume from 27: %+v", jr)
	}
	jr = mux.JoinResp{}
	b.ok(1, mux.CmdJoin, mux.JoinReq{Room: "r", Epoch: j.Epoch, Offset: 3, History: 2}, &jr)
	if !jr.Reset || len(jr.Messages) != 2 || jr.Messages[1].Offset != 30 {
		t.Fatalf("resume from a dropped offset: %+v", jr)
	}
	// A send retried with the same cid is published once.
	var s1, s2 mux.SendResp
	a.ok(1, mux.CmdSend, mux.SendReq{Room: "r", Text: "once", CID: "c-1"}, &s1)
	a.ok(1, mux.CmdSend, mux.SendReq{Room: "r", Text: "once", CID: "c-1"}, &s2)
	if s1.Offset != 31 || s2.Offset != 31 || !s2.Dup || s1.Dup {
		t.Fatalf("cid dedupe: %+v %+v", s1, s2)
	}
	raw, _ := json.Marshal(s2)
	t.Logf("dup reply %s", raw)
}

// A history reply for the latest messages carries the newest that fit in a
// quarter of the queue limit and says older ones remain; what it carries is
// what the pushes carried.
func TestHistoryReplyFitsQueue(t *testing.T) {
	cfg := testConfig()
	cfg.MaxQueueBytes = cfg.Limits.MaxMessageBytes // 64 KiB: replies of at most 16 KiB
	ts := startServer(t, cfg)
	a := dial(t, ts, nil)
	a.attach(1, "alice")
	a.join(1, "r")
	var pushed []mux.Message
	for i := 1; i <= 12; i++ {
		a.send(1, "r", fmt.Sprintf("m%d <&> %s", i, strings.Repeat("x", 3000)))
		var m mux.Message
		a.push(mux.EvMsg, &m)
		pushed = append(pushed, m)
	}
	var h mux.HistoryResp
	a.ok(1, mux.CmdHistory, mux.HistoryReq{Room: "r", Limit: 12}, &h)
	if len(h.Messages) != 5 || !h.More || h.Top != 12 || h.Messages[4].Offset != 12 {
		t.Fatalf("history of 12 × 3 KB in 16 KiB: %d messages, more=%v, top=%d", len(h.Messages), h.More, h.Top)
	}
	for i, m := range h.Messages {
		if m != pushed[7+i] {
			t.Fatalf("history message %d: %+v, pushed %+v", i, m, pushed[7+i])
		}
	}
}
