package server

import (
	"errors"
	"sort"
	"strconv"
	"time"

	"golang.org/x/time/rate"

	"imload/mux"
	"imload/server/engine"
)

// The commands on rooms: join, leave, send, history, who.

// openRoom finds room name for c's command and goes on with it (k): an
// open room at once; else the engine opens it (await.go), and, with
// create, makes it if it does not exist, within the node's bounds on rooms
// (MaxRooms, the connection's creation rate). Called under c.readMu.
func (c *conn) openRoom(name string, create bool, k func(*room, error)) {
	srv := c.srv
	if r := srv.hub.room(name); r != nil {
		k(r, nil)
		return
	}
	adopt := func(o engine.Opened, gen uint64) {
		if r := srv.adopt(name, o, gen); r != nil {
			k(r, nil)
			return
		}
		c.openRoom(name, create, k) // rooms were dropped meanwhile: open again
	}
	gen := srv.hub.dropGen()
	await(c, func(done func(engine.Opened, error)) { srv.engine.Open(name, false, done) }, func(o engine.Opened, err error) {
		switch {
		case err == nil:
			adopt(o, gen)
		case !create || !errors.Is(err, engine.ErrUnknownRoom):
			k(nil, roomRefused(name, err))
		default:
			if err := srv.hub.reserveRoom(c.allowRoomCreate); err != nil {
				k(nil, err)
				return
			}
			gen := srv.hub.dropGen()
			await(c, func(done func(engine.Opened, error)) { srv.engine.Open(name, true, done) }, func(o engine.Opened, err error) {
				srv.hub.unreserveRoom()
				if err != nil {
					k(nil, roomRefused(name, err))
					return
				}
				adopt(o, gen)
			})
		}
	})
}

// allowRoomCreate reports whether c may create another room now (its
// room-creation rate). Called by the holder of c.readMu.
func (c *conn) allowRoomCreate() bool {
	if c.roomLimiter == nil {
		c.roomLimiter = rate.NewLimiter(rate.Limit(c.srv.cfg.RoomCreateRate), c.srv.cfg.RoomCreateBurst)
	}
	return c.roomLimiter.Allow()
}

func (c *conn) join(s *session, f *mux.Frame) ([]byte, error) {
	var req mux.JoinReq
	if err := mux.BodyOf(f.Body, &req); err != nil {
		return nil, err
	}
	cfg := &c.srv.cfg
	if err := req.Validate(cfg.Limits); err != nil {
		return nil, err
	}
	group, err := c.joinGroup(s, f.SID, &req)
	if err != nil {
		return nil, err
	}
	// joined[i]: group[i] is in the room already (not an error, and not
	// counted against its room limit).
	joined := make([]bool, len(group))
	for i, g := range group {
		if err := c.srv.mayRead(g, req.Room); err != nil {
			return nil, err
		}
		joined[i] = g.room(req.Room) != nil
		if !joined[i] && len(g.rooms) >= cfg.Limits.MaxRoomsPerSession {
			return nil, mux.Errorf(mux.CodeBadRequest, mux.ErrBadRequest, "session %d is already in %d rooms", g.sid, cfg.Limits.MaxRoomsPerSession)
		}
	}
	j := &joining{group: group, joined: joined, req: req, sid: f.SID, seq: f.Seq}
	c.openRoom(req.Room, true, func(r *room, err error) { c.joinRoom(j, r, err) })
	return nil, nil
}

// joining is a join between the checks and the room: what the reply
// needs once the room is open.
type joining struct {
	group  []*session
	joined []bool
	req    mux.JoinReq
	sid    uint32
	seq    uint64
}

