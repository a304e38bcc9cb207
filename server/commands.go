package server

import (
	"sort"
	"strconv"
	"time"

	"golang.org/x/time/rate"

	"imload/mux"
	"imload/server/engine"
)

// handleCmd runs one command and queues exactly one reply.
func (c *conn) handleCmd(f *mux.Frame) {
	if f.Invalid != nil { // its sid and seq could be read: it gets its reply
		c.srv.counters.badFrames.Add(1)
		c.replyErr(f, f.Invalid)
		return
	}
	if c.srv.shuttingDown.Load() {
		c.replyErr(f, mux.Errorf(mux.CodeShuttingDown, mux.ErrShuttingDown, "the server is shutting down"))
		return
	}
	if err := c.admitCmd(); err != nil {
		c.replyErr(f, err)
		return
	}
	if f.Cmd == mux.CmdAttach {
		body, err := c.attach(f)
		c.replyResult(f, body, err)
		return
	}
	s := c.session(f.SID)
	if s == nil {
		if !knownCmd(f.Cmd) {
			c.replyErr(f, mux.Errorf(mux.CodeUnknownCommand, mux.ErrUnknownCommand, "unknown command %q", f.Cmd))
			return
		}
		c.replyErr(f, mux.Errorf(mux.CodeNotAttached, mux.ErrNotAttached, "session %d is not attached: send attach first", f.SID))
		return
	}
	var res []byte
	var err error
	switch f.Cmd {
	case mux.CmdDetach:
		c.srv.removeSession(s)
		c.dropSession(s)
		res = []byte("{}")
	case mux.CmdNick:
		res, err = c.nick(s, f)
	case mux.CmdJoin:
		err = c.join(s, f) // replies itself, under the room's lock
		if err == nil {
			return
		}
	case mux.CmdLeave:
		res, err = c.leave(s, f)
	case mux.CmdSend:
		err = c.send(s, f) // replies itself, under the room's lock
		if err == nil {
			return
		}
	case mux.CmdDM:
		res, err = c.dm(s, f)
	case mux.CmdHistory:
		res, err = c.history(f)
	case mux.CmdWho:
		res, err = c.who(f)
	default:
		err = mux.Errorf(mux.CodeUnknownCommand, mux.ErrUnknownCommand, "unknown command %q", f.Cmd)
	}
	if err != nil {
		c.replyErr(f, err)
		return
	}
	c.reply(mux.AppendReply(nil, f.SID, f.Seq, res))
}

func knownCmd(cmd string) bool {
	switch cmd {
	case mux.CmdAttach, mux.CmdDetach, mux.CmdNick, mux.CmdJoin, mux.CmdLeave, mux.CmdSend, mux.CmdDM, mux.CmdHistory, mux.CmdWho:
		return true
	}
	return false
}

func (c *conn) replyErr(f *mux.Frame, err error) {
	c.reply(mux.AppendErrorReply(nil, f.SID, f.Seq, mux.AsError(err)))
}

func (c *conn) replyResult(f *mux.Frame, body []byte, err error) {
	if err != nil {
		c.replyErr(f, err)
		return
	}
	c.reply(mux.AppendReply(nil, f.SID, f.Seq, body))
}

func (c *conn) attach(f *mux.Frame) ([]byte, error) {
	if c.session(f.SID) != nil {
		return nil, mux.Errorf(mux.CodeSessionExists, mux.ErrSessionExists, "session %d is already attached", f.SID)
	}
	lim := &c.srv.cfg.Limits
	if len(c.sessions) >= lim.MaxSessions {
		return nil, mux.Errorf(mux.CodeTooManySessions, mux.ErrTooManySessions, "this connection already has %d sessions", lim.MaxSessions)
	}
	var req mux.AttachReq
	if err := mux.BodyOf(f.Body, &req); err != nil {
		return nil, err
	}
	if err := req.Validate(*lim); err != nil {
		return nil, err
	}
	s := &session{sid: f.SID, c: c}
	resp := mux.AttachResp{SID: f.SID}
	if req.Name != "" {
		u, kick, err := c.srv.hub.claim(s, req.Name, req.Token)
		if err != nil {
			return nil, err
		}
		resp.User, resp.Color, resp.Token = u.name, u.color, u.token
		c.srv.kick(kick, u.name)
	}
	c.sessions = append(c.sessions, s)
	c.srv.counters.sessions.Add(1)
	if !c.modeSet {
		c.modeSet = true
		m := modeIndex(req.Mode)
		if m != c.mode {
			c.srv.counters.byMode[c.mode].Add(-1)
			c.srv.counters.byMode[m].Add(1)
			c.mode = m
		}
	}
	return mux.EncodeBody(resp), nil
}

