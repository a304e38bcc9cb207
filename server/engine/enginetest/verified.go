package enginetest

import (
	"slices"
	"testing"
	"time"

	"imload/mux"
	"imload/server/engine"
)

// The users of verified sessions (--auth jwt), the server API's
// disconnect, connection list and DMs without a sending session.

// verify claims name for session sid of connection id as a verified user.
func (h *harness) verify(name string, id uint64, sid uint32) (engine.Claimed, error) {
	h.t.Helper()
	c := engine.Claim{Name: name, Verified: true, Session: h.session(id, sid)}
	return await(h.t, "verified Claim "+name, func(done func(engine.Claimed, error)) { h.e.Claim(c, done) })
}

func testVerified(t *testing.T, h *harness) {
	a, err := h.verify("alice", 1, 1)
	if err != nil || a.User.Name != "alice" || a.Token != "" {
		t.Fatalf("verified claim: %+v %v, want alice without a token", a, err)
	}
	// The real owner on another connection: no first-come rule, no token.
	if _, err := h.verify("alice", 2, 1); err != nil {
		t.Fatalf("the verified owner on a second connection: %v", err)
	}
	// Nobody takes a verified user's name without Verified: no token, a
	// made-up one, the one it was given (""), on its own connection.
	for _, tok := range []string{"", "guess", a.Token} {
		_, err := h.claim("alice", tok, 3, 1, 0)
		refused(t, "an unverified claim of a verified name, token "+tok, err, mux.CodeNameTaken, mux.ErrNameTaken)
	}
	_, err = h.claim("alice", "", 1, 2, 0)
	refused(t, "an unverified claim on the verified user's connection", err, mux.CodeNameTaken, mux.ErrNameTaken)
	// Another subject of the same case fold: one user per name.
	_, err = h.verify("Alice", 4, 1)
	refused(t, "a verified claim of another spelling", err, mux.CodeNameTaken, mux.ErrNameTaken)
	// A name held by an unverified user is not taken by a verified claim.
	h.mustClaim("bob", "tok-b", 5, 1)
	_, err = h.verify("bob", 6, 1)
	refused(t, "a verified claim of an unverified user's name", err, mux.CodeNameTaken, mux.ErrNameTaken)
	eventually(t, "2 users online", func() bool { return h.e.Online() == 2 })
}

func testVerifiedReservation(t *testing.T, h *harness) {
	if _, err := h.verify("alice", 1, 1); err != nil {
		t.Fatal(err)
	}
	h.e.Release("alice", h.session(1, 1))
	eventually(t, "alice reserved", func() bool { return h.e.Online() == 0 && h.e.Reserved() == 1 })
	_, err := h.claim("alice", "", 2, 1, 0)
	refused(t, "an unverified claim of a reserved verified name", err, mux.CodeNameTaken, mux.ErrNameTaken)
	if _, err := h.verify("alice", 2, 1); err != nil {
		t.Fatalf("the verified owner back: %v", err)
	}
}

func testDisconnect(t *testing.T, h *harness) {
	if _, err := h.verify("alice", 1, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := h.verify("alice", 1, 2); err != nil {
		t.Fatal(err)
	}
	if _, err := h.verify("alice", 2, 1); err != nil {
		t.Fatal(err)
	}
	h.mustClaim("bob", "", 3, 1)
	disconnect := func(name string) int {
		t.Helper()
		n, err := await(t, "Disconnect "+name, func(done func(int, error)) { h.e.Disconnect(name, "banned", done) })
		if err != nil {
			t.Fatalf("Disconnect %s: %v", name, err)
		}
		return n
	}
	if n := disconnect("ALICE"); n != 3 {
		t.Fatalf("Disconnect alice: %d sessions, want 3", n)
	}
	eventually(t, "the node told", func() bool { return len(h.sink.Disconnects()) == 1 })
	if d := h.sink.Disconnects()[0]; d.User != mux.NameKey("alice") || d.Reason != "banned" {
		t.Fatalf("Sink.Disconnect %+v", d)
	}
	if n := disconnect("nobody"); n != 0 {
		t.Fatalf("Disconnect nobody: %d", n)
	}
	time.Sleep(50 * time.Millisecond)
	if d := h.sink.Disconnects(); len(d) != 1 {
		t.Fatalf("disconnects %+v: a user with no session is not disconnected", d)
	}
}

func testConns(t *testing.T, h *harness) {
	a := h.mustClaim("alice", "", 1, 1)
	h.mustClaim("alice", "", 1, 2)
	h.mustClaim("alice", a.Token, 2, 1)
	h.mustClaim("bob", "", 3, 1)
	conns := func(name string) []engine.UserConn {
		t.Helper()
		cs, err := await(t, "Conns "+name, func(done func([]engine.UserConn, error)) { h.e.Conns(name, done) })
		if err != nil {
			t.Fatalf("Conns %s: %v", name, err)
		}
		return cs
	}
	cs := conns("Alice")
	got := make([]uint64, len(cs))
	for i, c := range cs {
		got[i] = c.Conn.ID
		if c.Conn.Node != h.sink.node {
			t.Fatalf("connection %+v of another node", c)
		}
	}
	if !slices.Equal(got, []uint64{1, 2}) || cs[0].Sessions != 2 || cs[1].Sessions != 1 {
		t.Fatalf("alice's connections %+v, want 1 (2 sessions) and 2 (1)", cs)
	}
	if cs := conns("nobody"); len(cs) != 0 {
		t.Fatalf("nobody's connections %+v", cs)
	}
	h.e.Release("alice", h.session(2, 1))
	eventually(t, "connection 2 gone", func() bool { return len(conns("alice")) == 1 })
}

// testDMNoSender: a DM without a sending session (the server API) goes to
// every session of the recipient and of the sender.
func testDMNoSender(t *testing.T, h *harness) {
	h.mustClaim("alice", "", 1, 1)
	h.mustClaim("alice", "", 1, 2)
	h.mustClaim("bob", "", 2, 1)
	d := engine.DMSend{From: *alice, To: "bob", Text: "from the api", TS: time.Now().UnixMilli()}
	sent, err := await(t, "DM", func(done func(engine.DMSent, error)) { h.e.DM(d, done) })
	if err != nil || sent.Sessions != 3 {
		t.Fatalf("DM without a sending session: %+v %v, want 3 sessions (bob's and both of alice's)", sent, err)
	}
	sys := engine.DMSend{From: engine.Author{Name: "@system", Color: "#000000"}, To: "bob", Text: "notice", TS: time.Now().UnixMilli()}
	sent2, err := await(t, "DM", func(done func(engine.DMSent, error)) { h.e.DM(sys, done) })
	if err != nil || sent2.Sessions != 1 {
		t.Fatalf("DM from no user: %+v %v, want bob's 1 session", sent2, err)
	}
	got, ok := h.sink.waitDeliveries(map[uint64][]string{
		sent.ID:  {mux.NameKey("alice"), mux.NameKey("bob")},
		sent2.ID: {mux.NameKey("bob")},
	}, wait)
	if !ok {
		t.Fatalf("deliveries %+v", got)
	}
	for _, d := range got[sent.ID] {
		if d.Except != (engine.SessionRef{}) {
			t.Fatalf("a delivery except %+v, want none", d.Except)
		}
	}
}
