package enginetest

import (
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"imload/mux"
	"imload/server/engine"
)

// The history of private messages (engine.DMs): offsets per conversation
// given with the append, windows like a room's, bounds, and who may read.

// dm sends a private message from (as generation gen, its sending session
// sender) to user to, and fails the test if it is refused.
func (h *harness) dm(from *engine.Author, gen string, sender engine.SessionRef, to, text string) engine.DMSent {
	h.t.Helper()
	sent, err := h.tryDM(engine.DMSend{From: *from, FromGen: gen, To: to, Text: text, CID: "c-" + text, TS: time.Now().UnixMilli(), Sender: sender})
	if err != nil {
		h.t.Fatalf("DM %q from %s to %s: %v", text, from.Name, to, err)
	}
	return sent
}

// tryDM sends d.
func (h *harness) tryDM(d engine.DMSend) (engine.DMSent, error) {
	h.t.Helper()
	return await(h.t, "DM", func(done func(engine.DMSent, error)) { h.e.DM(d, done) })
}

// history reads a window of a conversation.
func (h *harness) history(q engine.DMQuery) engine.DMPage {
	h.t.Helper()
	if q.Limit == 0 {
		q.Limit = 50
	}
	p, err := await(h.t, "DMHistory", func(done func(engine.DMPage, error)) { h.e.DMHistory(q, done) })
	if err != nil {
		h.t.Fatalf("DMHistory %+v: %v", q, err)
	}
	return p
}

// list lists a user's conversations.
func (h *harness) list(user, gen string, limit int) ([]engine.DMConv, bool) {
	h.t.Helper()
	type listed struct {
		convs []engine.DMConv
		more  bool
	}
	l, err := await(h.t, "DMList", func(done func(listed, error)) {
		h.e.DMList(user, gen, limit, func(cs []engine.DMConv, more bool, err error) { done(listed{cs, more}, err) })
	})
	if err != nil {
		h.t.Fatalf("DMList %s: %v", user, err)
	}
	return l.convs, l.more
}

// pageTexts returns the texts of a page's messages, and fails the test if
// their offsets do not follow each other.
func pageTexts(t *testing.T, p engine.DMPage) []string {
	t.Helper()
	var out []string
	for i, m := range p.Messages {
		if i > 0 && m.Off != p.Messages[i-1].Off+1 {
			t.Fatalf("page %+v: offsets not consecutive", p)
		}
		out = append(out, m.Text)
	}
	return out
}

// wantPage fails the test unless p holds texts (oldest first), with top,
// first, reset and more.
func wantPage(t *testing.T, what string, p engine.DMPage, texts []string, top, first uint64, reset, more bool) {
	t.Helper()
	if got := pageTexts(t, p); !slices.Equal(got, texts) || p.Top != top || p.First != first || p.Reset != reset || p.More != more {
		t.Fatalf("%s: %v top %d first %d reset %v more %v; want %v top %d first %d reset %v more %v",
			what, got, p.Top, p.First, p.Reset, p.More, texts, top, first, reset, more)
	}
}

// waitDMBodies waits until the private messages of want (by text) were
// delivered to the users listed (by mux.NameKey), and returns their
// bodies by text.
func (h *harness) waitDMBodies(want map[string][]string) map[string][]mux.DM {
	h.t.Helper()
	var bodies map[string][]mux.DM
	eventually(h.t, "the deliveries", func() bool {
		bodies = make(map[string][]mux.DM)
		users := make(map[string][]string)
		for _, d := range h.sink.DMs() {
			var m mux.DM
			if json.Unmarshal(d.Body, &m) != nil {
				continue
			}
			bodies[m.Text] = append(bodies[m.Text], m)
			users[m.Text] = append(users[m.Text], d.Users...)
		}
		for text, us := range want {
			if !slices.Equal(slices.Sorted(slices.Values(users[text])), slices.Sorted(slices.Values(us))) {
				return false
			}
		}
		return true
	})
	return bodies
}

