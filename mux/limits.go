package mux

// Limits bounds everything a peer can make the other side hold. The server
// announces its limits in the hello frame.
type Limits struct {
	MaxMessageBytes    int // one WebSocket message (all its frames)
	MaxFramesPerMsg    int // frames in one WebSocket message
	MaxTextBytes       int // text of a room or private message
	MaxSessions        int // logical sessions on one connection
	MaxHistory         int // messages returned by one history/join reply
	MaxRoomsPerSession int // rooms one session may be in
}

// Name and identifier limits that are part of the protocol, not settings.
const (
	MaxNameBytes  = 32   // user name
	MaxRoomBytes  = 64   // room name
	MaxCIDBytes   = 64   // client message id
	MaxTokenBytes = 128  // user token
	MaxJWTBytes   = 8192 // a JSON Web Token (attach, refresh)
	MaxCmdBytes   = 16   // command name
	// MaxDMList is the most conversations one dm_list reply lists (the
	// newest).
	MaxDMList = 200
	// DefaultHistoryLimit is the messages a history or dm_history reply
	// carries when its limit is absent or 0.
	DefaultHistoryLimit = 50
)

// DefaultLimits are the limits of a server started with no flags.
func DefaultLimits() Limits {
	return Limits{
		MaxMessageBytes:    64 << 10,
		MaxFramesPerMsg:    128,
		MaxTextBytes:       4096,
		MaxSessions:        32,
		MaxHistory:         500,
		MaxRoomsPerSession: 64,
	}
}
