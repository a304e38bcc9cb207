package mux

// Bodies of commands, replies and pushes. Field names are the JSON names in
// docs/protocol.md. Times are Unix milliseconds.

// Hello is the body of the hello frame the server sends first. It carries
// every limit of this server a client must respect; the limits that are
// the same on every server are constants of the protocol (limits.go).
type Hello struct {
	Version     int    `json:"v"`
	Server      string `json:"server"`
	ConnID      uint64 `json:"conn"`
	HeartbeatMS int64  `json:"hb_ms"`
	TimeoutMS   int64  `json:"hb_timeout_ms"`
	MaxMessage  int    `json:"max_msg"`      // bytes of one WebSocket message
	MaxFrames   int    `json:"max_frames"`   // frames in one WebSocket message
	MaxText     int    `json:"max_text"`     // bytes of a message's text
	MaxSessions int    `json:"max_sessions"` // sessions on one connection
	MaxRooms    int    `json:"max_rooms"`    // rooms one session may be in
	MaxHistory  int    `json:"max_history"`  // messages in one join or history reply
	// HistoryMax and HistoryAgeMS bound what a room retains (count, age).
	HistoryMax   int   `json:"history_max"`
	HistoryAgeMS int64 `json:"history_age_ms"`
	// MaxConnsPerUser is the most connections one user name may have
	// before the oldest is told to go away (0: no cap).
	MaxConnsPerUser int     `json:"max_conns_per_user"`
	RateLimit       float64 `json:"rate"`  // send and dm per second per session
	RateBurst       int     `json:"burst"` // burst above rate
	// Limits above the session's (docs/protocol.md §6): commands per
	// second of the connection and of its source address (the ip_ fields
	// are absent when the address is exempt), connections per address,
	// private messages one user may receive per second, how long a name
	// stays reserved after its last session, and how long presence
	// pushes are merged.
	ConnRate      float64 `json:"conn_rate"`
	ConnBurst     int     `json:"conn_burst"`
	IPRate        float64 `json:"ip_rate,omitempty"`
	IPBurst       int     `json:"ip_burst,omitempty"`
	MaxConnsPerIP int     `json:"max_conns_per_ip,omitempty"`
	DMInRate      float64 `json:"dm_in_rate"`
	DMInBurst     int     `json:"dm_in_burst"`
	NameGraceMS   int64   `json:"name_grace_ms"`
	PresenceMS    int64   `json:"presence_ms"`
	// DMHistoryMax and DMHistoryAgeMS bound what a conversation retains
	// (count, age); absent (0) when the server keeps no private messages.
	DMHistoryMax   int   `json:"dm_history_max,omitempty"`
	DMHistoryAgeMS int64 `json:"dm_history_age_ms,omitempty"`
	// Auth is "jwt" when a session attaches with a token (absent: none,
	// names are claimed); TokenExpiringMS is then how long before a
	// token's expiry its sessions are told (token_expiring).
	Auth            string `json:"auth,omitempty"`
	TokenExpiringMS int64  `json:"token_expiring_ms,omitempty"`
}

// Auth modes (Hello.Auth).
const (
	AuthNone = "none"
	AuthJWT  = "jwt"
)

// GoAway is the body of a goaway frame: why, and how long to wait before
// reconnecting (jittered per connection by the server).
type GoAway struct {
	Reason  string `json:"reason"`
	RetryMS int64  `json:"retry_ms"`
}

// Go-away reasons.
const (
	GoAwayShutdown     = "shutdown"
	GoAwayTooManyConns = "too_many_connections"
)

// AttachReq is the body of attach. To resume after a reconnect, a client
// sends attach and then one join per room (with epoch and offset) in the same
// WebSocket message.
// With --auth jwt the session's user comes from JWT (its sub), and Name,
// if given, must be that user; Token is not used.
type AttachReq struct {
	Name  string `json:"name,omitempty"`
	Token string `json:"token,omitempty"`
	Mode  string `json:"mode,omitempty"`
	JWT   string `json:"jwt,omitempty"`
}

// AttachResp is the reply body of attach. With a JWT, Expires is the
// token's expiry (Unix ms) and Name the display name it gives, if any.
type AttachResp struct {
	SID     uint32 `json:"sid"`
	User    string `json:"user,omitempty"`
	Color   string `json:"color,omitempty"`
	Token   string `json:"token,omitempty"`
	Name    string `json:"name,omitempty"`
	Expires int64  `json:"expires,omitempty"`
}

// RefreshReq is the body of refresh: a new token for the session, of the
// same user.
type RefreshReq struct {
	JWT string `json:"jwt"`
}

// RefreshResp is the reply body of refresh: the new expiry (Unix ms), and
// the rooms the session left because the new token does not allow them.
type RefreshResp struct {
	Expires int64    `json:"expires"`
	Left    []string `json:"left,omitempty"`
}