func (c *conn) nick(s *session, f *mux.Frame) ([]byte, error) {
	var req mux.NickReq
	if err := mux.BodyOf(f.Body, &req); err != nil {
		return nil, err
	}
	if err := req.Validate(c.srv.cfg.Limits); err != nil {
		return nil, err
	}
	if s.user != nil {
		if s.user.name == req.Name {
			return mux.EncodeBody(mux.NickResp{User: s.user.name, Color: s.user.color, Token: s.user.token}), nil
		}
		return nil, mux.Errorf(mux.CodeBadRequest, mux.ErrBadRequest, "this session is already named %q: detach and attach again to change it", s.user.name)
	}
	u, kick, err := c.srv.hub.claim(s, req.Name, req.Token)
	if err != nil {
		return nil, err
	}
	c.srv.kick(kick, u.name)
	// The session's rooms now see it as a user.
	for _, r := range s.rooms {
		r.mu.Lock()
		r.anon--
		r.users[u]++
		if r.users[u] == 1 {
			r.presenceChanged(c, u, true, c, s.sid)
		}
		r.mu.Unlock()
	}
	return mux.EncodeBody(mux.NickResp{User: u.name, Color: u.color, Token: u.token}), nil
}

func (c *conn) join(s *session, f *mux.Frame) error {
	var req mux.JoinReq
	if err := mux.BodyOf(f.Body, &req); err != nil {
		return err
	}
	cfg := &c.srv.cfg
	if err := req.Validate(cfg.Limits); err != nil {
		return err
	}
	group, err := c.joinGroup(s, f.SID, &req)
	if err != nil {
		return err
	}
	// joined[i]: group[i] is in the room already (not an error, and not
	// counted against its room limit).
	joined := make([]bool, len(group))
	for i, g := range group {
		joined[i] = g.room(req.Room) != nil
		if !joined[i] && len(g.rooms) >= cfg.Limits.MaxRoomsPerSession {
			return mux.Errorf(mux.CodeBadRequest, mux.ErrBadRequest, "session %d is already in %d rooms", g.sid, cfg.Limits.MaxRoomsPerSession)
		}
	}
	r, err := c.srv.hub.lockRoom(req.Room, c.allowRoomCreate)
	if err != nil {
		return err
	}
	defer r.mu.Unlock()
	// Every session of the group becomes a member under the room's lock,
	// before the reply is queued: the pushes that follow it are for all.
	for i, g := range group {
		if r.addSession(c, g.sid) {
			if g.user == nil {
				r.anon++
			} else if r.users[g.user]++; r.users[g.user] == 1 {
				r.presenceChanged(c, g.user, true, c, g.sid)
			}
		}
		if !joined[i] {
			g.rooms = append(g.rooms, r)
		}
	}
	r.expire(time.Now().Add(-cfg.HistoryAge).UnixMilli())
	resume := req.Epoch != "" || req.Offset > 0
	var entries []*engine.Entry
	reset, more, newest := false, false, true
	if resume && r.resumable(req.Epoch, req.Offset, cfg.Limits.MaxHistory) {
		entries, more = r.after(req.Offset, cfg.Limits.MaxHistory)
		newest = false // the client goes on after the last one it gets
	} else {
		reset = resume
		entries, more = r.last(min(req.History, cfg.Limits.MaxHistory))
	}
	var sids []uint32 // listed in the reply only when the join named others
	if len(group) > 1 {
		sids = make([]uint32, len(group))
		for i, g := range group {
			sids[i] = g.sid
		}
	}
	body := c.srv.appendRoomReply(nil, c, r, reset, more, newest, entries, false, sids)
	c.srv.counters.joins.Add(1)
	c.srv.counters.joinSessions.Add(int64(len(group)))
	c.reply(mux.AppendReply(nil, f.SID, f.Seq, body))
	return nil
}

