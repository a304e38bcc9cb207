package server

import (
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"imload/mux"
)

// A verified user's display name (its token's name claim) is what others
// see with its user name: in its messages (pushes and history), its
// presence, who, and its private messages (pushes and history); kept with
// the history across a restart. A user without one has none.

// displayToken is an HS256 token of the test secret for sub with the
// display name display.
func displayToken(t *testing.T, sub, display string) string {
	cl := claimsFor(sub, time.Hour)
	cl.Name = display
	return signed(t, jwt.SigningMethodHS256, testSecret, cl, "")
}

const aliceDisplay = `Alice "Al" Smith | ü`

// checkAliceHistory checks that bob (session 1 of b) reads alice's
// display name in the history of room, where she sent text, and in their
// conversation, where she sent dm first; and no display name for others.
func checkAliceHistory(t *testing.T, b *client, room, text, dm string) {
	t.Helper()
	var h mux.HistoryResp
	b.ok(1, mux.CmdHistory, mux.HistoryReq{Room: room}, &h)
	found := false
	for _, m := range h.Messages {
		if m.Text == text {
			found = true
			if m.From != "alice" || m.Display != aliceDisplay {
				t.Fatalf("history entry %+v, want alice's display name %q", m, aliceDisplay)
			}
		} else if m.Display != "" {
			t.Fatalf("history entry %+v from a user without a display name", m)
		}
	}
	if !found {
		t.Fatalf("history of %s %+v: no %q", room, h, text)
	}
	d := b.dmHist(1, mux.DMHistoryReq{Peer: "alice"})
	if len(d.Messages) == 0 || d.Messages[0].Text != dm || d.Messages[0].Display != aliceDisplay {
		t.Fatalf("dm_history %+v, want %q with alice's display name", d, dm)
	}
}

// alicePushes checks that bob (session 1 of b, in room r) sees alice's
// display name in the push of her join (she just joined r through a) and
// in those of a message and a DM she then sends.
func alicePushes(t *testing.T, a, b *client) {
	t.Helper()
	var p mux.Presence
	b.push(mux.EvJoin, &p)
	if p.User != "alice" || p.Display != aliceDisplay {
		t.Fatalf("join push %+v, want alice with her display name", p)
	}
	a.send(1, "r", "from alice")
	var m mux.Message
	for m.Text != "from alice" {
		b.push(mux.EvMsg, &m)
	}
	if m.From != "alice" || m.Display != aliceDisplay {
		t.Fatalf("msg push %+v, want alice's display name", m)
	}
	a.dmTo(1, "bob", "psst")
	var d mux.DM
	b.push(mux.EvDM, &d)
	if d.From != "alice" || d.Display != aliceDisplay {
		t.Fatalf("dm push %+v, want alice's display name", d)
	}
}

func TestJWTDisplayName(t *testing.T) {
	cfg := jwtConfig()
	if !onRedis() {
		cfg.Memory, cfg.DataDir = false, t.TempDir()
	}
	ts := startServer(t, cfg)
	b := dial(t, ts, nil)
	b.attachJWT(1, hs256(t, "bob", time.Hour)) // no display name
	b.join(1, "r")
	b.send(1, "r", "from bob")
	a := dial(t, ts, nil)
	if r := a.attachJWT(1, displayToken(t, "alice", aliceDisplay)); r.Name != aliceDisplay {
		t.Fatalf("attach reply %+v", r)
	}
	a.join(1, "r")
	alicePushes(t, a, b)
	var w mux.WhoResp
	b.ok(1, mux.CmdWho, mux.WhoReq{Room: "r"}, &w)
	for _, u := range w.Users {
		if want := map[string]string{"alice": aliceDisplay}[u.Name]; u.Display != want {
			t.Fatalf("who %+v: %s's display name %q, want %q", w, u.Name, u.Display, want)
		}
	}
	if len(w.Users) != 2 {
		t.Fatalf("who %+v", w)
	}
	checkAliceHistory(t, b, "r", "from alice", "psst")
	if onRedis() {
		return // the history lives in Redis: a restart of the node changes nothing
	}

	addr := ts.addr
	ts.stop()
	ts = startServerOn(t, cfg, addr)
	b = dial(t, ts, nil)
	b.attachJWT(1, hs256(t, "bob", time.Hour))
	checkAliceHistory(t, b, "r", "from alice", "psst")
}

// Across nodes over Redis: bob on one node sees alice's display name,
// alice being on another, and carol on a third, in who.
func TestJWTDisplayNameAcrossNodes(t *testing.T) {
	nodes := startNodes(t, 3, func(cfg *Config) {
		cfg.Auth, cfg.JWTHMACSecret = AuthJWT, testSecret
	})
	b := dial(t, nodes[1], nil)
	b.attachJWT(1, hs256(t, "bob", time.Hour))
	b.join(1, "r")
	a := dial(t, nodes[0], nil)
	a.attachJWT(1, displayToken(t, "alice", aliceDisplay))
	a.join(1, "r")
	alicePushes(t, a, b)
	checkAliceHistory(t, b, "r", "from alice", "psst")
	c := dial(t, nodes[2], nil) // a node's who of a room it has not opened reads Redis
	c.attachJWT(1, hs256(t, "carol", time.Hour))
	var w mux.WhoResp
	c.ok(1, mux.CmdWho, mux.WhoReq{Room: "r"}, &w)
	found := false
	for _, u := range w.Users {
		found = found || u.Name == "alice" && u.Display == aliceDisplay
	}
	if !found {
		t.Fatalf("who %+v, want alice with her display name", w)
	}
}
