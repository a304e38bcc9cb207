package wire

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestCentrifugoURL(t *testing.T) {
	for in, want := range map[string]string{
		"ws://127.0.0.1:8000":                       "ws://127.0.0.1:8000/connection/websocket",
		"ws://127.0.0.1:8000/":                      "ws://127.0.0.1:8000/connection/websocket",
		"ws://h:1/connection/websocket?format=json": "ws://h:1/connection/websocket?format=json",
		"wss://h/rt/ws":                             "wss://h/rt/ws",
	} {
		if got, err := (cfWire{}).URL(in); err != nil || got != want {
			t.Errorf("%s: %q %v, want %q", in, got, err, want)
		}
	}
}

const cfConnected = `{"id":1,"connect":{"client":"c1","version":"6.9.1 OSS","ping":25,"pong":true}}`

// The greeting: connect, a ping answered while waiting, what the link
// learnt.
func TestCentrifugoGreet(t *testing.T) {
	w, _ := New("centrifugo", Config{DMs: true})
	c := &fakeConn{in: []string{"{}", cfConnected}}
	l, err := w.Greet(c)
	if err != nil || strings.Join(c.out, " ") != cfConnectCmd+" {}" {
		t.Fatalf("%v; wrote %q", err, c.out)
	}
	if l.Heartbeat != 25*time.Second || l.DeadAfter != 25*time.Second+cfPingDelay || !l.AnswerPings || l.Attach <= 0 || l.MaxFrames != 0 {
		t.Fatalf("link %+v", l)
	}
	l, err = w.Greet(&fakeConn{in: []string{`{"id":1,"connect":{"client":"c1","version":"6"}}`}})
	if err != nil || l.AnswerPings || l.DeadAfter != cfNoPingDead {
		t.Fatalf("no pings: %+v %v", l, err)
	}
	for _, in := range [][]string{{`{"id":1,"error":{"code":101,"message":"unauthorized"}}`}, {`{"id":2,"connect":{}}`}, {`{"id":1}`}} {
		if _, err := w.Greet(&fakeConn{in: in}); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}

// The probe checks positioning, and the personal channels with DMs.
func TestCentrifugoProbe(t *testing.T) {
	positioned := `{"id":2,"subscribe":{"epoch":"e","offset":0,"positioned":true}}`
	c := &fakeConn{in: []string{cfConnected, positioned, `{"id":3,"subscribe":{}}`}}
	name, err := (cfWire{dms: true}).Probe(c)
	if err != nil || name != "Centrifugo 6.9.1 OSS (client protocol v2, JSON; ping 25 s, pong true)" || len(c.out) != 3 ||
		!strings.Contains(c.out[2], `"dm:imload-probe"`) {
		t.Fatalf("%q %v; wrote %q", name, err, c.out)
	}
	_, err = (cfWire{}).Probe(&fakeConn{in: []string{cfConnected, `{"id":2,"subscribe":{}}`}})
	if err == nil || !strings.Contains(err.Error(), "not positioned") {
		t.Fatalf("not positioned: %v", err)
	}
	_, err = (cfWire{dms: true}).Probe(&fakeConn{in: []string{cfConnected, positioned, `{"id":3,"error":{"code":103,"message":"permission denied"}}`}})
	if err == nil || !strings.Contains(err.Error(), "--dm-ratio 0") {
		t.Fatalf("no personal channels: %v", err)
	}
}

// Commands go out with the engine's number + 1 (0 and 1 are taken); the
// personal channel only with DMs.
func TestCentrifugoAppend(t *testing.T) {
	w := cfWire{dms: true}
	ts := `"ts":\d{13}`
	for _, c := range []struct {
		cmd  Command
		want string // a regular expression
	}{
		{Command{Kind: Attach, ID: 1, User: "u1"}, `\{"id":2,"subscribe":\{"channel":"dm:u1"\}\}`},
		{Command{Kind: Join, ID: 2, Room: "r1"}, `\{"id":3,"subscribe":\{"channel":"chat:r1","positioned":true\}\}`},
		{Command{Kind: Send, ID: 3, Room: "r1", Text: []byte("a:1|..")}, `\{"id":4,"publish":\{"channel":"chat:r1","data":\{"text":"a:1\|\.\.",` + ts + `\}\}\}`},
		{Command{Kind: DM, ID: 4, To: "u2", Text: []byte("hi")}, `\{"id":5,"publish":\{"channel":"dm:u2","data":\{"text":"hi",` + ts + `\}\}\}`},
		{Command{Kind: Pong}, `\{\}`},
	} {
		got, ok := w.Append(nil, &c.cmd)
		if !ok || !regexp.MustCompile(`^`+c.want+`$`).Match(got) {
			t.Errorf("%s: %s %v, want %s", cmdNames[c.cmd.Kind], got, ok, c.want)
		}
	}
	if _, ok := (cfWire{}).Append(nil, &Command{Kind: Attach, ID: 1, User: "u1"}); ok {
		t.Error("a personal channel without DMs")
	}
	for _, k := range []CmdKind{Detach, History, Ping} {
		if _, ok := w.Append(nil, &Command{Kind: k}); ok {
			t.Errorf("%s encoded", cmdNames[k])
		}
	}
	if cfID(1<<32-2) != 1<<32-1 || cfID(1<<32-1) != 2 {
		t.Errorf("ids wrap to %d, %d", cfID(1<<32-2), cfID(1<<32-1))
	}
}

// Replies, publications, pings and the end of a subscription, in
// Centrifugo's format, several per message.
func TestCentrifugoRead(t *testing.T) {
	r := cfWire{dms: true}.NewReader()
	pending := map[uint64]CmdKind{1: Attach, 2: Join, 3: Send, 4: DM, 5: Join, 6: Join, 7: Send}
	pub := func(channel, off string) string {
		return `{"push":{"channel":"` + channel + `","pub":{"data":{"text":"a:1|\"..","ts":1},"info":{"user":"","client":"c"},"offset":` + off + `}}}`
	}
	msg := strings.Join([]string{
		`{"id":2,"subscribe":{}}`,
		`{}`,
		`{"id":3,"subscribe":{"epoch":"ep","offset":10,"positioned":true}}`,
		`{"id":4,"publish":{}}`,
		`{"id":5,"publish":{}}`,
		`{"id":6,"subscribe":{"epoch":"ep","offset":10}}`,
		`{"id":7}`,
		`{"id":8,"error":{"code":100,"message":"internal server error"}}`,
		`{"id":1,"connect":{}}`,
		`{"id":99,"publish":{}}`,
		pub("chat:r1", "11"),
		pub("dm:u1", "0"),
		pub("chat:r1", "0"),
		pub("news:x", "3"),
		`{"push":{"channel":"chat:r1","unsubscribe":{"code":2500}}}`,
		`{"push":{"channel":"chat:r1"}}`,
		`{"id":"x"}`,
	}, "\n")
	evs, n := read(r, msg, pending)
	want := []string{
		"reply 1 attach 200",
		"ping",
		"reply 2 join 200 epoch=ep top=10",
		"reply 3 send 200 epoch= offset=0",
		"reply 4 dm 200 sessions=0 counted=false",
		"reply 5 join 400 not positioned",
		"reply 6 join 400 bad subscribe reply",
		"reply 7 send 500 100 internal server error",
		`msg all r1@-/11 a:1|"..`,
		`dm all from= text=a:1|"..`,
		"bad",
		"unexpected",
		"unexpected", "end",
		"bad",
		"bad",
	}
	if d := same(evs, want); d != "" || n != 17 {
		t.Errorf("%d frames; %s", n, d)
	}
}
