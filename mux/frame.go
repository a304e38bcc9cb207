package mux

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
)

// Frame is one protocol frame in its decoded form. Which fields are set
// depends on the type; docs/protocol.md has the table. Body is kept raw so
// that it is decoded only by the code that knows its shape (and a room
// message body, encoded once by the server, is copied as bytes).
type Frame struct {
	T    string          `json:"t"`
	SID  uint32          `json:"sid,omitempty"`
	SIDs []uint32        `json:"sids,omitempty"`
	Seq  uint64          `json:"seq,omitempty"`
	Cmd  string          `json:"cmd,omitempty"`
	Ev   string          `json:"ev,omitempty"`
	Code int             `json:"code,omitempty"`
	Err  string          `json:"error,omitempty"`
	Msg  string          `json:"msg,omitempty"`
	Body json.RawMessage `json:"body,omitempty"`

	// Invalid is set by DecodeFrame on a cmd frame whose sid and seq could
	// be read but which is otherwise not valid (no or too long a cmd name,
	// a field of the wrong type, bytes that are not UTF-8). Such a frame
	// is still a command of that session: it must be answered with a reply
	// carrying this error, so that the client's pending command resolves.
	Invalid *Error `json:"-"`
}

// SplitMessage calls fn for each frame of one WebSocket message, in order.
// Frames are separated by '\n'; empty lines (and a trailing '\n', and '\r'
// before it) are ignored. It returns an *Error if the message is larger than
// l.MaxMessageBytes or holds more than l.MaxFramesPerMsg frames, or the first
// error fn returns. A message over a limit is refused whole: fn is not
// called. The slices passed to fn alias msg.
func SplitMessage(msg []byte, l Limits, fn func(frame []byte) error) error {
	if l.MaxMessageBytes > 0 && len(msg) > l.MaxMessageBytes {
		return Errorf(CodeTooLarge, ErrTooLarge, "message of %d bytes exceeds the limit of %d", len(msg), l.MaxMessageBytes)
	}
	if l.MaxFramesPerMsg > 0 && countFrames(msg) > l.MaxFramesPerMsg {
		return Errorf(CodeTooLarge, ErrTooLarge, "message holds more than %d frames", l.MaxFramesPerMsg)
	}
	return eachLine(msg, fn)
}

// eachLine calls fn for each non-blank line of msg.
func eachLine(msg []byte, fn func([]byte) error) error {
	for len(msg) > 0 {
		var line []byte
		if i := bytes.IndexByte(msg, '\n'); i >= 0 {
			line, msg = msg[:i], msg[i+1:]
		} else {
			line, msg = msg, nil
		}
		line = bytes.TrimRight(line, "\r")
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if err := fn(line); err != nil {
			return err
		}
	}
	return nil
}

func countFrames(msg []byte) int {
	n := 0
	_ = eachLine(msg, func([]byte) error { n++; return nil })
	return n
}

// DecodeFrame parses and validates one frame sent by a client (cmd or ping).
// Errors are *Error with code 400: ErrMalformed for bad JSON or missing
// fields, ErrUnknownType for a type a client may not send; the frame
// returned with an error has its Seq when it could be read (for the error
// frame). A cmd frame whose sid and seq could be read is never an error:
// if the rest of it is not valid, it comes back with Invalid set instead
// (and only T, SID and Seq), to be answered with an error reply.
func DecodeFrame(b []byte) (Frame, error) {
	var f Frame
	err := json.Unmarshal(b, &f)
	var typeErr *json.UnmarshalTypeError
	if err != nil && !errors.As(err, &typeErr) {
		return Frame{}, Errorf(CodeBadRequest, ErrMalformed, "frame is not a JSON object of the protocol: %s", jsonError(err))
	}
	// After a type error the fields of the right type are still set.
	var bad *Error
	switch {
	case !utf8.Valid(b):
		bad = Errorf(CodeBadRequest, ErrMalformed, "frame is not valid UTF-8")
	case err != nil:
		bad = Errorf(CodeBadRequest, ErrMalformed, "frame is not a JSON object of the protocol: %s", jsonError(err))
	default:
		bad = f.validateClient()
	}
	if bad == nil {
		return f, nil
	}
	if f.T == TypeCmd && f.SID > 0 && f.Seq > 0 {
		return Frame{T: TypeCmd, SID: f.SID, Seq: f.Seq, Invalid: bad}, nil
	}
	return Frame{Seq: f.Seq}, bad
}

// DecodeServerFrame parses one frame sent by a server (hello, reply, push,
// pong, goaway, error). It is the client side's decoder.
func DecodeServerFrame(b []byte) (Frame, error) {
	var f Frame
	if err := json.Unmarshal(b, &f); err != nil {
		return Frame{}, Errorf(CodeBadRequest, ErrMalformed, "frame is not a JSON object of the protocol: %v", err)
	}
	switch f.T {
	case TypeHello, TypePong, TypeGoAway, TypeError:
	case TypeReply:
		if f.Seq == 0 || f.Code == 0 {
			return f, Errorf(CodeBadRequest, ErrMalformed, "reply needs seq and code")
		}
	case TypePush:
		if len(f.SIDs) == 0 || f.Ev == "" {
			return f, Errorf(CodeBadRequest, ErrMalformed, "push needs sids and ev")
		}
	default:
		return f, Errorf(CodeBadRequest, ErrUnknownType, "unknown frame type %q", Echo(f.T))
	}
	return f, nil
}

func (f *Frame) validateClient() *Error {
	switch f.T {
	case TypeCmd:
		if f.Seq == 0 {
			return Errorf(CodeBadRequest, ErrMalformed, "cmd frame needs a seq of 1 or more")
		}
		if f.SID == 0 {
			return Errorf(CodeBadRequest, ErrMalformed, "cmd frame needs a sid of 1 or more")
		}
		if f.Cmd == "" || len(f.Cmd) > MaxCmdBytes {
			return Errorf(CodeBadRequest, ErrMalformed, "cmd frame needs a cmd name of 1 to %d bytes", MaxCmdBytes)
		}
	case TypePing:
		if f.Seq == 0 {
			return Errorf(CodeBadRequest, ErrMalformed, "ping frame needs a seq of 1 or more")
		}
	case "":
		return Errorf(CodeBadRequest, ErrMalformed, "frame has no type \"t\"")
	default:
		return Errorf(CodeBadRequest, ErrUnknownType, "unknown frame type %q", Echo(f.T))
	}
	return nil
}

// BodyOf decodes a frame body into v, treating a missing body as {}.
// It returns a 400 ErrBadRequest *Error on failure.
func BodyOf(raw json.RawMessage, v any) error {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return Errorf(CodeBadRequest, ErrBadRequest, "bad body: %s", jsonError(err))
	}
	return nil
}

// jsonError describes an encoding/json error without echoing the client's
// bytes: a type error quotes the value it met (a number literal of any
// length) and is rewritten with Echo; syntax errors quote one character.
func jsonError(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("field %q: %s is not a %v", Echo(te.Field), Echo(te.Value), te.Type)
	}
	return err.Error()
}
