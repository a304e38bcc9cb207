package server

import (
	"errors"
	"time"

	"imload/mux"
	"imload/server/auth"
	"imload/server/engine"
)

// Sessions with a token (--auth jwt, docs/protocol.md "Authentication").
// A session attaches with a JSON Web Token: the verifier (package
// server/auth) checks it — on the worker when its key is at hand, later
// when a JWK Set must be fetched first, the connection's next commands
// waiting behind it as for any engine answer (await.go) — and its subject
// is the session's user, claimed from the engine as a verified user (no
// token, no first-come rule: engine.Claim.Verified). The token's rooms
// claim bounds what the session may join or read. Before the token expires
// the session is told (token_expiring), and it may refresh it (refresh,
// same user); at its expiry the session is detached (a detached push with
// 401 token_expired), its connection and other sessions staying up. The
// expiries are one heap (expiry.go), swept by the janitor.

// sessionToken is a session's token. claims are the session's, under its
// connection's readMu; due and idx are the expiry heap's, under
// expiries.mu.
type sessionToken struct {
	claims auth.Claims
	warnAt int64 // Unix ns of the token_expiring push
	warned bool  // pushed
	due    int64 // when the heap has the session due: warnAt, then the expiry
	idx    int32 // in the heap, -1: not in it
}

// expiresAt is the token's expiry (Unix ns).
func (t *sessionToken) expiresAt() int64 { return t.claims.Expires.UnixNano() }

// newSessionToken makes the token of claims verified at now (Unix ns): its
// token_expiring push is TokenExpiringAhead before the expiry, or halfway
// to it if that is sooner.
func (srv *Server) newSessionToken(cl auth.Claims, now int64) *sessionToken {
	t := &sessionToken{claims: cl, idx: -1}
	srv.setWarn(t, now)
	return t
}

// setWarn sets when the token_expiring push of t is due.
func (srv *Server) setWarn(t *sessionToken, now int64) {
	exp := t.expiresAt()
	ahead := min(int64(srv.cfg.TokenExpiringAhead), (exp-now)/2)
	t.warnAt, t.warned = exp-ahead, false
}

// scheduleToken puts s in the expiry heap at its next due time (Unix ns).
func (srv *Server) scheduleToken(s *session) {
	due := s.tok.warnAt
	if s.tok.warned {
		due = s.tok.expiresAt()
	}
	srv.expiries.schedule(s, due)
}

// tokenRefused is the error a command gets for a token the verifier
// refused.
func (srv *Server) tokenRefused(err error) error {
	switch {
	case errors.Is(err, auth.ErrExpired):
		srv.counters.tokensExpired.Add(1)
		return mux.Errorf(mux.CodeUnauthorized, mux.ErrTokenExpired, "%v: get a new token", err)
	case errors.Is(err, auth.ErrBusy):
		return mux.Errorf(mux.CodeUnavailable, mux.ErrUnavailable, "%v: try again shortly", err)
	}
	srv.counters.tokensInvalid.Add(1)
	return mux.Errorf(mux.CodeUnauthorized, mux.ErrTokenInvalid, "%v", err)
}

