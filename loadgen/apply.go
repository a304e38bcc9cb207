package loadgen

// Reading: every message from the server is handled on the goroutine that
// read it (an epoll loop, or the socket's reader goroutine), with the
// browser's lock held, and the latencies it measured are recorded after.

import (
	"bytes"
	"time"

	"imload/mux"
)

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
