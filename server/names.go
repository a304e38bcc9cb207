package server

import (
	"time"

	"imload/mux"
)

// Name reservations. When the last session of a user goes, its name is
// not freed at once: the user stays in hub.users, offline, reserved to its
// token for Config.NameGrace (twice the heartbeat timeout by default), so
// that the owner coming back after a dropped connection gets its name back
// and nobody else can take it meanwhile (nor receive the DMs sent to it:
// a DM to a reserved name fails with 410 user_offline).
//
// The reserved users wait in a FIFO (one entry per user at most), in the
// order they went offline; claim and release pop the expired ones from
// its front, so the table is swept where it grows, with no goroutine.
// At most MaxReservedNames users are reserved: beyond that the oldest
// reservation ends early (counted in names_evicted).

// reservation is one entry of the FIFO: a user that went offline at off.
type reservation struct {
	u   *user
	off int64 // Unix ns
}

// reservedFIFO is a ring of reservations, oldest first.
type reservedFIFO struct {
	ring  []reservation
	start int
	n     int
}

func (q *reservedFIFO) push(r reservation) {
	if q.n == len(q.ring) {
		grown := make([]reservation, max(16, 2*len(q.ring)))
		for i := range q.n {
			grown[i] = q.ring[(q.start+i)%len(q.ring)]
		}
		q.ring, q.start = grown, 0
	}
	q.ring[(q.start+q.n)%len(q.ring)] = r
	q.n++
}

func (q *reservedFIFO) front() *reservation { return &q.ring[q.start] }

func (q *reservedFIFO) pop() reservation {
	r := q.ring[q.start]
	q.ring[q.start] = reservation{}
	q.start = (q.start + 1) % len(q.ring)
	q.n--
	if q.n == 0 && len(q.ring) > 1024 {
		q.ring, q.start = nil, 0 // a burst is over: don't keep its array
	}
	return r
}

// online reports whether u has a session (under usersMu).
func (u *user) online() bool { return len(u.sessions) > 0 }

// reservedFor reports whether the offline user u still holds its name at
// now (Unix ns), under usersMu.
func (h *hub) reservedFor(u *user, now int64) bool {
	return !u.online() && u.offAt != 0 && now-u.offAt < int64(h.cfg.nameGrace())
}

// lookupUser returns the user holding name (online or reserved) at now,
// dropping an expired reservation it finds. Under usersMu.
func (h *hub) lookupUser(key string, now int64) *user {
	u := h.users[key]
	if u == nil || u.online() || h.reservedFor(u, now) {
		return u
	}
	h.forget(u)
	return nil
}

// forget drops the offline user u from the table. Under usersMu.
func (h *hub) forget(u *user) {
	if h.users[u.key] == u {
		delete(h.users, u.key)
		h.reservedNames--
	}
	u.offAt = 0
}

// reserve keeps the user u, which has just lost its last session, as a
// reservation of its name, then sweeps. Under usersMu.
func (h *hub) reserve(u *user, now int64) {
	h.online--
	if h.cfg.nameGrace() <= 0 {
		delete(h.users, u.key)
		return
	}
	u.offAt = now
	h.reservedNames++
	if !u.queued {
		u.queued = true
		h.reserved.push(reservation{u: u, off: now})
	}
	h.sweepNames(now)
}

// sweepNames pops the expired reservations from the front of the FIFO,
// and the oldest ones beyond MaxReservedNames. An entry whose user came
// back (online) leaves the FIFO; one whose user went offline again since
// it was queued goes to the back with its new time. Under usersMu.
func (h *hub) sweepNames(now int64) {
	grace := int64(h.cfg.nameGrace())
	for h.reserved.n > 0 {
		r := h.reserved.front()
		over := h.reservedNames > h.cfg.MaxReservedNames
		if !over && now-r.off < grace {
			return
		}
		e := h.reserved.pop()
		u := e.u
		switch {
		case h.users[u.key] != u || u.online():
			u.queued = false // back online, or already gone
		case !over && u.offAt != e.off && now-u.offAt < grace:
			h.reserved.push(reservation{u: u, off: u.offAt}) // offline again since: requeue
		default:
			u.queued = false
			if now-u.offAt < grace {
				h.counters.namesEvicted.Add(1)
			}
			h.forget(u)
		}
	}
}

// reservedCount is the number of names held for offline users.
func (h *hub) reservedCount() int {
	h.usersMu.Lock()
	defer h.usersMu.Unlock()
	return h.reservedNames
}

// nameTaken is the 409 for a name held by another token.
func nameTaken(name string, reserved bool, left time.Duration) error {
	if reserved {
		return mux.Errorf(mux.CodeNameTaken, mux.ErrNameTaken, "the name %q is reserved for its owner (offline) for %v more: present its token, or choose another name", name, left.Round(time.Second))
	}
	return mux.Errorf(mux.CodeNameTaken, mux.ErrNameTaken, "the name %q is taken", name)
}
