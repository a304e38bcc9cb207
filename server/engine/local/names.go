package local

import (
	"time"

	"imload/mux"
)

// Name reservations. When the last session of a user goes, its name is
// not freed at once: the user stays in the table, offline, reserved to
// its token for Options.NameGrace, so that the owner coming back after a
// dropped connection gets its name back and nobody else can take it
// meanwhile (nor receive the DMs sent to it: a DM to a reserved name fails
// with 410 user_offline).
//
// The reserved users wait in a FIFO (one entry per user at most), in the
// order they went offline; Claim and Release pop the expired ones from
// its front, so the table is swept where it grows, with no goroutine. At
// most MaxReservedNames users are reserved: beyond that the oldest
// reservation ends early (Options.OnNameEvicted).

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

// reservedFor reports whether the offline user u still holds its name at
// now (Unix ns). Under users.mu.
func (e *Engine) reservedFor(u *user, now int64) bool {
	return !u.online() && u.offAt != 0 && now-u.offAt < int64(e.opts.NameGrace)
}

// lookupUser returns the user holding the name of key (online or
// reserved) at now, dropping an expired reservation it finds. Under
// users.mu.
func (e *Engine) lookupUser(key string, now int64) *user {
	u := e.users.m[key]
	if u == nil || u.online() || e.reservedFor(u, now) {
		return u
	}
	e.forget(u)
	return nil
}

// forget drops the offline user u from the table. Under users.mu.
func (e *Engine) forget(u *user) {
	if key := u.key(); e.users.m[key] == u {
		delete(e.users.m, key)
		e.users.reserved--
	}
	u.offAt = 0
}

// reserve keeps the user u, which has just lost its last session, as a
// reservation of its name, then sweeps. Under users.mu.
func (e *Engine) reserve(u *user, now int64) {
	us := &e.users
	us.online--
	if e.opts.NameGrace <= 0 {
		delete(us.m, u.key())
		return
	}
	u.offAt = now
	us.reserved++
	if !u.queued {
		u.queued = true
		us.fifo.push(reservation{u: u, off: now})
	}
	e.sweepNames(now)
}

// sweepNames pops the expired reservations from the front of the FIFO,
// and the oldest ones beyond MaxReservedNames. An entry whose user came
// back (online) leaves the FIFO; one whose user went offline again since
// it was queued goes to the back with its new time. Under users.mu.
func (e *Engine) sweepNames(now int64) {
	us := &e.users
	grace := int64(e.opts.NameGrace)
	for us.fifo.n > 0 {
		r := us.fifo.front()
		over := us.reserved > e.opts.MaxReservedNames
		if !over && now-r.off < grace {
			return
		}
		entry := us.fifo.pop()
		u := entry.u
		switch {
		case us.m[u.key()] != u || u.online():
			u.queued = false // back online, or already gone
		case !over && u.offAt != entry.off && now-u.offAt < grace:
			us.fifo.push(reservation{u: u, off: u.offAt}) // offline again since: requeue
		default:
			u.queued = false
			if now-u.offAt < grace && e.opts.OnNameEvicted != nil {
				e.opts.OnNameEvicted()
			}
			e.forget(u)
		}
	}
}

// nameTaken is the 409 for a name held by another token.
func nameTaken(name string, reserved bool, left time.Duration) error {
	if reserved {
		return mux.Errorf(mux.CodeNameTaken, mux.ErrNameTaken, "the name %q is reserved for its owner (offline) for %v more: present its token, or choose another name", name, left.Round(time.Second))
	}
	return mux.Errorf(mux.CodeNameTaken, mux.ErrNameTaken, "the name %q is taken", name)
}
