package loadgen

import (
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"imload/loadgen/wire"
	"imload/reports"
	"imload/server/servertest"
)

// nodeEngine is an engine of mode over the nodes at addrs, without a
// server: links are brought up and down by hand (the code run and down
// call), and messages given to the engine's reader as if read from the
// sockets.
func nodeEngine(t *testing.T, mode string, clients, tabs int, addrs ...string) *engine {
	t.Helper()
	sc := Scenario{Targets: addrs, Clients: clients, Tabs: tabs, Rooms: 1, RoomsPerUser: 1, DMRatio: 0.5,
		Ladder: LadderConfig{RetrySame: 1, Refetches: 1}}.withDefaults()
	w, err := wire.New(sc.Protocol, wire.Config{DMs: true})
	if err != nil {
		t.Fatal(err)
	}
	e := newEngine(sc, mode, &options{logf: t.Logf, pacer: func(r float64) Pacer { return PoissonPacer{PerSecond: r} }},
		w, targetList{addrs: addrs, base: "http://127.0.0.1:1"})
	e.t0 = time.Now()
	e.dialCtx = t.Context()
	return e
}

// up brings s's link up on the address the ladder chose, as sock.run does
// once the greeting is in, and attaches its tabs to room 0 (epoch "ep").
func up(s *sock) {
	e, b := s.b.e, s.b
	b.mu.Lock()
	defer b.mu.Unlock()
	s.setLink(wire.Link{Heartbeat: 25 * time.Second})
	s.up = true
	addPeak(&e.cnt.conns, &e.cnt.connsPeak, 1)
	s.linkUp(e.nodeOf(e.addrAt(s.addr)))
	for _, t := range s.tabs {
		if t.sid == 0 {
			t.renew(b, uint32(t.idx)+1)
			t.tracks[0].joined, t.tracks[0].epoch = true, "ep"
		}
		t.attached()
	}
}

// push is a message of room pushes for sids: offset off from tab gid
// (its message off), sent through node.
func push(e *engine, sids string, gid uint32, node uint16, off int) []byte {
	return pushSeq(e, sids, gid, uint32(off), node, off)
}

// pushSeq is push of tab gid's message seq.
func pushSeq(e *engine, sids string, gid, seq uint32, node uint16, off int) []byte {
	text := string(appendText(nil, e.tag, gid, seq, 0, node, e.sc.MsgSize))
	return []byte(`{"t":"push","sids":[` + sids + `],"ev":"msg","body":{"room":"` + e.rooms[0] + `","offset":` + strconv.Itoa(off) +
		`,"epoch":"ep","from":"u","text":"` + text + `","ts":1,"cid":"c` + strconv.Itoa(off) + `"}}`)
}

// The spread: browser i's sockets start on node i mod N, all of them in
// per-tab mode (a browser's tabs on one node).
func TestBrowsersSpreadOverNodes(t *testing.T) {
	for _, mode := range []string{reports.ModeShared, reports.ModePerTab} {
		e := nodeEngine(t, mode, 7, 3, "ws://127.0.0.1:1/ws", "ws://127.0.0.1:2/ws", "ws://127.0.0.1:3/ws")
		if ns := e.allNodes(); len(ns) != 3 || ns[0].addr != "ws://127.0.0.1:1/ws" || ns[2].idx != 2 {
			t.Fatalf("%s: node table %v", mode, ns)
		}
		for i, b := range e.browsers {
			for _, s := range b.socks {
				if s.addr != i%3 || s.ladder.Addr() != i%3 {
					t.Errorf("%s: browser %d socket %d starts on address %d (ladder %d), want %d", mode, i, s.idx, s.addr, s.ladder.Addr(), i%3)
				}
			}
		}
	}
}

