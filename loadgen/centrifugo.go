package loadgen

// --protocol centrifugo: the generator drives a Centrifugo v6 server with its
// client protocol v2 in JSON over WebSocket, one socket per tab: Centrifugo
// has no multi-tab sharing ("each browser tab creates a new connection").
// The scenario, scheduling, pacing, churn, ladder, histograms and result are
// the engine's; this file is the wire.
//
// What the generator sends and reads (one JSON object per line; a WebSocket
// message may hold several, newline-separated, both ways):
//
//	ws://HOST:PORT/connection/websocket
//	C: {"id":1,"connect":{"name":"imload"}}
//	S: {"id":1,"connect":{"client":"…","version":"6.9.1 OSS","ping":25,"pong":true}}
//	S: {}                       C: {}          (the server pings; pong when "pong":true)
//	C: {"id":N,"subscribe":{"channel":"dm:u1"}}                    (DMs, see below)
//	C: {"id":N,"subscribe":{"channel":"chat:r1","positioned":true}}
//	S: {"id":N,"subscribe":{"epoch":"…","offset":41,"positioned":true}}
//	C: {"id":N,"publish":{"channel":"chat:r1","data":{"text":"…","ts":<ms>}}}
//	S: {"id":N,"publish":{}}                                       (the ack)
//	S: {"push":{"channel":"chat:r1","pub":{"data":{…},"info":{…},"offset":42}}}
//	                          (to every subscriber of the channel, publisher included)
//	S: {"id":N,"error":{"code":103,"message":"permission denied"}}
//
// The server must allow anonymous connections without a token, subscribe and
// publish for anonymous subscribers in the namespace "chat", with history
// and positioning (history_size and history_ttl above zero, and
// force_positioning or allow_positioning): bench/centrifugo.json is such a
// configuration. probeCentrifugo checks it before the run.
//
// Verification. A room is the channel chat:ROOM. With history on, every
// publication has an offset in its channel (1, 2, … within an epoch), and a
// positioned subscribe reply gives the channel's top at the subscription
// (Centrifugo buffers what is published meanwhile and sends everything above
// that offset, or disconnects the client when it cannot): exactly imload's
// join point. So a track starts at the reply's offset and must receive every
// offset above it once and in order, as with imload. The publish ack carries
// no offset: the room's top is learnt from the deliveries (the sender is a
// subscriber and receives its own message), so a message acked and then
// delivered to nobody at all, the last of its room, would go unseen; any
// other loss shows as a gap or a tail behind what others received.
//
// Centrifugo's clients do not resume here (the generator does not ask for
// recovery): a socket that reconnects subscribes again as a new incarnation,
// what it missed meanwhile is excused as for a churned tab, and a publish in
// flight is unconfirmed, never re-sent (engine.linkLost, sendUnconfirmed).
//
// Private messages have no primitive in Centrifugo. They are mapped to a
// personal channel per user, the pattern its documentation recommends: every
// tab subscribes to dm:USER (namespace "dm": subscribe and publish for
// anonymous clients, no history) and a DM is a publish to the target's
// channel. The ack does not say how many sockets got it (dmUncounted): the
// generator's own view of the target's tabs is what is checked. Without DMs
// in the scenario (--dm-ratio 0) there is no personal channel.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"imload/mux"
)

// Channel namespaces the generator uses (bench/centrifugo.json).
const (
	cfChat = "chat:" // a room
	cfDM   = "dm:"   // a user's personal channel, for private messages
)

// cfPingDelay is how long after the server's ping interval a silent link is
// dead, as in Centrifugo's own SDKs (maxServerPingDelay).
const cfPingDelay = 10 * time.Second

// CentrifugoURL returns the WebSocket URL of Centrifugo's bidirectional
// endpoint for target: a ws:// URL with no path (or "/") gets
// /connection/websocket.
func CentrifugoURL(target string) (string, error) {
	u, err := url.Parse(target)
	if err != nil {
		return "", err
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/connection/websocket"
	}
	return u.String(), nil
}

