package server

import (
	"strings"
	"testing"
	"time"

	"imload/mux"
)

// waitConns waits until the server has n connections.
func waitConns(t *testing.T, ts *testServer, n int64) {
	t.Helper()
	eventually(t, 5*time.Second, "the server to see the connection go", func() bool {
		return ts.srv.Stats().PhysicalConnections == n
	})
}

// A name is reserved to its token after its owner's connection drops: a
// squatter (no token, or another one) is refused, DMs to the name fail and
// reach nobody, and the owner coming back with its token gets the name.
func TestNameReservedForOwner(t *testing.T) {
	ts := startServer(t, testConfig())
	owner := dial(t, ts, nil)
	a := owner.attach(1, "alice")
	bob := dial(t, ts, nil)
	bob.attach(1, "bob")
	owner.ws.Close() // the connection drops
	waitConns(t, ts, 1)

	squatter := dial(t, ts, nil)
	f := squatter.cmd(1, mux.CmdAttach, mux.AttachReq{Name: "alice"})
	if f.Code != mux.CodeNameTaken || f.Err != mux.ErrNameTaken || !strings.Contains(f.Msg, "reserved") {
		t.Fatalf("squatter without a token: %d %s %q, want 409 name_taken (reserved)", f.Code, f.Err, f.Msg)
	}
	squatter.fails(1, mux.CmdAttach, mux.AttachReq{Name: "alice", Token: "guess"}, mux.CodeNameTaken, mux.ErrNameTaken)
	squatter.attach(1, "mallory")
	squatter.fails(1, mux.CmdNick, mux.NickReq{Name: "alice"}, mux.CodeBadRequest, mux.ErrBadRequest) // named already
	squatter.ok(2, mux.CmdAttach, mux.AttachReq{}, nil)
	squatter.fails(2, mux.CmdNick, mux.NickReq{Name: "alice"}, mux.CodeNameTaken, mux.ErrNameTaken)

	bob.fails(1, mux.CmdDM, mux.DMReq{To: "alice", Text: "are you there?"}, mux.CodeUserOffline, mux.ErrUserOffline)
	if st := ts.srv.Stats(); st.DMsOut != 0 || st.Users != 2 {
		t.Fatalf("stats %+v: want no dm delivered and 2 users online (bob, mallory)", st)
	}

	back := dial(t, ts, nil)
	var r mux.AttachResp
	back.ok(1, mux.CmdAttach, mux.AttachReq{Name: "alice", Token: a.Token}, &r)
	if r.User != "alice" || r.Color != a.Color || r.Token != a.Token {
		t.Fatalf("owner back: %+v, want %+v", r, a)
	}
	bob.ok(1, mux.CmdDM, mux.DMReq{To: "alice", Text: "welcome back"}, nil)
	var d mux.DM
	back.push(mux.EvDM, &d)
	if d.Text != "welcome back" {
		t.Fatalf("dm %+v", d)
	}
	for _, f := range squatter.buf {
		if f.Ev == mux.EvDM {
			t.Fatalf("the squatter received a dm: %+v", f)
		}
	}
}

// The reservation ends after the grace period: then the name is free.
func TestNameReservationExpires(t *testing.T) {
	cfg := testConfig()
	cfg.NameGrace = 300 * time.Millisecond
	ts := startServer(t, cfg)
	owner := dial(t, ts, nil)
	if owner.hello.NameGraceMS != 300 {
		t.Fatalf("hello name_grace_ms %d", owner.hello.NameGraceMS)
	}
	owner.attach(1, "alice")
	owner.ws.Close()
	waitConns(t, ts, 0)
	other := dial(t, ts, nil)
	other.fails(1, mux.CmdAttach, mux.AttachReq{Name: "alice"}, mux.CodeNameTaken, mux.ErrNameTaken)
	if n := ts.srv.engine.Reserved(); n != 1 {
		t.Fatalf("%d reserved names, want 1", n)
	}
	eventually(t, 10*time.Second, "the reservation to end", func() bool {
		return other.cmd(1, mux.CmdAttach, mux.AttachReq{Name: "alice"}).Code == mux.CodeOK
	})
	if n := ts.srv.engine.Reserved(); n != 0 {
		t.Fatalf("%d reserved names after the grace period, want 0", n)
	}
}

