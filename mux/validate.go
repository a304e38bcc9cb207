package mux

import (
	"unicode"
	"unicode/utf8"
)

// ValidRoom reports whether s may be a room name: 1 to MaxRoomBytes bytes of
// letters, digits, '_', '-' and '.'.
func ValidRoom(s string) bool { return validIdent(s, MaxRoomBytes) }

func validIdent(s string, max int) bool {
	if len(s) == 0 || len(s) > max || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !(unicode.IsLetter(r) || unicode.IsDigit(r) || r == '_' || r == '-' || r == '.') {
			return false
		}
	}
	return true
}

func badRequest(format string, args ...any) *Error {
	return Errorf(CodeBadRequest, ErrBadRequest, format, args...)
}

func checkRoom(room string) error {
	if !ValidRoom(room) {
		return badRequest("room %q is not a valid room name (1-%d letters, digits, _ - .)", Echo(room), MaxRoomBytes)
	}
	return nil
}

func checkText(text string, l Limits) error {
	if text == "" {
		return badRequest("text is empty")
	}
	if l.MaxTextBytes > 0 && len(text) > l.MaxTextBytes {
		return Errorf(CodeTooLarge, ErrTooLarge, "text of %d bytes exceeds the limit of %d", len(text), l.MaxTextBytes)
	}
	if !utf8.ValidString(text) {
		return badRequest("text is not valid UTF-8")
	}
	return nil
}

func checkCID(cid string) error {
	if len(cid) > MaxCIDBytes {
		return badRequest("cid longer than %d bytes", MaxCIDBytes)
	}
	return nil
}

func checkName(name string) error { return CheckName(name) }

// Validate checks an attach body against the limits.
func (r *AttachReq) Validate(l Limits) error {
	if r.Name != "" {
		if err := checkName(r.Name); err != nil {
			return err
		}
	}
	if len(r.Token) > MaxTokenBytes {
		return badRequest("token longer than %d bytes", MaxTokenBytes)
	}
	if len(r.JWT) > MaxJWTBytes {
		return badRequest("jwt longer than %d bytes", MaxJWTBytes)
	}
	if r.Mode != "" && !ValidMode(r.Mode) {
		return badRequest("unknown mode %q (want one of shared_worker, leader_tab, direct, loadgen)", Echo(r.Mode))
	}
	return nil
}

// Validate checks a refresh body.
func (r *RefreshReq) Validate(Limits) error {
	if r.JWT == "" {
		return badRequest("jwt is missing")
	}
	if len(r.JWT) > MaxJWTBytes {
		return badRequest("jwt longer than %d bytes", MaxJWTBytes)
	}
	return nil
}

// Validate checks a nick body.
func (r *NickReq) Validate(Limits) error {
	if len(r.Token) > MaxTokenBytes {
		return badRequest("token longer than %d bytes", MaxTokenBytes)
	}
	return checkName(r.Name)
}

// Validate checks a join body. The other sessions it names must be distinct
// session ids (≥ 1), fewer than a connection may hold; the server checks
// that each is attached on the connection and is not the command's own.
func (r *JoinReq) Validate(l Limits) error {
	if r.History < 0 {
		return badRequest("history must not be negative")
	}
	if l.MaxSessions > 0 && len(r.SIDs) >= l.MaxSessions {
		return badRequest("sids names %d sessions: a connection has at most %d", len(r.SIDs), l.MaxSessions)
	}
	for i, sid := range r.SIDs {
		if sid == 0 {
			return badRequest("sids: session 0 is the connection, not a session")
		}
		for _, o := range r.SIDs[:i] {
			if o == sid {
				return badRequest("sids: session %d is named twice", sid)
			}
		}
	}
	return checkRoom(r.Room)
}

// Validate checks a leave body.
func (r *LeaveReq) Validate(Limits) error { return checkRoom(r.Room) }

// Validate checks a send body.
func (r *SendReq) Validate(l Limits) error {
	if err := checkRoom(r.Room); err != nil {
		return err
	}
	if err := checkCID(r.CID); err != nil {
		return err
	}
	return checkText(r.Text, l)
}

// Validate checks a dm body.
func (r *DMReq) Validate(l Limits) error {
	if err := checkName(r.To); err != nil {
		return err
	}
	if err := checkCID(r.CID); err != nil {
		return err
	}
	return checkText(r.Text, l)
}

// Validate checks a history body.
func (r *HistoryReq) Validate(Limits) error {
	if r.Limit < 0 {
		return badRequest("limit must not be negative")
	}
	if r.After > 0 && r.Before > 0 {
		return badRequest("after and before are exclusive")
	}
	return checkRoom(r.Room)
}

// Validate checks a who body.
func (r *WhoReq) Validate(Limits) error { return checkRoom(r.Room) }

// Validate checks a dm_history body: the peer is a user name (or
// SystemName), and after and before are exclusive.
func (r *DMHistoryReq) Validate(Limits) error {
	if r.Limit < 0 {
		return badRequest("limit must not be negative")
	}
	if r.After > 0 && r.Before > 0 {
		return badRequest("after and before are exclusive")
	}
	if r.Peer == SystemName {
		return nil
	}
	return checkName(r.Peer)
}

// Validate checks a dm_list body.
func (r *DMListReq) Validate(Limits) error {
	if r.Limit < 0 {
		return badRequest("limit must not be negative")
	}
	return nil
}