// Offsets start at 1 per conversation, are given in the order of the
// appends, and are in the DM's answer and in its pushes; each conversation
// has its own epoch; both sides read the same messages.
func testDMHistoryOffsets(t *testing.T, h *harness) {
	a := h.mustClaim("alice", "", 1, 1)
	h.mustClaim("alice", "", 1, 2)
	b := h.mustClaim("bob", "", 2, 1)
	h.mustClaim("bob", "", 2, 2) // so that bob's other session gets the copy of what it sends
	if a.Gen == "" || b.Gen == "" || a.Gen == b.Gen {
		t.Fatalf("generations %q and %q: want two, not empty", a.Gen, b.Gen)
	}
	s1 := h.dm(bob, b.Gen, h.session(2, 1), "alice", "one")
	s2 := h.dm(alice, a.Gen, h.session(1, 1), "BOB", "two")
	s3 := h.dm(alice, a.Gen, h.session(1, 2), "alice", "note")
	if s1.Off != 1 || s2.Off != 2 || s1.Epoch == "" || s2.Epoch != s1.Epoch {
		t.Fatalf("alice and bob: offsets %d, %d epochs %q, %q; want 1, 2 in one epoch", s1.Off, s2.Off, s1.Epoch, s2.Epoch)
	}
	if s3.Off != 1 || s3.Epoch == "" || s3.Epoch == s1.Epoch {
		t.Fatalf("alice with herself: offset %d epoch %q; want 1 in an epoch of its own", s3.Off, s3.Epoch)
	}
	// DM ids are the recipient's: two recipients may have the same.
	bodies := h.waitDMBodies(map[string][]string{"one": {"alice", "bob"}, "two": {"alice", "bob"}})
	for text, s := range map[string]engine.DMSent{"one": s1, "two": s2} {
		for _, m := range bodies[text] {
			if m.Offset != s.Off || m.Epoch != s.Epoch || m.ID != s.ID {
				t.Fatalf("push %+v: id %d offset %d epoch %q, want the answer's %d %d %q", m, m.ID, m.Offset, m.Epoch, s.ID, s.Off, s.Epoch)
			}
		}
	}
	for _, reader := range []struct {
		name, gen, peer string
	}{{"alice", a.Gen, "bob"}, {"BOB", b.Gen, "Alice"}} {
		p := h.history(engine.DMQuery{User: reader.name, Gen: reader.gen, Peer: reader.peer})
		wantPage(t, reader.name+" reads", p, []string{"one", "two"}, 2, 1, false, false)
		if p.Epoch != s1.Epoch {
			t.Fatalf("%s reads epoch %q, want %q", reader.name, p.Epoch, s1.Epoch)
		}
		m := p.Messages[0]
		if m.From != "bob" || m.To != "alice" || m.CID != "c-one" || m.Color != bob.Color || m.TS != s1.TS || m.Off != 1 {
			t.Fatalf("entry %+v", m)
		}
		if m := p.Messages[1]; m.From != "alice" || m.To != "bob" {
			t.Fatalf("entry %+v", m)
		}
	}
	p := h.history(engine.DMQuery{User: "alice", Gen: a.Gen, Peer: "alice"})
	wantPage(t, "alice's notes", p, []string{"note"}, 1, 1, false, false)
	if m := p.Messages[0]; m.From != "alice" || m.To != "alice" {
		t.Fatalf("note %+v", m)
	}
}

// Windows as a room's history: the latest, before an offset, after one
// (in its epoch), and a reset when the epoch is another or the offset is no
// longer retained; at most DMHistoryMax messages are retained.
func testDMHistoryWindows(t *testing.T, h *harness) {
	a := h.mustClaim("alice", "", 1, 1)
	b := h.mustClaim("bob", "", 2, 1)
	var epoch string
	for i := 1; i <= 6; i++ {
		s := h.dm(alice, a.Gen, h.session(1, 1), "bob", string(rune('0'+i)))
		if s.Off != uint64(i) {
			t.Fatalf("message %d: offset %d", i, s.Off)
		}
		epoch = s.Epoch
	}
	q := func(mod func(*engine.DMQuery)) engine.DMPage {
		q := engine.DMQuery{User: "bob", Gen: b.Gen, Peer: "alice", Limit: 2}
		mod(&q)
		return h.history(q)
	}
	// 4 retained: offsets 3…6.
	wantPage(t, "latest 2", q(func(*engine.DMQuery) {}), []string{"5", "6"}, 6, 3, false, true)
	wantPage(t, "latest 10", q(func(q *engine.DMQuery) { q.Limit = 10 }), []string{"3", "4", "5", "6"}, 6, 3, false, false)
	wantPage(t, "before 5", q(func(q *engine.DMQuery) { q.Before = 5 }), []string{"3", "4"}, 6, 3, false, false)
	wantPage(t, "before 6", q(func(q *engine.DMQuery) { q.Before = 6 }), []string{"4", "5"}, 6, 3, false, true)
	wantPage(t, "after 3", q(func(q *engine.DMQuery) { q.Epoch, q.After = epoch, 3 }), []string{"4", "5"}, 6, 3, false, true)
	wantPage(t, "after 5", q(func(q *engine.DMQuery) { q.Epoch, q.After = epoch, 5 }), []string{"6"}, 6, 3, false, false)
	wantPage(t, "after 6", q(func(q *engine.DMQuery) { q.Epoch, q.After = epoch, 6 }), nil, 6, 3, false, false)
	wantPage(t, "after 1 (offset 2 is gone)", q(func(q *engine.DMQuery) { q.Epoch, q.After = epoch, 1 }), []string{"5", "6"}, 6, 3, true, true)
	wantPage(t, "after 3 of another epoch", q(func(q *engine.DMQuery) { q.Epoch, q.After = "other", 3 }), []string{"5", "6"}, 6, 3, true, true)
	wantPage(t, "after 3 without an epoch", q(func(q *engine.DMQuery) { q.After = 3 }), []string{"5", "6"}, 6, 3, true, true)
	wantPage(t, "after 9", q(func(q *engine.DMQuery) { q.Epoch, q.After = epoch, 9 }), []string{"5", "6"}, 6, 3, true, true)
	if st := h.e.DMStats(); st.Trimmed < 2 {
		t.Fatalf("DMStats %+v: want 2 messages trimmed at least", st)
	}
}

