package mux

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// FuzzDecode feeds arbitrary WebSocket messages to the server-side decoder.
// It must never panic, must return only *Error (with a bounded message),
// must mark only a cmd with a sid and seq Invalid, and every valid frame it
// accepts must re-encode to a frame that decodes to the same thing.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"t":"cmd","sid":1,"seq":1,"cmd":"attach","body":{"name":"a","mode":"loadgen"}}`))
	f.Add([]byte("{\"t\":\"ping\",\"seq\":5}\n{\"t\":\"cmd\",\"sid\":2,\"seq\":9,\"cmd\":\"send\",\"body\":{\"room\":\"r\",\"text\":\"hi\"}}"))
	f.Add([]byte(`{"t":"cmd","sid":1,"seq":2,"cmd":"history","body":{"room":"r","after":3,"limit":10}}`))
	f.Add([]byte(`{"t":"cmd","sid":1,"seq":4,"cmd":"dm_history","body":{"peer":"bob","epoch":"e1","after":3,"limit":10}}`))
	f.Add([]byte(`{"t":"cmd","sid":1,"seq":5,"cmd":"dm_list","body":{"limit":2}}`))
	f.Add([]byte(`{"t":`))
	f.Add([]byte(`{"t":"cmd","sid":1,"seq":3}` + "\n" + `{"t":"cmd","sid":2,"seq":4,"cmd":7}`))
	f.Add([]byte("{\"t\":\"cmd\",\"sid\":1,\"seq\":5,\"cmd\":\"send\",\"body\":{\"text\":\"\xff\"}}"))
	f.Add([]byte(`{"t":"` + strings.Repeat("t", 200) + `","seq":1}`))
	f.Add([]byte("\n\n\r\n"))
	l := DefaultLimits()
	l.MaxFramesPerMsg = 8
	f.Fuzz(func(t *testing.T, msg []byte) {
		_ = SplitMessage(msg, l, func(b []byte) error {
			fr, err := DecodeFrame(b)
			if err != nil {
				var pe *Error
				if !errors.As(err, &pe) {
					t.Fatalf("non-protocol error %T %v", err, err)
				}
				if len(pe.Msg) > MaxErrorMsgBytes {
					t.Fatalf("error message of %d bytes", len(pe.Msg))
				}
				return nil
			}
			if fr.Invalid != nil { // answered by an error reply: sid and seq are enough
				if fr.T != TypeCmd || fr.SID == 0 || fr.Seq == 0 || len(fr.Invalid.Msg) > MaxErrorMsgBytes {
					t.Fatalf("invalid cmd decoded as %+v (%v)", fr, fr.Invalid)
				}
				return nil
			}
			var enc []byte
			switch fr.T {
			case TypeCmd:
				enc = AppendCmd(nil, fr.SID, fr.Seq, fr.Cmd, compact(fr.Body))
			case TypePing:
				enc = AppendPing(nil, fr.Seq)
			}
			again, err := DecodeFrame(enc)
			if err != nil {
				t.Fatalf("re-encoded %s does not decode: %v", enc, err)
			}
			if fr.T == TypePing { // a ping keeps only its seq
				fr = Frame{T: TypePing, Seq: fr.Seq}
			}
			if again.T != fr.T || again.SID != fr.SID || again.Seq != fr.Seq || again.Cmd != fr.Cmd {
				t.Fatalf("round trip changed %+v into %+v", fr, again)
			}
			// Every body type must decode without panicking.
			for _, v := range []any{&AttachReq{}, &SendReq{}, &DMReq{}, &JoinReq{}, &HistoryReq{}, &WhoReq{}, &NickReq{}, &DMHistoryReq{}, &DMListReq{}} {
				if BodyOf(fr.Body, v) == nil {
					_ = v.(interface{ Validate(Limits) error }).Validate(l)
				}
			}
			return nil
		})
	})
}

// FuzzAppendString checks that every string encodes to valid JSON that
// decodes back to the string (with invalid UTF-8 replaced).
func FuzzAppendString(f *testing.F) {
	f.Add("hello")
	f.Add("\x00\xff\u2028<>&\"\\")
	f.Fuzz(func(t *testing.T, s string) {
		out := AppendString(nil, s)
		var back string
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatalf("%q encodes to invalid JSON %s: %v", s, out, err)
		}
		if want := perByteValid(s); back != want {
			t.Fatalf("%q -> %s -> %q", s, out, back)
		}
	})
}

// FuzzAppendMessage checks that AppendMessage writes what encoding/json
// writes, up to the spelling of escapes: both decode to the same message.
func FuzzAppendMessage(f *testing.F) {
	f.Add("room-1", uint64(7), "e1", "alice", "#d9480f", "Alice \"A\" Smith", "hi <b>\u2028", int64(1764167400123), "c-1")
	f.Add("", uint64(0), "", "", "", "", "\x00\xff", int64(-5), "")
	f.Fuzz(func(t *testing.T, room string, off uint64, epoch, from, color, display, text string, ts int64, cid string) {
		m := Message{Room: room, Offset: off, Epoch: epoch, From: from, Color: color, Display: display, Text: text, TS: ts, CID: cid}
		got := AppendMessage(nil, &m)
		var back, want Message
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatalf("%+v encodes to invalid JSON %s: %v", m, got, err)
		}
		if err := json.Unmarshal(EncodeBody(m), &want); err != nil {
			t.Fatal(err)
		}
		if back != want {
			t.Fatalf("%+v: AppendMessage %s decodes to %+v, encoding/json to %+v", m, got, back, want)
		}
	})
}

func compact(raw json.RawMessage) []byte {
	if len(raw) == 0 {
		return nil
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return nil
	}
	return buf.Bytes()
}

// FuzzAppendDM checks that AppendDM writes what encoding/json writes, up to
// the spelling of escapes: both decode to the same private message.
func FuzzAppendDM(f *testing.F) {
	f.Add(uint64(3), "alice", "bob", "#d9480f", "Alice Smith", "psst <b>\u2028", int64(1764167400123), "c-1", "e1", uint64(7))
	f.Add(uint64(0), "", "", "", "", "\x00\xff", int64(-5), "", "", uint64(0))
	f.Fuzz(func(t *testing.T, id uint64, from, to, color, display, text string, ts int64, cid, epoch string, off uint64) {
		m := DM{ID: id, From: from, To: to, Color: color, Display: display, Text: text, TS: ts, CID: cid, Epoch: epoch, Offset: off}
		got := AppendDM(nil, &m)
		var back, want DM
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatalf("%+v encodes to invalid JSON %s: %v", m, got, err)
		}
		if err := json.Unmarshal(EncodeBody(m), &want); err != nil {
			t.Fatal(err)
		}
		if back != want {
			t.Fatalf("%+v: AppendDM %s decodes to %+v, encoding/json to %+v", m, got, back, want)
		}
	})
}
