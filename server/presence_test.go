package server

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"imload/mux"
)

// presenceOf drains c's frames and returns the join/leave pushes about
// user, in order.
func presenceOf(t *testing.T, c *client, user string) []string {
	t.Helper()
	for {
		select {
		case f, ok := <-c.frames:
			if !ok {
				t.Fatalf("connection closed (close: %v)", c.closeErr())
			}
			c.buf = append(c.buf, f)
			continue
		default:
		}
		break
	}
	var evs []string
	for _, f := range c.buf {
		if f.T != mux.TypePush || (f.Ev != mux.EvJoin && f.Ev != mux.EvLeave) {
			continue
		}
		var p mux.Presence
		if err := json.Unmarshal(f.Body, &p); err != nil {
			t.Fatal(err)
		}
		if p.User == user {
			evs = append(evs, f.Ev)
		}
	}
	return evs
}

// One session cycling join/leave in a room of M members costs each member
// a bounded number of presence pushes per second (the room's presence is
// coalesced: presence.go), the pushes a member sees alternate and end in
// the user's real state, and nobody is dropped as a slow consumer. The
// connection rate limit is lifted here: this tests the coalescing alone.
func TestPresenceStormCoalesced(t *testing.T) {
	cfg := testConfig()
	cfg.ConnRate, cfg.ConnBurst = 1e6, 1e6
	ts := startServer(t, cfg)
	iv := ts.srv.cfg.PresenceInterval
	const members, cycles, rounds = 20, 500, 6
	var ms []*client
	for i := range members {
		c := dial(t, ts, nil)
		c.attach(1, fmt.Sprint("m", i))
		c.join(1, "r")
		ms = append(ms, c)
	}
	cyc := dial(t, ts, nil)
	cyc.attach(1, "cycler")
	start := time.Now()
	for round := range rounds {
		var cmds []pipelined
		for range cycles {
			cmds = append(cmds, pipelined{mux.CmdJoin, mux.JoinReq{Room: "r"}}, pipelined{mux.CmdLeave, mux.LeaveReq{Room: "r"}})
		}
		if round%2 == 1 {
			cmds = append(cmds, pipelined{mux.CmdJoin, mux.JoinReq{Room: "r"}}) // ends in the room
		}
		for _, f := range cyc.batch(1, cmds) {
			if f.Code != mux.CodeOK {
				t.Fatalf("%d %s %s", f.Code, f.Err, f.Msg)
			}
		}
		var w mux.WhoResp
		cyc.ok(1, mux.CmdWho, mux.WhoReq{Room: "r"}, &w)
		listed := false
		for _, u := range w.Users {
			listed = listed || u.Name == "cycler"
		}
		if listed != (round%2 == 1) {
			t.Fatalf("round %d: who lists the cycler: %v", round, listed)
		}
		time.Sleep(iv / 2) // spread the storm over several intervals
	}
	for i, m := range ms {
		eventually(t, 10*time.Second, "the last presence push to say the cycler is in", func() bool {
			evs := presenceOf(t, m, "cycler")
			return len(evs) > 0 && evs[len(evs)-1] == mux.EvJoin
		})
		evs := presenceOf(t, m, "cycler")
		// At most one push at once and one per flush per interval.
		elapsed := time.Since(start)
		if max := 2*int(elapsed/iv) + 2; len(evs) > max {
			t.Fatalf("member %d got %d presence pushes about one user in %v, want at most %d", i, len(evs), elapsed, max)
		}
		if i == 0 {
			t.Logf("member 0: %d presence pushes about the cycler in %v: %v", len(evs), elapsed, evs)
		}
		for k := 1; k < len(evs); k++ {
			if evs[k] == evs[k-1] {
				t.Fatalf("member %d: two %s pushes in a row: %v", i, evs[k], evs)
			}
		}
	}
	if n := ts.srv.Stats().SlowConsumers; n != 0 {
		t.Fatalf("%d slow consumers", n)
	}
	if n := ts.srv.Stats().PhysicalConnections; n != members+1 {
		t.Fatalf("%d connections left, want %d", n, members+1)
	}
}