// joinGroup returns the sessions a join is for: s (session sid), then each
// one req.SIDs names, in that order. Strict: a named session that is s
// itself or not attached on this connection fails the whole join.
func (c *conn) joinGroup(s *session, sid uint32, req *mux.JoinReq) ([]*session, error) {
	group := make([]*session, 1, 1+len(req.SIDs))
	group[0] = s
	for _, o := range req.SIDs {
		if o == sid {
			return nil, mux.Errorf(mux.CodeBadRequest, mux.ErrBadRequest, "sids names the command's own session %d", o)
		}
		g := c.session(o)
		if g == nil {
			return nil, mux.Errorf(mux.CodeNotAttached, mux.ErrNotAttached, "session %d named in sids is not attached on this connection", o)
		}
		group = append(group, g)
	}
	return group, nil
}

// allowRoomCreate reports whether c may create another room now (its
// room-creation rate). Called by the holder of c.readMu.
func (c *conn) allowRoomCreate() bool {
	if c.roomLimiter == nil {
		c.roomLimiter = rate.NewLimiter(rate.Limit(c.srv.cfg.RoomCreateRate), c.srv.cfg.RoomCreateBurst)
	}
	return c.roomLimiter.Allow()
}

// replyBudget is how many bytes of messages a join or history reply to c
// may carry: a quarter of the queue limit, and no more than what c's queue
// has room for now, less a reserve for what follows (a message, or a
// quarter of the queue if that is less). So the
// replies to the commands of one message (128 history commands, say) can
// never overflow the queue: once it is full the replies carry fewer
// messages, or none, with more:true.
func (s *Server) replyBudget(c *conn) int {
	quarter := s.cfg.MaxQueueBytes / 4
	free := s.cfg.MaxQueueBytes - c.queuedBytes() - min(s.cfg.Limits.MaxMessageBytes, quarter)
	return max(0, min(quarter, free))
}

// appendRoomReply encodes a join or history reply body:
// {"room":…,"epoch":…,"top":…,("members"|"first"):…,"reset":…,"more":…,"messages":[…]}.
// It carries as many of entries (oldest first) as fit in c's reply budget:
// the newest of them if newest (a window of the latest messages: more then
// means older ones remain), else the oldest (a resume, which goes on after
// its last message: more then means newer ones remain). more comes in set
// when the window left some out already. sids, if any, are the sessions a
// join reply is for (a join that named several).
func (s *Server) appendRoomReply(dst []byte, c *conn, r *room, reset, more, newest bool, entries []*engine.Entry, history bool, sids []uint32) []byte {
	budget := s.replyBudget(c)
	from, to := 0, len(entries) // the entries that fit: entries[from:to]
	if newest {
		// Measure from the newest back; encode forward below.
		scratch := make([]byte, 0, 1024)
		size := -1 // no comma before the first
		from = len(entries)
		for from > 0 {
			scratch = r.appendEntry(scratch[:0], entries[from-1])
			if size+len(scratch)+1 > budget {
				break
			}
			size += len(scratch) + 1
			from--
		}
		more = more || from > 0
	}
	msgs := make([]byte, 0, 256*(to-from))
	for i := from; i < to; i++ {
		n := len(msgs)
		if i > from {
			msgs = append(msgs, ',')
		}
		msgs = r.appendEntry(msgs, entries[i])
		if len(msgs) > budget {
			msgs, more = msgs[:n], true
			break
		}
	}
	dst = append(dst, `{"room":`...)
	dst = mux.AppendString(dst, r.name)
	dst = append(dst, `,"epoch":`...)
	dst = mux.AppendString(dst, r.epoch)
	dst = append(dst, `,"top":`...)
	dst = strconv.AppendUint(dst, r.released, 10)
	if history {
		first := uint64(0) // the oldest offset a client may ask for
		if r.visible() > 0 {
			first = r.first()
		}
		dst = append(dst, `,"first":`...)
		dst = strconv.AppendUint(dst, first, 10)
	} else {
		dst = append(dst, `,"members":`...)
		dst = strconv.AppendInt(dst, int64(r.count), 10)
	}
	if len(sids) > 0 {
		dst = append(dst, `,"sids":`...)
		dst = mux.AppendSIDs(dst, sids)
	}
	if reset {
		dst = append(dst, `,"reset":true`...)
	}
	if more {
		dst = append(dst, `,"more":true`...)
	}
	dst = append(dst, `,"messages":[`...)
	dst = append(dst, msgs...)
	return append(dst, "]}"...)
}

