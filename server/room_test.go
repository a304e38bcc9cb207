package server

import (
	"testing"

	"imload/mux"
	"imload/server/engine"
)

// A retained message is encoded for history replies exactly as its push
// was, with and without a cid, and a resent cid finds its own text.
func TestRoomEntryEncodesAsSent(t *testing.T) {
	r := newRoom("room-1", "ep0ch")
	who := &engine.Author{Name: "alice", Color: "#d9480f"}
	for i, m := range []mux.Message{
		{Text: "plain", CID: "c-1"},
		{Text: "<b>\"q\"</b> \u2028 日本", CID: ""},
		{Text: "", CID: "only-cid"},
	} {
		r.top++
		m.Room, m.Epoch, m.Offset, m.From, m.Color, m.TS = r.name, r.epoch, r.top, who.Name, who.Color, int64(1000+i)
		r.add(&m, who, 10)
		pushed := mux.AppendMessage(nil, &m)
		e := r.hist.At(r.hist.Len() - 1)
		if got := r.appendEntry(nil, e); string(got) != string(pushed) {
			t.Fatalf("message %d: history %s, push %s", i, got, pushed)
		}
		if e.Text() != m.Text || e.CID() != m.CID {
			t.Fatalf("message %d: text %q cid %q", i, e.Text(), e.CID())
		}
	}
	if e, ok := r.sentBefore("alice", "only-cid"); !ok || e.Off != 3 || e.Text() != "" {
		t.Fatalf("resent cid: %v %v", e, ok)
	}
}
