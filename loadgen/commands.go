package loadgen

// Issuing commands (the browser's lock held): a socket's table of pending
// commands, the attach of a tab and the joins of its rooms (fresh, or resumed
// and shared between the tabs of a socket), sends, history pages and pings.

import (
	"strconv"

	"imload/mux"
	"imload/reports"
)

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

// fetch asks for the messages of track i of t after offset after.
func (r *reader) fetch(t *tab, i int, after uint64) {
	s := r.s
	tr := &t.tracks[i]
	tr.asked = after
	tr.paging = true
	req := mux.HistoryReq{Room: s.b.e.rooms[tr.room], Epoch: tr.epoch, After: after, Limit: s.maxHistory}
	s.cmd(pending{kind: cHistory, t: t, track: int16(i)}, mux.CmdHistory, mux.EncodeBody(req))
}

// queueCmd registers p as waiting for the reply to command seq and queues
// the command pkt (built in the browser's scratch buffer).
func (s *sock) queueCmd(p pending, seq uint64, pkt []byte) {
	p.seq = seq
	p.issued = s.b.e.now()
	if p.t != nil {
		p.sid = p.t.sid
	}
	s.pend = append(s.pend, p)
	s.b.scratch = pkt
	s.queue(pkt)
}
