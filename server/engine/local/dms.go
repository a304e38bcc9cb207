package local

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"imload/mux"
	"imload/server/engine"
	"imload/server/store"
)

// The history of private messages (engine.DMs): one conv per pair of
// users, in memory (a Ring of at most DMHistoryMax messages, visible up
// to released) and in the store (CreateConv, AppendDM, DeleteConv), the
// conversations in a list by their last message (the least recently
// active at the tail) so that the bound on conversations and their age
// cost what they drop. Everything is under dms.mu, which DM takes with
// users.mu held (users.mu, then dms.mu): a DM's offset is given, and its
// append queued to the store, under the same lock as the check of its
// recipient and its id, so ids, offsets and deliveries go in one order.
//
// With a durable store a DM is answered and delivered only once its
// append is committed: it waits in dms.pending, in the order of the
// appends, which is the store's order of commits; onCommitDMs releases
// the committed prefix from the store's writer goroutine.

// dms is the engine's conversations.
type dms struct {
	mu         sync.Mutex
	m          map[string]*conv              // by engine.DMPair
	byUser     map[string]map[*conv]struct{} // by mux.NameKey: the user's conversations
	head, tail *conv                         // by last message: head the newest
	pending    []*dmPending                  // durable: appended, not committed yet, in order

	trimmed, expired, evicted atomic.Int64
	count                     atomic.Int64
}

// conv is one conversation.
type conv struct {
	key      string
	keys     [2]string // the users' mux.NameKey, in the order of key
	users    [2]string // the users as spelt
	gens     [2]string // the generation of each side: who may read it
	epoch    string
	hist     engine.Ring
	top      uint64 // the newest offset appended
	released uint64 // the newest offset visible (≤ top)
	last     int64  // the newest message's time (Unix ms)

	prev, next *conv // the list by last message
}

// dmPending is a DM waiting for its commit (durable): release(nil)
// delivers it and answers its sender; release(err) answers err (its
// commit was lost). It is queued with the store's append, under the same
// lock, so a commit that comes before dmWait gave release is not missed:
// the commit is then kept (done, err) for dmWait to act on. Under dms.mu.
type dmPending struct {
	c       *conv
	epoch   string
	off     uint64
	release func(error) // nil until dmWait
	done    bool        // committed (or lost) before dmWait
	err     error       // with done: the commit was lost
}

// dmHistory reports whether the engine keeps private messages.
func (e *Engine) dmHistory() bool { return e.opts.DMHistoryMax > 0 }

// side returns which side of c user key is (0 or 1; -1: neither).
func (c *conv) side(key string) int {
	switch key {
	case c.keys[0]:
		return 0
	case c.keys[1]:
		return 1
	}
	return -1
}

// loadDMs fills the conversations from the store: their messages within
// DMHistoryAge (a run of consecutive offsets), the newest DMMaxConversations
// of them. A conversation left without a message is deleted.
func (e *Engine) loadDMs(ctx context.Context) error {
	if !e.dmHistory() {
		return nil
	}
	loaded, err := e.store.LoadConvs(ctx)
	if err != nil {
		return err
	}
	ds := &e.dms
	cutoff := e.opts.Now().Add(-e.opts.DMHistoryAge).UnixMilli()
	authors := make(authorTable)
	var convs []*conv
	for _, sc := range loaded {
		a, b := engine.DMPairKeys(sc.Name)
		c := &conv{key: sc.Name, keys: [2]string{a, b}, users: sc.Users, gens: sc.Gens, epoch: sc.Epoch}
		for i := range sc.Messages {
			m := &sc.Messages[i]
			if m.TS < cutoff || (c.top != 0 && m.Offset != c.top+1) {
				continue
			}
			c.hist.Push(authors.entry(m), e.opts.DMHistoryMax)
			c.top, c.released, c.last = m.Offset, m.Offset, m.TS
		}
		if c.hist.Len() == 0 {
			_ = e.store.DeleteConv(sc.Name, sc.Epoch)
			continue
		}
		convs = append(convs, c)
	}
	slices.SortFunc(convs, func(x, y *conv) int { return cmp.Compare(x.last, y.last) })
	if extra := len(convs) - e.opts.DMMaxConversations; extra > 0 {
		for _, c := range convs[:extra] {
			_ = e.store.DeleteConv(c.key, c.epoch)
		}
		convs = convs[extra:]
	}
	for _, c := range convs { // oldest first: each goes to the head
		ds.add(c)
	}
	return nil
}

