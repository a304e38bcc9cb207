package redis

import (
	"strconv"
	"strings"
	"sync"

	"imload/server/engine"
)

// roomTable is this node's open rooms: their logs (usually one each), and
// this node's presence entries in each room.
type roomTable struct {
	mu      sync.Mutex
	m       map[string][]*log
	present map[string]map[string]struct{} // room → NODE|NAME|COLOUR
	dirty   map[*log]struct{}              // logs whose last read failed
}

// Retained calls fn for no room: the rooms live in Redis.
func (e *Engine) Retained(func(name string)) {}

// Open subscribes to the room's channel (once per node), then reads the
// room's newest messages (making the room with a new epoch if it is
// missing and create is set), and gives the log.
func (e *Engine) Open(name string, create bool, done func(engine.Opened, error)) {
	if err := e.Health(); err != nil {
		done(engine.Opened{}, err)
		return
	}
	l := &log{e: e, name: name, keys: e.roomKeys(name), state: opening}
	e.rooms.mu.Lock()
	e.rooms.m[name] = append(e.rooms.m[name], l)
	e.rooms.mu.Unlock()
	e.sub.subscribe(l.keys.channel, func(err error) {
		if err != nil {
			e.forget(l)
			done(engine.Opened{}, e.unavailable("subscribe", err))
			return
		}
		l.read("last", 0, create, func(r readReply, err error) { e.opened(l, r, err, done) })
	})
}

// opened makes l the replica of what was read, and gives it to the node.
func (e *Engine) opened(l *log, r readReply, err error, done func(engine.Opened, error)) {
	if err != nil || r.none {
		e.forget(l)
		if err == nil {
			err = engine.ErrUnknownRoom
		}
		done(engine.Opened{}, err)
		return
	}
	l.mu.Lock()
	s := l.snapshot(r)
	for _, m := range s.msgs {
		l.ring.Push(l.entry(&m), e.opts.HistoryMax)
	}
	l.epoch, l.top = s.epoch, s.top
	l.rEpoch, l.rTop = s.epoch, s.top
	sync := l.goLive()
	pres := l.presence
	l.presence = nil
	l.mu.Unlock()
	present := make([]engine.Present, 0, len(r.present))
	for _, m := range r.present {
		if p, ok := e.parsePresent(m); ok && p.Node != e.opts.Node && !e.nodes.isGone(p.Node) {
			present = append(present, p)
		}
	}
	done(engine.Opened{Log: l, Present: present}, nil)
	for _, c := range pres {
		e.sink.Presence(l.name, c.p, c.in)
	}
	if sync {
		l.sync()
	}
	l.notify()
}

// snapshot turns what was read into a snapshot: the messages within the
// history age, this log's publishes among them matched. Under l.mu.
func (l *log) snapshot(r readReply) *snapshot {
	cutoff := l.e.opts.Now().Add(-l.e.opts.HistoryAge).UnixMilli()
	s := &snapshot{epoch: r.epoch, top: r.top, msgs: make([]msg, 0, len(r.entries))}
	for _, en := range r.entries {
		b, err := decodeBlob(en.blob)
		if err != nil || b.ts < cutoff || en.off > r.top {
			continue
		}
		m := msg{off: en.off, b: b, node: en.node, ticket: en.ticket}
		l.match(&m)
		s.msgs = append(s.msgs, m)
	}
	return s
}

// goLive ends a read: the log is live again and what arrived meanwhile is
// received. It reports whether the log must read again. Under l.mu.
func (l *log) goLive() bool {
	l.state = live
	es := l.early
	l.early = nil
	sync := false
	for _, x := range es {
		if l.recvLocked(x.epoch, x.m) {
			sync = true
		}
	}
	return sync
}

// read queues the read script for the room: mode "last" reads the newest
// messages, "after" those after offset after; with create a missing room
// is made with a new epoch.
func (l *log) read(mode string, after uint64, create bool, done func(readReply, error)) {
	e := l.e
	c, now := "", ""
	if create {
		c = "1"
	}
	if mode == "last" {
		now = strconv.FormatInt(e.now(), 10)
	}
	o := op{
		sc:   e.sc.read,
		keys: []string{l.keys.meta, l.keys.stream, l.keys.cids, l.keys.presence},
		args: []string{c, e.newEpoch(), e.ttlMS(), mode, strconv.Itoa(e.opts.HistoryMax), strconv.FormatUint(after, 10), now},
		done: func(r rueidisMessage, err error) {
			if err != nil {
				done(readReply{}, err)
				return
			}
			rr, err := parseRead(r, mode == "last")
			if err != nil {
				err = e.unavailable("read", err)
			}
			done(rr, err)
		},
	}
	if !e.shardOf('r', l.name).push(o) {
		done(readReply{}, e.unavailable("read", errQueueFull))
	}
}

