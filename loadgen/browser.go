package loadgen

// The simulated browsers, their tabs and sockets, and the commands waiting
// for a reply.
//
// A browser is a user with Tabs tab sessions carried by one socket (shared
// mode) or one socket per tab (per-tab mode). All of a browser's state is
// guarded by its mutex; it is touched by its sockets' readers (the epoll
// loops, or a goroutine per socket) and by its shard's scheduler goroutine.
// Output is merged per socket and written by whoever flushes (output.go).

import (
	"sync"
	"sync/atomic"
	"time"

	"imload/loadgen/wire"
	"imload/mux"
)

type browser struct {
	e    *engine
	sh   *shard
	id   int32
	name string
	tok  string
	// jwt is the user's current token (Scenario.JWTSecret), jwtExp its
	// expiry; guarded by mu.
	jwt    string
	jwtExp time.Time

	rooms []int32 // the user's rooms (indexes into engine.rooms)

	disrupt     atomic.Uint32 // sockets lost and tabs churned, for DM excuses
	lastDisrupt atomic.Int64  // ns since start of the last one (math.MinInt64: none)
	// lastNodeKill is when a link of the browser was last cut by a node's
	// death (a kill_node fault; ns since start, 0: never).
	lastNodeKill atomic.Int64
	online       atomic.Int32 // attached sessions

	mu      sync.Mutex
	tabs    []*tab
	socks   []*sock
	nextSid uint32
	scratch []byte       // a command's bytes, encoded by the wire
	text    []byte       // a send's text and cid
	cmd     wire.Command // the command being issued
	gaveUp  bool
	// lostAt is when the browser's first link was lost since it was last
	// fully resumed (ns since start; 0: none), for HistResume.
	lostAt int64
}

type tab struct {
	b     *browser
	s     *sock // socket that carries it
	idx   int32
	gid   uint32 // global tab id (browser*tabs + idx)
	sid   uint32 // session id on its socket, 0 = none yet
	inc   uint32 // incarnation, incremented at each reopen
	open  bool   // the tab is open (not closed by churn, not given up)
	att   bool   // attached on the current connection
	sends bool   // its send chain has started
	seq   uint32 // per-tab message sequence (header)

	disrupt atomic.Uint32 // links lost and churns of this tab, for DM excuses

	tracks []roomTrack // one per user room, for the current incarnation
}

// pending is a command waiting for its reply, or a send waiting for a link.
type pending struct {
	seq    uint64
	kind   wire.CmdKind
	t      *tab
	sid    uint32
	track  int16
	issued int64 // ns since start when queued; 0 = not sent on this link
	// join: the other tabs the join names (sids), with the session id
	// each had then; the reply is for them too
	also []tabRef
	// send and dm
	sched  int64  // scheduled time, ns since start
	mseq   uint32 // the tab's message sequence
	target *browser
	// written: the send was written to a socket, on node node (the one
	// its header names, kept when it is re-sent after a reconnect); via is
	// the node of its latest copy and prevVia of the copy before (a re-send
	// answered dup was published by an earlier copy); resent: this copy
	// is a re-send.
	written bool
	resent  bool
	node    uint16
	via     uint16
	prevVia uint16
}

// tabRef is a tab as one of its incarnations (session id sid).
type tabRef struct {
	t   *tab
	sid uint32
}

type sock struct {
	b    *browser
	idx  int
	tabs []*tab

	// guarded by b.mu
	link       *wsLink // the current connection (nil: none)
	gen        uint32
	up         bool // greeted, sessions being attached
	connecting bool
	closing    bool // closed on purpose: do not reconnect
	killed     bool // killed on purpose (conn-kill churn)
	dead       bool // closed by the generator after a dead-link or failed attach
	goaway     time.Duration
	kicked     bool // told too_many_connections: the link ends and is not reconnected
	seq        uint64
	pend       []pending
	ladder     *Ladder
	addr       int   // index of the address to dial, in the engine's list
	node       *node // the node of the current link, or of the last one (nil: never up)
	downAt     int64 // ns since start when the link was lost (0 = up or never)
	upAt       int64 // ns since start when the current link came up
	resumeWait int   // attach/join replies still expected
	hb, dead2  time.Duration
	pingSeq    uint64
	pingAt     int64
	maxFrames  int
	maxBytes   int
	maxHistory int
	// answerPings: the server's pings are answered (wire.Link.AnswerPings);
	// greetAttach: the greeting attached (wire.Link.Attach), the attach
	// latency is the greeting's.
	answerPings, greetAttach bool

	lastRecv atomic.Int64

	// output, guarded by omu
	omu   sync.Mutex
	wlink *wsLink
	batch *mux.Batch
	spare *mux.Batch
	spill [][]byte
	// spillBytes is the size of spill (a wire that does not batch: the
	// queued frames).
	spillBytes int
	dirty      bool
	wmu        sync.Mutex // one writer at a time
}

// disrupted notes a socket lost or a tab churned (b.mu held): tabs are the
// tabs concerned.
func (b *browser) disrupted(tabs ...*tab) {
	b.disrupt.Add(1)
	b.lastDisrupt.Store(b.e.now())
	for _, t := range tabs {
		t.disrupt.Add(1)
	}
}

// attached marks t attached on its current link, if it was not (b.mu
// held): it counts as a session, and is a DM recipient from now on.
func (t *tab) attached() {
	if t.att {
		return
	}
	e := t.b.e
	t.att = true
	addPeak(&e.cnt.sessions, &e.cnt.sessionsPeak, 1)
	t.s.node.addSessions(1)
	t.b.online.Add(1)
}

func (b *browser) gid(t *tab) uint64 { return uint64(t.gid)<<32 | uint64(t.inc) }

// renew starts a new incarnation of t (a session that has none) with
// session id sid: every room of its browser is tracked afresh.
func (t *tab) renew(b *browser, sid uint32) {
	t.sid = sid
	t.inc++
	t.tracks = t.tracks[:0]
	for _, r := range b.rooms {
		t.tracks = append(t.tracks, roomTrack{room: r})
	}
}

func (s *sock) tabBySid(sid uint32) *tab {
	for _, t := range s.tabs {
		if t.sid == sid && t.open {
			return t
		}
	}
	return nil
}

func (t *tab) trackOf(room int32) *roomTrack {
	for i := range t.tracks {
		if t.tracks[i].room == room {
			return &t.tracks[i]
		}
	}
	return nil
}
