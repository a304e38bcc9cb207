package loadgen

// Applying what the server says. Every message from the server is read on
// the goroutine that read it (an epoll loop, or the socket's reader
// goroutine): the wire's Reader turns it into events (package wire), and
// the engine applies each with the browser's lock held: the pending table,
// latency, verification, resume and stale tabs are here, the same for
// every protocol. The latencies measured are recorded after the lock.

import (
	"time"

	"imload/loadgen/wire"
)

// reader reads messages for the goroutine it belongs to (an epoll loop
// reading many sockets, s set for each message, or a socket's reader
// goroutine).
type reader struct {
	s   *sock
	wr  wire.Reader // the wire's decoder (nil until the first message)
	lat []latRec
	buf []byte // scratch (the content of a message this generator sent)
	// delivered and cross count the message's room deliveries (first
	// copies) and those of them from another node, dmCross its DM copies
	// from another node: added to the socket's node once the message is
	// applied.
	delivered, cross, dmCross int64

	// kindOf and apply as func values, made once: passing them to the
	// wire's Reader allocates nothing.
	kindOfFn func(uint64) (wire.CmdKind, bool)
	applyFn  func(*wire.Event)
}

type latRec struct {
	k  uint8
	us int64
}

// read handles one WebSocket message from s's server: decoded by the wire,
// applied with the browser's lock held, then the latencies recorded.
func (r *reader) read(s *sock, msg []byte) {
	e := s.b.e
	if r.wr == nil {
		r.wr = e.wire.NewReader()
		r.kindOfFn, r.applyFn = r.kindOf, r.apply
	}
	r.s = s
	r.lat = r.lat[:0]
	r.delivered, r.cross, r.dmCross = 0, 0, 0
	b := s.b
	b.mu.Lock()
	n := r.wr.Read(msg, r.kindOfFn, r.applyFn)
	nd := s.node // the node of the link the message came on
	b.mu.Unlock()
	e.cnt.framesIn.Add(int64(n))
	if r.delivered > 0 && nd != nil {
		nd.delivered.Add(r.delivered)
		if r.cross > 0 {
			nd.cross.Add(r.cross)
		}
	}
	if r.dmCross > 0 {
		e.dmCross.Add(r.dmCross)
	}
	if len(r.lat) > 0 {
		h := e.shardHists(b.sh)
		h.mu.Lock()
		for _, l := range r.lat {
			h.record(int(l.k), l.us)
		}
		h.mu.Unlock()
	}
}

// kindOf says what kind of command id is, if it waits for its reply.
func (r *reader) kindOf(id uint64) (wire.CmdKind, bool) {
	for i := range r.s.pend {
		if p := &r.s.pend[i]; p.seq == id && p.issued > 0 {
			return p.kind, true
		}
	}
	return 0, false
}

// apply applies one event (b.mu held).
func (r *reader) apply(ev *wire.Event) {
	s := r.s
	e := s.b.e
	switch ev.Kind {
	case wire.EvReply:
		r.reply(ev)
	case wire.EvMessage:
		r.roomMessage(ev)
	case wire.EvDM:
		r.dm(ev)
	case wire.EvPong:
		if ev.ID == s.pingSeq && s.pingAt > 0 {
			r.lat = append(r.lat, latRec{hHeartbeat, (e.now() - s.pingAt) / 1000})
			s.pingAt = 0
		}
	case wire.EvPing:
		if s.answerPings {
			s.pong()
		}
	case wire.EvGoAway:
		s.goaway = ev.Retry
		if s.goaway <= 0 {
			s.goaway = time.Second
		}
		if ev.Kicked {
			s.kicked = true
		}
	case wire.EvError:
		e.cnt.err(eErrorFrame)
	case wire.EvEnd:
		s.kill(true)
	case wire.EvTokenExpiring:
		e.tokenExpiring.Add(1)
		for _, sid := range ev.Sids {
			if t := s.tabBySid(sid); t != nil && t.att && e.sc.JWTSecret != nil {
				s.refresh(t)
			}
		}
	case wire.EvDetached:
		// The server ended sessions of this socket (their token expired,
		// or the server API disconnected the user): an error of the run;
		// the link is cut and every tab attaches again and resumes.
		e.cnt.err(eDetached)
		s.kill(true)
	case wire.EvBad:
		e.cnt.err(eProtocol)
	case wire.EvUnexpected:
		e.cnt.err(eUnexpectedMsg)
	}
}

