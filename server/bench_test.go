package server

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"imload/mux"
)

// BenchmarkFanout measures a room message end to end over loopback: one
// sender, a room of `members` connections (each with `tabs` sessions), every
// receiver reading on its own goroutine. One op is one message delivered to
// every member; deliveries/s counts sessions.
func BenchmarkFanout(b *testing.B) {
	for _, tc := range []struct{ members, tabs int }{{50, 1}, {50, 3}, {500, 1}} {
		b.Run(fmt.Sprintf("conns=%d/tabs=%d", tc.members, tc.tabs), func(b *testing.B) {
			benchFanout(b, tc.members, tc.tabs)
		})
	}
}

func benchFanout(b *testing.B, members, tabs int) {
	cfg := testConfig()
	cfg.RateLimit, cfg.RateBurst = 1e9, 1<<30
	cfg.ConnRate, cfg.ConnBurst = 1e9, 1<<30 // the sender's commands: not what is measured
	cfg.MaxQueueBytes = 64 << 20
	ts := startServer(b, cfg)
	var received atomic.Int64
	var wg sync.WaitGroup
	conns := make([]*websocket.Conn, 0, members)
	for i := range members {
		ws, _, err := websocket.DefaultDialer.Dial(ts.url(), nil)
		if err != nil {
			b.Fatal(err)
		}
		conns = append(conns, ws)
		var msg []byte
		for sid := 1; sid <= tabs; sid++ {
			msg = mux.AppendCmd(msg, uint32(sid), 1, mux.CmdAttach, mux.EncodeBody(mux.AttachReq{Name: fmt.Sprint("u", i), Mode: mux.ModeLoadgen}))
			msg = append(msg, '\n')
			msg = mux.AppendCmd(msg, uint32(sid), 2, mux.CmdJoin, mux.EncodeBody(mux.JoinReq{Room: "bench"}))
			msg = append(msg, '\n')
		}
		ws.WriteMessage(websocket.TextMessage, msg)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				_, m, err := ws.ReadMessage()
				if err != nil {
					return
				}
				mux.SplitMessage(m, mux.Limits{}, func(f []byte) error {
					if len(f) > 12 && string(f[:12]) == `{"t":"push",` {
						received.Add(1)
					}
					return nil
				})
			}
		}()
	}
	sender, _, err := websocket.DefaultDialer.Dial(ts.url(), nil)
	if err != nil {
		b.Fatal(err)
	}
	go func() {
		for {
			if _, _, err := sender.ReadMessage(); err != nil {
				return
			}
		}
	}()
	sender.WriteMessage(websocket.TextMessage, []byte(string(mux.AppendCmd(nil, 1, 1, mux.CmdAttach, mux.EncodeBody(mux.AttachReq{Name: "sender"})))+"\n"+string(mux.AppendCmd(nil, 1, 2, mux.CmdJoin, mux.EncodeBody(mux.JoinReq{Room: "bench"})))))
	for ts.srv.Stats().LogicalSessions != int64(members*tabs+1) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	received.Store(0) // presence pushes
	text := "a chat message of about sixty-four bytes, like most of them are."
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	seq := uint64(10)
	for i := 0; i < b.N; {
		var batch []byte
		for k := 0; k < 32 && i < b.N; k++ {
			seq++
			batch = mux.AppendCmd(batch, 1, seq, mux.CmdSend, mux.EncodeBody(mux.SendReq{Room: "bench", Text: text}))
			batch = append(batch, '\n')
			i++
		}
		sender.WriteMessage(websocket.TextMessage, batch)
	}
	want := int64(b.N * members)
	deadline := time.Now().Add(60 * time.Second)
	for received.Load() < want && time.Now().Before(deadline) {
		time.Sleep(100 * time.Microsecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	if got := received.Load(); got < want {
		b.Fatalf("received %d of %d pushes", got, want)
	}
	b.ReportMetric(float64(b.N*members*tabs)/elapsed.Seconds(), "deliveries/s")
	sender.Close()
	for _, c := range conns {
		c.Close()
	}
	wg.Wait()
}
