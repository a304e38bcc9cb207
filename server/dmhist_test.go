package server

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"imload/mux"
)

// The history of private messages through the protocol: dm replies and
// pushes with their place in the conversation, dm_history (incremental,
// paged, reset), dm_list, the bounds, and who may read. Under
// IMLOAD_TEST_ENGINE=redis they run on the Redis engine.

// dmHist runs dm_history for session sid and returns its reply.
func (c *client) dmHist(sid uint32, req mux.DMHistoryReq) mux.DMHistoryResp {
	c.t.Helper()
	var r mux.DMHistoryResp
	c.ok(sid, mux.CmdDMHistory, req, &r)
	return r
}

// dmTexts returns the texts of a dm_history reply, and fails the test
// unless its messages are of its epoch at consecutive offsets.
func dmTexts(t *testing.T, r mux.DMHistoryResp) []string {
	t.Helper()
	var out []string
	for i, m := range r.Messages {
		if m.Epoch != r.Epoch || (i > 0 && m.Offset != r.Messages[i-1].Offset+1) || m.ID != 0 {
			t.Fatalf("dm_history %+v: message %d %+v", r, i, m)
		}
		out = append(out, m.Text)
	}
	return out
}

// wantDMs fails the test unless r holds texts with top and first.
func wantDMs(t *testing.T, what string, r mux.DMHistoryResp, texts []string, top, first uint64, reset, more bool) {
	t.Helper()
	if got := dmTexts(t, r); !slices.Equal(got, texts) || r.Top != top || r.First != first || r.Reset != reset || r.More != more {
		t.Fatalf("%s: %v top %d first %d reset %v more %v; want %v top %d first %d reset %v more %v",
			what, got, r.Top, r.First, r.Reset, r.More, texts, top, first, reset, more)
	}
}

// dmTo sends a DM from session sid and returns its reply.
func (c *client) dmTo(sid uint32, to, text string) mux.DMResp {
	c.t.Helper()
	var r mux.DMResp
	c.ok(sid, mux.CmdDM, mux.DMReq{To: to, Text: text, CID: "c-" + text}, &r)
	return r
}

