package server

import (
	"database/sql"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"imload/mux"
	"imload/server/engine"
	"imload/server/store"
)

// The node's view of presence merges its own sessions with what other
// nodes report (Sink.Presence, Sink.NodeGone): a user present anywhere is
// present, members are told only when that changes, and who lists every
// present user.
func TestPresenceOfOtherNodes(t *testing.T) {
	cfg := testConfig()
	cfg.PresenceInterval = 0 // every change at once
	cfg.PresenceGrace = 0    // a dead node's users leave at once (TestPresenceGrace has the grace)
	ts := startServer(t, cfg)
	sink := nodeSink{s: ts.srv}
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
	bob := engine.Author{Name: "bob", Color: engine.Color("bob")}
	isPresence := func(f mux.Frame) bool {
		return f.T == mux.TypePush && (f.Ev == mux.EvJoin || f.Ev == mux.EvLeave)
	}
	expect := func(ev string) {
		t.Helper()
		var p mux.Presence
		f := alice.next(isPresence)
		if err := jsonBody(f, &p); err != nil || f.Ev != ev || p.User != "bob" || p.Room != "r" || p.Color != bob.Color {
			t.Fatalf("presence push %s %+v (%v), want %s of bob", f.Ev, p, err, ev)
		}
	}
	sink.Presence("r", engine.Present{User: bob, Node: "n2"}, true)
	expect(mux.EvJoin)
	sink.Presence("r", engine.Present{User: bob, Node: "n3"}, true) // present on a second node: no news
	if got := whoIs(); got != "alice,bob" {
		t.Fatalf("who: %s", got)
	}
	// bob joins here too, then leaves: still present elsewhere.
	b := dial(t, ts, nil)
	b.attach(1, "bob")
	b.join(1, "r")
	b.ok(1, mux.CmdLeave, mux.LeaveReq{Room: "r"}, nil)
	alice.none(100*time.Millisecond, "a presence push while bob is present on another node", isPresence)
	sink.Presence("r", engine.Present{User: bob, Node: "n2"}, false)
	sink.NodeGone("n3")
	expect(mux.EvLeave)
	alice.none(100*time.Millisecond, "a second leave", isPresence)
	if got := whoIs(); got != "alice" {
		t.Fatalf("who after bob's nodes went: %s", got)
	}
	sink.Presence("nowhere", engine.Present{User: bob, Node: "n2"}, true) // not open here: nothing
}

func jsonBody(f mux.Frame, out any) error { return json.Unmarshal(f.Body, out) }

// Sink.Kick closes this node's connection with goaway
// too_many_connections and 4003; an unknown id is ignored.
func TestSinkKick(t *testing.T) {
	ts := startServer(t, testConfig())
	c := dial(t, ts, nil)
	c.attach(1, "alice")
	sink := nodeSink{s: ts.srv}
	sink.Kick(12345, "nobody")
	sink.Kick(c.hello.ConnID, "alice")
	var g mux.GoAway
	f := c.next(func(f mux.Frame) bool { return f.T == mux.TypeGoAway })
	if err := jsonBody(f, &g); err != nil || g.Reason != mux.GoAwayTooManyConns {
		t.Fatalf("goaway %+v %v", g, err)
	}
	if ce := c.waitClosed(3 * time.Second); ce == nil || ce.Code != closeTooManyConns {
		t.Fatalf("close %v, want 4003", ce)
	}
	eventually(t, 3*time.Second, "the kicked connection to end", func() bool { return sink.Conns() == 0 })
}

// /healthz says 503, with the reason, while the engine cannot order new
// messages (the local engine: its store's writes fail), and ok again once
// they succeed; the send that waited is answered then.
func TestHealthzFollowsTheEngine(t *testing.T) {
	skipOnRedis(t, "the local engine's store failing (the Redis engine's health is tested in nodes_test.go with Redis killed)")
	dir := t.TempDir()
	ts := startServer(t, durableConfig(dir))
	health := func() (int, string) {
		resp, err := oneShot().Get("http://" + ts.addr + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := health(); code != http.StatusOK {
		t.Fatalf("healthz %d on a working server", code)
	}
	a := dial(t, ts, nil)
	a.attach(1, "alice")
	a.join(1, "r")
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, store.FileName)+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`ALTER TABLE messages RENAME TO messages_away`); err != nil {
		t.Fatal(err)
	}
	a.rawCmd(1, 100, mux.CmdSend, mux.SendReq{Room: "r", Text: "waits"})
	eventually(t, 10*time.Second, "healthz to fail", func() bool {
		code, body := health()
		return code == http.StatusServiceUnavailable && strings.Contains(body, "messages")
	})
	if _, err := db.Exec(`ALTER TABLE messages_away RENAME TO messages`); err != nil {
		t.Fatal(err)
	}
	if f, ok := a.tryNext(15*time.Second, replyTo(1, 100)); !ok || f.Code != mux.CodeOK {
		t.Fatalf("the send after the store recovered: %v %+v", ok, f)
	}
	if code, body := health(); code != http.StatusOK {
		t.Fatalf("healthz %d %q after recovery", code, body)
	}
}

// A log opened before the sweep dropped rooms, answered after, is not
// adopted (it may be one the engine was told to drop): adopt drops it and
// the caller opens the room again.
func TestAdoptRefusesALogOpenedBeforeADrop(t *testing.T) {
	skipOnRedis(t, "it awaits the local engine's answers, which come at once, and relies on a dropped room being forgotten")
	cfg := testConfig()
	cfg.WrapEngine = nil // the engine's answers are awaited here: the local engine's, at once
	ts := startServer(t, cfg)
	srv := ts.srv
	gen := srv.hub.dropGen()
	var opened engine.Opened
	srv.engine.Open("r", true, func(o engine.Opened, err error) {
		if err != nil {
			t.Fatal(err)
		}
		opened = o
	})
	srv.hub.roomsMu.Lock()
	srv.hub.drops++ // as if the sweep had dropped a room meanwhile
	srv.hub.roomsMu.Unlock()
	if r := srv.adopt("r", opened, gen); r != nil || srv.hub.room("r") != nil {
		t.Fatal("a log opened before a drop was adopted")
	}
	srv.engine.Open("r", false, func(_ engine.Opened, err error) {
		if !errors.Is(err, engine.ErrUnknownRoom) {
			t.Fatalf("the refused log's room is still in the engine: %v", err)
		}
	})
	gen = srv.hub.dropGen()
	srv.engine.Open("r", true, func(o engine.Opened, err error) { opened = o })
	if r := srv.adopt("r", opened, gen); r == nil || srv.hub.room("r") != r || r.log != opened.Log {
		t.Fatal("a log opened since the last drop was not adopted")
	}
}
