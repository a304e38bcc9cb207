package redis

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"imload/mux"
	"imload/server/engine"
	"imload/server/engine/enginetest"
	"imload/server/redistest"
)

// Several engines on one Redis, each with its recording sink: the nodes of
// one deployment, without the node around them.

// wait is how long a test waits for something to happen.
const wait = 10 * time.Second

// node is one engine of a test and its sink.
type node struct {
	t    *testing.T
	id   string
	e    *Engine
	sink *enginetest.Sink
}

// startNodes starts an engine per id on db.
func startNodes(t *testing.T, url, prefix string, tune func(*Options), ids ...string) []*node {
	t.Helper()
	nodes := make([]*node, len(ids))
	for i, id := range ids {
		n := &node{t: t, id: id, e: newTestEngine(t, url, prefix, id, tune), sink: enginetest.NewSink(id)}
		startEngine(t, n.e, n.sink)
		nodes[i] = n
	}
	return nodes
}

// await calls an engine method that answers through done and waits.
func await[T any](t testing.TB, what string, call func(done func(T, error))) (T, error) {
	t.Helper()
	type answer struct {
		v   T
		err error
	}
	ch := make(chan answer, 1)
	call(func(v T, err error) { ch <- answer{v, err} })
	select {
	case a := <-ch:
		return a.v, a.err
	case <-time.After(wait):
		t.Fatalf("%s: no answer within %v", what, wait)
		panic("unreachable")
	}
}

// eventually waits for cond.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, wait)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// room is a room a node opened, used under mu as a node does.
type room struct {
	n    *node
	name string
	mu   sync.Mutex
	log  engine.Log
	got  []engine.Released // all it took
}

func (n *node) open(name string) *room {
	n.t.Helper()
	o, err := await(n.t, "Open", func(done func(engine.Opened, error)) { n.e.Open(name, true, done) })
	if err != nil {
		n.t.Fatalf("node %s: Open %q: %v", n.id, name, err)
	}
	return &room{n: n, name: name, log: o.Log}
}

// take takes what the log has.
func (r *room) take() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = r.log.Take(r.got)
}

// messages are the messages taken so far.
func (r *room) messages() []engine.Released {
	r.take()
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []engine.Released
	for _, rel := range r.got {
		if rel.Body != nil {
			out = append(out, rel)
		}
	}
	return out
}

// publish publishes text from who and returns the ticket.
func (r *room) publish(who *engine.Author, text, cid string) (uint64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.log.Publish(&engine.Draft{Who: who, Text: text, CID: cid, TS: time.Now().UnixMilli()})
}

// outcome waits for the outcome of ticket.
func (r *room) outcome(ticket uint64) engine.Released {
	r.n.t.Helper()
	var out engine.Released
	eventually(r.n.t, fmt.Sprintf("node %s: the outcome of ticket %d", r.n.id, ticket), func() bool {
		r.take()
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, rel := range r.got {
			if rel.Ticket == ticket {
				out = rel
				return true
			}
		}
		return false
	})
	return out
}

func author(name string) *engine.Author { return &engine.Author{Name: name, Color: engine.Color(name)} }