func TestDMHistory(t *testing.T) {
	ts := startServer(t, testConfig())
	a := dial(t, ts, nil)
	a.attach(1, "alice")
	b := dial(t, ts, nil)
	b.attach(1, "bob")
	b.attach(2, "bob") // another tab of bob's: it gets bob's own DMs pushed
	if a.hello.DMHistoryMax != 500 || a.hello.DMHistoryAgeMS != (7*24*time.Hour).Milliseconds() {
		t.Fatalf("hello: dm_history_max %d dm_history_age_ms %d", a.hello.DMHistoryMax, a.hello.DMHistoryAgeMS)
	}
	r1 := a.dmTo(1, "bob", "one")
	r2 := b.dmTo(1, "alice", "two")
	if r1.Offset != 1 || r2.Offset != 2 || r1.Epoch == "" || r2.Epoch != r1.Epoch {
		t.Fatalf("dm replies %+v, %+v: want offsets 1 and 2 of one epoch", r1, r2)
	}
	epoch := r1.Epoch
	var p mux.DM
	b.push(mux.EvDM, &p)
	if p.Text != "one" || p.Offset != 1 || p.Epoch != epoch || p.ID != r1.ID {
		t.Fatalf("bob's push %+v, want offset 1 of %s", p, epoch)
	}
	a.push(mux.EvDM, &p)
	if p.Text != "two" || p.Offset != 2 || p.Epoch != epoch {
		t.Fatalf("alice's push %+v, want offset 2", p)
	}

	// Both read the same conversation; a fresh session reads it all.
	for _, c := range []*client{a, b} {
		h := c.dmHist(1, mux.DMHistoryReq{Peer: strings.ToUpper(map[*client]string{a: "bob", b: "alice"}[c])})
		wantDMs(t, "the conversation", h, []string{"one", "two"}, 2, 1, false, false)
		if h.Epoch != epoch || h.Messages[0].From != "alice" || h.Messages[0].To != "bob" || h.Messages[0].CID != "c-one" || h.Messages[1].From != "bob" {
			t.Fatalf("dm_history %+v", h)
		}
	}
	// Incremental: after what the client has, in its epoch.
	a.dmTo(1, "bob", "three")
	wantDMs(t, "after 2", b.dmHist(2, mux.DMHistoryReq{Peer: "alice", Epoch: epoch, After: 2}), []string{"three"}, 3, 1, false, false)
	wantDMs(t, "after 3", b.dmHist(2, mux.DMHistoryReq{Peer: "alice", Epoch: epoch, After: 3}), nil, 3, 1, false, false)
	wantDMs(t, "after 1, limit 1", b.dmHist(2, mux.DMHistoryReq{Peer: "alice", Epoch: epoch, After: 1, Limit: 1}), []string{"two"}, 3, 1, false, true)
	// Another epoch: reset to the latest.
	wantDMs(t, "another epoch", b.dmHist(2, mux.DMHistoryReq{Peer: "alice", Epoch: "nope", After: 1, Limit: 2}), []string{"two", "three"}, 3, 1, true, true)
	// Paging back.
	wantDMs(t, "latest 1", b.dmHist(2, mux.DMHistoryReq{Peer: "alice", Limit: 1}), []string{"three"}, 3, 1, false, true)
	wantDMs(t, "before 3", b.dmHist(2, mux.DMHistoryReq{Peer: "alice", Before: 3, Limit: 1}), []string{"two"}, 3, 1, false, true)
	wantDMs(t, "before 2", b.dmHist(2, mux.DMHistoryReq{Peer: "alice", Before: 2, Limit: 5}), []string{"one"}, 3, 1, false, false)

	// The conversations of a user, the newest first.
	a.dmTo(1, "alice", "a note")
	var l mux.DMListResp
	a.ok(1, mux.CmdDMList, mux.DMListReq{}, &l)
	if len(l.Conversations) != 2 || l.Conversations[0].Peer != "alice" || l.Conversations[1].Peer != "bob" ||
		l.Conversations[1].Top != 3 || l.Conversations[1].Epoch != epoch || l.More {
		t.Fatalf("alice's conversations %+v", l)
	}

	// Nobody else reads it: carol's conversations with either are hers.
	c := dial(t, ts, nil)
	c.attach(1, "carol")
	for _, peer := range []string{"alice", "bob"} {
		if h := c.dmHist(1, mux.DMHistoryReq{Peer: peer}); h.Epoch != "" || len(h.Messages) != 0 || h.Top != 0 {
			t.Fatalf("carol reads %+v with %s", h, peer)
		}
		if h := c.dmHist(1, mux.DMHistoryReq{Peer: peer, Epoch: epoch, After: 1}); !h.Reset || len(h.Messages) != 0 {
			t.Fatalf("carol resumes alice and bob's epoch: %+v", h)
		}
	}
	c.ok(1, mux.CmdDMList, mux.DMListReq{}, &l)
	if len(l.Conversations) != 0 {
		t.Fatalf("carol's conversations %+v", l)
	}
	// An anonymous session has no conversation; bad bodies are refused.
	c.ok(2, mux.CmdAttach, mux.AttachReq{}, nil)
	c.fails(2, mux.CmdDMHistory, mux.DMHistoryReq{Peer: "alice"}, mux.CodeNameRequired, mux.ErrNameRequired)
	c.fails(2, mux.CmdDMList, mux.DMListReq{}, mux.CodeNameRequired, mux.ErrNameRequired)
	c.fails(1, mux.CmdDMHistory, mux.DMHistoryReq{Peer: "not a name"}, mux.CodeBadRequest, mux.ErrBadRequest)
	c.fails(1, mux.CmdDMHistory, mux.DMHistoryReq{Peer: "alice", After: 1, Before: 2}, mux.CodeBadRequest, mux.ErrBadRequest)
	c.fails(1, mux.CmdDMHistory, map[string]any{"peer": "alice", "limit": -1}, mux.CodeBadRequest, mux.ErrBadRequest)
}

