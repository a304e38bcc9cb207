// Package mux is the imload wire protocol as data: frame types, their
// encoding and decoding, the merging of several frames into one WebSocket
// message, validation with typed errors, and size limits. It does no I/O.
//
// One WebSocket message is one or more frames, each a JSON object on its own
// line (frames are separated by '\n'). Every frame has a type "t". Frames from
// a client carry the logical session id "sid" they speak for (one session per
// browser tab; 0 is the connection itself); pushes from the server carry the
// list of sessions "sids" they are addressed to, so that a message needed by
// three tabs of one browser crosses the socket once. docs/protocol.md is the
// full specification.
package mux

// ProtocolVersion is the version of the wire protocol described in
// docs/protocol.md. The server announces it in its hello frame; browser code
// names its SharedWorker after it so tabs of two deploys never share a worker.
const ProtocolVersion = 1

// Frame types ("t").
const (
	TypeHello  = "hello"  // server → client, first frame on a connection
	TypeCmd    = "cmd"    // client → server, a command of one session
	TypeReply  = "reply"  // server → client, the one answer to a command
	TypePush   = "push"   // server → client, an event for one or more sessions
	TypePing   = "ping"   // client → server, connection heartbeat
	TypePong   = "pong"   // server → client, answer to ping
	TypeGoAway = "goaway" // server → client, "reconnect later", then close
	TypeError  = "error"  // server → client, a frame that could not be handled
)

// Commands ("cmd" of a cmd frame).
const (
	CmdAttach  = "attach"  // create the session sid on this connection
	CmdDetach  = "detach"  // remove the session
	CmdNick    = "nick"    // choose or change the session's user name
	CmdJoin    = "join"    // join a room (and resume it from an offset)
	CmdLeave   = "leave"   // leave a room
	CmdSend    = "send"    // publish a message to a room
	CmdDM      = "dm"      // send a private message to a user
	CmdHistory = "history" // read a room's retained messages
	CmdWho     = "who"     // list the users present in a room
	CmdRefresh = "refresh" // replace the session's token (--auth jwt)
	// CmdDMHistory reads the retained private messages of the session's
	// user with one peer (a conversation), by offset like a room's history.
	CmdDMHistory = "dm_history"
	// CmdDMList lists the session's user's conversations, the newest first.
	CmdDMList = "dm_list"
)

// SystemName is the sender of what the server API publishes without a
// user: no user name may contain '@', so no user can pass for it. It may
// be the peer of a conversation (dm_history).
const SystemName = "@system"

// Push events ("ev" of a push frame).
const (
	EvMsg    = "msg"    // a room message
	EvDM     = "dm"     // a private message
	EvJoin   = "join"   // a user joined a room
	EvLeave  = "leave"  // a user left a room
	EvNotice = "notice" // a system notice for the sessions
	// EvTokenExpiring tells sessions that their token expires soon: refresh
	// it (body TokenExpiring).
	EvTokenExpiring = "token_expiring"
	// EvDetached tells sessions that the server detached them (body
	// Detached: their token expired, or the server API disconnected
	// their user).
	EvDetached = "detached"
)

// Client modes reported in attach ("mode"); the server counts physical
// connections by the mode of their first attach.
const (
	ModeSharedWorker = "shared_worker"
	ModeLeaderTab    = "leader_tab"
	ModeDirect       = "direct"
	ModeLoadgen      = "loadgen"
)

// Modes lists every valid client mode.
var Modes = [...]string{ModeSharedWorker, ModeLeaderTab, ModeDirect, ModeLoadgen}

// ValidMode reports whether m is one of Modes.
func ValidMode(m string) bool {
	for _, v := range Modes {
		if v == m {
			return true
		}
	}
	return false
}
