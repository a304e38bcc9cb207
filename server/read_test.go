package server

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"imload/mux"
	"imload/mux/wsframe"
)

// clientFrame encodes a frame as a client sends it (masked unless unmasked).
func clientFrame(op byte, fin, unmasked bool, payload []byte) []byte {
	b0 := op
	if fin {
		b0 |= wsframe.Fin
	}
	out := wsframe.AppendHeader(nil, b0, len(payload))
	if unmasked {
		return append(out, payload...)
	}
	out[1] |= 0x80
	key := []byte{0xa1, 0xb2, 0xc3, 0xd4}
	out = append(out, key...)
	start := len(out)
	out = append(out, payload...)
	wsframe.Mask(key, out[start:])
	return out
}

// writeRaw writes bytes straight to the client's socket, in pieces of at
// most step bytes (0: at once) with a pause between them, so that the
// server reads frames cut anywhere.
func (c *client) writeRaw(b []byte, step int) {
	c.t.Helper()
	nc := c.ws.NetConn()
	for len(b) > 0 {
		k := len(b)
		if step > 0 {
			k = min(k, step)
		}
		if _, err := nc.Write(b[:k]); err != nil {
			c.t.Fatal(err)
		}
		b = b[k:]
		if step > 0 {
			time.Sleep(time.Millisecond)
		}
	}
}

// TestFragmentedAndSplitFrames: a command sent as three fragments with a
// ping between them, and a command whose frame arrives a few bytes at a
// time, are both handled; the ping is answered with a pong.
func TestFragmentedAndSplitFrames(t *testing.T) {
	for _, rd := range []string{ReaderGoroutine, ReaderAuto} {
		t.Run(rd, func(t *testing.T) {
			cfg := testConfig()
			cfg.Reader = rd
			ts := startServer(t, cfg)
			c := dial(t, ts, nil)
			pong := make(chan string, 1)
			c.ws.SetPongHandler(func(data string) error { pong <- data; return nil })

			ping := []byte(`{"t":"ping","seq":7}`)
			var stream []byte
			stream = append(stream, clientFrame(wsframe.OpText, false, false, ping[:5])...)
			stream = append(stream, clientFrame(wsframe.OpPing, true, false, []byte("are you there"))...)
			stream = append(stream, clientFrame(wsframe.OpContinuation, false, false, ping[5:9])...)
			stream = append(stream, clientFrame(wsframe.OpContinuation, true, false, ping[9:])...)
			c.writeRaw(stream, 0)
			c.next(func(f mux.Frame) bool { return f.T == mux.TypePong && f.Seq == 7 })
			select {
			case got := <-pong:
				if got != "are you there" {
					t.Fatalf("pong %q", got)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("no pong to a WebSocket ping")
			}

			// A frame with a 16-bit length, a few bytes at a time.
			long := `{"t":"ping","seq":8,"pad":"` + strings.Repeat("p", 300) + `"}`
			c.writeRaw(clientFrame(wsframe.OpText, true, false, []byte(long)), 7)
			c.next(func(f mux.Frame) bool { return f.T == mux.TypePong && f.Seq == 8 })
		})
	}
}

// TestBadFramesClose1002: frames RFC 6455 forbids end the connection with
// close code 1002; a close frame is answered with the same code.
func TestBadFramesClose1002(t *testing.T) {
	cases := map[string][]byte{
		"unmasked":                 clientFrame(wsframe.OpText, true, true, []byte(`{"t":"ping","seq":1}`)),
		"reserved bit":             append([]byte{wsframe.Fin | wsframe.OpText | 0x40}, clientFrame(wsframe.OpText, true, false, []byte("x"))[1:]...),
		"unknown opcode":           clientFrame(0x5, true, false, nil),
		"fragmented ping":          clientFrame(wsframe.OpPing, false, false, []byte("x")),
		"continuation first":       clientFrame(wsframe.OpContinuation, true, false, []byte("x")),
		"one-byte close payload":   clientFrame(wsframe.OpClose, true, false, []byte{3}),
		"text inside a fragmented": append(clientFrame(wsframe.OpText, false, false, []byte("{")), clientFrame(wsframe.OpText, true, false, []byte("}"))...),
	}
	ts := startServer(t, testConfig())
	for name, b := range cases {
		c := dial(t, ts, nil)
		c.writeRaw(b, 0)
		if ce := c.waitClosed(5 * time.Second); ce == nil || ce.Code != websocket.CloseProtocolError {
			t.Errorf("%s: close %v, want 1002", name, ce)
		}
	}

	c := dial(t, ts, nil)
	c.writeRaw(clientFrame(wsframe.OpClose, true, false, wsframe.AppendClosePayload(nil, 4321, "bye")), 0)
	if ce := c.waitClosed(5 * time.Second); ce == nil || ce.Code != 4321 {
		t.Errorf("close 4321 echoed as %v", ce)
	}
	eventually(t, 5*time.Second, "every connection to be gone", func() bool { return ts.srv.Stats().PhysicalConnections == 0 })
}

// TestFragmentsOverLimitClose1009: a message is limited as a whole, not
// per fragment.
func TestFragmentsOverLimitClose1009(t *testing.T) {
	ts := startServer(t, testConfig())
	c := dial(t, ts, nil)
	half := make([]byte, ts.srv.cfg.Limits.MaxMessageBytes/2+1)
	c.writeRaw(append(clientFrame(wsframe.OpText, false, false, half), clientFrame(wsframe.OpContinuation, true, false, half)...), 0)
	if ce := c.waitClosed(5 * time.Second); ce == nil || ce.Code != websocket.CloseMessageTooBig {
		t.Fatalf("close %v, want 1009", ce)
	}
}

// Clients that close at once (close frames, as a load generator's end or a
// network drop does) each leave their room: the member that stays sees
// every leave (after the presence grace), their close frames are
// answered, and the server keeps no connection or session of theirs.
func TestManyClientsCloseAtOnce(t *testing.T) {
	cfg := testConfig()
	cfg.PresenceGrace = 200 * time.Millisecond // their leaves come once the presence grace is over
	ts := startServer(t, cfg)
	stay := dial(t, ts, nil)
	stay.attach(1, "stay")
	stay.join(1, "r")
	const n = 40
	leaving := make([]*client, n)
	for i := range leaving {
		c := dial(t, ts, nil)
		c.attach(1, fmt.Sprint("u", i))
		c.join(1, "r")
		leaving[i] = c
	}
	for range n { // their joins
		stay.push(mux.EvJoin, nil)
	}
	var wg sync.WaitGroup
	for _, c := range leaving {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.ws.NetConn().Write(clientFrame(wsframe.OpClose, true, false, wsframe.AppendClosePayload(nil, websocket.CloseNormalClosure, ""))); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	left := map[string]bool{}
	for range n {
		var p mux.Presence
		stay.push(mux.EvLeave, &p)
		left[p.User] = true
	}
	if len(left) != n {
		t.Fatalf("%d distinct leaves, want %d", len(left), n)
	}
	for i, c := range leaving {
		if ce := c.waitClosed(5 * time.Second); ce == nil || ce.Code != websocket.CloseNormalClosure {
			t.Fatalf("client %d: close %v, want 1000 echoed", i, ce)
		}
	}
	eventually(t, 5*time.Second, "only the staying client left", func() bool {
		st := ts.srv.Stats()
		return st.PhysicalConnections == 1 && st.LogicalSessions == 1
	})
}
