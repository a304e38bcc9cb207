package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"imload/reports"
	"imload/server/redistest"
	"imload/server/servertest"
)

// Real nodes sharing rooms through a real redis-server (server/redistest:
// a database of the package's shared one each test), started in this
// process (server/servertest), with the load generator against them.

// redisNodes starts n servers on one Redis database, node ids n0…, each
// advertising its own address (listened on first), and returns them and
// the database.
func redisNodes(t *testing.T, n int) ([]*servertest.Server, redistest.DB) {
	t.Helper()
	db := redistest.Shared(t).DB(t)
	out := make([]*servertest.Server, n)
	for i := range out {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		cfg := testServerConfig("")
		cfg.Memory = false
		cfg.Redis, cfg.RedisPrefix, cfg.NodeID = db.URL, db.Prefix, fmt.Sprint("n", i)
		cfg.Advertise = "ws://" + ln.Addr().String() + "/ws"
		out[i] = servertest.StartListener(t, cfg, ln)
	}
	// Each node reads the node list every second: wait until the first
	// lists them all.
	waitListed(t, out[0], out)
	return out, db
}

// publishedIn returns how many messages the rooms of db hold in all: the
// sum of their tops.
func publishedIn(t *testing.T, db redistest.DB) int64 {
	t.Helper()
	keys, err := db.Do("KEYS", db.Prefix+"{r:*}:m")
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, k := range keys.([]any) {
		v, err := db.Do("HGET", k.(string), "top")
		if err != nil {
			t.Fatal(err)
		}
		top, err := strconv.ParseInt(v.(string), 10, 64)
		if err != nil {
			t.Fatalf("%s top %v: %v", k, v, err)
		}
		n += top
	}
	return n
}

