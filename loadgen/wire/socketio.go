package wire

// socket.io v4 over WebSocket only (Engine.IO v4 packets, socket.io v5
// packets on the namespace "/"), one socket per tab: socket.io has no
// multi-tab sharing. The conventions expected of the server
// (bench/server.js implements them):
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
// The per-room seq stands for imload's offsets (Msg.Offset, SendResult's
// Offset; no epochs). The join ack does not say the room's seq at the join
// (Traits.JoinPoint is false): the engine works the start of a track out at
// the end of the run. No resume, no attach command: a tab is attached once
// the server knows its user, from its first join.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// sioDefaultPing and sioDefaultTimeout are Engine.IO's defaults, for an
// open packet that gives none.
const (
	sioDefaultPing    = 25 * time.Second
	sioDefaultTimeout = 20 * time.Second
)

type sioWire struct{}

func (sioWire) Traits() Traits {
	return Traits{Name: "socket.io", Hint: "a socket.io server", Stats: true}
}

// URL returns the socket.io WebSocket URL for target: a ws:// URL with no
// path (or "/") gets /socket.io/, and EIO=4&transport=websocket are added
// to the query when missing.
func (sioWire) URL(target string) (string, error) {
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

func parseSioOpen(data []byte, o *sioOpen) error {
	if len(data) == 0 || data[0] != '0' {
		return fmt.Errorf("first packet from the server is not an Engine.IO open packet: %.60q", data)
	}
	if err := json.Unmarshal(data[1:], o); err != nil || o.SID == "" {
		return fmt.Errorf("bad Engine.IO open packet %.80q: %v", data, err)
	}
	return nil
}

// Probe reads the open packet.
func (sioWire) Probe(c Conn) (string, error) {
	data, err := c.Read()
	if err != nil {
		return "", fmt.Errorf("no Engine.IO open packet from the server: %w", err)
	}
	var o sioOpen
	if err := parseSioOpen(data, &o); err != nil {
		return "", err
	}
	return strings.TrimSpace(fmt.Sprintf("socket.io (Engine.IO 4, ping %d ms / %d ms)", o.PingInterval, o.PingTimeout)), nil
}

// Greet reads the open packet, connects to the namespace "/" and waits for
// its acknowledgement (Link.Attach: 40 sent → 40 received).
func (sioWire) Greet(c Conn) (Link, error) {
	data, err := c.Read()
	if err != nil {
		return Link{}, err
	}
	var open sioOpen
	if err := parseSioOpen(data, &open); err != nil {
		return Link{}, err
	}
	t0 := time.Now()
	if err := c.Write([]byte("40")); err != nil {
		return Link{}, err
	}
	for connected := false; !connected; {
		if data, err = c.Read(); err != nil {
			return Link{}, err
		}
		switch {
		case bytes.HasPrefix(data, []byte("40")):
			connected = true
		case string(data) == "2":
			if err := c.Write([]byte("3")); err != nil {
				return Link{}, err
			}
		case bytes.HasPrefix(data, []byte("44")):
			return Link{}, fmt.Errorf("socket.io refused the connection to namespace /: %.100s", data[2:])
		default:
			return Link{}, fmt.Errorf("unexpected packet before the namespace connect: %.60q", data)
		}
	}
	l := Link{
		Heartbeat:   time.Duration(open.PingInterval) * time.Millisecond,
		MaxBytes:    open.MaxPayload,
		AnswerPings: true,
		Attach:      time.Since(t0),
	}
	if l.Heartbeat <= 0 {
		l.Heartbeat = sioDefaultPing
	}
	l.DeadAfter = l.Heartbeat + time.Duration(open.PingTimeout)*time.Millisecond
	if open.PingTimeout <= 0 {
		l.DeadAfter = l.Heartbeat + sioDefaultTimeout
	}
	return l, nil
}

// Append encodes an event packet with an ack id (the engine's number), or
// a pong.
func (sioWire) Append(dst []byte, c *Command) ([]byte, bool) {
	switch c.Kind {
	case Join:
		dst = sioStart(dst, c.ID, "join")
		dst = append(dst, `{"room":`...)
		dst = appendString(dst, c.Room)
		dst = append(dst, `,"user":`...)
		dst = appendString(dst, c.User)
	case Send:
		dst = sioStart(dst, c.ID, "message")
		dst = append(dst, `{"room":`...)
		dst = appendString(dst, c.Room)
		dst = append(dst, `,"text":`...)
		dst = appendStringBytes(dst, c.Text)
		dst = append(dst, `,"ts":`...)
		dst = strconv.AppendInt(dst, time.Now().UnixMilli(), 10)
	case DM:
		dst = sioStart(dst, c.ID, "dm")
		dst = append(dst, `{"to":`...)
		dst = appendString(dst, c.To)
		dst = append(dst, `,"text":`...)
		dst = appendStringBytes(dst, c.Text)
	case Pong:
		return append(dst, '3'), true
	default:
		return dst, false
	}
	return append(dst, "}]"...), true
}

// sioStart begins an event packet with an ack id: 42<id>["<name>",
func sioStart(dst []byte, id uint64, name string) []byte {
	dst = append(dst, "42"...)
	dst = strconv.AppendUint(dst, id, 10)
	dst = append(dst, `["`...)
	dst = append(dst, name...)
	return append(dst, `",`...)
}

func (sioWire) NewReader() Reader { return &sioReader{} }

type sioReader struct{ ev Event }

// Read decodes one Engine.IO packet (a WebSocket message holds one).
func (r *sioReader) Read(msg []byte, kindOf func(uint64) (CmdKind, bool), emit func(*Event)) int {
	r.packet(msg, kindOf, emit)
	return 1
}

func (r *sioReader) packet(msg []byte, kindOf func(uint64) (CmdKind, bool), emit func(*Event)) {
	ev := &r.ev
	if len(msg) == 0 {
		emitKind(ev, EvBad, emit)
		return
	}
	switch msg[0] {
	case '2': // ping
		emitKind(ev, EvPing, emit)
	case '3', '6': // pong, noop
	case '1': // the server closes the session
		emitKind(ev, EvEnd, emit)
	case '4':
		if len(msg) < 2 {
			emitKind(ev, EvBad, emit)
			return
		}
		switch msg[1] {
		case '2':
			r.event(msg[2:], emit)
		case '3':
			r.ack(msg[2:], kindOf, emit)
		case '0': // a late connect acknowledgement: nothing to do
		case '1', '4': // disconnected from the namespace, or refused
			emitKind(ev, EvBad, emit)
			emitKind(ev, EvEnd, emit)
		default:
			emitKind(ev, EvBad, emit)
		}
	default:
		emitKind(ev, EvBad, emit)
	}
}

// emitKind emits an event that is only its kind.
func emitKind(ev *Event, k EventKind, emit func(*Event)) {
	*ev = Event{Kind: k}
	emit(ev)
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

// event decodes 42… from the server: "message" and "dm".
func (r *sioReader) event(p []byte, emit func(*Event)) {
	ev := &r.ev
	if len(p) > 0 && p[0] == '/' { // another namespace: not ours
		emitKind(ev, EvUnexpected, emit)
		return
	}
	_, _, name, body, ok := sioArgs(p)
	if !ok || body == nil {
		emitKind(ev, EvBad, emit)
		return
	}
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
			emitKind(ev, EvBad, emit)
			return
		}
		*ev = Event{Kind: EvMessage, Msg: Msg{Room: room, Offset: seq, Text: decodeString(text)}}
		emit(ev)
	case `"dm"`:
		var text []byte
		_ = scanObject(body, func(k, v []byte) bool {
			if string(k) == "text" && len(v) >= 2 && v[0] == '"' {
				text = v[1 : len(v)-1]
			}
			return true
		})
		*ev = Event{Kind: EvDM, Msg: Msg{Text: decodeString(text)}}
		emit(ev)
	}
}

// ack decodes 43<id>[{…}], the reply to a command.
func (r *sioReader) ack(p []byte, kindOf func(uint64) (CmdKind, bool), emit func(*Event)) {
	ev := &r.ev
	id, hasID, body, _, ok := sioArgs(p)
	if !ok || !hasID {
		emitKind(ev, EvBad, emit)
		return
	}
	kind, found := kindOf(id)
	if !found {
		return // after its timeout
	}
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
	*ev = Event{Kind: EvReply, ID: id, Cmd: kind, Code: CodeOK}
	switch {
	case kind == DM && !okv && errName == "user_offline":
		ev.Code, ev.Err = CodeUserOffline, errName
	case !okv || (kind == Send && n == 0): // a send's ack must say its seq
		ev.Code, ev.Err = CodeBadRequest, errName
	case kind == Send:
		ev.Send = SendResult{Offset: n}
	case kind == DM:
		ev.DM = DMResult{Sessions: int(n), Counted: true}
	}
	emit(ev)
}
