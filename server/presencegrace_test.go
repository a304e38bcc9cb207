package server

import (
	"strings"
	"testing"
	"time"

	"imload/mux"
	"imload/server/engine"
)

// The presence grace: a user whose last session in a room goes without a
// leave command (a connection lost, a tab detaching, its node dead) stays
// present for the grace; back meanwhile (here or on another node), the
// members are told nothing; not back, they are told it left once the
// grace is over. A leave command is told at once.
func TestPresenceGrace(t *testing.T) {
	const grace = 400 * time.Millisecond
	cfg := testConfig()
	cfg.PresenceInterval = 0 // every change at once: what is held is the grace's doing
	cfg.PresenceGrace = grace
	ts := startServer(t, cfg)
	isPresence := func(f mux.Frame) bool {
		return f.T == mux.TypePush && (f.Ev == mux.EvJoin || f.Ev == mux.EvLeave)
	}
	alice := dial(t, ts, nil)
	alice.attach(1, "alice")
	alice.join(1, "r")
	whoIs := func() string {
		var w mux.WhoResp
		alice.ok(1, mux.CmdWho, mux.WhoReq{Room: "r"}, &w)
		names := make([]string, len(w.Users))
		for i, u := range w.Users {
			names[i] = u.Name
		}
		return strings.Join(names, ",")
	}
	expect := func(ev, user string) {
		t.Helper()
		var p mux.Presence
		f := alice.next(isPresence)
		if err := jsonBody(f, &p); err != nil || f.Ev != ev || p.User != user {
			t.Fatalf("presence push %s %+v (%v), want %s of %s", f.Ev, p, err, ev, user)
		}
	}

	// bob's connection is lost (no close frame), and bob comes back with
	// its token within the grace: nothing to tell.
	bob := dial(t, ts, nil)
	tok := bob.attach(1, "bob").Token
	bob.join(1, "r")
	expect(mux.EvJoin, "bob")
	bob.ws.UnderlyingConn().Close()
	alice.none(grace/2, "a presence push while bob's leave is held", isPresence)
	if got := whoIs(); got != "alice,bob" {
		t.Fatalf("who during the grace: %s", got)
	}
	bob2 := dial(t, ts, nil)
	bob2.ok(1, mux.CmdAttach, mux.AttachReq{Name: "bob", Token: tok, Mode: mux.ModeLoadgen}, nil)
	bob2.join(1, "r")
	alice.none(grace+200*time.Millisecond, "a presence push for bob back within the grace", isPresence)
	if got := whoIs(); got != "alice,bob" {
		t.Fatalf("who with bob back: %s", got)
	}
	if held, kept := ts.srv.counters.presenceHeld.Load(), ts.srv.counters.presenceKept.Load(); held != 1 || kept != 1 {
		t.Fatalf("presence held %d, kept %d: want 1, 1", held, kept)
	}

	// A detach (the tab closing) is held too; not back, bob leaves after
	// the grace, once.
	start := time.Now()
	bob2.ok(1, mux.CmdDetach, nil, nil)
	alice.none(grace/2, "a leave before the grace is over", isPresence)
	expect(mux.EvLeave, "bob")
	if d := time.Since(start); d < grace {
		t.Fatalf("bob's leave came after %v, before the grace (%v)", d, grace)
	}
	alice.none(grace, "a second leave", isPresence)
	if got := whoIs(); got != "alice" {
		t.Fatalf("who after the grace: %s", got)
	}

	// A leave command is told at once.
	bob2.ok(2, mux.CmdAttach, mux.AttachReq{Name: "bob", Token: tok, Mode: mux.ModeLoadgen}, nil)
	bob2.join(2, "r")
	expect(mux.EvJoin, "bob")
	start = time.Now()
	bob2.ok(2, mux.CmdLeave, mux.LeaveReq{Room: "r"}, nil)
	expect(mux.EvLeave, "bob")
	if d := time.Since(start); d >= grace {
		t.Fatalf("a leave command was told after %v: held", d)
	}

	// A user present only on a node that died lingers too: back on
	// another node within the grace, nothing is told; gone for good, it
	// leaves after the grace.
	sink := nodeSink{s: ts.srv}
	carol := engine.Author{Name: "carol", Color: engine.Color("carol")}
	sink.Presence("r", engine.Present{User: carol, Node: "n2"}, true)
	expect(mux.EvJoin, "carol")
	sink.NodeGone("n2")
	alice.none(grace/2, "a leave of carol while its browsers move", isPresence)
	sink.Presence("r", engine.Present{User: carol, Node: "n3"}, true)
	alice.none(grace+200*time.Millisecond, "a presence push for carol back on another node", isPresence)
	sink.NodeGone("n3")
	expect(mux.EvLeave, "carol")
	if got := whoIs(); got != "alice" {
		t.Fatalf("who after carol's nodes died: %s", got)
	}
}
