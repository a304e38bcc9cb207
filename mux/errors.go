package mux

import (
	"errors"
	"fmt"
	"unicode/utf8"
)

// Reply and error codes. 200 is success; 4xx means the client sent something
// wrong and may go on using the connection; 5xx means the server failed.
const (
	CodeOK              = 200
	CodeBadRequest      = 400 // malformed frame or body, invalid argument
	CodeNotAttached     = 401 // command from a session that is not attached
	CodeUnauthorized    = 401 // a token (or the server API's key) that is not valid or has expired
	CodeNotMember       = 403 // the session has not joined that room
	CodeForbidden       = 403 // the session's token does not allow it
	CodeUnknownRoom     = 404 // the room does not exist
	CodeUnknownCommand  = 405 // no such command
	CodeNameTaken       = 409 // the user name is online elsewhere, wrong token
	CodeUserOffline     = 410 // dm target is not online
	CodeSessionExists   = 412 // attach for a sid that is already attached
	CodeTooLarge        = 413 // text or frame over its size limit
	CodeTooManySessions = 422 // the connection has its maximum of sessions
	CodeRateLimited     = 429 // a rate limit: of the session, the connection, the address or the recipient
	CodeNameRequired    = 428 // command needs a user name (nick first)
	CodeInternal        = 500 // server failure
	CodeShuttingDown    = 503 // the server is going away
	CodeUnavailable     = 503 // the server cannot take the request now (store behind, room bound): retry later
)

// Error names ("error" field) that go with the codes. A client should switch
// on the name, which is more specific than the code.
const (
	ErrBadRequest      = "bad_request"
	ErrMalformed       = "malformed"
	ErrUnknownType     = "unknown_type"
	ErrNotAttached     = "not_attached"
	ErrNotMember       = "not_member"
	ErrUnknownRoom     = "unknown_room"
	ErrUnknownCommand  = "unknown_command"
	ErrNameTaken       = "name_taken"
	ErrUserOffline     = "user_offline"
	ErrSessionExists   = "session_exists"
	ErrTooLarge        = "too_large"
	ErrTooManySessions = "too_many_sessions"
	ErrRateLimited     = "rate_limited"      // 429: the session sends and dms faster than rate/burst
	ErrConnRateLimited = "conn_rate_limited" // 429: the connection sends commands faster than conn_rate/conn_burst
	ErrIPRateLimited   = "ip_rate_limited"   // 429: the source address sends commands faster than ip_rate/ip_burst
	ErrRecipientBusy   = "recipient_busy"    // 429: the dm's recipient receives more than dm_in_rate/dm_in_burst
	ErrIPConnLimited   = "ip_conn_limited"   // HTTP 429 at /ws: the source address has max_conns_per_ip connections
	ErrNameRequired    = "name_required"
	ErrInternal        = "internal"
	ErrShuttingDown    = "shutting_down"
	ErrUnavailable     = "unavailable"       // 503: the history store is behind; retry shortly
	ErrTooManyRooms    = "too_many_rooms"    // 503: the server holds its maximum of rooms
	ErrRoomRateLimited = "room_rate_limited" // 429: the connection creates rooms faster than allowed
	ErrTokenInvalid    = "token_invalid"     // 401: the jwt is not one the server accepts (--auth jwt)
	ErrTokenExpired    = "token_expired"     // 401: the jwt's exp is past; a detached push when a session's token expires
	ErrForbidden       = "forbidden"         // 403: the session's token does not allow this room, or is another user's
	ErrDisconnected    = "disconnected"      // 403: (detached push) the server API disconnected the session's user
	ErrUnauthorized    = "unauthorized"      // 401: (server API) no or a wrong API key
)

// Error is a protocol error: a code, a stable name and a human-readable
// message. Decoding and validation return *Error so that the server can turn
// it into a reply or error frame without guessing.
type Error struct {
	Code int    // one of the Code constants
	Name string // one of the Err constants
	Msg  string // human-readable detail
}

func (e *Error) Error() string { return fmt.Sprintf("%d %s: %s", e.Code, e.Name, e.Msg) }

// Errorf returns an *Error with a formatted message, cut to
// MaxErrorMsgBytes. Format a value the client sent with Echo.
func Errorf(code int, name, format string, args ...any) *Error {
	return &Error{Code: code, Name: name, Msg: clip(fmt.Sprintf(format, args...), MaxErrorMsgBytes)}
}

// AsError returns err as an *Error, or a 500 internal *Error wrapping it.
func AsError(err error) *Error {
	var pe *Error
	if errors.As(err, &pe) {
		return pe
	}
	return &Error{Code: CodeInternal, Name: ErrInternal, Msg: clip(err.Error(), MaxErrorMsgBytes)}
}

// Bounds on what an error answers, so that a client cannot make the server
// echo what it sent (a 60 KB unknown type must not come back as 60 KB).
const (
	// MaxEchoBytes is the most of one client value (a type, command, name,
	// room, mode…) an error message quotes; Echo cuts the rest.
	MaxEchoBytes = 32
	// MaxErrorMsgBytes bounds the "msg" of a reply or error frame.
	MaxErrorMsgBytes = 256
)

// Echo returns s as an error message may quote it: at most MaxEchoBytes
// bytes, cut at a UTF-8 boundary and marked with "…" when cut.
func Echo(s string) string { return clip(s, MaxEchoBytes) }

// clip cuts s to at most max bytes, the last three of them "…" when it had
// to cut, without splitting a UTF-8 sequence.
func clip(s string, max int) string {
	if len(s) <= max {
		return s
	}
	const mark = "…"
	n := max - len(mark)
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + mark
}