// cfError is an error in a reply.
type cfError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

func (e *cfError) Error() string { return fmt.Sprintf("error %d: %s", e.Code, e.Message) }

// cfConnectResult is the body of a connect reply.
type cfConnectResult struct {
	Client  string `json:"client"`
	Version string `json:"version"`
	Ping    int    `json:"ping"` // seconds between the server's pings (0: none)
	Pong    bool   `json:"pong"` // the server expects an answer to its pings
}

// cfSubscribeResult is the body of a subscribe reply.
type cfSubscribeResult struct {
	Epoch      string `json:"epoch"`
	Offset     uint64 `json:"offset"`
	Positioned bool   `json:"positioned"`
}

// cfReply is a reply or push, decoded in full (greet and probe only: the
// reader scans its messages without decoding them).
type cfReply struct {
	ID        uint32             `json:"id"`
	Error     *cfError           `json:"error"`
	Connect   *cfConnectResult   `json:"connect"`
	Subscribe *cfSubscribeResult `json:"subscribe"`
	Push      json.RawMessage    `json:"push"`
}

// cfConnectCmd is the connect command (always id 1, the first on a link).
const cfConnectCmd = `{"id":1,"connect":{"name":"imload"}}`

// cfSession reads replies from a blocking connection (greet, probe) until
// want has been answered, answering pings on the way.
type cfSession struct {
	read  func() ([]byte, error)
	write func(string) error
}

// until reads messages until the reply with id arrives and returns it. A
// push or another reply before it is an error; a ping is answered.
func (c cfSession) until(id uint32) (cfReply, error) {
	for {
		data, err := c.read()
		if err != nil {
			return cfReply{}, err
		}
		var got *cfReply
		err = mux.SplitMessage(data, mux.Limits{}, func(line []byte) error {
			if isCfPing(line) {
				return c.write("{}")
			}
			var rep cfReply
			if err := json.Unmarshal(line, &rep); err != nil {
				return fmt.Errorf("bad message from Centrifugo %.80q: %w", line, err)
			}
			if rep.ID != id || got != nil {
				return fmt.Errorf("unexpected message from Centrifugo while waiting for the reply to command %d: %.80q", id, line)
			}
			got = &rep
			return nil
		})
		if err != nil {
			return cfReply{}, err
		}
		if got != nil {
			if got.Error != nil {
				return *got, got.Error
			}
			return *got, nil
		}
	}
}

// isCfPing reports whether a line is the server's ping (an empty object).
func isCfPing(line []byte) bool {
	return len(line) == 2 && line[0] == '{' && line[1] == '}'
}

// probeCentrifugo connects once to addr, subscribes to a room channel (and,
// with dms, to a personal channel) and checks that the server is set up as
// the generator needs (see the top of the file). It returns the server's
// name and version.
func probeCentrifugo(ctx context.Context, addr string, dms bool) (string, error) {
	c, err := dialProbe(ctx, addr)
	if err != nil {
		return "", err
	}
	defer func() {
		_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
		c.Close()
	}()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	cs := cfSession{
		read: func() ([]byte, error) {
			_, data, err := c.ReadMessage()
			return data, err
		},
		write: func(p string) error { return c.WriteMessage(websocket.TextMessage, []byte(p)) },
	}
	if err := cs.write(cfConnectCmd); err != nil {
		return "", err
	}
	rep, err := cs.until(1)
	if err != nil {
		return "", fmt.Errorf("no connect reply from Centrifugo (anonymous connections without a token must be allowed: client.allow_anonymous_connect_without_token): %w", err)
	}
	if rep.Connect == nil {
		return "", fmt.Errorf("the reply to connect has no connect result (is it a Centrifugo server?)")
	}
	conn := *rep.Connect
	const probe = "imload-probe"
	if err := cs.write(`{"id":2,"subscribe":{"channel":"` + cfChat + probe + `","positioned":true}}`); err != nil {
		return "", err
	}
	rep, err = cs.until(2)
	if err != nil {
		return "", fmt.Errorf("subscribe to %s%s: %w (the namespace %q must allow subscribe and publish for anonymous subscribers; bench/centrifugo.json)", cfChat, probe, err, cfChat[:len(cfChat)-1])
	}
	if rep.Subscribe == nil || !rep.Subscribe.Positioned || rep.Subscribe.Epoch == "" {
		return "", fmt.Errorf("channels of the namespace %q are not positioned: the generator needs offsets to verify delivery (history_size and history_ttl above 0, and force_positioning or allow_positioning; bench/centrifugo.json)", cfChat[:len(cfChat)-1])
	}
	if dms {
		if err := cs.write(`{"id":3,"subscribe":{"channel":"` + cfDM + probe + `"}}`); err != nil {
			return "", err
		}
		if _, err := cs.until(3); err != nil {
			return "", fmt.Errorf("subscribe to %s%s: %w (private messages go to a personal channel per user in the namespace %q, which must allow subscribe and publish for anonymous clients; or run with --dm-ratio 0)", cfDM, probe, err, cfDM[:len(cfDM)-1])
		}
	}
	return cfServerName(conn), nil
}

