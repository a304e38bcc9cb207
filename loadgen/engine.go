package loadgen

// The engine: one mode of a scenario, from its set-up (newEngine) to what
// the engine as a whole knows of the rooms (tops, epochs), the addresses
// it dials and the verification shared by its browsers.

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"imload/loadgen/wire"
	"imload/reports"
)

// engine runs one mode of a scenario.
type engine struct {
	sc    Scenario
	mode  string
	o     *options
	t0    time.Time
	tag   string
	pacer Pacer

	rooms   []string
	roomIdx map[string]int32
	tops    []atomic.Uint64
	epochMu sync.Mutex
	epochs  []string

	browsers []*browser
	shards   []*shard

	cnt     counters
	ver     verifier
	dms     *dmTracker
	content *contentTable // nil: content not checked (wire.Traits.Content false)
	faults  faultState

	wire   wire.Wire   // the protocol
	traits wire.Traits // its traits, decided by once
	// late works out where tracks start where join replies do not say
	// (wire.Traits.JoinPoint false); nil otherwise.
	late *lateStarts

	// unconfirmed counts the sends whose reply never came on a protocol
	// that does not re-send them (see sendUnconfirmed).
	unconfirmed atomic.Int64

	dmOffline, dmNotSent              atomic.Int64
	epochResets, resumeResets, gaveUp atomic.Int64
	joinResets                        atomic.Int64 // join replies with reset: true
	dialFailures, refusedShutdown     atomic.Int64
	// tokens (token.go): minted, token_expiring pushes, refreshes answered
	// 200
	tokensMinted, tokenExpiring, refreshes atomic.Int64

	stopping atomic.Bool
	sending  atomic.Bool
	live     liveCount // socket goroutines and links (sock.run, then until wsLink.end)
	dialCtx  context.Context
	cancel   context.CancelFunc

	// addrMu guards the address list and the node table (nodes.go).
	addrMu sync.Mutex
	addrs  []string
	nodes  []*node          // every address connected to or listed, in the order met
	nodeAt map[string]*node // nodes by address
	lbs    string           // the address list's URL, read again by the ladder's refetch step ("": fixed list)
	base   string           // http://host:port of the server whose /stats is the run's

	dmCross atomic.Int64 // DM copies received from another node
	// via: the node each message re-sent through another node went
	// through (nodes.go, setVia and viaOf), viaN its entries.
	via  [viaShards]viaShard
	viaN atomic.Int64
	// resent counts the sends re-sent after a lost link (with their cid),
	// resentDup those of them answered dup (published before).
	resent, resentDup atomic.Int64

	dialer   *websocket.Dialer
	poller   linkPoller // nil: a reader goroutine per socket
	srcIPs   []net.IP
	srcNext  atomic.Uint64
	dialErr  atomic.Value // string: the last failed dial or greeting, logged at the end
	lbsFetch atomic.Int64
}

func (e *engine) now() int64   { return int64(time.Since(e.t0)) }
func (e *engine) nowUs() int64 { return int64(time.Since(e.t0) / time.Microsecond) }

func (e *engine) shardHists(sh *shard) *hists { return sh.hists }

// addrList returns the address list.
func (e *engine) addrList() []string {
	e.addrMu.Lock()
	defer e.addrMu.Unlock()
	return append([]string(nil), e.addrs...)
}

func (e *engine) addrAt(i int) string {
	e.addrMu.Lock()
	defer e.addrMu.Unlock()
	return e.addrs[i%len(e.addrs)]
}

// refetchAddrs fetches the address list again (ladder step "refetch") and
// returns the length of the list to climb: the new one, whose new
// addresses join the node table, or the old one when the list is fixed
// (several targets) or the fetch failed.
func (e *engine) refetchAddrs() int {
	if e.lbs != "" {
		e.lbsFetch.Add(1)
		ctx, cancel := context.WithTimeout(e.dialCtx, 2*time.Second)
		addrs, err := e.fetchList(ctx)
		cancel()
		if err == nil && len(addrs) > 0 {
			addrs = uniqueAddrs(addrs)
			e.addrMu.Lock()
			e.addrs = addrs
			for _, a := range addrs {
				e.nodeOfLocked(a)
			}
			e.addrMu.Unlock()
		}
	}
	e.addrMu.Lock()
	defer e.addrMu.Unlock()
	return len(e.addrs)
}

