package wire

// imload's own protocol (docs/protocol.md): JSON frames, several per
// WebSocket message, newline-separated, each naming its session (sid) or
// sessions (sids). The server says hello first; the client pings; a lost
// link resumes every room from its last offset (join with epoch and
// offset, then history pages), and the tabs of a socket resuming a room
// from the same point share one join (sids).

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"time"

	"imload/mux"
	"imload/reports"
)

// imloadDefaultFrames is the most frames the client merges into one
// WebSocket message when the server's hello gives no limit.
const imloadDefaultFrames = 128

type imloadWire struct{}

func (imloadWire) Traits() Traits {
	return Traits{
		Name: reports.ProtocolImload, Hint: "an imload server, and is the URL's path /ws",
		ClientPings: true, Batches: true, Resumes: true, Shared: true, AttachCmd: true,
		JoinPoint: true, Content: true, DMToSenderTabs: true, Stats: true, AddrList: true, Tokens: true,
	}
}

// URL returns target: imload's URLs are dialled as given.
func (imloadWire) URL(target string) (string, error) { return target, nil }

// Probe reads the server's hello and checks its protocol version.
func (imloadWire) Probe(c Conn) (string, error) {
	data, err := c.Read()
	if err != nil {
		return "", fmt.Errorf("no hello from the server: %w", err)
	}
	var h mux.Hello
	err = mux.SplitMessage(data, mux.Limits{}, func(fr []byte) error {
		f, err := mux.DecodeServerFrame(fr)
		if err == nil && f.T == mux.TypeHello {
			err = mux.BodyOf(f.Body, &h)
		}
		return err
	})
	if err != nil {
		return "", fmt.Errorf("bad hello from the server: %w", err)
	}
	if h.Version != mux.ProtocolVersion {
		return "", fmt.Errorf("the server speaks protocol version %d, this load generator %d", h.Version, mux.ProtocolVersion)
	}
	return h.Server, nil
}

// Greet reads the hello frame: heartbeat, dead-link time and limits.
func (imloadWire) Greet(c Conn) (Link, error) {
	data, err := c.Read()
	if err != nil {
		return Link{}, err
	}
	var hello *mux.Hello
	err = mux.SplitMessage(data, mux.Limits{}, func(fr []byte) error {
		f, err := mux.DecodeServerFrame(fr)
		if err != nil {
			return err
		}
		if f.T == mux.TypeHello && hello == nil {
			var h mux.Hello
			if err := mux.BodyOf(f.Body, &h); err != nil {
				return err
			}
			hello = &h
		}
		return nil
	})
	if err != nil {
		return Link{}, err
	}
	if hello == nil {
		return Link{}, errors.New("first message from the server is not a hello frame")
	}
	l := Link{
		Heartbeat:  time.Duration(hello.HeartbeatMS) * time.Millisecond,
		DeadAfter:  time.Duration(hello.TimeoutMS) * time.Millisecond,
		MaxFrames:  hello.MaxFrames,
		MaxBytes:   hello.MaxMessage,
		MaxHistory: hello.MaxHistory,
	}
	if l.MaxFrames <= 0 {
		l.MaxFrames = imloadDefaultFrames
	}
	return l, nil
}

// Append encodes a command frame. The engine's numbers are the frames'
// seq as they are.
func (imloadWire) Append(dst []byte, c *Command) ([]byte, bool) {
	switch c.Kind {
	case Attach:
		body := mux.EncodeBody(mux.AttachReq{Name: c.User, Token: c.Token, Mode: mux.ModeLoadgen, JWT: c.JWT})
		return mux.AppendCmd(dst, c.Sid, c.ID, mux.CmdAttach, body), true
	case Refresh:
		return mux.AppendCmd(dst, c.Sid, c.ID, mux.CmdRefresh, mux.EncodeBody(mux.RefreshReq{JWT: c.JWT})), true
	case Join:
		req := mux.JoinReq{Room: c.Room}
		if c.Resume {
			req.Epoch, req.Offset, req.SIDs = c.Epoch, c.Offset, c.Sids
		} else {
			req.History = c.History
		}
		return mux.AppendCmd(dst, c.Sid, c.ID, mux.CmdJoin, mux.EncodeBody(req)), true
	case Send, DM:
		// By hand, without an intermediate body: the most frequent command.
		name, key, val := mux.CmdSend, `{"room":`, c.Room
		if c.Kind == DM {
			name, key, val = mux.CmdDM, `{"to":`, c.To
		}
		dst = appendCmdHead(dst, c.Sid, c.ID, name)
		dst = append(dst, key...)
		dst = appendString(dst, val)
		dst = append(dst, `,"text":`...)
		dst = appendStringBytes(dst, c.Text)
		if len(c.Cid) > 0 {
			dst = append(dst, `,"cid":`...)
			dst = appendStringBytes(dst, c.Cid)
		}
		return append(dst, "}}"...), true
	case Detach:
		return mux.AppendCmd(dst, c.Sid, c.ID, mux.CmdDetach, nil), true
	case History:
		req := mux.HistoryReq{Room: c.Room, Epoch: c.Epoch, After: c.After, Limit: c.Limit}
		return mux.AppendCmd(dst, c.Sid, c.ID, mux.CmdHistory, mux.EncodeBody(req)), true
	case Ping:
		return mux.AppendPing(dst, c.ID), true
	}
	return dst, false
}