// cfServerName names the server for the result, from a connect reply.
func cfServerName(c cfConnectResult) string {
	return fmt.Sprintf("Centrifugo %s (client protocol v2, JSON; ping %d s, pong %v)", c.Version, c.Ping, c.Pong)
}

// ---- the wire ----

// cfWire speaks Centrifugo's client protocol. Whether the server wants its
// pings answered is learnt from the connect replies (the same for all).
type cfWire struct {
	noPong atomic.Bool
}

func (*cfWire) clientPings() bool { return false }
func (*cfWire) batches() bool     { return true }
func (*cfWire) resumes() bool     { return false }

// greet sends connect and waits for its reply (the "attach" histogram).
func (w *cfWire) greet(s *sock, l *wsLink) error {
	b := s.b
	e := b.e
	g := newGreeting(e, l)
	defer g.done()
	t0 := time.Now()
	if err := g.write(cfConnectCmd); err != nil {
		return err
	}
	rep, err := cfSession{read: g.read, write: g.write}.until(1)
	if err != nil {
		return err
	}
	if rep.Connect == nil {
		return errors.New("the reply to connect has no connect result")
	}
	e.shardHists(b.sh).recordOne(hAttach, time.Since(t0).Microseconds())
	w.noPong.Store(!rep.Connect.Pong)
	b.mu.Lock()
	s.hb = time.Duration(rep.Connect.Ping) * time.Second
	s.dead2 = s.hb + cfPingDelay
	if s.hb <= 0 {
		s.dead2 = 24 * time.Hour // no pings: an idle link says nothing
	}
	if e.sc.DeadAfter > 0 {
		s.dead2 = e.sc.DeadAfter
	}
	// No limit on the commands in a message; its size is limited by
	// websocket.message_size_limit (64 KiB by default), above FlushMax.
	s.maxFrames = 0
	s.maxBytes = e.sc.FlushMax
	s.omu.Lock()
	s.batch, s.spare = nil, nil // new limits
	s.omu.Unlock()
	b.mu.Unlock()
	return nil
}

func (w *cfWire) attachUp(s *sock) { attachEach(w, s) }

// attach subscribes t to its personal channel (with DMs) and to its rooms'
// channels: a new incarnation every time (no recovery).
func (*cfWire) attach(s *sock, t *tab) {
	e := s.b.e
	b := s.b
	if t.sid == 0 {
		t.renew(b, 1)
	}
	// Channel names are the engine's user and room names: letters, digits
	// and '-', nothing to escape.
	n := 0
	if e.sc.DMRatio > 0 {
		buf, id := s.cfStart()
		buf = append(buf, `"subscribe":{"channel":"`+cfDM...)
		buf = append(buf, b.name...)
		buf = append(buf, `"}}`...)
		s.queueCmd(pending{kind: cAttach, t: t}, id, buf)
		n++
	}
	for i := range t.tracks {
		buf, id := s.cfStart()
		buf = append(buf, `"subscribe":{"channel":"`+cfChat...)
		buf = append(buf, e.rooms[t.tracks[i].room]...)
		buf = append(buf, `","positioned":true}}`...)
		s.queueCmd(pending{kind: cJoin, t: t, track: int16(i)}, id, buf)
	}
	s.resumeWait += n + len(t.tracks)
}