// fetchList reads the address list (e.lbs). When the list is a node's own
// /lbs (a node of the list serves it, as every node over Redis does) and
// that node does not answer, the /lbs of the other nodes of the current
// list are read in turn: every node of a deployment lists the same live
// nodes, and the one that served the list may be the one that died.
func (e *engine) fetchList(ctx context.Context) ([]string, error) {
	addrs, err := fetchLBS(ctx, e.lbs)
	if err == nil || ctx.Err() != nil {
		return addrs, err
	}
	var others []string
	fromNode := false
	for _, a := range e.addrList() {
		b, berr := httpBase(a)
		if berr != nil {
			continue
		}
		if b+"/lbs" == e.lbs {
			fromNode = true
		} else {
			others = append(others, b+"/lbs")
		}
	}
	if !fromNode {
		return nil, err
	}
	for _, u := range others {
		if l, ferr := fetchLBS(ctx, u); ferr == nil && len(l) > 0 {
			return l, nil
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, err
}

func (e *engine) dial(addr string) (*websocket.Conn, error) {
	ctx, cancel := context.WithTimeout(e.dialCtx, 10*time.Second)
	defer cancel()
	c, resp, err := e.dialer.DialContext(ctx, addr, nil)
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		return nil, err
	}
	return c, nil
}

func (e *engine) netDial(ctx context.Context, network, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: 10 * time.Second}
	if len(e.srcIPs) > 0 {
		ip := e.srcIPs[e.srcNext.Add(1)%uint64(len(e.srcIPs))]
		d.LocalAddr = &net.TCPAddr{IP: ip}
	}
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return &recConn{Conn: c, on: true}, nil
}

// noteDialError keeps the last failed dial or greeting, for the log.
func (e *engine) noteDialError(err error) { e.dialErr.Store(err.Error()) }

// noteTop raises the room's known top offset.
func (e *engine) noteTop(room int32, off uint64) {
	t := &e.tops[room]
	for {
		cur := t.Load()
		if off <= cur || t.CompareAndSwap(cur, off) {
			return
		}
	}
}

// noteEpoch records the room's epoch from a join reply; a new epoch resets
// the known top.
func (e *engine) noteEpoch(room int32, epoch string, top uint64) {
	e.epochMu.Lock()
	if e.epochs[room] != epoch {
		if e.epochs[room] != "" {
			e.tops[room].Store(0)
		}
		e.epochs[room] = epoch
	}
	e.epochMu.Unlock()
	e.noteTop(room, top)
}

func (e *engine) noteSendReply(room int32, epoch string, off uint64) {
	e.epochMu.Lock()
	same := e.epochs[room] == epoch || e.epochs[room] == ""
	if e.epochs[room] == "" {
		e.epochs[room] = epoch
	}
	e.epochMu.Unlock()
	if same {
		e.noteTop(room, off)
	}
}

func (e *engine) roomEpoch(room int32) string {
	e.epochMu.Lock()
	defer e.epochMu.Unlock()
	return e.epochs[room]
}

// closeTrack counts a finished track with upper bound to. Where join
// replies give no join point, the count waits for the end of the run (see
// lateStarts).
func (e *engine) closeTrack(tr *roomTrack, to uint64) {
	if e.late != nil {
		e.late.closed(tr, to)
		return
	}
	e.ver.close(tr, to)
}

// sendUnconfirmed notes a send in flight whose reply will never come (its
// link died, its tab closed, or it timed out) on a protocol that does not
// re-send it (wire.Traits.Resumes false): the server may or may not have
// published it. A send not issued yet, or one re-sent after the resume, is
// not counted.
func (e *engine) sendUnconfirmed(p pending) {
	if p.issued == 0 || e.traits.Resumes {
		return
	}
	e.unconfirmed.Add(1)
	if e.late != nil {
		e.late.unconfirmed(p)
	}
}

// linkLost closes the tracks of the tabs of a socket whose link was lost,
// on a protocol without resume (b.mu held): what the socket misses until it
// has joined its rooms again is excused, as for a churned tab. The rejoin
// is a new incarnation.
func (e *engine) linkLost(s *sock) {
	for _, t := range s.tabs {
		if t.sid == 0 {
			continue
		}
		for i := range t.tracks {
			if t.tracks[i].joined {
				e.closeTrack(&t.tracks[i], t.tracks[i].got.maxOffset())
				e.ver.excusedTracks.Add(1)
			}
		}
		t.tracks = t.tracks[:0]
		t.sid = 0
	}
}

// pickTarget chooses the browser a private message goes to: a random other
// browser with an attached session.
func (e *engine) pickTarget(r *rand.Rand, from *browser) *browser {
	n := len(e.browsers)
	if n < 2 {
		return nil
	}
	for i := 0; i < 8; i++ {
		b := e.browsers[r.IntN(n)]
		if b != from && b.online.Load() > 0 {
			return b
		}
	}
	return nil
}

