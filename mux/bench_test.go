package mux

import "testing"

var sinkFrame Frame

func BenchmarkDecodeCmd(b *testing.B) {
	msg := AppendCmd(nil, 3, 12345, CmdSend, EncodeBody(SendReq{Room: "room-42", Text: "hello there, this is a chat message of ordinary length", CID: "c-99"}))
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		f, err := DecodeFrame(msg)
		if err != nil {
			b.Fatal(err)
		}
		var r SendReq
		if err := BodyOf(f.Body, &r); err != nil {
			b.Fatal(err)
		}
		sinkFrame = f
	}
}

func BenchmarkSplitMessage16(b *testing.B) {
	var msg []byte
	for i := range 16 {
		msg = AppendPing(msg, uint64(i+1))
		msg = append(msg, '\n')
	}
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	l := DefaultLimits()
	for b.Loop() {
		n := 0
		_ = SplitMessage(msg, l, func([]byte) error { n++; return nil })
	}
}

// BenchmarkEncodeMessageBody is the once-per-message cost of a room message.
func BenchmarkEncodeMessageBody(b *testing.B) {
	m := Message{Room: "room-42", Offset: 123456, Epoch: "3bac6a1ddbc4", From: "alice", Color: "#d9480f", Text: "hello there, this is a chat message of ordinary length", TS: 1764167400123, CID: "c-99"}
	b.ReportAllocs()
	for b.Loop() {
		_ = EncodeBody(m)
	}
}

// BenchmarkAppendMessage is the same body written without reflection, as
// the server does.
func BenchmarkAppendMessage(b *testing.B) {
	m := Message{Room: "room-42", Offset: 123456, Epoch: "3bac6a1ddbc4", From: "alice", Color: "#d9480f", Text: "hello there, this is a chat message of ordinary length", TS: 1764167400123, CID: "c-99"}
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendMessage(buf[:0], &m)
	}
}

// BenchmarkAppendPush is the per-receiving-connection cost when the head is
// not cached (the server caches it; see server's fan-out benchmark).
func BenchmarkAppendPush(b *testing.B) {
	body := EncodeBody(Message{Room: "room-42", Offset: 123456, Epoch: "3bac6a1ddbc4", From: "alice", Text: "hello there"})
	sids := []uint32{1, 2, 3}
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendPush(buf[:0], sids, EvMsg, body)
	}
}

func BenchmarkAppendReply(b *testing.B) {
	body := []byte(`{"room":"room-42","epoch":"3bac6a1ddbc4","offset":123456,"ts":1764167400123}`)
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendReply(buf[:0], 3, 12345, body)
	}
}

func BenchmarkBatch64(b *testing.B) {
	frame := AppendPong(nil, 12345)
	bt := NewBatch(64, 64<<10)
	b.ReportAllocs()
	for b.Loop() {
		bt.Reset()
		for bt.Add(frame) {
		}
	}
}
