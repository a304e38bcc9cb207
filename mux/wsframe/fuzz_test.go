package wsframe

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzReader feeds arbitrary bytes, cut at arbitrary points, to a server's
// and a client's Reader. It must never panic, never consume more than it
// was given, return only its two errors, and never return a data message
// over the limit.
func FuzzReader(f *testing.F) {
	key := []byte{1, 2, 3, 4}
	f.Add(frame(OpText, true, []byte("hello"), key), uint8(3))
	f.Add(append(frame(OpText, false, []byte("he"), key), frame(OpContinuation, true, []byte("llo"), key)...), uint8(1))
	f.Add(frame(OpBinary, true, make([]byte, 200), nil), uint8(7))
	f.Add([]byte{0x81, 0xfe, 0x01, 0x00}, uint8(2))
	const limit = 256
	f.Fuzz(func(t *testing.T, stream []byte, step uint8) {
		for _, masked := range []bool{false, true} {
			r := Reader{Limit: limit, Masked: masked}
			err := feed(t, &r, bytes.Clone(stream), int(step), func(op byte, msg []byte) {
				if (op == OpText || op == OpBinary) && len(msg) > limit {
					t.Fatalf("message of %d bytes over the limit %d", len(msg), limit)
				}
				if op >= OpClose && len(msg) > MaxControlPayload {
					t.Fatalf("control frame of %d bytes", len(msg))
				}
			})
			if err != nil && !errors.Is(err, ErrProtocol) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("unexpected error %v", err)
			}
		}
	})
}

// FuzzRoundTrip frames messages taken from the input (split into fragments,
// masked, with pings between the fragments), feeds the stream in pieces,
// and checks that the same messages come out, in order.
func FuzzRoundTrip(f *testing.F) {
	f.Add([]byte("hello|world|"), uint8(3), uint8(2), []byte{1, 2, 3, 4})
	f.Add(bytes.Repeat([]byte("a"), 400), uint8(0), uint8(50), []byte{0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte, step, fragLen uint8, key []byte) {
		if len(key) < 4 {
			return
		}
		key = key[:4]
		msgs := bytes.Split(data, []byte("|"))
		var stream []byte
		for _, m := range msgs {
			fl := int(fragLen)
			if fl == 0 || fl >= len(m) {
				stream = append(stream, frame(OpText, true, m, key)...)
				continue
			}
			op := OpText
			for i := 0; i < len(m); i += fl {
				end := min(len(m), i+fl)
				stream = append(stream, frame(op, end == len(m), m[i:end], key)...)
				stream = append(stream, frame(OpPing, true, []byte("p"), key)...)
				op = OpContinuation
			}
		}
		r := Reader{Limit: len(data) + 1, Masked: true}
		var got [][]byte
		err := feed(t, &r, stream, int(step), func(op byte, msg []byte) {
			if op == OpText {
				got = append(got, bytes.Clone(msg))
			}
		})
		if err != nil {
			t.Fatalf("error %v", err)
		}
		if len(got) != len(msgs) {
			t.Fatalf("%d messages, want %d", len(got), len(msgs))
		}
		for i := range msgs {
			if !bytes.Equal(got[i], msgs[i]) {
				t.Fatalf("message %d: %q, want %q", i, got[i], msgs[i])
			}
		}
	})
}