// waitListed waits until lister's /lbs names every node of want, and no
// other.
func waitListed(t *testing.T, lister *servertest.Server, want []*servertest.Server) {
	t.Helper()
	var urls []string
	for _, s := range want {
		urls = append(urls, s.WSURL())
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := fetchLBS(t.Context(), lister.URL()+"/lbs")
		if err == nil && len(got) == len(urls) && !slices.ContainsFunc(urls, func(u string) bool { return !slices.Contains(got, u) }) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s/lbs lists %v (%v), want %v", lister.URL(), got, err, urls)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// One room spread over three nodes sharing it through Redis, given as the
// /lbs of one of them (the Redis registry lists them all): every message
// reaches every member tab once, in order, whichever node it was sent
// through; about two thirds of the deliveries cross nodes (a member's
// sender is on another node two times out of three), DM copies too; each
// node carries its third, as its own /stats says, and the run's
// server_stats_peak is the nodes' aggregate.
func TestRunRoomAcrossThreeNodes(t *testing.T) {
	nodes, _ := redisNodes(t, 3)
	const clients, tabs = 30, 2
	sc := Scenario{
		Targets: []string{nodes[0].URL() + "/lbs"}, Clients: clients, Tabs: tabs, Rooms: 1, RoomsPerUser: 1,
		Rate: 1, DMRatio: 0.2, History: 5, Ramp: 500 * time.Millisecond, Duration: 3 * time.Second, Drain: 10 * time.Second, Seed: 7,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := Run(ctx, sc, WithSettle(500*time.Millisecond), WithLogf(t.Logf))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Runs) != 2 || !res.Verdict.Pass {
		t.Fatalf("%d runs, verdict %+v", len(res.Runs), res.Verdict)
	}
	for i := range res.Runs {
		run := &res.Runs[i]
		d := run.Delivery
		if d.Expected == 0 || d.Delivered != d.Expected || d.Lost+d.Duplicated+d.Reordered+d.Mismatched != 0 {
			t.Errorf("%s: delivery %+v", run.Mode, d)
		}
		if n := run.Counters.TotalErrors(); n != 0 {
			t.Errorf("%s: errors %v", run.Mode, run.Counters.Errors)
		}
		if share := float64(d.CrossNode) / float64(d.Delivered); share < 0.55 || share > 0.78 {
			t.Errorf("%s: %d of %d deliveries cross-node (%.2f), want about two thirds", run.Mode, d.CrossNode, d.Delivered, share)
		}
		// A DM's copies: the target's two tabs (on another node two times
		// out of three) and the sender's other tab (on the sender's node):
		// about 4/9 cross nodes.
		dm := run.DMDelivery
		if dm == nil || dm.Delivered == 0 || dm.Lost != 0 || dm.Duplicated != 0 {
			t.Fatalf("%s: DM delivery %+v", run.Mode, dm)
		}
		if share := float64(dm.CrossNode) / float64(dm.Delivered); share < 0.3 || share > 0.6 {
			t.Errorf("%s: %d of %d DM copies cross-node (%.2f), want about 4/9", run.Mode, dm.CrossNode, dm.Delivered, share)
		}
		if len(run.Nodes) != 3 {
			t.Fatalf("%s: nodes %+v", run.Mode, run.Nodes)
		}
		wantConns := int64(clients / 3)
		if run.Mode == reports.ModePerTab {
			wantConns *= tabs
		}
		var delivered, cross int64
		for _, n := range run.Nodes {
			if n.PhysicalConnectionsPeak != wantConns || int64(statNum(n.ServerStatsPeak, reports.StatPhysicalConnections)) != wantConns {
				t.Errorf("%s: node %s: %d connections at peak, its /stats says %v, want %d", run.Mode, n.Target,
					n.PhysicalConnectionsPeak, n.ServerStatsPeak[reports.StatPhysicalConnections], wantConns)
			}
			delivered += n.Delivered
			cross += n.CrossNode
		}
		if delivered != d.Delivered || cross != d.CrossNode {
			t.Errorf("%s: nodes delivered %d (%d cross-node), the run %d (%d)", run.Mode, delivered, cross, d.Delivered, d.CrossNode)
		}
		agg := run.ServerStatsPeak
		if statNum(agg, reports.StatNodes) != 3 || int64(statNum(agg, reports.StatPhysicalConnections)) != run.PhysicalConnectionsPeak ||
			int64(statNum(agg, reports.StatLogicalSessions)) != run.SessionsPeak {
			t.Errorf("%s: aggregate server_stats_peak %v, want 3 nodes, %d connections, %d sessions", run.Mode, agg,
				run.PhysicalConnectionsPeak, run.SessionsPeak)
		}
		// The servers' counters, summed over the nodes: every message in
		// once (on the node it was sent through), every push out once.
		if run.Notes["server_messages_in"] != run.Counters.MessagesSent || run.Notes["server_messages_out"] != run.Notes[reports.NoteDeliveriesByPush] {
			t.Errorf("%s: servers: %d in, %d out; generator: %d sent, %d delivered by push", run.Mode, run.Notes["server_messages_in"],
				run.Notes["server_messages_out"], run.Counters.MessagesSent, run.Notes[reports.NoteDeliveriesByPush])
		}
		t.Logf("%s: delivery %+v, DMs %+v", run.Mode, d, *dm)
	}
}

// The address list comes from the Redis registry: any node's /lbs lists
// the live nodes. A refetch drops a node that is gone, and when the node
// whose /lbs the run reads is the one gone, the refetch reads another
// node's.
func TestRefetchDropsADeadNode(t *testing.T) {
	nodes, _ := redisNodes(t, 3)
	e := nodeEngine(t, reports.ModeShared, 1, 1, nodes[0].WSURL(), nodes[1].WSURL(), nodes[2].WSURL())
	e.lbs = nodes[0].URL() + "/lbs"
	if n := e.refetchAddrs(); n != 3 {
		t.Fatalf("%d addresses from the registry, want 3", n)
	}
	nodes[2].Close()
	waitListed(t, nodes[0], nodes[:2])
	if n := e.refetchAddrs(); n != 2 || slices.Contains(e.addrList(), nodes[2].WSURL()) {
		t.Fatalf("after node 2 stopped: %v", e.addrList())
	}
	// The node serving the list goes: the other's /lbs.
	nodes[0].Close()
	waitListed(t, nodes[1], nodes[1:2])
	if n := e.refetchAddrs(); n != 1 || e.addrAt(0) != nodes[1].WSURL() || e.lbsFetch.Load() != 3 {
		t.Fatalf("after node 0 (the list's) stopped: %v, %d fetches", e.addrList(), e.lbsFetch.Load())
	}
	if len(e.allNodes()) != 3 {
		t.Errorf("node table %v: a node dropped from the list stays in it", e.allNodes())
	}
}

// cutRelay stands in front of a node: it copies bytes both ways until it
// is told to drop one direction (what a node's death does to the sends in
// flight), then cut every connection and refuse new ones (the death).
type cutRelay struct {
	t    *testing.T
	ln   net.Listener
	dest string
	// drop: 1 drops what the node sends (replies and pushes: the node
	// published the sends in flight, their replies are lost), 2 what the
	// clients send (the sends in flight never reach it).
	drop    atomic.Int32
	mu      sync.Mutex
	conns   []net.Conn
	wg      sync.WaitGroup
	dropped atomic.Int64 // bytes dropped
}

func startCutRelay(t *testing.T, dest string) *cutRelay {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &cutRelay{t: t, ln: ln, dest: dest}
	r.wg.Add(1)
	go r.accept()
	t.Cleanup(r.cut)
	return r
}

func (r *cutRelay) accept() {
	defer r.wg.Done()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", r.dest)
		if err != nil {
			c.Close()
			continue
		}
		r.mu.Lock()
		r.conns = append(r.conns, c, up)
		r.mu.Unlock()
		r.wg.Add(2)
		go r.pipe(up, c, 2)
		go r.pipe(c, up, 1)
	}
}

// pipe copies from src to dst, dropping everything once r.drop is which.
func (r *cutRelay) pipe(dst, src net.Conn, which int32) {
	defer r.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if r.drop.Load() == which {
				r.dropped.Add(int64(n))
			} else if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				r.t.Logf("relay: %v", err)
			}
			dst.Close()
			return
		}
	}
}