// Cross-node accounting: a delivery is cross-node when the sender's node
// (in the message's header: where its socket was when the message was
// first written) is not the receiving socket's. A socket that the ladder
// moves to another node is counted there from then on: its connection,
// sessions, reconnect, the messages it writes and the deliveries it
// receives; a message written before the move and re-sent after it keeps
// its first node in its header (and counts as sent there), but counts as
// sent through the node of the re-send, unless the re-send's reply says
// dup (the first copy had been published, through the first node).
func TestCrossNodeAccountingFollowsTheLadder(t *testing.T) {
	a, bAddr := "ws://127.0.0.1:1/ws", "ws://127.0.0.1:2/ws"
	e := nodeEngine(t, reports.ModeShared, 2, 2, a, bAddr)
	n0, n1 := e.nodeOf(a), e.nodeOf(bAddr)
	recv, send := e.browsers[0].socks[0], e.browsers[1].socks[0] // on node 0 and node 1
	up(recv)
	up(send)
	r := &reader{}
	queued := func(s *sock) string {
		s.omu.Lock()
		defer s.omu.Unlock()
		q := strings.Join(func() []string {
			var out []string
			for _, b := range s.spill {
				out = append(out, string(b))
			}
			return out
		}(), "\n")
		if s.batch != nil {
			q += string(s.batch.Bytes())
		}
		s.batch, s.spill = nil, nil
		return q
	}
	hdr := func(gid uint32, seq uint32, node uint16) string {
		return string(appendText(nil, e.tag, gid, seq, 0, node, 0))
	}

	// The sender, on node 1, writes a message: counted on node 1, its
	// header names node 1.
	st := send.tabs[0]
	send.b.mu.Lock()
	send.sendMsg(pending{kind: wire.Send, t: st, track: 0, mseq: 1})
	send.b.mu.Unlock()
	if got := queued(send); !strings.Contains(got, hdr(st.gid, 1, 1)) {
		t.Fatalf("the send's header does not name node 1: %s", got)
	}
	if n1.sent.Load() != 1 || n0.sent.Load() != 0 {
		t.Fatalf("sent: node 0 %d, node 1 %d", n0.sent.Load(), n1.sent.Load())
	}
	// The receiver, on node 0, gets it (cross-node) and one sent through
	// node 0, each for both its tabs.
	r.read(recv, push(e, "1,2", st.gid, 1, 1))
	r.read(recv, push(e, "1,2", recv.tabs[1].gid, 0, 2))
	if n0.delivered.Load() != 4 || n0.cross.Load() != 2 || n1.delivered.Load() != 0 {
		t.Fatalf("node 0: %d delivered, %d cross-node; node 1: %d delivered", n0.delivered.Load(), n0.cross.Load(), n1.delivered.Load())
	}
	if n0.connsPeak.Load() != 1 || n1.connsPeak.Load() != 1 || n0.sessionsPeak.Load() != 2 || n1.sessionsPeak.Load() != 2 {
		t.Fatalf("peaks: node 0 %d conns %d sessions, node 1 %d conns %d sessions",
			n0.connsPeak.Load(), n0.sessionsPeak.Load(), n1.connsPeak.Load(), n1.sessionsPeak.Load())
	}

	// The sender's link is lost before the reply: the ladder (one try per
	// address) switches to the next address, node 0.
	send.b.mu.Lock()
	send.down(true)
	send.b.mu.Unlock()
	if send.addr != 0 || e.cnt.steps[1].Load() != 1 {
		t.Fatalf("after the loss: address %d, steps %v", send.addr, e.cnt.reconnectsMap())
	}
	if n1.conns.Load() != 0 || n1.sessions.Load() != 0 {
		t.Fatalf("node 1 still has %d connections, %d sessions", n1.conns.Load(), n1.sessions.Load())
	}
	up(send)
	if send.node != n0 || n0.conns.Load() != 2 || n0.sessions.Load() != 4 || n0.reconnects.Load() != 1 || n0.switchedIn.Load() != 1 || n1.reconnects.Load() != 0 {
		t.Fatalf("after the switch: on node %d; node 0: %d conns, %d sessions, %d reconnects, %d switched in",
			send.node.idx, n0.conns.Load(), n0.sessions.Load(), n0.reconnects.Load(), n0.switchedIn.Load())
	}
	// Resumed: the message in flight is re-sent as it was (its header
	// still names node 1, where it was first written, and it counts there
	// once); a new one is written on node 0.
	send.b.mu.Lock()
	send.resumed()
	send.sendMsg(pending{kind: wire.Send, t: st, track: 0, mseq: 2})
	send.b.mu.Unlock()
	got := queued(send)
	if !strings.Contains(got, hdr(st.gid, 1, 1)) || !strings.Contains(got, hdr(st.gid, 2, 0)) {
		t.Fatalf("re-sent and new sends: %s", got)
	}
	if n1.sent.Load() != 1 || n0.sent.Load() != 1 {
		t.Fatalf("sent: node 0 %d, node 1 %d", n0.sent.Load(), n1.sent.Load())
	}
	// The re-send went through node 0: noted, so that its copies count as
	// sent through node 0, although its header names node 1.
	hdr1 := header{gid: st.gid, seq: 1, node: 1}
	if v := e.viaOf(hdr1); v != 0 || e.resent.Load() != 1 {
		t.Fatalf("the re-sent message went through node %d (%d re-sent), want node 0", v, e.resent.Load())
	}
	// Deliveries to the moved socket count on node 0: from the receiver's
	// tab (node 0) not cross-node, and the re-sent message (node 1 in its
	// header, published by node 0 at offset 4) not cross-node either.
	r.read(send, push(e, "1,2", recv.tabs[0].gid, 0, 3))
	r.read(send, pushSeq(e, "2", st.gid, 1, 1, 4))
	if n0.delivered.Load() != 7 || n0.cross.Load() != 2 || n1.delivered.Load() != 0 {
		t.Fatalf("node 0: %d delivered, %d cross-node; node 1: %d delivered", n0.delivered.Load(), n0.cross.Load(), n1.delivered.Load())
	}
	// Had its reply said dup, the first copy (through node 1) was the one
	// published: the note goes, and its copies count by its header again.
	var seq uint64
	send.b.mu.Lock()
	for _, p := range send.pend {
		if p.kind == wire.Send && p.mseq == 1 {
			seq = p.seq
		}
	}
	send.b.mu.Unlock()
	r.read(send, []byte(`{"t":"reply","sid":1,"seq":`+strconv.FormatUint(seq, 10)+`,"code":200,"body":{"room":"`+e.rooms[0]+
		`","epoch":"ep","offset":1,"ts":1,"dup":true}}`))
	if v := e.viaOf(hdr1); v != 1 || e.resentDup.Load() != 1 || e.viaN.Load() != 0 {
		t.Fatalf("after a dup reply: through node %d, %d dup, %d noted; want node 1, 1, 0", v, e.resentDup.Load(), e.viaN.Load())
	}

	// A DM from the sender's other tab, written through node 0 now, to the
	// receiver (node 0): not cross-node; one named as sent through node 1:
	// cross-node.
	for seq, node := range []uint16{0, 1} {
		k := dmKey{sender: send.tabs[1].gid, seq: uint32(10 + seq)}
		var tabs []dmTab
		recv.b.mu.Lock()
		tabs = appendDMTabs(tabs, recv.b, nil)
		recv.b.mu.Unlock()
		e.dms.sent(k, send.b, recv.b, tabs, e.now())
		text := string(appendText(nil, e.tag, k.sender, k.seq, 0, node, e.sc.MsgSize))
		r.read(recv, []byte(`{"t":"push","sids":[1,2],"ev":"dm","body":{"id":1,"from":"`+send.b.name+`","to":"`+recv.b.name+`","text":"`+text+`"}}`))
	}
	if got := e.dmCross.Load(); got != 2 {
		t.Errorf("%d DM copies cross-node, want 2 (both tabs of the receiver, for the DM sent through node 1)", got)
	}

	res := e.nodeResults()
	want := []reports.Node{
		{Target: a, PhysicalConnectionsPeak: 2, SessionsPeak: 4, MessagesSent: 1, Delivered: 7, CrossNode: 2, Reconnects: 1, SwitchedIn: 1},
		{Target: bAddr, PhysicalConnectionsPeak: 1, SessionsPeak: 2, MessagesSent: 1},
	}
	if len(res) != 2 || res[0].Target != want[0].Target || res[1].Target != want[1].Target {
		t.Fatalf("nodes %+v", res)
	}
	for i := range want {
		g, w := res[i], want[i]
		if g.PhysicalConnectionsPeak != w.PhysicalConnectionsPeak || g.SessionsPeak != w.SessionsPeak || g.MessagesSent != w.MessagesSent ||
			g.Delivered != w.Delivered || g.CrossNode != w.CrossNode || g.Reconnects != w.Reconnects || g.SwitchedIn != w.SwitchedIn {
			t.Errorf("node %d: %+v, want %+v", i, g, w)
		}
	}
}

