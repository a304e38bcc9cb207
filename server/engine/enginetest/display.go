package enginetest

import (
	"encoding/json"
	"testing"

	"imload/mux"
	"imload/server/engine"
)

// carol has a display name (a verified user's name claim), with the
// characters an engine's encodings must carry: quotes, '|', ':' and
// non-ASCII.
var carol = &engine.Author{Name: "carol", Color: "#123456", Display: `Carol "C" | Smith: ü`}

// A sender's display name goes with its messages: a room message's push
// and retained entry, a private message's pushes (to the recipient and to
// the sender's other sessions) and its history; a sender without one has
// none.
func testDisplayNames(t *testing.T, h *harness) {
	r := h.open("r")
	for _, who := range []*engine.Author{carol, alice} {
		rel := r.send(draft(who, "hi from "+who.Name, "c-"+who.Name))
		var m mux.Message
		if err := json.Unmarshal(rel.Body, &m); err != nil {
			t.Fatalf("body %s: %v", rel.Body, err)
		}
		if m.From != who.Name || m.Color != who.Color || m.Display != who.Display {
			t.Fatalf("body %+v, want from %q colour %q display %q", m, who.Name, who.Color, who.Display)
		}
		if rel.Entry == nil || rel.Entry.Who.Display != who.Display {
			t.Fatalf("entry %+v, want the author %+v", rel.Entry, who)
		}
	}
	c := h.mustClaim("carol", "", 1, 1)
	h.mustClaim("carol", "", 1, 2)
	b := h.mustClaim("bob", "", 2, 1)
	h.mustClaim("bob", "", 2, 2)
	s := h.dm(carol, c.Gen, h.session(1, 1), "bob", "psst")
	h.dm(bob, b.Gen, h.session(2, 1), "carol", "what")
	bodies := h.waitDMBodies(map[string][]string{"psst": {"bob", "carol"}, "what": {"bob", "carol"}})
	for _, m := range bodies["psst"] {
		if m.From != "carol" || m.Display != carol.Display || m.Color != carol.Color {
			t.Fatalf("dm push %+v, want carol's display name %q", m, carol.Display)
		}
	}
	if m := bodies["what"][0]; m.Display != "" {
		t.Fatalf("dm push %+v from bob, who has no display name", m)
	}
	if h.cfg.DMHistoryMax == 0 {
		if s.Off != 0 {
			t.Fatalf("sent %+v without DM history", s)
		}
		return
	}
	p := h.history(engine.DMQuery{User: "bob", Gen: b.Gen, Peer: "carol"})
	if len(p.Messages) != 2 || p.Messages[0].Display != carol.Display || p.Messages[1].Display != "" {
		t.Fatalf("bob reads %+v, want carol's message with her display name, then his without", p.Messages)
	}
}
