package wire

// Centrifugo v6, its client protocol v2 in JSON over WebSocket, one socket
// per tab: Centrifugo has no multi-tab sharing ("each browser tab creates a
// new connection"). What the generator sends and reads (one JSON object
// per line; a WebSocket message may hold several, newline-separated, both
// ways):
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
// configuration. Probe checks it before the run.
//
// A room is the channel chat:ROOM. With history on, every publication has an
// offset in its channel (1, 2, … within an epoch), and a positioned
// subscribe reply gives the channel's top at the subscription (Centrifugo
// buffers what is published meanwhile and sends everything above that
// offset, or disconnects the client when it cannot): imload's join point
// (Traits.JoinPoint). The publish ack carries no offset (SendResult's
// Offset is 0); publications carry no epoch (Msg.Epoch nil) and no sender
// or cid of the generator's (no content check). No recovery is asked for:
// a socket that reconnects subscribes again.
//
// Private messages have no primitive in Centrifugo. They go to a personal
// channel per user, the pattern its documentation recommends: with DMs in
// the scenario (Config.DMs), every tab subscribes to dm:USER first (its
// Attach command; namespace "dm": subscribe and publish for anonymous
// clients, no history) and a DM is a publish to the target's channel. The
// ack does not say how many sockets got it (DMResult not Counted).

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"

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

// cfNoPingDead is the dead-link time of a server that does not ping: an
// idle link says nothing.
const cfNoPingDead = 24 * time.Hour

type cfWire struct {
	dms bool // subscribe each tab to its personal channel (Config.DMs)
}

func (w cfWire) Traits() Traits {
	return Traits{Name: "Centrifugo", Hint: "a Centrifugo server", Batches: true, AttachCmd: w.dms, JoinPoint: true}
}

