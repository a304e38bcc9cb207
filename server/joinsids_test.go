package server

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	"imload/mux"
)

// resumeMessage builds one WebSocket message: attach of sids 1..tabs as name,
// then the joins (each a JoinReq for session sid).
func resumeMessage(c *client, name string, tabs int, joins []struct {
	sid uint32
	req mux.JoinReq
}) (joinSeqs []uint64, msg []byte) {
	for sid := uint32(1); sid <= uint32(tabs); sid++ {
		c.seq++
		msg = mux.AppendCmd(msg, sid, c.seq, mux.CmdAttach, mux.EncodeBody(mux.AttachReq{Name: name, Mode: mux.ModeLoadgen}))
		msg = append(msg, '\n')
	}
	for _, j := range joins {
		c.seq++
		joinSeqs = append(joinSeqs, c.seq)
		msg = mux.AppendCmd(msg, j.sid, c.seq, mux.CmdJoin, mux.EncodeBody(j.req))
		msg = append(msg, '\n')
	}
	return joinSeqs, msg
}

type sidJoin = struct {
	sid uint32
	req mux.JoinReq
}

// A browser's three tabs resume a room with one join naming the other two
// (sids): one reply, for all three, carries the missed messages once; every
// tab is a member and gets the pushes that follow; the catch-up costs about
// a third of three joins.
func TestJoinWithSIDsResumesSessionsOnce(t *testing.T) {
	ts := startServer(t, testConfig())
	bob := dial(t, ts, nil)
	bob.attach(1, "bob")
	start := bob.join(1, "lobby")
	const missed = 20
	for i := range missed {
		bob.send(1, "lobby", fmt.Sprintf("missed message %02d with some text to make it weigh", i))
	}

	// Today's way: three joins, three copies.
	old := dial(t, ts, nil)
	seqs, msg := resumeMessage(old, "alice", 3, []sidJoin{
		{1, mux.JoinReq{Room: "lobby", Epoch: start.Epoch, Offset: start.Top}},
		{2, mux.JoinReq{Room: "lobby", Epoch: start.Epoch, Offset: start.Top}},
		{3, mux.JoinReq{Room: "lobby", Epoch: start.Epoch, Offset: start.Top}},
	})
	old.sendRaw(string(msg))
	oldBytes := 0
	for i, seq := range seqs {
		sid := uint32(i + 1)
		f := old.next(func(f mux.Frame) bool { return f.T == mux.TypeReply && f.SID == sid && f.Seq == seq })
		var jr mux.JoinResp
		if f.Code != mux.CodeOK || json.Unmarshal(f.Body, &jr) != nil || len(jr.Messages) != missed || jr.SIDs != nil {
			t.Fatalf("plain join of sid %d: %d %s %s", sid, f.Code, f.Err, f.Body)
		}
		oldBytes += len(f.Body)
	}

	// One join for the three.
	c := dial(t, ts, nil)
	seqs, msg = resumeMessage(c, "carol", 3, []sidJoin{
		{1, mux.JoinReq{Room: "lobby", Epoch: start.Epoch, Offset: start.Top, SIDs: []uint32{2, 3}}},
	})
	c.sendRaw(string(msg))
	f := c.next(func(f mux.Frame) bool { return f.T == mux.TypeReply && f.SID == 1 && f.Seq == seqs[0] })
	var jr mux.JoinResp
	if f.Code != mux.CodeOK || json.Unmarshal(f.Body, &jr) != nil {
		t.Fatalf("join with sids: %d %s %s", f.Code, f.Err, f.Msg)
	}
	if !slices.Equal(jr.SIDs, []uint32{1, 2, 3}) || len(jr.Messages) != missed || jr.Reset || jr.More || jr.Members != 7 {
		t.Fatalf("join with sids: sids %v, %d messages, reset %v, more %v, members %d", jr.SIDs, len(jr.Messages), jr.Reset, jr.More, jr.Members)
	}
	for i, m := range jr.Messages {
		if m.Offset != start.Top+uint64(i)+1 {
			t.Fatalf("message %d has offset %d", i, m.Offset)
		}
	}
	if n := len(f.Body); n*5 > oldBytes*2 {
		t.Fatalf("the grouped catch-up is %d bytes, three joins %d: want about a third", n, oldBytes)
	}
	t.Logf("catch-up of %d messages for 3 tabs: %d bytes with sids, %d with three joins", missed, len(f.Body), oldBytes)

	// Every session is a member: a later message is one push for all three,
	// and each may send to the room.
	bob.send(1, "lobby", "after the resume")
	var m mux.Message
	p := c.push(mux.EvMsg, &m)
	if !slices.Equal(p.SIDs, []uint32{1, 2, 3}) || m.Offset != start.Top+missed+1 {
		t.Fatalf("push after the resume: sids %v offset %d", p.SIDs, m.Offset)
	}
	for sid := uint32(1); sid <= 3; sid++ {
		c.send(sid, "lobby", fmt.Sprintf("from tab %d", sid))
	}
	if st := ts.srv.Stats(); st.Joins != 1+3+1 || st.JoinSessions != 1+3+3 {
		t.Fatalf("joins %d for %d sessions, want 5 for 7", st.Joins, st.JoinSessions)
	}
}

