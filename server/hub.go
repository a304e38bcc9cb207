package server

import (
	"context"
	"slices"
	"sort"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"imload/mux"
	"imload/server/engine"
	"imload/server/store"
)

// user is a user name and its sessions on every connection: online while
// it has sessions, then reserved to its token for a while (names.go).
// Users have few sessions (their tabs), so a slice beats a map in memory.
// Everything but name, key, color and author is guarded by hub.usersMu.
type user struct {
	name, color, token string
	key                string         // mux.NameKey(name): the name's key in hub.users
	author             *engine.Author // name and colour, shared by the user's retained messages
	sessions           []*session
	offAt              int64         // Unix ns the last session went (0: online or forgotten)
	queued             bool          // in hub.reserved
	dmIn               *rate.Limiter // DMs this user receives (made on the first)
}

// hasConn reports whether one of the user's sessions is on c.
func (u *user) hasConn(c *conn) bool {
	for _, s := range u.sessions {
		if s.c == c {
			return true
		}
	}
	return false
}

// conns returns the distinct connections of the user's sessions.
func (u *user) conns() []*conn {
	out := make([]*conn, 0, len(u.sessions))
	for _, s := range u.sessions {
		if !slices.Contains(out, s.c) {
			out = append(out, s.c)
		}
	}
	return out
}

