package server

import (
	"container/heap"
	"slices"
	"sort"
	"sync"
	"time"

	"imload/mux"
	"imload/server/engine"
)

// Presence coalescing. Every join and leave of a user costs a push to every
// member of the room, so one session cycling join/leave could make a
// 20-member room push millions of frames and drop its members as slow
// consumers. So a room pushes presence at most about once per
// PresenceInterval: the first change of a quiet room goes out at once;
// later changes within the interval wait and are merged into the net
// change per user (a user who left and came back meanwhile yields
// nothing; at most one join or one leave per user per flush), pushed by
// one goroutine (presenceFlusher) when the interval since the room's last
// presence push is over. Members therefore see a user's join and leave
// pushes alternate, and the last one tells the user's state; they may see
// them up to one interval late, and not ordered with the room's msg
// pushes.

// presenceChange is what a room's members were last told of one user,
// while a change of it waits.
type presenceChange struct {
	who      engine.Author
	was      bool  // members were last told the user is in the room
	skipConn *conn // the session whose join this is: it gets no join push
	skipSID  uint32
}

// roomPresence is a room's presence changes waiting for its next flush,
// by mux.NameKey of the user.
type roomPresence struct {
	pending map[string]presenceChange
}

// A user is present in a room while one of its sessions is in it, on this
// node (room.users) or on another (room.remote, from Opened.Present and
// Sink.Presence). The members are told when that changes: userJoined,
// userLeft and remoteChanged find out, presenceChanged tells them.
//
// The presence grace. A browser whose tab reloads, or that loses its
// connection (a network drop, its node dying), is usually back within
// seconds, here or on another node; telling every member "X left" and
// then "X joined" for that would make presence flap on every hiccup. So
// when a user's last session here goes without a leave command (userLeft
// with linger: a detach, or the connection ended), the user stays
// present, lingering, for Config.PresenceGrace: the engine is not told,
// nor are the members.
// A session of the user that joins meanwhile (userJoined) takes the
// user back without a word; otherwise the presence flusher ends the
// linger when it is due (expireLinger) and the leave goes out then. A
// user present only on nodes that died (Sink.NodeGone) lingers the same
// way (lingerRemote). A leave command takes effect at once.

// present reports whether the user of key is in the room on any node
// (lingering included). Called under r.mu.
func (r *room) present(key string) bool {
	_, here := r.users[key]
	return here || r.remote[key] != nil
}

// userJoined counts a session of u in the room (joining, or named by
// nick). With the first, u is present here: the engine is told, and the
// members are unless u was present on another node (skipConn and skipSID
// name the joining session, which gets no push). out takes the pushes.
// Called under r.mu.
func (r *room) userJoined(s *Server, out *outbox, u *user, skipConn *conn, skipSID uint32) {
	key := u.key()
	ru := r.users[key]
	lingering := ru.n == 0 && ru.linger != 0
	ru.u, ru.n, ru.linger = u, ru.n+1, 0
	r.users[key] = ru
	if ru.n != 1 {
		return
	}
	if lingering {
		// Back within the presence grace: the engine and the members
		// were never told it left.
		s.counters.presenceKept.Add(1)
		return
	}
	s.engine.SetPresent(r.name, u.Author, true)
	if r.remote[key] == nil {
		r.presenceChanged(s, out, key, u.Author, true, skipConn, skipSID)
	}
}

// userLeft uncounts a session of u in the room. With the last, u is no
// longer present here: the engine is told, and the members are unless u
// is present on another node. With linger (a detach, or the session's
// connection ended) that waits for the presence grace instead. Called
// under r.mu.
func (r *room) userLeft(s *Server, out *outbox, u *user, linger bool) {
	key := u.key()
	ru := r.users[key]
	if ru.n--; ru.n > 0 {
		r.users[key] = ru
		return
	}
	if grace := int64(s.cfg.presenceGrace()); linger && grace > 0 {
		at := s.clock() + grace
		if s.presence.add(r, at) {
			ru.n, ru.linger = 0, at
			r.users[key] = ru
			s.counters.presenceHeld.Add(1)
			return
		}
	}
	delete(r.users, key)
	s.engine.SetPresent(r.name, u.Author, false)
	if r.remote[key] == nil {
		r.presenceChanged(s, out, key, u.Author, false, nil, 0)
	}
}

