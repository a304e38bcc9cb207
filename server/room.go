package server

import (
	"sync"
	"sync/atomic"

	"imload/mux"
	"imload/server/engine"
)

// member is the part of a room that one connection takes: the sessions of
// that connection in the room, and the same as a JSON array, cached for
// pushes and rebuilt (never modified in place: queued pushes share it) when
// they change. A fan-out then queues three shared slices per connection.
type member struct {
	ids  []uint32
	sids []byte
}

// Push prefixes, built once.
var (
	pushMsg   = mux.PushPrefix(mux.EvMsg)
	pushDM    = mux.PushPrefix(mux.EvDM)
	pushJoin  = mux.PushPrefix(mux.EvJoin)
	pushLeave = mux.PushPrefix(mux.EvLeave)
)

func pushPrefix(ev string) []byte {
	switch ev {
	case mux.EvMsg:
		return pushMsg
	case mux.EvDM:
		return pushDM
	case mux.EvJoin:
		return pushJoin
	case mux.EvLeave:
		return pushLeave
	}
	return mux.PushPrefix(ev)
}

// room is a chat room as this node holds it: its log (the engine's: the
// room's order and history), its members on this node by connection, who
// is present (this node's users, and the users present on other nodes),
// and the senders waiting for the outcome of their publishes. mu orders
// everything that happens in the room on this node: messages become
// visible (the log's Take) and are pushed under it, so every connection
// sees one order, and a join reply is queued before any push of a later
// message.
type room struct {
	name string
	// ready is set while the room waits in Server.ready for a worker to
	// take its log (release.go).
	ready atomic.Bool

	mu      sync.Mutex
	log     engine.Log
	members map[*conn]*member
	users   map[string]roomUser    // this node's named users in the room, by mux.NameKey
	remote  map[string]*remoteUser // users present on other nodes only through them (nil: none)
	anon    int                    // anonymous sessions
	count   int                    // sessions
	// waiting lists the publishes of this node's senders whose outcome
	// the log has not given yet, oldest first from whead.
	waiting []waiter
	whead   int
	presAt  int64         // server clock of the last presence push (presence.go; 0: none)
	pres    *roomPresence // presence changes waiting for the flusher; nil: none
}

// roomUser is a user of this node in a room, and its sessions there. A
// user whose last session here went with a lost connection stays present
// until linger (server clock, ns; 0: not lingering) with n == 0: the
// presence grace (presence.go).
type roomUser struct {
	u      *user
	n      int32
	linger int64
}

// remoteUser is a user present in a room on other nodes. A user whose
// nodes all died stays present until linger (nodes empty), like a local
// user whose connection was lost.
type remoteUser struct {
	who    engine.Author
	nodes  []string
	linger int64
}

// waiter is a send waiting for its outcome: who to answer, a command of
// a connection or (api set) a request of the server API.
type waiter struct {
	ticket uint64
	c      *conn
	sid    uint32
	seq    uint64
	// api, when set, gets the outcome instead (under the room's lock: it
	// must not block).
	api func(*engine.Released)
}

func newRoom(name string, log engine.Log) *room {
	return &room{
		name:    name,
		log:     log,
		members: make(map[*conn]*member),
		users:   make(map[string]roomUser),
	}
}

// appendEntry appends e as the body of a msg push of room r: what the
// message's push carried.
func (r *room) appendEntry(dst []byte, e *engine.Entry) []byte {
	m := mux.Message{Room: r.name, Offset: e.Off, Epoch: r.log.Epoch(), From: e.Who.Name, Color: e.Who.Color, Display: e.Who.Display, Text: e.Text(), TS: e.TS, CID: e.CID()}
	return mux.AppendMessage(dst, &m)
}

// addSession adds sid of c to the room. It returns true if the session was
// not in the room yet.
func (r *room) addSession(c *conn, sid uint32) bool {
	m := r.members[c]
	if m == nil {
		m = &member{}
		r.members[c] = m
	}
	for _, s := range m.ids {
		if s == sid {
			return false
		}
	}
	m.ids = append(m.ids, sid)
	m.sids = mux.AppendSIDs(nil, m.ids)
	r.count++
	return true
}

// removeSession removes sid of c; it reports whether it was there.
func (r *room) removeSession(c *conn, sid uint32) bool {
	m := r.members[c]
	if m == nil {
		return false
	}
	idx := -1
	for i, s := range m.ids {
		if s == sid {
			idx = i
		}
	}
	if idx < 0 {
		return false
	}
	r.count--
	if len(m.ids) == 1 {
		delete(r.members, c)
		return true
	}
	m.ids = append(m.ids[:idx], m.ids[idx+1:]...)
	m.sids = mux.AppendSIDs(nil, m.ids)
	return true
}

// broadcast queues an event through out (see outbox.push) to every
// session in the room but skip (a session of conn skipConn). body is
// encoded once by the caller.
func (r *room) broadcast(out *outbox, ev string, body []byte, skipConn *conn, skipSID uint32) {
	prefix := pushPrefix(ev)
	for c, m := range r.members {
		sids := m.sids
		if c == skipConn {
			ids := without(m.ids, skipSID)
			if len(ids) == 0 {
				continue
			}
			sids = mux.AppendSIDs(nil, ids)
		}
		out.push(c, outItem{head: prefix, sids: sids, body: body})
	}
}

func without(sids []uint32, sid uint32) []uint32 {
	for i, s := range sids {
		if s == sid {
			out := make([]uint32, 0, len(sids)-1)
			out = append(out, sids[:i]...)
			return append(out, sids[i+1:]...)
		}
	}
	return sids
}

// idle expires the history older than cutoff (Unix ms) and reports whether
// the room may be dropped: no member here, no send waiting, an idle log.
func (r *room) idle(cutoff int64) bool {
	r.log.Expire(cutoff)
	return r.count == 0 && r.whead == len(r.waiting) && r.log.Idle()
}
