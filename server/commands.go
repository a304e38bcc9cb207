package server

import (
	"sort"
	"strconv"
	"time"

	"golang.org/x/time/rate"

	"imload/mux"
)

// handleCmd runs one command and queues exactly one reply.
func (c *conn) handleCmd(f *mux.Frame) {
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
	joined := s.room(req.Room) != nil
	if !joined && len(s.rooms) >= cfg.Limits.MaxRoomsPerSession {
		return mux.Errorf(mux.CodeBadRequest, mux.ErrBadRequest, "this session is already in %d rooms", cfg.Limits.MaxRoomsPerSession)
	}
	r := c.srv.hub.lockRoom(req.Room)
	defer r.mu.Unlock()
	if r.addSession(c, s.sid) {
		if s.user == nil {
			r.anon++
		} else if r.users[s.user]++; r.users[s.user] == 1 {
			r.presenceChanged(c, s.user, true, c, s.sid)
		}
	}
	if !joined {
		s.rooms = append(s.rooms, r)
	}
	r.expire(time.Now().Add(-cfg.HistoryAge).UnixMilli())
	resume := req.Epoch != "" || req.Offset > 0
	var entries []*entry
	reset, more := false, false
	if resume && r.resumable(req.Epoch, req.Offset, cfg.Limits.MaxHistory) {
		entries, more = r.after(req.Offset, cfg.Limits.MaxHistory)
	} else {
		reset = resume
		entries = r.last(min(req.History, cfg.Limits.MaxHistory))
	}
	body := c.srv.appendRoomReply(nil, r, reset, more, entries, false)
	c.reply(mux.AppendReply(nil, f.SID, f.Seq, body))
	return nil
}

// appendRoomReply encodes a join or history reply body:
// {"room":…,"epoch":…,"top":…,("members"|"first"):…,"reset":…,"more":…,"messages":[…]}.
// It carries the first entries whose bodies fit in a quarter of the queue
// limit (at least one) and sets more when it had to leave some out.
func (s *Server) appendRoomReply(dst []byte, r *room, reset, more bool, entries []*entry, history bool) []byte {
	msgs := make([]byte, 0, 256*len(entries))
	budget := s.cfg.MaxQueueBytes / 4
	for i, e := range entries {
		n := len(msgs)
		if i > 0 {
			msgs = append(msgs, ',')
		}
		msgs = r.appendEntry(msgs, e)
		if len(msgs) > budget && i > 0 {
			msgs, more = msgs[:n], true
			break
		}
	}
	dst = append(dst, `{"room":`...)
	dst = mux.AppendString(dst, r.name)
	dst = append(dst, `,"epoch":`...)
	dst = mux.AppendString(dst, r.epoch)
	dst = append(dst, `,"top":`...)
	dst = strconv.AppendUint(dst, r.top, 10)
	if history {
		dst = append(dst, `,"first":`...)
		dst = strconv.AppendUint(dst, r.first(), 10)
	} else {
		dst = append(dst, `,"members":`...)
		dst = strconv.AppendInt(dst, int64(r.count), 10)
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
	if req.CID != "" {
		if e, ok := r.sentBefore(s.user.name, req.CID); ok {
			reply := mux.EncodeBody(mux.SendResp{Room: r.name, Epoch: r.epoch, Offset: e.off, TS: e.ts, Dup: true})
			r.mu.Unlock()
			c.reply(mux.AppendReply(nil, f.SID, f.Seq, reply))
			return nil
		}
	}
	r.expire(now - cfg.HistoryAge.Milliseconds())
	r.top++
	m := mux.Message{Room: r.name, Offset: r.top, Epoch: r.epoch, From: s.user.name, Color: s.user.color, Text: req.Text, TS: now, CID: req.CID}
	body := mux.AppendMessage(make([]byte, 0, 128+len(m.Text)+len(m.CID)), &m)
	r.add(&m, s.user.author, cfg.HistoryMax)
	c.reply(mux.AppendReply(nil, f.SID, f.Seq, mux.EncodeBody(mux.SendResp{Room: r.name, Epoch: r.epoch, Offset: m.Offset, TS: now})))
	for mc, mem := range r.members {
		c.pushTo(mc, outItem{head: pushMsg, sids: mem.sids, body: body})
	}
	deliveries := r.count
	r.mu.Unlock()
	c.srv.counters.messagesIn.Add(1)
	c.srv.counters.messagesOut.Add(int64(deliveries))
	c.srv.store.Append(m)
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
	var entries []*entry
	reset, more := false, false
	switch {
	case req.After > 0 || req.Epoch != "":
		if r.resumable(req.Epoch, req.After, int(^uint(0)>>1)) {
			entries, more = r.after(req.After, limit)
		} else {
			reset = true
			entries = r.last(limit)
		}
	case req.Before > 0:
		entries, more = r.before(req.Before, limit)
	default:
		entries = r.last(limit)
		more = r.n > len(entries)
	}
	return c.srv.appendRoomReply(nil, r, reset, more, entries, true), nil
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
