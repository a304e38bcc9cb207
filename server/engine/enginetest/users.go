package enginetest

import (
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"imload/mux"
	"imload/server/engine"
)

// session names session sid of connection id of the suite's node.
func (h *harness) session(id uint64, sid uint32) engine.SessionRef {
	return engine.SessionRef{Conn: engine.ConnRef{Node: h.sink.node, ID: id, Since: time.Unix(1e9+int64(id), 0)}, SID: sid}
}

// claim claims name for session sid of connection id.
func (h *harness) claim(name, token string, id uint64, sid uint32, maxConns int) (engine.Claimed, error) {
	h.t.Helper()
	c := engine.Claim{Name: name, Token: token, Session: h.session(id, sid), MaxConns: maxConns}
	return await(h.t, "Claim "+name, func(done func(engine.Claimed, error)) { h.e.Claim(c, done) })
}

// mustClaim claims name and fails the test if it is refused.
func (h *harness) mustClaim(name, token string, id uint64, sid uint32) engine.Claimed {
	h.t.Helper()
	cl, err := h.claim(name, token, id, sid, 0)
	if err != nil {
		h.t.Fatalf("Claim %q (token %q) on conn %d: %v", name, token, id, err)
	}
	return cl
}

// refused checks that err is a protocol error with code and name.
func refused(t *testing.T, what string, err error, code int, name string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: no error, want %d %s", what, code, name)
	}
	if me := mux.AsError(err); me.Code != code || me.Name != name {
		t.Fatalf("%s: error %v, want %d %s", what, err, code, name)
	}
}

// eventually waits up to wait for cond.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, wait)
		}
		time.Sleep(time.Millisecond)
	}
}

func testClaim(t *testing.T, h *harness) {
	a := h.mustClaim("alice", "", 1, 1)
	if a.User.Name != "alice" || a.User.Color != engine.Color("alice") || a.Token == "" || len(a.Kick) != 0 {
		t.Fatalf("claimed %+v", a)
	}
	if b := h.mustClaim("alice", "", 1, 2); b.Token != a.Token { // another tab of the browser
		t.Fatalf("second session: token %q, want %q", b.Token, a.Token)
	}
	_, err := h.claim("alice", "", 2, 1, 0)
	refused(t, "the name from another connection without its token", err, mux.CodeNameTaken, mux.ErrNameTaken)
	_, err = h.claim("ALICE", "guess", 2, 1, 0)
	refused(t, "the name in other case, another token", err, mux.CodeNameTaken, mux.ErrNameTaken)
	if c := h.mustClaim("Alice", a.Token, 2, 1); c.User.Name != "alice" { // its token, on another connection
		t.Fatalf("claimed with the token: %+v, want the first spelling", c)
	}
	if t2 := h.mustClaim("bob", "tok-b", 3, 1); t2.Token != "tok-b" {
		t.Fatalf("token asked for: %q", t2.Token)
	}
	eventually(t, "2 users online", func() bool { return h.e.Online() == 2 && h.e.Reserved() == 0 })
}

func testReservation(t *testing.T, h *harness) {
	a := h.mustClaim("alice", "", 1, 1)
	h.mustClaim("alice", "", 1, 2)
	h.e.Release("alice", h.session(1, 1))
	eventually(t, "alice online with one session", func() bool { return h.e.Online() == 1 })
	h.e.Release("alice", h.session(1, 2))
	eventually(t, "alice reserved", func() bool { return h.e.Online() == 0 && h.e.Reserved() == 1 })
	_, err := h.claim("alice", "", 2, 1, 0)
	refused(t, "a reserved name without its token", err, mux.CodeNameTaken, mux.ErrNameTaken)
	if c := h.mustClaim("alice", a.Token, 2, 1); c.Token != a.Token {
		t.Fatalf("the owner back: %+v", c)
	}
	eventually(t, "the reservation over", func() bool { return h.e.Online() == 1 && h.e.Reserved() == 0 })
}

