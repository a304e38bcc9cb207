package loadgen

// The nodes of the target: where a run connects (the --target addresses,
// or the /lbs list), how browsers are spread over them, and what each node
// carried (reports.Node).
//
// Every address the engine connects to is a node, numbered in the order
// met: the initial list first, in its order, then the addresses a refetched
// list adds. Browser i's sockets start on node i mod N (N the initial
// list's length; startNode), so all the tabs of a browser in per-tab mode
// are on one node, as a real browser's first connection puts them. A
// socket belongs to the node of its current link from the moment the link
// comes up (linkUp): a socket that the reconnect ladder moves to another
// node counts its connection, its sessions, the messages it first writes
// and the deliveries it receives there from then on. Each message carries
// its sender's node in its header (header.go); a delivery whose sender's
// node is not the receiving socket's is a cross-node delivery.

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"imload/loadgen/wire"
	"imload/reports"
)

// node is one address the engine connects to, and what happened on it.
// Its counters are updated with atomics from every goroutine.
type node struct {
	idx  uint16 // in the engine's node table, as message headers carry it
	addr string

	conns, connsPeak       atomic.Int64
	sessions, sessionsPeak atomic.Int64
	sent, dmsSent          atomic.Int64 // first written to a socket on this node
	delivered, cross       atomic.Int64 // room deliveries (first copies) to its sockets, and of them cross-node
	reconnects, switchedIn atomic.Int64 // links re-established onto it, and of them from another node
}

// maxNodes bounds the node table: a header carries the node in 16 bits.
const maxNodes = 1 << 16

// startNode is the node browser i's sockets start on, of n: i mod n.
func startNode(i, n int) int { return i % max(n, 1) }

// nodeOf returns the node of addr, added to the table if it is new (a
// table already full gives its last node).
func (e *engine) nodeOf(addr string) *node {
	e.addrMu.Lock()
	defer e.addrMu.Unlock()
	return e.nodeOfLocked(addr)
}

func (e *engine) nodeOfLocked(addr string) *node {
	if n, ok := e.nodeAt[addr]; ok {
		return n
	}
	if len(e.nodes) == maxNodes {
		return e.nodes[len(e.nodes)-1]
	}
	if e.nodeAt == nil {
		e.nodeAt = map[string]*node{}
	}
	n := &node{idx: uint16(len(e.nodes)), addr: addr}
	e.nodes = append(e.nodes, n)
	e.nodeAt[addr] = n
	return n
}

// allNodes returns the node table.
func (e *engine) allNodes() []*node {
	e.addrMu.Lock()
	defer e.addrMu.Unlock()
	return append([]*node(nil), e.nodes...)
}

// linkUp accounts s, whose link to n just came up, to n (b.mu held): its
// connection from now on, and a reconnect onto n when the link replaces
// one that was lost (not a first connection, nor a tab reopened in per-tab
// mode), switched in when the lost one was on another node.
func (s *sock) linkUp(n *node) {
	prev := s.node
	s.node = n
	addPeak(&n.conns, &n.connsPeak, 1)
	if s.downAt > 0 {
		n.reconnects.Add(1)
		if prev != nil && prev != n {
			n.switchedIn.Add(1)
		}
	}
}

// addSessions counts d sessions attached (or detached, d < 0) on a socket
// on n; n is nil for a socket that never came up.
func (n *node) addSessions(d int64) {
	if n != nil {
		addPeak(&n.sessions, &n.sessionsPeak, d)
	}
}

// nodeResults returns what each node carried, in the table's order.
func (e *engine) nodeResults() []reports.Node {
	ns := e.allNodes()
	out := make([]reports.Node, len(ns))
	for i, n := range ns {
		out[i] = reports.Node{
			Target:                  n.addr,
			PhysicalConnectionsPeak: n.connsPeak.Load(),
			SessionsPeak:            n.sessionsPeak.Load(),
			MessagesSent:            n.sent.Load(),
			DMsSent:                 n.dmsSent.Load(),
			Delivered:               n.delivered.Load(),
			CrossNode:               n.cross.Load(),
			Reconnects:              n.reconnects.Load(),
			SwitchedIn:              n.switchedIn.Load(),
		}
	}
	return out
}

// targetList is where a run connects.
type targetList struct {
	// addrs are the nodes' WebSocket addresses, best first, each once.
	addrs []string
	// lbs is the address list's URL, which the ladder's refetch step
	// reads again ("": the list is the targets, fixed).
	lbs string
	// base is http://host:port of the server whose /stats is the run's
	// server_stats_peak: the first target, or the first node of an /lbs
	// URL's list.
	base string
	// fromLBS: addrs came from the /lbs of a single ws:// target, not
	// from the targets themselves.
	fromLBS bool
}

// isListURL says whether target is an address list URL (http:// or
// https://, e.g. http://host:port/lbs) rather than a node's ws:// address.
func isListURL(target string) bool {
	u, err := url.Parse(target)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https")
}