// ---- replies ----

// reply applies the reply to a pending command.
func (r *reader) reply(ev *wire.Event) {
	s := r.s
	b := s.b
	e := b.e
	p, ok := s.takePending(ev.ID)
	if !ok {
		return // a reply after its timeout
	}
	if b.lostAt != 0 && e.traits.Resumes {
		defer r.checkResumed()
	}
	now := e.now()
	lat := (now - p.issued) / 1000
	r.lat = append(r.lat, latRec{hReply, lat})
	t := p.t
	if p.kind == wire.Join && len(p.also) > 0 {
		r.groupJoined(ev, &p)
		return
	}
	if t != nil && (t.sid != p.sid || !t.open) {
		// For an incarnation that is gone (its tab closed by churn, or its
		// link lost without resume, meanwhile).
		switch {
		case p.kind == wire.Attach || p.kind == wire.Join:
			r.resumeStep()
		case p.kind == wire.Send && e.late != nil && ev.Code == wire.CodeOK && ev.Send.Offset > 0:
			// The message went out all the same: where it went counts
			// for the start of the tracks of its room.
			room := t.b.rooms[p.track]
			e.noteTop(room, ev.Send.Offset)
			e.late.acked(room, p.issued, ev.Send.Offset)
		}
		return
	}
	switch p.kind {
	case wire.Attach:
		if !s.greetAttach {
			r.lat = append(r.lat, latRec{hAttach, lat})
		}
		if r.joinFailed(ev) {
			return
		}
		t.attached()
		r.resumeStep()
	case wire.Join:
		if r.joinFailed(ev) {
			return
		}
		if ev.Malformed {
			e.cnt.err(eProtocol)
			return
		}
		tr := &t.tracks[p.track]
		if !tr.joined {
			tr.joinAt = now
		}
		r.joined(t, int(p.track), &ev.Page)
		if !e.traits.AttachCmd {
			// No attach command: the server knows the tab from its first
			// join on, a DM recipient from now on.
			t.attached()
		}
		r.resumeStep()
	case wire.Send:
		r.sent(ev, &p)
	case wire.DM:
		k := dmKey{sender: t.gid, seq: p.mseq}
		switch {
		case ev.Code == wire.CodeShuttingDown:
			e.refusedShutdown.Add(1) // stays unconfirmed: DMs are live only
		case ev.Code == wire.CodeUserOffline:
			e.dmOffline.Add(1)
			e.dms.replied(k, dmRefused)
		case ev.Code != wire.CodeOK:
			e.cnt.replyErr(ev.Code, ev.Err)
		case ev.Malformed:
		case !ev.DM.Counted:
			e.dms.replied(k, dmUncounted)
		default:
			e.dms.replied(k, ev.DM.Sessions)
		}
	case wire.Refresh:
		if ev.Code != wire.CodeOK {
			e.cnt.replyErr(ev.Code, ev.Err)
			return
		}
		e.refreshes.Add(1)
	case wire.History:
		if ev.Code != wire.CodeOK {
			e.cnt.replyErr(ev.Code, ev.Err)
			t.tracks[p.track].paging = false
			return
		}
		if ev.Malformed {
			e.cnt.err(eProtocol)
			return
		}
		r.historyPage(t, int(p.track), &ev.Page)
	}
}

// joinFailed handles a failed attach or join: the link is cut, the ladder
// retries.
func (r *reader) joinFailed(ev *wire.Event) bool {
	if ev.Code == wire.CodeOK {
		return false
	}
	e := r.s.b.e
	e.cnt.err(eAttach)
	e.cnt.replyErr(ev.Code, ev.Err)
	r.s.kill(true)
	return true
}

