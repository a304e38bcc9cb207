package loadgen

// Issuing commands (the browser's lock held): a socket's table of pending
// commands, the attach of a tab and the joins of its rooms (fresh, or resumed
// and shared between the tabs of a socket), sends, history pages, pings and
// pongs. The wire encodes them (wire.Wire.Append); what they mean, and when
// they are issued, is the engine's.

import (
	"strconv"

	"imload/loadgen/wire"
	"imload/reports"
)

// command returns the browser's scratch command, emptied, of kind k (b.mu
// held; it is encoded before the lock is released).
func (b *browser) command(k wire.CmdKind) *wire.Command {
	sids := b.cmd.Sids[:0]
	b.cmd = wire.Command{Kind: k, Sids: sids}
	return &b.cmd
}

// issue numbers c, has the wire encode it, queues it and puts p in the
// pending table until its reply (p.t's session is the command's). It
// reports false when the protocol has no such command.
func (s *sock) issue(p pending, c *wire.Command) bool {
	e := s.b.e
	if p.t != nil {
		p.sid = p.t.sid
	}
	c.ID, c.Sid = s.seq+1, p.sid
	pkt, ok := e.wire.Append(s.b.scratch[:0], c)
	if !ok {
		return false
	}
	s.seq++
	p.kind, p.seq, p.issued = c.Kind, c.ID, e.now()
	s.pend = append(s.pend, p)
	s.b.scratch = pkt
	s.queue(pkt)
	return true
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

// ping sends the client's heartbeat (wire.Traits.ClientPings).
func (s *sock) ping() {
	e := s.b.e
	s.pingSeq++
	s.pingAt = e.now()
	c := s.b.command(wire.Ping)
	c.ID = s.pingSeq
	if pkt, ok := e.wire.Append(s.b.scratch[:0], c); ok {
		s.b.scratch = pkt
		s.queue(pkt)
	}
}

// pong answers the server's ping, at once.
func (s *sock) pong() {
	if pkt, ok := s.b.e.wire.Append(s.b.scratch[:0], s.b.command(wire.Pong)); ok {
		s.b.scratch = pkt
		s.queueNow(pkt)
	}
}

// attachTab queues the attach of t and one join per room: a fresh join
// with history for a new incarnation, or a resume from the last offset.
func (s *sock) attachTab(t *tab) {
	s.attachOnly(t)
	for i := range t.tracks {
		s.joinTrack(t, i, nil)
	}
}

// attachOnly starts a new incarnation of t if it has none, and queues its
// attach (when the protocol has one: wire.Traits.AttachCmd).
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
	if !e.traits.AttachCmd {
		return
	}
	c := b.command(wire.Attach)
	c.User, c.Token = b.name, b.tok
	if e.sc.JWTSecret != nil {
		c.JWT = b.token()
	}
	if s.issue(pending{t: t}, c) {
		s.resumeWait++
	}
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
	c := s.b.command(wire.Join)
	c.Room, c.User = e.rooms[tr.room], s.b.name
	if tr.joined {
		c.Resume = true
		c.Epoch, c.Offset = tr.epoch, tr.last()
		tr.asked = c.Offset
		for _, a := range also {
			a.t.tracks[i].asked = c.Offset
			c.Sids = append(c.Sids, a.sid)
		}
	} else {
		c.History = e.sc.History
	}
	if s.issue(pending{t: t, track: int16(i), also: also}, c) {
		s.resumeWait++
	}
}

// sendMsg issues a room message or a private message (p.kind wire.Send or
// wire.DM): its text carries the header receivers measure latency with,
// and the node it is first written to (counted there), kept when it is
// re-sent (the text must not change: the server answers a repeated cid with
// the first copy, and the content check compares texts). A re-send through
// another node is noted (engine.setVia): receivers count it by the node it
// went through.
func (s *sock) sendMsg(p pending) {
	e := s.b.e
	b := s.b
	t := p.t
	if s.node != nil {
		switch {
		case !p.written:
			p.written, p.node, p.via, p.prevVia = true, s.node.idx, s.node.idx, s.node.idx
			if p.kind == wire.DM {
				s.node.dmsSent.Add(1)
			} else {
				s.node.sent.Add(1)
			}
		case p.kind == wire.Send:
			e.resent.Add(1)
			p.resent, p.prevVia = true, p.via
			if p.via != s.node.idx {
				p.via = s.node.idx
				e.setVia(t.gid, p.mseq, p.via, p.node)
			}
		}
	}
	buf := appendText(b.text[:0], e.tag, t.gid, p.mseq, p.sched/1000, p.node, e.sc.MsgSize)
	n := len(buf)
	buf = appendCid(buf, t.gid, p.mseq)
	b.text = buf
	c := b.command(p.kind)
	c.Text, c.Cid = buf[:n], buf[n:]
	if p.kind == wire.DM {
		c.To = p.target.name
	} else {
		c.Room = e.rooms[t.tracks[p.track].room]
	}
	s.issue(p, c)
}

// appendCid appends the client id of message seq of tab gid.
func appendCid(dst []byte, gid, seq uint32) []byte {
	dst = append(dst, 'c')
	dst = strconv.AppendUint(dst, uint64(gid), 10)
	dst = append(dst, '-')
	return strconv.AppendUint(dst, uint64(seq), 10)
}

// fetch asks for the messages of track i of t after offset after.
func (r *reader) fetch(t *tab, i int, after uint64) {
	s := r.s
	tr := &t.tracks[i]
	tr.asked = after
	tr.paging = true
	c := s.b.command(wire.History)
	c.Room, c.Epoch, c.After, c.Limit = s.b.e.rooms[tr.room], tr.epoch, after, s.maxHistory
	s.issue(pending{t: t, track: int16(i)}, c)
}