// A refetch installs the list it fetched: the ladder climbs its length
// (new addresses join the node table, last); with a fixed list (several
// targets) it starts over the same one.
func TestRefetchInstallsTheList(t *testing.T) {
	srvA := servertest.Start(t, testServerConfig(""))
	srvB := servertest.Start(t, testServerConfig(""))
	cfg := testServerConfig("")
	cfg.LBS = []string{srvB.WSURL(), srvA.WSURL(), "ws://127.0.0.1:1/ws"}
	lister := servertest.Start(t, cfg)

	e := nodeEngine(t, reports.ModeShared, 1, 1, srvA.WSURL())
	if n := e.refetchAddrs(); n != 1 || e.lbsFetch.Load() != 0 {
		t.Fatalf("fixed list: %d addresses, %d fetches", n, e.lbsFetch.Load())
	}
	e.lbs = "http://" + lister.Addr() + "/lbs"
	if n := e.refetchAddrs(); n != 3 || e.lbsFetch.Load() != 1 {
		t.Fatalf("fetched list: %d addresses, %d fetches", n, e.lbsFetch.Load())
	}
	var got []string
	for _, n := range e.allNodes() {
		got = append(got, n.addr)
	}
	if want := []string{srvA.WSURL(), srvB.WSURL(), "ws://127.0.0.1:1/ws"}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("node table %v, want %v (the first list's, then what the refetch added)", got, want)
	}
	if e.addrAt(0) != srvB.WSURL() {
		t.Errorf("address 0 is %s after the refetch, want the list's first, %s", e.addrAt(0), srvB.WSURL())
	}
}

