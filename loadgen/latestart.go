package loadgen

// Where a track starts when the join reply does not say (socket.io's acks:
// wire.Traits.JoinPoint false). The room's offsets (socket.io's per-room
// seq) are known from the send replies and the deliveries, but not the one
// at which a socket joined. So the start of a track is worked out at the
// end of the run, from two facts about a server that handles one event at a
// time and writes to each socket in order:
//
//   - a message whose send the generator issued after it had the join's
//     reply was handled after the join: the socket must get it;
//   - once the socket got offset k of a room, it must get every later one.
//
// A message sent before the reply may have been handled before or after the
// join. So a track's start is the highest offset of the sends issued before
// its join reply (known from their replies, or from any delivery of a send
// whose reply was lost), lowered to just below the first offset it
// received. Messages in that uncertain window that the socket did get still
// count as deliveries.

import (
	"sort"
	"sync"
	"sync/atomic"
)

// lateStarts is what this verification needs beyond the engine's: the
// (issue time, offset) of every send, per room, and the tracks closed during
// the run, counted at the end when every offset is known.
type lateStarts struct {
	mu          sync.Mutex
	sends       [][]lateSend // per room
	unres       map[dmKey]lateSend
	nUnresolved atomic.Int64
	done        []lateDone
}

type lateSend struct {
	issued int64 // ns since start
	seq    uint64
	room   int32
}

type lateDone struct {
	tr roomTrack
	to uint64
}

func newLateStarts(rooms int) *lateStarts {
	return &lateStarts{sends: make([][]lateSend, rooms), unres: map[dmKey]lateSend{}}
}

// acked logs a send of room issued at issued and numbered seq.
func (st *lateStarts) acked(room int32, issued int64, seq uint64) {
	st.mu.Lock()
	st.sends[room] = append(st.sends[room], lateSend{issued: issued, seq: seq})
	st.mu.Unlock()
}

// unconfirmed notes a send in flight whose ack will never come (its socket
// died, its tab closed, or it timed out): the server may have handled it.
// Its seq is learnt if anyone receives it.
func (st *lateStarts) unconfirmed(p pending) {
	if p.issued == 0 {
		return
	}
	st.mu.Lock()
	st.unres[dmKey{sender: p.t.gid, seq: p.mseq}] = lateSend{issued: p.issued, room: p.t.b.rooms[p.track]}
	st.nUnresolved.Store(int64(len(st.unres)))
	st.mu.Unlock()
}

// resolve learns the seq of an unconfirmed send from a delivery.
func (st *lateStarts) resolve(room int32, k dmKey, seq uint64) {
	st.mu.Lock()
	if u, ok := st.unres[k]; ok && u.room == room {
		delete(st.unres, k)
		st.nUnresolved.Store(int64(len(st.unres)))
		st.sends[room] = append(st.sends[room], lateSend{issued: u.issued, seq: seq})
	}
	st.mu.Unlock()
}

// closed keeps a finished track, to count when the run is over.
func (st *lateStarts) closed(tr *roomTrack, to uint64) {
	if !tr.joined {
		return
	}
	st.mu.Lock()
	st.done = append(st.done, lateDone{tr: *tr, to: to})
	st.mu.Unlock()
}

// caughtUp reports whether a member track has everything it must get for
// the drain to end, top being the room's highest known seq.
func (st *lateStarts) caughtUp(tr *roomTrack, top uint64) bool {
	if tr.got.maxOffset() >= top {
		return true
	}
	if len(tr.got) > 0 {
		return false // it got a later one: it must get every one after
	}
	// Nothing yet: it must get what was sent after its join ack.
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, x := range st.sends[tr.room] {
		if x.issued >= tr.joinAt {
			return false
		}
	}
	return true
}

// count sets the start of every closed track (see the top of the file) and
// counts it into v. Called once, at the end of the run.
func (st *lateStarts) count(v *verifier) {
	st.mu.Lock()
	defer st.mu.Unlock()
	// Per room: sends by issue time, and the highest seq up to each.
	prefix := make([][]uint64, len(st.sends))
	for r, l := range st.sends {
		sort.Slice(l, func(i, j int) bool { return l[i].issued < l[j].issued })
		pm := make([]uint64, len(l))
		var m uint64
		for i, x := range l {
			m = max(m, x.seq)
			pm[i] = m
		}
		prefix[r] = pm
	}
	for i := range st.done {
		d := &st.done[i]
		tr := &d.tr
		l := st.sends[tr.room]
		k := sort.Search(len(l), func(i int) bool { return l[i].issued >= tr.joinAt })
		var from uint64
		if k > 0 {
			from = prefix[tr.room][k-1]
		}
		if len(tr.got) > 0 && tr.got[0].lo-1 < from {
			from = tr.got[0].lo - 1
		}
		tr.from = from
		v.close(tr, d.to)
	}
	st.done = nil
}
