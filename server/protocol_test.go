package server

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"imload/mux"
)

// The bounds docs/protocol.md §5 states for error messages. Written out
// here (not mux's constants) so that the test checks the documented numbers.
const (
	docMaxErrorMsg = 256 // bytes of "msg"
	docMaxEcho     = 32  // bytes of one client value quoted in "msg"
)

// Finding 10 (first half): an error frame quotes a short prefix of what
// the client sent, never all of it (a 60 KB unknown type made a 60 KB
// error frame).
func TestErrorFrameEchoesAShortPrefix(t *testing.T) {
	ts := startServer(t, testConfig())
	c := dial(t, ts, nil)
	huge := strings.Repeat("é", 30<<10) // 60 KB of two-byte runes
	c.sendRaw(`{"t":"` + huge + `","seq":3}`)
	f := c.next(func(f mux.Frame) bool { return f.T == mux.TypeError })
	if f.Err != mux.ErrUnknownType || f.Seq != 3 || f.Code != mux.CodeBadRequest {
		t.Fatalf("error frame %d %s seq %d, want 400 unknown_type seq 3", f.Code, f.Err, f.Seq)
	}
	if len(f.Msg) > docMaxErrorMsg {
		t.Fatalf("msg of %d bytes for a 60 KB type, want at most %d", len(f.Msg), docMaxErrorMsg)
	}
	quoted := strings.Repeat("é", docMaxEcho/2-2) + "…" // 32 bytes: 14 runes, the mark
	if !strings.Contains(f.Msg, `"`+quoted+`"`) {
		t.Fatalf("msg %q does not quote the type's first %d bytes cut at a rune and marked", f.Msg, docMaxEcho)
	}
	// The same for values inside a command (here a room name and a mode).
	c.attach(1, "alice")
	r := c.cmd(1, mux.CmdJoin, map[string]any{"room": strings.Repeat("x y", 10<<10)})
	if r.Code != mux.CodeBadRequest || len(r.Msg) > docMaxErrorMsg || !strings.Contains(r.Msg, "…") {
		t.Fatalf("join of a 30 KB bad room: %d %s %q", r.Code, r.Err, r.Msg)
	}
	r = c.cmd(2, mux.CmdAttach, map[string]any{"mode": strings.Repeat("m", 10<<10)})
	if r.Code != mux.CodeBadRequest || len(r.Msg) > docMaxErrorMsg {
		t.Fatalf("attach with a 10 KB mode: %d %s %q", r.Code, r.Err, r.Msg)
	}
	// A body that does not decode: the decoder's message may quote a
	// number literal of any length.
	r = c.cmd(1, mux.CmdHistory, json.RawMessage(`{"room":"r","limit":1`+strings.Repeat("0", 20<<10)+`}`))
	if r.Code != mux.CodeBadRequest || len(r.Msg) > docMaxErrorMsg || strings.Contains(r.Msg, strings.Repeat("0", docMaxEcho)) {
		t.Fatalf("history with a 20 KB number: %d %s %q", r.Code, r.Err, r.Msg)
	}
}