// A name freed after its grace and taken by someone else (--auth none):
// the new holder reads none of the first holder's conversations, and its
// first DM starts the conversation again, which the peer sees as a reset.
func TestDMHistoryFreedName(t *testing.T) {
	cfg := testConfig()
	cfg.NameGrace = 300 * time.Millisecond
	cfg.PresenceGrace = 0
	ts := startServer(t, cfg)
	first := dial(t, ts, nil)
	first.attach(1, "alice")
	b := dial(t, ts, nil)
	b.attach(1, "bob")
	old := first.dmTo(1, "bob", "for bob's eyes")
	b.dmTo(1, "alice", "for alice's eyes")
	first.ws.Close()
	waitConns(t, ts, 1)

	second := dial(t, ts, nil)
	eventually(t, 10*time.Second, "the name free after its grace", func() bool {
		return second.cmd(1, mux.CmdAttach, mux.AttachReq{Name: "alice"}).Code == mux.CodeOK
	})
	if h := second.dmHist(1, mux.DMHistoryReq{Peer: "bob"}); h.Epoch != "" || len(h.Messages) != 0 {
		t.Fatalf("the new alice reads the first one's conversation: %+v", h)
	}
	if h := second.dmHist(1, mux.DMHistoryReq{Peer: "bob", Epoch: old.Epoch}); len(h.Messages) != 0 || !h.Reset {
		t.Fatalf("the new alice resumes the first one's epoch: %+v", h)
	}
	var l mux.DMListResp
	second.ok(1, mux.CmdDMList, mux.DMListReq{}, &l)
	if len(l.Conversations) != 0 {
		t.Fatalf("the new alice lists %+v", l)
	}
	// bob keeps what he had until the new alice writes to him.
	wantDMs(t, "bob", b.dmHist(1, mux.DMHistoryReq{Peer: "alice"}), []string{"for bob's eyes", "for alice's eyes"}, 2, 1, false, false)
	r := second.dmTo(1, "bob", "hello, I am new")
	if r.Offset != 1 || r.Epoch == old.Epoch {
		t.Fatalf("the new alice's first DM %+v: want offset 1 of a new epoch", r)
	}
	h := b.dmHist(1, mux.DMHistoryReq{Peer: "alice", Epoch: old.Epoch, After: 2})
	wantDMs(t, "bob resumes", h, []string{"hello, I am new"}, 1, 1, true, false)
	wantDMs(t, "the new alice", second.dmHist(1, mux.DMHistoryReq{Peer: "bob"}), []string{"hello, I am new"}, 1, 1, false, false)
}

// The bounds: messages per conversation, their age, the conversations.
func TestDMHistoryBounds(t *testing.T) {
	cfg := testConfig()
	cfg.DMHistoryMax = 3
	cfg.DMMaxConversations = 2
	ts := startServer(t, cfg)
	a := dial(t, ts, nil)
	a.attach(1, "alice")
	peers := dial(t, ts, nil)
	for i, p := range []string{"bob", "carol", "dave"} {
		peers.attach(uint32(i+1), p)
	}
	for _, text := range []string{"1", "2", "3", "4", "5"} {
		a.dmTo(1, "bob", text)
	}
	wantDMs(t, "3 of 5 kept", a.dmHist(1, mux.DMHistoryReq{Peer: "bob"}), []string{"3", "4", "5"}, 5, 3, false, false)
	h := a.dmHist(1, mux.DMHistoryReq{Peer: "bob", Epoch: a.dmHist(1, mux.DMHistoryReq{Peer: "bob"}).Epoch, After: 1})
	wantDMs(t, "a resume from a trimmed offset", h, []string{"3", "4", "5"}, 5, 3, true, false)
	if st := ts.srv.engine.DMStats(); st.Trimmed < 2 {
		t.Fatalf("DMStats %+v: want 2 trimmed", st)
	}
	time.Sleep(3 * time.Millisecond)
	a.dmTo(1, "carol", "to carol")
	time.Sleep(3 * time.Millisecond)
	a.dmTo(1, "dave", "to dave") // a third conversation: bob's, the least recently active, goes
	eventually(t, 10*time.Second, "the conversation with bob evicted", func() bool {
		return len(a.dmHist(1, mux.DMHistoryReq{Peer: "bob"}).Messages) == 0
	})
	if h := a.dmHist(1, mux.DMHistoryReq{Peer: "carol"}); len(h.Messages) != 1 {
		t.Fatalf("the conversation with carol went: %+v", h)
	}
	eventually(t, 10*time.Second, "the metrics", func() bool {
		_, body := getBody(t, "http://"+ts.addr+"/metrics")
		return strings.Contains(body, "imload_dm_conversations 2\n") && strings.Contains(body, "imload_dm_conversations_evicted_total 1\n") &&
			strings.Contains(body, "imload_dm_trimmed_total 2\n") && strings.Contains(body, "imload_dm_history_total")
	})
}