// URL returns the WebSocket URL of Centrifugo's bidirectional endpoint for
// target: a ws:// URL with no path (or "/") gets /connection/websocket.
func (cfWire) URL(target string) (string, error) {
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

// cfReply is a reply or push, decoded in full (greeting and probe only:
// the Reader scans its messages).
type cfReply struct {
	ID        uint32             `json:"id"`
	Error     *cfError           `json:"error"`
	Connect   *cfConnectResult   `json:"connect"`
	Subscribe *cfSubscribeResult `json:"subscribe"`
	Push      json.RawMessage    `json:"push"`
}

// cfConnectCmd is the connect command (always id 1, the first on a link).
const cfConnectCmd = `{"id":1,"connect":{"name":"imload"}}`

// cfUntil reads messages from c until the reply with id arrives and returns
// it. A push or another reply before it is an error; a ping is answered.
func cfUntil(c Conn, id uint32) (cfReply, error) {
	for {
		data, err := c.Read()
		if err != nil {
			return cfReply{}, err
		}
		var got *cfReply
		err = mux.SplitMessage(data, mux.Limits{}, func(line []byte) error {
			if isCfPing(line) {
				return c.Write([]byte("{}"))
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

// Probe connects, subscribes to a room channel (and, with DMs, to a
// personal channel) and checks that the server is set up as the generator
// needs (see the top of the file). It returns the server's name and
// version.
func (w cfWire) Probe(c Conn) (string, error) {
	if err := c.Write([]byte(cfConnectCmd)); err != nil {
		return "", err
	}
	rep, err := cfUntil(c, 1)
	if err != nil {
		return "", fmt.Errorf("no connect reply from Centrifugo (anonymous connections without a token must be allowed: client.allow_anonymous_connect_without_token): %w", err)
	}
	if rep.Connect == nil {
		return "", fmt.Errorf("the reply to connect has no connect result (is it a Centrifugo server?)")
	}
	conn := *rep.Connect
	const probe = "imload-probe"
	if err := c.Write([]byte(`{"id":2,"subscribe":{"channel":"` + cfChat + probe + `","positioned":true}}`)); err != nil {
		return "", err
	}
	rep, err = cfUntil(c, 2)
	if err != nil {
		return "", fmt.Errorf("subscribe to %s%s: %w (the namespace %q must allow subscribe and publish for anonymous subscribers; bench/centrifugo.json)", cfChat, probe, err, cfChat[:len(cfChat)-1])
	}
	if rep.Subscribe == nil || !rep.Subscribe.Positioned || rep.Subscribe.Epoch == "" {
		return "", fmt.Errorf("channels of the namespace %q are not positioned: the generator needs offsets to verify delivery (history_size and history_ttl above 0, and force_positioning or allow_positioning; bench/centrifugo.json)", cfChat[:len(cfChat)-1])
	}
	if w.dms {
		if err := c.Write([]byte(`{"id":3,"subscribe":{"channel":"` + cfDM + probe + `"}}`)); err != nil {
			return "", err
		}
		if _, err := cfUntil(c, 3); err != nil {
			return "", fmt.Errorf("subscribe to %s%s: %w (private messages go to a personal channel per user in the namespace %q, which must allow subscribe and publish for anonymous clients; or run with --dm-ratio 0)", cfDM, probe, err, cfDM[:len(cfDM)-1])
		}
	}
	return fmt.Sprintf("Centrifugo %s (client protocol v2, JSON; ping %d s, pong %v)", conn.Version, conn.Ping, conn.Pong), nil
}

// Greet sends connect and waits for its reply (Link.Attach).
func (cfWire) Greet(c Conn) (Link, error) {
	t0 := time.Now()
	if err := c.Write([]byte(cfConnectCmd)); err != nil {
		return Link{}, err
	}
	rep, err := cfUntil(c, 1)
	if err != nil {
		return Link{}, err
	}
	if rep.Connect == nil {
		return Link{}, errors.New("the reply to connect has no connect result")
	}
	l := Link{
		Heartbeat:   time.Duration(rep.Connect.Ping) * time.Second,
		AnswerPings: rep.Connect.Pong, // it disconnects a client that answers a ping it did not send
		Attach:      time.Since(t0),
		// No limit on the commands in a message; its size is limited by
		// websocket.message_size_limit (64 KiB by default), above FlushMax.
	}
	l.DeadAfter = l.Heartbeat + cfPingDelay
	if l.Heartbeat <= 0 {
		l.DeadAfter = cfNoPingDead
	}
	return l, nil
}

// cfID is the id command n of the engine goes out with: ids 0 (a pong) and
// 1 (the connect) are taken. (It wraps after 2³²−2 commands of a socket.)
func cfID(n uint64) uint64 { return (n-1)%(1<<32-2) + 2 }

// Append encodes a command: a subscribe (Attach: the personal channel;
// Join: a room's channel), a publish (Send into the room's channel, DM into
// the target's), or a pong. Channel names are escaped like any JSON string.
func (w cfWire) Append(dst []byte, c *Command) ([]byte, bool) {
	switch c.Kind {
	case Attach:
		if !w.dms {
			return dst, false
		}
		dst = append(cfStart(dst, c.ID), `"subscribe":{"channel":"`+cfDM...)
		dst = appendEsc(dst, c.User)
		return append(dst, `"}}`...), true
	case Join:
		dst = append(cfStart(dst, c.ID), `"subscribe":{"channel":"`+cfChat...)
		dst = appendEsc(dst, c.Room)
		return append(dst, `","positioned":true}}`...), true
	case Send, DM:
		dst = append(cfStart(dst, c.ID), `"publish":{"channel":"`...)
		if c.Kind == DM {
			dst = append(dst, cfDM...)
			dst = appendEsc(dst, c.To)
		} else {
			dst = append(dst, cfChat...)
			dst = appendEsc(dst, c.Room)
		}
		dst = append(dst, `","data":{"text":`...)
		dst = appendStringBytes(dst, c.Text)
		dst = append(dst, `,"ts":`...)
		dst = strconv.AppendInt(dst, time.Now().UnixMilli(), 10)
		return append(dst, "}}}"...), true
	case Pong:
		return append(dst, "{}"...), true
	}
	return dst, false
}

// cfStart begins command n: {"id":N,
func cfStart(dst []byte, n uint64) []byte {
	dst = append(dst, `{"id":`...)
	dst = strconv.AppendUint(dst, cfID(n), 10)
	return append(dst, ',')
}

func (cfWire) NewReader() Reader { return &cfReader{} }

type cfReader struct{ ev Event }

// Read decodes the replies, pushes and pings of one message.
func (r *cfReader) Read(msg []byte, kindOf func(uint64) (CmdKind, bool), emit func(*Event)) int {
	n := 0
	_ = mux.SplitMessage(msg, mux.Limits{}, func(line []byte) error {
		n++
		r.line(line, kindOf, emit)
		return nil
	})
	return n
}

// line decodes one reply, push or ping.
func (r *cfReader) line(line []byte, kindOf func(uint64) (CmdKind, bool), emit func(*Event)) {
	ev := &r.ev
	if isCfPing(line) {
		emitKind(ev, EvPing, emit)
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
		emitKind(ev, EvBad, emit)
	case hasID && id > 0:
		r.reply(id-1, errObj, result, kindOf, emit)
	case push != nil:
		r.push(push, emit)
	default:
		emitKind(ev, EvBad, emit)
	}
}

// reply decodes the reply to the engine's command n: errObj is its error,
// result its result (the value of "subscribe", "publish"…).
func (r *cfReader) reply(n uint64, errObj, result []byte, kindOf func(uint64) (CmdKind, bool), emit func(*Event)) {
	kind, found := kindOf(n)
	if !found {
		return // after its timeout (or the connect's, id 1)
	}
	ev := &r.ev
	*ev = Event{Kind: EvReply, ID: n, Cmd: kind, Code: CodeOK}
	switch {
	case errObj != nil:
		ev.Code, ev.Err = cfErrorOf(errObj)
	case kind == Join:
		var sr cfSubscribeResult
		switch {
		case json.Unmarshal(result, &sr) != nil:
			ev.Code, ev.Err = CodeBadRequest, "bad subscribe reply"
		case !sr.Positioned:
			ev.Code, ev.Err = CodeBadRequest, "not positioned"
		default:
			ev.Page = Page{Epoch: sr.Epoch, Top: sr.Offset}
		}
	case kind == DM:
		ev.DM = DMResult{Counted: false} // the ack says nothing more
	}
	emit(ev)
}

// cfErrorOf returns an error reply's code, as imload's counters class them
// (Centrifugo's 100, internal, is a server error; the others are the
// client's), and its name.
func cfErrorOf(errObj []byte) (int, string) {
	var ce cfError
	if json.Unmarshal(errObj, &ce) != nil {
		return CodeBadRequest, "bad error reply"
	}
	code := CodeBadRequest
	if ce.Code == 100 {
		code = CodeInternal
	}
	return code, strconv.Itoa(ce.Code) + " " + ce.Message
}

// push decodes a push: a publication in a room or personal channel; an
// unsubscribe, disconnect or anything else ends the session.
func (r *cfReader) push(p []byte, emit func(*Event)) {
	ev := &r.ev
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
		emitKind(ev, EvBad, emit)
		return
	}
	if pub == nil {
		if other {
			// The server unsubscribed or disconnected the client (or sent
			// what the generator did not ask for): start over.
			emitKind(ev, EvUnexpected, emit)
			emitKind(ev, EvEnd, emit)
			return
		}
		emitKind(ev, EvBad, emit)
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
		emitKind(ev, EvBad, emit)
		return
	}
	switch {
	case bytes.HasPrefix(channel, []byte(cfChat)):
		if off == 0 { // no history in the channel: nothing to verify with
			emitKind(ev, EvBad, emit)
			return
		}
		*ev = Event{Kind: EvMessage, Msg: Msg{Room: channel[len(cfChat):], Offset: off, Text: decodeString(text)}}
	case bytes.HasPrefix(channel, []byte(cfDM)):
		*ev = Event{Kind: EvDM, Msg: Msg{Text: decodeString(text)}}
	default:
		*ev = Event{Kind: EvUnexpected}
	}
	emit(ev)
}