// Only the two users read a conversation, and each only as the generation
// that wrote its side.
func testDMHistoryOthers(t *testing.T, h *harness) {
	a := h.mustClaim("alice", "", 1, 1)
	h.mustClaim("bob", "", 2, 1)
	c := h.mustClaim("carol", "", 3, 1)
	h.dm(alice, a.Gen, h.session(1, 1), "bob", "secret")
	for _, peer := range []string{"bob", "alice"} {
		if p := h.history(engine.DMQuery{User: "carol", Gen: c.Gen, Peer: peer}); p.Epoch != "" || len(p.Messages) != 0 || p.Top != 0 {
			t.Fatalf("carol reads her conversation with %s: %+v, want none", peer, p)
		}
	}
	if l, _ := h.list("carol", c.Gen, 10); len(l) != 0 {
		t.Fatalf("carol's conversations: %+v", l)
	}
	// alice's name, but not alice's generation.
	if p := h.history(engine.DMQuery{User: "alice", Gen: c.Gen, Peer: "bob"}); len(p.Messages) != 0 || p.Epoch != "" {
		t.Fatalf("alice's conversation read as another generation: %+v", p)
	}
	if p := h.history(engine.DMQuery{User: "alice", Gen: "", Peer: "bob", Epoch: "x", After: 1}); len(p.Messages) != 0 || !p.Reset {
		t.Fatalf("a resume without a generation: %+v, want none and a reset", p)
	}
}

// A name freed after its grace (--auth none) and taken by another token is
// another generation: the new holder reads none of the first one's
// conversations, and its first message starts the conversation again (a
// new epoch) for the peer too.
func testDMHistoryFreedName(t *testing.T, h *harness) {
	a1 := h.mustClaim("alice", "tok-1", 1, 1)
	b := h.mustClaim("bob", "", 2, 1)
	old := h.dm(alice, a1.Gen, h.session(1, 1), "bob", "from the first alice")
	h.dm(bob, b.Gen, h.session(2, 1), "alice", "to the first alice")
	h.e.Release("alice", h.session(1, 1))
	time.Sleep(h.cfg.NameGrace)
	var a2 engine.Claimed
	eventually(t, "the name free after its grace", func() bool {
		var err error
		a2, err = h.claim("alice", "tok-2", 3, 1, 0)
		return err == nil
	})
	if a2.Gen == a1.Gen {
		t.Fatalf("the new holder has the first one's generation %q", a2.Gen)
	}
	if p := h.history(engine.DMQuery{User: "alice", Gen: a2.Gen, Peer: "bob"}); len(p.Messages) != 0 || p.Epoch != "" {
		t.Fatalf("the new alice reads the first one's conversation: %+v", p)
	}
	if p := h.history(engine.DMQuery{User: "alice", Gen: a2.Gen, Peer: "bob", Epoch: old.Epoch, After: 0}); len(p.Messages) != 0 || !p.Reset {
		t.Fatalf("the new alice resumes the first one's conversation: %+v", p)
	}
	if l, _ := h.list("alice", a2.Gen, 10); len(l) != 0 {
		t.Fatalf("the new alice lists %+v", l)
	}
	// bob still reads it, until the new alice writes.
	wantPage(t, "bob before the new alice writes", h.history(engine.DMQuery{User: "bob", Gen: b.Gen, Peer: "alice"}),
		[]string{"from the first alice", "to the first alice"}, 2, 1, false, false)
	s := h.dm(alice, a2.Gen, h.session(3, 1), "bob", "from the second alice")
	if s.Off != 1 || s.Epoch == old.Epoch {
		t.Fatalf("the new alice's first message: offset %d epoch %q; want 1 in a new epoch (the old one %q)", s.Off, s.Epoch, old.Epoch)
	}
	p := h.history(engine.DMQuery{User: "bob", Gen: b.Gen, Peer: "alice", Epoch: old.Epoch, After: 2})
	wantPage(t, "bob resumes after the new alice wrote", p, []string{"from the second alice"}, 1, 1, true, false)
	wantPage(t, "the new alice reads", h.history(engine.DMQuery{User: "alice", Gen: a2.Gen, Peer: "bob"}),
		[]string{"from the second alice"}, 1, 1, false, false)
	if p := h.history(engine.DMQuery{User: "alice", Gen: a1.Gen, Peer: "bob"}); len(p.Messages) != 0 {
		t.Fatalf("the first alice's generation reads the second's: %+v", p)
	}
}

