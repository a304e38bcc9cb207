package wire

import (
	"strings"
	"testing"
	"time"

	"imload/mux"
)

func TestImloadGreet(t *testing.T) {
	w, _ := New("", Config{})
	c := &fakeConn{in: []string{`{"t":"hello","body":{"v":1,"server":"imload/x","hb_ms":15000,"hb_timeout_ms":45000,"max_msg":65536,"max_history":200}}`}}
	l, err := w.Greet(c)
	want := Link{Heartbeat: 15 * time.Second, DeadAfter: 45 * time.Second, MaxFrames: imloadDefaultFrames, MaxBytes: 65536, MaxHistory: 200}
	if err != nil || l != want || len(c.out) != 0 {
		t.Fatalf("link %+v %v, want %+v; wrote %q", l, err, want, c.out)
	}
	c = &fakeConn{in: []string{`{"t":"hello","body":{"v":1,"max_frames":16}}`}}
	if l, err := w.Greet(c); err != nil || l.MaxFrames != 16 || l.Heartbeat != 0 || l.DeadAfter != 0 {
		t.Fatalf("link %+v %v", l, err)
	}
	for _, bad := range []string{`{"t":"pong","seq":1}`, `not json`} {
		if _, err := w.Greet(&fakeConn{in: []string{bad}}); err == nil {
			t.Errorf("greeting %q accepted", bad)
		}
	}
}

func TestImloadProbe(t *testing.T) {
	w, _ := New("imload", Config{})
	name, err := w.Probe(&fakeConn{in: []string{`{"t":"hello","body":{"v":1,"server":"imload/dev"}}`}})
	if err != nil || name != "imload/dev" {
		t.Fatalf("%q %v", name, err)
	}
	if _, err := w.Probe(&fakeConn{in: []string{`{"t":"hello","body":{"v":9}}`}}); err == nil || !strings.Contains(err.Error(), "version 9") {
		t.Fatalf("other version: %v", err)
	}
	if _, err := w.Probe(&fakeConn{}); err == nil || !strings.Contains(err.Error(), "no hello") {
		t.Fatalf("nothing: %v", err)
	}
}

// Every command encodes as the server decodes it.
func TestImloadAppend(t *testing.T) {
	w := imloadWire{}
	text := []byte(`ab12:3:4:5|....`)
	for _, c := range []struct {
		cmd  Command
		want string
	}{
		{Command{Kind: Attach, ID: 1, Sid: 2, User: "u1", Token: "tk"},
			`{"t":"cmd","sid":2,"seq":1,"cmd":"attach","body":{"name":"u1","token":"tk","mode":"loadgen"}}`},
		{Command{Kind: Join, ID: 2, Sid: 2, Room: "r1", History: 20},
			`{"t":"cmd","sid":2,"seq":2,"cmd":"join","body":{"room":"r1","history":20}}`},
		{Command{Kind: Join, ID: 3, Sid: 1, Room: "r1", History: 20, Resume: true, Epoch: "ep", Offset: 41, Sids: []uint32{2, 3}},
			`{"t":"cmd","sid":1,"seq":3,"cmd":"join","body":{"room":"r1","epoch":"ep","offset":41,"sids":[2,3]}}`},
		{Command{Kind: Send, ID: 4, Sid: 1, Room: "r1", Text: text, Cid: []byte("c3-4")},
			`{"t":"cmd","sid":1,"seq":4,"cmd":"send","body":{"room":"r1","text":"ab12:3:4:5|....","cid":"c3-4"}}`},
		{Command{Kind: DM, ID: 5, Sid: 1, To: "u2", Text: []byte(`a"b<`), Cid: []byte("c3-5")},
			`{"t":"cmd","sid":1,"seq":5,"cmd":"dm","body":{"to":"u2","text":"a\"b\u003c","cid":"c3-5"}}`},
		{Command{Kind: Detach, ID: 6, Sid: 3}, `{"t":"cmd","sid":3,"seq":6,"cmd":"detach"}`},
		{Command{Kind: History, ID: 7, Sid: 1, Room: "r1", Epoch: "ep", After: 41, Limit: 500},
			`{"t":"cmd","sid":1,"seq":7,"cmd":"history","body":{"room":"r1","epoch":"ep","after":41,"limit":500}}`},
		{Command{Kind: Ping, ID: 8}, `{"t":"ping","seq":8}`},
		{Command{Kind: Attach, ID: 9, Sid: 4, User: "u1", JWT: "h.p.s"},
			`{"t":"cmd","sid":4,"seq":9,"cmd":"attach","body":{"name":"u1","mode":"loadgen","jwt":"h.p.s"}}`},
		{Command{Kind: Refresh, ID: 10, Sid: 4, JWT: "h.p.t"},
			`{"t":"cmd","sid":4,"seq":10,"cmd":"refresh","body":{"jwt":"h.p.t"}}`},
	} {
		got, ok := w.Append([]byte("x"), &c.cmd)
		if !ok || string(got) != "x"+c.want {
			t.Errorf("%s: %s %v, want %s", cmdNames[c.cmd.Kind], got, ok, c.want)
			continue
		}
		if c.cmd.Kind == Ping {
			continue
		}
		f, err := mux.DecodeFrame(got[1:])
		if err != nil || f.Invalid != nil || f.Seq != c.cmd.ID || f.SID != c.cmd.Sid {
			t.Errorf("%s: decoded %+v %v", cmdNames[c.cmd.Kind], f, err)
		}
	}
	if got, ok := w.Append(nil, &Command{Kind: Pong}); ok || got != nil {
		t.Errorf("pong encoded: %q", got)
	}
	// The hand-made head of a send is mux's.
	if a, b := appendCmdHead(nil, 7, 9, "send"), mux.AppendCmd(nil, 7, 9, "send", []byte("{}")); string(a)+"{}}" != string(b) {
		t.Errorf("%s vs %s", a, b)
	}
}