// One room's messages published from 3 nodes at once are seen by every
// node once each, in offset order, the same on all; each node's publishes
// get their outcome with their message.
func TestRoomAcrossNodes(t *testing.T) {
	db := redistest.Shared(t).DB(t)
	nodes := startNodes(t, db.URL, db.Prefix, nil, "a", "b", "c")
	rooms := make([]*room, len(nodes))
	for i, n := range nodes {
		rooms[i] = n.open("r")
	}
	const per = 200
	var wg sync.WaitGroup
	for i, r := range rooms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			who := author("user-" + nodes[i].id)
			for j := range per {
				if _, err := r.publish(who, fmt.Sprintf("%s-%d", nodes[i].id, j), fmt.Sprint("c", j)); err != nil {
					t.Errorf("publish: %v", err)
					return
				}
				if j%20 == 0 {
					r.take() // as the node does after each send
				}
			}
		}()
	}
	wg.Wait()
	want := 3 * per
	var first []string
	for i, r := range rooms {
		eventually(t, "node "+nodes[i].id+" sees every message", func() bool { return len(r.messages()) >= want })
		msgs := r.messages()
		if len(msgs) != want {
			t.Fatalf("node %s: %d messages, want %d", nodes[i].id, len(msgs), want)
		}
		texts := make([]string, len(msgs))
		last := map[string]int{}
		for k, m := range msgs {
			if m.Off != uint64(k+1) {
				t.Fatalf("node %s: message %d has offset %d", nodes[i].id, k, m.Off)
			}
			texts[k] = m.Entry.Text()
			var from string
			var seq int
			fmt.Sscanf(texts[k], "%1s-%d", &from, &seq)
			if p, ok := last[from]; ok && seq != p+1 {
				t.Fatalf("node %s: %s's message %d after %d", nodes[i].id, from, seq, p)
			}
			last[from] = seq
			mine := m.Ticket != 0
			if mine != (from == nodes[i].id) {
				t.Fatalf("node %s: message %q with ticket %d", nodes[i].id, texts[k], m.Ticket)
			}
		}
		if first == nil {
			first = texts
		} else if !slices.Equal(first, texts) {
			t.Fatalf("node %s sees another order than node a", nodes[i].id)
		}
		// No outcome for a ticket without its message, none twice.
		r.mu.Lock()
		seen := map[uint64]bool{}
		for _, rel := range r.got {
			if rel.Ticket != 0 && (seen[rel.Ticket] || rel.Body == nil || rel.Err != nil) {
				t.Fatalf("node %s: outcome %+v", nodes[i].id, rel)
			}
			seen[rel.Ticket] = true
		}
		r.mu.Unlock()
	}
}

// A message missed on the channel (the subscriber's inbox overflowed) is
// filled from the stream before what follows it.
func TestGapFilledFromStream(t *testing.T) {
	db := redistest.Shared(t).DB(t)
	nodes := startNodes(t, db.URL, db.Prefix, nil, "a", "b")
	ra, rb := nodes[0].open("r"), nodes[1].open("r")
	who := author("alice")
	for i := range 5 {
		tk, _ := ra.publish(who, fmt.Sprint(i), "")
		ra.outcome(tk)
	}
	eventually(t, "b has 5", func() bool { return len(rb.messages()) == 5 })
	// Make b miss 3 messages: published by hand, not on the channel.
	for i := 6; i <= 8; i++ {
		blob := encodeBlob(time.Now().UnixMilli(), who, "", fmt.Sprint("m", i))
		k := nodes[0].e.roomKeys("r")
		if _, err := db.Do("HINCRBY", k.meta, "top", "1"); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Do("XADD", k.stream, fmt.Sprintf("0-%d", i), "d", blob, "n", "x", "t", "0"); err != nil {
			t.Fatal(err)
		}
	}
	tk, _ := ra.publish(who, "after", "")
	if rel := ra.outcome(tk); rel.Off != 9 {
		t.Fatalf("offset %d, want 9", rel.Off)
	}
	eventually(t, "b has 9", func() bool { return len(rb.messages()) == 9 })
	for i, m := range rb.messages() {
		if m.Off != uint64(i+1) {
			t.Fatalf("b: message %d at offset %d", i, m.Off)
		}
	}
	if nodes[1].e.Stats().GapFills == 0 {
		t.Fatal("no gap fill counted")
	}
}