// A join whose sids name a session that cannot join fails as a whole:
// nothing joins, and the reply says which session is wrong.
func TestJoinWithBadSIDsFailsWhole(t *testing.T) {
	cfg := testConfig()
	cfg.Limits.MaxRoomsPerSession = 2
	ts := startServer(t, cfg)
	c := dial(t, ts, nil)
	c.attach(1, "alice")
	c.attach(2, "alice")
	c.attach(3, "alice")
	for _, k := range []struct {
		sids []uint32
		code int
		name string
	}{
		{[]uint32{2, 9}, mux.CodeNotAttached, mux.ErrNotAttached}, // 9 is not attached
		{[]uint32{2, 1}, mux.CodeBadRequest, mux.ErrBadRequest},   // the command's own session
		{[]uint32{2, 2}, mux.CodeBadRequest, mux.ErrBadRequest},   // twice
		{[]uint32{0}, mux.CodeBadRequest, mux.ErrBadRequest},      // the connection
	} {
		c.fails(1, mux.CmdJoin, mux.JoinReq{Room: "lobby", SIDs: k.sids}, k.code, k.name)
	}
	// Session 3 is at its room limit: a join naming it fails for all.
	c.join(3, "a")
	c.join(3, "b")
	c.fails(1, mux.CmdJoin, mux.JoinReq{Room: "lobby", SIDs: []uint32{2, 3}}, mux.CodeBadRequest, mux.ErrBadRequest)
	for sid := uint32(1); sid <= 3; sid++ {
		if f := c.cmd(sid, mux.CmdSend, mux.SendReq{Room: "lobby", Text: "x"}); f.Code == mux.CodeOK {
			t.Fatalf("session %d joined by a join that failed", sid)
		}
	}
	// Too many sids for a connection.
	many := make([]uint32, cfg.Limits.MaxSessions)
	for i := range many {
		many[i] = uint32(i + 2)
	}
	c.fails(1, mux.CmdJoin, mux.JoinReq{Room: "lobby", SIDs: many}, mux.CodeBadRequest, mux.ErrBadRequest)
	// A fresh join with sids and history: the latest messages, once, for both.
	c.send(3, "a", "one")
	c.send(3, "a", "two")
	var jr mux.JoinResp
	c.ok(1, mux.CmdJoin, mux.JoinReq{Room: "a", History: 5, SIDs: []uint32{2}}, &jr)
	if !slices.Equal(jr.SIDs, []uint32{1, 2}) || len(jr.Messages) != 2 || jr.Members != 3 {
		t.Fatalf("fresh join with sids: %+v", jr)
	}
}