// joinRoom makes every session of the group a member of r under the
// room's lock, before the reply is queued: the pushes that follow it are
// for all.
func (c *conn) joinRoom(j *joining, r *room, err error) {
	if err != nil {
		c.replyErrTo(j.sid, j.seq, err)
		return
	}
	if c.ended.Load() {
		return // its sessions are gone
	}
	if c.session(j.sid) != j.group[0] { // detached meanwhile: token expiry, the server API
		c.replyErrTo(j.sid, j.seq, mux.Errorf(mux.CodeNotAttached, mux.ErrNotAttached, "session %d is not attached", j.sid))
		return
	}
	for i := 1; i < len(j.group); {
		if g := j.group[i]; c.session(g.sid) != g {
			j.group = append(j.group[:i], j.group[i+1:]...)
			j.joined = append(j.joined[:i], j.joined[i+1:]...)
			continue
		}
		i++
	}
	cfg := &c.srv.cfg
	r.mu.Lock()
	if c.srv.hub.room(r.name) != r { // dropped by the janitor meanwhile: open it again
		r.mu.Unlock()
		c.openRoom(r.name, true, func(r *room, err error) { c.joinRoom(j, r, err) })
		return
	}
	defer r.mu.Unlock()
	for i, g := range j.group {
		if r.addSession(c, g.sid) {
			if g.user == nil {
				r.anon++
			} else {
				r.userJoined(c.srv, c.out, g.user, c, g.sid)
			}
		}
		if !j.joined[i] {
			g.rooms = append(g.rooms, r)
		}
	}
	req := &j.req
	r.log.Expire(time.Now().Add(-cfg.HistoryAge).UnixMilli())
	resume := req.Epoch != "" || req.Offset > 0
	var entries []*engine.Entry
	reset, more, newest := false, false, true
	if resume && r.log.Resumable(req.Epoch, req.Offset, cfg.Limits.MaxHistory) {
		entries, more = r.log.After(req.Offset, cfg.Limits.MaxHistory)
		newest = false // the client goes on after the last one it gets
	} else {
		reset = resume
		entries, more = r.log.Last(min(req.History, cfg.Limits.MaxHistory))
	}
	var sids []uint32 // listed in the reply only when the join named others
	if len(j.group) > 1 {
		sids = make([]uint32, len(j.group))
		for i, g := range j.group {
			sids[i] = g.sid
		}
	}
	body := c.srv.appendRoomReply(nil, c.srv.replyBudget(c), r, reset, more, newest, entries, false, sids)
	c.srv.counters.joins.Add(1)
	c.srv.counters.joinSessions.Add(int64(len(j.group)))
	c.replyTo(j.sid, j.seq, body)
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
// It carries as many of entries (oldest first) as fit in budget bytes (a
// connection's replyBudget):
// the newest of them if newest (a window of the latest messages: more then
// means older ones remain), else the oldest (a resume, which goes on after
// its last message: more then means newer ones remain). more comes in set
// when the window left some out already. sids, if any, are the sessions a
// join reply is for (a join that named several). Called under r.mu.
func (s *Server) appendRoomReply(dst []byte, budget int, r *room, reset, more, newest bool, entries []*engine.Entry, history bool, sids []uint32) []byte {
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
	dst = mux.AppendString(dst, r.log.Epoch())
	dst = append(dst, `,"top":`...)
	dst = strconv.AppendUint(dst, r.log.Top(), 10)
	if history {
		dst = append(dst, `,"first":`...) // the oldest offset a client may ask for
		dst = strconv.AppendUint(dst, r.log.First(), 10)
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
	c.srv.leaveRoom(s, r, false)
	s.dropRoom(r)
	return []byte("{}"), nil
}

func unknownRoom(name string) error {
	return mux.Errorf(mux.CodeUnknownRoom, mux.ErrUnknownRoom, "room %q does not exist", name)
}

// leaveRoom removes s from r and tells the room when its user is gone
// (after the presence grace with linger: its connection was lost). The
// caller holds s.c.readMu.
func (srv *Server) leaveRoom(s *session, r *room, linger bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.removeSession(s.c, s.sid) {
		return
	}
	if s.user == nil {
		r.anon--
		return
	}
	r.userLeft(srv, s.c.out, s.user, linger)
}

// send publishes a message to the room's log under the room's lock, then
// takes the log: the reply and the pushes of what became visible (with
// the local engine without a durable store, this message, at once) are
// queued under the same lock.
func (c *conn) send(s *session, f *mux.Frame) ([]byte, error) {
	var req mux.SendReq
	if err := mux.BodyOf(f.Body, &req); err != nil {
		return nil, err
	}
	cfg := &c.srv.cfg
	if err := req.Validate(cfg.Limits); err != nil {
		return nil, err
	}
	r := s.room(req.Room)
	if r == nil {
		if c.srv.hub.room(req.Room) == nil {
			return nil, unknownRoom(req.Room)
		}
		return nil, mux.Errorf(mux.CodeNotMember, mux.ErrNotMember, "join room %q before sending to it", req.Room)
	}
	if err := c.checkSender(s); err != nil {
		return nil, err
	}
	now := time.Now().UnixMilli()
	var d *engine.Draft
	if c.out != nil {
		d = &c.out.draft // the worker's: no allocation per send
	} else {
		d = new(engine.Draft)
	}
	*d = engine.Draft{Who: &s.user.Author, Text: req.Text, CID: req.CID, TS: now}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.log.Expire(now - cfg.HistoryAge.Milliseconds())
	ticket, err := r.log.Publish(d)
	*d = engine.Draft{}
	if err != nil {
		c.srv.counters.storeRefused.Add(1)
		return nil, engineRefused(err)
	}
	r.wait(waiter{ticket: ticket, c: c, sid: f.SID, seq: f.Seq})
	r.take(c.srv, c.out)
	return nil, nil
}

func (c *conn) history(s *session, f *mux.Frame) ([]byte, error) {
	var req mux.HistoryReq
	if err := mux.BodyOf(f.Body, &req); err != nil {
		return nil, err
	}
	if err := req.Validate(c.srv.cfg.Limits); err != nil {
		return nil, err
	}
	if err := c.srv.mayRead(s, req.Room); err != nil {
		return nil, err
	}
	sid, seq := f.SID, f.Seq
	c.openRoom(req.Room, false, func(r *room, err error) {
		if err != nil {
			c.replyErrTo(sid, seq, err)
			return
		}
		c.replyTo(sid, seq, c.historyReply(r, &req))
	})
	return nil, nil
}

// historyReply builds the reply to a history command on r.
func (c *conn) historyReply(r *room, req *mux.HistoryReq) []byte {
	return c.srv.historyBody(r, req, c.srv.replyBudget(c))
}

// historyBody builds the body of a history reply on r, its messages
// within budget bytes (the command's, and the server API's).
func (s *Server) historyBody(r *room, req *mux.HistoryReq, budget int) []byte {
	cfg := &s.cfg
	limit := req.Limit
	if limit == 0 {
		limit = 50
	}
	limit = min(limit, cfg.Limits.MaxHistory)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.log.Expire(time.Now().Add(-cfg.HistoryAge).UnixMilli())
	var entries []*engine.Entry
	reset, more, newest := false, false, true
	switch {
	case req.After > 0 || req.Epoch != "":
		if r.log.Resumable(req.Epoch, req.After, int(^uint(0)>>1)) {
			entries, more = r.log.After(req.After, limit)
			newest = false
		} else {
			reset = true
			entries, more = r.log.Last(limit)
		}
	case req.Before > 0:
		entries, more = r.log.Before(req.Before, limit)
	default:
		entries, more = r.log.Last(limit)
	}
	return s.appendRoomReply(nil, budget, r, reset, more, newest, entries, true, nil)
}

func (c *conn) who(s *session, f *mux.Frame) ([]byte, error) {
	var req mux.WhoReq
	if err := mux.BodyOf(f.Body, &req); err != nil {
		return nil, err
	}
	if err := req.Validate(c.srv.cfg.Limits); err != nil {
		return nil, err
	}
	if err := c.srv.mayRead(s, req.Room); err != nil {
		return nil, err
	}
	if r := c.srv.hub.room(req.Room); r != nil {
		return r.who(), nil
	}
	// Not open here: who is in it elsewhere, as the engine knows.
	sid, seq := f.SID, f.Seq
	await(c, func(done func([]engine.Present, error)) { c.srv.engine.Who(req.Room, done) }, func(ps []engine.Present, err error) {
		if err != nil {
			c.replyErrTo(sid, seq, roomRefused(req.Room, err))
			return
		}
		c.replyTo(sid, seq, whoBody(req.Room, ps))
	})
	return nil, nil
}

// whoBody is the body of a who reply for room from the engine's presence
// (a room not open here).
func whoBody(room string, ps []engine.Present) []byte {
	resp := mux.WhoResp{Room: room, Users: make([]mux.User, 0, len(ps))}
	seen := make(map[string]bool, len(ps))
	for _, p := range ps {
		if key := mux.NameKey(p.User.Name); !seen[key] {
			seen[key] = true
			resp.Users = append(resp.Users, mux.User{Name: p.User.Name, Color: p.User.Color, Display: p.User.Display})
		}
	}
	sortUsers(resp.Users)
	return mux.EncodeBody(resp)
}

// who is the body of a who reply for r: the users present on any node;
// anonymous counts this node's anonymous sessions.
func (r *room) who() []byte {
	r.mu.Lock()
	resp := mux.WhoResp{Room: r.name, Users: make([]mux.User, 0, len(r.users)+len(r.remote)), Anonymous: r.anon}
	for _, ru := range r.users {
		resp.Users = append(resp.Users, mux.User{Name: ru.u.Name, Color: ru.u.Color, Display: ru.u.Display})
	}
	for key, ru := range r.remote {
		if _, here := r.users[key]; !here {
			resp.Users = append(resp.Users, mux.User{Name: ru.who.Name, Color: ru.who.Color, Display: ru.who.Display})
		}
	}
	r.mu.Unlock()
	sortUsers(resp.Users)
	return mux.EncodeBody(resp)
}

func sortUsers(us []mux.User) {
	sort.Slice(us, func(i, j int) bool { return us[i].Name < us[j].Name })
}