// attachJWT attaches session s (command sid, seq) with the token of req:
// verified, then its subject claimed from the engine as a verified user.
func (c *conn) attachJWT(s *session, sid uint32, seq uint64, req *mux.AttachReq) {
	srv := c.srv
	if req.JWT == "" {
		srv.counters.tokensInvalid.Add(1)
		c.replyErrTo(sid, seq, mux.Errorf(mux.CodeUnauthorized, mux.ErrTokenInvalid, "this server authenticates sessions: attach with a jwt"))
		return
	}
	name, mode, token := req.Name, req.Mode, req.JWT
	await(c, func(done func(auth.Claims, error)) { srv.auth.Verify(token, done) }, func(cl auth.Claims, err error) {
		if err != nil {
			c.replyErrTo(sid, seq, srv.tokenRefused(err))
			return
		}
		if name != "" && name != cl.Subject {
			srv.counters.forbidden.Add(1)
			c.replyErrTo(sid, seq, mux.Errorf(mux.CodeForbidden, mux.ErrForbidden, "the token is for user %q, not %q", cl.Subject, name))
			return
		}
		claim := engine.Claim{Name: cl.Subject, Verified: true, Session: s.ref(), MaxConns: srv.cfg.MaxConnsPerUser}
		await(c, func(done func(engine.Claimed, error)) { srv.engine.Claim(claim, done) }, func(cd engine.Claimed, err error) {
			if err != nil {
				c.replyErrTo(sid, seq, engineRefused(err))
				return
			}
			if c.ended.Load() { // gone meanwhile: the name goes too
				srv.engine.Release(cd.User.Name, s.ref())
				return
			}
			now := time.Now().UnixNano()
			if cl.Expires.UnixNano() <= now { // expired while the engine answered
				srv.engine.Release(cd.User.Name, s.ref())
				c.replyErrTo(sid, seq, srv.tokenRefused(auth.ErrExpired))
				return
			}
			if cl.Color != "" {
				cd.User.Color = cl.Color // the user's colour on this node, from its first session's token
			}
			cd.User.Display = cl.Name // and its display name

			s.tok = srv.newSessionToken(cl, now)
			u := srv.hub.addSession(s, cd)
			srv.kickAll(cd.Kick, u.Name)
			c.addSession(s, mode)
			srv.scheduleToken(s)
			c.replyTo(sid, seq, mux.EncodeBody(mux.AttachResp{SID: sid, User: u.Name, Color: u.Color, Name: cl.Name, Expires: cl.Expires.UnixMilli()}))
		})
	})
}

// refresh replaces the token of session s with the one in f: verified,
// and of the same user. The rooms the new token does not allow are left.
func (c *conn) refresh(s *session, f *mux.Frame) ([]byte, error) {
	srv := c.srv
	if srv.auth == nil || s.tok == nil {
		return nil, mux.Errorf(mux.CodeBadRequest, mux.ErrBadRequest, "this server does not use tokens (--auth none)")
	}
	var req mux.RefreshReq
	if err := mux.BodyOf(f.Body, &req); err != nil {
		return nil, err
	}
	if err := req.Validate(srv.cfg.Limits); err != nil {
		return nil, err
	}
	sid, seq := f.SID, f.Seq
	await(c, func(done func(auth.Claims, error)) { srv.auth.Verify(req.JWT, done) }, func(cl auth.Claims, err error) {
		switch {
		case err != nil:
			c.replyErrTo(sid, seq, srv.tokenRefused(err))
			return
		case c.session(sid) != s: // detached meanwhile (its old token expired)
			c.replyErrTo(sid, seq, mux.Errorf(mux.CodeNotAttached, mux.ErrNotAttached, "session %d is not attached: attach with the new token", sid))
			return
		case cl.Subject != s.user.Name:
			srv.counters.forbidden.Add(1)
			c.replyErrTo(sid, seq, mux.Errorf(mux.CodeForbidden, mux.ErrForbidden, "the token is for user %q, this session is %q's: detach, and attach with it", cl.Subject, s.user.Name))
			return
		}
		var left []string
		for i := 0; i < len(s.rooms); {
			r := s.rooms[i]
			if cl.MayJoin(r.name) {
				i++
				continue
			}
			srv.leaveRoom(s, r, false) // the user may no longer be there: gone at once
			s.dropRoom(r)
			left = append(left, r.name)
		}
		s.tok.claims = cl
		srv.setWarn(s.tok, time.Now().UnixNano())
		srv.scheduleToken(s)
		srv.counters.refreshes.Add(1)
		c.replyTo(sid, seq, mux.EncodeBody(mux.RefreshResp{Expires: cl.Expires.UnixMilli(), Left: left}))
	})
	return nil, nil
}

// mayRead reports (as a 403 forbidden) whether session s may join or read
// room: its token's rooms claim.
func (srv *Server) mayRead(s *session, room string) error {
	if s.tok == nil || s.tok.claims.MayJoin(room) {
		return nil
	}
	srv.counters.forbidden.Add(1)
	return mux.Errorf(mux.CodeForbidden, mux.ErrForbidden, "the session's token does not allow room %q", room)
}

