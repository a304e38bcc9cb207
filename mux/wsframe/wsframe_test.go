package wsframe

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
)

// frame encodes one frame; key != nil masks it (a client's frame).
func frame(op byte, fin bool, payload, key []byte) []byte {
	b0 := op
	if fin {
		b0 |= Fin
	}
	out := AppendHeader(nil, b0, len(payload))
	if key == nil {
		return append(out, payload...)
	}
	out[1] |= 0x80
	out = append(out, key...)
	start := len(out)
	out = append(out, payload...)
	Mask(key, out[start:])
	return out
}

// feed gives stream to r in pieces of at most step bytes (0: whole), each
// in a fresh read buffer that is cleared afterwards (so the Reader must not
// keep pointers into it), keeping what is incomplete as a socket reader
// does; each message or control frame goes to yield. It checks what every
// call returns is consistent, and stops at the first error.
func feed(t testing.TB, r *Reader, stream []byte, step int, yield func(op byte, msg []byte)) error {
	t.Helper()
	for off := 0; off < len(stream); {
		k := len(stream) - off
		if step > 0 {
			k = min(k, step)
			if len(r.Pending()) > 10 && len(stream) > 1<<16 { // keep a test fast inside a big frame
				k = min(len(stream)-off, 4096)
			}
		}
		buf := append(bytes.Clone(r.Pending()), stream[off:off+k]...)
		off += k
		pos := 0
		for {
			op, msg, n, need, err := r.Next(buf[pos:])
			if n < 0 || pos+n > len(buf) {
				t.Fatalf("consumed %d of %d", n, len(buf)-pos)
			}
			pos += n
			if err != nil {
				return err
			}
			if op == 0 {
				if need != 0 && need <= len(buf)-pos {
					t.Fatalf("needs %d but has %d", need, len(buf)-pos)
				}
				r.Keep(buf[pos:], need)
				break
			}
			yield(op, msg)
		}
		clear(buf)
	}
	return nil
}

// collect feeds stream to r (see feed) and returns the messages and control
// frames it yields ("ping:…" for a ping).
func collect(t *testing.T, r *Reader, stream []byte, step int) []string {
	t.Helper()
	var got []string
	err := feed(t, r, stream, step, func(op byte, msg []byte) {
		if op == OpPing {
			got = append(got, "ping:"+string(msg))
		} else {
			got = append(got, string(msg))
		}
	})
	if err != nil {
		t.Fatalf("step %d: %v", step, err)
	}
	return got
}

func TestReaderFramesAndFragments(t *testing.T) {
	big := bytes.Repeat([]byte("x"), 70000)
	for _, masked := range []bool{false, true} {
		var key []byte
		if masked {
			key = []byte{0x12, 0x34, 0x56, 0x78}
		}
		var stream []byte
		stream = append(stream, frame(OpText, true, []byte("one"), key)...)
		stream = append(stream, frame(OpText, false, []byte("fr"), key)...)
		stream = append(stream, frame(OpPing, true, []byte("p"), key)...)
		stream = append(stream, frame(OpContinuation, false, []byte("ag"), key)...)
		stream = append(stream, frame(OpContinuation, true, []byte("ment"), key)...)
		stream = append(stream, frame(OpText, true, bytes.Repeat([]byte("m"), 300), key)...)
		stream = append(stream, frame(OpBinary, true, big, key)...)
		stream = append(stream, frame(OpText, true, nil, key)...)
		want := []string{"one", "ping:p", "fragment", strings.Repeat("m", 300), string(big), ""}
		for step := range 8 {
			r := Reader{Limit: 1 << 20, Masked: masked}
			got := collect(t, &r, bytes.Clone(stream), step)
			if len(got) != len(want) {
				t.Fatalf("masked %v step %d: %d messages, want %d", masked, step, len(got), len(want))
			}
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("masked %v step %d: message %d = %.20q (%d bytes), want %.20q", masked, step, i, got[i], len(got[i]), want[i])
				}
			}
			if r.Pending() != nil || r.frag != nil {
				t.Fatalf("masked %v step %d: the reader holds memory after whole frames", masked, step)
			}
		}
	}
}

