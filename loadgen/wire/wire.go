// Package wire holds the protocols the load generator speaks: imload's own
// (docs/protocol.md; imload.go), socket.io v4 over WebSocket (socketio.go)
// and Centrifugo's client protocol v2 in JSON (centrifugo.go). A Wire turns
// the engine's commands into bytes and the server's bytes into typed
// events; the engine (package loadgen) does everything else, the same for
// every protocol. A new protocol is one file here and one case in New.
//
// # What a wire does
//
//   - URL turns a target as given (ws://HOST:PORT) into the URL to dial.
//   - Probe checks, once before a run, that the target speaks the protocol
//     and is set up as the generator needs, and names the server.
//   - Greet runs the greeting of a new link, right after the WebSocket
//     opens: what the server says first and what the client answers before
//     any command. It returns what the link learnt (Link).
//   - Append encodes one Command as the protocol's frame or packet.
//   - A Reader decodes one WebSocket message from the server into Events, in
//     order, and hands each to the engine.
//   - Traits say how the protocol behaves where the engine must know it.
//
// # What a wire does not do
//
// No I/O: the engine dials, reads and writes (with its deadlines), merges
// frames into messages and counts bytes and messages; a wire reads and
// writes only through the Conn the engine lends it for a greeting or a
// probe. No state of a socket, a tab or a command: the engine numbers the
// commands, keeps the table of those waiting for a reply, times them out,
// measures latency, verifies deliveries, resumes and reconnects. A Wire
// holds only its configuration and is safe for concurrent use; a Reader
// holds the scratch space of one goroutine.
//
// # Commands and ids
//
// The engine numbers the commands of a socket 1, 2, 3, … (pings have a
// sequence of their own) and issues only those its Traits call for (no
// Attach without Traits.AttachCmd; Join with Resume, History and Detach
// only with Traits.Resumes or Traits.Shared; Ping with Traits.ClientPings;
// Pong with Link.AnswerPings; Refresh only with Traits.Tokens, and an
// Attach carries a JWT only then). Append returns false for a command the
// protocol does not have. A wire whose ids cannot be the engine's numbers
// maps them and gives replies back the engine's number: Centrifugo's ids 0
// and 1 are taken (a ping, the connect), so command n goes out as n+1.
//
// # Events
//
// Reader.Read emits, per frame of the message (a frame may make no event,
// one, or two: EvBad then EvEnd):
//
//   - EvReply: the reply to command ID, a Cmd (what kindOf said). Code is
//     CodeOK or an error (Code and the error's name Err, in imload's
//     vocabulary: CodeShuttingDown, not done, retry after the resume;
//     CodeUserOffline, the DM's target is offline; 5xx the server failed;
//     else the request was refused). With CodeOK, the result of its kind:
//     Page for Join and History, Send for Send, DM for DM; Malformed when
//     the reply's body could not be decoded. A reply for an id kindOf does
//     not know (a reply after its timeout) makes no event.
//   - EvMessage: a room message, Msg, for the sessions Sids.
//   - EvDM: a private message (Msg.Text) for the sessions Sids.
//   - EvPong: the answer to the client's ping ID.
//   - EvPing: the server's ping (the engine answers with a Pong when
//     Link.AnswerPings).
//   - EvGoAway: the server is about to close the link: reconnect after Retry
//     (0: not said), or, Kicked (the user has too many connections), not at
//     all.
//   - EvError: the server's error frame (a frame of ours it could not take).
//   - EvEnd: the server ended the session (socket.io's disconnect packets,
//     Centrifugo's unsubscribe and disconnect pushes): the engine cuts the
//     link and starts over.
//   - EvTokenExpiring: the token of the sessions Sids expires soon
//     (Traits.Tokens): the engine refreshes it (Refresh).
//   - EvDetached: the server detached the sessions Sids (their token
//     expired: Code and Err say why).
//   - EvBad: a frame that could not be decoded (counted as a protocol error).
//   - EvUnexpected: a frame the generator did not ask for (another
//     socket.io namespace, a Centrifugo channel it does not use).
//
// Presence, notices and the like make no event. Sids nil means every
// session of the socket (a protocol with one session per socket says
// nothing else). Read returns the number of frames in the message, which
// the engine counts without knowing the framing. Read is a method of a
// Reader, one per reading goroutine (an epoll loop reads many sockets),
// rather than of the Wire, because the Reader owns the Event it reuses and
// the scratch of its decoders: that is what keeps the hot path free of
// allocations, and the Wire free of state.
//
// kindOf tells the Reader what command an id waits for, for protocols
// whose replies do not say what they answer (socket.io acks, Centrifugo
// replies): the shape of the result depends on it. The engine's pending
// table answers it; the Reader keeps none.
//
// # Bytes and text
//
// A Reader emits a pointer to one Event it reuses: the Event and its byte
// slices (Msg's fields, Sids, Page.Messages) alias the message or the
// Reader's scratch and are valid until emit returns; the engine copies what
// it keeps. imload's room messages, almost all of a run's traffic, are
// decoded by a scanner that allocates nothing (parsePushMsg); the rest with
// encoding/json.
//
// Text is decoded: Msg's Room, Epoch, From, Cid and Text hold the JSON
// strings' contents with their escapes resolved (decodeString: no copy when
// there is none, which is the case of every text this generator sends).
// So the content check (loadgen's contentTable) hashes the same bytes
// whichever path decoded a message. The other way, Append escapes what it
// puts into a JSON string.
//
// # Links
//
// Greet returns what the greeting taught, with the protocol's own defaults
// filled in (imload's 128 frames per message when the hello says none,
// socket.io's and Centrifugo's dead-link times). The engine applies the
// scenario's overrides (Scenario.Heartbeat when the client pings,
// DeadAfter, FlushMax) and its own defaults, once, for every protocol. The
// server's name comes from Probe, before the run.
//
// # Traits
//
// Traits are fixed for a wire (Centrifugo's AttachCmd depends on
// Config.DMs). The engine decides by them, never by a protocol's name:
// who pings, whether frames share a WebSocket message, whether a lost link
// resumes, whether a socket carries several sessions, whether a join reply
// gives the join point (if not, the engine works the start of a track out
// at the end of the run), whether messages carry sender and cid (the
// content check), whether a DM also reaches the sender's other tabs, and
// which HTTP endpoints the server has.
package wire