// remoteChanged records that p.User is now present in the room on node
// p.Node (in) or no longer, and tells the members when that changes
// whether the user is present at all (with s nil it only records: a room
// being opened has no member). Called under r.mu.
func (r *room) remoteChanged(s *Server, out *outbox, p engine.Present, in bool) {
	key := mux.NameKey(p.User.Name)
	was := r.present(key)
	ru := r.remote[key]
	switch {
	case in && ru == nil:
		if r.remote == nil {
			r.remote = make(map[string]*remoteUser)
		}
		r.remote[key] = &remoteUser{who: p.User, nodes: []string{p.Node}}
	case in:
		if !slices.Contains(ru.nodes, p.Node) {
			ru.nodes = append(ru.nodes, p.Node)
		}
		if ru.linger != 0 {
			ru.linger = 0 // back on another node within the grace
			if s != nil {
				s.counters.presenceKept.Add(1)
			}
		}
	case ru != nil:
		ru.nodes = slices.DeleteFunc(ru.nodes, func(n string) bool { return n == p.Node })
		if len(ru.nodes) == 0 && ru.linger == 0 {
			delete(r.remote, key)
		}
	}
	if now := r.present(key); s != nil && now != was {
		r.presenceChanged(s, out, key, p.User, now, nil, 0)
	}
}

// presenceChanged records that the user of key (who) is now in room r
// (joined) or no longer; out takes the pushes; skipConn and skipSID name
// the joining session. Called under r.mu.
func (r *room) presenceChanged(srv *Server, out *outbox, key string, who engine.Author, joined bool, skipConn *conn, skipSID uint32) {
	iv := int64(srv.cfg.PresenceInterval)
	now := srv.clock()
	if r.pres == nil && (iv == 0 || r.presAt == 0 || now-r.presAt >= iv) {
		r.presAt = now // a quiet room: at once
		ev := mux.EvLeave
		if joined {
			ev = mux.EvJoin
		}
		r.broadcast(out, ev, mux.EncodeBody(mux.Presence{Room: r.name, User: who.Name, Color: who.Color, Display: who.Display}), skipConn, skipSID)
		srv.counters.presencePushes.Add(int64(len(r.members)))
		return
	}
	if r.pres == nil {
		r.pres = &roomPresence{pending: make(map[string]presenceChange)}
		if !srv.presence.add(r, r.presAt+iv) {
			r.pres = nil // the server is stopping: drop it
			return
		}
	}
	pc, ok := r.pres.pending[key]
	if !ok {
		pc.was = !joined // with nothing waiting, members know the state before this change
	}
	pc.who = who
	pc.skipConn, pc.skipSID = nil, 0
	if joined {
		pc.skipConn, pc.skipSID = skipConn, skipSID
	}
	r.pres.pending[key] = pc
	srv.counters.presenceCoalesced.Add(1)
}

// lingerRemote makes the user present only through the dead node lose it,
// but linger for the presence grace (remoteChanged otherwise). Called
// under r.mu.
func (r *room) lingerRemote(s *Server, out *outbox, ru *remoteUser, node string) {
	if grace := int64(s.cfg.presenceGrace()); grace > 0 && len(ru.nodes) == 1 && ru.nodes[0] == node {
		at := s.clock() + grace
		if s.presence.add(r, at) {
			ru.nodes, ru.linger = ru.nodes[:0], at
			s.counters.presenceHeld.Add(1)
			return
		}
	}
	r.remoteChanged(s, out, engine.Present{User: ru.who, Node: node}, false)
}

// expireLinger ends the presence of the users whose grace is over: the
// engine is told of this node's, and the members of any that is now
// present nowhere. Called under r.mu.
func (r *room) expireLinger(srv *Server, out *outbox) {
	now := srv.clock()
	for key, ru := range r.users {
		if ru.n == 0 && ru.linger != 0 && ru.linger <= now {
			delete(r.users, key)
			srv.engine.SetPresent(r.name, ru.u.Author, false)
			if !r.present(key) {
				r.presenceChanged(srv, out, key, ru.u.Author, false, nil, 0)
			}
		}
	}
	for key, ru := range r.remote {
		if len(ru.nodes) == 0 && ru.linger != 0 && ru.linger <= now {
			delete(r.remote, key)
			if !r.present(key) {
				r.presenceChanged(srv, out, key, ru.who, false, nil, 0)
			}
		}
	}
}