func TestReaderErrors(t *testing.T) {
	key := []byte{1, 2, 3, 4}
	cases := []struct {
		name   string
		stream []byte
		masked bool
		want   error
	}{
		{"unmasked frame to a server", frame(OpText, true, []byte("a"), nil), true, ErrProtocol},
		{"masked frame to a client", frame(OpText, true, []byte("a"), key), false, ErrProtocol},
		{"reserved bit", append([]byte{Fin | OpText | 0x40}, frame(OpText, true, []byte("a"), nil)[1:]...), false, ErrProtocol},
		{"unknown data opcode", frame(0x3, true, nil, key), true, ErrProtocol},
		{"unknown control opcode", frame(0xb, true, nil, key), true, ErrProtocol},
		{"fragmented control", frame(OpPing, false, nil, key), true, ErrProtocol},
		{"control payload over 125", frame(OpPing, true, make([]byte, 126), key), true, ErrProtocol},
		{"continuation without a start", frame(OpContinuation, true, []byte("a"), key), true, ErrProtocol},
		{"data frame inside a fragmented message", append(frame(OpText, false, []byte("a"), key), frame(OpText, true, []byte("b"), key)...), true, ErrProtocol},
		{"frame over the limit", frame(OpText, true, make([]byte, 101), key), true, ErrTooLarge},
		{"fragments over the limit", append(frame(OpText, false, make([]byte, 60), key), frame(OpContinuation, true, make([]byte, 60), key)...), true, ErrTooLarge},
		{"64-bit length with the top bit", []byte{Fin | OpBinary, 127, 0x80, 0, 0, 0, 0, 0, 0, 1}, false, ErrProtocol},
	}
	for _, tc := range cases {
		r := Reader{Limit: 100, Masked: tc.masked}
		var err error
		data := tc.stream
		for err == nil && len(data) > 0 {
			var op byte
			var n int
			op, _, n, _, err = r.Next(data)
			data = data[n:]
			if op == 0 && err == nil {
				break
			}
		}
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: err %v, want %v", tc.name, err, tc.want)
		}
	}
	if CloseCode(ErrTooLarge) != CloseTooBig || CloseCode(ErrProtocol) != CloseProtocolError {
		t.Fatal("CloseCode maps the errors wrongly")
	}
}

func TestIncompleteFrameNeeds(t *testing.T) {
	key := []byte{9, 8, 7, 6}
	f := frame(OpText, true, make([]byte, 300), key) // 16-bit length: 4 + 4 + 300
	for cut := range len(f) {
		_, n, need, err := Parse(f[:cut], 1000, true)
		if err != nil || n != 0 {
			t.Fatalf("cut %d: n %d err %v", cut, n, err)
		}
		if want := 0; cut >= 4 {
			want = len(f)
			if need != want {
				t.Fatalf("cut %d: need %d, want %d", cut, need, want)
			}
		} else if need != want {
			t.Fatalf("cut %d: need %d before the length is known", cut, need)
		}
	}
}

func TestMaskMatchesBytewise(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for n := range 40 {
		key := []byte{byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32())}
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		want := bytes.Clone(b)
		for i := range want {
			want[i] ^= key[i%4]
		}
		Mask(key, b)
		if !bytes.Equal(b, want) {
			t.Fatalf("len %d: %x, want %x", n, b, want)
		}
	}
}

func TestClosePayload(t *testing.T) {
	p := AppendClosePayload(nil, 4008, "slow consumer")
	code, reason, err := ParseClose(p)
	if err != nil || code != 4008 || reason != "slow consumer" {
		t.Fatalf("round trip: %d %q %v", code, reason, err)
	}
	if p := AppendClosePayload(nil, 1000, strings.Repeat("r", 200)); len(p) != MaxControlPayload {
		t.Fatalf("long reason: payload %d bytes, want %d", len(p), MaxControlPayload)
	}
	if p := AppendClosePayload(nil, CloseNoStatus, "x"); len(p) != 0 {
		t.Fatal("1005 must not be sent")
	}
	if code, _, err := ParseClose(nil); err != nil || code != CloseNoStatus {
		t.Fatalf("empty close: %d %v", code, err)
	}
	for _, bad := range [][]byte{{3}, {0x03, 0xed}, {0x03, 0xee}, {0x03, 0xe4}, {0x0b, 0xb7}, {0x13, 0x88}} { // 1 byte, 1005, 1006, 1004, 2999, 5000
		if _, _, err := ParseClose(bad); !errors.Is(err, ErrProtocol) {
			t.Errorf("close payload %x: err %v, want ErrProtocol", bad, err)
		}
	}
}