func (c *conn) leave(s *session, f *mux.Frame) ([]byte, error) {
	var req mux.LeaveReq
	if err := mux.BodyOf(f.Body, &req); err != nil {
		return nil, err
	}
	if err := req.Validate(c.srv.cfg.Limits); err != nil {
		return nil, err
	}
	r := s.room(req.Room)
	if r == nil {
		if c.srv.hub.room(req.Room) == nil {
			return nil, unknownRoom(req.Room)
		}
		return nil, mux.Errorf(mux.CodeNotMember, mux.ErrNotMember, "this session is not in room %q", req.Room)
	}
	c.srv.leaveRoom(s, r)
	s.dropRoom(r)
	return []byte("{}"), nil
}

func unknownRoom(name string) error {
	return mux.Errorf(mux.CodeUnknownRoom, mux.ErrUnknownRoom, "room %q does not exist", name)
}

// leaveRoom removes s from r and tells the room when its user is gone.
func (srv *Server) leaveRoom(s *session, r *room) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.removeSession(s.c, s.sid) {
		return
	}
	if s.user == nil {
		r.anon--
		return
	}
	if r.users[s.user]--; r.users[s.user] <= 0 {
		delete(r.users, s.user)
		r.presenceChanged(s.c, s.user, false, nil, 0)
	}
}

// removeSession detaches s: it leaves its rooms and its user.
func (srv *Server) removeSession(s *session) {
	for _, r := range s.rooms {
		srv.leaveRoom(s, r)
	}
	s.rooms = nil
	srv.hub.release(s)
	srv.counters.sessions.Add(-1)
}

func (c *conn) checkSender(s *session) error {
	if s.user == nil {
		return mux.Errorf(mux.CodeNameRequired, mux.ErrNameRequired, "choose a name (nick) before sending")
	}
	if s.limiter == nil {
		s.limiter = rate.NewLimiter(rate.Limit(c.srv.cfg.RateLimit), c.srv.cfg.RateBurst)
	}
	if !s.limiter.Allow() {
		c.srv.counters.rateLimited.Add(1)
		return mux.Errorf(mux.CodeRateLimited, mux.ErrRateLimited, "more than %g messages per second (burst %d): slow down", c.srv.cfg.RateLimit, c.srv.cfg.RateBurst)
	}
	return nil
}