// appendCmdHead appends what mux.AppendCmd puts before a command's body,
// up to and with `"body":`.
func appendCmdHead(dst []byte, sid uint32, seq uint64, cmd string) []byte {
	dst = append(dst, `{"t":"cmd","sid":`...)
	dst = strconv.AppendUint(dst, uint64(sid), 10)
	dst = append(dst, `,"seq":`...)
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, `,"cmd":`...)
	dst = appendString(dst, cmd)
	return append(dst, `,"body":`...)
}

func (imloadWire) NewReader() Reader { return &imloadReader{} }

// imloadReader decodes imload's frames: room-message pushes with the
// scanner (parsePushMsg), everything else with mux.DecodeServerFrame.
type imloadReader struct {
	ev   Event
	push pushMsg
	msgs []Msg // a page's messages
}

var pushMsgPrefix = []byte(`{"t":"push"`)

func (r *imloadReader) Read(msg []byte, kindOf func(uint64) (CmdKind, bool), emit func(*Event)) int {
	n := 0
	_ = mux.SplitMessage(msg, mux.Limits{}, func(fr []byte) error {
		n++
		r.frame(fr, kindOf, emit)
		return nil
	})
	return n
}

// frame decodes one frame.
func (r *imloadReader) frame(fr []byte, kindOf func(uint64) (CmdKind, bool), emit func(*Event)) {
	ev := &r.ev
	if bytes.HasPrefix(fr, pushMsgPrefix) && parsePushMsg(fr, &r.push) {
		p := &r.push
		*ev = Event{Kind: EvMessage, Sids: p.sids, Msg: Msg{Room: p.room, Epoch: p.epoch, Offset: p.offset,
			From: p.from, Cid: p.cid, Text: decodeString(p.text)}}
		emit(ev)
		return
	}
	f, err := mux.DecodeServerFrame(fr)
	if err != nil {
		*ev = Event{Kind: EvBad}
		emit(ev)
		return
	}
	switch f.T {
	case mux.TypeReply:
		kind, ok := kindOf(f.Seq)
		if !ok {
			return // a reply after its timeout
		}
		*ev = Event{Kind: EvReply, ID: f.Seq, Cmd: kind, Code: f.Code, Err: f.Err}
		if f.Code == mux.CodeOK {
			ev.Malformed = !r.result(ev, kind, f.Body)
		}
	case mux.TypePush:
		*ev = Event{Sids: f.SIDs}
		if ev.Sids == nil {
			ev.Sids = []uint32{} // for no session (nil would be every one)
		}
		switch f.Ev {
		case mux.EvMsg:
			var m mux.Message
			if mux.BodyOf(f.Body, &m) != nil {
				*ev = Event{Kind: EvBad}
				break
			}
			ev.Kind, ev.Msg = EvMessage, msgOf(&m)
		case mux.EvDM:
			var m mux.DM
			if mux.BodyOf(f.Body, &m) != nil {
				*ev = Event{Kind: EvBad}
				break
			}
			ev.Kind, ev.Msg = EvDM, Msg{From: []byte(m.From), Cid: []byte(m.CID), Text: []byte(m.Text)}
		case mux.EvTokenExpiring:
			ev.Kind = EvTokenExpiring
		case mux.EvDetached:
			var d mux.Detached
			_ = mux.BodyOf(f.Body, &d)
			ev.Kind, ev.Code, ev.Err = EvDetached, d.Code, d.Error
		default:
			return // presence, notices
		}
	case mux.TypePong:
		*ev = Event{Kind: EvPong, ID: f.Seq}
	case mux.TypeGoAway:
		var g mux.GoAway
		_ = mux.BodyOf(f.Body, &g)
		*ev = Event{Kind: EvGoAway, Retry: time.Duration(g.RetryMS) * time.Millisecond,
			Kicked: g.Reason == mux.GoAwayTooManyConns}
	case mux.TypeError:
		*ev = Event{Kind: EvError}
	default:
		return // a second hello
	}
	emit(ev)
}