// A verified user (--auth jwt) is the same user whenever it comes back:
// its conversations outlive its sessions and its name's grace.
func testDMHistoryVerified(t *testing.T, h *harness) {
	a, err := h.verify("alice", 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	if a.Gen != engine.VerifiedGen {
		t.Fatalf("a verified user's generation %q, want %q", a.Gen, engine.VerifiedGen)
	}
	if _, err := h.verify("bob", 2, 1); err != nil {
		t.Fatal(err)
	}
	h.dm(alice, a.Gen, h.session(1, 1), "bob", "kept")
	h.e.Release("alice", h.session(1, 1))
	h.e.Release("bob", h.session(2, 1))
	time.Sleep(h.cfg.NameGrace + 100*time.Millisecond)
	a2, err := h.verify("alice", 3, 1)
	if err != nil || a2.Gen != a.Gen {
		t.Fatalf("alice back: %+v %v", a2, err)
	}
	wantPage(t, "alice back", h.history(engine.DMQuery{User: "alice", Gen: a2.Gen, Peer: "bob"}), []string{"kept"}, 1, 1, false, false)
	if l, _ := h.list("alice", a2.Gen, 10); len(l) != 1 || l[0].Peer != "bob" {
		t.Fatalf("alice back lists %+v", l)
	}
}

// Messages older than DMHistoryAge are not shown (nor kept).
func testDMHistoryAge(t *testing.T, h *harness) {
	a := h.mustClaim("alice", "", 1, 1)
	b := h.mustClaim("bob", "", 2, 1)
	old := time.Now().Add(-h.cfg.DMHistoryAge - time.Minute).UnixMilli()
	for _, text := range []string{"old 1", "old 2"} {
		if _, err := h.tryDM(engine.DMSend{From: *alice, FromGen: a.Gen, To: "bob", Text: text, TS: old, Sender: h.session(1, 1)}); err != nil {
			t.Fatal(err)
		}
	}
	h.dm(alice, a.Gen, h.session(1, 1), "bob", "new")
	wantPage(t, "after the old ones aged", h.history(engine.DMQuery{User: "bob", Gen: b.Gen, Peer: "alice"}), []string{"new"}, 3, 3, false, false)
	if st := h.e.DMStats(); st.Expired < 2 {
		t.Fatalf("DMStats %+v: want 2 expired at least", st)
	}
}

// Beyond DMMaxConversations the least recently active conversation goes.
func testDMHistoryEvict(t *testing.T, h *harness) {
	a := h.mustClaim("alice", "", 1, 1)
	peers := []string{"bob", "carol", "dave", "erin"}
	for i, p := range peers {
		h.mustClaim(p, "", uint64(2+i), 1)
	}
	for _, to := range []string{"bob", "carol", "bob", "dave", "erin"} { // carol the least recently active, erin one too many
		h.dm(alice, a.Gen, h.session(1, 1), to, "to "+to)
		time.Sleep(3 * time.Millisecond) // the times of the messages order the conversations
	}
	eventually(t, "carol's conversation gone", func() bool {
		return len(h.history(engine.DMQuery{User: "alice", Gen: a.Gen, Peer: "carol"}).Messages) == 0
	})
	for _, p := range []string{"bob", "dave", "erin"} {
		if len(h.history(engine.DMQuery{User: "alice", Gen: a.Gen, Peer: p}).Messages) == 0 {
			t.Fatalf("the conversation with %s went", p)
		}
	}
	eventually(t, "the eviction counted", func() bool {
		st := h.e.DMStats()
		return st.Evicted >= 1 && st.Conversations == int64(h.cfg.DMMaxConversations)
	})
}

// DMList lists a user's conversations of its generation, the newest first.
func testDMList(t *testing.T, h *harness) {
	a := h.mustClaim("alice", "", 1, 1)
	b := h.mustClaim("bob", "", 2, 1)
	c := h.mustClaim("Carol", "", 3, 1)
	h.dm(alice, a.Gen, h.session(1, 1), "bob", "1")
	time.Sleep(5 * time.Millisecond)
	s := h.dm(&engine.Author{Name: "Carol", Color: engine.Color("Carol")}, c.Gen, h.session(3, 1), "alice", "2")
	time.Sleep(5 * time.Millisecond)
	h.dm(bob, b.Gen, h.session(2, 1), "alice", "3")
	l, more := h.list("alice", a.Gen, 10)
	if len(l) != 2 || more || l[0].Peer != "bob" || l[0].Top != 2 || l[1].Peer != "Carol" || l[1].Top != 1 || l[1].Epoch != s.Epoch || l[1].TS != s.TS {
		t.Fatalf("alice's conversations %+v (more %v)", l, more)
	}
	if l, more := h.list("alice", a.Gen, 1); len(l) != 1 || !more || l[0].Peer != "bob" {
		t.Fatalf("alice's newest conversation %+v (more %v)", l, more)
	}
	if l, _ := h.list("carol", c.Gen, 10); len(l) != 1 || l[0].Peer != "alice" {
		t.Fatalf("carol's conversations %+v", l)
	}
	if l, _ := h.list("bob", "another generation", 10); len(l) != 0 {
		t.Fatalf("bob's conversations as another generation %+v", l)
	}
}

// With DMHistoryMax 0 private messages are live only: no offsets, nothing
// to read.
func testDMHistoryOff(t *testing.T, h *harness) {
	a := h.mustClaim("alice", "", 1, 1)
	b := h.mustClaim("bob", "", 2, 1)
	s := h.dm(alice, a.Gen, h.session(1, 1), "bob", "live")
	if s.Off != 0 || s.Epoch != "" || s.ID == 0 {
		t.Fatalf("sent %+v, want an id and no offset", s)
	}
	if p := h.history(engine.DMQuery{User: "bob", Gen: b.Gen, Peer: "alice"}); len(p.Messages) != 0 || p.Epoch != "" {
		t.Fatalf("history without DM history: %+v", p)
	}
	if l, _ := h.list("bob", b.Gen, 10); len(l) != 0 {
		t.Fatalf("conversations without DM history: %+v", l)
	}
}

// Many DMs in flight at once, from several senders: each is answered once
// (a durable engine's answer waits for the commit, which may come before
// the engine has noted the DM as waiting: a lost wakeup never answers it).
func testDMHistoryMany(t *testing.T, h *harness) {
	const senders, each = 4, 150
	h.mustClaim("target", "", 1, 1)
	var wg sync.WaitGroup
	errs := make(chan error, senders*each)
	for i := range senders {
		name := fmt.Sprintf("s%d", i)
		c := h.mustClaim(name, "", uint64(i+2), 1)
		from := &engine.Author{Name: name, Color: "#123456"}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range each {
				sent := make(chan error, 1)
				h.e.DM(engine.DMSend{From: *from, FromGen: c.Gen, To: "target", Text: fmt.Sprint(k), TS: time.Now().UnixMilli(), Sender: h.session(uint64(i+2), 1)},
					func(_ engine.DMSent, err error) { sent <- err })
				select {
				case err := <-sent:
					if err != nil {
						errs <- fmt.Errorf("%s's DM %d: %w", name, k, err)
						return
					}
				case <-time.After(10 * time.Second):
					errs <- fmt.Errorf("%s's DM %d: no answer within 10s", name, k)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