// add makes c a conversation, the newest. Under dms.mu.
func (ds *dms) add(c *conv) {
	ds.m[c.key] = c
	for _, k := range c.keys {
		set := ds.byUser[k]
		if set == nil {
			set = make(map[*conv]struct{})
			ds.byUser[k] = set
		}
		set[c] = struct{}{}
	}
	ds.pushHead(c)
	ds.count.Add(1)
}

// remove forgets c. Under dms.mu.
func (ds *dms) remove(c *conv) {
	if ds.m[c.key] != c {
		return
	}
	delete(ds.m, c.key)
	for _, k := range c.keys {
		if set := ds.byUser[k]; set != nil {
			delete(set, c)
			if len(set) == 0 {
				delete(ds.byUser, k)
			}
		}
	}
	ds.unlink(c)
	ds.count.Add(-1)
}

func (ds *dms) pushHead(c *conv) {
	c.prev, c.next = nil, ds.head
	if ds.head != nil {
		ds.head.prev = c
	}
	ds.head = c
	if ds.tail == nil {
		ds.tail = c
	}
}

func (ds *dms) unlink(c *conv) {
	if c.prev != nil {
		c.prev.next = c.next
	} else if ds.head == c {
		ds.head = c.next
	}
	if c.next != nil {
		c.next.prev = c.prev
	} else if ds.tail == c {
		ds.tail = c.prev
	}
	c.prev, c.next = nil, nil
}

// drop forgets c and queues its deletion from the store. Under dms.mu.
func (e *Engine) dropConv(c *conv) {
	e.dms.remove(c)
	e.rooms.delMu.Lock()
	e.rooms.toDelete = append(e.rooms.toDelete, deletion{name: c.key, epoch: c.epoch, dm: true})
	e.rooms.delMu.Unlock()
}

// dmAppend appends a DM to the conversation of from and to, made (or made
// again, when a side's generation is not the one it holds) as needed, and
// returns the conversation and the message's offset. The store's append is
// queued (ErrUnavailable when its queue is full: nothing is appended).
// Under users.mu; it takes dms.mu.
func (e *Engine) dmAppend(d *engine.DMSend, fromGen string, to *user) (*conv, uint64, *dmPending, error) {
	ds := &e.dms
	fromKey := mux.NameKey(d.From.Name)
	key, side := engine.DMPair(fromKey, to.key())
	ds.mu.Lock()
	defer ds.mu.Unlock()
	var gens, users [2]string
	gens[side], gens[1-side] = fromGen, to.gen
	users[side], users[1-side] = d.From.Name, to.name
	c := ds.m[key]
	if c != nil && c.gens != gens { // another holder of a name: the conversation starts again
		e.dropConv(c)
		c = nil
	}
	if c == nil {
		for len(ds.m) >= e.opts.DMMaxConversations && ds.tail != nil {
			e.dropConv(ds.tail)
			ds.evicted.Add(1)
			if e.opts.OnDMEvicted != nil {
				e.opts.OnDMEvicted()
			}
		}
		a, b := engine.DMPairKeys(key)
		c = &conv{key: key, keys: [2]string{a, b}, users: users, gens: gens, epoch: randomID(6)}
		if err := e.store.CreateConv(store.ConvMeta{Name: key, Epoch: c.epoch, Users: users, Gens: gens}); err != nil {
			return nil, 0, nil, unavailable(err)
		}
		ds.add(c)
	}
	e.expireConv(c, d.TS)
	off := c.top + 1
	msg := mux.Message{Room: key, Offset: off, Epoch: c.epoch, From: d.From.Name, Color: d.From.Color, Display: d.From.Display, Text: d.Text, TS: d.TS, CID: d.CID}
	if err := e.store.AppendDM(msg); err != nil {
		return nil, 0, nil, unavailable(err)
	}
	var wait *dmPending
	if e.opts.Durable { // queued with the append: its commit cannot come first
		wait = &dmPending{c: c, epoch: c.epoch, off: off}
		ds.pending = append(ds.pending, wait)
	}
	if c.hist.Len() >= e.opts.DMHistoryMax {
		ds.trimmed.Add(1)
	}
	who := &engine.Author{Name: d.From.Name, Color: d.From.Color, Display: d.From.Display}
	c.hist.Push(engine.Entry{Off: off, TS: d.TS, Who: who, Data: d.Text + d.CID, CIDLen: uint8(len(d.CID))}, e.opts.DMHistoryMax)
	c.top = off
	if !e.opts.Durable {
		c.released = off
	}
	c.last = max(c.last, d.TS)
	ds.unlink(c)
	ds.pushHead(c)
	return c, off, wait, nil
}