func testReservationExpires(t *testing.T, h *harness) {
	h.mustClaim("alice", "", 1, 1)
	h.e.Release("alice", h.session(1, 1))
	_, err := h.claim("alice", "", 2, 1, 0)
	refused(t, "a reserved name", err, mux.CodeNameTaken, mux.ErrNameTaken)
	time.Sleep(h.cfg.NameGrace)
	eventually(t, "the name free after its grace", func() bool {
		_, err := h.claim("alice", "", 2, 1, 0)
		return err == nil
	})
}

func testReservedBounded(t *testing.T, h *harness) {
	names := []string{"n0", "n1", "n2", "n3", "n4"}
	for i, n := range names {
		h.mustClaim(n, "", 1, uint32(i+1))
		h.e.Release(n, h.session(1, uint32(i+1)))
	}
	eventually(t, "3 names reserved", func() bool { return h.e.Reserved() == h.cfg.MaxReservedNames })
	h.mustClaim("n0", "", 2, 1) // the oldest reservations ended early
	h.mustClaim("n1", "", 2, 2)
	_, err := h.claim("n2", "", 2, 3, 0)
	refused(t, "a name still reserved", err, mux.CodeNameTaken, mux.ErrNameTaken)
}

func testKick(t *testing.T, h *harness) {
	a := h.mustClaim("alice", "", 1, 1)
	for _, id := range []uint64{2, 3} {
		cl, err := h.claim("alice", a.Token, id, 1, 3)
		if err != nil || len(cl.Kick) != 0 {
			t.Fatalf("connection %d of 3: %+v %v", id, cl, err)
		}
	}
	if cl, err := h.claim("alice", a.Token, 3, 2, 3); err != nil || len(cl.Kick) != 0 {
		t.Fatalf("another session of connection 3: %+v %v, want no kick", cl, err)
	}
	cl, err := h.claim("alice", a.Token, 4, 1, 3)
	if err != nil || len(cl.Kick) != 1 || cl.Kick[0].ID != 1 || cl.Kick[0].Node != h.sink.node {
		t.Fatalf("a fourth connection: %+v %v, want connection 1 kicked", cl, err)
	}
	// Connection 1 has not gone yet: the next one kicks it and the next oldest.
	cl, err = h.claim("alice", a.Token, 5, 1, 3)
	ids := make([]uint64, len(cl.Kick))
	for i, k := range cl.Kick {
		ids[i] = k.ID
	}
	if err != nil || !slices.Equal(ids, []uint64{1, 2}) {
		t.Fatalf("a fifth connection: kick %v %v, want [1 2]", ids, err)
	}
}

