package mux

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestDecodeCmd(t *testing.T) {
	f, err := DecodeFrame([]byte(`{"t":"cmd","sid":3,"seq":7,"cmd":"send","body":{"room":"lobby","text":"hi"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if f.T != TypeCmd || f.SID != 3 || f.Seq != 7 || f.Cmd != CmdSend {
		t.Fatalf("decoded %+v", f)
	}
	var r SendReq
	if err := BodyOf(f.Body, &r); err != nil {
		t.Fatal(err)
	}
	if r.Room != "lobby" || r.Text != "hi" {
		t.Fatalf("body %+v", r)
	}
}

func TestDecodeErrors(t *testing.T) {
	cases := []struct {
		in   string
		name string
	}{
		{`not json`, ErrMalformed},
		{`{"t":"cmd","sid":1,"cmd":"send"}`, ErrMalformed},           // no seq
		{`{"t":"cmd","seq":1,"cmd":"send"}`, ErrMalformed},           // no sid
		{`{"t":"ping"}`, ErrMalformed},                               // no seq
		{`{"sid":1}`, ErrMalformed},                                  // no type
		{`{"t":"reply","sid":1,"seq":1,"code":200}`, ErrUnknownType}, // server-only type
		{`{"t":"bogus"}`, ErrUnknownType},
		{`{"t":"cmd","sid":-1,"seq":1,"cmd":"x"}`, ErrMalformed},
		{`{"t":"cmd","sid":"1","seq":1,"cmd":"x"}`, ErrMalformed},
		{`{"t":"cmd","sid":1,"seq":1e40,"cmd":"x"}`, ErrMalformed},
		{"{\"t\":\"ping\",\"seq\":1,\"x\":\"\xff\"}", ErrMalformed},
	}
	for _, c := range cases {
		_, err := DecodeFrame([]byte(c.in))
		var pe *Error
		if !errors.As(err, &pe) {
			t.Errorf("%s: want *Error, got %v", c.in, err)
			continue
		}
		if pe.Name != c.name || pe.Code != CodeBadRequest {
			t.Errorf("%s: got %d %s, want 400 %s", c.in, pe.Code, pe.Name, c.name)
		}
	}
}

// A cmd frame with a readable sid and seq decodes without error even when
// the rest is invalid: it is marked Invalid, to be answered by a reply.
func TestDecodeInvalidCmd(t *testing.T) {
	for _, in := range []string{
		`{"t":"cmd","sid":1,"seq":1}`, // no cmd
		`{"t":"cmd","sid":1,"seq":1,"cmd":"` + strings.Repeat("x", MaxCmdBytes+1) + `"}`,
		`{"t":"cmd","sid":1,"seq":1,"cmd":["send"]}`,
		`{"t":"cmd","sid":1,"seq":1,"cmd":"send","sids":"x"}`,
		"{\"t\":\"cmd\",\"sid\":1,\"seq\":1,\"cmd\":\"send\",\"body\":{\"text\":\"\xff\"}}",
	} {
		f, err := DecodeFrame([]byte(in))
		if err != nil {
			t.Errorf("%.60s: error %v, want an Invalid frame", in, err)
			continue
		}
		if f.Invalid == nil || f.Invalid.Name != ErrMalformed || f.Invalid.Code != CodeBadRequest {
			t.Errorf("%.60s: Invalid %v, want 400 malformed", in, f.Invalid)
		}
		if f.T != TypeCmd || f.SID != 1 || f.Seq != 1 || f.Cmd != "" || f.Body != nil {
			t.Errorf("%.60s: frame %+v, want only t, sid and seq", in, f)
		}
	}
	f, err := DecodeFrame([]byte(`{"t":"cmd","sid":1,"seq":1,"cmd":"send","body":{"x":1}}`))
	if err != nil || f.Invalid != nil || f.Cmd != CmdSend {
		t.Fatalf("valid cmd: %+v %v", f, err)
	}
	// A frame without a readable sid keeps its seq for the error frame.
	if f, err := DecodeFrame([]byte(`{"t":"cmd","seq":4,"cmd":"send"}`)); err == nil || f.Seq != 4 {
		t.Fatalf("no sid: %+v %v, want an error and seq 4", f, err)
	}
}

// Error messages quote at most MaxEchoBytes of a client value, cut at a
// rune boundary and marked, and are at most MaxErrorMsgBytes long.
func TestErrorEchoIsBounded(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"short", "short"},
		{strings.Repeat("x", MaxEchoBytes), strings.Repeat("x", MaxEchoBytes)},
		{strings.Repeat("x", MaxEchoBytes+1), strings.Repeat("x", MaxEchoBytes-3) + "…"},
		{strings.Repeat("é", 100), strings.Repeat("é", (MaxEchoBytes-3)/2) + "…"},
		{"ab" + strings.Repeat("€", 20), "ab" + strings.Repeat("€", (MaxEchoBytes-5)/3) + "…"},
	} {
		got := Echo(tc.in)
		if got != tc.want || len(got) > MaxEchoBytes || !utf8.ValidString(got) {
			t.Errorf("Echo(%.20q…) = %q, want %q", tc.in, got, tc.want)
		}
	}
	_, err := DecodeFrame([]byte(`{"t":"` + strings.Repeat("y", 60<<10) + `"}`))
	var pe *Error
	if !errors.As(err, &pe) || pe.Name != ErrUnknownType || !strings.Contains(pe.Msg, Echo(strings.Repeat("y", 100))) {
		t.Fatalf("60 KB type: %v", err)
	}
	long := Errorf(CodeBadRequest, ErrBadRequest, "%s", strings.Repeat("z", 10<<10))
	if len(long.Msg) > MaxErrorMsgBytes {
		t.Fatalf("Errorf kept %d bytes", len(long.Msg))
	}
	// An *Error built by hand is bounded when encoded.
	frame := AppendErrorFrame(nil, 1, &Error{Code: 400, Name: ErrBadRequest, Msg: strings.Repeat("w", 10<<10)})
	if len(frame) > MaxErrorMsgBytes+100 {
		t.Fatalf("error frame of %d bytes", len(frame))
	}
	reply := AppendErrorReply(nil, 1, 1, &Error{Code: 400, Name: ErrBadRequest, Msg: strings.Repeat("w", 10<<10)})
	if len(reply) > MaxErrorMsgBytes+100 {
		t.Fatalf("error reply of %d bytes", len(reply))
	}
}

func TestSplitMessage(t *testing.T) {
	msg := []byte("{\"t\":\"ping\",\"seq\":1}\n\n{\"t\":\"ping\",\"seq\":2}\r\n")
	var got []string
	err := SplitMessage(msg, DefaultLimits(), func(b []byte) error { got = append(got, string(b)); return nil })
	if err != nil || len(got) != 2 || got[1] != `{"t":"ping","seq":2}` {
		t.Fatalf("got %q, %v", got, err)
	}
	l := DefaultLimits()
	l.MaxFramesPerMsg = 2
	err = SplitMessage([]byte("{}\n{}\n{}"), l, func([]byte) error { return nil })
	var pe *Error
	if !errors.As(err, &pe) || pe.Code != CodeTooLarge {
		t.Fatalf("want too_large for 3 frames, got %v", err)
	}
	l.MaxMessageBytes = 4
	err = SplitMessage([]byte("{}\n{}"), l, func([]byte) error { return nil })
	if !errors.As(err, &pe) || pe.Code != CodeTooLarge {
		t.Fatalf("want too_large for 5 bytes, got %v", err)
	}
}

func TestAppendRoundTrip(t *testing.T) {
	body := EncodeBody(Message{Room: "r", Offset: 9, Epoch: "e", From: "a", Text: "x\"<\n\u2028", TS: 5})
	frames := [][]byte{
		AppendReply(nil, 4, 11, []byte(`{"ok":true}`)),
		AppendErrorReply(nil, 4, 12, Errorf(CodeUnknownRoom, ErrUnknownRoom, "room %q", "nope")),
		AppendPush(nil, []uint32{1, 2, 3}, EvMsg, body),
		AppendPong(nil, 99),
		AppendHello(nil, Hello{Version: ProtocolVersion, HeartbeatMS: 1000}),
		AppendGoAway(nil, GoAway{Reason: GoAwayShutdown, RetryMS: 1500}),
		AppendErrorFrame(nil, 0, Errorf(CodeBadRequest, ErrMalformed, "bad")),
	}
	for _, fr := range frames {
		if _, err := DecodeServerFrame(fr); err != nil {
			t.Fatalf("%s: %v", fr, err)
		}
		if !json.Valid(fr) {
			t.Fatalf("invalid JSON %s", fr)
		}
	}
	f, _ := DecodeServerFrame(frames[2])
	if len(f.SIDs) != 3 || f.Ev != EvMsg {
		t.Fatalf("push decoded as %+v", f)
	}
	var m Message
	if err := json.Unmarshal(f.Body, &m); err != nil || m.Text != "x\"<\n\u2028" || m.Offset != 9 {
		t.Fatalf("message %+v %v", m, err)
	}
	f, _ = DecodeServerFrame(frames[1])
	if f.Code != CodeUnknownRoom || f.Err != ErrUnknownRoom || f.Msg != `room "nope"` {
		t.Fatalf("error reply %+v", f)
	}
	c, err := DecodeFrame(AppendCmd(nil, 2, 3, CmdJoin, EncodeBody(JoinReq{Room: "lobby"})))
	if err != nil || c.Cmd != CmdJoin || c.SID != 2 || c.Seq != 3 {
		t.Fatalf("cmd %+v %v", c, err)
	}
	if p, err := DecodeFrame(AppendPing(nil, 8)); err != nil || p.Seq != 8 {
		t.Fatalf("ping %+v %v", p, err)
	}
}

func TestAppendStringMatchesJSON(t *testing.T) {
	for _, s := range []string{"", "plain", "q\"b\\s", "\x00\x1f\t\r\n", "<img src=x onerror=alert(1)>", "日本語 \u2028\u2029", "bad \xff\xfe utf8", "&amp;"} {
		out := AppendString(nil, s)
		var back string
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatalf("%q -> %s: %v", s, out, err)
		}
		want := perByteValid(s)
		if back != want {
			t.Fatalf("%q -> %s -> %q", s, out, back)
		}
	}
}

func TestBatch(t *testing.T) {
	b := NewBatch(2, 10)
	if !b.Add([]byte("0123456789abc")) { // oversized frame accepted alone
		t.Fatal("oversized first frame refused")
	}
	if b.Add([]byte("x")) {
		t.Fatal("frame added past the byte limit")
	}
	b.Reset()
	if !b.Add([]byte("ab")) || !b.Add([]byte("cd")) || b.Add([]byte("e")) {
		t.Fatal("frame limit not applied")
	}
	if string(b.Bytes()) != "ab\ncd" || b.Len() != 2 {
		t.Fatalf("batch %q", b.Bytes())
	}
}

func TestValidate(t *testing.T) {
	l := DefaultLimits()
	bad := []interface{ Validate(Limits) error }{
		&SendReq{Room: "", Text: "x"},
		&SendReq{Room: "has space", Text: "x"},
		&SendReq{Room: "r", Text: ""},
		&DMReq{To: "@bob", Text: "x"},
		&AttachReq{Name: strings.Repeat("n", MaxNameBytes+1)},
		&AttachReq{Mode: "weird"},
		&HistoryReq{Room: "r", After: 1, Before: 2},
		&JoinReq{Room: "r", History: -1},
		&NickReq{Name: ""},
	}
	for _, r := range bad {
		if err := r.Validate(l); err == nil {
			t.Errorf("%#v validated", r)
		}
	}
	err := (&SendReq{Room: "r", Text: strings.Repeat("x", l.MaxTextBytes+1)}).Validate(l)
	var pe *Error
	if !errors.As(err, &pe) || pe.Code != CodeTooLarge {
		t.Fatalf("oversized text: %v", err)
	}
	good := []interface{ Validate(Limits) error }{
		&SendReq{Room: "lobby", Text: "hi", CID: "c1"},
		&DMReq{To: "Zoë_1", Text: "hi"},
		&AttachReq{Name: "alice", Mode: ModeLoadgen},
		&HistoryReq{Room: "r", After: 3},
	}
	for _, r := range good {
		if err := r.Validate(l); err != nil {
			t.Errorf("%#v: %v", r, err)
		}
	}
}

// perByteValid replaces each invalid byte with U+FFFD, as encoding/json does.
func perByteValid(s string) string {
	var b strings.Builder
	for _, r := range s {
		b.WriteRune(r)
	}
	return b.String()
}

func TestPushPartsMatchAppendPush(t *testing.T) {
	body := []byte(`{"x":1}`)
	sids := []uint32{4, 9}
	var parts []byte
	parts = append(parts, PushPrefix(EvJoin)...)
	parts = AppendSIDs(parts, sids)
	parts = append(parts, PushBodyKey...)
	parts = append(parts, body...)
	parts = append(parts, PushTail)
	if whole := AppendPush(nil, sids, EvJoin, body); string(whole) != string(parts) {
		t.Fatalf("%s != %s", parts, whole)
	}
	f, err := DecodeServerFrame(parts)
	if err != nil || f.Ev != EvJoin || len(f.SIDs) != 2 || string(f.Body) != string(body) {
		t.Fatalf("%+v %v", f, err)
	}
}

func TestNames(t *testing.T) {
	good := []string{"alice", "Zoë_1", "bob.smith-2", "Алиса", "ルーシー", "山田たろう", "김민준", "Ωμέγα", "u7x1", "ǅemal"}
	for _, n := range good {
		if err := CheckName(n); err != nil {
			t.Errorf("%q refused: %v", n, err)
		}
	}
	bad := map[string]string{
		"аlice":     "mixes", // Cyrillic а, then Latin
		"alicе":     "mixes", // Latin, then Cyrillic е
		"paypaι":    "mixes", // Greek iota
		"𝐚lice":     "no script",
		"al ice":    "not allowed",
		"@bob":      "not allowed",
		"bob٣":      "not allowed", // an Arabic-Indic digit
		"":          "1-32 bytes",
		"\xffalice": "UTF-8",
	}
	for n, want := range bad {
		err := CheckName(n)
		var pe *Error
		if !errors.As(err, &pe) || pe.Code != CodeBadRequest || !strings.Contains(pe.Msg, want) {
			t.Errorf("%q: %v, want 400 mentioning %q", n, err, want)
		}
	}
	// The vectors shared with worker-js/test/names.test.js.
	var vec struct {
		Good, Bad []string
		Same      [][2]string
	}
	data, err := os.ReadFile("testdata/names.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &vec); err != nil {
		t.Fatal(err)
	}
	if len(vec.Good) == 0 || len(vec.Bad) == 0 || len(vec.Same) == 0 {
		t.Fatalf("testdata/names.json: %d good, %d bad, %d same: want some of each", len(vec.Good), len(vec.Bad), len(vec.Same))
	}
	for _, n := range vec.Good {
		if !ValidName(n) {
			t.Errorf("%q refused: %v", n, CheckName(n))
		}
	}
	for _, n := range vec.Bad {
		if ValidName(n) {
			t.Errorf("%q accepted", n)
		}
	}
	for _, p := range vec.Same {
		if NameKey(p[0]) != NameKey(p[1]) {
			t.Errorf("NameKey(%q)=%q, NameKey(%q)=%q: want equal", p[0], NameKey(p[0]), p[1], NameKey(p[1]))
		}
	}
	if NameKey("alice") == NameKey("аlice") || NameKey("bob") == NameKey("bop") {
		t.Error("different names share a key")
	}
}