// nodeScenario puts every room's members on one node of two: browser i is
// in room i mod 2 (round robin, one room each) and starts on node i mod 2.
// The servers are independent (no shared rooms), so every delivery must be
// complete with no room spanning nodes; no DMs (a user on the other node is
// offline for this one).
func nodeScenario(targets []string, clients, tabs int) Scenario {
	return Scenario{
		Targets: targets, Clients: clients, Tabs: tabs, Rooms: 2, RoomsPerUser: 1,
		Rate: 2, History: 5, Ramp: 500 * time.Millisecond, Duration: 2 * time.Second, Drain: 10 * time.Second, Seed: 42,
	}
}

// Browsers spread over two independent servers, given as two ws://
// addresses or as an /lbs URL listing them (a third server's): each node
// holds its half of the connections and sessions, as its own /stats says,
// sends and deliveries are accounted to the node they went through, the
// server counters sum over the nodes, and nothing crosses nodes.
func TestRunSpreadOverNodes(t *testing.T) {
	srvs := []*servertest.Server{servertest.Start(t, testServerConfig("")), servertest.Start(t, testServerConfig(""))}
	urls := []string{srvs[0].WSURL(), srvs[1].WSURL()}
	cfg := testServerConfig("")
	cfg.LBS = urls
	lister := servertest.Start(t, cfg)
	const clients, tabs = 40, 2
	for _, form := range []struct {
		name    string
		targets []string
	}{
		{"addresses", urls},
		{"lbs", []string{"http://" + lister.Addr() + "/lbs"}},
	} {
		t.Run(form.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			// The last run's connections closed: the servers' peaks are
			// this run's.
			for _, srv := range srvs {
				waitIdle(ctx, t, srv)
			}
			res, err := Run(ctx, nodeScenario(form.targets, clients, tabs), WithSettle(500*time.Millisecond), WithLogf(t.Logf))
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Runs) != 2 || !res.Verdict.Pass {
				t.Fatalf("%d runs, verdict %+v", len(res.Runs), res.Verdict)
			}
			for i := range res.Runs {
				checkNodesRun(t, &res.Runs[i], urls, clients, tabs)
			}
		})
	}
}