// session is one logical session (a browser tab) on a connection. Its
// fields are used only by the goroutine that reads its connection, except
// sid and c, which never change.
type session struct {
	sid     uint32
	c       *conn
	user    *user
	rooms   []*room       // few per session: a slice is smaller than a map
	limiter *rate.Limiter // made on the first send
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

// hub holds rooms and users. Lock order: roomsMu before room.mu; usersMu and
// room.mu are never held together; conn.qmu is innermost.
type hub struct {
	cfg      *Config
	store    store.Store
	counters *counters
	durable  bool // messages are released once committed (release.go)

	roomsMu sync.RWMutex
	rooms   map[string]*room

	usersMu       sync.Mutex
	users         map[string]*user // by mux.NameKey: online and reserved users
	online        int              // users with a session
	reservedNames int              // users without one, holding their name (names.go)
	reserved      reservedFIFO
	dmID          uint64

	connsMu sync.Mutex
	conns   map[*conn]struct{}

	// delMu guards toDelete: rooms the sweep deleted, for the store to
	// forget (feedDeletions).
	delMu    sync.Mutex
	toDelete []deletion
}

func newHub(cfg *Config, st store.Store, c *counters) *hub {
	return &hub{cfg: cfg, store: st, counters: c, durable: cfg.durable(),
		rooms: make(map[string]*room), users: make(map[string]*user), conns: make(map[*conn]struct{})}
}

// load fills the hub with the rooms of the store.
func (h *hub) load(ctx context.Context) error {
	rooms, err := h.store.Load(ctx)
	if err != nil {
		return err
	}
	cutoff := time.Now().Add(-h.cfg.HistoryAge).UnixMilli()
	authors := make(map[engine.Author]*engine.Author) // one per sender, shared by the rooms
	for _, sr := range rooms {
		if !mux.ValidRoom(sr.Name) {
			continue
		}
		r := newRoom(sr.Name, sr.Epoch)
		for _, m := range sr.Messages {
			if m.TS < cutoff || (r.top != 0 && m.Offset != r.top+1) {
				continue
			}
			who := authors[engine.Author{Name: m.From, Color: m.Color}]
			if who == nil {
				who = &engine.Author{Name: m.From, Color: m.Color}
				authors[*who] = who
			}
			r.add(&m, who, h.cfg.HistoryMax)
			r.top, r.released = m.Offset, m.Offset
		}
		if r.hist.Len() == 0 {
			// Without messages the room's last offset is unknown: the
			// room is gone, and a later join makes it anew with a new epoch.
			_ = h.store.DeleteRoom(sr.Name, sr.Epoch)
			continue
		}
		h.rooms[sr.Name] = r
	}
	return nil
}

// userCount is the number of online users.
func (h *hub) userCount() int {
	h.usersMu.Lock()
	defer h.usersMu.Unlock()
	return h.online
}

func (h *hub) roomCount() int {
	h.roomsMu.RLock()
	defer h.roomsMu.RUnlock()
	return len(h.rooms)
}

func (h *hub) room(name string) *room {
	h.roomsMu.RLock()
	defer h.roomsMu.RUnlock()
	return h.rooms[name]
}

// lockRoom returns the room, locked and not deleted. A room that does not
// exist is created if allow (the caller's room-creation limit) lets it,
// the server holds fewer than MaxRooms and the store takes its record.
func (h *hub) lockRoom(name string, allow func() bool) (*room, error) {
	for {
		r := h.room(name)
		if r == nil {
			var err error
			if r, err = h.createRoom(name, allow); err != nil {
				return nil, err
			}
		}
		r.mu.Lock()
		if h.room(name) == r {
			return r, nil
		}
		r.mu.Unlock() // deleted by the janitor meanwhile: look again
	}
}

// createRoom makes room name, or returns the one made meanwhile.
func (h *hub) createRoom(name string, allow func() bool) (*room, error) {
	h.roomsMu.Lock()
	defer h.roomsMu.Unlock()
	if r := h.rooms[name]; r != nil {
		return r, nil
	}
	if max := h.cfg.MaxRooms; max > 0 && len(h.rooms) >= max {
		h.counters.roomsRefused.Add(1)
		return nil, mux.Errorf(mux.CodeUnavailable, mux.ErrTooManyRooms, "the server holds its maximum of %d rooms: join an existing room or try later", max)
	}
	if allow != nil && !allow() {
		h.counters.roomsRefused.Add(1)
		return nil, mux.Errorf(mux.CodeRateLimited, mux.ErrRoomRateLimited, "this connection creates rooms faster than %g a second: slow down", h.cfg.RoomCreateRate)
	}
	r := newRoom(name, randomID(6))
	// A non-blocking enqueue, under roomsMu so that a room deleted and
	// made again reaches the store in that order.
	if err := h.store.CreateRoom(name, r.epoch); err != nil {
		return nil, storeRefused(err)
	}
	h.rooms[name] = r
	return r, nil
}

// sweep expires old history and deletes rooms with no members, no history
// and nothing waiting for the store. It never holds roomsMu for long: it
// looks at each room under the room's lock alone, then deletes the idle
// ones in chunks. The store is told later, a few deletions at a time
// (feedDeletions): a deletion is of the room's epoch only, so it is right
// in any order with what comes after (the room made again has another
// epoch), and many rooms expiring at once must not fill the store's queue
// ahead of messages.
func (h *hub) sweep(now time.Time) {
	h.roomsMu.RLock()
	all := make([]*room, 0, len(h.rooms))
	for _, r := range h.rooms {
		all = append(all, r)
	}
	h.roomsMu.RUnlock()
	var idle []*room
	for _, r := range all {
		r.mu.Lock()
		if r.idle(now, h.cfg.HistoryAge) {
			idle = append(idle, r)
		}
		r.mu.Unlock()
	}
	const chunk = 256
	for len(idle) > 0 {
		part := idle[:min(chunk, len(idle))]
		idle = idle[len(part):]
		var gone []deletion
		h.roomsMu.Lock()
		for _, r := range part {
			r.mu.Lock()
			if h.rooms[r.name] == r && r.idle(now, h.cfg.HistoryAge) {
				delete(h.rooms, r.name)
				gone = append(gone, deletion{r.name, r.epoch})
			}
			r.mu.Unlock()
		}
		h.roomsMu.Unlock()
		h.delMu.Lock()
		h.toDelete = append(h.toDelete, gone...)
		h.delMu.Unlock()
	}
}

// deletion is a room deleted from the hub that the store is still to
// forget.
type deletion struct{ name, epoch string }

// maxDeletionsPerFeed is how many deletions feedDeletions hands the store
// at a time (every 100 ms): a mass expiry of rooms reaches the disk at a
// pace that leaves the store's transactions short for messages.
const maxDeletionsPerFeed = 256

// feedDeletions hands the store the next deletions of rooms the sweep has
// deleted; what the store refuses (its queue is busy) waits for the next
// feed. The backlog holds at most what the hub held (MaxRooms).
func (h *hub) feedDeletions() {
	h.delMu.Lock()
	defer h.delMu.Unlock()
	n := 0
	for n < len(h.toDelete) && n < maxDeletionsPerFeed {
		d := h.toDelete[n]
		if h.store.DeleteRoom(d.name, d.epoch) != nil {
			break
		}
		n++
	}
	if n == 0 {
		return
	}
	rest := copy(h.toDelete, h.toDelete[n:])
	clear(h.toDelete[rest:])
	h.toDelete = h.toDelete[:rest]
	if rest == 0 && cap(h.toDelete) > 4096 {
		h.toDelete = nil // a mass expiry: let its array go
	}
}

// claim makes s a session of user name. It fails with 409 when the name
// (compared without regard to case) is online on another connection, or
// reserved after its owner went, and the token does not match. It returns
// the user and a connection to kick when the user now has too many.
func (h *hub) claim(s *session, name, token string) (*user, *conn, error) {
	key := mux.NameKey(name)
	now := time.Now().UnixNano()
	h.usersMu.Lock()
	defer h.usersMu.Unlock()
	h.sweepNames(now)
	u := h.lookupUser(key, now)
	if u == nil {
		if token == "" {
			token = randomID(16)
		}
		u = &user{name: name, key: key, color: colorOf(name), token: token}
		u.author = &engine.Author{Name: u.name, Color: u.color}
		h.users[key] = u
	} else if !u.hasConn(s.c) && token != u.token {
		left := time.Duration(u.offAt + int64(h.cfg.nameGrace()) - now)
		return nil, nil, nameTaken(u.name, !u.online(), left)
	}
	if !u.online() {
		if u.offAt != 0 { // the owner is back: the reservation ends
			u.offAt = 0
			h.reservedNames--
		}
		h.online++
	}
	newConn := !u.hasConn(s.c)
	u.sessions = append(u.sessions, s)
	s.user = u
	var kick *conn
	if max := h.cfg.MaxConnsPerUser; max > 0 && newConn {
		if conns := u.conns(); len(conns) > max {
			for _, c := range conns {
				if c != s.c && (kick == nil || c.id < kick.id) {
					kick = c
				}
			}
		}
	}
	return u, kick, nil
}

// release removes s from its user. With its last session the name is
// reserved to the user's token for the grace period (names.go).
func (h *hub) release(s *session) {
	u := s.user
	if u == nil {
		return
	}
	h.usersMu.Lock()
	defer h.usersMu.Unlock()
	i := slices.Index(u.sessions, s)
	if i < 0 {
		return
	}
	u.sessions = slices.Delete(u.sessions, i, i+1)
	if len(u.sessions) == 0 && h.users[u.key] == u {
		h.reserve(u, time.Now().UnixNano())
	}
}

// dm pushes a private message to every session of the target user and to
// the sender's other sessions. It returns the message and the number of
// sessions it went to.
func (h *hub) dm(from *session, req *mux.DMReq) (mux.DM, int, error) {
	now := time.Now()
	h.usersMu.Lock()
	defer h.usersMu.Unlock()
	to := h.lookupUser(mux.NameKey(req.To), now.UnixNano())
	if to == nil {
		return mux.DM{}, 0, mux.Errorf(mux.CodeUserOffline, mux.ErrUserOffline, "user %q is not online", req.To)
	}
	if !to.online() {
		// Reserved for its owner: nothing goes to anyone else meanwhile.
		return mux.DM{}, 0, mux.Errorf(mux.CodeUserOffline, mux.ErrUserOffline, "user %q is offline (the name is reserved for its owner; private messages are not kept)", to.name)
	}
	if err := h.admitDM(to, now); err != nil {
		return mux.DM{}, 0, err
	}
	h.dmID++
	m := mux.DM{ID: h.dmID, From: from.user.name, To: to.name, Color: from.user.color, Text: req.Text, TS: now.UnixMilli(), CID: req.CID}
	body := mux.EncodeBody(m)
	targets := make(map[*conn][]uint32, len(to.sessions)+len(from.user.sessions))
	for _, s := range to.sessions {
		targets[s.c] = append(targets[s.c], s.sid)
	}
	if from.user != to {
		for _, s := range from.user.sessions {
			if s != from {
				targets[s.c] = append(targets[s.c], s.sid)
			}
		}
	} else {
		targets[from.c] = without(targets[from.c], from.sid)
	}
	n := 0
	for c, sids := range targets {
		if len(sids) == 0 {
			continue
		}
		sort.Slice(sids, func(i, j int) bool { return sids[i] < sids[j] })
		from.c.pushTo(c, outItem{head: pushDM, sids: mux.AppendSIDs(nil, sids), body: body})
		n += len(sids)
	}
	h.counters.dmsIn.Add(1)
	h.counters.dmsOut.Add(int64(n))
	return m, n, nil
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
