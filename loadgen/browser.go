package loadgen

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"imload/mux"
	"imload/reports"
)

// One simulated browser: a user with Tabs tab sessions carried by one socket
// (shared mode) or one socket per tab (per-tab mode). All of a browser's
// state is guarded by its mutex; it is touched by its sockets' readers (the
// epoll loops, or a goroutine per socket) and by its shard's scheduler
// goroutine. Output is merged per
// socket in a mux.Batch and written by whoever flushes (the shard, every
// FlushInterval, or sooner when the batch is full).

type browser struct {
	e    *engine
	sh   *shard
	id   int32
	name string
	tok  string

	rooms []int32 // the user's rooms (indexes into engine.rooms)

	disrupt     atomic.Uint32 // sockets lost and tabs churned, for DM excuses
	lastDisrupt atomic.Int64  // ns since start of the last one (math.MinInt64: none)
	online      atomic.Int32  // attached sessions

	mu      sync.Mutex
	tabs    []*tab
	socks   []*sock
	nextSid uint32
	scratch []byte
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

type cmdKind uint8

const (
	cAttach cmdKind = iota + 1
	cJoin
	cSend
	cDM
	cDetach
	cHistory
)

// pending is a command waiting for its reply, or a send waiting for a link.
type pending struct {
	seq    uint64
	kind   cmdKind
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
	up         bool // hello received, sessions being attached
	connecting bool
	closing    bool // closed on purpose: do not reconnect
	killed     bool // killed on purpose (conn-kill churn)
	dead       bool // closed by the generator after a dead-link or failed attach
	goaway     time.Duration
	kicked     bool // told too_many_connections: the link ends and is not reconnected
	seq        uint64
	pend       []pending
	ladder     *Ladder
	addr       int
	downAt     int64 // ns since start when the link was lost (0 = up or never)
	upAt       int64 // ns since start when the current link came up
	resumeWait int   // attach/join replies still expected
	hb, dead2  time.Duration
	pingSeq    uint64
	pingAt     int64
	maxFrames  int
	maxBytes   int
	maxHistory int

	lastRecv atomic.Int64

	// output, guarded by omu
	omu   sync.Mutex
	wlink *wsLink
	batch *mux.Batch
	spare *mux.Batch
	spill [][]byte
	// spillBytes is the size of spill (socket.io: the queued packets).
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
	t.b.online.Add(1)
}

func (b *browser) gid(t *tab) uint64 { return uint64(t.gid)<<32 | uint64(t.inc) }

// ---- output ----

// queue appends one frame to the socket's batch (the frame is copied). With
// socket.io every packet is a WebSocket message of its own: they are written
// one after the other at the flush.
func (s *sock) queue(frame []byte) {
	e := s.b.e
	if !e.wire.batches() {
		s.omu.Lock()
		s.spill = append(s.spill, bytes.Clone(frame))
		s.spillBytes += len(frame)
		now := s.spillBytes >= s.maxBytes
		wasDirty := s.dirty
		s.dirty = true
		s.omu.Unlock()
		e.cnt.framesOut.Add(1)
		if !wasDirty || now {
			s.b.sh.markDirty(s, now)
		}
		return
	}
	s.omu.Lock()
	if s.batch == nil {
		if s.spare != nil {
			s.batch, s.spare = s.spare, nil
		} else {
			s.batch = mux.NewBatch(s.maxFrames, s.maxBytes)
		}
	}
	now := false
	if !s.batch.Add(frame) {
		s.spill = append(s.spill, bytes.Clone(s.batch.Bytes()))
		s.batch.Reset()
		s.batch.Add(frame)
		now = true
	}
	wasDirty := s.dirty
	s.dirty = true
	s.omu.Unlock()
	e.cnt.framesOut.Add(1)
	if !wasDirty || now {
		s.b.sh.markDirty(s, now)
	}
}

// flush writes what is queued as one WebSocket message (plus any spilled
// full batches before it).
func (s *sock) flush() {
	e := s.b.e
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.omu.Lock()
	l := s.wlink
	b := s.batch
	s.batch = nil
	spill := s.spill
	s.spill = nil
	s.spillBytes = 0
	s.dirty = false
	s.omu.Unlock()
	if l == nil {
		return
	}
	write := func(msg []byte) bool {
		if len(msg) == 0 {
			return true
		}
		_ = l.ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if err := l.ws.WriteMessage(websocket.TextMessage, msg); err != nil {
			// The reader sees the broken link too and counts it (unless
			// the generator cut it on purpose).
			l.cutLink()
			return false
		}
		e.cnt.wsOut.Add(1)
		e.cnt.bytesOut.Add(int64(len(msg)))
		return true
	}
	for _, m := range spill {
		if !write(m) {
			return
		}
	}
	if b != nil {
		write(b.Bytes())
		if cap(b.Bytes()) <= 4<<10 {
			b.Reset()
			s.omu.Lock()
			if s.spare == nil && s.wlink == l {
				s.spare = b
			}
			s.omu.Unlock()
		}
	}
}

// setOutput sets the connection writes go to and drops anything queued for
// an older one.
func (s *sock) setOutput(l *wsLink) {
	s.omu.Lock()
	s.wlink = l
	if s.batch != nil {
		s.batch.Reset()
	}
	s.spill = nil
	s.spillBytes = 0
	s.omu.Unlock()
}

// ---- commands (callers hold b.mu) ----

func (s *sock) cmd(p pending, cmd string, body []byte) {
	e := s.b.e
	s.seq++
	p.seq = s.seq
	p.issued = e.now()
	if p.t != nil {
		p.sid = p.t.sid
	}
	s.b.scratch = mux.AppendCmd(s.b.scratch[:0], p.sid, p.seq, cmd, body)
	s.pend = append(s.pend, p)
	s.queue(s.b.scratch)
}

func (s *sock) ping() {
	e := s.b.e
	s.pingSeq++
	s.pingAt = e.now()
	s.b.scratch = mux.AppendPing(s.b.scratch[:0], s.pingSeq)
	s.queue(s.b.scratch)
}

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

// attachTab queues attach and one join per room for t: a fresh join with
// history for a new tab, or a resume from the last offset.
func (s *sock) attachTab(t *tab) {
	s.attachOnly(t)
	for i := range t.tracks {
		s.joinTrack(t, i, nil)
	}
}

// attachOnly queues the attach of t, starting a new incarnation if it has
// none.
func (s *sock) attachOnly(t *tab) {
	e := s.b.e
	b := s.b
	if t.sid == 0 {
		sid := uint32(1)
		if e.mode != reports.ModePerTab {
			b.nextSid++
			sid = b.nextSid
		}
		t.renew(b, sid)
	}
	body := mux.EncodeBody(mux.AttachReq{Name: b.name, Token: b.tok, Mode: mux.ModeLoadgen})
	s.cmd(pending{kind: cAttach, t: t}, mux.CmdAttach, body)
	s.resumeWait++
}

// attachTabs queues, for the open tabs of s (whose link just came up),
// their attaches and then the joins of their rooms, all in one message. In
// shared mode the tabs that resume a room from the same epoch and offset
// share one join naming them all (sids, docs/protocol.md §3), as the
// SharedWorker does: the messages they missed travel once per socket, and
// the one reply is applied to each tab's track.
func (s *sock) attachTabs() {
	var open []*tab
	for _, t := range s.tabs {
		if t.open {
			open = append(open, t)
		}
	}
	if s.b.e.mode == reports.ModePerTab || len(open) < 2 {
		for _, t := range open {
			s.attachTab(t)
		}
		return
	}
	for _, t := range open {
		s.attachOnly(t)
	}
	// The tracks of every incarnation follow the browser's rooms in order
	// (renew): track i of each tab is the same room.
	grouped := make([]bool, len(open)*len(s.b.rooms))
	for ti, t := range open {
		for i := range t.tracks {
			if grouped[ti*len(s.b.rooms)+i] {
				continue
			}
			tr := &t.tracks[i]
			var also []tabRef
			if tr.joined {
				for tj := ti + 1; tj < len(open); tj++ {
					u := open[tj]
					if i >= len(u.tracks) {
						continue
					}
					ur := &u.tracks[i]
					if ur.room == tr.room && ur.joined && ur.epoch == tr.epoch && ur.last() == tr.last() {
						also = append(also, tabRef{t: u, sid: u.sid})
						grouped[tj*len(s.b.rooms)+i] = true
					}
				}
			}
			s.joinTrack(t, i, also)
		}
	}
}

// joinTrack queues the join of track i of t: a resume from its last offset
// (for the tabs in also too, whose track i resumes from the same point) or
// a fresh join with history.
func (s *sock) joinTrack(t *tab, i int, also []tabRef) {
	e := s.b.e
	tr := &t.tracks[i]
	req := mux.JoinReq{Room: e.rooms[tr.room]}
	if tr.joined {
		req.Epoch, req.Offset = tr.epoch, tr.last()
		tr.asked = req.Offset
		for _, a := range also {
			a.t.tracks[i].asked = req.Offset
			req.SIDs = append(req.SIDs, a.sid)
		}
	} else {
		req.History = e.sc.History
	}
	s.cmd(pending{kind: cJoin, t: t, track: int16(i), also: also}, mux.CmdJoin, mux.EncodeBody(req))
	s.resumeWait++
}

func (s *sock) sendMsg(p pending) {
	e := s.b.e
	t := p.t
	tr := &t.tracks[p.track]
	var body []byte
	body = append(body, `{"`...)
	if p.kind == cDM {
		body = append(body, `to":`...)
		body = mux.AppendString(body, p.target.name)
	} else {
		body = append(body, `room":`...)
		body = mux.AppendString(body, e.rooms[tr.room])
	}
	body = append(body, `,"text":"`...)
	body = appendText(body, e.tag, t.gid, p.mseq, p.sched/1000, e.sc.MsgSize)
	body = append(body, `","cid":"`...)
	body = appendCid(body, t.gid, p.mseq)
	body = append(body, `"}`...)
	name := mux.CmdSend
	if p.kind == cDM {
		name = mux.CmdDM
	}
	s.cmd(p, name, body)
}

// appendCid appends the client id of message seq of tab gid.
func appendCid(dst []byte, gid, seq uint32) []byte {
	dst = append(dst, 'c')
	dst = strconv.AppendUint(dst, uint64(gid), 10)
	dst = append(dst, '-')
	return strconv.AppendUint(dst, uint64(seq), 10)
}

// takePending removes and returns the pending command with seq.
func (s *sock) takePending(seq uint64) (pending, bool) {
	for i := range s.pend {
		if s.pend[i].seq == seq && s.pend[i].issued > 0 {
			p := s.pend[i]
			copy(s.pend[i:], s.pend[i+1:])
			s.pend[len(s.pend)-1] = pending{}
			s.pend = s.pend[:len(s.pend)-1]
			return p, true
		}
	}
	return pending{}, false
}

// ---- connection lifecycle ----

// run dials, greets and brings the socket up, on a goroutine of its own.
// Then it hands the link to the poller, or (goroutine reader) reads it
// until it ends.
func (s *sock) run(gen uint32, addrIdx int, refetch bool) {
	e := s.b.e
	b := s.b
	handed := false // e.wg's count passed on to the link (wsLink.end)
	defer func() {
		if !handed {
			e.wg.Done()
		}
	}()
	if refetch {
		e.refetchAddrs()
	}
	addr := e.addrAt(addrIdx)
	t0 := time.Now()
	conn, err := e.dial(addr)
	var l *wsLink
	if err == nil {
		e.shardHists(b.sh).recordOne(hConnect, time.Since(t0).Microseconds())
		l = newLink(s, conn)
		err = e.wire.greet(s, l)
		if err != nil {
			conn.Close()
		}
	}
	b.mu.Lock()
	s.connecting = false
	if err != nil {
		if !e.stopping.Load() {
			// Not an error by itself: the ladder retries; a socket that
			// goes down the whole ladder is (gave_up).
			e.dialFailures.Add(1)
			e.noteDialError(err)
		}
		s.down(false)
		b.mu.Unlock()
		return
	}
	if e.stopping.Load() || s.closing || s.gen != gen {
		b.mu.Unlock()
		conn.Close()
		return
	}
	s.gen++
	gen = s.gen
	l.gen = gen
	s.link = l
	s.up = true
	s.upAt = e.now()
	s.addr = addrIdx
	s.lastRecv.Store(e.now())
	s.setOutput(l)
	addPeak(&e.cnt.conns, &e.cnt.connsPeak, 1)
	// Sends that were in flight when the last link died are re-sent after
	// the resume with the same client id (the server answers a repeat with
	// the first offset); everything else in flight is forgotten.
	e.wire.attachUp(s)
	b.mu.Unlock()
	if e.wire.clientPings() {
		b.sh.add(event{at: e.now() + jitterDur(s.hb), kind: evPing, s: s, gen: gen})
	}

	handed = true
	if p := e.poller; p != nil {
		l.compact()
		if p.add(l) == nil {
			return // this goroutine, with its stack grown by the dial, ends here
		}
	}
	_ = l.readLoop()
	l.end()
}

func (s *sock) readHello(l *wsLink) error {
	e := s.b.e
	_ = l.tcp.SetReadDeadline(time.Now().Add(10 * time.Second))
	defer l.tcp.SetReadDeadline(time.Time{})
	data, err := l.readBlocking()
	if err != nil {
		return err
	}
	e.cnt.wsIn.Add(1)
	e.cnt.bytesIn.Add(int64(len(data)))
	var hello *mux.Hello
	err = mux.SplitMessage(data, mux.Limits{}, func(fr []byte) error {
		e.cnt.framesIn.Add(1)
		f, err := mux.DecodeServerFrame(fr)
		if err != nil {
			return err
		}
		if f.T == mux.TypeHello && hello == nil {
			var h mux.Hello
			if err := mux.BodyOf(f.Body, &h); err != nil {
				return err
			}
			hello = &h
		}
		return nil
	})
	if err != nil {
		return err
	}
	if hello == nil {
		return errors.New("first message from the server is not a hello frame")
	}
	e.noteHello(*hello)
	b := s.b
	b.mu.Lock()
	s.hb = time.Duration(hello.HeartbeatMS) * time.Millisecond
	if e.sc.Heartbeat > 0 {
		s.hb = e.sc.Heartbeat
	}
	if s.hb <= 0 {
		s.hb = 15 * time.Second
	}
	s.dead2 = time.Duration(hello.TimeoutMS) * time.Millisecond
	if e.sc.DeadAfter > 0 {
		s.dead2 = e.sc.DeadAfter
	}
	if s.dead2 <= 0 {
		s.dead2 = 3 * s.hb
	}
	s.maxFrames = hello.MaxFrames
	if s.maxFrames <= 0 {
		s.maxFrames = 128
	}
	s.maxBytes = e.sc.FlushMax
	if hello.MaxMessage > 0 && hello.MaxMessage < s.maxBytes {
		s.maxBytes = hello.MaxMessage
	}
	s.maxHistory = hello.MaxHistory
	if s.maxHistory <= 0 {
		s.maxHistory = 500
	}
	s.omu.Lock()
	s.batch, s.spare = nil, nil // new limits
	s.omu.Unlock()
	b.mu.Unlock()
	return nil
}

// down handles the end of a connection (or a failed attempt). b.mu is held.
func (s *sock) down(wasConn bool) {
	e := s.b.e
	b := s.b
	now := e.now()
	wasUp := s.up
	s.up = false
	s.link = nil
	s.setOutput(nil)
	if wasUp {
		e.cnt.conns.Add(-1)
	}
	for _, t := range s.tabs {
		if t.att {
			t.att = false
			e.cnt.sessions.Add(-1)
			b.online.Add(-1)
		}
		// Tracks that were paging stay so: the resume starts from the
		// last offset fetched (roomTrack.last).
	}
	resumes := e.wire.resumes()
	if !resumes {
		e.linkLost(s)
	}
	// Keep the sends for re-sending after the resume (without resume: only
	// those not sent yet); forget the rest.
	kept := s.pend[:0]
	for _, p := range s.pend {
		if p.kind == cSend && p.t.open && (resumes || p.issued == 0) {
			p.issued = 0
			kept = append(kept, p)
		} else if p.kind == cSend {
			e.sendUnconfirmed(p)
		}
	}
	for i := len(kept); i < len(s.pend); i++ {
		s.pend[i] = pending{}
	}
	s.pend = kept
	s.resumeWait = 0
	if e.stopping.Load() || s.closing || b.gaveUp {
		return
	}
	b.disrupted(s.tabs...)
	if s.kicked {
		// The server closed this connection because the user has too many
		// (its per-user cap). Reconnecting would only kick the next oldest
		// one: like a browser, close its tabs instead, and count the kick.
		s.kicked, s.goaway = false, 0
		e.cnt.kicks.Add(1)
		s.closeTabs()
		return
	}
	if s.downAt == 0 {
		s.downAt = now
	}
	if wasUp && b.lostAt == 0 {
		b.lostAt = now
	}
	var step Step
	switch {
	case wasUp && s.goaway > 0:
		e.faultCut(s) // a graceful stop says goaway first
		e.cnt.goaways.Add(1)
		step = Step{Name: reports.StepRetry, Addr: s.addr, Delay: s.goaway}
		s.goaway = 0
	case wasUp && s.killed:
		s.killed = false
		step = s.ladder.Failed(nil)
	default:
		if wasUp && !s.dead && !e.faultCut(s) {
			e.cnt.err(eLinkLost)
		}
		step = s.ladder.Failed(nil)
	}
	s.dead = false
	e.cnt.step(step.Name)
	if step.Name == reports.StepGiveUp {
		s.giveUp()
		return
	}
	s.connecting = true
	b.sh.add(event{at: now + int64(step.Delay), kind: evConnect, s: s, gen: s.gen,
		sched: boolInt(step.Name == reports.StepRefetch), t: nil})
	s.addr = step.Addr
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// giveUp closes the browser's sessions carried by s for good.
func (s *sock) giveUp() {
	e := s.b.e
	e.cnt.err(eGaveUp)
	s.closeTabs()
	e.gaveUp.Add(1)
}

// closeTabs closes the tabs carried by s (their tracks are counted up to
// what they received, excused) and stops the socket from reconnecting.
func (s *sock) closeTabs() {
	e := s.b.e
	for _, t := range s.tabs {
		if t.open {
			t.open = false
			for i := range t.tracks {
				e.closeTrack(&t.tracks[i], t.tracks[i].got.maxOffset())
				e.ver.excusedTracks.Add(1)
			}
			t.tracks = t.tracks[:0]
		}
	}
	s.pend = s.pend[:0]
	s.closing = true
}

// resumed is called when every attach and join of a (re)connection has its
// reply: sends held meanwhile go out, and new tabs start sending.
func (s *sock) resumed() {
	e := s.b.e
	now := e.now()
	if s.downAt > 0 {
		e.shardHists(s.b.sh).recordOne(hReconnect, (now-s.downAt)/1000)
		s.downAt = 0
	}
	s.ladder.Success()
	// Re-send held sends in their original order.
	held := 0
	for i := range s.pend {
		if s.pend[i].issued == 0 {
			held++
		}
	}
	if held > 0 {
		old := s.pend
		s.pend = make([]pending, 0, len(old))
		for _, p := range old {
			if p.issued > 0 {
				s.pend = append(s.pend, p)
			}
		}
		for _, p := range old {
			if p.issued == 0 && p.t.open && p.t.att {
				e.wire.send(s, p)
			}
		}
	}
	for _, t := range s.tabs {
		if t.open && t.att && !t.sends {
			t.sends = true
			s.b.sh.startSends(t)
		}
	}
}

// ---- reading ----

// reader decodes messages. It belongs to the goroutine that reads (an epoll
// loop, reading many sockets: s is set for each message, or a socket's
// reader goroutine).
type reader struct {
	s    *sock
	push pushMsg
	lat  []latRec
	buf  []byte // scratch (the content of a message this generator sent)
}

type latRec struct {
	k  uint8
	us int64
}

func (r *reader) message(msg []byte) {
	r.lockedFrames(msg, r.frame)
}

// locked runs fn with the browser's lock held, then records the latencies
// it collected (in r.lat) into the shard's histograms, after the lock.
func (r *reader) locked(fn func()) {
	b := r.s.b
	r.lat = r.lat[:0]
	b.mu.Lock()
	fn()
	b.mu.Unlock()
	if len(r.lat) > 0 {
		h := b.e.shardHists(b.sh)
		h.mu.Lock()
		for _, l := range r.lat {
			h.record(int(l.k), l.us)
		}
		h.mu.Unlock()
	}
}

// lockedFrames calls frame for each frame (line) of a message that holds
// several, newline-separated, with the browser's lock held (see locked).
func (r *reader) lockedFrames(msg []byte, frame func([]byte)) {
	e := r.s.b.e
	r.locked(func() {
		_ = mux.SplitMessage(msg, mux.Limits{}, func(fr []byte) error {
			e.cnt.framesIn.Add(1)
			frame(fr)
			return nil
		})
	})
}

var pushMsgPrefix = []byte(`{"t":"push"`)

func (r *reader) frame(fr []byte) {
	s := r.s
	e := s.b.e
	if bytes.HasPrefix(fr, pushMsgPrefix) && parsePushMsg(fr, &r.push) {
		r.roomPush(&r.push)
		return
	}
	f, err := mux.DecodeServerFrame(fr)
	if err != nil {
		e.cnt.err(eProtocol)
		return
	}
	switch f.T {
	case mux.TypeReply:
		r.reply(&f)
	case mux.TypePush:
		r.otherPush(&f)
	case mux.TypePong:
		if f.Seq == s.pingSeq && s.pingAt > 0 {
			r.lat = append(r.lat, latRec{hHeartbeat, (e.now() - s.pingAt) / 1000})
			s.pingAt = 0
		}
	case mux.TypeGoAway:
		var g mux.GoAway
		_ = mux.BodyOf(f.Body, &g)
		d := time.Duration(g.RetryMS) * time.Millisecond
		if d <= 0 {
			d = time.Second
		}
		s.goaway = d
		if g.Reason == mux.GoAwayTooManyConns {
			s.kicked = true
		}
	case mux.TypeError:
		e.cnt.err(eErrorFrame)
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

func (r *reader) roomPush(p *pushMsg) {
	s := r.s
	e := s.b.e
	room, ok := e.roomIdx[string(p.room)]
	if !ok {
		e.cnt.err(eUnexpectedMsg)
		return
	}
	for _, sid := range p.sids {
		t := s.tabBySid(sid)
		if t == nil || !t.att {
			continue // a tab closed by churn: pushes in flight are expected
		}
		tr := t.trackOf(room)
		if tr == nil || !tr.joined {
			e.cnt.err(eUnexpectedMsg)
			continue
		}
		r.deliver(tr, p.offset, p.epoch, p.text, true)
	}
	r.checkContent(room, p.epoch, p.offset, p.from, p.cid, rawString(p.text), len(p.sids))
}

// checkContent compares the content of (room, epoch, off) with what the
// sender or an earlier receiver had under that number (contentTable); n is
// the number of sessions the copy was for.
func (r *reader) checkContent(room int32, epoch []byte, off uint64, from, cid, text []byte, n int) {
	ct := r.s.b.e.content
	if ct == nil {
		return
	}
	if !ct.check(room, epoch, off, contentHash(from, cid, text), false) && n > 1 {
		ct.mismatched.Add(int64(n - 1))
	}
}

// deliver records one room message received by a tab (by push, or in a
// resume reply or history page).
func (r *reader) deliver(tr *roomTrack, off uint64, epoch []byte, text []byte, push bool) {
	if string(epoch) != tr.epoch {
		return // an old epoch's message after a reset: not comparable
	}
	r.record(tr, off, text, push)
}

// record records one room message of the track's epoch received by a tab.
func (r *reader) record(tr *roomTrack, off uint64, text []byte, push bool) {
	e := r.s.b.e
	e.noteTop(tr.room, off)
	switch tr.receive(off, push) {
	case recvOld:
		return
	case recvDup:
		// A resume reply or history page holds everything after the
		// offset asked, which may overlap pushes received meanwhile: only
		// a copy the client did not ask for again is a duplicate.
		if push || off <= tr.asked {
			e.ver.duplicated.Add(1)
		}
		return
	case recvReordered:
		e.ver.reordered.Add(1)
	}
	e.cnt.delivered.Add(1)
	if push {
		e.ver.deliveredPush.Add(1)
	} else {
		e.ver.deliveredRe.Add(1)
	}
	if h, ok := parseHeader(text, e.tag); ok {
		r.lat = append(r.lat, latRec{hDelivery, e.nowUs() - h.schedUs})
	}
}

func (r *reader) otherPush(f *mux.Frame) {
	s := r.s
	e := s.b.e
	switch f.Ev {
	case mux.EvMsg:
		var m mux.Message
		if mux.BodyOf(f.Body, &m) != nil {
			e.cnt.err(eProtocol)
			return
		}
		room, ok := e.roomIdx[m.Room]
		if !ok {
			e.cnt.err(eUnexpectedMsg)
			return
		}
		for _, sid := range f.SIDs {
			if t := s.tabBySid(sid); t != nil && t.att {
				if tr := t.trackOf(room); tr != nil && tr.joined {
					r.deliver(tr, m.Offset, []byte(m.Epoch), []byte(m.Text), true)
				}
			}
		}
		r.checkContent(room, []byte(m.Epoch), m.Offset, []byte(m.From), []byte(m.CID), []byte(m.Text), len(f.SIDs))
	case mux.EvDM:
		var m mux.DM
		if mux.BodyOf(f.Body, &m) != nil {
			e.cnt.err(eProtocol)
			return
		}
		h, ok := parseHeader([]byte(m.Text), e.tag)
		if !ok {
			return
		}
		k := dmKey{sender: h.gid, seq: h.seq}
		for _, sid := range f.SIDs {
			t := s.tabBySid(sid)
			if t == nil || !t.att {
				continue
			}
			if e.dms.received(k, s.b, t) {
				r.lat = append(r.lat, latRec{hDM, e.nowUs() - h.schedUs})
			}
		}
	}
}

func (r *reader) reply(f *mux.Frame) {
	s := r.s
	b := s.b
	e := b.e
	p, ok := s.takePending(f.Seq)
	if !ok {
		return // a reply after its timeout
	}
	if b.lostAt != 0 {
		defer r.checkResumed()
	}
	now := e.now()
	lat := (now - p.issued) / 1000
	r.lat = append(r.lat, latRec{hReply, lat})
	t := p.t
	if p.kind == cJoin && len(p.also) > 0 {
		r.groupJoined(f, &p)
		return
	}
	if t != nil && (t.sid != p.sid || !t.open) {
		// For an incarnation that is gone (closed by churn meanwhile).
		if p.kind == cAttach || p.kind == cJoin {
			r.resumeStep()
		}
		return
	}
	switch p.kind {
	case cAttach:
		r.lat = append(r.lat, latRec{hAttach, lat})
		if f.Code != mux.CodeOK {
			e.cnt.err(eAttach)
			e.cnt.replyErr(f.Code, f.Err)
			s.kill(true)
			return
		}
		t.attached()
		r.resumeStep()
	case cJoin:
		if f.Code != mux.CodeOK {
			e.cnt.err(eAttach)
			e.cnt.replyErr(f.Code, f.Err)
			s.kill(true)
			return
		}
		var jr mux.JoinResp
		if mux.BodyOf(f.Body, &jr) != nil {
			e.cnt.err(eProtocol)
			return
		}
		r.joined(t, int(p.track), &jr)
		r.resumeStep()
	case cSend:
		if f.Code == mux.CodeShuttingDown {
			// Not published: hold it and send it again after the resume.
			e.refusedShutdown.Add(1)
			p.issued = 0
			s.pend = append(s.pend, p)
			return
		}
		if f.Code != mux.CodeOK {
			e.cnt.replyErr(f.Code, f.Err)
			return
		}
		var sr mux.SendResp
		if mux.BodyOf(f.Body, &sr) == nil {
			room := t.tracks[p.track].room
			e.noteSendReply(room, sr.Epoch, sr.Offset)
			if e.content != nil {
				// What this tab sent, under the number the server gave it.
				r.buf = appendText(r.buf[:0], e.tag, t.gid, p.mseq, p.sched/1000, e.sc.MsgSize)
				n := len(r.buf)
				r.buf = appendCid(r.buf, t.gid, p.mseq)
				e.content.check(room, []byte(sr.Epoch), sr.Offset, contentHash([]byte(b.name), r.buf[n:], r.buf[:n]), true)
			}
		}
	case cDM:
		k := dmKey{sender: t.gid, seq: p.mseq}
		if f.Code == mux.CodeShuttingDown {
			e.refusedShutdown.Add(1)
			return // stays unconfirmed: DMs are live only
		}
		if f.Code == mux.CodeUserOffline {
			e.dmOffline.Add(1)
			e.dms.replied(k, dmRefused)
			return
		}
		if f.Code != mux.CodeOK {
			e.cnt.replyErr(f.Code, f.Err)
			return
		}
		var dr mux.DMResp
		if mux.BodyOf(f.Body, &dr) == nil {
			e.dms.replied(k, dr.Sessions)
		}
	case cHistory:
		if f.Code != mux.CodeOK {
			e.cnt.replyErr(f.Code, f.Err)
			t.tracks[p.track].paging = false
			return
		}
		var hr mux.HistoryResp
		if mux.BodyOf(f.Body, &hr) != nil {
			e.cnt.err(eProtocol)
			return
		}
		r.historyPage(t, int(p.track), &hr)
	}
}

// groupJoined applies the reply to a join that named other tabs (sids): to
// the track of each tab it was for, as if each had joined by itself. A
// server that does not list them all in the reply's sids did not make them
// members: those tabs join by themselves.
func (r *reader) groupJoined(f *mux.Frame, p *pending) {
	s := r.s
	e := s.b.e
	defer r.resumeStep()
	tabs := append([]tabRef{{t: p.t, sid: p.sid}}, p.also...)
	if f.Code != mux.CodeOK {
		e.cnt.err(eAttach)
		e.cnt.replyErr(f.Code, f.Err)
		s.kill(true)
		return
	}
	var jr mux.JoinResp
	if mux.BodyOf(f.Body, &jr) != nil {
		e.cnt.err(eProtocol)
		return
	}
	for k, ref := range tabs {
		if ref.t.sid != ref.sid || !ref.t.open {
			continue // closed by churn meanwhile
		}
		if k > 0 && (len(jr.SIDs) != len(tabs) || jr.SIDs[k] != ref.sid) {
			s.joinTrack(ref.t, int(p.track), nil)
			continue
		}
		r.joined(ref.t, int(p.track), &jr)
	}
}

// historyPage applies a history reply fetched while resuming track i of t.
func (r *reader) historyPage(t *tab, i int, hr *mux.HistoryResp) {
	e := r.s.b.e
	tr := &t.tracks[i]
	if hr.Epoch != tr.epoch {
		r.newEpoch(tr, hr.Epoch, hr.Top)
		return
	}
	if !hr.Reset {
		r.page(t, i, hr.Messages, hr.More)
		return
	}
	// The server no longer keeps offset asked+1 (history bound by count or
	// age): the offsets up to its oldest one are gone. Fetch from there.
	e.noteTop(tr.room, hr.Top)
	end := hr.Top // nothing kept at all: everything up to top is gone
	if hr.First > 0 {
		end = hr.First - 1
	}
	if end <= tr.asked {
		tr.paging = false // no progress possible
		return
	}
	tr.gone = append(tr.gone, span{tr.asked + 1, end})
	if hr.First == 0 {
		tr.paging = false
		return
	}
	r.fetch(t, i, end)
}

// fetch asks for the messages of track i of t after offset after.
func (r *reader) fetch(t *tab, i int, after uint64) {
	s := r.s
	tr := &t.tracks[i]
	tr.asked = after
	tr.paging = true
	req := mux.HistoryReq{Room: s.b.e.rooms[tr.room], Epoch: tr.epoch, After: after, Limit: s.maxHistory}
	s.cmd(pending{kind: cHistory, t: t, track: int16(i)}, mux.CmdHistory, mux.EncodeBody(req))
}

// newEpoch handles a room that lost its history (a new epoch): what was
// expected in the old epoch ends at what was received; start again at top.
func (r *reader) newEpoch(tr *roomTrack, epoch string, top uint64) {
	e := r.s.b.e
	e.ver.close(tr, tr.got.maxOffset())
	e.ver.excusedTracks.Add(1)
	e.epochResets.Add(1)
	*tr = roomTrack{room: tr.room, joined: true, epoch: epoch, from: top}
}

func (r *reader) resumeStep() {
	s := r.s
	if s.resumeWait > 0 {
		s.resumeWait--
		if s.resumeWait == 0 {
			s.resumed()
		}
	}
}

// joined applies a join reply to track i of t.
func (r *reader) joined(t *tab, i int, jr *mux.JoinResp) {
	e := r.s.b.e
	tr := &t.tracks[i]
	e.noteEpoch(tr.room, jr.Epoch, jr.Top)
	if jr.Reset {
		e.joinResets.Add(1)
	}
	if !tr.joined {
		tr.joined = true
		tr.epoch = jr.Epoch
		tr.from = jr.Top
		// Messages in the reply are history, before the join point: not
		// deliveries, but their content is checked all the same.
		for k := range jr.Messages {
			m := &jr.Messages[k]
			r.checkContent(tr.room, []byte(m.Epoch), m.Offset, []byte(m.From), []byte(m.CID), []byte(m.Text), 1)
		}
		return
	}
	if jr.Epoch != tr.epoch {
		r.newEpoch(tr, jr.Epoch, jr.Top)
		return
	}
	if jr.Reset {
		// Same epoch, but the server cannot resume from our offset (more
		// than max_history missed, or the oldest of them are no longer
		// kept). As a browser does: fetch what it still has with history
		// pages; what it no longer has is counted as gone, not lost.
		e.resumeResets.Add(1)
		r.fetch(t, i, tr.asked)
		return
	}
	r.page(t, i, jr.Messages, jr.More)
}

// page applies resumed messages and asks for the next page if there is one.
func (r *reader) page(t *tab, i int, msgs []mux.Message, more bool) {
	tr := &t.tracks[i]
	var last uint64
	for k := range msgs {
		m := &msgs[k]
		r.deliver(tr, m.Offset, []byte(m.Epoch), []byte(m.Text), false)
		r.checkContent(tr.room, []byte(m.Epoch), m.Offset, []byte(m.From), []byte(m.CID), []byte(m.Text), 1)
		last = m.Offset
	}
	if more && last > 0 {
		r.fetch(t, i, last)
	} else {
		tr.paging = false
	}
}

// kill cuts the socket's connection (b.mu held). failed marks it as a
// failure of the link (counted by the caller), not a deliberate kill.
func (s *sock) kill(failed bool) {
	if s.link == nil {
		return
	}
	if failed {
		s.dead = true
	} else {
		s.killed = true
	}
	s.link.cutLink()
}

// ---- misc ----

func jitterDur(d time.Duration) int64 {
	if d <= 0 {
		return int64(time.Second)
	}
	return int64(d/2) + rand.Int64N(int64(d/2)+1)
}