// cut closes the listener and every connection, and waits for the copies.
func (r *cutRelay) cut() {
	r.ln.Close()
	r.mu.Lock()
	for _, c := range r.conns {
		c.Close()
	}
	r.conns = nil
	r.mu.Unlock()
	r.wg.Wait()
}

func (r *cutRelay) url() string { return "ws://" + r.ln.Addr().String() + "/ws" }

// relayKiller is a NodeKiller whose one node is behind a cutRelay: the kill
// drops one direction for a while (sends pile up in flight), then cuts.
type relayKiller struct {
	r      *cutRelay
	drop   int32
	window time.Duration
	killed atomic.Int32
}

func (k *relayKiller) KillNode(ws string) error {
	if ws != k.r.url() {
		return fmt.Errorf("the node behind the relay is %s, not %s", k.r.url(), ws)
	}
	k.r.drop.Store(k.drop)
	time.Sleep(k.window)
	k.r.cut()
	k.killed.Add(1)
	return nil
}

func (k *relayKiller) RestartNode(context.Context, string) error {
	return errors.New("the relay does not come back")
}

// A node dies with sends in flight, written to it and unanswered. The
// client re-sends them, with their cid, to the node it moves to (the
// ladder's switch), and the Redis engine answers each by (sender, cid):
// the copy the dead node had published (dup, with its offset), or, for
// one it never got to Redis, a new one. Either way every message is
// delivered once with the content its sender sent, nothing is lost, and
// the kill's link losses are a fault's, not errors.
func TestInFlightSendsAtNodeDeath(t *testing.T) {
	for _, c := range []struct {
		name string
		drop int32 // what the node's death loses
		dup  bool  // the re-sends answer dup
	}{
		{"published, replies lost", 1, true},
		{"never received", 2, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			nodes, db := redisNodes(t, 2)
			relay := startCutRelay(t, nodes[0].Addr())
			killer := &relayKiller{r: relay, drop: c.drop, window: 400 * time.Millisecond}
			const clients, tabs = 21, 2 // 11 browsers on the relay's node: the most, the one killed
			sc := Scenario{
				Targets: []string{relay.url(), nodes[1].WSURL()}, Clients: clients, Tabs: tabs, Rooms: 3, RoomsPerUser: 1,
				Rate: 5, DMRatio: 0.1, History: 5, Ramp: 500 * time.Millisecond, Duration: 3 * time.Second, Drain: 10 * time.Second, Seed: 11,
				Ladder: LadderConfig{RetrySame: 1, Base: 50 * time.Millisecond, Max: 200 * time.Millisecond},
			}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			res, err := Run(ctx, sc, WithModes(reports.ModeShared), WithKillNode(killer, 1500*time.Millisecond), WithLogf(t.Logf))
			if err != nil {
				t.Fatal(err)
			}
			run := &res.Runs[0]
			d := run.Delivery
			t.Logf("delivery %+v, notes %v, faults %+v, %d bytes dropped", d, run.Notes, run.Faults, relay.dropped.Load())
			if !res.Verdict.Pass || d.Delivered != d.Expected || d.Lost+d.Duplicated+d.Reordered+d.Mismatched != 0 {
				t.Fatalf("verdict %+v, delivery %+v, errors %v", res.Verdict, d, run.Counters.Errors)
			}
			if n := run.Counters.TotalErrors(); n != 0 {
				t.Errorf("errors %v", run.Counters.Errors)
			}
			if killer.killed.Load() != 1 || len(run.Faults) != 1 {
				t.Fatalf("%d kills, faults %+v", killer.killed.Load(), run.Faults)
			}
			f := run.Faults[0]
			if f.Kind != reports.FaultKillNode || f.Node != relay.url() || f.NodeConnections != 11 || f.LinkLosses != 11 || f.Error != "" {
				t.Errorf("fault %+v, want the relay's node killed with its 11 links", f)
			}
			if f.GoneFromListMs != 0 {
				t.Errorf("gone from list after %d ms with a fixed list (not measured: 0)", f.GoneFromListMs)
			}
			resent, dup := run.Notes[reports.NoteSendsResent], run.Notes[reports.NoteSendsResentDup]
			if resent == 0 || relay.dropped.Load() == 0 {
				t.Fatalf("%d sends re-sent, %d bytes dropped: nothing was in flight at the kill", resent, relay.dropped.Load())
			}
			// Nearly all, or nearly none: a send written as the relay
			// switched, or the reply of one written before, may fall on
			// the other side.
			if c.dup && dup*10 < resent*8 || !c.dup && dup*10 > resent*2 {
				t.Errorf("%d re-sent, %d of them answered dup; want nearly all dup: %v", resent, dup, c.dup)
			}
			if n := run.Nodes[1]; n.SwitchedIn != 11 || n.Reconnects != 11 {
				t.Errorf("node %s: %d reconnects, %d switched in, want 11", n.Target, n.Reconnects, n.SwitchedIn)
			}
			// Each message published once: the rooms in Redis hold as many
			// as were sent (offsets say nothing of a message published
			// twice under two of them).
			if n := publishedIn(t, db); n != run.Counters.MessagesSent {
				t.Errorf("the rooms hold %d messages, %d were sent", n, run.Counters.MessagesSent)
			}
		})
	}
}
