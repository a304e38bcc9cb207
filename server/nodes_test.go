package server

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"imload/mux"
	"imload/server/redistest"
)

// Several nodes in one test process sharing one Redis (a database of the
// package's redis-server), with real WebSocket clients on different nodes.

// startNodes starts n servers on one Redis database, nodes n1…nN.
func startNodes(t *testing.T, n int, tune func(*Config)) []*testServer {
	t.Helper()
	db := redistest.Shared(t).DB(t)
	out := make([]*testServer, n)
	for i := range out {
		cfg := testConfig()
		cfg.WrapEngine = nil
		cfg.Redis, cfg.RedisPrefix, cfg.NodeID = db.URL, db.Prefix, fmt.Sprint("n", i+1)
		if tune != nil {
			tune(&cfg)
		}
		out[i] = startServer(t, cfg)
	}
	return out
}

// A room spread over 3 nodes: every member sees every message once, in
// offset order, whichever node it was sent through.
func TestNodesRoomAcrossThreeNodes(t *testing.T) {
	nodes := startNodes(t, 3, nil)
	const perSender = 40
	var cs []*client
	for i, ts := range nodes {
		c := dial(t, ts, nil)
		c.attach(1, fmt.Sprint("u", i))
		c.join(1, "lobby")
		cs = append(cs, c)
	}
	for i, c := range cs {
		var msg []byte
		for k := range perSender {
			c.seq++
			msg = mux.AppendCmd(msg, 1, c.seq, mux.CmdSend, mux.EncodeBody(mux.SendReq{Room: "lobby", Text: fmt.Sprintf("m%d-%d", i, k), CID: fmt.Sprint("c", k)}))
			msg = append(msg, '\n')
		}
		c.sendRaw(string(msg))
	}
	total := len(cs) * perSender
	var order [][]string
	for i, c := range cs {
		var texts []string
		next := map[string]int{}
		for off := uint64(1); off <= uint64(total); off++ {
			var m mux.Message
			c.push(mux.EvMsg, &m)
			if m.Offset != off {
				t.Fatalf("client on node %d: offset %d, want %d", i+1, m.Offset, off)
			}
			var from, k int
			fmt.Sscanf(m.Text, "m%d-%d", &from, &k)
			if k != next[m.From] {
				t.Fatalf("client on node %d: %s's message %d, want %d", i+1, m.From, k, next[m.From])
			}
			next[m.From]++
			texts = append(texts, m.Text)
		}
		order = append(order, texts)
		for _, f := range c.buf {
			if f.T == mux.TypeReply && f.Code != mux.CodeOK {
				t.Fatalf("client on node %d: a send failed: %d %s %s", i+1, f.Code, f.Err, f.Msg)
			}
		}
	}
	for i := 1; i < len(order); i++ {
		if !slices.Equal(order[0], order[i]) {
			t.Fatalf("node %d sees another order than node 1", i+1)
		}
	}
	// Nothing more comes: each message once.
	time.Sleep(100 * time.Millisecond)
	for i, c := range cs {
		for len(c.frames) > 0 {
			if f := <-c.frames; f.T == mux.TypePush && f.Ev == mux.EvMsg {
				t.Fatalf("client on node %d: an extra message %s", i+1, f.Body)
			}
		}
	}
}

// who is the same from every node; a user joining on one node is
// announced to the members on the others.
func TestNodesWho(t *testing.T) {
	nodes := startNodes(t, 3, nil)
	names := []string{"alice", "bob", "carol"}
	var cs []*client
	for i, ts := range nodes {
		c := dial(t, ts, nil)
		c.attach(1, names[i])
		c.join(1, "r")
		cs = append(cs, c)
	}
	// bob's and carol's joins, from nodes 2 and 3, in either order: each
	// node publishes its presence change when its queue to Redis gets to
	// it, after the join's reply
	var joined []string
	for range 2 {
		var p mux.Presence
		cs[0].push(mux.EvJoin, &p)
		joined = append(joined, p.User)
	}
	if slices.Sort(joined); !slices.Equal(joined, names[1:]) {
		t.Fatalf("alice on node 1 told of %v joining, want bob and carol", joined)
	}
	for i, c := range cs {
		eventually(t, 5*time.Second, fmt.Sprint("who on node ", i+1), func() bool {
			var w mux.WhoResp
			c.ok(1, mux.CmdWho, mux.WhoReq{Room: "r"}, &w)
			var got []string
			for _, u := range w.Users {
				got = append(got, u.Name)
			}
			return slices.Equal(got, names)
		})
	}
}