// sweepTokens handles the sessions whose token is due at now: the
// token_expiring push, or the detach at the expiry. The janitor calls it;
// it takes each session's connection lock in turn.
func (srv *Server) sweepTokens(now int64) {
	for _, s := range srv.expiries.popDue(now) {
		c := s.c
		var out outbox
		c.readMu.Lock()
		if !c.ended.Load() && c.session(s.sid) == s {
			c.out = &out
			c.tokenDue(s, now)
			c.out = nil
		}
		c.readMu.Unlock()
		out.flush()
	}
}

// tokenDue handles session s whose token is due at now (under c.readMu).
func (c *conn) tokenDue(s *session, now int64) {
	srv := c.srv
	t := s.tok
	switch {
	case now >= t.expiresAt():
		srv.counters.sessionsExpired.Add(1)
		c.detach([]*session{s}, mux.Detached{Code: mux.CodeUnauthorized, Error: mux.ErrTokenExpired,
			Msg: "the session's token expired: attach again with a new one"})
	case !t.warned && now >= t.warnAt:
		t.warned = true
		srv.counters.tokenExpiring.Add(1)
		body := mux.EncodeBody(mux.TokenExpiring{Expires: t.claims.Expires.UnixMilli()})
		c.reply(mux.AppendPush(nil, []uint32{s.sid}, mux.EvTokenExpiring, body))
		srv.scheduleToken(s)
	default: // refreshed meanwhile
		srv.scheduleToken(s)
	}
}

// detach detaches sessions of c, telling them why with one detached push
// (under c.readMu, c.out set).
func (c *conn) detach(ss []*session, why mux.Detached) {
	if len(ss) == 0 {
		return
	}
	sids := make([]uint32, len(ss))
	for i, s := range ss {
		sids[i] = s.sid
	}
	c.reply(mux.AppendPush(nil, sids, mux.EvDetached, mux.EncodeBody(why)))
	// A token that expired is usually followed by a new one and a new
	// attach: the presence grace covers it. A user the team's backend
	// disconnected is gone at once.
	linger := why.Error != mux.ErrDisconnected
	for _, s := range ss {
		c.srv.removeSession(s, linger)
		c.dropSession(s)
	}
}

// disconnectUser detaches c's sessions of user key (the server API's
// disconnect), on the calling goroutine, which holds no connection lock.
func (c *conn) disconnectUser(key, reason string) {
	var out outbox
	c.readMu.Lock()
	if !c.ended.Load() {
		var ss []*session
		for _, s := range c.sessions {
			if s.user != nil && s.user.key() == key {
				ss = append(ss, s)
			}
		}
		c.out = &out
		c.detach(ss, mux.Detached{Code: mux.CodeForbidden, Error: mux.ErrDisconnected, Reason: reason,
			Msg: "the server disconnected this user: do not attach again by yourself"})
		c.out = nil
		c.srv.counters.sessionsDisconnected.Add(int64(len(ss)))
	}
	c.readMu.Unlock()
	out.flush()
}

// Disconnect is the node's Sink.Disconnect: its connections with sessions
// of user detach them, on a goroutine of their own (a Sink call made
// inside an engine call only queues).
func (k nodeSink) Disconnect(user, reason string) {
	s := k.s
	s.hub.usersMu.Lock()
	var conns []*conn
	if u := s.hub.users[user]; u != nil {
		for _, ss := range u.sessions {
			if !containsConn(conns, ss.c) {
				conns = append(conns, ss.c)
			}
		}
	}
	s.hub.usersMu.Unlock()
	if len(conns) == 0 {
		return
	}
	s.goAsync(func() {
		for _, c := range conns {
			c.disconnectUser(user, reason)
		}
	})
}

func containsConn(cs []*conn, c *conn) bool {
	for _, x := range cs {
		if x == c {
			return true
		}
	}
	return false
}

// tokenTick is how often the janitor looks for tokens due: the slack of a
// token_expiring push and of an expiry.
const tokenTick = 100 * time.Millisecond
