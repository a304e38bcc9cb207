package server

import (
	"context"
	"testing"

	"imload/server/engine"
	"imload/server/engine/enginetest"
	"imload/server/engine/local"
)

// A retained message is encoded for history replies (the node's
// appendEntry) exactly as the engine encoded its push, with and without a
// cid, and a resent cid finds its own text.
func TestRoomEntryEncodesAsPushed(t *testing.T) {
	eng, err := local.New(context.Background(), local.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Start(context.Background(), enginetest.NewSink(localNode)); err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	var r *room
	eng.Open("room-1", true, func(o engine.Opened, err error) {
		if err != nil {
			t.Fatal(err)
		}
		r = newRoom("room-1", o.Log)
	})
	who := &engine.Author{Name: "alice", Color: "#d9480f"}
	for i, d := range []engine.Draft{
		{Text: "plain", CID: "c-1"},
		{Text: "<b>\"q\"</b> \u2028 日本", CID: ""},
		{Text: "", CID: "only-cid"},
	} {
		d.Who, d.TS = who, int64(1000+i)
		tk, err := r.log.Publish(&d)
		if err != nil {
			t.Fatal(err)
		}
		rel := r.log.Take(nil)
		if len(rel) != 1 || rel[0].Ticket != tk || rel[0].Entry == nil {
			t.Fatalf("message %d: took %+v", i, rel)
		}
		e := rel[0].Entry
		if got := r.appendEntry(nil, e); string(got) != string(rel[0].Body) {
			t.Fatalf("message %d: history %s, push %s", i, got, rel[0].Body)
		}
		if e.Text() != d.Text || e.CID() != d.CID {
			t.Fatalf("message %d: text %q cid %q", i, e.Text(), e.CID())
		}
	}
	d := engine.Draft{Who: who, Text: "", CID: "only-cid", TS: 2000}
	r.log.Publish(&d)
	if rel := r.log.Take(nil); len(rel) != 1 || !rel[0].Dup || rel[0].Off != 3 {
		t.Fatalf("resent cid: %+v", rel)
	}
}