// checkTargets checks the form of the targets: one or more ws:// (wss://)
// addresses, or a single http:// (https://) address list URL.
func checkTargets(targets []string) []error {
	var errs []error
	lists := 0
	for _, t := range targets {
		u, err := url.Parse(t)
		switch {
		case err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "":
			lists++
		case err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "":
			errs = append(errs, fmt.Errorf("target %q is neither a ws:// address nor an http:// address list URL (…/lbs)", t))
		}
	}
	if lists > 0 && len(targets) > 1 {
		errs = append(errs, errors.New("an address list URL (http://…/lbs) is the only target: give either it or the nodes' ws:// addresses"))
	}
	return errs
}

// resolveTargets works out where a run connects, from its (checked)
// targets:
//
//   - an address list URL (http://host:port/lbs): the nodes are the ws://
//     addresses its JSON lists ({"addrs": [...]}, best first), and the
//     refetch step reads it again; it must answer now;
//   - one ws:// address: its /lbs, when the protocol has one and it
//     answers with at least one address, gives the list (a node that
//     advertises the others); otherwise the address alone;
//   - several ws:// addresses: the nodes, as given; the refetch step starts
//     over the same list.
//
// Addresses listed twice count once.
func resolveTargets(ctx context.Context, targets []string, tr wire.Traits, logf func(string, ...any)) (targetList, error) {
	if len(targets) == 1 && isListURL(targets[0]) {
		lbs := targets[0]
		if !tr.AddrList {
			return targetList{}, fmt.Errorf("target %s is an address list URL, but %s has no address list: give the nodes' addresses", lbs, tr.Name)
		}
		lctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		addrs, err := fetchLBS(lctx, lbs)
		cancel()
		if err != nil {
			return targetList{}, fmt.Errorf("target %s: no address list: %w", lbs, err)
		}
		var bad []string
		for _, a := range addrs {
			if u, err := url.Parse(a); err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
				bad = append(bad, fmt.Sprintf("%q", a))
			}
		}
		if len(bad) > 0 {
			return targetList{}, fmt.Errorf("target %s lists addresses that are not ws:// URLs: %s", lbs, strings.Join(bad, ", "))
		}
		if len(addrs) == 0 {
			return targetList{}, fmt.Errorf("target %s lists no address", lbs)
		}
		addrs = uniqueAddrs(addrs)
		base, err := httpBase(addrs[0])
		if err != nil {
			return targetList{}, err
		}
		logf("address list from %s: %v", lbs, addrs)
		return targetList{addrs: addrs, lbs: lbs, base: base}, nil
	}
	base, err := httpBase(targets[0])
	if err != nil {
		return targetList{}, err
	}
	tl := targetList{addrs: uniqueAddrs(targets), base: base}
	if len(tl.addrs) == 1 && tr.AddrList {
		tl.lbs = base + "/lbs"
		lctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		if l, err := fetchLBS(lctx, tl.lbs); err == nil && len(l) > 0 {
			tl.addrs, tl.fromLBS = uniqueAddrs(l), true
			logf("address list from %s: %v", tl.lbs, tl.addrs)
		}
		cancel()
	}
	return tl, nil
}

// uniqueAddrs returns addrs without repeats, in order.
func uniqueAddrs(addrs []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, a := range addrs {
		if !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	return out
}

// The node a message went through. A message's header names the node its
// sender's socket was on when it was first written, and a re-send keeps
// its text, so a message re-sent after its link was lost names the node it
// was first written to even when another node published it. The engine
// therefore notes, for each message re-sent through another node, the node
// of its latest copy (or, when that copy was answered dup, of the copy
// before it, which the server had published), keyed by (tab, sequence), and
// receivers count a delivery cross-node by that (viaOf). Entries are few:
// the sends in flight when links were lost to a node's death or a switch.
// The table is sharded by tab, and not read at all while it is empty.

// viaShards is the number of the table's shards (a power of two).
const viaShards = 64

// viaShard is one shard of the table: (tab gid << 32 | seq) → node.
type viaShard struct {
	mu sync.Mutex
	m  map[uint64]uint16
}

// setVia notes that message seq of tab gid, whose header names node hdr,
// went through node via (via == hdr: as its header says, the entry goes).
func (e *engine) setVia(gid, seq uint32, via, hdr uint16) {
	sh := &e.via[gid&(viaShards-1)]
	k := uint64(gid)<<32 | uint64(seq)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	_, had := sh.m[k]
	switch {
	case via == hdr && had:
		delete(sh.m, k)
		e.viaN.Add(-1)
	case via != hdr:
		if sh.m == nil {
			sh.m = map[uint64]uint16{}
		}
		sh.m[k] = via
		if !had {
			e.viaN.Add(1)
		}
	}
}

// viaOf returns the node the message with header h went through.
func (e *engine) viaOf(h header) uint16 {
	if e.viaN.Load() == 0 {
		return h.node
	}
	sh := &e.via[h.gid&(viaShards-1)]
	sh.mu.Lock()
	v, ok := sh.m[uint64(h.gid)<<32|uint64(h.seq)]
	sh.mu.Unlock()
	if ok {
		return v
	}
	return h.node
}
