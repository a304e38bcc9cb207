package redis

import (
	"strconv"
	"sync"
	"time"

	"imload/mux"
	"imload/server/engine"
)

// userTable is what this node knows of users: those with sessions on it
// (their channel is subscribed), and the names whose last session went
// through this node and which are still reserved (for Reserved, and the
// bound MaxReservedNames).
type userTable struct {
	mu       sync.Mutex
	m        map[string]*localUser // by mux.NameKey
	reserved map[string]reservation
	fifo     []string // reserved keys, oldest first (may hold stale keys)
}

// localUser is a user with sessions on this node.
type localUser struct {
	name, color, token string
	verified           bool
	sessions           map[string]struct{} // NODE|CONN|SINCE|SID
}

// reservation is a name reserved after its last session went through
// this node.
type reservation struct {
	token string
	until time.Time
}

// sessionMember is a session's entry in its user's sessions set.
func sessionMember(s engine.SessionRef) string {
	return s.Conn.Node + "|" + strconv.FormatUint(s.Conn.ID, 10) + "|" +
		strconv.FormatInt(s.Conn.Since.UnixMilli(), 10) + "|" + strconv.FormatUint(uint64(s.SID), 10)
}

// Claim runs the claim script on the user's slot; a user new to this node
// has its channel subscribed before done is called.
func (e *Engine) Claim(c engine.Claim, done func(engine.Claimed, error)) {
	if err := e.Health(); err != nil {
		done(engine.Claimed{}, err)
		return
	}
	key := mux.NameKey(c.Name)
	k := e.userKeys(key)
	member := sessionMember(c.Session)
	o := op{
		sc:   e.sc.claim,
		keys: []string{k.hash, k.sessions, k.channel},
		args: []string{
			c.Name, engine.Color(c.Name), c.Token, randomID(16), c.Session.Conn.Node,
			strconv.FormatUint(c.Session.Conn.ID, 10), strconv.FormatInt(c.Session.Conn.Since.UnixMilli(), 10),
			strconv.FormatUint(uint64(c.Session.SID), 10), strconv.FormatInt(e.now(), 10),
			strconv.FormatInt(e.opts.SessionTTL.Milliseconds(), 10), strconv.FormatInt(e.opts.NameGrace.Milliseconds(), 10),
			strconv.Itoa(c.MaxConns), verifiedArg(c.Verified),
		},
		done: func(r rueidisMessage, err error) { e.claimed(key, k, member, c.Verified, r, err, done) },
	}
	if !e.shardOf('u', key).push(o) {
		done(engine.Claimed{}, e.unavailable("claim", errQueueFull))
	}
}

// claimed handles the claim script's answer.
func (e *Engine) claimed(key string, k userKeys, member string, verified bool, r rueidisMessage, err error, done func(engine.Claimed, error)) {
	if err != nil {
		done(engine.Claimed{}, err)
		return
	}
	arr, err := r.ToArray()
	if err != nil || len(arr) < 4 {
		done(engine.Claimed{}, e.unavailable("claim", errPayload))
		return
	}
	s := replyStrings(arr)
	if s[0] == "taken" {
		live, _ := arr[2].AsInt64()
		pttl, _ := arr[3].AsInt64()
		left := time.Duration(pttl) * time.Millisecond
		if live > 0 {
			left = 0
		}
		done(engine.Claimed{}, nameTaken(s[1], live == 0, left))
		return
	}
	if len(s) < 5 || (len(s)-5)%3 != 0 {
		done(engine.Claimed{}, e.unavailable("claim", errPayload))
		return
	}
	res := engine.Claimed{User: engine.Author{Name: s[1], Color: s[2]}, Token: s[3], Gen: engine.Gen(s[3], verified)}
	for i := 5; i+2 < len(s); i += 3 {
		id, _ := strconv.ParseUint(s[i+1], 10, 64)
		since, _ := strconv.ParseInt(s[i+2], 10, 64)
		res.Kick = append(res.Kick, engine.ConnRef{Node: s[i], ID: id, Since: time.UnixMilli(since)})
	}
	us := &e.users
	us.mu.Lock()
	u := us.m[key]
	first := u == nil
	if first {
		u = &localUser{name: s[1], color: s[2], token: s[3], verified: verified, sessions: make(map[string]struct{})}
		us.m[key] = u
	}
	u.sessions[member] = struct{}{}
	delete(us.reserved, key)
	us.mu.Unlock()
	if !first {
		done(res, nil)
		return
	}
	// Private messages to the user reach this node from now on (if Redis
	// is down, once it is back).
	e.sub.subscribe(k.channel, func(error) { done(res, nil) })
}

