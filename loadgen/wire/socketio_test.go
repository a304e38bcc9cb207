package wire

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestSocketIOURL(t *testing.T) {
	for in, want := range map[string]string{
		"ws://127.0.0.1:3000":                           "ws://127.0.0.1:3000/socket.io/?EIO=4&transport=websocket",
		"ws://127.0.0.1:3000/":                          "ws://127.0.0.1:3000/socket.io/?EIO=4&transport=websocket",
		"ws://h:1/socket.io/?EIO=4&transport=websocket": "ws://h:1/socket.io/?EIO=4&transport=websocket",
		"wss://h/chat/":                                 "wss://h/chat/?EIO=4&transport=websocket",
	} {
		if got, err := (sioWire{}).URL(in); err != nil || got != want {
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

// The greeting: the open packet, the namespace connect (a ping answered
// on the way), and what the link learnt.
func TestSocketIOGreet(t *testing.T) {
	w, _ := New("socketio", Config{})
	open := `0{"sid":"s1","upgrades":[],"pingInterval":300,"pingTimeout":200,"maxPayload":1000}`
	c := &fakeConn{in: []string{open, "2", `40{"sid":"n1"}`}}
	l, err := w.Greet(c)
	if err != nil || strings.Join(c.out, " ") != "40 3" {
		t.Fatalf("%v; wrote %q", err, c.out)
	}
	if l.Heartbeat != 300*time.Millisecond || l.DeadAfter != 500*time.Millisecond || l.MaxBytes != 1000 ||
		!l.AnswerPings || l.Attach <= 0 || l.MaxFrames != 0 {
		t.Fatalf("link %+v", l)
	}
	c = &fakeConn{in: []string{`0{"sid":"s1"}`, "40"}}
	if l, err := w.Greet(c); err != nil || l.Heartbeat != sioDefaultPing || l.DeadAfter != sioDefaultPing+sioDefaultTimeout {
		t.Fatalf("defaults: %+v %v", l, err)
	}
	for _, in := range [][]string{{open, `44{"message":"no"}`}, {open, "42[]"}, {`{"t":"hello"}`}, {open}} {
		if _, err := w.Greet(&fakeConn{in: in}); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
	if name, err := w.Probe(&fakeConn{in: []string{open}}); err != nil || name != "socket.io (Engine.IO 4, ping 300 ms / 200 ms)" {
		t.Errorf("probe: %q %v", name, err)
	}
}

func TestSocketIOAppend(t *testing.T) {
	w := sioWire{}
	ts := `"ts":\d{13}`
	for _, c := range []struct {
		cmd  Command
		want string // a regular expression
	}{
		{Command{Kind: Join, ID: 1, Room: "r1", User: "u1", History: 20}, `421\["join",\{"room":"r1","user":"u1"\}\]`},
		{Command{Kind: Send, ID: 2, Room: "r1", Text: []byte("a:1|.."), Cid: []byte("c1")}, `422\["message",\{"room":"r1","text":"a:1\|\.\.",` + ts + `\}\]`},
		{Command{Kind: DM, ID: 3, To: "u2", Text: []byte(`x"y`)}, `423\["dm",\{"to":"u2","text":"x\\"y"\}\]`},
		{Command{Kind: Pong}, `3`},
	} {
		got, ok := w.Append(nil, &c.cmd)
		if !ok || !regexp.MustCompile(`^`+c.want+`$`).Match(got) {
			t.Errorf("%s: %s %v, want %s", cmdNames[c.cmd.Kind], got, ok, c.want)
		}
	}
	for _, k := range []CmdKind{Attach, Detach, History, Ping} {
		if _, ok := w.Append(nil, &Command{Kind: k}); ok {
			t.Errorf("%s encoded", cmdNames[k])
		}
	}
}

func TestSocketIORead(t *testing.T) {
	r := sioWire{}.NewReader()
	pending := map[uint64]CmdKind{1: Join, 2: Send, 3: DM, 4: Send, 5: DM, 6: Join, 7: DM}
	for _, c := range []struct{ in, want string }{
		{"2", "ping"},
		{"3", ""},
		{"40", ""},
		{"1", "end"},
		{"41", "bad end"},
		{"", "bad"},
		{"7", "bad"},
		{`42["message",{"room":"r1","text":"a:1|\"..","ts":1,"from":"u1","seq":7}]`, `msg all r1@-/7 a:1|"..`},
		{`42["message",{"room":"r1","text":"a","ts":1,"from":"u1"}]`, "bad"},
		{`42["dm",{"from":"u1","to":"u2","text":"hi"}]`, "dm all from= text=hi"},
		{`42["typing",{"from":"u1"}]`, ""},
		{`42/admin,["message",{}]`, "unexpected"},
		{`431[{"ok":true,"members":3}]`, "reply 1 join 200 epoch= top=0"},
		{`432[{"ok":true,"seq":9}]`, "reply 2 send 200 epoch= offset=9"},
		{`433[{"ok":true,"sessions":2}]`, "reply 3 dm 200 sessions=2 counted=true"},
		{`434[{"ok":true}]`, "reply 4 send 400 not_ok"},
		{`435[{"ok":false,"error":"user_offline"}]`, "reply 5 dm 410 user_offline"},
		{`436[{"ok":false,"error":"room_full"}]`, "reply 6 join 400 room_full"},
		{`437[{"ok":false}]`, "reply 7 dm 400 not_ok"},
		{`4399[{"ok":true}]`, ""},
		{`43[{"ok":true}]`, "bad"},
	} {
		evs, n := read(r, c.in, pending)
		if got := strings.Join(evs, " "); got != c.want || n != 1 {
			t.Errorf("%q: %q (%d frames), want %q", c.in, got, n, c.want)
		}
	}
}