// sync reads what the log missed from its stream: the messages after the
// newest it received in order, or, if its epoch changed or what it missed
// is no longer retained, the newest messages, and then the log resets.
func (l *log) sync() {
	l.mu.Lock()
	if l.state != live {
		l.mu.Unlock()
		return
	}
	l.state = syncing
	after := l.rTop
	l.mu.Unlock()
	l.e.stats.gapFills.Add(1)
	l.read("after", after, true, func(r readReply, err error) { l.onSync(after, r, err) })
}

// onSync handles what sync read.
func (l *log) onSync(after uint64, r readReply, err error) {
	e := l.e
	l.mu.Lock()
	if l.state == dropped {
		l.mu.Unlock()
		return
	}
	if err != nil {
		l.failed()
		l.mu.Unlock()
		e.markDirty(l)
		return
	}
	if r.epoch != l.rEpoch || (r.top > after && (r.first == 0 || r.first > after+1)) {
		l.mu.Unlock()
		e.stats.resyncs.Add(1)
		l.read("last", 0, true, l.onSnapshot)
		return
	}
	for _, en := range r.entries {
		b, err := decodeBlob(en.blob)
		if err != nil || en.off <= l.rTop {
			continue
		}
		m := msg{off: en.off, b: b, node: en.node, ticket: en.ticket}
		l.match(&m)
		if m.off != l.rTop+1 {
			break // cannot be: a stream has no gaps
		}
		l.push(m)
	}
	if l.rTop < r.top && len(r.entries) > 0 { // more than one read's worth
		next := l.rTop
		l.mu.Unlock()
		l.read("after", next, true, func(r readReply, err error) { l.onSync(next, r, err) })
		return
	}
	l.stale = false
	sync := l.goLive()
	l.mu.Unlock()
	if sync {
		l.sync()
	}
	l.notify()
}

// onSnapshot resets the log to the room's newest messages.
func (l *log) onSnapshot(r readReply, err error) {
	e := l.e
	l.mu.Lock()
	if l.state == dropped {
		l.mu.Unlock()
		return
	}
	if err != nil || r.none {
		l.failed()
		l.mu.Unlock()
		e.markDirty(l)
		return
	}
	s := l.snapshot(r)
	// This log's publishes received and not taken yet: visible with the
	// snapshot if their epoch goes on, else lost with it.
	carry := func(m *msg) {
		if !m.mine {
			return
		}
		if s.epoch == l.rEpoch && m.off <= s.top {
			l.outcomes = append(l.outcomes, engine.Released{Ticket: m.ticket, Off: m.off, TS: m.b.ts})
		} else {
			l.outcomes = append(l.outcomes, engine.Released{Ticket: m.ticket, Err: e.unavailable("send", errReset)})
		}
	}
	for i := range l.inbox {
		carry(&l.inbox[i])
	}
	for _, m := range l.held {
		carry(&m)
	}
	l.snap = s
	clear(l.inbox)
	l.inbox = l.inbox[:0]
	l.held = nil
	l.rEpoch, l.rTop = s.epoch, s.top
	// Dups of messages of the old epoch will never be visible.
	for i, o := range l.outcomes {
		if o.Dup {
			l.outcomes[i] = engine.Released{Ticket: o.Ticket, Err: e.unavailable("send", errReset)}
		}
	}
	l.stale = false
	sync := l.goLive()
	l.mu.Unlock()
	e.stats.resets.Add(1)
	e.opts.Logger.Warn("redis engine: room reset", "room", l.name, "epoch", s.epoch, "top", s.top)
	if sync {
		l.sync()
	}
	l.notify()
}

// failed ends a read that failed: the log is live with what it has, and
// the heartbeat has it read again. Under l.mu.
func (l *log) failed() {
	l.stale = true
	l.goLive()
}

// markDirty has the next heartbeat make l read its stream if it is still
// behind (its last read failed, or it holds messages after a gap).
func (e *Engine) markDirty(l *log) {
	e.rooms.mu.Lock()
	if e.rooms.dirty == nil {
		e.rooms.dirty = make(map[*log]struct{})
	}
	e.rooms.dirty[l] = struct{}{}
	e.rooms.mu.Unlock()
}