// send publishes a room message into its room's channel, or a DM into the
// target's personal channel.
func (*cfWire) send(s *sock, p pending) {
	e := s.b.e
	t := p.t
	buf, id := s.cfStart()
	buf = append(buf, `"publish":{"channel":"`...)
	if p.kind == cDM {
		buf = append(buf, cfDM...)
		buf = append(buf, p.target.name...)
	} else {
		buf = append(buf, cfChat...)
		buf = append(buf, e.rooms[t.tracks[p.track].room]...)
	}
	buf = append(buf, `","data":{"text":"`...)
	buf = appendText(buf, e.tag, t.gid, p.mseq, p.sched/1000, e.sc.MsgSize)
	buf = append(buf, `","ts":`...)
	buf = strconv.AppendInt(buf, time.Now().UnixMilli(), 10)
	buf = append(buf, "}}}"...)
	s.queueCmd(p, id, buf)
}

// cfStart begins a command with a fresh id ({"id":N,) in the browser's
// scratch buffer and returns it with the id. Ids are uint32 and never 0.
func (s *sock) cfStart() ([]byte, uint64) {
	s.seq++
	if uint32(s.seq) <= 1 { // 0 is a pong, 1 the connect
		s.seq += 2 - uint64(uint32(s.seq))
	}
	id := uint64(uint32(s.seq))
	buf := append(s.b.scratch[:0], `{"id":`...)
	buf = strconv.AppendUint(buf, id, 10)
	buf = append(buf, ',')
	return buf, id
}

// ---- reading ----

func (w *cfWire) read(r *reader, msg []byte) {
	r.lockedFrames(msg, func(line []byte) { w.frame(r, line) })
}

// frame handles one reply, push or ping (b.mu held).
func (w *cfWire) frame(r *reader, line []byte) {
	s := r.s
	e := s.b.e
	if isCfPing(line) {
		if !w.noPong.Load() {
			s.queueNow([]byte("{}"))
		}
		return
	}
	var id uint64
	var errObj, push, result []byte
	hasID := false
	ok := scanObject(line, func(k, v []byte) bool {
		switch string(k) {
		case "id":
			var ok bool
			id, ok = parseUint(v)
			hasID = true
			return ok
		case "error":
			errObj = v
		case "push":
			push = v
		default:
			result = v
		}
		return true
	})
	switch {
	case !ok:
		e.cnt.err(eProtocol)
	case hasID && id > 0:
		r.cfReply(id, errObj, result)
	case push != nil:
		r.cfPush(push)
	default:
		e.cnt.err(eProtocol)
	}
}