// Finding 13: a cmd frame whose sid and seq can be read but that is
// otherwise invalid gets a reply (so the client's pending command
// resolves), not an error frame; an error frame answers only frames
// without a readable sid and seq.
func TestInvalidCmdGetsAReply(t *testing.T) {
	ts := startServer(t, testConfig())
	c := dial(t, ts, nil)
	c.attach(1, "alice")
	reply := func(seq uint64) mux.Frame {
		t.Helper()
		return c.next(func(f mux.Frame) bool {
			if f.T == mux.TypeError {
				t.Fatalf("error frame %s %q where a reply to seq %d was due", f.Err, f.Msg, seq)
			}
			return f.T == mux.TypeReply && f.SID == 1 && f.Seq == seq
		})
	}
	for i, frame := range []string{
		`{"t":"cmd","sid":1,"seq":101}`,                                                       // no cmd
		`{"t":"cmd","sid":1,"seq":102,"cmd":"` + strings.Repeat("x", 5000) + `"}`,             // cmd too long
		`{"t":"cmd","sid":1,"seq":103,"cmd":7}`,                                               // cmd of the wrong type
		`{"t":"cmd","sid":1,"seq":104,"cmd":"send","code":"x","body":{"room":"r"}}`,           // a field of the wrong type
		"{\"t\":\"cmd\",\"sid\":1,\"seq\":105,\"cmd\":\"send\",\"body\":{\"text\":\"\xff\"}}", // not UTF-8
	} {
		c.sendRaw(frame)
		f := reply(uint64(101 + i))
		if f.Code != mux.CodeBadRequest || f.Err != mux.ErrMalformed || len(f.Msg) > docMaxErrorMsg {
			t.Fatalf("frame %d: reply %d %s %q, want 400 malformed", i, f.Code, f.Err, f.Msg)
		}
	}
	// A session that is not attached gets its reply too.
	c.sendRaw(`{"t":"cmd","sid":9,"seq":5}`)
	if f := c.next(func(f mux.Frame) bool { return f.T == mux.TypeReply && f.SID == 9 }); f.Seq != 5 || f.Err != mux.ErrMalformed {
		t.Fatalf("sid 9: %+v", f)
	}
	// Without a readable sid or seq only an error frame can answer.
	for _, tc := range []struct {
		frame string
		seq   uint64
	}{
		{`{"t":"cmd","seq":7,"cmd":"send"}`, 7},          // no sid
		{`{"t":"cmd","sid":-1,"seq":8,"cmd":"send"}`, 8}, // sid of the wrong type
		{`{"t":"cmd","sid":1,"cmd":"send"}`, 0},          // no seq
		{`{"t":"cmd","sid":1,`, 0},                       // not JSON
	} {
		c.sendRaw(tc.frame)
		f := c.next(func(f mux.Frame) bool { return f.T == mux.TypeError || f.T == mux.TypeReply })
		if f.T != mux.TypeError || f.Err != mux.ErrMalformed || f.Seq != tc.seq {
			t.Fatalf("%s: got %s %s seq %d, want an error frame malformed with seq %d", tc.frame, f.T, f.Err, f.Seq, tc.seq)
		}
	}
	if st := ts.srv.Stats(); st.PhysicalConnections != 1 {
		t.Fatalf("connection count %d after bad frames", st.PhysicalConnections)
	}
	c.ok(1, mux.CmdJoin, mux.JoinReq{Room: "r"}, nil) // still usable
}

// Finding 13: hello carries every limit a client must respect that a
// server may set (the others are constants of the protocol).
func TestHelloCarriesEveryLimit(t *testing.T) {
	cfg := testConfig()
	cfg.Limits.MaxRoomsPerSession = 7
	cfg.Limits.MaxHistory = 33
	cfg.HistoryMax = 444
	cfg.HistoryAge = 90 * time.Minute
	cfg.MaxConnsPerUser = 5
	ts := startServer(t, cfg)
	h := rawHello(t, ts)
	l := cfg.Limits
	want := map[string]float64{
		"max_msg": float64(l.MaxMessageBytes), "max_frames": float64(l.MaxFramesPerMsg),
		"max_text": float64(l.MaxTextBytes), "max_sessions": float64(l.MaxSessions),
		"max_rooms": 7, "max_history": 33, "history_max": 444,
		"history_age_ms": float64((90 * time.Minute).Milliseconds()), "max_conns_per_user": 5,
		"rate": cfg.RateLimit, "burst": float64(cfg.RateBurst),
		"hb_ms": float64(cfg.HeartbeatInterval.Milliseconds()), "hb_timeout_ms": float64(cfg.HeartbeatTimeout.Milliseconds()),
	}
	for k, v := range want {
		if got, ok := h[k].(float64); !ok || got != v {
			t.Errorf("hello %s = %v, want %v", k, h[k], v)
		}
	}
	// The rooms-per-session limit it announces is the one enforced.
	c := dial(t, ts, nil)
	c.attach(1, "alice")
	for i := range 7 {
		c.join(1, "r"+string(rune('a'+i)))
	}
	c.fails(1, mux.CmdJoin, mux.JoinReq{Room: "r-too-many"}, mux.CodeBadRequest, mux.ErrBadRequest)
}