// sent applies the reply to a send of p's tab.
func (r *reader) sent(ev *wire.Event, p *pending) {
	s := r.s
	e := s.b.e
	t := p.t
	if ev.Code == wire.CodeShuttingDown {
		// Not published: hold it and send it again after the resume.
		e.refusedShutdown.Add(1)
		p.issued = 0
		s.pend = append(s.pend, *p)
		return
	}
	if ev.Code != wire.CodeOK {
		e.cnt.replyErr(ev.Code, ev.Err)
		return
	}
	if ev.Malformed || ev.Send.Offset == 0 {
		return // the offset comes with the deliveries (Centrifugo)
	}
	if p.resent && ev.Send.Dup {
		// An earlier copy was published (its reply lost with its link):
		// through the node that copy went to.
		e.resentDup.Add(1)
		if p.prevVia != p.via {
			e.setVia(t.gid, p.mseq, p.prevVia, p.node)
		}
	}
	room := t.tracks[p.track].room
	e.noteSendReply(room, ev.Send.Epoch, ev.Send.Offset)
	if e.late != nil {
		e.late.acked(room, p.issued, ev.Send.Offset)
	}
	if e.content != nil {
		// What this tab sent, under the number the server gave it.
		r.buf = appendText(r.buf[:0], e.tag, t.gid, p.mseq, p.sched/1000, p.node, e.sc.MsgSize)
		n := len(r.buf)
		r.buf = appendCid(r.buf, t.gid, p.mseq)
		e.content.check(room, []byte(ev.Send.Epoch), ev.Send.Offset, contentHash([]byte(t.b.name), r.buf[n:], r.buf[:n]), true)
	}
}

// groupJoined applies the reply to a join that named other tabs (sids): to
// the track of each tab it was for, as if each had joined by itself. A
// server that does not list them all in the reply's sids did not make them
// members: those tabs join by themselves.
func (r *reader) groupJoined(ev *wire.Event, p *pending) {
	s := r.s
	e := s.b.e
	defer r.resumeStep()
	tabs := append([]tabRef{{t: p.t, sid: p.sid}}, p.also...)
	if r.joinFailed(ev) {
		return
	}
	if ev.Malformed {
		e.cnt.err(eProtocol)
		return
	}
	pg := &ev.Page
	for k, ref := range tabs {
		if ref.t.sid != ref.sid || !ref.t.open {
			continue // closed by churn meanwhile
		}
		if k > 0 && (len(pg.Sids) != len(tabs) || pg.Sids[k] != ref.sid) {
			s.joinTrack(ref.t, int(p.track), nil)
			continue
		}
		r.joined(ref.t, int(p.track), pg)
	}
}

// joined applies a join reply to track i of t.
func (r *reader) joined(t *tab, i int, pg *wire.Page) {
	e := r.s.b.e
	tr := &t.tracks[i]
	if e.traits.JoinPoint {
		e.noteEpoch(tr.room, pg.Epoch, pg.Top)
	}
	if pg.Reset {
		e.joinResets.Add(1)
	}
	if !tr.joined {
		tr.joined = true
		tr.epoch = pg.Epoch
		tr.from = pg.Top
		// Messages in the reply are history, before the join point: not
		// deliveries, but their content is checked all the same.
		for k := range pg.Messages {
			r.checkContent(tr.room, &pg.Messages[k], 1)
		}
		return
	}
	if pg.Epoch != tr.epoch {
		r.newEpoch(tr, pg.Epoch, pg.Top)
		return
	}
	if pg.Reset {
		// Same epoch, but the server cannot resume from our offset (more
		// than max_history missed, or the oldest of them are no longer
		// kept). As a browser does: fetch what it still has with history
		// pages; what it no longer has is counted as gone, not lost.
		e.resumeResets.Add(1)
		r.fetch(t, i, tr.asked)
		return
	}
	r.page(t, i, pg)
}

// historyPage applies a history reply fetched while resuming track i of t.
func (r *reader) historyPage(t *tab, i int, pg *wire.Page) {
	e := r.s.b.e
	tr := &t.tracks[i]
	if pg.Epoch != tr.epoch {
		r.newEpoch(tr, pg.Epoch, pg.Top)
		return
	}
	if !pg.Reset {
		r.page(t, i, pg)
		return
	}
	// The server no longer keeps offset asked+1 (history bound by count or
	// age): the offsets up to its oldest one are gone. Fetch from there.
	e.noteTop(tr.room, pg.Top)
	end := pg.Top // nothing kept at all: everything up to top is gone
	if pg.First > 0 {
		end = pg.First - 1
	}
	if end <= tr.asked {
		tr.paging = false // no progress possible
		return
	}
	tr.gone = append(tr.gone, span{tr.asked + 1, end})
	if pg.First == 0 {
		tr.paging = false
		return
	}
	r.fetch(t, i, end)
}