// newEngine sets up one mode of sc, spoken with w, against the nodes of tl:
// node i is tl.addrs[i], and browser i's sockets start on node i mod N.
func newEngine(sc Scenario, mode string, o *options, w wire.Wire, tl targetList) *engine {
	tr := w.Traits()
	addrs := append([]string(nil), tl.addrs...)
	e := &engine{sc: sc, mode: mode, o: o, addrs: addrs, lbs: tl.lbs, base: tl.base, wire: w, traits: tr,
		dms: newDMTracker(tr.DMToSenderTabs)}
	for _, a := range addrs {
		e.nodeOf(a)
	}
	if tr.Content {
		e.content = newContentTable(sc.Rooms)
	}
	if !tr.JoinPoint {
		e.late = newLateStarts(sc.Rooms)
	}
	seed := uint64(sc.Seed)
	e.tag = fmt.Sprintf("%06x", (seed*0x9e3779b97f4a7c15+uint64(time.Now().UnixNano()))&0xffffff)
	e.pacer = o.pacer(sc.Rate)
	modeLetter := "s"
	if mode == reports.ModePerTab {
		modeLetter = "p"
	}
	e.rooms = make([]string, sc.Rooms)
	e.roomIdx = make(map[string]int32, sc.Rooms)
	for i := range e.rooms {
		e.rooms[i] = fmt.Sprintf("lg%s%s-%d", e.tag, modeLetter, i)
		e.roomIdx[e.rooms[i]] = int32(i)
	}
	e.faults.cur.Store(-1)
	e.faults.links = make([]atomic.Int64, len(o.faults))
	e.faults.node = make([]atomic.Pointer[node], len(o.faults))
	e.tops = make([]atomic.Uint64, sc.Rooms)
	e.epochs = make([]string, sc.Rooms)

	e.srcIPs = sc.SourceIPs
	e.dialer = &websocket.Dialer{
		NetDialContext:   e.netDial,
		HandshakeTimeout: 10 * time.Second,
		// gorilla reads only the handshake (the generator reads frames
		// itself, wsread.go), but keeps its read buffer for the life of
		// the connection: the smallest it takes.
		ReadBufferSize:  125,
		WriteBufferSize: 1024,
		WriteBufferPool: &sync.Pool{},
		Proxy:           nil,
	}

	nShards := sc.Shards
	if nShards <= 0 {
		nShards = defaultShards()
	}
	if nShards > sc.Clients {
		nShards = sc.Clients
	}
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	e.shards = make([]*shard, nShards)
	for i := range e.shards {
		e.shards[i] = &shard{e: e, id: i, rng: rand.New(rand.NewPCG(seed, uint64(i+1))),
			hists: newHists(), wake: make(chan struct{}, 1)}
	}
	roomsOf := roomChooser(sc, rng)
	e.browsers = make([]*browser, sc.Clients)
	nAddr := len(addrs)
	for i := range e.browsers {
		sh := e.shards[i%nShards]
		b := &browser{e: e, sh: sh, id: int32(i),
			name:  fmt.Sprintf("u%s%s%d", e.tag, modeLetter, i),
			tok:   fmt.Sprintf("tk%s%s%d", e.tag, modeLetter, i),
			rooms: roomsOf(i)}
		b.lastDisrupt.Store(math.MinInt64)
		nSocks := 1
		if mode == reports.ModePerTab {
			nSocks = sc.Tabs
		}
		b.socks = make([]*sock, nSocks)
		for k := range b.socks {
			// Spread browsers over the nodes: every socket of browser i
			// starts on node i mod N.
			start := startNode(i, nAddr)
			b.socks[k] = &sock{b: b, idx: k, ladder: NewLadder(sc.Ladder, nAddr, start), addr: start}
		}
		b.tabs = make([]*tab, sc.Tabs)
		for k := range b.tabs {
			s := b.socks[0]
			if mode == reports.ModePerTab {
				s = b.socks[k]
			}
			t := &tab{b: b, s: s, idx: int32(k), gid: uint32(i*sc.Tabs + k), open: true}
			b.tabs[k] = t
			s.tabs = append(s.tabs, t)
		}
		sh.browsers = append(sh.browsers, b)
		e.browsers[i] = b
	}
	return e
}

// roomChooser returns the rooms of user i: RoomsPerUser distinct rooms,
// spread evenly (round robin) or Zipf-skewed.
func roomChooser(sc Scenario, rng *rand.Rand) func(i int) []int32 {
	if sc.RoomSkew > 1 {
		z := rand.NewZipf(rng, sc.RoomSkew, 1, uint64(sc.Rooms-1))
		return func(int) []int32 {
			out := make([]int32, 0, sc.RoomsPerUser)
			for len(out) < sc.RoomsPerUser {
				r := int32(z.Uint64())
				dup := false
				for _, x := range out {
					dup = dup || x == r
				}
				if !dup {
					out = append(out, r)
				} else if rng.IntN(4) == 0 { // avoid long loops on tiny room sets
					r = int32(rng.IntN(sc.Rooms))
					dup = false
					for _, x := range out {
						dup = dup || x == r
					}
					if !dup {
						out = append(out, r)
					}
				}
			}
			return out
		}
	}
	return func(i int) []int32 {
		out := make([]int32, sc.RoomsPerUser)
		for k := range out {
			out[k] = int32((i*sc.RoomsPerUser + k) % sc.Rooms)
		}
		return out
	}
}