// Presence set on one node is seen by the others (Sink.Presence), by a
// node that opens the room (Opened.Present) and by Who.
func TestPresenceAcrossNodes(t *testing.T) {
	db := redistest.Shared(t).DB(t)
	nodes := startNodes(t, db.URL, db.Prefix, nil, "a", "b", "c", "d")
	for _, n := range nodes[:3] {
		n.open("r")
	}
	nodes[0].e.SetPresent("r", *author("alice"), true)
	nodes[1].e.SetPresent("r", *author("bob"), true)
	nodes[1].e.SetPresent("r", *author("ghost"), true)
	nodes[1].e.SetPresent("r", *author("ghost"), false)
	want := []string{"alice@a", "bob@b"}
	for i, n := range nodes[:3] {
		var others []string
		for _, w := range want {
			if w[len(w)-1] != n.id[0] {
				others = append(others, w)
			}
		}
		eventually(t, "node "+n.id+" sees the others' presence", func() bool {
			return slices.Equal(presentFrom(n.sink.PresenceCalls(), "r"), others)
		})
		_ = i
	}
	who, err := await(t, "Who", func(done func([]engine.Present, error)) { nodes[3].e.Who("r", done) })
	if err != nil || !slices.Equal(presentNames(who), want) {
		t.Fatalf("who from d: %v %v, want %v", who, err, want)
	}
	o, err := await(t, "Open", func(done func(engine.Opened, error)) { nodes[3].e.Open("r", false, done) })
	if err != nil || !slices.Equal(presentNames(o.Present), want) {
		t.Fatalf("opened on d: present %v %v, want %v", o.Present, err, want)
	}
}

