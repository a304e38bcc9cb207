package mux

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// The Append functions write one frame (without the '\n' separator) to dst
// and return the extended slice. They are hand-written so that the hot paths
// (a push per connection, a reply per command) allocate nothing: the body of
// a room message is encoded once with EncodeBody and the same bytes are
// written into every connection's push.

// EncodeBody encodes a body with encoding/json. Bodies are plain structs of
// this package; an error here is a programming error.
func EncodeBody(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic("mux: cannot encode body: " + err.Error())
	}
	return b
}

// AppendReply appends a successful reply (code 200) with the given body
// (raw JSON; nil means no body).
func AppendReply(dst []byte, sid uint32, seq uint64, body []byte) []byte {
	dst = append(dst, `{"t":"reply","sid":`...)
	dst = strconv.AppendUint(dst, uint64(sid), 10)
	dst = append(dst, `,"seq":`...)
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, `,"code":200`...)
	if len(body) > 0 {
		dst = append(dst, `,"body":`...)
		dst = append(dst, body...)
	}
	return append(dst, '}')
}

// AppendErrorReply appends a failed reply carrying e's code, name and message.
func AppendErrorReply(dst []byte, sid uint32, seq uint64, e *Error) []byte {
	dst = append(dst, `{"t":"reply","sid":`...)
	dst = strconv.AppendUint(dst, uint64(sid), 10)
	dst = append(dst, `,"seq":`...)
	dst = strconv.AppendUint(dst, seq, 10)
	dst = appendErrFields(dst, e)
	return append(dst, '}')
}

func appendErrFields(dst []byte, e *Error) []byte {
	dst = append(dst, `,"code":`...)
	dst = strconv.AppendInt(dst, int64(e.Code), 10)
	dst = append(dst, `,"error":`...)
	dst = AppendString(dst, e.Name)
	dst = append(dst, `,"msg":`...)
	return AppendString(dst, clip(e.Msg, MaxErrorMsgBytes)) // e may not come from Errorf
}

// AppendErrorFrame appends an error frame: the answer to a frame that could
// not be handled as a command (malformed, unknown type). seq is the frame's
// seq if it could be read, else 0 (then omitted).
func AppendErrorFrame(dst []byte, seq uint64, e *Error) []byte {
	dst = append(dst, `{"t":"error"`...)
	if seq > 0 {
		dst = append(dst, `,"seq":`...)
		dst = strconv.AppendUint(dst, seq, 10)
	}
	dst = appendErrFields(dst, e)
	return append(dst, '}')
}

// A push frame is written as PushPrefix(ev) + the JSON array of session ids
// + PushBodyKey + body + PushTail. Servers cache the session-id array per
// (connection, room) and encode the body once per message, so that a
// fan-out copies bytes and allocates nothing:
//
//	{"t":"push","ev":"msg","sids":[1,3],"body":{...}}

// PushPrefix returns the constant start of a push frame of event ev.
func PushPrefix(ev string) []byte {
	dst := append([]byte(nil), `{"t":"push","ev":`...)
	dst = AppendString(dst, ev)
	return append(dst, `,"sids":`...)
}

// PushBodyKey separates the session ids from the body in a push frame.
const PushBodyKey = `,"body":`

// PushTail is the byte that closes a push frame after its body.
const PushTail = '}'

// AppendSIDs appends a JSON array of session ids.
func AppendSIDs(dst []byte, sids []uint32) []byte {
	dst = append(dst, '[')
	for i, s := range sids {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = strconv.AppendUint(dst, uint64(s), 10)
	}
	return append(dst, ']')
}

// AppendPush appends a whole push frame.
func AppendPush(dst []byte, sids []uint32, ev string, body []byte) []byte {
	dst = append(dst, `{"t":"push","ev":`...)
	dst = AppendString(dst, ev)
	dst = append(dst, `,"sids":`...)
	dst = AppendSIDs(dst, sids)
	dst = append(dst, PushBodyKey...)
	dst = append(dst, body...)
	return append(dst, PushTail)
}

// AppendPong appends the answer to ping seq.
func AppendPong(dst []byte, seq uint64) []byte {
	dst = append(dst, `{"t":"pong","seq":`...)
	dst = strconv.AppendUint(dst, seq, 10)
	return append(dst, '}')
}

