package server

import (
	"sync"
	"time"
)

// heartbeats finds the connections silent past the heartbeat timeout
// without looking at every connection on every tick: a timing wheel of
// hbTick slots, each connection in the slot of the tick at which it would
// time out if it stayed silent from its last read. When a slot comes due,
// its connections that were heard from meanwhile move on to the slot of
// their new deadline (about once per timeout each, however often they
// ping), the silent ones are closed; an ended connection leaves its slot
// at once (remove: each connection knows its place). A connection
// is therefore closed at most one tick after its deadline (hbTick:
// min(1 s, timeout/10)), and a tick costs the connections due in it. The
// zero value is ready; the janitor sweeps it, handleWS adds to it.
type heartbeats struct {
	mu    sync.Mutex
	tick  int64     // ns; set by the first add or sweep
	slots [][]*conn // by absolute tick number modulo len(slots)
	next  int64     // the first tick number not yet swept

	due, expired []*conn // the sweep's scratch, kept between ticks
}

// hbTick is the janitor's heartbeat tick: the slack past the heartbeat
// timeout with which a silent connection is closed.
func hbTick(timeout time.Duration) time.Duration {
	return max(min(time.Second, timeout/10), 10*time.Millisecond)
}

// initLocked sizes the wheel: deadlines lie at most timeout ahead, so
// timeout/tick slots (and two for the rounding) never wrap onto a slot not
// yet swept.
func (h *heartbeats) initLocked(timeout time.Duration, now int64) {
	if h.slots != nil {
		return
	}
	tick := hbTick(timeout)
	h.tick = int64(tick)
	h.slots = make([][]*conn, int(timeout/tick)+2)
	h.next = now / h.tick
}

// slotOfLocked returns the tick number at or after deadline, but after cur.
func (h *heartbeats) slotOfLocked(deadline, cur int64) int64 {
	k := (deadline + h.tick - 1) / h.tick
	return max(k, cur+1)
}

// putLocked puts c in the slot of tick number k.
func (h *heartbeats) putLocked(c *conn, k int64) {
	i := int32(k % int64(len(h.slots)))
	c.hbSlot, c.hbIdx = i, int32(len(h.slots[i]))
	h.slots[i] = append(h.slots[i], c)
}

// add watches c, whose lastRead is set.
func (h *heartbeats) add(c *conn, timeout time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.initLocked(timeout, time.Now().UnixNano())
	h.putLocked(c, h.slotOfLocked(c.lastRead.Load()+int64(timeout), h.next-1))
}

// remove stops watching c (it has ended).
func (h *heartbeats) remove(c *conn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if c.hbSlot < 0 || h.slots == nil {
		return
	}
	slot := h.slots[c.hbSlot]
	last := len(slot) - 1
	if int(c.hbIdx) <= last && slot[c.hbIdx] == c {
		moved := slot[last]
		slot[c.hbIdx], moved.hbIdx = moved, c.hbIdx
		slot[last] = nil
		h.slots[c.hbSlot] = slot[:last]
	}
	c.hbSlot = -1
}

// sweep returns the connections silent for timeout or longer at now (the
// slice is reused by the next sweep), and moves the others on.
func (h *heartbeats) sweep(now time.Time, timeout time.Duration) []*conn {
	h.mu.Lock()
	defer h.mu.Unlock()
	ns := now.UnixNano()
	h.initLocked(timeout, ns)
	cur := ns / h.tick
	n := int64(len(h.slots))
	clear(h.due)
	h.due = h.due[:0]
	for k := h.next; k <= cur && k < h.next+n; k++ {
		i := k % n
		for _, c := range h.slots[i] {
			c.hbSlot = -1
		}
		h.due = append(h.due, h.slots[i]...)
		clear(h.slots[i])
		h.slots[i] = h.slots[i][:0]
		if cap(h.slots[i]) > 4096 {
			h.slots[i] = nil // a burst of connections: don't keep its array
		}
	}
	h.next = max(h.next, cur+1)
	clear(h.expired)
	h.expired = h.expired[:0]
	for _, c := range h.due {
		deadline := c.lastRead.Load() + int64(timeout)
		if deadline <= ns {
			h.expired = append(h.expired, c)
			continue
		}
		h.putLocked(c, h.slotOfLocked(deadline, cur))
	}
	if cap(h.due) > 4096 {
		h.due = nil
	}
	return h.expired
}