// A DM reaches the recipient's sessions on every node, and the sender's
// other sessions; the reply counts them all.
func TestNodesDM(t *testing.T) {
	nodes := startNodes(t, 3, nil)
	a1 := dial(t, nodes[0], nil)
	tok := a1.attach(1, "alice").Token
	a2 := dial(t, nodes[1], nil)
	a2.ok(1, mux.CmdAttach, mux.AttachReq{Name: "alice", Token: tok}, nil)
	b := dial(t, nodes[2], nil)
	btok := b.attach(1, "bob").Token
	b2 := dial(t, nodes[0], nil)
	b2.ok(1, mux.CmdAttach, mux.AttachReq{Name: "bob", Token: btok}, nil)
	var r mux.DMResp
	b.ok(1, mux.CmdDM, mux.DMReq{To: "alice", Text: "psst"}, &r)
	if r.Sessions != 3 { // alice on nodes 1 and 2, bob's other on node 1
		t.Fatalf("dm went to %d sessions, want 3", r.Sessions)
	}
	for i, c := range []*client{a1, a2, b2} {
		var d mux.DM
		c.push(mux.EvDM, &d)
		if d.From != "bob" || d.To != "alice" || d.Text != "psst" || d.ID == 0 {
			t.Fatalf("client %d got %+v", i, d)
		}
	}
	for _, f := range b.buf {
		if f.T == mux.TypePush && f.Ev == mux.EvDM {
			t.Fatalf("the sending session got its own dm: %s", f.Body)
		}
	}
}

// Names are unique across nodes: taken on one, refused on another without
// the token, given back with it.
func TestNodesNames(t *testing.T) {
	nodes := startNodes(t, 3, nil)
	a := dial(t, nodes[0], nil)
	tok := a.attach(1, "alice").Token
	other := dial(t, nodes[1], nil)
	other.fails(1, mux.CmdAttach, mux.AttachReq{Name: "Alice"}, mux.CodeNameTaken, mux.ErrNameTaken)
	same := dial(t, nodes[2], nil)
	var r mux.AttachResp
	same.ok(1, mux.CmdAttach, mux.AttachReq{Name: "ALICE", Token: tok}, &r)
	if r.User != "alice" {
		t.Fatalf("the owner on node 3: %+v", r)
	}
}

// The per-user connection cap holds across nodes: the oldest connection
// is kicked, on its node.
func TestNodesMaxConnsPerUser(t *testing.T) {
	nodes := startNodes(t, 3, func(c *Config) { c.MaxConnsPerUser = 2 })
	first := dial(t, nodes[0], nil)
	tok := first.attach(1, "alice").Token
	time.Sleep(5 * time.Millisecond) // connections are ordered by the ms they opened
	second := dial(t, nodes[1], nil)
	second.ok(1, mux.CmdAttach, mux.AttachReq{Name: "alice", Token: tok}, nil)
	time.Sleep(5 * time.Millisecond)
	third := dial(t, nodes[2], nil)
	third.ok(1, mux.CmdAttach, mux.AttachReq{Name: "alice", Token: tok}, nil)
	f := first.next(func(f mux.Frame) bool { return f.T == mux.TypeGoAway })
	if !strings.Contains(string(f.Body), mux.GoAwayTooManyConns) {
		t.Fatalf("goaway %s", f.Body)
	}
	if ce := first.waitClosed(5 * time.Second); ce == nil || ce.Code != closeTooManyConns {
		t.Fatalf("close %v, want 4003", ce)
	}
	select {
	case <-second.closed:
		t.Fatal("the second connection was closed")
	case <-time.After(100 * time.Millisecond):
	}
}