// Messages older than --dm-history-age are gone.
func TestDMHistoryAge(t *testing.T) {
	cfg := testConfig()
	cfg.DMHistoryAge = 400 * time.Millisecond
	ts := startServer(t, cfg)
	a := dial(t, ts, nil)
	a.attach(1, "alice")
	b := dial(t, ts, nil)
	b.attach(1, "bob")
	a.dmTo(1, "bob", "soon gone")
	if h := b.dmHist(1, mux.DMHistoryReq{Peer: "alice"}); len(h.Messages) != 1 {
		t.Fatalf("at once: %+v", h)
	}
	eventually(t, 10*time.Second, "the message aged out", func() bool {
		return len(b.dmHist(1, mux.DMHistoryReq{Peer: "alice"}).Messages) == 0
	})
}

// --dm-history-max 0: private messages are live only, as before.
func TestDMHistoryOff(t *testing.T) {
	cfg := testConfig()
	cfg.DMHistoryMax = 0
	ts := startServer(t, cfg)
	a := dial(t, ts, nil)
	a.attach(1, "alice")
	b := dial(t, ts, nil)
	b.attach(1, "bob")
	if a.hello.DMHistoryMax != 0 || a.hello.DMHistoryAgeMS != 0 {
		t.Fatalf("hello %+v: want no DM history", a.hello)
	}
	f := a.cmd(1, mux.CmdDM, mux.DMReq{To: "bob", Text: "live"})
	if f.Code != mux.CodeOK || strings.Contains(string(f.Body), "offset") || strings.Contains(string(f.Body), "epoch") {
		t.Fatalf("dm reply %s", f.Body)
	}
	if h := b.dmHist(1, mux.DMHistoryReq{Peer: "alice"}); h.Epoch != "" || len(h.Messages) != 0 {
		t.Fatalf("dm_history without DM history: %+v", h)
	}
}

// With --data, an acknowledged DM survives a restart at its offset, in its
// epoch, for the same users (their tokens).
func TestDMHistorySurvivesRestart(t *testing.T) {
	skipOnRedis(t, "the local engine's store")
	dir := t.TempDir()
	cfg := durableConfig(dir)
	ts := startServer(t, cfg)
	a := dial(t, ts, nil)
	atok := a.attach(1, "alice").Token
	b := dial(t, ts, nil)
	btok := b.attach(1, "bob").Token
	var sent []mux.DMResp
	for _, text := range []string{"one", "two", "three"} {
		sent = append(sent, a.dmTo(1, "bob", text))
	}
	addr := ts.addr
	ts.stop()

	ts = startServerOn(t, cfg, addr)
	b = dial(t, ts, nil)
	b.ok(1, mux.CmdAttach, mux.AttachReq{Name: "bob", Token: btok}, nil)
	h := b.dmHist(1, mux.DMHistoryReq{Peer: "alice", Epoch: sent[0].Epoch})
	wantDMs(t, "after the restart", h, []string{"one", "two", "three"}, 3, 1, false, false)
	if h.Epoch != sent[0].Epoch {
		t.Fatalf("epoch %q after the restart, want %q", h.Epoch, sent[0].Epoch)
	}
	a = dial(t, ts, nil)
	a.ok(1, mux.CmdAttach, mux.AttachReq{Name: "alice", Token: atok}, nil)
	if r := a.dmTo(1, "bob", "four"); r.Offset != 4 || r.Epoch != sent[0].Epoch {
		t.Fatalf("the next DM %+v: want offset 4 of %s", r, sent[0].Epoch)
	}
	var l mux.DMListResp
	a.ok(1, mux.CmdDMList, mux.DMListReq{}, &l)
	if len(l.Conversations) != 1 || l.Conversations[0].Top != 4 {
		t.Fatalf("alice's conversations after the restart: %+v", l)
	}
	// Another token under alice's name (the grace over: a new server) does
	// not read them.
	addr = ts.addr
	ts.stop()
	ts = startServerOn(t, cfg, addr)
	c := dial(t, ts, nil)
	c.attach(1, "alice")
	if h := c.dmHist(1, mux.DMHistoryReq{Peer: "bob"}); len(h.Messages) != 0 {
		t.Fatalf("another token as alice reads %+v", h)
	}
}