import (
	"fmt"
	"time"

	"imload/mux"
	"imload/reports"
)

// Wire is one protocol. See the package comment for the contract.
type Wire interface {
	// Traits returns how the protocol behaves where the engine must know.
	Traits() Traits
	// URL returns the WebSocket URL to dial for a target as given.
	URL(target string) (string, error)
	// Probe checks the server on c (a fresh WebSocket) before the run and
	// returns its name and version.
	Probe(c Conn) (server string, err error)
	// Greet runs the greeting on c, a link that just opened.
	Greet(c Conn) (Link, error)
	// Append appends command c, encoded, to dst; false when the protocol
	// has no such command (dst is then returned unchanged).
	Append(dst []byte, c *Command) ([]byte, bool)
	// NewReader returns a Reader for one goroutine.
	NewReader() Reader
}

// Reader decodes the server's messages. It is used by one goroutine at a
// time.
type Reader interface {
	// Read decodes msg, one WebSocket message, and calls emit with each
	// event in order. kindOf(id) says what kind of command id is, if one
	// waits for its reply. It returns the number of frames in msg.
	Read(msg []byte, kindOf func(id uint64) (CmdKind, bool), emit func(*Event)) (frames int)
}

// Conn is a link the engine lends a wire for a greeting or a probe:
// blocking, with the engine's deadlines; the engine counts what passes.
type Conn interface {
	// Read returns the next data message (valid until the next Read).
	Read() ([]byte, error)
	// Write sends p as one text message.
	Write(p []byte) error
}

// Config is what a wire needs to know of the scenario.
type Config struct {
	// DMs says that the scenario sends private messages (Centrifugo's tabs
	// then subscribe to a personal channel).
	DMs bool
}

// New returns the wire of a protocol (reports.ProtocolImload, "" for it
// too, reports.ProtocolSocketIO, reports.ProtocolCentrifugo).
func New(protocol string, c Config) (Wire, error) {
	switch protocol {
	case reports.ProtocolImload, "":
		return imloadWire{}, nil
	case reports.ProtocolSocketIO:
		return sioWire{}, nil
	case reports.ProtocolCentrifugo:
		return cfWire{dms: c.DMs}, nil
	}
	return nil, fmt.Errorf("unknown protocol %q", protocol)
}