// getBody GETs url and returns the status and body.
func getBody(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := oneShot().Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// /lbs on any node lists the live nodes' advertised addresses, fewest
// connections first; /metrics has the engine's counters.
func TestNodesLBS(t *testing.T) {
	nodes := startNodes(t, 2, func(c *Config) { c.Advertise = "ws://" + c.NodeID + ".example/ws" })
	c := dial(t, nodes[0], nil) // node 1 has a connection, node 2 none
	c.attach(1, "alice")
	eventually(t, 5*time.Second, "both nodes listed, node 2 first", func() bool {
		_, body := getBody(t, "http://"+nodes[0].addr+"/lbs")
		var l LBS
		json.Unmarshal([]byte(body), &l)
		return slices.Equal(l.Addrs, []string{"ws://n2.example/ws", "ws://n1.example/ws"})
	})
	if code, body := getBody(t, "http://"+nodes[1].addr+"/metrics"); code != 200 || !strings.Contains(body, "imload_redis_published_total") {
		t.Fatalf("/metrics: %d, no imload_redis_published_total", code)
	}
}

// Redis unreachable: /healthz says so (503), sends are refused at once
// with 503 unavailable; once Redis is back, the node recovers by itself:
// the room's members are told to go away and resume (its history was
// lost with Redis), and sends go through again.
func TestNodesRedisDown(t *testing.T) {
	srv := redistest.Start(t)
	cfg := testConfig()
	cfg.WrapEngine = nil
	cfg.Redis, cfg.NodeID = srv.URL(), "n1"
	ts := startServer(t, cfg)
	c := dial(t, ts, nil)
	c.attach(1, "alice")
	c.join(1, "r")
	c.send(1, "r", "before")
	if code, _ := getBody(t, "http://"+ts.addr+"/healthz"); code != 200 {
		t.Fatalf("/healthz %d with Redis up", code)
	}
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "/healthz 503", func() bool {
		code, _ := getBody(t, "http://"+ts.addr+"/healthz")
		return code == 503
	})
	c.fails(1, mux.CmdSend, mux.SendReq{Room: "r", Text: "during"}, mux.CodeUnavailable, mux.ErrUnavailable)
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "/healthz 200 again", func() bool {
		code, _ := getBody(t, "http://"+ts.addr+"/healthz")
		return code == 200
	})
	f := c.next(func(f mux.Frame) bool { return f.T == mux.TypeGoAway })
	if !strings.Contains(string(f.Body), "room_reset") {
		t.Fatalf("goaway %s, want room_reset", f.Body)
	}
	c2 := dial(t, ts, nil)
	c2.attach(1, "bob")
	j := c2.join(1, "r")
	if r := c2.send(1, "r", "after"); r.Offset != j.Top+1 || r.Epoch != j.Epoch {
		t.Fatalf("send after the restart: %+v (joined at %+v)", r, j)
	}
}

// A page served by another node of the cluster may open a WebSocket here
// (its browser's worker moves between nodes), also once that node has
// left the list; a stranger's page may not.
func TestNodesPeerOrigins(t *testing.T) {
	nodes := startNodes(t, 2, func(c *Config) { c.Advertise = "ws://" + c.NodeID + ".example:8080/ws" })
	withOrigin := func(o string) http.Header { return http.Header{"Origin": {o}} }
	eventually(t, 5*time.Second, "node 2 to see node 1", func() bool {
		_, err := tryDial(t, nodes[1], withOrigin("http://n1.example:8080"))
		return err == nil
	})
	if _, err := tryDial(t, nodes[1], withOrigin("https://stranger.example")); err == nil {
		t.Fatal("a stranger's page opened a WebSocket")
	}
	nodes[0].stop()
	eventually(t, 10*time.Second, "node 1 to leave node 2's list", func() bool {
		_, body := getBody(t, "http://"+nodes[1].addr+"/lbs")
		return !strings.Contains(body, "n1.example")
	})
	if _, err := tryDial(t, nodes[1], withOrigin("http://n1.example:8080")); err != nil {
		t.Fatalf("a page of a node that left the list: %v", err)
	}
}