func (c *conn) send(s *session, f *mux.Frame) error {
	var req mux.SendReq
	if err := mux.BodyOf(f.Body, &req); err != nil {
		return err
	}
	cfg := &c.srv.cfg
	if err := req.Validate(cfg.Limits); err != nil {
		return err
	}
	r := s.room(req.Room)
	if r == nil {
		if c.srv.hub.room(req.Room) == nil {
			return unknownRoom(req.Room)
		}
		return mux.Errorf(mux.CodeNotMember, mux.ErrNotMember, "join room %q before sending to it", req.Room)
	}
	if err := c.checkSender(s); err != nil {
		return err
	}
	now := time.Now().UnixMilli()
	r.mu.Lock()
	defer r.mu.Unlock()
	if req.CID != "" {
		if e, ok := r.sentBefore(s.user.name, req.CID); ok {
			if e.Off > r.released { // the first copy waits for its commit: so does this answer
				r.waitRelease(e.Off, waiter{c: c, sid: f.SID, seq: f.Seq})
				return nil
			}
			reply := mux.EncodeBody(mux.SendResp{Room: r.name, Epoch: r.epoch, Offset: e.Off, TS: e.TS, Dup: true})
			c.reply(mux.AppendReply(nil, f.SID, f.Seq, reply))
			return nil
		}
	}
	r.expire(now - cfg.HistoryAge.Milliseconds())
	m := mux.Message{Room: r.name, Offset: r.top + 1, Epoch: r.epoch, From: s.user.name, Color: s.user.color, Text: req.Text, TS: now, CID: req.CID}
	// Queued under the room's lock (it never waits), so that the store
	// gets a room's messages in offset order.
	if err := c.srv.store.Append(m); err != nil {
		c.srv.counters.storeRefused.Add(1)
		return storeRefused(err)
	}
	r.top = m.Offset
	r.add(&m, s.user.author, cfg.HistoryMax)
	p := pendingSend{
		off: m.Offset, ts: now, by: c, sid: f.SID, seq: f.Seq,
		body: mux.AppendMessage(make([]byte, 0, 128+len(m.Text)+len(m.CID)), &m),
	}
	c.srv.counters.messagesIn.Add(1)
	if c.srv.hub.durable {
		r.unreleased = append(r.unreleased, p) // released once committed (release.go)
	} else {
		r.publish(&p, c.out, &c.srv.counters)
	}
	return nil
}

func (c *conn) dm(s *session, f *mux.Frame) ([]byte, error) {
	var req mux.DMReq
	if err := mux.BodyOf(f.Body, &req); err != nil {
		return nil, err
	}
	if err := req.Validate(c.srv.cfg.Limits); err != nil {
		return nil, err
	}
	if err := c.checkSender(s); err != nil {
		return nil, err
	}
	m, n, err := c.srv.hub.dm(s, &req)
	if err != nil {
		return nil, err
	}
	return mux.EncodeBody(mux.DMResp{ID: m.ID, TS: m.TS, Sessions: n}), nil
}

func (c *conn) history(f *mux.Frame) ([]byte, error) {
	var req mux.HistoryReq
	if err := mux.BodyOf(f.Body, &req); err != nil {
		return nil, err
	}
	cfg := &c.srv.cfg
	if err := req.Validate(cfg.Limits); err != nil {
		return nil, err
	}
	r := c.srv.hub.room(req.Room)
	if r == nil {
		return nil, unknownRoom(req.Room)
	}
	limit := req.Limit
	if limit == 0 {
		limit = 50
	}
	limit = min(limit, cfg.Limits.MaxHistory)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.expire(time.Now().Add(-cfg.HistoryAge).UnixMilli())
	var entries []*engine.Entry
	reset, more, newest := false, false, true
	switch {
	case req.After > 0 || req.Epoch != "":
		if r.resumable(req.Epoch, req.After, int(^uint(0)>>1)) {
			entries, more = r.after(req.After, limit)
			newest = false
		} else {
			reset = true
			entries, more = r.last(limit)
		}
	case req.Before > 0:
		entries, more = r.before(req.Before, limit)
	default:
		entries, more = r.last(limit)
	}
	return c.srv.appendRoomReply(nil, c, r, reset, more, newest, entries, true, nil), nil
}

func (c *conn) who(f *mux.Frame) ([]byte, error) {
	var req mux.WhoReq
	if err := mux.BodyOf(f.Body, &req); err != nil {
		return nil, err
	}
	if err := req.Validate(c.srv.cfg.Limits); err != nil {
		return nil, err
	}
	r := c.srv.hub.room(req.Room)
	if r == nil {
		return nil, unknownRoom(req.Room)
	}
	r.mu.Lock()
	resp := mux.WhoResp{Room: r.name, Users: make([]mux.User, 0, len(r.users)), Anonymous: r.anon}
	for u := range r.users {
		resp.Users = append(resp.Users, mux.User{Name: u.name, Color: u.color})
	}
	r.mu.Unlock()
	sort.Slice(resp.Users, func(i, j int) bool { return resp.Users[i].Name < resp.Users[j].Name })
	return mux.EncodeBody(resp), nil
}
