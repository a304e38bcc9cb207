package wire

import (
	"strconv"
	"testing"
)

// BenchmarkImloadRead decodes a message of 16 room pushes for 3 sessions
// (the engine's side is loadgen's BenchmarkReadPushes).
func BenchmarkImloadRead(b *testing.B) {
	r := imloadWire{}.NewReader()
	var msg []byte
	for i := range 16 {
		if i > 0 {
			msg = append(msg, '\n')
		}
		msg = append(msg, `{"t":"push","sids":[1,2,3],"ev":"msg","body":{"room":"lg1-0","offset":`...)
		msg = strconv.AppendInt(msg, int64(i+1), 10)
		msg = append(msg, `,"epoch":"ep","from":"u1","color":"#e8590c","text":"abc123:5:17:1000|..........................................................................","ts":1764167400123,"cid":"c5-17"}}`...)
	}
	kindOf := func(uint64) (CmdKind, bool) { return 0, false }
	n := 0
	emit := func(ev *Event) { n += len(ev.Sids) }
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		r.Read(msg, kindOf, emit)
	}
	if n == 0 {
		b.Fatal("no event")
	}
}