// On a durable server a DM is answered and pushed only once committed.
func TestDMWaitsForCommit(t *testing.T) {
	skipOnRedis(t, "the local engine's store")
	dir := t.TempDir()
	ts := startServer(t, durableConfig(dir))
	a := dial(t, ts, nil)
	a.attach(1, "alice")
	b := dial(t, ts, nil)
	b.attach(1, "bob")
	lock := lockStore(t, dir)
	a.rawCmd(1, 99, mux.CmdDM, mux.DMReq{To: "bob", Text: "held"})
	a.none(300*time.Millisecond, "the reply before the commit", replyTo(1, 99))
	b.none(10*time.Millisecond, "the push before the commit", isPush(mux.EvDM))
	lock.unlock()
	f := a.next(replyTo(1, 99))
	var r mux.DMResp
	if err := json.Unmarshal(f.Body, &r); err != nil || f.Code != mux.CodeOK || r.Offset != 1 {
		t.Fatalf("reply after the commit %+v", f)
	}
	b.push(mux.EvDM, nil)
}

// Two nodes over Redis: a DM sent through one is in the history read
// through the other, by either user, at the offsets its replies and
// pushes gave.
func TestNodesDMHistory(t *testing.T) {
	nodes := startNodes(t, 2, nil)
	a := dial(t, nodes[0], nil)
	atok := a.attach(1, "alice").Token
	b := dial(t, nodes[1], nil)
	b.attach(1, "bob")
	r1 := a.dmTo(1, "bob", "via n1")
	var p mux.DM
	b.push(mux.EvDM, &p)
	if p.Offset != r1.Offset || p.Epoch != r1.Epoch || r1.Offset != 1 {
		t.Fatalf("push on n2 %+v, reply on n1 %+v", p, r1)
	}
	r2 := b.dmTo(1, "alice", "via n2")
	a.push(mux.EvDM, &p)
	if r2.Offset != 2 || p.Offset != 2 || p.Epoch != r1.Epoch {
		t.Fatalf("reply on n2 %+v, push on n1 %+v", r2, p)
	}
	wantDMs(t, "bob on n2", b.dmHist(1, mux.DMHistoryReq{Peer: "alice"}), []string{"via n1", "via n2"}, 2, 1, false, false)
	// alice's second browser, on n2.
	a2 := dial(t, nodes[1], nil)
	a2.ok(1, mux.CmdAttach, mux.AttachReq{Name: "alice", Token: atok}, nil)
	wantDMs(t, "alice on n2", a2.dmHist(1, mux.DMHistoryReq{Peer: "bob", Epoch: r1.Epoch}), []string{"via n1", "via n2"}, 2, 1, false, false)
	var l mux.DMListResp
	a2.ok(1, mux.CmdDMList, mux.DMListReq{}, &l)
	if len(l.Conversations) != 1 || l.Conversations[0].Peer != "bob" || l.Conversations[0].Top != 2 || l.Conversations[0].Epoch != r1.Epoch {
		t.Fatalf("alice's conversations on n2: %+v", l)
	}
	// A third user on either node reads nothing of it.
	for i, n := range nodes {
		c := dial(t, n, nil)
		c.attach(1, []string{"carol", "dave"}[i])
		for _, peer := range []string{"alice", "bob"} {
			if h := c.dmHist(1, mux.DMHistoryReq{Peer: peer}); len(h.Messages) != 0 {
				t.Fatalf("a third user reads %+v", h)
			}
		}
	}
}