// presentFrom replays presence calls of room into the set of user@node
// present.
func presentFrom(calls []enginetest.PresenceCall, room string) []string {
	set := map[string]bool{}
	for _, c := range calls {
		if c.Room == room {
			set[c.P.User.Name+"@"+c.P.Node] = c.In
		}
	}
	var out []string
	for k, in := range set {
		if in {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

func presentNames(ps []engine.Present) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.User.Name + "@" + p.Node
	}
	slices.Sort(out)
	return out
}

// session names session sid of connection id of node n.
func (n *node) session(id uint64, sid uint32) engine.SessionRef {
	return engine.SessionRef{Conn: engine.ConnRef{Node: n.id, ID: id, Since: time.Unix(1e9+int64(id), 0)}, SID: sid}
}

func (n *node) claim(name, token string, id uint64, sid uint32, maxConns int) (engine.Claimed, error) {
	n.t.Helper()
	c := engine.Claim{Name: name, Token: token, Session: n.session(id, sid), MaxConns: maxConns}
	return await(n.t, "Claim", func(done func(engine.Claimed, error)) { n.e.Claim(c, done) })
}

func taken(err error) bool {
	me := mux.AsError(err)
	return err != nil && me.Code == mux.CodeNameTaken
}

// A name taken on one node is refused on another; its token gets it back
// anywhere, also once it is only reserved.
func TestNamesAcrossNodes(t *testing.T) {
	db := redistest.Shared(t).DB(t)
	nodes := startNodes(t, db.URL, db.Prefix, func(o *Options) { o.NameGrace = time.Minute }, "a", "b", "c")
	a, b, c := nodes[0], nodes[1], nodes[2]
	cl, err := a.claim("alice", "", 1, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.claim("Alice", "", 1, 1, 0); !taken(err) {
		t.Fatalf("alice on b without her token: %v, want name_taken", err)
	}
	if got, err := b.claim("ALICE", cl.Token, 2, 1, 0); err != nil || got.User.Name != "alice" {
		t.Fatalf("alice on b with her token: %+v %v", got, err)
	}
	a.e.Release("alice", a.session(1, 1))
	b.e.Release("alice", b.session(2, 1))
	eventually(t, "alice reserved", func() bool { return b.e.Reserved() == 1 })
	if _, err := c.claim("alice", "", 1, 1, 0); !taken(err) {
		t.Fatalf("reserved alice on c without her token: %v, want name_taken", err)
	}
	if _, err := c.claim("alice", cl.Token, 2, 1, 0); err != nil {
		t.Fatalf("reserved alice on c with her token: %v", err)
	}
}

// A DM reaches the recipient's sessions on every node, and the sender's
// other sessions; the count is theirs.
func TestDMAcrossNodes(t *testing.T) {
	db := redistest.Shared(t).DB(t)
	nodes := startNodes(t, db.URL, db.Prefix, nil, "a", "b", "c")
	a, b, c := nodes[0], nodes[1], nodes[2]
	cl, _ := a.claim("alice", "", 1, 1, 0)
	a.claim("alice", "", 1, 2, 0)
	b.claim("alice", cl.Token, 1, 1, 0) // alice: 3 sessions on 2 nodes
	bc, _ := c.claim("bob", "", 1, 1, 0)
	a.claim("bob", bc.Token, 5, 1, 0) // bob: one on c, one on a
	d := engine.DMSend{From: *author("bob"), To: "alice", Text: "hi", TS: time.Now().UnixMilli(), Sender: c.session(1, 1)}
	sent, err := await(t, "DM", func(done func(engine.DMSent, error)) { c.e.DM(d, done) })
	if err != nil || sent.Sessions != 4 || sent.To.Name != "alice" {
		t.Fatalf("dm: %+v %v, want 4 sessions (alice's 3, bob's other)", sent, err)
	}
	users := func(n *node) []string {
		var out []string
		for _, dd := range n.sink.DMs() {
			out = append(out, dd.Users...)
		}
		slices.Sort(out)
		return out
	}
	eventually(t, "a gets it for alice and bob, b for alice", func() bool {
		return slices.Equal(users(a), []string{"alice", "bob"}) && slices.Equal(users(b), []string{"alice"})
	})
	// c has only bob's sending session: its node skips it (Except).
	eventually(t, "c gets bob's copy, the sending session excepted", func() bool {
		dms := c.sink.DMs()
		return len(dms) == 1 && dms[0].Users[0] == "bob" && dms[0].Except == c.session(1, 1)
	})
	d2 := engine.DMSend{From: *author("bob"), To: "alice", Text: "again", TS: time.Now().UnixMilli(), Sender: c.session(1, 1)}
	sent2, err := await(t, "DM", func(done func(engine.DMSent, error)) { c.e.DM(d2, done) })
	if err != nil || sent2.ID <= sent.ID {
		t.Fatalf("second dm: %+v %v, want an id after %d", sent2, err, sent.ID)
	}
}

// The per-user cap holds across nodes: the oldest connection is kicked,
// on whatever node it is.
func TestCapAcrossNodes(t *testing.T) {
	db := redistest.Shared(t).DB(t)
	nodes := startNodes(t, db.URL, db.Prefix, nil, "a", "b", "c")
	a, b, c := nodes[0], nodes[1], nodes[2]
	cl, _ := a.claim("alice", "", 1, 1, 2)                                                 // since 1e9+1
	if got, err := b.claim("alice", cl.Token, 2, 1, 2); err != nil || len(got.Kick) != 0 { // since 1e9+2
		t.Fatalf("second connection: %+v %v", got, err)
	}
	got, err := c.claim("alice", cl.Token, 3, 1, 2)
	if err != nil || len(got.Kick) != 1 || got.Kick[0].Node != "a" || got.Kick[0].ID != 1 {
		t.Fatalf("third connection: %+v %v, want a's connection 1 kicked", got, err)
	}
	eventually(t, "a told to kick its connection 1", func() bool {
		ks := a.sink.Kicks()
		return len(ks) == 1 && ks[0].ID == 1 && ks[0].User == "alice"
	})
	if len(b.sink.Kicks())+len(c.sink.Kicks()) != 0 {
		t.Fatal("a kick reached another node")
	}
}

// A node that stops without leaving the node list (killed) drops out of it
// within a few seconds; the others are told (NodeGone) and its presence is
// no longer listed.
func TestNodeDeath(t *testing.T) {
	db := redistest.Shared(t).DB(t)
	fast := func(o *Options) { o.NodeTTL = 600 * time.Millisecond }
	nodes := startNodes(t, db.URL, db.Prefix, fast, "a", "b", "c")
	a, c := nodes[0], nodes[2]
	a.open("r")
	c.open("r")
	c.e.SetPresent("r", *author("carol"), true)
	eventually(t, "a sees carol", func() bool { return slices.Equal(presentFrom(a.sink.PresenceCalls(), "r"), []string{"carol@c"}) })
	ids := func() []string {
		ns, err := await(t, "Nodes", a.e.Nodes)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, n := range ns {
			out = append(out, n.ID)
		}
		slices.Sort(out)
		return out
	}
	eventually(t, "3 nodes listed", func() bool { return slices.Equal(ids(), []string{"a", "b", "c"}) })
	start := time.Now()
	c.e.close(false) // as if killed: no goodbye
	eventually(t, "c gone from the list", func() bool { return slices.Equal(ids(), []string{"a", "b"}) })
	eventually(t, "a told c is gone", func() bool { return slices.Contains(a.sink.Gone(), "c") })
	t.Logf("c dropped out %v after it stopped", time.Since(start).Round(time.Millisecond))
	who, err := await(t, "Who", func(done func([]engine.Present, error)) { a.e.Who("r", done) })
	if err != nil || len(who) != 0 {
		t.Fatalf("who after c died: %v %v, want nobody", who, err)
	}
	// A clean stop leaves at once.
	nodes[1].e.Close()
	eventually(t, "b gone", func() bool { return slices.Equal(ids(), []string{"a"}) })
}

// redis-server restarted without persistence: the open rooms get a new
// epoch and their logs a Reset; nothing is renumbered; sends go on.
func TestRedisRestart(t *testing.T) {
	srv := redistest.Start(t)
	nodes := startNodes(t, srv.URL(), "", nil, "a", "b")
	ra, rb := nodes[0].open("r"), nodes[1].open("r")
	who := author("alice")
	for i := range 3 {
		tk, _ := ra.publish(who, fmt.Sprint(i), "")
		ra.outcome(tk)
	}
	eventually(t, "b has 3", func() bool { return len(rb.messages()) == 3 })
	var old string
	ra.mu.Lock()
	old = ra.log.Epoch()
	ra.mu.Unlock()
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	for _, r := range []*room{ra, rb} {
		eventually(t, "node "+r.n.id+": a reset", func() bool {
			r.take()
			r.mu.Lock()
			defer r.mu.Unlock()
			return slices.ContainsFunc(r.got, func(rel engine.Released) bool { return rel.Reset })
		})
		r.mu.Lock()
		if r.log.Epoch() == old || r.log.Top() != 0 {
			t.Fatalf("node %s after the restart: epoch %q (was %q) top %d", r.n.id, r.log.Epoch(), old, r.log.Top())
		}
		r.mu.Unlock()
	}
	eventually(t, "healthy again", func() bool { return nodes[0].e.Health() == nil && nodes[1].e.Health() == nil })
	tk, err := rb.publish(author("bob"), "new", "")
	if err != nil {
		t.Fatal(err)
	}
	if rel := rb.outcome(tk); rel.Err != nil || rel.Off != 1 {
		t.Fatalf("the first send after the restart: %+v, want offset 1", rel)
	}
	eventually(t, "a sees it", func() bool {
		ms := ra.messages()
		return len(ms) > 0 && ms[len(ms)-1].Entry.Text() == "new" && ms[len(ms)-1].Off == 1
	})
}

// redis-server killed: Health says so, publishes fail at once with
// unavailable; once it is back, everything recovers by itself.
func TestRedisKilled(t *testing.T) {
	srv := redistest.Start(t)
	nodes := startNodes(t, srv.URL(), "", nil, "a", "b")
	ra, rb := nodes[0].open("r"), nodes[1].open("r")
	tk, _ := ra.publish(author("alice"), "before", "")
	ra.outcome(tk)
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a unhealthy", func() bool { return nodes[0].e.Health() != nil })
	if err := nodes[0].e.Health(); !errors.Is(err, engine.ErrUnavailable) {
		t.Fatalf("health: %v, want ErrUnavailable", err)
	}
	start := time.Now()
	if _, err := ra.publish(author("alice"), "during", ""); !errors.Is(err, engine.ErrUnavailable) || time.Since(start) > 50*time.Millisecond {
		t.Fatalf("publish while Redis is down: %v after %v, want ErrUnavailable at once", err, time.Since(start))
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "healthy again", func() bool { return nodes[0].e.Health() == nil && nodes[1].e.Health() == nil })
	// Both logs resynchronised (Redis came back empty: a reset) and
	// subscribed again: b's send reaches a.
	for _, r := range []*room{ra, rb} {
		eventually(t, "node "+r.n.id+" reset", func() bool {
			r.take()
			r.mu.Lock()
			defer r.mu.Unlock()
			return r.log.Top() == 0 && slices.ContainsFunc(r.got, func(rel engine.Released) bool { return rel.Reset })
		})
	}
	tk, err := rb.publish(author("bob"), "after", "")
	if err != nil {
		t.Fatal(err)
	}
	if rel := rb.outcome(tk); rel.Err != nil || rel.Off != 1 {
		t.Fatalf("b's send after the restart: %+v", rel)
	}
	eventually(t, "a gets b's message", func() bool {
		ms := ra.messages()
		return len(ms) > 0 && ms[len(ms)-1].Entry.Text() == "after"
	})
	if nodes[0].e.Stats().Reconnects == 0 {
		t.Fatal("no reconnection counted")
	}
}

var _ = context.Background

// A gap whose messages are no longer retained resets the log: it takes
// the room's newest messages, at the room's top, nothing renumbered.
func TestGapBeyondRetentionResets(t *testing.T) {
	db := redistest.Shared(t).DB(t)
	nodes := startNodes(t, db.URL, db.Prefix, func(o *Options) { o.HistoryMax = 5 }, "a", "b")
	ra, rb := nodes[0].open("r"), nodes[1].open("r")
	who := author("alice")
	for i := range 2 {
		tk, _ := ra.publish(who, fmt.Sprint(i), "")
		ra.outcome(tk)
	}
	eventually(t, "b has 2", func() bool { return len(rb.messages()) == 2 })
	var epoch string
	rb.mu.Lock()
	epoch = rb.log.Epoch()
	rb.mu.Unlock()
	// 10 messages b never hears of, the stream trimmed to 5 meanwhile.
	k := nodes[0].e.roomKeys("r")
	for i := 3; i <= 12; i++ {
		blob := encodeBlob(time.Now().UnixMilli(), who, "", fmt.Sprint("m", i))
		if _, err := db.Do("HINCRBY", k.meta, "top", "1"); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Do("XADD", k.stream, "MAXLEN", "5", fmt.Sprintf("0-%d", i), "d", blob, "n", "x", "t", "0"); err != nil {
			t.Fatal(err)
		}
	}
	tk, _ := ra.publish(who, "after", "")
	if rel := ra.outcome(tk); rel.Err != nil || rel.Off != 13 {
		t.Fatalf("a's send: %+v, want offset 13", rel)
	}
	for _, r := range []*room{rb, ra} {
		eventually(t, "node "+r.n.id+" reset to the newest", func() bool {
			r.take()
			r.mu.Lock()
			defer r.mu.Unlock()
			return slices.ContainsFunc(r.got, func(rel engine.Released) bool { return rel.Reset }) && r.log.Top() == 13
		})
		r.mu.Lock()
		es, _ := r.log.Last(10)
		if r.log.Epoch() != epoch || r.log.First() != 9 || len(es) != 5 || es[4].Text() != "after" || es[0].Text() != "m9" {
			t.Fatalf("node %s after the reset: epoch %q (was %q) first %d, %d messages", r.n.id, r.log.Epoch(), epoch, r.log.First(), len(es))
		}
		r.mu.Unlock()
	}
}