// TokenExpiring is the body of a token_expiring push: the sessions'
// token expires at Expires (Unix ms).
type TokenExpiring struct {
	Expires int64 `json:"expires"`
}

// Detached is the body of a detached push: the sessions are no longer
// attached (as after detach), and why: Code and Error as in an error
// reply (401 token_expired, 403 disconnected), Msg for people, Reason
// what the server API said (disconnected).
type Detached struct {
	Code   int    `json:"code"`
	Error  string `json:"error"`
	Msg    string `json:"msg,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// NickReq is the body of nick.
type NickReq struct {
	Name  string `json:"name"`
	Token string `json:"token,omitempty"`
}

// NickResp is the reply body of nick.
type NickResp struct {
	User  string `json:"user"`
	Color string `json:"color"`
	Token string `json:"token"`
}

// JoinReq is the body of join. With Epoch and Offset set (a resume), the
// reply carries every message after Offset; with History > 0 it carries the
// last History messages. SIDs names other sessions of the same connection
// that join the room at the same point (the tabs of one browser resuming
// together): they are all added, and the one reply is for all of them.
type JoinReq struct {
	Room    string   `json:"room"`
	Epoch   string   `json:"epoch,omitempty"`
	Offset  uint64   `json:"offset,omitempty"`
	History int      `json:"history,omitempty"`
	SIDs    []uint32 `json:"sids,omitempty"`
}

// JoinResp is the reply body of join. Messages are in offset order. Reset is
// true when the requested epoch or offset can no longer be served: the client
// must drop what it has of the room and use Messages (the latest ones)
// instead. More is true when a resume had more messages than fit in one
// reply: the client asks history with after = the last offset it got. SIDs,
// present when the join named other sessions, lists every session the reply
// is for (the command's own first).
type JoinResp struct {
	Room     string    `json:"room"`
	Epoch    string    `json:"epoch"`
	Top      uint64    `json:"top"`
	Members  int       `json:"members"`
	SIDs     []uint32  `json:"sids,omitempty"`
	Reset    bool      `json:"reset,omitempty"`
	More     bool      `json:"more,omitempty"`
	Messages []Message `json:"messages,omitempty"`
}

// LeaveReq is the body of leave.
type LeaveReq struct {
	Room string `json:"room"`
}

// SendReq is the body of send. CID, if set, is the client's id for the
// message: a send repeated with the same user and CID (after a lost reply)
// is published once and answered with the first offset.
type SendReq struct {
	Room string `json:"room"`
	Text string `json:"text"`
	CID  string `json:"cid,omitempty"`
}

// SendResp is the reply body of send.
type SendResp struct {
	Room   string `json:"room"`
	Epoch  string `json:"epoch"`
	Offset uint64 `json:"offset"`
	TS     int64  `json:"ts"`
	Dup    bool   `json:"dup,omitempty"`
}

// DMReq is the body of dm.
type DMReq struct {
	To   string `json:"to"`
	Text string `json:"text"`
	CID  string `json:"cid,omitempty"`
}

// DMResp is the reply body of dm: the message id and how many sessions it
// was delivered to; with DM history, its place in the conversation (Epoch,
// Offset), as in its push.
type DMResp struct {
	ID       uint64 `json:"id"`
	TS       int64  `json:"ts"`
	Sessions int    `json:"sessions"`
	Epoch    string `json:"epoch,omitempty"`
	Offset   uint64 `json:"offset,omitempty"`
}

// DMHistoryReq is the body of dm_history: the conversation of the
// session's user with Peer. With After (and Epoch) it returns the messages
// with offset > After; with Before, the Limit messages before it; with
// neither, the last Limit messages (as history does for a room).
type DMHistoryReq struct {
	Peer   string `json:"peer"`
	Epoch  string `json:"epoch,omitempty"`
	After  uint64 `json:"after,omitempty"`
	Before uint64 `json:"before,omitempty"`
	Limit  int    `json:"limit,omitempty"`
}

// DMHistoryResp is the reply body of dm_history. Epoch is "" (and Top 0)
// when the session's user has no conversation with Peer. Reset and More
// mean what they mean in HistoryResp.
type DMHistoryResp struct {
	Peer     string `json:"peer"`
	Epoch    string `json:"epoch"`
	Top      uint64 `json:"top"`
	First    uint64 `json:"first"`
	Reset    bool   `json:"reset,omitempty"`
	More     bool   `json:"more,omitempty"`
	Messages []DM   `json:"messages"`
}

// DMListReq is the body of dm_list: at most Limit conversations (0: up to
// MaxDMList).
type DMListReq struct {
	Limit int `json:"limit,omitempty"`
}

// DMConv is one conversation in a dm_list reply: the peer, the
// conversation's epoch, its newest offset and that message's time.
type DMConv struct {
	Peer  string `json:"peer"`
	Epoch string `json:"epoch"`
	Top   uint64 `json:"top"`
	TS    int64  `json:"ts"`
}

// DMListResp is the reply body of dm_list, the newest conversation first.
type DMListResp struct {
	Conversations []DMConv `json:"conversations"`
	More          bool     `json:"more,omitempty"`
}

// HistoryReq is the body of history. With After set (and Epoch), it returns
// messages with offset > After; with Before set, the Limit messages before
// it; with neither, the last Limit messages.
type HistoryReq struct {
	Room   string `json:"room"`
	Epoch  string `json:"epoch,omitempty"`
	After  uint64 `json:"after,omitempty"`
	Before uint64 `json:"before,omitempty"`
	Limit  int    `json:"limit,omitempty"`
}

// HistoryResp is the reply body of history. Reset has the meaning of
// JoinResp.Reset; More is true when more messages match than were returned.
type HistoryResp struct {
	Room     string    `json:"room"`
	Epoch    string    `json:"epoch"`
	Top      uint64    `json:"top"`
	First    uint64    `json:"first"`
	Reset    bool      `json:"reset,omitempty"`
	More     bool      `json:"more,omitempty"`
	Messages []Message `json:"messages"`
}

// WhoReq is the body of who.
type WhoReq struct {
	Room string `json:"room"`
}

// User is a user as others see it: Display is the display name of a
// verified user's token (its name claim), "" when it has none.
type User struct {
	Name    string `json:"name"`
	Color   string `json:"color"`
	Display string `json:"display,omitempty"`
}

// WhoResp is the reply body of who.
type WhoResp struct {
	Room      string `json:"room"`
	Users     []User `json:"users"`
	Anonymous int    `json:"anonymous"`
}

// Message is a room message: the body of a msg push and an entry of
// history. Offset is the room's monotonic offset (1, 2, ...) within Epoch.
// Display is the sender's display name ("" when it has none; From is the
// sender).
type Message struct {
	Room    string `json:"room"`
	Offset  uint64 `json:"offset"`
	Epoch   string `json:"epoch"`
	From    string `json:"from"`
	Color   string `json:"color"`
	Display string `json:"display,omitempty"`
	Text    string `json:"text"`
	TS      int64  `json:"ts"`
	CID     string `json:"cid,omitempty"`
}

// DM is the body of a dm push, and an entry of a dm_history reply. ID
// is the recipient's message id (a push only: history entries have
// none); Epoch and Offset place it in the conversation of From and To
// (absent when the server keeps no private messages). Color and Display
// are the sender's.
type DM struct {
	ID      uint64 `json:"id,omitempty"`
	From    string `json:"from"`
	To      string `json:"to"`
	Color   string `json:"color"`
	Display string `json:"display,omitempty"`
	Text    string `json:"text"`
	TS      int64  `json:"ts"`
	CID     string `json:"cid,omitempty"`
	Epoch   string `json:"epoch,omitempty"`
	Offset  uint64 `json:"offset,omitempty"`
}

// Presence is the body of join and leave pushes. Display is the user's
// display name, "" when it has none.
type Presence struct {
	Room    string `json:"room"`
	User    string `json:"user"`
	Color   string `json:"color"`
	Display string `json:"display,omitempty"`
}

// Notice is the body of a notice push.
type Notice struct {
	Text   string `json:"text"`
	Reason string `json:"reason,omitempty"`
}

// Stats is the JSON served at /stats. The keys are stable: other tools
// (the load generator's report, the demo page) read them.
type Stats struct {
	PhysicalConnections int64            `json:"physical_connections"`
	LogicalSessions     int64            `json:"logical_sessions"`
	Users               int64            `json:"users"`
	Rooms               int64            `json:"rooms"`
	MessagesIn          int64            `json:"messages_in"`
	MessagesOut         int64            `json:"messages_out"`
	FramesOut           int64            `json:"frames_out"`
	BytesOut            int64            `json:"bytes_out"`
	FramesIn            int64            `json:"frames_in"`
	BytesIn             int64            `json:"bytes_in"`
	DMsIn               int64            `json:"dms_in"`
	DMsOut              int64            `json:"dms_out"`
	SlowConsumers       int64            `json:"slow_consumers"`
	AcceptErrors        int64            `json:"accept_errors"`
	Joins               int64            `json:"joins"`         // join commands answered 200
	JoinSessions        int64            `json:"join_sessions"` // sessions they were for (sids count)
	PhysicalByMode      map[string]int64 `json:"physical_by_mode"`
	UptimeSeconds       float64          `json:"uptime_seconds"`
}
