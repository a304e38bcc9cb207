package server

import (
	"bytes"
	"fmt"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"imload/mux"
)

// dialNeverReading opens a WebSocket that reads nothing after the
// handshake, with a small receive buffer so the server's socket to it
// fills early.
func dialNeverReading(t *testing.T, ts *testServer) *websocket.Conn {
	t.Helper()
	d := websocket.Dialer{ReadBufferSize: 1024, NetDial: func(network, addr string) (net.Conn, error) {
		nd := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
			var serr error
			if err := rc.Control(func(fd uintptr) { serr = setRecvBuffer(fd, 4096) }); err != nil {
				return err
			}
			return serr
		}}
		return nd.Dial(network, addr)
	}}
	ws, _, err := d.Dial(ts.url(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	return ws
}

// flooder sends with send until it fails (the server closed the
// connection; no write deadline: a slow server must not make it give up)
// or stop is closed; done is closed when it returns.
type flooder struct {
	ws   *websocket.Conn
	done chan struct{}
}

func startFlooder(ws *websocket.Conn, stop chan struct{}, send func(ws *websocket.Conn) error) *flooder {
	f := &flooder{ws: ws, done: make(chan struct{})}
	go func() {
		defer close(f.done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			for range 32 {
				if send(ws) != nil {
					return
				}
			}
			time.Sleep(time.Millisecond) // flood, but leave the canary some CPU
		}
	}()
	return f
}

// Clients that never read and keep asking for answers (WebSocket pings, or
// protocol pings) must not hold the server: a canary doing request/reply
// keeps getting prompt replies, and each flooder is closed as a slow
// consumer once its queue or its full socket passes the limits.
func TestNeverReadingFloodersDoNotStallCanary(t *testing.T) {
	wsPing := bytes.Repeat([]byte{'p'}, 125) // the largest control payload
	var protoPings []byte
	for i := range 64 {
		if i > 0 {
			protoPings = append(protoPings, '\n')
		}
		protoPings = mux.AppendPing(protoPings, uint64(i))
	}
	for _, tc := range []struct {
		name string
		send func(ws *websocket.Conn) error
	}{
		{"ws-ping", func(ws *websocket.Conn) error {
			return ws.WriteControl(websocket.PingMessage, wsPing, time.Time{})
		}},
		{"protocol-ping", func(ws *websocket.Conn) error {
			return ws.WriteMessage(websocket.TextMessage, protoPings)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.MaxQueueBytes = 64 << 10
			cfg.WriteTimeout = 500 * time.Millisecond
			ts := startServer(t, cfg)
			canary := dial(t, ts, nil)

			const nFlood = 4 // as many as the server has workers on 2 cores
			stop := make(chan struct{})
			var floods []*flooder
			for range nFlood {
				floods = append(floods, startFlooder(dialNeverReading(t, ts), stop, tc.send))
			}
			var once sync.Once
			stopAll := func() {
				once.Do(func() {
					close(stop)
					for _, f := range floods {
						f.ws.Close()
						<-f.done
					}
				})
			}
			defer stopAll()

			// The canary pings every 20 ms for 4 s: every reply within 2 s,
			// and a tenth of what an idle server answers (on a busy 2-core
			// machine, with the race detector, the flood itself costs CPU).
			const period, span, bound = 20 * time.Millisecond, 4 * time.Second, 2 * time.Second
			var worst time.Duration
			replies := 0
			end := time.Now().Add(span)
			for seq := uint64(1); time.Now().Before(end); seq++ {
				sent := time.Now()
				canary.sendRaw(string(mux.AppendPing(nil, seq)))
				timeout := time.After(bound)
			wait:
				for {
					select {
					case f, ok := <-canary.frames:
						if !ok {
							t.Fatalf("canary closed (%v)", canary.closeErr())
						}
						if f.T == mux.TypePong && f.Seq == seq {
							break wait
						}
					case <-timeout:
						t.Fatalf("canary ping %d unanswered after %v (%d replies so far); stats %+v",
							seq, bound, replies, ts.srv.Stats())
					}
				}
				worst = max(worst, time.Since(sent))
				replies++
				time.Sleep(period)
			}
			t.Logf("canary: %d replies in %v, slowest %v", replies, span, worst)
			if min := int(span / (period + 5*time.Millisecond) / 10); replies < min {
				t.Fatalf("canary got %d replies in %v, want at least %d", replies, span, min)
			}

			// Every flooder is closed (its writes fail) and counted.
			for i, f := range floods {
				select {
				case <-f.done:
				case <-time.After(10 * time.Second):
					t.Fatalf("flooder %d still connected after 10s; stats %+v", i, ts.srv.Stats())
				}
			}
			eventually(t, 5*time.Second, "the flooders to be gone", func() bool {
				return ts.srv.Stats().PhysicalConnections == 1
			})
			if n := ts.srv.Stats().SlowConsumers; n != nFlood {
				t.Fatalf("slow_consumers %d, want %d", n, nFlood)
			}
			stopAll()
			canary.sendRaw(string(mux.AppendPing(nil, 1<<40)))
			canary.next(func(f mux.Frame) bool { return f.T == mux.TypePong && f.Seq == 1<<40 })
		})
	}
}

// A client that stops reading while under its queue limit is closed once
// its socket has taken nothing for the write timeout, and counted as a slow
// consumer (docs/protocol.md §6).
func TestWriteTimeoutIsSlowConsumer(t *testing.T) {
	cfg := testConfig()
	cfg.MaxQueueBytes = 64 << 20 // the queue limit is not what closes it
	cfg.WriteTimeout = 500 * time.Millisecond
	cfg.RateLimit, cfg.RateBurst = 1e6, 1e6
	cfg.ConnRate, cfg.ConnBurst = 1e6, 1e6
	ts := startServer(t, cfg)

	paused := dialNeverReading(t, ts)
	paused.WriteMessage(websocket.TextMessage, mux.AppendCmd(nil, 1, 1, mux.CmdAttach, mux.EncodeBody(mux.AttachReq{Name: "paused"})))
	paused.WriteMessage(websocket.TextMessage, mux.AppendCmd(nil, 1, 2, mux.CmdJoin, mux.EncodeBody(mux.JoinReq{Room: "busy"})))
	sender := dial(t, ts, nil)
	sender.attach(1, "sender")
	sender.join(1, "busy")
	eventually(t, 2*time.Second, "both to join", func() bool {
		r := ts.srv.hub.room("busy")
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.count == 2
	})
	text := strings.Repeat("z", 900)
	for i := 0; ts.srv.counters.socketFull.Load() == 0; i++ {
		if i == 20000 {
			t.Fatalf("the paused client's socket never filled; stats %+v", ts.srv.Stats())
		}
		body := mux.EncodeBody(mux.SendReq{Room: "busy", Text: fmt.Sprintf("%05d %s", i, text)})
		if err := sender.ws.WriteMessage(websocket.TextMessage, mux.AppendCmd(nil, 1, uint64(100+i), mux.CmdSend, body)); err != nil {
			t.Fatal(err)
		}
		if i%200 == 199 {
			time.Sleep(10 * time.Millisecond) // let the writes catch up
		}
	}
	eventually(t, 10*time.Second, "the paused client to be closed", func() bool {
		return ts.srv.Stats().PhysicalConnections == 1
	})
	if n := ts.srv.Stats().SlowConsumers; n != 1 {
		t.Fatalf("slow_consumers %d, want 1 (the client closed by the write timeout)", n)
	}
	if n := ts.srv.counters.writeTimeouts.Load(); n != 1 {
		t.Fatalf("write timeouts %d, want 1", n)
	}
	sender.cmd(1, mux.CmdWho, mux.WhoReq{Room: "busy"}) // the sender is unaffected
}

// A silent connection is closed with 4002 within a small slack of the
// heartbeat timeout (docs/protocol.md §6), not up to a quarter of it later.
func TestHeartbeatTimeoutIsPrompt(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.HeartbeatInterval, cfg.HeartbeatTimeout = time.Second, 12*time.Second
	ts := startServer(t, cfg)
	start := time.Now()
	silent := dial(t, ts, nil)
	ce := silent.waitClosed(30 * time.Second)
	took := time.Since(start)
	t.Logf("closed %v after connecting", took)
	if ce == nil || ce.Code != closeHeartbeat {
		t.Fatalf("close %v, want 4002", ce)
	}
	// The documented slack is min(1s, timeout/10); a busy machine gets one
	// second more. A sweep every quarter of the timeout closes it at 15s.
	if took < cfg.HeartbeatTimeout || took > cfg.HeartbeatTimeout+2*time.Second {
		t.Fatalf("closed %v after connecting, want within [%v, %v]", took, cfg.HeartbeatTimeout, cfg.HeartbeatTimeout+2*time.Second)
	}
	if n := ts.srv.counters.hbTimeouts.Load(); n != 1 {
		t.Fatalf("heartbeat timeouts %d, want 1", n)
	}
}
