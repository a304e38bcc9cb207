package loadgen

// --protocol socketio: the generator drives a plain socket.io v4 chat server
// over WebSocket only (Engine.IO v4 packets, socket.io v5 packets on the
// namespace "/"), one socket per tab: socket.io has no multi-tab sharing. The
// scenario, scheduling, pacing, churn, ladder, histograms and result are the
// engine's; this file is the wire and what verification needs on top.
//
// The conventions expected of the server (bench/server.js implements them):
//
//	ws://HOST:PORT/socket.io/?EIO=4&transport=websocket
//	S: 0{"sid":…,"pingInterval":25000,"pingTimeout":20000,"maxPayload":…}
//	C: 40                      S: 40{"sid":…}
//	S: 2                       C: 3          (the server pings)
//	C: 42<id>["join",{"room":"r1","user":"u1"}]
//	S: 43<id>[{"ok":true,"members":N}]
//	C: 42<id>["message",{"room":"r1","text":"…","ts":<ms>}]
//	S: 43<id>[{"ok":true,"seq":N}]          (N: per room, from 1)
//	S: 42["message",{"room":"r1","text":"…","ts":…,"from":"u1","seq":N}]
//	                                         (to every socket in the room, sender included)
//	C: 42<id>["dm",{"to":"u2","text":"…"}]
//	S: 43<id>[{"ok":true,"sessions":N}] or 43<id>[{"ok":false,"error":"user_offline"}]
//	S: 42["dm",{"from":"u1","to":"u2","text":"…"}]  (to every socket of user u2)
//
// Verification. The per-room seq plays the part of imload's offsets: every
// socket in a room must receive each seq once, in order. socket.io has no
// recovery: a socket that reconnects rejoins, and what it missed meanwhile is
// excused as for a churned tab (its track closes at the highest seq it
// received; the rejoin starts a new one).
//
// The join ack does not say the room's seq at the join, so the start of a
// track is worked out at the end of the run, from two facts about a server
// that handles one event at a time and writes to each socket in order:
//
//   - a message whose send the generator issued after it had the join's ack
//     was handled after the join: the socket must get it;
//   - once the socket got seq k of a room, it must get every later seq.
//
// A message sent before the ack may have been handled before or after the
// join. So a track's start is the highest seq of the sends issued before its
// join ack (known from their acks, or from any delivery of a send whose ack
// was lost), lowered to just below the first seq it received. Messages in
// the uncertain window that the socket did get still count as deliveries.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"imload/mux"
)

