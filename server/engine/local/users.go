package local

import (
	"cmp"
	"slices"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"imload/mux"
	"imload/server/engine"
)

// users is the table of user names, by mux.NameKey: the users online (with
// sessions) and those whose name is reserved after their last session went
// (names.go).
type users struct {
	mu       sync.Mutex
	m        map[string]*user
	online   int // users with a session
	reserved int // users without one, holding their name
	fifo     reservedFIFO
	dmID     uint64
}

// user is one name: its token, the connections of its sessions, and the
// time its last session went. Its key (mux.NameKey) and colour
// (engine.Color) follow from its name and are not kept: the table holds
// every user of the deployment. Users have few connections (a browser's
// tabs share one), so a slice beats a map in memory.
type user struct {
	name, token string
	gen         string        // engine.Gen(token, verified): who its conversations are for
	conns       []connCount   // connections holding sessions of the user
	offAt       int64         // Unix ns the last session went (0: online or forgotten)
	dmIn        *rate.Limiter // DMs the user receives (made on the first)
	sessions    int32         // sessions on all of its connections
	queued      bool          // in users.fifo
	verified    bool          // claimed by Verified claims (no token)
}

// key is the user's key in the table.
func (u *user) key() string { return mux.NameKey(u.name) }

// author is the user's name and colour.
func (u *user) author() engine.Author {
	return engine.Author{Name: u.name, Color: engine.Color(u.name)}
}

// connCount is a connection of a user's sessions, and how many.
type connCount struct {
	id uint64
	n  int32
}

// online reports whether u has a session.
func (u *user) online() bool { return u.sessions > 0 }

// hasConn reports whether a session of u is on connection id.
func (u *user) hasConn(id uint64) bool {
	return slices.ContainsFunc(u.conns, func(c connCount) bool { return c.id == id })
}

// addSession counts a session on connection id; it reports whether the
// connection is new to u.
func (u *user) addSession(id uint64) bool {
	u.sessions++
	for i := range u.conns {
		if u.conns[i].id == id {
			u.conns[i].n++
			return false
		}
	}
	u.conns = append(u.conns, connCount{id: id, n: 1})
	return true
}

// removeSession uncounts a session on connection id; it reports whether
// there was one.
func (u *user) removeSession(id uint64) bool {
	for i := range u.conns {
		if u.conns[i].id != id {
			continue
		}
		u.sessions--
		if u.conns[i].n--; u.conns[i].n == 0 {
			u.conns = slices.Delete(u.conns, i, i+1)
		}
		return true
	}
	return false
}

// Claim makes a session a session of user c.Name (see engine.Users).
func (e *Engine) Claim(c engine.Claim, done func(engine.Claimed, error)) {
	key := mux.NameKey(c.Name)
	now := e.opts.Now().UnixNano()
	us := &e.users
	us.mu.Lock()
	e.sweepNames(now)
	u := e.lookupUser(key, now)
	if u == nil {
		token := c.Token
		switch {
		case c.Verified:
			token = ""
		case token == "":
			token = randomID(16)
		}
		u = &user{name: c.Name, token: token, verified: c.Verified, gen: engine.Gen(token, c.Verified)}
		us.m[key] = u
	} else if refusedClaim(u, &c) {
		left := time.Duration(u.offAt + int64(e.opts.NameGrace) - now)
		err := nameTaken(u.name, !u.online(), left)
		us.mu.Unlock()
		done(engine.Claimed{}, err)
		return
	}
	if !u.online() {
		if u.offAt != 0 { // the owner is back: the reservation ends
			u.offAt = 0
			us.reserved--
		}
		us.online++
	}
	res := engine.Claimed{User: u.author(), Token: u.token, Gen: u.gen}
	if u.addSession(c.Session.Conn.ID) && c.MaxConns > 0 && len(u.conns) > c.MaxConns {
		res.Kick = e.beyond(u, c.MaxConns, c.Session.Conn.ID)
	}
	us.mu.Unlock()
	done(res, nil)
}

// refusedClaim reports whether c may not make a session of u, which
// holds the name (see engine.Users.Claim): a verified claim needs a
// verified user of its exact name; a claim without Verified, a user that
// is not verified and its token or a connection of its sessions.
func refusedClaim(u *user, c *engine.Claim) bool {
	switch {
	case c.Verified:
		return !u.verified || u.name != c.Name
	case u.verified:
		return true
	}
	return !u.hasConn(c.Session.Conn.ID) && c.Token != u.token
}

// beyond returns u's oldest connections beyond max (never keep, the
// connection that claims), oldest first.
func (e *Engine) beyond(u *user, max int, keep uint64) []engine.ConnRef {
	ids := make([]uint64, 0, len(u.conns))
	for _, c := range u.conns {
		if c.id != keep {
			ids = append(ids, c.id)
		}
	}
	slices.Sort(ids) // connection ids grow with their age
	kick := make([]engine.ConnRef, len(u.conns)-max)
	for i := range kick {
		kick[i] = engine.ConnRef{Node: e.opts.Node, ID: ids[i]}
	}
	return kick
}

// Release uncounts a session of user name; after its last, the name is
// reserved to its token for the grace period (names.go).
func (e *Engine) Release(name string, s engine.SessionRef) {
	us := &e.users
	us.mu.Lock()
	defer us.mu.Unlock()
	u := us.m[mux.NameKey(name)]
	if u == nil || !u.removeSession(s.Conn.ID) {
		return
	}
	if !u.online() {
		e.reserve(u, e.opts.Now().UnixNano())
	}
}