// AppendHello appends the hello frame.
func AppendHello(dst []byte, h Hello) []byte {
	dst = append(dst, `{"t":"hello","body":`...)
	dst = append(dst, EncodeBody(h)...)
	return append(dst, '}')
}

// AppendGoAway appends a goaway frame.
func AppendGoAway(dst []byte, g GoAway) []byte {
	dst = append(dst, `{"t":"goaway","body":`...)
	dst = append(dst, EncodeBody(g)...)
	return append(dst, '}')
}

// AppendCmd appends a command frame (client side).
func AppendCmd(dst []byte, sid uint32, seq uint64, cmd string, body []byte) []byte {
	dst = append(dst, `{"t":"cmd","sid":`...)
	dst = strconv.AppendUint(dst, uint64(sid), 10)
	dst = append(dst, `,"seq":`...)
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, `,"cmd":`...)
	dst = AppendString(dst, cmd)
	if len(body) > 0 {
		dst = append(dst, `,"body":`...)
		dst = append(dst, body...)
	}
	return append(dst, '}')
}

// AppendPing appends a ping frame (client side).
func AppendPing(dst []byte, seq uint64) []byte {
	dst = append(dst, `{"t":"ping","seq":`...)
	dst = strconv.AppendUint(dst, seq, 10)
	return append(dst, '}')
}

const hexDigits = "0123456789abcdef"

// AppendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD;
// control characters, '"', '\\', '<', '>', '&', U+2028 and U+2029 are
// escaped, so the output is safe to embed anywhere JSON is.
func AppendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// AppendMessage appends m as the JSON body of a msg push (the fields of
// Message in their order, display and cid omitted when empty), without
// reflection: the server encodes every room message once for its fan-out
// and again for each history reply that carries it. It decodes to what
// json.Marshal(m) decodes to.
func AppendMessage(dst []byte, m *Message) []byte {
	dst = append(dst, `{"room":`...)
	dst = AppendString(dst, m.Room)
	dst = append(dst, `,"offset":`...)
	dst = strconv.AppendUint(dst, m.Offset, 10)
	dst = append(dst, `,"epoch":`...)
	dst = AppendString(dst, m.Epoch)
	dst = append(dst, `,"from":`...)
	dst = AppendString(dst, m.From)
	dst = appendAuthored(dst, m.Color, m.Display, m.Text, m.TS, m.CID)
	return append(dst, '}')
}

// AppendDM appends a private message as a JSON object: the body of a dm
// push, or an entry of a dm_history reply (ID 0, Display "", CID "", Epoch
// "" and Offset 0 are left out, as json.Marshal(m) leaves them out). It
// decodes to what json.Marshal(m) decodes to.
func AppendDM(dst []byte, m *DM) []byte {
	dst = append(dst, '{')
	if m.ID != 0 {
		dst = append(dst, `"id":`...)
		dst = strconv.AppendUint(dst, m.ID, 10)
		dst = append(dst, ',')
	}
	dst = append(dst, `"from":`...)
	dst = AppendString(dst, m.From)
	dst = append(dst, `,"to":`...)
	dst = AppendString(dst, m.To)
	dst = appendAuthored(dst, m.Color, m.Display, m.Text, m.TS, m.CID)
	if m.Epoch != "" {
		dst = append(dst, `,"epoch":`...)
		dst = AppendString(dst, m.Epoch)
	}
	if m.Offset != 0 {
		dst = append(dst, `,"offset":`...)
		dst = strconv.AppendUint(dst, m.Offset, 10)
	}
	return append(dst, '}')
}

// appendAuthored appends the fields a room message and a private message
// share, from "color" to "cid" (display and cid left out when empty).
func appendAuthored(dst []byte, color, display, text string, ts int64, cid string) []byte {
	dst = append(dst, `,"color":`...)
	dst = AppendString(dst, color)
	if display != "" {
		dst = append(dst, `,"display":`...)
		dst = AppendString(dst, display)
	}
	dst = append(dst, `,"text":`...)
	dst = AppendString(dst, text)
	dst = append(dst, `,"ts":`...)
	dst = strconv.AppendInt(dst, ts, 10)
	if cid != "" {
		dst = append(dst, `,"cid":`...)
		dst = AppendString(dst, cid)
	}
	return dst
}
