package server

import (
	"golang.org/x/time/rate"

	"imload/mux"
	"imload/server/engine"
)

// handleCmd runs one command and queues exactly one reply: now, or, for a
// command that waits for the engine (await.go), once it has answered.
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
	var res []byte
	var err error
	if f.Cmd == mux.CmdAttach {
		res, err = c.attach(f)
	} else if s := c.session(f.SID); s == nil {
		if !knownCmd(f.Cmd) {
			err = mux.Errorf(mux.CodeUnknownCommand, mux.ErrUnknownCommand, "unknown command %q", f.Cmd)
		} else {
			err = mux.Errorf(mux.CodeNotAttached, mux.ErrNotAttached, "session %d is not attached: send attach first", f.SID)
		}
	} else {
		switch f.Cmd {
		case mux.CmdDetach:
			c.srv.removeSession(s, true) // a tab closing, or reloading
			c.dropSession(s)
			res = []byte("{}")
		case mux.CmdNick:
			res, err = c.nick(s, f)
		case mux.CmdJoin:
			res, err = c.join(s, f)
		case mux.CmdLeave:
			res, err = c.leave(s, f)
		case mux.CmdSend:
			res, err = c.send(s, f)
		case mux.CmdDM:
			res, err = c.dm(s, f)
		case mux.CmdHistory:
			res, err = c.history(s, f)
		case mux.CmdDMHistory:
			res, err = c.dmHistory(s, f)
		case mux.CmdDMList:
			res, err = c.dmList(s, f)
		case mux.CmdWho:
			res, err = c.who(s, f)
		case mux.CmdRefresh:
			res, err = c.refresh(s, f)
		default:
			err = mux.Errorf(mux.CodeUnknownCommand, mux.ErrUnknownCommand, "unknown command %q", f.Cmd)
		}
	}
	switch {
	case err != nil:
		c.replyErr(f, err)
	case res != nil:
		c.reply(mux.AppendReply(nil, f.SID, f.Seq, res))
	} // else the command replies itself (under a room's lock, or with the engine's answer)
}

func knownCmd(cmd string) bool {
	switch cmd {
	case mux.CmdAttach, mux.CmdDetach, mux.CmdNick, mux.CmdJoin, mux.CmdLeave, mux.CmdSend, mux.CmdDM, mux.CmdHistory, mux.CmdWho, mux.CmdRefresh,
		mux.CmdDMHistory, mux.CmdDMList:
		return true
	}
	return false
}

func (c *conn) replyErr(f *mux.Frame, err error) { c.replyErrTo(f.SID, f.Seq, err) }

// replyTo queues the reply to command seq of session sid.
func (c *conn) replyTo(sid uint32, seq uint64, body []byte) {
	c.reply(mux.AppendReply(nil, sid, seq, body))
}

// replyErrTo queues the error reply to command seq of session sid.
func (c *conn) replyErrTo(sid uint32, seq uint64, err error) {
	c.reply(mux.AppendErrorReply(nil, sid, seq, mux.AsError(err)))
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
	if c.srv.auth != nil {
		c.attachJWT(s, f.SID, f.Seq, &req)
		return nil, nil
	}
	if req.Name == "" {
		c.addSession(s, req.Mode)
		return mux.EncodeBody(mux.AttachResp{SID: f.SID}), nil
	}
	sid, seq, mode := f.SID, f.Seq, req.Mode
	claim := engine.Claim{Name: req.Name, Token: req.Token, Session: s.ref(), MaxConns: c.srv.cfg.MaxConnsPerUser}
	await(c, func(done func(engine.Claimed, error)) { c.srv.engine.Claim(claim, done) }, func(cl engine.Claimed, err error) {
		if err != nil {
			c.replyErrTo(sid, seq, engineRefused(err))
			return
		}
		if c.ended.Load() { // gone meanwhile: the name goes too
			c.srv.engine.Release(cl.User.Name, s.ref())
			return
		}
		u := c.srv.hub.addSession(s, cl)
		c.srv.kickAll(cl.Kick, u.Name)
		c.addSession(s, mode)
		c.replyTo(sid, seq, mux.EncodeBody(mux.AttachResp{SID: sid, User: u.Name, Color: u.Color, Token: cl.Token}))
	})
	return nil, nil
}

// addSession attaches s; the first attach of the connection decides its
// mode in /stats.
func (c *conn) addSession(s *session, mode string) {
	c.sessions = append(c.sessions, s)
	c.srv.counters.sessions.Add(1)
	if !c.modeSet {
		c.modeSet = true
		m := modeIndex(mode)
		if m != c.mode {
			c.srv.counters.byMode[c.mode].Add(-1)
			c.srv.counters.byMode[m].Add(1)
			c.mode = m
		}
	}
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
		if s.user.Name == req.Name {
			return mux.EncodeBody(mux.NickResp{User: s.user.Name, Color: s.user.Color, Token: s.user.token}), nil
		}
		return nil, mux.Errorf(mux.CodeBadRequest, mux.ErrBadRequest, "this session is already named %q: detach and attach again to change it", s.user.Name)
	}
	sid, seq := f.SID, f.Seq
	claim := engine.Claim{Name: req.Name, Token: req.Token, Session: s.ref(), MaxConns: c.srv.cfg.MaxConnsPerUser}
	await(c, func(done func(engine.Claimed, error)) { c.srv.engine.Claim(claim, done) }, func(cl engine.Claimed, err error) {
		if err != nil {
			c.replyErrTo(sid, seq, engineRefused(err))
			return
		}
		if c.ended.Load() {
			c.srv.engine.Release(cl.User.Name, s.ref())
			return
		}
		u := c.srv.hub.addSession(s, cl)
		c.srv.kickAll(cl.Kick, u.Name)
		// The session's rooms now see it as a user.
		for _, r := range s.rooms {
			r.mu.Lock()
			r.anon--
			r.userJoined(c.srv, c.out, u, c, s.sid)
			r.mu.Unlock()
		}
		c.replyTo(sid, seq, mux.EncodeBody(mux.NickResp{User: u.Name, Color: u.Color, Token: cl.Token}))
	})
	return nil, nil
}

// removeSession detaches s: it leaves its rooms and its user. With
// linger (a detach, or its connection ended) its user's presence in its
// rooms waits for the presence grace (presence.go).
func (srv *Server) removeSession(s *session, linger bool) {
	for _, r := range s.rooms {
		srv.leaveRoom(s, r, linger)
	}
	s.rooms = nil
	if s.tok != nil {
		srv.expiries.remove(s)
	}
	if srv.hub.removeSession(s) {
		srv.engine.Release(s.user.Name, s.ref())
	}
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