// rawHello opens a connection and returns the body of its hello frame as
// sent, every key of it.
func rawHello(t *testing.T, ts *testServer) map[string]any {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial(ts.url(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, msg, err := ws.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		T    string         `json:"t"`
		Body map[string]any `json:"body"`
	}
	if err := json.Unmarshal(msg, &f); err != nil || f.T != mux.TypeHello {
		t.Fatalf("first frame %s (%v), want hello", msg, err)
	}
	return f.Body
}

// Finding 13: a DM is pushed to every session of the target user and to
// the sender's user's other sessions, never to the session that sent it
// (its reply is its copy), and to no one else: to another user, to
// oneself, with several tabs on one and on two connections.
func TestDMReachesExactlyTheDocumentedSessions(t *testing.T) {
	ts := startServer(t, testConfig())
	a := dial(t, ts, nil) // alice's browser: tabs 1 and 2
	tok := a.attach(1, "alice").Token
	a.attach(2, "alice")
	b := dial(t, ts, nil) // alice elsewhere (per-tab mode): tab 1
	b.ok(1, mux.CmdAttach, mux.AttachReq{Name: "alice", Token: tok, Mode: mux.ModeLoadgen}, nil)
	c := dial(t, ts, nil) // bob: tabs 1 and 2
	c.attach(1, "bob")
	c.attach(2, "bob")
	d := dial(t, ts, nil) // carol: never a recipient
	d.attach(1, "carol")

	// pushed returns the sids of c's dm pushes with text, after a ping
	// round trip that every earlier push precedes; with want, it pings
	// again (for up to 2s) until that many came: with the Redis engine a
	// dm reaches the sessions through Redis's channels, possibly after the
	// sender's reply (and so after the ping).
	pushed := func(cl *client, text string, want int) []uint32 {
		t.Helper()
		var sids []uint32
		deadline := time.Now().Add(2 * time.Second)
		for {
			cl.seq++
			seq := cl.seq
			cl.sendRaw(string(mux.AppendPing(nil, seq)))
			cl.next(func(f mux.Frame) bool { return f.T == mux.TypePong && f.Seq == seq })
			keep := cl.buf[:0]
			for _, f := range cl.buf {
				var m mux.DM
				if f.T == mux.TypePush && f.Ev == mux.EvDM && json.Unmarshal(f.Body, &m) == nil && m.Text == text {
					sids = append(sids, f.SIDs...)
					continue
				}
				keep = append(keep, f)
			}
			cl.buf = keep
			if len(sids) >= want || time.Now().After(deadline) {
				return sids
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	same := func(what string, cl *client, text string, want ...uint32) {
		t.Helper()
		got := pushed(cl, text, len(want))
		if len(got) != len(want) {
			t.Fatalf("%s: pushed to sids %v, want %v", what, got, want)
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("%s: pushed to sids %v, want %v", what, got, want)
			}
		}
	}
	var r mux.DMResp
	a.ok(1, mux.CmdDM, mux.DMReq{To: "bob", Text: "to bob"}, &r)
	if r.Sessions != 4 {
		t.Fatalf("dm to bob: sessions %d, want 4 (bob's 2, alice's 2 other tabs)", r.Sessions)
	}
	same("to bob, sending connection", a, "to bob", 2)
	same("to bob, alice's other connection", b, "to bob", 1)
	same("to bob, bob", c, "to bob", 1, 2)
	same("to bob, carol", d, "to bob")

	a.ok(1, mux.CmdDM, mux.DMReq{To: "alice", Text: "to me"}, &r)
	if r.Sessions != 2 {
		t.Fatalf("dm to oneself: sessions %d, want 2 (alice's other tabs)", r.Sessions)
	}
	same("to me, sending connection", a, "to me", 2)
	same("to me, alice's other connection", b, "to me", 1)
	same("to me, bob", c, "to me")

	// A user with one session DMs itself: no push, reply sessions 0.
	d.ok(1, mux.CmdDM, mux.DMReq{To: "carol", Text: "alone"}, &r)
	if r.Sessions != 0 {
		t.Fatalf("dm to oneself with one tab: sessions %d, want 0", r.Sessions)
	}
	same("alone", d, "alone")
}

// Finding 13: behaviour the protocol doc now states. join without
// history sends no messages; history after without epoch is a reset;
// ts is Unix milliseconds.
func TestDocumentedDefaults(t *testing.T) {
	ts := startServer(t, testConfig())
	c := dial(t, ts, nil)
	c.attach(1, "alice")
	c.join(1, "r")
	before := time.Now().UnixMilli()
	s := c.send(1, "r", "one")
	after := time.Now().UnixMilli()
	if s.TS < before || s.TS > after {
		t.Fatalf("send ts %d not in Unix ms [%d, %d]", s.TS, before, after)
	}
	c.send(1, "r", "two")
	c2 := dial(t, ts, nil)
	c2.attach(1, "bob")
	if j := c2.join(1, "r"); len(j.Messages) != 0 || j.Top != 2 {
		t.Fatalf("join without history: %d messages (top %d), want none", len(j.Messages), j.Top)
	}
	var h mux.HistoryResp
	c2.ok(1, mux.CmdHistory, mux.HistoryReq{Room: "r", After: 1}, &h)
	if !h.Reset || len(h.Messages) != 2 {
		t.Fatalf("history after without epoch: reset %v, %d messages; want a reset with the latest", h.Reset, len(h.Messages))
	}
	h = mux.HistoryResp{}
	c2.ok(1, mux.CmdHistory, mux.HistoryReq{Room: "r", Epoch: s.Epoch, After: 1}, &h)
	if h.Reset || len(h.Messages) != 1 || h.Messages[0].Offset != 2 {
		t.Fatalf("history after with epoch: %+v", h)
	}
}