// dmWait gives the DM that dmAppend queued as p its release, called at
// its commit; it returns true when the commit (or its loss, p.err) came
// already: the caller then calls release itself, once it holds no lock.
// Under users.mu, after dmAppend.
func (e *Engine) dmWait(p *dmPending, release func(error)) (committed bool) {
	e.dms.mu.Lock()
	defer e.dms.mu.Unlock()
	if p.done {
		return true
	}
	p.release = release
	return false
}

// onCommitDMs releases the DMs whose appends the store committed: every
// pending one up to the last that cs names (the store commits in the
// order of the appends). On the store's writer goroutine.
func (e *Engine) onCommitDMs(cs []store.Committed) {
	ds := &e.dms
	ds.mu.Lock()
	n := 0
	for i, p := range ds.pending {
		for _, c := range cs {
			if c.DM && c.Room == p.c.key && c.Epoch == p.epoch && c.Offset >= p.off {
				n = i + 1
				break
			}
		}
	}
	done := slices.Clone(ds.pending[:n])
	for _, p := range done {
		if p.c.epoch == p.epoch && p.off > p.c.released {
			p.c.released = p.off
		}
		p.done = true
	}
	clear(ds.pending[:n])
	ds.pending = append(ds.pending[:0], ds.pending[n:]...)
	ds.mu.Unlock()
	for _, p := range done {
		if p.release != nil {
			p.release(nil)
		}
	}
}

// failPending answers the DMs still waiting for a commit once the store
// is closed (their commit was lost).
func (e *Engine) failPending() {
	ds := &e.dms
	ds.mu.Lock()
	left := ds.pending
	ds.pending = nil
	for _, p := range left {
		p.done, p.err = true, errClosedDM
	}
	ds.mu.Unlock()
	for _, p := range left {
		if p.release != nil {
			p.release(errClosedDM)
		}
	}
}

// expireConv drops c's messages older than DMHistoryAge at now (Unix ms).
// Under dms.mu.
func (e *Engine) expireConv(c *conv, now int64) {
	n := c.hist.Len()
	c.hist.Expire(now - e.opts.DMHistoryAge.Milliseconds())
	if gone := n - c.hist.Len(); gone > 0 {
		e.dms.expired.Add(int64(gone))
	}
}

// sweepDMs drops the conversations whose newest message is older than
// DMHistoryAge: from the tail of the list, so it costs what it drops.
func (e *Engine) sweepDMs() {
	if !e.dmHistory() {
		return
	}
	cutoff := e.opts.Now().Add(-e.opts.DMHistoryAge).UnixMilli()
	ds := &e.dms
	ds.mu.Lock()
	defer ds.mu.Unlock()
	for c := ds.tail; c != nil && c.last < cutoff && c.top == c.released; c = ds.tail {
		ds.expired.Add(int64(c.hist.Len()))
		e.dropConv(c)
	}
}

