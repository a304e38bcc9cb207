package server

import (
	"hash/maphash"
	"sync"
	"time"

	"imload/mux"
)

// entry is one retained message, kept compact: history is most of what a
// busy server holds besides its connections. The room's name and epoch are
// the room's, the sender's name and colour an author shared by all of the
// sender's messages, and the text and client id share one string. Pushes
// carry the body encoded once when the message is sent; history replies
// encode it again (appendEntry).
type entry struct {
	off    uint64
	ts     int64 // Unix ms
	who    *author
	data   string // the text, then the client id
	cidLen uint8  // ≤ mux.MaxCIDBytes
}

func (e *entry) text() string { return e.data[:len(e.data)-int(e.cidLen)] }
func (e *entry) cid() string  { return e.data[len(e.data)-int(e.cidLen):] }

// author is who sent a message: a user's name and colour, allocated once per
// user (or per sender of loaded history) and shared by the entries.
type author struct {
	name, color string
}

// appendEntry appends e as the body of a msg push of room r: what the
// message's push carried.
func (r *room) appendEntry(dst []byte, e *entry) []byte {
	m := mux.Message{Room: r.name, Offset: e.off, Epoch: r.epoch, From: e.who.name, Color: e.who.color, Text: e.text(), TS: e.ts, CID: e.cid()}
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
	ring       []entry
	start      int // index of the oldest entry in ring
	n          int // entries in ring
	members    map[*conn]*member
	users      map[*user]int     // sessions per named user, for presence
	anon       int               // anonymous sessions
	count      int               // sessions
	cids       map[uint64]uint64 // cidHash → offset of the retained messages sent with a cid
	seed       maphash.Seed
	presAt     int64         // server clock of the last presence push (presence.go; 0: none)
	pres       *roomPresence // presence changes waiting for the flusher; nil: none
}

func newRoom(name, epoch string) *room {
	return &room{
		name:    name,
		epoch:   epoch,
		members: make(map[*conn]*member),
		users:   make(map[*user]int),
		cids:    make(map[uint64]uint64),
		seed:    maphash.MakeSeed(),
	}
}

// The ring grows by appending up to max entries, then wraps.

func (r *room) at(i int) *entry { return &r.ring[(r.start+i)%len(r.ring)] }

func (r *room) first() uint64 {
	if r.n == 0 {
		return 0
	}
	return r.at(0).off
}

// visible returns how many of the oldest ring entries are released: the
// ones history and join replies may show.
func (r *room) visible() int {
	if r.n == 0 || r.released < r.first() {
		return 0
	}
	return min(r.n, int(r.released-r.first()+1))
}

// push appends e, dropping the oldest entry when the ring holds max.
func (r *room) push(e entry, max int) {
	switch {
	case r.n == max: // full: overwrite the oldest
		old := r.at(0)
		r.forgetCID(old)
		*old = e
		r.start = (r.start + 1) % len(r.ring)
	case r.n < len(r.ring): // room in the slice (after expiry)
		r.ring[(r.start+r.n)%len(r.ring)] = e
		r.n++
	default: // slice full but below max: straighten and grow
		if r.start != 0 || cap(r.ring) == len(r.ring) {
			// Grow by a quarter, not append's doubling: history is most of
			// what a busy server keeps, and a ring stays at its size.
			lin := make([]entry, r.n, min(max, r.n+r.n/4+8))
			for i := range r.n {
				lin[i] = *r.at(i)
			}
			r.ring, r.start = lin, 0
		}
		r.ring = append(r.ring, e)
		r.n++
	}
}

// expire drops entries older than cutoff (Unix ms).
func (r *room) expire(cutoff int64) {
	for r.n > 0 && r.at(0).ts < cutoff {
		e := r.at(0)
		r.forgetCID(e)
		*e = entry{}
		r.start = (r.start + 1) % len(r.ring)
		r.n--
	}
	if r.n == 0 {
		r.start = 0
		r.ring = r.ring[:0]
	}
}

// cidHash hashes a sender's name and client id (never 0). Retained
// messages are found by it rather than by the two strings: a hash costs
// no allocation and no string per message, and duplicate checks verify
// the message found (see sentBefore).
func (r *room) cidHash(from, cid string) uint64 {
	var h maphash.Hash
	h.SetSeed(r.seed)
	h.WriteString(from)
	h.WriteByte(0)
	h.WriteString(cid)
	return h.Sum64() | 1
}

func (r *room) forgetCID(e *entry) {
	if e.cidLen == 0 {
		return
	}
	if h := r.cidHash(e.who.name, e.cid()); r.cids[h] == e.off {
		delete(r.cids, h)
	}
}

// add retains message m, sent by who (m.From and m.Color), dropping the
// oldest entry beyond max, and remembers its cid for deduplication.
func (r *room) add(m *mux.Message, who *author, max int) {
	e := entry{off: m.Offset, ts: m.TS, who: who, data: m.Text + m.CID, cidLen: uint8(len(m.CID))}
	if m.CID != "" {
		r.cids[r.cidHash(who.name, m.CID)] = m.Offset
	}
	r.push(e, max)
}

// sentBefore returns the retained message that from sent with client id
// cid, if there is one: a send retried after a lost reply. A message whose
// hash only collides is not it (its sender or cid differs), so a collision
// can never drop a message.
func (r *room) sentBefore(from, cid string) (*entry, bool) {
	off, ok := r.cids[r.cidHash(from, cid)]
	if !ok || r.n == 0 || off < r.first() || off > r.top {
		return nil, false
	}
	e := r.at(int(off - r.first()))
	if e.who.name != from || e.cid() != cid {
		return nil, false
	}
	return e, true
}

// after returns the released entries with offset > off, at most limit of
// them (oldest first), and whether more remain.
func (r *room) after(off uint64, limit int) ([]*entry, bool) {
	n := r.visible()
	if n == 0 || off >= r.released {
		return nil, false
	}
	i := 0
	if f := r.first(); off >= f {
		i = int(off - f + 1)
	}
	out := make([]*entry, 0, min(limit, n-i))
	for ; i < n && len(out) < limit; i++ {
		out = append(out, r.at(i))
	}
	return out, i < n
}

// last returns the newest limit released entries, oldest first, and
// whether older ones remain.
func (r *room) last(limit int) ([]*entry, bool) {
	n := r.visible()
	k := min(limit, n)
	out := make([]*entry, 0, k)
	for i := n - k; i < n; i++ {
		out = append(out, r.at(i))
	}
	return out, n > k
}

// before returns the limit released entries before offset off, oldest
// first, and whether older ones remain.
func (r *room) before(off uint64, limit int) ([]*entry, bool) {
	n := r.visible()
	if n == 0 || off <= r.first() {
		return nil, false
	}
	end := n
	if off <= r.released {
		end = int(off - r.first())
	}
	begin := max(0, end-limit)
	out := make([]*entry, 0, end-begin)
	for i := begin; i < end; i++ {
		out = append(out, r.at(i))
	}
	return out, begin > 0
}

// resumable reports whether a client that has everything up to off in epoch
// can be given exactly the rest.
func (r *room) resumable(epoch string, off uint64, maxHistory int) bool {
	if epoch != r.epoch || off > r.released {
		return false
	}
	if off == r.released {
		return true
	}
	return r.visible() > 0 && off+1 >= r.first() && r.released-off <= uint64(maxHistory)
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
	return r.count == 0 && r.n == 0 && len(r.unreleased) == 0
}