// retryDirty makes the logs marked dirty read their stream if they are
// still behind.
func (e *Engine) retryDirty() {
	e.rooms.mu.Lock()
	var ls []*log
	for l := range e.rooms.dirty {
		ls = append(ls, l)
	}
	clear(e.rooms.dirty)
	e.rooms.mu.Unlock()
	for _, l := range ls {
		l.mu.Lock()
		behind := l.stale || len(l.held) > 0
		l.mu.Unlock()
		if behind {
			l.sync()
		}
	}
}

// resyncAll makes every open log read what it missed (the subscription
// was made again, or the inbox overflowed).
func (e *Engine) resyncAll() {
	e.rooms.mu.Lock()
	var ls []*log
	for _, logs := range e.rooms.m {
		ls = append(ls, logs...)
	}
	e.rooms.mu.Unlock()
	for _, l := range ls {
		l.sync()
	}
}

// Drop stops this node's replica of the room: the room lives on in Redis.
func (e *Engine) Drop(name string, l engine.Log) {
	if ll, ok := l.(*log); ok && ll.name == name {
		e.forget(ll)
	}
}

// forget removes l from the room table, and unsubscribes from the room's
// channel with the last log of the room.
func (e *Engine) forget(l *log) {
	l.mu.Lock()
	was := l.state
	l.state = dropped
	l.mu.Unlock()
	if was == dropped {
		return
	}
	e.rooms.mu.Lock()
	logs := e.rooms.m[l.name]
	for i, x := range logs {
		if x == l {
			logs = append(logs[:i], logs[i+1:]...)
			break
		}
	}
	if len(logs) == 0 {
		delete(e.rooms.m, l.name)
	} else {
		e.rooms.m[l.name] = logs
	}
	delete(e.rooms.dirty, l)
	e.rooms.mu.Unlock()
	e.sub.unsubscribe(l.keys.channel)
}

// logsOf returns the logs of room.
func (e *Engine) logsOf(room string) []*log {
	e.rooms.mu.Lock()
	defer e.rooms.mu.Unlock()
	return append([]*log(nil), e.rooms.m[room]...)
}

// roomMessage hands a message published on a room's channel to the
// room's logs.
func (e *Engine) roomMessage(room, payload string) error {
	f := fields{s: payload}
	epoch, off, node, ticket, bs := f.next(), f.uint(), f.next(), f.uint(), f.next()
	if f.err != nil {
		return f.err
	}
	b, err := decodeBlob(bs)
	if err != nil {
		return err
	}
	for _, l := range e.logsOf(room) {
		l.recv(epoch, msg{off: off, b: b, node: node, ticket: ticket})
	}
	return nil
}

// Who reads the presence of a room this node has not opened.
func (e *Engine) Who(room string, done func([]engine.Present, error)) {
	k := e.roomKeys(room)
	o := op{
		sc:   e.sc.who,
		keys: []string{k.meta, k.presence},
		args: []string{strconv.FormatInt(e.now(), 10)},
		done: func(r rueidisMessage, err error) {
			if err != nil {
				done(nil, err)
				return
			}
			arr, err := r.ToArray()
			if err != nil || len(arr) == 0 {
				done(nil, e.unavailable("who", errPayload))
				return
			}
			if kind, _ := arr[0].ToString(); kind == "none" || len(arr) < 2 {
				done(nil, engine.ErrUnknownRoom)
				return
			}
			members, _ := arr[1].AsStrSlice()
			out := make([]engine.Present, 0, len(members))
			for _, m := range members {
				if p, ok := e.parsePresent(m); ok && !e.nodes.isGone(p.Node) {
					out = append(out, p)
				}
			}
			done(out, nil)
		},
	}
	if !e.shardOf('r', room).push(o) {
		done(nil, e.unavailable("who", errQueueFull))
	}
}

// presenceMember is a presence entry: NODE|NAME|COLOUR, then |DISPLAY
// for a user with a display name (which may hold '|': it comes last;
// names and colours never do).
func presenceMember(node string, u engine.Author) string {
	m := node + "|" + u.Name + "|" + u.Color
	if u.Display != "" {
		m += "|" + u.Display
	}
	return m
}

// parsePresent reads a presence entry.
func (e *Engine) parsePresent(m string) (engine.Present, bool) {
	node, rest, ok1 := strings.Cut(m, "|")
	name, rest, ok2 := strings.Cut(rest, "|")
	if !ok1 || !ok2 {
		return engine.Present{}, false
	}
	color, display, _ := strings.Cut(rest, "|")
	return engine.Present{User: *e.author(name, color, display), Node: node}, true
}