// DM sends a private message to every session of user d.To and to the
// sender's other sessions: with DM history it is appended to their
// conversation first (dms.go); the deliveries are made through Sink.DM on
// the caller's goroutine, under the table's lock, so that a user receives
// private messages in the order of their ids; with a durable store, once
// the append is committed, from the store's writer goroutine, in the same
// order.
func (e *Engine) DM(d engine.DMSend, done func(engine.DMSent, error)) {
	now := e.opts.Now()
	us := &e.users
	us.mu.Lock()
	to := e.lookupUser(mux.NameKey(d.To), now.UnixNano())
	if to == nil {
		us.mu.Unlock()
		done(engine.DMSent{}, mux.Errorf(mux.CodeUserOffline, mux.ErrUserOffline, "user %q is not online", d.To))
		return
	}
	if !to.online() {
		// Reserved for its owner: nothing goes to anyone else meanwhile.
		us.mu.Unlock()
		done(engine.DMSent{}, mux.Errorf(mux.CodeUserOffline, mux.ErrUserOffline, "user %q is offline (the name is reserved for its owner)", to.name))
		return
	}
	if to.dmIn == nil {
		to.dmIn = rate.NewLimiter(rate.Limit(e.opts.DMInRate), e.opts.DMInBurst)
	}
	if !to.dmIn.AllowN(now, 1) {
		us.mu.Unlock()
		done(engine.DMSent{}, mux.Errorf(mux.CodeRateLimited, mux.ErrRecipientBusy, "user %q receives more than %g private messages per second (burst %d): try again later", to.name, e.opts.DMInRate, e.opts.DMInBurst))
		return
	}
	toKey, fromKey := to.key(), mux.NameKey(d.From.Name)
	sent := engine.DMSent{TS: d.TS, To: to.author()}
	var c *conv
	var wait *dmPending // durable: the DM's commit
	if e.dmHistory() {
		fromGen := d.FromGen
		if fromGen == "" { // the server API's, on behalf of a user: whoever holds the name now
			if from := e.lookupUser(fromKey, now.UnixNano()); from != nil {
				fromGen = from.gen
			}
		}
		var err error
		if c, sent.Off, wait, err = e.dmAppend(&d, fromGen, to); err != nil {
			us.mu.Unlock()
			done(engine.DMSent{}, err)
			return
		}
		sent.Epoch = c.epoch
	}
	us.dmID++
	sent.ID = us.dmID
	users := []string{toKey}
	sent.Sessions = int(to.sessions)
	sending := 0 // the sending session, which does not get it
	if d.Sender != (engine.SessionRef{}) {
		sending = 1
	}
	if from := us.m[fromKey]; from == to {
		sent.Sessions -= sending
	} else if from != nil && from.online() {
		users = append(users, fromKey)
		sent.Sessions += int(from.sessions) - sending
	}
	body := mux.EncodeBody(mux.DM{ID: sent.ID, From: d.From.Name, To: to.name, Color: d.From.Color, Display: d.From.Display, Text: d.Text, TS: d.TS, CID: d.CID, Epoch: sent.Epoch, Offset: sent.Off})
	delivery := engine.DMDelivery{Body: body, Users: users, Except: d.Sender}
	if wait != nil {
		release := func(err error) {
			if err != nil {
				done(engine.DMSent{}, err)
				return
			}
			e.sink.DM(delivery)
			done(sent, nil)
		}
		if e.afterDMAppend != nil {
			e.afterDMAppend()
		}
		committed := e.dmWait(wait, release)
		us.mu.Unlock()
		if committed { // the store was quicker than this goroutine
			release(wait.err)
		}
		return
	}
	e.sink.DM(delivery)
	us.mu.Unlock()
	done(sent, nil)
}

// Disconnect has the node detach the sessions of user name (this engine's
// only node: Sink.Disconnect, on the caller's goroutine) and answers how
// many there were.
func (e *Engine) Disconnect(name, reason string, done func(int, error)) {
	us := &e.users
	key := mux.NameKey(name)
	us.mu.Lock()
	n := 0
	if u := us.m[key]; u != nil {
		n = int(u.sessions)
	}
	us.mu.Unlock()
	if n > 0 {
		e.sink.Disconnect(key, reason)
	}
	done(n, nil)
}

// Conns answers the connections of user name and their sessions, oldest
// first (their Since is zero: the node knows it).
func (e *Engine) Conns(name string, done func([]engine.UserConn, error)) {
	us := &e.users
	us.mu.Lock()
	var out []engine.UserConn
	if u := us.m[mux.NameKey(name)]; u != nil {
		out = make([]engine.UserConn, 0, len(u.conns))
		for _, c := range u.conns {
			out = append(out, engine.UserConn{Conn: engine.ConnRef{Node: e.opts.Node, ID: c.id}, Sessions: int(c.n)})
		}
	}
	us.mu.Unlock()
	slices.SortFunc(out, func(a, b engine.UserConn) int { return cmp.Compare(a.Conn.ID, b.Conn.ID) })
	done(out, nil)
}

// Online is the number of users with a session.
func (e *Engine) Online() int {
	e.users.mu.Lock()
	defer e.users.mu.Unlock()
	return e.users.online
}

// Reserved is the number of names reserved for offline users.
func (e *Engine) Reserved() int {
	e.users.mu.Lock()
	defer e.users.mu.Unlock()
	return e.users.reserved
}