func checkNodesRun(t *testing.T, run *reports.Run, urls []string, clients, tabs int) {
	t.Helper()
	d := run.Delivery
	if d.Expected == 0 || d.Delivered != d.Expected || d.Lost != 0 || d.Duplicated != 0 || d.Reordered != 0 || d.Mismatched != 0 {
		t.Errorf("%s: delivery %+v", run.Mode, d)
	}
	if d.CrossNode != 0 {
		t.Errorf("%s: %d cross-node deliveries, want 0 (every room on one node)", run.Mode, d.CrossNode)
	}
	if n := run.Counters.TotalErrors(); n != 0 {
		t.Errorf("%s: errors %v", run.Mode, run.Counters.Errors)
	}
	if len(run.Nodes) != len(urls) {
		t.Fatalf("%s: nodes %+v, want %v", run.Mode, run.Nodes, urls)
	}
	wantConns := int64(clients / 2)
	if run.Mode == reports.ModePerTab {
		wantConns = int64(clients * tabs / 2)
	}
	var delivered, sent int64
	for k, n := range run.Nodes {
		if n.Target != urls[k] {
			t.Errorf("%s: node %d is %s, want %s", run.Mode, k, n.Target, urls[k])
		}
		if n.PhysicalConnectionsPeak != wantConns || n.SessionsPeak != int64(clients*tabs/2) {
			t.Errorf("%s: node %s: %d connections, %d sessions at peak, want %d and %d", run.Mode, n.Target,
				n.PhysicalConnectionsPeak, n.SessionsPeak, wantConns, clients*tabs/2)
		}
		if got := int64(statNum(n.ServerStatsPeak, "physical_connections")); got != wantConns {
			t.Errorf("%s: node %s says %d connections at its peak, want %d", run.Mode, n.Target, got, wantConns)
		}
		if got := int64(statNum(n.ServerStatsPeak, "logical_sessions")); got != int64(clients*tabs/2) {
			t.Errorf("%s: node %s says %d sessions at its peak, want %d", run.Mode, n.Target, got, clients*tabs/2)
		}
		if n.Delivered == 0 || n.MessagesSent == 0 || n.CrossNode != 0 || n.Reconnects != 0 || n.SwitchedIn != 0 {
			t.Errorf("%s: node %+v", run.Mode, n)
		}
		delivered += n.Delivered
		sent += n.MessagesSent
	}
	if delivered != d.Delivered || sent != run.Counters.MessagesSent {
		t.Errorf("%s: the nodes delivered %d and sent %d, the run %d and %d", run.Mode, delivered, sent, d.Delivered, run.Counters.MessagesSent)
	}
	// The servers' counters, summed over the nodes, agree with the
	// generator's.
	if run.Notes["server_messages_out"] != run.Notes[reports.NoteDeliveriesByPush] || run.Notes["server_messages_in"] != run.Counters.MessagesSent {
		t.Errorf("%s: servers: %d in, %d out; generator: %d sent, %d delivered by push", run.Mode, run.Notes["server_messages_in"],
			run.Notes["server_messages_out"], run.Counters.MessagesSent, run.Notes[reports.NoteDeliveriesByPush])
	}
	t.Logf("%s: delivery %+v, nodes %+v", run.Mode, d, run.Nodes)
}

