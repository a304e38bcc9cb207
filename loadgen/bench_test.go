package loadgen

import (
	"strconv"
	"testing"
	"time"

	"imload/loadgen/wire"
	"imload/reports"
)

// BenchmarkReadPushes is the generator's hot path: a WebSocket message of
// 16 room pushes, each for the 3 tabs of a shared socket, decoded by the
// wire and applied by the engine (verification, content check, latency).
func BenchmarkReadPushes(b *testing.B) {
	sc := Scenario{Targets: []string{"ws://127.0.0.1:1/ws"}, Clients: 2, Tabs: 3, Rooms: 1, RoomsPerUser: 1}.withDefaults()
	w, err := wire.New(sc.Protocol, wire.Config{})
	if err != nil {
		b.Fatal(err)
	}
	e := newEngine(sc, reports.ModeShared, &options{logf: func(string, ...any) {}, pacer: func(r float64) Pacer { return PoissonPacer{PerSecond: r} }},
		w, targetList{addrs: sc.Targets, base: "http://127.0.0.1:1"})
	e.t0 = time.Now()
	s := e.browsers[0].socks[0]
	s.up = true
	s.linkUp(e.nodeOf(sc.Targets[0]))
	for i, t := range s.tabs {
		t.sid, t.inc, t.att = uint32(i+1), 1, true
		t.tracks = []roomTrack{{room: 0, joined: true, epoch: "ep"}}
	}
	// 64 messages of 16 pushes each: offsets 1..1024, then again.
	var msgs [][]byte
	off := 0
	for range 64 {
		var msg []byte
		for f := range 16 {
			off++
			if f > 0 {
				msg = append(msg, '\n')
			}
			msg = append(msg, `{"t":"push","sids":[1,2,3],"ev":"msg","body":{"room":"`+e.rooms[0]+`","offset":`...)
			msg = strconv.AppendInt(msg, int64(off), 10)
			msg = append(msg, `,"epoch":"ep","from":"u1","color":"#e8590c","text":"`...)
			msg = appendText(msg, e.tag, 5, uint32(off), 1000, 0, 100)
			msg = append(msg, `","ts":1764167400123,"cid":"c5-`...)
			msg = strconv.AppendInt(msg, int64(off), 10)
			msg = append(msg, `"}}`...)
		}
		msgs = append(msgs, msg)
	}
	r := &reader{}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		k := i % len(msgs)
		if k == 0 {
			for _, t := range s.tabs {
				t.tracks[0].got = t.tracks[0].got[:0]
			}
		}
		r.read(s, msgs[k])
	}
	b.StopTimer()
	if e.cnt.delivered.Load() == 0 || e.cnt.totalErrors() != 0 || s.node.delivered.Load() != e.cnt.delivered.Load() {
		b.Fatalf("delivered %d (%d on the node), errors %v", e.cnt.delivered.Load(), s.node.delivered.Load(), e.cnt.errorsMap())
	}
}