// DMHistory answers a window of the conversation of q.User with q.Peer, or
// an empty page when q.User (as q.Gen) has none.
func (e *Engine) DMHistory(q engine.DMQuery, done func(engine.DMPage, error)) {
	if !e.dmHistory() {
		done(engine.DMPage{Reset: q.Resume()}, nil)
		return
	}
	userKey := mux.NameKey(q.User)
	key, _ := engine.DMPair(userKey, mux.NameKey(q.Peer))
	ds := &e.dms
	ds.mu.Lock()
	c := ds.m[key]
	if c == nil || c.gens[c.side(userKey)] != q.Gen || c.released == 0 {
		ds.mu.Unlock()
		done(engine.DMPage{Reset: q.Resume()}, nil)
		return
	}
	e.expireConv(c, e.opts.Now().UnixMilli())
	page := engine.DMPage{Epoch: c.epoch, Top: c.released}
	if f := c.hist.First(); f != 0 && f <= c.released {
		page.First = f
	}
	var entries []*engine.Entry
	switch {
	case q.Resume():
		if q.Epoch == c.epoch && c.hist.Resumable(q.After, c.released, int(^uint(0)>>1)) {
			entries, page.More = c.hist.After(q.After, c.released, q.Limit)
		} else {
			page.Reset = true
			entries, page.More = c.hist.Latest(c.released, q.Limit)
		}
	case q.Before > 0:
		entries, page.More = c.hist.Before(q.Before, c.released, q.Limit)
	default:
		entries, page.More = c.hist.Latest(c.released, q.Limit)
	}
	page.Messages = make([]engine.DMEntry, len(entries))
	for i, en := range entries {
		page.Messages[i] = c.entry(en)
	}
	ds.mu.Unlock()
	done(page, nil)
}

// entry is a retained message of c as a DMEntry.
func (c *conv) entry(en *engine.Entry) engine.DMEntry {
	to := c.users[0]
	if s := c.side(mux.NameKey(en.Who.Name)); s == 0 {
		to = c.users[1]
	}
	return engine.DMEntry{Off: en.Off, TS: en.TS, From: en.Who.Name, To: to, Color: en.Who.Color, Display: en.Who.Display, Text: en.Text(), CID: en.CID()}
}

// DMList answers the conversations of user (as gen) with a visible
// message, the most recently active first.
func (e *Engine) DMList(user, gen string, limit int, done func([]engine.DMConv, bool, error)) {
	if !e.dmHistory() {
		done(nil, false, nil)
		return
	}
	key := mux.NameKey(user)
	ds := &e.dms
	ds.mu.Lock()
	var out []engine.DMConv
	for c := range ds.byUser[key] {
		s := c.side(key)
		if c.gens[s] != gen || c.released == 0 {
			continue
		}
		dc := engine.DMConv{Peer: c.users[1-s], Epoch: c.epoch, Top: c.released, TS: c.last}
		if c.keys[0] == c.keys[1] {
			dc.Peer = c.users[0]
		}
		if f := c.hist.First(); f != 0 && c.released >= f && c.released-f < uint64(c.hist.Len()) {
			dc.TS = c.hist.At(int(c.released - f)).TS
		}
		out = append(out, dc)
	}
	ds.mu.Unlock()
	out, more := engine.NewestConvs(out, limit)
	done(out, more, nil)
}

// DMStats reports the conversations kept and what was dropped.
func (e *Engine) DMStats() engine.DMStats {
	ds := &e.dms
	return engine.DMStats{Conversations: ds.count.Load(), Trimmed: ds.trimmed.Load(), Expired: ds.expired.Load(), Evicted: ds.evicted.Load()}
}

// errClosedDM is the answer of a DM whose commit was lost at Close.
var errClosedDM = fmt.Errorf("%w: the store closed before the private message was committed", engine.ErrClosed)

// dmSweepEvery is how often the feeder sweeps the conversations by age.
const dmSweepEvery = time.Second
