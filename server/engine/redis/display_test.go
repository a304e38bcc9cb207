package redis

import (
	"encoding/json"
	"testing"

	"imload/mux"
	"imload/server/engine"
	"imload/server/redistest"
)

// A display name crosses nodes with what carries it: a room message (its
// push and entry on the other node, and a read of the stream), and
// presence (the channel's change and the presence set Who reads).
func TestDisplayAcrossNodes(t *testing.T) {
	db := redistest.Shared(t).DB(t)
	nodes := startNodes(t, db.URL, db.Prefix, nil, "a", "b", "c")
	carol := &engine.Author{Name: "carol", Color: "#123456", Display: `Carol "C" | Smith: ü`}
	ra, rb := nodes[0].open("r"), nodes[1].open("r")
	ra.outcome(mustPublish(t, ra, carol, "one"))
	ra.outcome(mustPublish(t, ra, author("dave"), "two"))
	eventually(t, "b has both", func() bool { return len(rb.messages()) == 2 })
	msgs := rb.messages()
	for i, want := range []string{carol.Display, ""} {
		var m mux.Message
		if err := json.Unmarshal(msgs[i].Body, &m); err != nil {
			t.Fatal(err)
		}
		if m.Display != want || msgs[i].Entry.Who.Display != want {
			t.Fatalf("node b: message %+v (entry's author %+v), want display %q", m, msgs[i].Entry.Who, want)
		}
	}
	rc := nodes[2].open("r") // c reads them from the stream
	rc.mu.Lock()
	es, _ := rc.log.Last(10)
	rc.mu.Unlock()
	if len(es) != 2 || es[0].Who.Display != carol.Display || es[1].Who.Display != "" {
		t.Fatalf("node c reads %d messages: %+v", len(es), es)
	}

	nodes[0].e.SetPresent("r", *carol, true)
	eventually(t, "b sees carol's display name", func() bool {
		for _, c := range nodes[1].sink.PresenceCalls() {
			if c.Room == "r" && c.In && c.P.User == *carol && c.P.Node == "a" {
				return true
			}
		}
		return false
	})
	who, err := await(t, "Who", func(done func([]engine.Present, error)) { nodes[2].e.Who("r", done) })
	if err != nil || len(who) != 1 || who[0].User != *carol {
		t.Fatalf("Who = %+v, %v; want carol with her display name", who, err)
	}
	nodes[0].e.SetPresent("r", *carol, false)
	eventually(t, "carol gone", func() bool {
		who, err := await(t, "Who", func(done func([]engine.Present, error)) { nodes[2].e.Who("r", done) })
		return err == nil && len(who) == 0
	})
}

func mustPublish(t *testing.T, r *room, who *engine.Author, text string) uint64 {
	t.Helper()
	tk, err := r.publish(who, text, "")
	if err != nil {
		t.Fatalf("publish %q: %v", text, err)
	}
	return tk
}