// Traits say how a protocol behaves where the engine must know it. The
// zero value is the simplest protocol: one session per socket, the server
// pings, no merging, no resume.
type Traits struct {
	// Name names the protocol's servers in messages ("socket.io").
	Name string
	// Hint completes "no WebSocket answer (is it …?)" when the probe gets
	// nothing ("a socket.io server").
	Hint string

	// ClientPings: the client sends Ping every Link.Heartbeat and the
	// server answers EvPong (imload). Otherwise the server pings (EvPing)
	// and the client answers when Link.AnswerPings.
	ClientPings bool
	// Batches: several frames may share one WebSocket message,
	// newline-separated (imload, Centrifugo); otherwise each frame is a
	// message of its own (socket.io's packets).
	Batches bool
	// Resumes: a socket that lost its link resumes its tabs' rooms from
	// their last offsets (Join with Resume, then History pages) and re-sends
	// the sends that were in flight (imload). Otherwise its tabs start over
	// as new incarnations and a send in flight is never re-sent (at most
	// once).
	Resumes bool
	// Shared: one socket carries several sessions (tabs): shared mode,
	// Detach, and a resume's Join naming other sessions (Sids). Otherwise
	// per-tab mode only.
	Shared bool
	// AttachCmd: a tab attaches with an Attach command, and is attached
	// when its reply says so. Otherwise it is attached at its first
	// successful join reply.
	AttachCmd bool
	// JoinPoint: a join reply gives the room's epoch and top (Page.Epoch,
	// Page.Top), where the tab's track starts. Otherwise the engine works
	// the start out at the end of the run from the send replies' offsets.
	JoinPoint bool
	// Content: room messages carry their sender and cid, so every copy can
	// be checked against what the sender sent.
	Content bool
	// DMToSenderTabs: a DM also reaches the sender's other tabs.
	DMToSenderTabs bool
	// Stats: the server answers GET /stats (sampled during the run).
	Stats bool
	// AddrList: the server answers GET /lbs with its address list (the
	// reconnect ladder's refetch step).
	AddrList bool
	// Tokens: a session may attach with a JSON Web Token (Command.JWT),
	// is told before it expires (EvTokenExpiring) and refreshes it
	// (Refresh) (imload with --auth jwt).
	Tokens bool
}

// Link is what a greeting taught about a link, with the protocol's
// defaults filled in. A zero duration or limit means "not said".
type Link struct {
	// Heartbeat is the interval of the client's pings (Traits.ClientPings)
	// or of the server's.
	Heartbeat time.Duration
	// DeadAfter is how long the link may be silent before it is dead (0:
	// the engine takes three heartbeats).
	DeadAfter time.Duration
	// MaxFrames and MaxBytes bound a WebSocket message the client sends (0:
	// no bound).
	MaxFrames, MaxBytes int
	// MaxHistory is the most messages one History reply holds.
	MaxHistory int
	// AnswerPings: answer the server's pings (EvPing) with a Pong.
	AnswerPings bool
	// Attach is how long the greeting's own attach took (socket.io's
	// namespace connect, Centrifugo's connect): the attach latency. 0: the
	// greeting attaches nothing; tabs attach with commands.
	Attach time.Duration
}

// CmdKind is a kind of command.
type CmdKind uint8

// Command kinds.
const (
	Attach  CmdKind = iota + 1 // open a session (a tab) for a user
	Join                       // join a room: fresh with history, or a resume
	Send                       // a room message
	DM                         // a private message
	Detach                     // close a session (shared mode)
	History                    // a page of a room's messages after an offset
	Ping                       // the client's heartbeat (no reply: EvPong)
	Pong                       // the answer to the server's ping (no reply)
	Refresh                    // replace a session's token (Traits.Tokens)
)

