package server

import (
	"slices"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"imload/mux"
	"imload/server/engine"
)

// user is a user name as this node sees it: the user's sessions on this
// node (the engine holds the name itself: its token, its connections on
// every node, its reservation). A user is in hub.users while it has a
// session here. Users have few sessions (their tabs), so a slice beats a
// map in memory. sessions is guarded by hub.usersMu; the rest never
// changes.
type user struct {
	// Author is the user's name and colour, shared by the messages its
	// sessions here send (the engine keeps the pointer in its entries).
	engine.Author
	token    string // the token the engine gave
	gen      string // its generation (engine.Claimed.Gen): whose conversations it reads
	sessions []*session
}

// key is the user's key (mux.NameKey of its name: no allocation for a
// name in lower-case ASCII).
func (u *user) key() string { return mux.NameKey(u.Name) }

// session is one logical session (a browser tab) on a connection. Its
// fields are used only by the goroutine that reads its connection, except
// sid and c, which never change.
type session struct {
	sid     uint32
	c       *conn
	user    *user
	rooms   []*room       // few per session: a slice is smaller than a map
	limiter *rate.Limiter // made on the first send
	tok     *sessionToken // its token (--auth jwt); nil: none
}

// ref names the session for the engine.
func (s *session) ref() engine.SessionRef {
	return engine.SessionRef{Conn: s.c.ref(), SID: s.sid}
}

// room returns the session's room of that name, or nil.
func (s *session) room(name string) *room {
	for _, r := range s.rooms {
		if r.name == name {
			return r
		}
	}
	return nil
}

// dropRoom removes r from the session's rooms.
func (s *session) dropRoom(r *room) {
	for i, x := range s.rooms {
		if x == r {
			s.rooms = append(s.rooms[:i], s.rooms[i+1:]...)
			return
		}
	}
}

// hub holds what this node knows of rooms, users and connections: the
// rooms it opened (their logs are the engine's), the users with sessions
// here, the open connections. Lock order: roomsMu before room.mu;
// usersMu and room.mu are never held together; conn.qmu is innermost.
type hub struct {
	cfg      *Config
	eng      engine.Engine
	counters *counters

	roomsMu sync.RWMutex
	rooms   map[string]*room
	opening int    // rooms being made (Open with create under way), counted against MaxRooms
	drops   uint64 // rooms dropped so far (adopt refuses a log opened before a drop)

	usersMu sync.Mutex
	users   map[string]*user // by mux.NameKey: the users with a session on this node

	connsMu sync.Mutex
	conns   map[*conn]struct{}
}

func newHub(cfg *Config, eng engine.Engine, c *counters) *hub {
	return &hub{cfg: cfg, eng: eng, counters: c,
		rooms: make(map[string]*room), users: make(map[string]*user), conns: make(map[*conn]struct{})}
}

func (h *hub) roomCount() int {
	h.roomsMu.RLock()
	defer h.roomsMu.RUnlock()
	return len(h.rooms)
}

// room returns the open room name, or nil.
func (h *hub) room(name string) *room {
	h.roomsMu.RLock()
	defer h.roomsMu.RUnlock()
	return h.rooms[name]
}

// dropGen is the count of rooms dropped so far: an Open issued at one
// count and answered at another may give a log the sweep has dropped.
func (h *hub) dropGen() uint64 {
	h.roomsMu.RLock()
	defer h.roomsMu.RUnlock()
	return h.drops
}

// adopt makes the log the engine opened (the Open issued when dropGen was
// gen) the node's room, or returns the room the node holds already
// (dropping the second log, if it is one). What the engine learnt before
// the room was here is taken at once. It returns nil, dropping the log,
// when the node holds no such room and rooms were dropped since the Open:
// the log may be one the engine was told to drop (the caller opens
// again). For the local engine a room the node does not hold has no
// history, so dropping its log loses nothing.
func (s *Server) adopt(name string, o engine.Opened, gen uint64) *room {
	h := s.hub
	h.roomsMu.Lock()
	if r := h.rooms[name]; r != nil {
		if r.log != o.Log {
			h.eng.Drop(name, o.Log)
		}
		h.roomsMu.Unlock()
		return r
	}
	if h.drops != gen {
		h.eng.Drop(name, o.Log)
		h.roomsMu.Unlock()
		return nil
	}
	r := newRoom(name, o.Log)
	for _, p := range o.Present {
		r.remoteChanged(nil, nil, p, true) // no member yet: recorded only
	}
	h.rooms[name] = r
	h.roomsMu.Unlock()
	r.mu.Lock()
	r.take(s, nil) // no member yet: nothing is pushed
	r.mu.Unlock()
	return r
}