// The reservation table is bounded: beyond MaxReservedNames the oldest
// reservation ends early.
func TestReservedNamesBounded(t *testing.T) {
	cfg := testConfig()
	cfg.MaxReservedNames = 3
	ts := startServer(t, cfg)
	c := dial(t, ts, nil)
	names := []string{"n0", "n1", "n2", "n3", "n4"}
	for i, n := range names {
		c.attach(uint32(i+1), n)
		c.ok(uint32(i+1), mux.CmdDetach, nil, nil)
	}
	if n := ts.srv.engine.Reserved(); n != 3 {
		t.Fatalf("%d reserved names, want 3", n)
	}
	other := dial(t, ts, nil)
	other.attach(1, "n0") // evicted: free
	other.attach(2, "n1")
	other.fails(3, mux.CmdAttach, mux.AttachReq{Name: "n2"}, mux.CodeNameTaken, mux.ErrNameTaken)
	if n := ts.srv.counters.namesEvicted.Load(); n != 2 {
		t.Fatalf("names_evicted %d, want 2", n)
	}
}

// Names are unique without regard to case, and a name's letters are of one
// script: "ALICE" cannot stand next to "alice", nor "аlice" (with a
// Cyrillic а) pass for it.
func TestNamesCaseAndScript(t *testing.T) {
	ts := startServer(t, testConfig())
	alice := dial(t, ts, nil)
	a := alice.attach(1, "alice")
	other := dial(t, ts, nil)
	other.fails(1, mux.CmdAttach, mux.AttachReq{Name: "ALICE"}, mux.CodeNameTaken, mux.ErrNameTaken)
	other.fails(1, mux.CmdAttach, mux.AttachReq{Name: "Alice"}, mux.CodeNameTaken, mux.ErrNameTaken)
	f := other.cmd(1, mux.CmdAttach, mux.AttachReq{Name: "аlice"})
	if f.Code != mux.CodeBadRequest || f.Err != mux.ErrBadRequest || !strings.Contains(f.Msg, "Cyrillic and Latin") {
		t.Fatalf("Cyrillic а in alice: %d %s %q, want 400 naming the scripts", f.Code, f.Err, f.Msg)
	}
	other.fails(1, mux.CmdDM, mux.DMReq{To: "аlice", Text: "x"}, mux.CodeNotAttached, mux.ErrNotAttached)
	other.attach(1, "bob")
	other.fails(1, mux.CmdDM, mux.DMReq{To: "аlice", Text: "x"}, mux.CodeBadRequest, mux.ErrBadRequest)
	other.ok(1, mux.CmdDM, mux.DMReq{To: "ALICE", Text: "hi"}, nil) // the same name
	var d mux.DM
	alice.push(mux.EvDM, &d)
	if d.To != "alice" {
		t.Fatalf("dm to %q", d.To)
	}
	// The owner's token takes the name in any case; it keeps its spelling.
	var r mux.AttachResp
	other.ok(2, mux.CmdAttach, mux.AttachReq{Name: "ALICE", Token: a.Token}, &r)
	if r.User != "alice" {
		t.Fatalf("user %q, want alice", r.User)
	}
	other.ok(2, mux.CmdDetach, nil, nil)
	alice.ws.Close()
	waitConns(t, ts, 1)
	other.ok(3, mux.CmdAttach, mux.AttachReq{}, nil)
	other.fails(3, mux.CmdNick, mux.NickReq{Name: "Alice"}, mux.CodeNameTaken, mux.ErrNameTaken) // reserved
}