// cfPush handles a push: a publication in a room or personal channel.
func (r *reader) cfPush(p []byte) {
	s := r.s
	e := s.b.e
	var channel, pub []byte
	other := false
	ok := scanObject(p, func(k, v []byte) bool {
		switch string(k) {
		case "channel":
			var ok bool
			channel, ok = unquote(v)
			return ok
		case "pub":
			pub = v
		default: // join, leave, unsubscribe, message, disconnect…
			other = true
		}
		return true
	})
	if !ok {
		e.cnt.err(eProtocol)
		return
	}
	if pub == nil {
		if other {
			// The server unsubscribed or disconnected the client (or sent
			// what the generator did not ask for): start over.
			e.cnt.err(eUnexpectedMsg)
			s.kill(true)
			return
		}
		e.cnt.err(eProtocol)
		return
	}
	var text []byte
	var off uint64
	ok = scanObject(pub, func(k, v []byte) bool {
		switch string(k) {
		case "data":
			return scanObject(v, func(k, v []byte) bool {
				if string(k) == "text" {
					if len(v) < 2 || v[0] != '"' {
						return false
					}
					text = v[1 : len(v)-1]
				}
				return true
			})
		case "offset":
			var ok bool
			off, ok = parseUint(v)
			return ok
		}
		return true
	})
	if !ok {
		e.cnt.err(eProtocol)
		return
	}
	t := s.tabs[0]
	if !t.open || t.sid == 0 {
		return // closing
	}
	switch {
	case bytes.HasPrefix(channel, []byte(cfChat)):
		ri, known := e.roomIdx[string(channel[len(cfChat):])]
		if !known {
			e.cnt.err(eUnexpectedMsg)
			return
		}
		tr := t.trackOf(ri)
		if tr == nil || !tr.joined {
			e.cnt.err(eUnexpectedMsg)
			return
		}
		if off == 0 { // no history in the channel: nothing to verify with
			e.cnt.err(eProtocol)
			return
		}
		r.record(tr, off, text, true)
	case bytes.HasPrefix(channel, []byte(cfDM)):
		h, ok := parseHeader(text, e.tag)
		if !ok {
			return
		}
		if e.dms.received(dmKey{sender: h.gid, seq: h.seq}, s.b, t) {
			r.lat = append(r.lat, latRec{hDM, e.nowUs() - h.schedUs})
		}
	default:
		e.cnt.err(eUnexpectedMsg)
	}
}

// cfReply handles the reply to command id: errObj is its error, result its
// result (the value of "subscribe", "publish"…).
func (r *reader) cfReply(id uint64, errObj, result []byte) {
	s := r.s
	e := s.b.e
	pd, found := s.takePending(id)
	if !found {
		return // after its timeout
	}
	now := e.now()
	r.lat = append(r.lat, latRec{hReply, (now - pd.issued) / 1000})
	code, errName := 0, ""
	if errObj != nil {
		code, errName = cfErrorOf(errObj)
	}
	t := pd.t
	if t != nil && (t.sid != pd.sid || !t.open) {
		// Its tab closed (or its link was lost) meanwhile.
		if pd.kind == cJoin || pd.kind == cAttach {
			r.resumeStep()
		}
		return
	}
	switch pd.kind {
	case cAttach, cJoin:
		var sr cfSubscribeResult
		if errObj == nil && pd.kind == cJoin {
			if json.Unmarshal(result, &sr) != nil {
				code, errName = 400, "bad subscribe reply"
			} else if !sr.Positioned {
				code, errName = 400, "not positioned"
			}
		}
		if errName != "" {
			e.cnt.err(eAttach)
			e.cnt.replyErr(code, errName)
			s.kill(true)
			return
		}
		if pd.kind == cJoin {
			tr := &t.tracks[pd.track]
			tr.joined = true
			tr.joinAt = now
			tr.epoch = sr.Epoch
			tr.from = sr.Offset
			e.noteEpoch(tr.room, sr.Epoch, sr.Offset)
		}
		if pd.kind == cAttach || e.sc.DMRatio == 0 {
			// Subscribed to its personal channel (sent first), or to a
			// room when there is none: from now on it is a DM recipient.
			t.attached()
		}
		r.resumeStep()
	case cSend:
		if errName != "" {
			e.cnt.replyErr(code, errName)
		}
		// The ack says nothing more: the offset comes with the push.
	case cDM:
		if errName != "" {
			e.cnt.replyErr(code, errName)
			return
		}
		e.dms.replied(dmKey{sender: t.gid, seq: pd.mseq}, dmUncounted)
	}
}

// cfErrorOf returns an error reply's code, as imload's counters class them
// (Centrifugo's 100, internal, is a server error; the others are the
// client's), and its name.
func cfErrorOf(errObj []byte) (int, string) {
	var ce cfError
	if json.Unmarshal(errObj, &ce) != nil {
		return 400, "bad error reply"
	}
	code := 400
	if ce.Code == 100 {
		code = 500
	}
	return code, strconv.Itoa(ce.Code) + " " + ce.Message
}