// Release removes the session from its user's sessions; after the user's
// last session on every node, the name is reserved for the grace.
func (e *Engine) Release(name string, s engine.SessionRef) {
	key := mux.NameKey(name)
	k := e.userKeys(key)
	member := sessionMember(s)
	us := &e.users
	us.mu.Lock()
	u := us.m[key]
	if u == nil {
		us.mu.Unlock()
		return
	}
	if _, ok := u.sessions[member]; !ok {
		us.mu.Unlock()
		return
	}
	delete(u.sessions, member)
	last := len(u.sessions) == 0
	if last {
		delete(us.m, key)
	}
	token := u.token
	us.mu.Unlock()
	if last {
		e.sub.unsubscribe(k.channel)
	}
	o := op{
		sc:   e.sc.release,
		keys: []string{k.hash, k.sessions},
		args: []string{member, strconv.FormatInt(e.now(), 10), strconv.FormatInt(e.opts.NameGrace.Milliseconds(), 10)},
		done: func(r rueidisMessage, err error) {
			if n, perr := r.AsInt64(); last && (err != nil || perr != nil || n != 0) {
				e.unreserved(key) // sessions on other nodes: not reserved
			}
		},
	}
	if !e.shardOf('u', key).push(o) {
		e.stats.releasesDropped.Add(1) // the session expires in SessionTTL
	}
	if last && e.opts.NameGrace > 0 {
		// Counted at once (and the oldest reservations beyond the bound
		// ended at once, before any later request of the caller's).
		e.reserve(key, token)
	}
}

// unreserved forgets a reservation noted by Release: the user still had
// sessions on other nodes.
func (e *Engine) unreserved(key string) {
	e.users.mu.Lock()
	delete(e.users.reserved, key)
	e.users.mu.Unlock()
}

// reserve notes a name reserved through this node; beyond
// MaxReservedNames the oldest reservation ends early.
func (e *Engine) reserve(key, token string) {
	us := &e.users
	now := e.opts.Now()
	us.mu.Lock()
	if us.m[key] != nil { // back on this node meanwhile
		us.mu.Unlock()
		return
	}
	us.reserved[key] = reservation{token: token, until: now.Add(e.opts.NameGrace)}
	us.fifo = append(us.fifo, key)
	var evict []string
	var tokens []string
	for len(us.reserved) > e.opts.MaxReservedNames && len(us.fifo) > 0 {
		old := us.fifo[0]
		us.fifo = us.fifo[1:]
		if r, ok := us.reserved[old]; ok {
			delete(us.reserved, old)
			evict, tokens = append(evict, old), append(tokens, r.token)
		}
	}
	e.sweepReserved(now)
	us.mu.Unlock()
	for i, old := range evict {
		k := e.userKeys(old)
		o := op{sc: e.sc.unreserve, keys: []string{k.hash, k.sessions},
			args: []string{tokens[i], strconv.FormatInt(e.now(), 10)}, done: func(rueidisMessage, error) {}}
		e.shardOf('u', old).push(o)
		if e.opts.OnNameEvicted != nil {
			e.opts.OnNameEvicted()
		}
	}
}

// sweepReserved forgets the reservations that ended. Under users.mu.
func (e *Engine) sweepReserved(now time.Time) {
	us := &e.users
	for len(us.fifo) > 0 {
		r, ok := us.reserved[us.fifo[0]]
		if ok && now.Before(r.until) {
			return
		}
		if ok {
			delete(us.reserved, us.fifo[0])
		}
		us.fifo = us.fifo[1:]
	}
	if len(us.fifo) == 0 {
		us.fifo = nil
	}
}

// Online is the number of users with a session on this node.
func (e *Engine) Online() int {
	e.users.mu.Lock()
	defer e.users.mu.Unlock()
	return len(e.users.m)
}

// Reserved is the number of names reserved after their last session went
// through this node.
func (e *Engine) Reserved() int {
	us := &e.users
	us.mu.Lock()
	defer us.mu.Unlock()
	e.sweepReserved(e.opts.Now())
	return len(us.reserved)
}

// refreshUsers keeps this node's sessions alive (and their users, if
// Redis lost them): those of slice part of parts.
func (e *Engine) refreshUsers(part, parts uint32) {
	exp := strconv.FormatInt(e.now()+e.opts.SessionTTL.Milliseconds(), 10)
	ttl := strconv.FormatInt((e.opts.SessionTTL + e.opts.NameGrace).Milliseconds(), 10)
	type one struct {
		key  string
		args []string
	}
	var all []one
	e.users.mu.Lock()
	for key, u := range e.users.m {
		if !inPart('u', key, part, parts) {
			continue
		}
		args := make([]string, 0, 6+len(u.sessions))
		args = append(args, u.name, u.color, u.token, exp, ttl, verifiedArg(u.verified))
		for m := range u.sessions {
			args = append(args, m)
		}
		all = append(all, one{key, args})
	}
	e.users.mu.Unlock()
	for _, u := range all {
		k := e.userKeys(u.key)
		o := op{sc: e.sc.touchUser, keys: []string{k.hash, k.sessions}, args: u.args, done: func(rueidisMessage, error) {}}
		if !e.shardOf('u', u.key).pushBG(o) {
			e.stats.refreshesDrop.Add(1)
		}
	}
}

// verifiedArg is engine.Claim.Verified as a script's argument.
func verifiedArg(v bool) string {
	if v {
		return "1"
	}
	return ""
}

// nameTaken is the 409 for a name held by another token.
func nameTaken(name string, reserved bool, left time.Duration) error {
	if reserved {
		return mux.Errorf(mux.CodeNameTaken, mux.ErrNameTaken, "the name %q is reserved for its owner (offline) for %v more: present its token, or choose another name", name, left.Round(time.Second))
	}
	return mux.Errorf(mux.CodeNameTaken, mux.ErrNameTaken, "the name %q is taken", name)
}