// page applies resumed messages and asks for the next page if there is one.
func (r *reader) page(t *tab, i int, pg *wire.Page) {
	tr := &t.tracks[i]
	var last uint64
	for k := range pg.Messages {
		m := &pg.Messages[k]
		r.deliver(tr, m, false)
		r.checkContent(tr.room, m, 1)
		last = m.Offset
	}
	if pg.More && last > 0 {
		r.fetch(t, i, last)
	} else {
		tr.paging = false
	}
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

// ---- room messages and DMs ----

// forTabs calls fn for each tab of s an event for the sessions sids is for:
// the attached tabs with those sessions, or, sids nil, every open tab with
// a session.
func (s *sock) forTabs(sids []uint32, fn func(t *tab)) {
	if sids == nil {
		for _, t := range s.tabs {
			if t.open && t.sid != 0 {
				fn(t)
			}
		}
		return
	}
	for _, sid := range sids {
		if t := s.tabBySid(sid); t != nil && t.att {
			fn(t) // a tab closed by churn gets none: pushes in flight are expected
		}
	}
}

// roomMessage applies a room message to the tracks of the tabs it is for.
func (r *reader) roomMessage(ev *wire.Event) {
	s := r.s
	e := s.b.e
	m := &ev.Msg
	room, ok := e.roomIdx[string(m.Room)]
	if !ok {
		e.cnt.err(eUnexpectedMsg)
		return
	}
	s.forTabs(ev.Sids, func(t *tab) { r.pushed(t, room, m) })
	n := len(ev.Sids) // the copies this push stands for (imload)
	r.checkContent(room, m, n)
}

// pushed applies a pushed room message to t's track of room.
func (r *reader) pushed(t *tab, room int32, m *wire.Msg) {
	e := r.s.b.e
	tr := t.trackOf(room)
	if tr == nil || !tr.joined {
		e.cnt.err(eUnexpectedMsg)
		return
	}
	if e.late != nil && e.late.nUnresolved.Load() > 0 {
		if h, ok := parseHeader(m.Text, e.tag); ok {
			e.late.resolve(room, dmKey{sender: h.gid, seq: h.seq}, m.Offset)
		}
	}
	r.deliver(tr, m, true)
}

// dm applies a private message received by the tabs it is for.
func (r *reader) dm(ev *wire.Event) {
	s := r.s
	e := s.b.e
	h, ok := parseHeader(ev.Msg.Text, e.tag)
	if !ok {
		return
	}
	k := dmKey{sender: h.gid, seq: h.seq}
	s.forTabs(ev.Sids, func(t *tab) {
		if e.dms.received(k, s.b, t) {
			r.lat = append(r.lat, latRec{hDM, e.nowUs() - h.schedUs})
			if r.fromOtherNode(h) {
				r.dmCross++
			}
		}
	})
}

// checkContent compares the content of m with what the sender or an
// earlier receiver had under its number (contentTable); n is the number of
// sessions the copy was for.
func (r *reader) checkContent(room int32, m *wire.Msg, n int) {
	ct := r.s.b.e.content
	if ct == nil {
		return
	}
	if !ct.check(room, m.Epoch, m.Offset, contentHash(m.From, m.Cid, m.Text), false) && n > 1 {
		ct.mismatched.Add(int64(n - 1))
	}
}

// deliver records one room message received by a tab (by push, or in a
// resume reply or history page).
func (r *reader) deliver(tr *roomTrack, m *wire.Msg, push bool) {
	if m.Epoch != nil && string(m.Epoch) != tr.epoch {
		return // an old epoch's message after a reset: not comparable
	}
	e := r.s.b.e
	off := m.Offset
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
	r.delivered++
	if push {
		e.ver.deliveredPush.Add(1)
	} else {
		e.ver.deliveredRe.Add(1)
	}
	if h, ok := parseHeader(m.Text, e.tag); ok {
		r.lat = append(r.lat, latRec{hDelivery, e.nowUs() - h.schedUs})
		if r.fromOtherNode(h) {
			r.cross++
		}
	}
}

// fromOtherNode says whether the message with header h was sent through
// another node than the one the socket being read is on: the node its
// header names, or for a message re-sent through another node, that one
// (engine.viaOf).
func (r *reader) fromOtherNode(h header) bool {
	return r.s.node != nil && r.s.b.e.viaOf(h) != r.s.node.idx
}