// result decodes the body of a successful reply to a command of kind
// into ev; false when it cannot be decoded.
func (r *imloadReader) result(ev *Event, kind CmdKind, body []byte) bool {
	switch kind {
	case Join:
		var jr mux.JoinResp
		if mux.BodyOf(body, &jr) != nil {
			return false
		}
		ev.Page = Page{Epoch: jr.Epoch, Top: jr.Top, Reset: jr.Reset, More: jr.More, Sids: jr.SIDs,
			Messages: r.msgsOf(jr.Messages)}
	case History:
		var hr mux.HistoryResp
		if mux.BodyOf(body, &hr) != nil {
			return false
		}
		ev.Page = Page{Epoch: hr.Epoch, Top: hr.Top, First: hr.First, Reset: hr.Reset, More: hr.More,
			Messages: r.msgsOf(hr.Messages)}
	case Send:
		var sr mux.SendResp
		if mux.BodyOf(body, &sr) != nil {
			return false
		}
		ev.Send = SendResult{Epoch: sr.Epoch, Offset: sr.Offset, Dup: sr.Dup}
	case DM:
		var dr mux.DMResp
		if mux.BodyOf(body, &dr) != nil {
			return false
		}
		ev.DM = DMResult{Sessions: dr.Sessions, Counted: true}
	}
	return true
}

// msgsOf returns ms as Msgs, in the reader's scratch.
func (r *imloadReader) msgsOf(ms []mux.Message) []Msg {
	r.msgs = r.msgs[:0]
	for i := range ms {
		r.msgs = append(r.msgs, msgOf(&ms[i]))
	}
	return r.msgs
}

func msgOf(m *mux.Message) Msg {
	return Msg{Room: []byte(m.Room), Epoch: []byte(m.Epoch), Offset: m.Offset,
		From: []byte(m.From), Cid: []byte(m.CID), Text: []byte(m.Text)}
}

// pushMsg is a room-message push as the scanner found it (fields alias the
// frame).
type pushMsg struct {
	sids   []uint32
	room   []byte
	epoch  []byte
	offset uint64
	from   []byte
	cid    []byte // nil when the message has none
	text   []byte // raw JSON string content (may hold escapes)
}

// parsePushMsg decodes a room-message push with the scanner, without
// allocating. ok is false for anything else, and for a push it does not
// understand whole (an escape in a name, no epoch…): the caller falls back
// to the full decoder.
func parsePushMsg(frame []byte, p *pushMsg) bool {
	var isPush, isMsg bool
	var body []byte
	*p = pushMsg{sids: p.sids[:0]}
	ok := scanObject(frame, func(k, v []byte) bool {
		switch string(k) {
		case "t":
			isPush = string(v) == `"push"`
		case "ev":
			isMsg = string(v) == `"msg"`
		case "sids":
			var ok bool
			p.sids, ok = parseSids(v, p.sids[:0])
			return ok
		case "body":
			body = v
		}
		return true
	})
	if !ok || !isPush || !isMsg || body == nil {
		return false
	}
	bodyOK := scanObject(body, func(k, v []byte) bool {
		switch string(k) {
		case "room":
			r, ok := unquote(v)
			p.room = r
			return ok
		case "epoch":
			e, ok := unquote(v)
			p.epoch = e
			return ok
		case "offset":
			o, ok := parseUint(v)
			p.offset = o
			return ok
		case "from":
			f, ok := unquote(v)
			p.from = f
			return ok
		case "cid":
			c, ok := unquote(v)
			p.cid = c
			return ok
		case "text":
			if len(v) < 2 || v[0] != '"' {
				return false
			}
			p.text = v[1 : len(v)-1]
		}
		return true
	})
	return bodyOK && p.room != nil && p.epoch != nil && p.offset > 0 && len(p.sids) > 0
}