func testDM(t *testing.T, h *harness) {
	a := h.mustClaim("alice", "", 1, 1)
	h.mustClaim("alice", "", 1, 2)
	h.mustClaim("alice", a.Token, 2, 1) // alice: 3 sessions on 2 connections
	h.mustClaim("bob", "", 3, 1)
	h.mustClaim("bob", "", 3, 2)
	send := func(from *engine.Author, sender engine.SessionRef, to, text string) engine.DMSent {
		t.Helper()
		d := engine.DMSend{From: *from, To: to, Text: text, CID: "d-" + text, TS: time.Now().UnixMilli(), Sender: sender}
		sent, err := await(t, "DM", func(done func(engine.DMSent, error)) { h.e.DM(d, done) })
		if err != nil {
			t.Fatalf("DM %q: %v", text, err)
		}
		return sent
	}
	s1 := send(bob, h.session(3, 1), "ALICE", "one")
	if s1.Sessions != 4 || s1.ID == 0 || s1.To.Name != "alice" { // alice's 3, bob's other 1
		t.Fatalf("dm to alice: %+v, want 4 sessions", s1)
	}
	s2 := send(alice, h.session(1, 1), "alice", "two") // to oneself: the other sessions
	if s2.Sessions != 2 || s2.ID <= s1.ID {
		t.Fatalf("dm to oneself: %+v, want 2 sessions and an id after %d", s2, s1.ID)
	}
	// An engine may deliver a message to the recipient's and the sender's
	// sessions in one call or in several (the Redis engine: one per user's
	// channel): what counts is who gets each message, and once.
	got, ok := h.sink.waitDeliveries(map[uint64][]string{
		s1.ID: {mux.NameKey("alice"), mux.NameKey("bob")},
		s2.ID: {mux.NameKey("alice")},
	}, wait)
	if !ok {
		t.Fatalf("deliveries %+v, want dm %d to alice's and bob's sessions once, dm %d to alice's", got, s1.ID, s2.ID)
	}
	d1 := got[s1.ID]
	var m mux.DM
	if err := json.Unmarshal(d1[0].Body, &m); err != nil {
		t.Fatal(err)
	}
	if m.ID != s1.ID || m.From != "bob" || m.To != "alice" || m.Text != "one" || m.CID != "d-one" || m.Color != bob.Color || m.TS != s1.TS {
		t.Fatalf("dm body %+v", m)
	}
	for _, d := range d1 {
		if d.Except != h.session(3, 1) {
			t.Fatalf("delivery to %v except %+v, want all but the sender's session", d.Users, d.Except)
		}
	}
	for _, d := range got[s2.ID] {
		if d.Except != h.session(1, 1) {
			t.Fatalf("delivery to oneself: to %v except %+v", d.Users, d.Except)
		}
	}
}

func testDMRefused(t *testing.T, h *harness) {
	h.mustClaim("alice", "", 1, 1)
	h.mustClaim("bob", "", 2, 1)
	dm := func(to string) error {
		d := engine.DMSend{From: *bob, To: to, Text: "x", TS: time.Now().UnixMilli(), Sender: h.session(2, 1)}
		_, err := await(t, "DM", func(done func(engine.DMSent, error)) { h.e.DM(d, done) })
		return err
	}
	refused(t, "dm to nobody", dm("nobody"), mux.CodeUserOffline, mux.ErrUserOffline)
	for i := range h.cfg.DMInBurst {
		if err := dm("alice"); err != nil {
			t.Fatalf("dm %d of a burst of %d: %v", i+1, h.cfg.DMInBurst, err)
		}
	}
	refused(t, "dm beyond the recipient's burst", dm("alice"), mux.CodeRateLimited, mux.ErrRecipientBusy)
	h.mustClaim("carol", "", 3, 1)
	h.e.Release("carol", h.session(3, 1))
	refused(t, "dm to a reserved name", dm("carol"), mux.CodeUserOffline, mux.ErrUserOffline)
	n := len(h.sink.DMs())
	if n != h.cfg.DMInBurst {
		t.Fatalf("%d deliveries, want %d (none for a refused dm)", n, h.cfg.DMInBurst)
	}
}

func testNodes(t *testing.T, h *harness) {
	h.sink.SetConns(7)
	nodes, err := await(t, "Nodes", func(done func([]engine.Node, error)) { h.e.Nodes(done) })
	if err != nil || len(nodes) == 0 || nodes[0].ID == "" {
		t.Fatalf("Nodes: %+v %v, want this node at least", nodes, err)
	}
	if err := h.e.Health(); err != nil {
		t.Fatalf("Health of a working engine: %v", err)
	}
}

func testAfterClose(t *testing.T, h *harness) {
	r := h.open("r")
	r.send(draft(alice, "before", ""))
	if err := h.e.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := h.e.Health(); !errors.Is(err, engine.ErrUnavailable) {
		t.Fatalf("Health of a closed engine: %v, want ErrUnavailable", err)
	}
	if err := h.e.Close(); err != nil { // the harness closes it again too
		t.Fatalf("a second Close: %v", err)
	}
}
