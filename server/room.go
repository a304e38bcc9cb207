package server

import (
	"sync"
	"time"

	"imload/mux"
	"imload/server/engine"
)

// appendEntry appends e as the body of a msg push of room r: what the
// message's push carried.
func (r *room) appendEntry(dst []byte, e *engine.Entry) []byte {
	m := mux.Message{Room: r.name, Offset: e.Off, Epoch: r.epoch, From: e.Who.Name, Color: e.Who.Color, Text: e.Text(), TS: e.TS, CID: e.CID()}
	return mux.AppendMessage(dst, &m)
}

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

// room is a chat room: members by connection, presence by user, and the
// retained history (a ring of at most max entries). mu orders everything
// that happens in the room: offsets are assigned, history appended and
// pushes queued under it, so every connection sees one order.
//
// A message is assigned its offset (top) and retained when it is sent, and
// released (released) when it may be seen: at once, or, on a durable
// server, once the store has committed it (release.go). Until then it is
// in unreleased, and nothing shows it: no reply, no push, no history, and
// the room's top in replies is released.
type room struct {
	name string

	mu         sync.Mutex
	epoch      string
	top        uint64        // offset of the newest message assigned (0: none)
	released   uint64        // offset of the newest message released (≤ top)
	unreleased []pendingSend // assigned, not yet released: offsets released+1 … top, in order
	hist       engine.Ring   // the retained messages
	members    map[*conn]*member
	users      map[*user]int // sessions per named user, for presence
	anon       int           // anonymous sessions
	count      int           // sessions
	presAt     int64         // server clock of the last presence push (presence.go; 0: none)
	pres       *roomPresence // presence changes waiting for the flusher; nil: none
}

func newRoom(name, epoch string) *room {
	return &room{
		name:    name,
		epoch:   epoch,
		members: make(map[*conn]*member),
		users:   make(map[*user]int),
	}
}

func (r *room) first() uint64 { return r.hist.First() }

// visible returns how many of the oldest retained messages are released:
// the ones history and join replies may show.
func (r *room) visible() int {
	if r.hist.Len() == 0 || r.released < r.first() {
		return 0
	}
	return min(r.hist.Len(), int(r.released-r.first()+1))
}

// expire drops entries older than cutoff (Unix ms).
func (r *room) expire(cutoff int64) { r.hist.Expire(cutoff) }

// add retains message m, sent by who (m.From and m.Color), dropping the
// oldest entry beyond max, and remembers its cid for deduplication.
func (r *room) add(m *mux.Message, who *engine.Author, max int) {
	r.hist.Push(engine.Entry{Off: m.Offset, TS: m.TS, Who: who, Data: m.Text + m.CID, CIDLen: uint8(len(m.CID))}, max)
}

// sentBefore returns the retained message that from sent with client id
// cid, if there is one: a send retried after a lost reply.
func (r *room) sentBefore(from, cid string) (*engine.Entry, bool) {
	e := r.hist.Find(from, cid)
	return e, e != nil
}

// after returns the released entries with offset > off, at most limit of
// them (oldest first), and whether more remain.
func (r *room) after(off uint64, limit int) ([]*engine.Entry, bool) {
	return r.hist.After(off, r.released, limit)
}

// last returns the newest limit released entries, oldest first, and
// whether older ones remain.
func (r *room) last(limit int) ([]*engine.Entry, bool) { return r.hist.Latest(r.released, limit) }

// before returns the limit released entries before offset off, oldest
// first, and whether older ones remain.
func (r *room) before(off uint64, limit int) ([]*engine.Entry, bool) {
	return r.hist.Before(off, r.released, limit)
}

// resumable reports whether a client that has everything up to off in epoch
// can be given exactly the rest.
func (r *room) resumable(epoch string, off uint64, maxHistory int) bool {
	return epoch == r.epoch && r.hist.Resumable(off, r.released, maxHistory)
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

// broadcast queues an event, on behalf of by (see conn.pushTo), to every
// session in the room but skip (a session of conn skipConn). body is
// encoded once by the caller.
func (r *room) broadcast(by *conn, ev string, body []byte, skipConn *conn, skipSID uint32) {
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
		by.pushTo(c, outItem{head: prefix, sids: sids, body: body})
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

// idle reports whether the room may be deleted: no members, no history and
// nothing waiting for the store.
func (r *room) idle(now time.Time, age time.Duration) bool {
	r.expire(now.Add(-age).UnixMilli())
	return r.count == 0 && r.hist.Len() == 0 && len(r.unreleased) == 0
}