// The target forms and their errors: several ws:// addresses (every node
// must answer), an /lbs URL (it must answer, with ws:// addresses), never
// both, and not for a protocol without an address list.
func TestTargetForms(t *testing.T) {
	srv := servertest.Start(t, testServerConfig(""))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	bad := testServerConfig("")
	bad.LBS = []string{"http://" + srv.Addr() + "/ws"}
	badLister := servertest.Start(t, bad)
	empty := testServerConfig("")
	empty.LBS = []string{srv.WSURL(), srv.WSURL()}
	dupLister := servertest.Start(t, empty)

	for _, c := range []struct {
		name    string
		targets []string
		proto   string
		want    string
	}{
		{"a node down", []string{srv.WSURL(), "ws://" + closed + "/ws"}, "", "cannot reach node ws://" + closed + "/ws (2 of 2)"},
		{"list unreachable", []string{"http://" + closed + "/lbs"}, "", "target http://" + closed + "/lbs: no address list"},
		{"list of non-ws addresses", []string{"http://" + badLister.Addr() + "/lbs"}, "", "lists addresses that are not ws:// URLs"},
		{"list and addresses", []string{"http://" + badLister.Addr() + "/lbs", srv.WSURL()}, "", "is the only target"},
		{"not a URL", []string{"tcp://" + srv.Addr()}, "", "neither a ws:// address nor an http:// address list URL"},
		{"list for socket.io", []string{"http://" + badLister.Addr() + "/lbs"}, ProtocolSocketIO, "has no address list"},
	} {
		sc := smallScenario("", 4, 1)
		sc.Targets, sc.Protocol = c.targets, c.proto
		res, err := Run(context.Background(), sc, WithModes(reports.ModePerTab))
		if err == nil || res != nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v (result %v), want %q", c.name, err, res, c.want)
		}
	}

	// An address listed twice is one node.
	tl, err := resolveTargets(context.Background(), []string{"http://" + dupLister.Addr() + "/lbs"}, imloadTraits(t), t.Logf)
	if err != nil || len(tl.addrs) != 1 || tl.addrs[0] != srv.WSURL() || tl.lbs != "http://"+dupLister.Addr()+"/lbs" || tl.base != "http://"+srv.Addr() {
		t.Errorf("list with a repeat: %+v, %v", tl, err)
	}
	tl, err = resolveTargets(context.Background(), []string{srv.WSURL(), srv.WSURL()}, imloadTraits(t), t.Logf)
	if err != nil || len(tl.addrs) != 1 || tl.addrs[0] != srv.WSURL() {
		t.Errorf("a target given twice: %+v, %v", tl, err)
	}
	// Two addresses: the list, fixed (no /lbs read, none to refetch).
	tl, err = resolveTargets(context.Background(), []string{srv.WSURL(), "ws://" + dupLister.Addr() + "/ws"}, imloadTraits(t), t.Logf)
	if err != nil || len(tl.addrs) != 2 || tl.addrs[1] != "ws://"+dupLister.Addr()+"/ws" || tl.lbs != "" || tl.fromLBS || tl.base != "http://"+srv.Addr() {
		t.Errorf("two addresses: %+v, %v", tl, err)
	}
	// One address: its /lbs gives the list, read again by the refetch.
	tl, err = resolveTargets(context.Background(), []string{"ws://" + dupLister.Addr() + "/ws"}, imloadTraits(t), t.Logf)
	if err != nil || len(tl.addrs) != 1 || tl.addrs[0] != srv.WSURL() || !tl.fromLBS || tl.lbs != "http://"+dupLister.Addr()+"/lbs" {
		t.Errorf("one address whose /lbs lists another: %+v, %v", tl, err)
	}
}

func imloadTraits(t *testing.T) wire.Traits {
	w, err := wire.New(ProtocolImload, wire.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return w.Traits()
}

// waitIdle waits until srv has no connection left.
func waitIdle(ctx context.Context, t *testing.T, srv *servertest.Server) {
	t.Helper()
	for {
		m, err := fetchStats(ctx, "http://"+srv.Addr())
		if err == nil && statNum(m, "physical_connections") == 0 {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s still has connections: %v %v", srv.Addr(), m, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// With several nodes, every node's /stats is polled: the server counters'
// deltas are summed over the nodes, and left out when a node does not
// answer the last sample (it would count only up to its last answer).
func TestStatsOverNodes(t *testing.T) {
	a := servertest.Start(t, testServerConfig(""))
	b := servertest.Start(t, testServerConfig(""))
	ctx := t.Context()
	one := newStatsPolls("http://"+a.Addr(), []string{a.WSURL()}, nil)
	if len(one.bases) != 1 || one.nodePeak(0) != nil {
		t.Fatalf("one node: bases %v", one.bases)
	}
	polls := newStatsPolls("http://"+a.Addr(), []string{a.WSURL(), b.WSURL(), a.WSURL() + "?again"}, nil)
	if len(polls.bases) != 2 || polls.nodes[0] != polls.run() || polls.nodes[2] != polls.run() {
		t.Fatalf("pollers: bases %v", polls.bases)
	}
	polls.sample(ctx)
	polls.sample(ctx)
	if d, ok := polls.deltas([]string{"messages_in"}); !ok || d["messages_in"] != 0 {
		t.Fatalf("deltas %v %v", d, ok)
	}
	if polls.nodePeak(1) == nil || polls.nodePeak(3) != nil {
		t.Fatalf("node peaks %v %v", polls.nodePeak(1), polls.nodePeak(3))
	}
	b.Close()
	polls.sample(ctx)
	if d, ok := polls.deltas([]string{"messages_in"}); ok {
		t.Fatalf("deltas %v with a node that did not answer the last sample", d)
	}
	if d, ok := one.deltas([]string{"messages_in"}); ok {
		t.Fatalf("deltas %v of a server never sampled", d)
	}
}