// SetPresent records this node's presence entry of u in room (or its
// end) and publishes the change on the room's channel. While the entry
// lives this node refreshes it (refresh).
func (e *Engine) SetPresent(room string, u engine.Author, in bool) {
	member := presenceMember(e.opts.Node, u)
	e.rooms.mu.Lock()
	set := e.rooms.present[room]
	if in {
		if set == nil {
			set = make(map[string]struct{})
			e.rooms.present[room] = set
		}
		set[member] = struct{}{}
	} else if set != nil {
		delete(set, member)
		if len(set) == 0 {
			delete(e.rooms.present, room)
		}
	}
	e.rooms.mu.Unlock()
	flag := ""
	if in {
		flag = "1"
	}
	payload := appendField(appendField(appendField(appendField([]byte{'p'}, flag), e.opts.Node), u.Name), u.Color)
	if u.Display != "" {
		payload = appendField(payload, u.Display)
	}
	k := e.roomKeys(room)
	o := op{
		sc:   e.sc.presence,
		keys: []string{k.presence, k.channel},
		args: []string{flag, member, strconv.FormatInt(e.now()+e.opts.SessionTTL.Milliseconds(), 10), e.ttlMS(), string(payload)},
		done: func(rueidisMessage, error) {},
	}
	if !e.shardOf('r', room).push(o) {
		e.stats.presenceDropped.Add(1)
	}
}

// presenceMessage hands a presence change of another node to the node.
func (e *Engine) presenceMessage(room, payload string) error {
	f := fields{s: payload}
	in, node, name, color := f.next(), f.next(), f.next(), f.next()
	display := ""
	if f.err == nil && f.s != "" {
		display = f.next()
	}
	if f.err != nil {
		return f.err
	}
	if node == e.opts.Node {
		return nil
	}
	c := presenceCall{p: engine.Present{User: *e.author(name, color, display), Node: node}, in: in == "1"}
	for _, l := range e.logsOf(room) {
		l.mu.Lock()
		if l.state == opening { // the node gets it once it has the log
			l.presence = append(l.presence, c)
			l.mu.Unlock()
			return nil
		}
		l.mu.Unlock()
	}
	e.sink.Presence(room, c.p, c.in)
	return nil
}

// refreshRooms keeps the keys of the rooms open on this node alive, and
// this node's presence entries in them: those of slice part of parts.
func (e *Engine) refreshRooms(part, parts uint32) {
	now := e.now()
	exp := strconv.FormatInt(now+e.opts.SessionTTL.Milliseconds(), 10)
	e.rooms.mu.Lock()
	type one struct {
		room    string
		members []string
	}
	rooms := make([]one, 0, len(e.rooms.m)+len(e.rooms.present))
	for name := range e.rooms.m {
		if inPart('r', name, part, parts) {
			rooms = append(rooms, one{room: name, members: members(e.rooms.present[name])})
		}
	}
	for name, set := range e.rooms.present {
		if _, open := e.rooms.m[name]; !open && inPart('r', name, part, parts) {
			rooms = append(rooms, one{room: name, members: members(set)})
		}
	}
	e.rooms.mu.Unlock()
	for _, r := range rooms {
		k := e.roomKeys(r.room)
		args := append([]string{e.ttlMS(), strconv.FormatInt(now, 10), exp}, r.members...)
		o := op{sc: e.sc.touchRoom, keys: []string{k.meta, k.stream, k.cids, k.presence}, args: args, done: func(rueidisMessage, error) {}}
		if !e.shardOf('r', r.room).pushBG(o) {
			e.stats.refreshesDrop.Add(1)
		}
	}
}

// members lists a set's members.
func members(set map[string]struct{}) []string {
	out := make([]string, 0, len(set))
	for m := range set {
		out = append(out, m)
	}
	return out
}

// ttlMS is the time to live of a room's keys, in ms.
func (e *Engine) ttlMS() string { return strconv.FormatInt(e.opts.HistoryAge.Milliseconds(), 10) }

// newEpoch returns an epoch for a room made anew: unique to this engine,
// and unlikely to be any other node's.
func (e *Engine) newEpoch() string {
	v := e.epochBase + e.epochSeq.Add(1)
	return strconv.FormatUint(v&(1<<48-1)|1<<48, 16)[1:]
}

// errReset is the error of a publish whose room was reset.
var errReset = errorString("the room was reset (its history was lost): send again")

type errorString string

func (s errorString) Error() string { return string(s) }