// SocketIOURL returns the socket.io WebSocket URL for target: a ws:// URL
// with no path (or "/") gets /socket.io/, and EIO=4&transport=websocket are
// added to the query when missing.
func SocketIOURL(target string) (string, error) {
	u, err := url.Parse(target)
	if err != nil {
		return "", err
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/socket.io/"
	}
	q := u.Query()
	if q.Get("EIO") == "" {
		q.Set("EIO", "4")
	}
	if q.Get("transport") == "" {
		q.Set("transport", "websocket")
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// sioOpen is the body of the Engine.IO open packet.
type sioOpen struct {
	SID          string `json:"sid"`
	PingInterval int    `json:"pingInterval"`
	PingTimeout  int    `json:"pingTimeout"`
	MaxPayload   int    `json:"maxPayload"`
}

// probeSocketIO opens one socket.io connection to addr and reads its open
// packet.
func probeSocketIO(ctx context.Context, addr string) (sioOpen, error) {
	var o sioOpen
	data, err := firstMessage(ctx, addr, "Engine.IO open packet")
	if err != nil {
		return o, err
	}
	if err := parseSioOpen(data, &o); err != nil {
		return o, err
	}
	return o, nil
}

func parseSioOpen(data []byte, o *sioOpen) error {
	if len(data) == 0 || data[0] != '0' {
		return fmt.Errorf("first packet from the server is not an Engine.IO open packet: %.60q", data)
	}
	if err := json.Unmarshal(data[1:], o); err != nil || o.SID == "" {
		return fmt.Errorf("bad Engine.IO open packet %.80q: %v", data, err)
	}
	return nil
}

// ---- the wire ----

type sioWire struct{}

func (sioWire) clientPings() bool { return false }
func (sioWire) batches() bool     { return false }
func (sioWire) resumes() bool     { return false }

// greet reads the open packet, connects to the namespace "/" and waits for
// its acknowledgement (the "attach" histogram: 40 sent → 40 received).
func (sioWire) greet(s *sock, l *wsLink) error {
	b := s.b
	e := b.e
	g := newGreeting(e, l)
	defer g.done()
	read, write := g.read, g.write
	data, err := read()
	if err != nil {
		return err
	}
	var open sioOpen
	if err := parseSioOpen(data, &open); err != nil {
		return err
	}
	t0 := time.Now()
	if err := write("40"); err != nil {
		return err
	}
	for connected := false; !connected; {
		if data, err = read(); err != nil {
			return err
		}
		switch {
		case bytes.HasPrefix(data, []byte("40")):
			connected = true
		case string(data) == "2":
			if err := write("3"); err != nil {
				return err
			}
		case bytes.HasPrefix(data, []byte("44")):
			return fmt.Errorf("socket.io refused the connection to namespace /: %.100s", data[2:])
		default:
			return fmt.Errorf("unexpected packet before the namespace connect: %.60q", data)
		}
	}
	e.shardHists(b.sh).recordOne(hAttach, time.Since(t0).Microseconds())
	b.mu.Lock()
	s.hb = time.Duration(open.PingInterval) * time.Millisecond
	if s.hb <= 0 {
		s.hb = 25 * time.Second
	}
	s.dead2 = s.hb + time.Duration(open.PingTimeout)*time.Millisecond
	if open.PingTimeout <= 0 {
		s.dead2 = s.hb + 20*time.Second
	}
	if e.sc.DeadAfter > 0 {
		s.dead2 = e.sc.DeadAfter
	}
	s.maxBytes = e.sc.FlushMax
	if open.MaxPayload > 0 && open.MaxPayload < s.maxBytes {
		s.maxBytes = open.MaxPayload
	}
	b.mu.Unlock()
	return nil
}

// attach joins t's rooms (a new incarnation every time: no resume).
func (w sioWire) attachUp(s *sock) { attachEach(w, s) }

func (sioWire) attach(s *sock, t *tab) {
	e := s.b.e
	b := s.b
	if t.sid == 0 {
		t.renew(b, 1)
	}
	for i := range t.tracks {
		buf, seq := s.sioStart("join")
		buf = append(buf, `{"room":`...)
		buf = mux.AppendString(buf, e.rooms[t.tracks[i].room])
		buf = append(buf, `,"user":`...)
		buf = mux.AppendString(buf, b.name)
		buf = append(buf, "}]"...)
		s.queueCmd(pending{kind: cJoin, t: t, track: int16(i)}, seq, buf)
	}
	s.resumeWait += len(t.tracks)
}

// send emits a message to a room, or a dm.
func (sioWire) send(s *sock, p pending) {
	e := s.b.e
	t := p.t
	var buf []byte
	var seq uint64
	if p.kind == cDM {
		buf, seq = s.sioStart("dm")
		buf = append(buf, `{"to":`...)
		buf = mux.AppendString(buf, p.target.name)
		buf = append(buf, `,"text":"`...)
		buf = appendText(buf, e.tag, t.gid, p.mseq, p.sched/1000, e.sc.MsgSize)
		buf = append(buf, `"}]`...)
	} else {
		buf, seq = s.sioStart("message")
		buf = append(buf, `{"room":`...)
		buf = mux.AppendString(buf, e.rooms[t.tracks[p.track].room])
		buf = append(buf, `,"text":"`...)
		buf = appendText(buf, e.tag, t.gid, p.mseq, p.sched/1000, e.sc.MsgSize)
		buf = append(buf, `","ts":`...)
		buf = strconv.AppendInt(buf, time.Now().UnixMilli(), 10)
		buf = append(buf, "}]"...)
	}
	s.queueCmd(p, seq, buf)
}

// sioStart begins an event packet with an ack id: 42<id>["<name>", and
// returns it (in the browser's scratch buffer) with the id.
func (s *sock) sioStart(name string) ([]byte, uint64) {
	s.seq++
	buf := append(s.b.scratch[:0], "42"...)
	buf = strconv.AppendUint(buf, s.seq, 10)
	buf = append(buf, `["`...)
	buf = append(buf, name...)
	buf = append(buf, `",`...)
	return buf, s.seq
}

// ---- reading ----

func (sioWire) read(r *reader, msg []byte) {
	r.locked(func() {
		r.s.b.e.cnt.framesIn.Add(1)
		r.sioPacket(msg)
	})
}

// sioPacket handles one Engine.IO packet (b.mu held).
func (r *reader) sioPacket(msg []byte) {
	s := r.s
	e := s.b.e
	if len(msg) == 0 {
		e.cnt.err(eProtocol)
		return
	}
	switch msg[0] {
	case '2': // ping: answer at once
		s.queueNow([]byte("3"))
	case '3', '6': // pong, noop
	case '1': // the server closes the session
		s.kill(true)
	case '4':
		if len(msg) < 2 {
			e.cnt.err(eProtocol)
			return
		}
		switch msg[1] {
		case '2':
			r.sioEvent(msg[2:])
		case '3':
			r.sioAck(msg[2:])
		case '0': // a late connect acknowledgement: nothing to do
		case '1', '4': // disconnected from the namespace, or refused
			e.cnt.err(eProtocol)
			s.kill(true)
		default:
			e.cnt.err(eProtocol)
		}
	default:
		e.cnt.err(eProtocol)
	}
}

// sioArgs splits the JSON array of an event or ack ([a, b, …] after an
// optional ack id) and returns its first two values.
func sioArgs(p []byte) (id uint64, hasID bool, a, b []byte, ok bool) {
	i := 0
	for i < len(p) && p[i] >= '0' && p[i] <= '9' {
		i++
	}
	if i > 0 {
		id, hasID = parseUint(p[:i])
	}
	p = p[i:]
	if len(p) < 2 || p[0] != '[' {
		return 0, false, nil, nil, false
	}
	j := skipWS(p, 1)
	if j < len(p) && p[j] == ']' {
		return id, hasID, nil, nil, true
	}
	end := skipValue(p, j)
	if end < 0 {
		return 0, false, nil, nil, false
	}
	a = p[j:end]
	j = skipWS(p, end)
	if j < len(p) && p[j] == ',' {
		j = skipWS(p, j+1)
		end = skipValue(p, j)
		if end < 0 {
			return 0, false, nil, nil, false
		}
		b = p[j:end]
	}
	return id, hasID, a, b, true
}

// sioEvent handles 42… from the server: "message" and "dm".
func (r *reader) sioEvent(p []byte) {
	s := r.s
	e := s.b.e
	if len(p) > 0 && p[0] == '/' { // another namespace: not ours
		e.cnt.err(eUnexpectedMsg)
		return
	}
	_, _, name, body, ok := sioArgs(p)
	if !ok || body == nil {
		e.cnt.err(eProtocol)
		return
	}
	t := s.tabs[0]
	switch string(name) {
	case `"message"`:
		var room, text []byte
		var seq uint64
		ok := scanObject(body, func(k, v []byte) bool {
			switch string(k) {
			case "room":
				var ok bool
				room, ok = unquote(v)
				return ok
			case "seq":
				var ok bool
				seq, ok = parseUint(v)
				return ok
			case "text":
				if len(v) < 2 || v[0] != '"' {
					return false
				}
				text = v[1 : len(v)-1]
			}
			return true
		})
		if !ok || room == nil || seq == 0 {
			e.cnt.err(eProtocol)
			return
		}
		ri, known := e.roomIdx[string(room)]
		if !known {
			e.cnt.err(eUnexpectedMsg)
			return
		}
		if !t.open || t.sid == 0 {
			return // closing
		}
		tr := t.trackOf(ri)
		if tr == nil || !tr.joined {
			e.cnt.err(eUnexpectedMsg)
			return
		}
		if e.sio.nUnresolved.Load() > 0 {
			if h, ok := parseHeader(text, e.tag); ok {
				e.sio.resolve(ri, dmKey{sender: h.gid, seq: h.seq}, seq)
			}
		}
		r.deliver(tr, seq, nil, text, true)
	case `"dm"`:
		var text []byte
		_ = scanObject(body, func(k, v []byte) bool {
			if string(k) == "text" && len(v) >= 2 && v[0] == '"' {
				text = v[1 : len(v)-1]
			}
			return true
		})
		h, ok := parseHeader(text, e.tag)
		if !ok || !t.open || t.sid == 0 {
			return
		}
		if e.dms.received(dmKey{sender: h.gid, seq: h.seq}, s.b, t) {
			r.lat = append(r.lat, latRec{hDM, e.nowUs() - h.schedUs})
		}
	}
}

// sioAck handles 43<id>[{…}].
func (r *reader) sioAck(p []byte) {
	s := r.s
	b := s.b
	e := b.e
	id, hasID, body, _, ok := sioArgs(p)
	if !ok || !hasID {
		e.cnt.err(eProtocol)
		return
	}
	pd, found := s.takePending(id)
	if !found {
		return // after its timeout
	}
	now := e.now()
	r.lat = append(r.lat, latRec{hReply, (now - pd.issued) / 1000})
	var okv bool
	var n uint64
	var errName string
	if body != nil {
		scanObject(body, func(k, v []byte) bool {
			switch string(k) {
			case "ok":
				okv = string(v) == "true"
			case "seq", "sessions":
				n, _ = parseUint(v)
			case "error":
				x, _ := unquote(v)
				errName = string(x)
			}
			return true
		})
	}
	if errName == "" {
		errName = "not_ok"
	}
	t := pd.t
	if t != nil && (t.sid != pd.sid || !t.open) {
		if pd.kind == cJoin {
			r.resumeStep()
		}
		if pd.kind == cSend && okv && n > 0 {
			// Its tab closed meanwhile, but the message went out.
			e.noteTop(t.b.rooms[pd.track], n)
			e.sio.acked(t.b.rooms[pd.track], pd.issued, n)
		}
		return
	}
	switch pd.kind {
	case cJoin:
		if !okv {
			e.cnt.err(eAttach)
			e.cnt.replyErr(400, errName)
			s.kill(true)
			return
		}
		tr := &t.tracks[pd.track]
		tr.joined = true
		tr.joinAt = now
		// The server knows the socket's user from its first join: from
		// now on it is a DM recipient.
		t.attached()
		r.resumeStep()
	case cSend:
		if !okv || n == 0 {
			e.cnt.replyErr(400, errName)
			return
		}
		room := t.tracks[pd.track].room
		e.noteTop(room, n)
		e.sio.acked(room, pd.issued, n)
	case cDM:
		k := dmKey{sender: t.gid, seq: pd.mseq}
		switch {
		case okv:
			e.dms.replied(k, int(n))
		case errName == "user_offline":
			e.dmOffline.Add(1)
			e.dms.replied(k, dmRefused)
		default:
			e.cnt.replyErr(400, errName)
		}
	}
}

// ---- verification state ----

// sioState is what socket.io verification needs beyond the engine's: the
// (issue time, seq) of every send, per room, and the tracks closed during
// the run, counted at the end when every seq is known.
type sioState struct {
	mu          sync.Mutex
	sends       [][]sioSend // per room
	unres       map[dmKey]sioSend
	nUnresolved atomic.Int64
	done        []sioDone
}

type sioSend struct {
	issued int64 // ns since start
	seq    uint64
	room   int32
}

type sioDone struct {
	tr roomTrack
	to uint64
}

func newSioState(rooms int) *sioState {
	return &sioState{sends: make([][]sioSend, rooms), unres: map[dmKey]sioSend{}}
}

// acked logs a send of room issued at issued and numbered seq.
func (st *sioState) acked(room int32, issued int64, seq uint64) {
	st.mu.Lock()
	st.sends[room] = append(st.sends[room], sioSend{issued: issued, seq: seq})
	st.mu.Unlock()
}

// unconfirmed notes a send in flight whose ack will never come (its socket
// died, its tab closed, or it timed out): the server may have handled it.
// Its seq is learnt if anyone receives it.
func (st *sioState) unconfirmed(p pending) {
	if p.issued == 0 {
		return
	}
	st.mu.Lock()
	st.unres[dmKey{sender: p.t.gid, seq: p.mseq}] = sioSend{issued: p.issued, room: p.t.b.rooms[p.track]}
	st.nUnresolved.Store(int64(len(st.unres)))
	st.mu.Unlock()
}

// resolve learns the seq of an unconfirmed send from a delivery.
func (st *sioState) resolve(room int32, k dmKey, seq uint64) {
	st.mu.Lock()
	if u, ok := st.unres[k]; ok && u.room == room {
		delete(st.unres, k)
		st.nUnresolved.Store(int64(len(st.unres)))
		st.sends[room] = append(st.sends[room], sioSend{issued: u.issued, seq: seq})
	}
	st.mu.Unlock()
}

// closed keeps a finished track, to count when the run is over.
func (st *sioState) closed(tr *roomTrack, to uint64) {
	if !tr.joined {
		return
	}
	st.mu.Lock()
	st.done = append(st.done, sioDone{tr: *tr, to: to})
	st.mu.Unlock()
}

// caughtUp reports whether a member track has everything it must get for
// the drain to end, top being the room's highest known seq.
func (st *sioState) caughtUp(tr *roomTrack, top uint64) bool {
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
func (st *sioState) count(v *verifier) {
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

func sioServerName(o sioOpen) string {
	return strings.TrimSpace(fmt.Sprintf("socket.io (Engine.IO 4, ping %d ms / %d ms)", o.PingInterval, o.PingTimeout))
}