// Command is a command to encode. Which fields apply depends on Kind.
type Command struct {
	Kind CmdKind
	// ID is the engine's number of the command (Ping: the ping's
	// sequence); the reply's EvReply carries it back.
	ID uint64
	// Sid is the session the command is for (imload; 0: the socket's).
	Sid uint32
	// User is the user's name (Attach; socket.io's Join names it too),
	// Token its token (Attach), JWT its JSON Web Token (Attach and
	// Refresh, Traits.Tokens; "": none).
	User, Token, JWT string
	// Room is the room of a Join, Send or History.
	Room string
	// To is the target user of a DM.
	To string
	// Text and Cid are a Send's or DM's text and client id, as sent (the
	// wire escapes them).
	Text, Cid []byte
	// History is how many messages of history a fresh Join asks for.
	History int
	// Resume: the Join resumes the room after Offset in Epoch, for this
	// session and the others in Sids (imload).
	Resume bool
	Epoch  string // Join with Resume, History
	Offset uint64 // Join with Resume
	Sids   []uint32
	// After and Limit ask a History page: at most Limit messages after
	// offset After of Epoch.
	After uint64
	Limit int
}

// EventKind is a kind of event.
type EventKind uint8

// Event kinds (see the package comment).
const (
	EvReply EventKind = iota + 1
	EvMessage
	EvDM
	EvPong
	EvPing
	EvGoAway
	EvError
	EvEnd
	EvBad
	EvUnexpected
	EvTokenExpiring
	EvDetached
)

// Reply codes, in imload's vocabulary (mux).
const (
	CodeOK           = mux.CodeOK
	CodeBadRequest   = mux.CodeBadRequest
	CodeUserOffline  = mux.CodeUserOffline
	CodeInternal     = mux.CodeInternal
	CodeShuttingDown = mux.CodeShuttingDown
)

// Event is one thing the server said. Which fields are set depends on
// Kind; slices are valid until emit returns.
type Event struct {
	Kind EventKind

	// ID is the command a reply answers (the engine's number) or the
	// ping a pong answers.
	ID uint64
	// Cmd is the kind of the command a reply answers.
	Cmd CmdKind
	// Code and Err: the reply's code and, unless CodeOK, its error's name
	// (EvDetached: why the sessions were detached).
	Code int
	Err  string
	// Malformed: the reply's body could not be decoded (its result is
	// empty).
	Malformed bool
	// Page is the result of a Join or History reply, Send of a Send
	// reply, DMResult of a DM reply.
	Page Page
	Send SendResult
	DM   DMResult

	// Sids are the sessions a message, DM, EvTokenExpiring or EvDetached
	// is for (nil: every session of the socket).
	Sids []uint32
	// Msg is the message of EvMessage and EvDM (a DM has only Text).
	Msg Msg

	// Retry and Kicked: an EvGoAway's retry hint and whether the user was
	// kicked (too many connections).
	Retry  time.Duration
	Kicked bool
}

// Msg is a room message, pushed or in a page. Every field is decoded text.
type Msg struct {
	Room []byte
	// Epoch is nil when the protocol's messages carry none (they are of the
	// epoch of the join).
	Epoch  []byte
	Offset uint64
	// From and Cid are the sender's name and the message's client id, when
	// the protocol carries them (Traits.Content).
	From, Cid []byte
	Text      []byte
}

// Page is what a join or history reply says of a room.
type Page struct {
	// Epoch and Top are the room's epoch and its newest offset (the join
	// point of a fresh join, Traits.JoinPoint).
	Epoch string
	Top   uint64
	// First is a history reply's oldest offset kept (0: none).
	First uint64
	// Reset: the offset asked for can no longer be served (too many
	// missed, or no longer kept); More: more messages follow, ask History
	// after the last one.
	Reset, More bool
	// Sids lists the sessions a resume's reply is for, when the Join named
	// others (the command's own first).
	Sids []uint32
	// Messages are the room's messages in offset order.
	Messages []Msg
}

// SendResult is a send reply's result: where the message was published
// (Offset 0: the protocol's reply does not say).
type SendResult struct {
	Epoch  string
	Offset uint64
	// Dup: the server had published a message with this cid already (a
	// re-send), and answers with that first copy's offset.
	Dup bool
}

// DMResult is a DM reply's result: how many sessions got it, when Counted.
type DMResult struct {
	Sessions int
	Counted  bool
}