// reserveRoom counts a room about to be made against MaxRooms and the
// connection's creation rate (allow), or refuses it; unreserveRoom ends
// the count once the engine has answered.
func (h *hub) reserveRoom(allow func() bool) error {
	h.roomsMu.Lock()
	defer h.roomsMu.Unlock()
	if max := h.cfg.MaxRooms; max > 0 && len(h.rooms)+h.opening >= max {
		h.counters.roomsRefused.Add(1)
		return mux.Errorf(mux.CodeUnavailable, mux.ErrTooManyRooms, "the server holds its maximum of %d rooms: join an existing room or try later", max)
	}
	if allow != nil && !allow() {
		h.counters.roomsRefused.Add(1)
		return mux.Errorf(mux.CodeRateLimited, mux.ErrRoomRateLimited, "this connection creates rooms faster than %g a second: slow down", h.cfg.RoomCreateRate)
	}
	h.opening++
	return nil
}

func (h *hub) unreserveRoom() {
	h.roomsMu.Lock()
	h.opening--
	h.roomsMu.Unlock()
}

// sweep expires old history and drops the rooms with no member here whose
// log is idle (engine.Log.Idle: for the local engine, no history and
// nothing waiting for the store). It never holds roomsMu for long: it
// looks at each room under the room's lock alone, then drops the idle
// ones in chunks.
func (h *hub) sweep(now time.Time) {
	cutoff := now.Add(-h.cfg.HistoryAge).UnixMilli()
	h.roomsMu.RLock()
	all := make([]*room, 0, len(h.rooms))
	for _, r := range h.rooms {
		all = append(all, r)
	}
	h.roomsMu.RUnlock()
	var idle []*room
	for _, r := range all {
		r.mu.Lock()
		if r.idle(cutoff) {
			idle = append(idle, r)
		}
		r.mu.Unlock()
	}
	const chunk = 256
	for len(idle) > 0 {
		part := idle[:min(chunk, len(idle))]
		idle = idle[len(part):]
		h.roomsMu.Lock()
		for _, r := range part {
			r.mu.Lock()
			if h.rooms[r.name] == r && r.idle(cutoff) {
				delete(h.rooms, r.name)
				h.drops++
				h.eng.Drop(r.name, r.log)
			}
			r.mu.Unlock()
		}
		h.roomsMu.Unlock()
	}
}

// addSession makes s a session of the user the engine claimed for it.
func (h *hub) addSession(s *session, cl engine.Claimed) *user {
	key := mux.NameKey(cl.User.Name)
	h.usersMu.Lock()
	defer h.usersMu.Unlock()
	u := h.users[key]
	if u == nil {
		u = &user{Author: cl.User, token: cl.Token, gen: cl.Gen}
		h.users[key] = u
	}
	u.sessions = append(u.sessions, s)
	s.user = u
	return u
}

// removeSession removes s from its user on this node; it reports whether
// s was one of the user's sessions (the engine is then to release it).
func (h *hub) removeSession(s *session) bool {
	u := s.user
	if u == nil {
		return false
	}
	h.usersMu.Lock()
	defer h.usersMu.Unlock()
	i := slices.Index(u.sessions, s)
	if i < 0 {
		return false
	}
	u.sessions = slices.Delete(u.sessions, i, i+1)
	if key := u.key(); len(u.sessions) == 0 && h.users[key] == u {
		delete(h.users, key)
	}
	return true
}

func (h *hub) addConn(c *conn) {
	h.connsMu.Lock()
	h.conns[c] = struct{}{}
	h.connsMu.Unlock()
}

func (h *hub) removeConn(c *conn) {
	h.connsMu.Lock()
	delete(h.conns, c)
	h.connsMu.Unlock()
}

// userConn returns this node's connection id holding a session of user
// name, or nil: a connection to kick (the engine names them by user).
func (h *hub) userConn(name string, id uint64) *conn {
	h.usersMu.Lock()
	defer h.usersMu.Unlock()
	if u := h.users[mux.NameKey(name)]; u != nil {
		for _, s := range u.sessions {
			if s.c.id == id {
				return s.c
			}
		}
	}
	return nil
}

// userSIDs returns the sessions of user name on this node's connection
// id, and the connection's time (Unix ms; since when it is not here).
func (h *hub) userSIDs(name string, id uint64, since int64) ([]uint32, int64) {
	h.usersMu.Lock()
	defer h.usersMu.Unlock()
	var sids []uint32
	if u := h.users[mux.NameKey(name)]; u != nil {
		for _, s := range u.sessions {
			if s.c.id == id {
				sids = append(sids, s.sid)
				since = time.Unix(0, s.c.since).UnixMilli()
			}
		}
	}
	slices.Sort(sids)
	return sids, since
}

func (h *hub) allConns() []*conn {
	h.connsMu.Lock()
	defer h.connsMu.Unlock()
	out := make([]*conn, 0, len(h.conns))
	for c := range h.conns {
		out = append(out, c)
	}
	return out
}

func (h *hub) connCount() int {
	h.connsMu.Lock()
	defer h.connsMu.Unlock()
	return len(h.conns)
}