// flushPresence pushes the net presence changes waiting in r, leaves
// before joins (so that a name whose user was replaced ends up present),
// each in name order, collecting the connections to write in out; then
// it ends the lingering presences that are due.
func (r *room) flushPresence(srv *Server, out *outbox) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.flushPending(srv, out)
	r.expireLinger(srv, out)
}

// flushPending pushes the net presence changes waiting in r. Called under
// r.mu.
func (r *room) flushPending(srv *Server, out *outbox) {
	p := r.pres
	r.pres = nil
	if p == nil {
		return
	}
	var leaves, joins []presenceChange
	for key, pc := range p.pending {
		in := r.present(key)
		switch {
		case in == pc.was: // back where it was: nothing to tell
		case in:
			joins = append(joins, pc)
		default:
			leaves = append(leaves, pc)
		}
	}
	if len(leaves)+len(joins) == 0 {
		return
	}
	byName := func(cs []presenceChange) {
		sort.Slice(cs, func(i, j int) bool { return cs[i].who.Name < cs[j].who.Name })
	}
	byName(leaves)
	byName(joins)
	push := func(head []byte, pc presenceChange) {
		body := mux.EncodeBody(mux.Presence{Room: r.name, User: pc.who.Name, Color: pc.who.Color, Display: pc.who.Display})
		for c, m := range r.members {
			sids := m.sids
			if c == pc.skipConn {
				ids := without(m.ids, pc.skipSID)
				if len(ids) == 0 {
					continue
				}
				sids = mux.AppendSIDs(nil, ids)
			}
			if c.queueItem(outItem{head: head, sids: sids, body: body}) {
				out.add(c)
			}
			srv.counters.presencePushes.Add(1)
		}
	}
	for _, pc := range leaves {
		push(pushLeave, pc)
	}
	for _, pc := range joins {
		push(pushJoin, pc)
	}
	r.presAt = srv.clock()
}

// presenceFlusher flushes the rooms whose presence changes wait, when
// their interval is over, on one goroutine (like the pacer).
type presenceFlusher struct {
	srv  *Server
	mu   sync.Mutex
	due  dueHeap[*room]
	next int64 // due time the goroutine sleeps until (0: none)
	stop bool
	wake chan struct{}
	done chan struct{}
}

func newPresenceFlusher(s *Server) *presenceFlusher {
	p := &presenceFlusher{srv: s, wake: make(chan struct{}, 1), done: make(chan struct{})}
	go p.run()
	return p
}

// add has r flushed at (server clock, ns). A room is added once per
// waiting set of changes (room.pres). It returns false once the flusher
// has stopped. Called under r.mu: the flusher never holds its mu while it
// locks a room.
func (p *presenceFlusher) add(r *room, at int64) bool {
	p.mu.Lock()
	if p.stop {
		p.mu.Unlock()
		return false
	}
	heap.Push(&p.due, due[*room]{at: at, v: r})
	kick := p.next == 0 || at < p.next
	if kick {
		p.next = at
	}
	p.mu.Unlock()
	if kick {
		select {
		case p.wake <- struct{}{}:
		default:
		}
	}
	return true
}

// run sleeps until the earliest due time, then flushes every due room and
// writes the connections the flushes queued to.
func (p *presenceFlusher) run() {
	defer close(p.done)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var batch []*room
	var out outbox
	for {
		p.mu.Lock()
		if p.stop {
			p.due = nil
			p.mu.Unlock()
			return
		}
		now := p.srv.clock()
		for len(p.due) > 0 && p.due[0].at <= now {
			batch = append(batch, heap.Pop(&p.due).(due[*room]).v)
		}
		p.next = 0
		if len(p.due) > 0 {
			p.next = p.due[0].at
		}
		next := p.next
		p.mu.Unlock()
		for i, r := range batch {
			r.flushPresence(p.srv, &out)
			batch[i] = nil
		}
		batch = batch[:0]
		out.flush()
		if next != 0 {
			timer.Reset(time.Duration(next - p.srv.clock()))
		}
		select {
		case <-p.wake:
		case <-timer.C:
		}
		timer.Stop()
	}
}

// close stops the flusher; changes still waiting are dropped (the server
// is going away) and later adds return false.
func (p *presenceFlusher) close() {
	p.mu.Lock()
	p.stop = true
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
	<-p.done
}