// A room-message push: the scanner's event and the decoder's are the
// same, escapes decoded either way.
func TestImloadReadMessages(t *testing.T) {
	r := imloadWire{}.NewReader()
	fast := `{"t":"push","sids":[1,3],"ev":"msg","body":{"room":"r1","offset":42,"epoch":"k3","from":"alice","color":"#e8590c","text":"abc:1:2:3|..\"x","ts":1764167400123,"cid":"a-1"}}`
	slow := `{"t":"push","sids":[1,3],"ev":"msg","body":{"room":"r1","offset":42,"epoch":"k3","from":"al\u0069ce","color":"#e8590c","text":"abc:1:2:3|..\"x","ts":1764167400123,"cid":"a-1"}}`
	display := strings.Replace(fast, `"color":"#e8590c",`, `"color":"#e8590c","display":"Alice \"A\" Smith, \u00fc",`, 1) // a verified user's
	want := []string{`msg [1 3] r1@k3/42 alice a-1 abc:1:2:3|.."x`}
	for _, m := range []string{fast, slow, display} {
		evs, n := read(r, m, nil)
		if d := same(evs, want); d != "" || n != 1 {
			t.Errorf("%d frames; %s", n, d)
		}
	}
	evs, n := read(r, fast+"\n"+`{"t":"push","sids":[2],"ev":"dm","body":{"id":1,"from":"bob","to":"alice","text":"hi"}}`+"\n"+
		`{"t":"push","sids":[1],"ev":"join","body":{"room":"r1","user":"bob"}}`+"\n"+
		`{"t":"push","ev":"msg","body":{"room":"r1","offset":43,"epoch":"k3","from":"bob","text":"t"}}`+"\r\n\n", nil)
	if d := same(evs, []string{want[0], "dm [2] from=bob text=hi", "bad"}); d != "" || n != 4 {
		t.Errorf("%d frames; %s", n, d)
	}
}

func TestImloadReadReplies(t *testing.T) {
	r := imloadWire{}.NewReader()
	pending := map[uint64]CmdKind{1: Attach, 2: Join, 3: Join, 4: Send, 5: DM, 6: History, 7: Send, 8: DM, 9: Refresh}
	msgs := []string{
		`{"t":"reply","sid":1,"seq":1,"code":200,"body":{"sid":1}}`,
		`{"t":"reply","sid":1,"seq":2,"code":200,"body":{"room":"r","epoch":"e","top":5,"messages":[{"room":"r","offset":5,"epoch":"e","from":"u","text":"t5","cid":"c"}]}}`,
		`{"t":"reply","sid":1,"seq":3,"code":200,"body":{"room":"r","epoch":"e","top":9,"sids":[1,2],"reset":true,"more":true}}`,
		`{"t":"reply","sid":1,"seq":4,"code":200,"body":{"room":"r","epoch":"e","offset":6}}`,
		`{"t":"reply","sid":1,"seq":5,"code":200,"body":{"id":1,"sessions":3}}`,
		`{"t":"reply","sid":1,"seq":6,"code":200,"body":{"room":"r","epoch":"e","top":9,"first":3,"more":true,"messages":[]}}`,
		`{"t":"reply","sid":1,"seq":7,"code":503,"error":"shutting_down","msg":"bye"}`,
		`{"t":"reply","sid":1,"seq":8,"code":200,"body":"nonsense"}`,
		`{"t":"reply","sid":1,"seq":99,"code":200}`,
		`{"t":"pong","seq":12}`,
		`{"t":"goaway","body":{"reason":"too_many_connections","retry_ms":1500}}`,
		`{"t":"goaway","body":{"reason":"shutdown"}}`,
		`{"t":"error","code":400,"error":"malformed","msg":"?"}`,
		`{"t":"hello","body":{"v":1}}`,
		`{"t":"push","sids":[2,3],"ev":"token_expiring","body":{"expires":1764167400123}}`,
		`{"t":"push","sids":[3],"ev":"detached","body":{"code":401,"error":"token_expired","msg":"x"}}`,
		`{"t":"reply","sid":2,"seq":9,"code":200,"body":{"expires":1764167400999}}`,
		`{"t":`,
	}
	evs, n := read(r, strings.Join(msgs, "\n"), pending)
	want := []string{
		"reply 1 attach 200",
		"reply 2 join 200 epoch=e top=5 [r@e/5 u c t5]",
		"reply 3 join 200 epoch=e top=9 reset more sids=[1 2]",
		"reply 4 send 200 epoch=e offset=6",
		"reply 5 dm 200 sessions=3 counted=true",
		"reply 6 history 200 epoch=e top=9 first=3 more",
		"reply 7 send 503 shutting_down",
		"reply 8 dm 200 malformed",
		"pong 12",
		"goaway 1.5s kicked=true",
		"goaway 0s kicked=false",
		"error",
		"token_expiring [2 3]",
		"detached [3] 401 token_expired",
		"reply 9 refresh 200",
		"bad",
	}
	if d := same(evs, want); d != "" || n != len(msgs) {
		t.Errorf("%d frames; %s", n, d)
	}
}

// The hot path, a message of room pushes, allocates nothing.
func TestImloadReadAllocs(t *testing.T) {
	r := imloadWire{}.NewReader()
	var msg []byte
	for i := range 16 {
		if i > 0 {
			msg = append(msg, '\n')
		}
		msg = append(msg, `{"t":"push","sids":[1,2,3],"ev":"msg","body":{"room":"lg1-0","offset":17,"epoch":"ep","from":"u1","color":"#e8590c","text":"abc123:5:17:1000|......","ts":1764167400123,"cid":"c5-17"}}`...)
	}
	kindOf := func(uint64) (CmdKind, bool) { return 0, false }
	seen := 0
	emit := func(ev *Event) {
		if ev.Kind == EvMessage && ev.Msg.Offset == 17 && len(ev.Sids) == 3 {
			seen++
		}
	}
	if n := testing.AllocsPerRun(100, func() { r.Read(msg, kindOf, emit) }); n != 0 {
		t.Fatalf("%.1f allocations per message", n)
	}
	if seen != 16*101 {
		t.Fatalf("%d pushes seen", seen)
	}
}

func TestParsePushMsg(t *testing.T) {
	fr := []byte(`{"t":"push","sids":[1,3],"ev":"msg","body":{"room":"r1","offset":42,"epoch":"k3j9x0","from":"alice","color":"#e8590c","text":"abc:1:2:3|..\"x","ts":1764167400123,"cid":"a-1"}}`)
	var p pushMsg
	if !parsePushMsg(fr, &p) {
		t.Fatal("not parsed")
	}
	if string(p.room) != "r1" || p.offset != 42 || string(p.epoch) != "k3j9x0" || len(p.sids) != 2 || p.sids[1] != 3 ||
		string(p.text) != `abc:1:2:3|..\"x` || string(p.from) != "alice" || string(p.cid) != "a-1" {
		t.Fatalf("%+v", p)
	}
	for _, bad := range []string{
		`{"t":"push","sids":[1],"ev":"dm","body":{"id":1}}`,
		`{"t":"reply","sid":1,"seq":2,"code":200}`,
		`{"t":"push","sids":[1],"ev":"msg","body":{"room":"r","offset":"x"}}`,
		`{"t":"push","sids":[1],"ev":"msg","body":`,
		`{"t":"push","sids":[1],"ev":"msg","body":{"room":"r","offset":3,"text":"no epoch"}}`,
		`{"t":"push","sids":[1],"ev":"msg","body":{"room":"r\u0031","offset":3,"epoch":"e"}}`,
	} {
		if parsePushMsg([]byte(bad), &p) {
			t.Errorf("parsed %s", bad)
		}
	}
	// A push after one with a cid has none.
	if !parsePushMsg([]byte(`{"t":"push","sids":[1],"ev":"msg","body":{"room":"r","offset":3,"epoch":"e","text":"t"}}`), &p) || p.cid != nil || p.from != nil {
		t.Fatalf("%+v", p)
	}
}
