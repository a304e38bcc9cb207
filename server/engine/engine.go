// Package engine is the seam between one imload node and what the nodes of
// a deployment share: the order and the history of each room's messages and
// their delivery to every node that has members in the room (Rooms, Log),
// who is present in which room (Presence), who holds which user name on
// which connections, and the private messages between users (Users), and
// the list of live nodes (Nodes).
//
// Two engines implement it: the local engine (package engine/local), one
// node on its own, its history in memory or in SQLite (server/store), and
// the Redis engine (package engine/redis), any number of nodes sharing one
// Redis. What stays in the node (package server) is what is node-local by
// nature: connections and their sessions, the members of a room on this
// node, and the hot path of delivery — a message's push body encoded once,
// queued to each member connection as shared slices, written in merged,
// paced, non-blocking writes.
//
// # The shape
//
// The node asks; the engine answers through callbacks (done functions) and
// tells the node about what happened elsewhere through the Sink it was
// started with. The local engine calls done before the method returns
// (nothing it does waits; but a DM kept in a durable store is answered
// once committed, from the store's writer); the Redis engine calls it
// later, from its own goroutines. The node must accept either: a command whose answer is not
// there when the method returns holds the commands of its connection that
// follow it until done is called, so that a connection's commands take
// effect in the order they came (an attach before the join that follows
// it in the same message; see docs/scaling.md).
//
// No method of an engine blocks on I/O: a method that needs Redis queues
// the request and returns.
//
// # Rooms and logs
//
// A node opens a room (Open) when it needs the room's messages: a session
// on it joins the room, or asks for its history or presence. From then on
// it holds the room's Log and the engine keeps that log up to date until
// the node drops it (Drop). Every method of a Log is called with the
// node's lock of that room held — the same lock that orders the room's
// pushes to its members — so a Log needs no lock of its own for what the
// node reads, and the node's view of the room (its members, what they were
// pushed, what a join reply shows) is one consistent state.
//
// A message is visible (Top, After, Last, Before show it) from the moment
// Take returns it, not before: Take is where the node pushes it to the
// room's members, under the same lock, so a join reply shows exactly the
// messages its session will not be pushed. What the engine learns between
// two Takes (a commit, a message published on another node) waits inside
// the Log; the engine then calls Sink.Ready(room) and the node calls Take.
//
// Publish asks for a message to be appended. The engine gives it the next
// offset of the room, atomically with its append to the room's history;
// the outcome comes back through Take as a Released with the ticket that
// Publish returned, always before (or with) the message's own Released, so
// the node answers the sender before it pushes the message. A send retried
// with the same sender and client id (cid) while the first copy is still
// retained is not appended again: the outcome says Dup, with the first
// copy's offset.
package engine

import (
	"context"
	"errors"
	"time"
)

// Engine is what the nodes of one deployment share.
type Engine interface {
	Rooms
	Presence
	Users
	DMs
	Nodes

	// Start begins the engine's work for a node: sink is where the engine
	// tells the node about rooms, presence, private messages and kicks.
	// Called once, before anything else but Retained.
	Start(ctx context.Context, sink Sink) error
	// Health is nil while the engine can order new messages, else an error
	// that says why not (wrapping ErrUnavailable). The node reports it on
	// /healthz and refuses sends with 503 unavailable meanwhile.
	Health() error
	// Close stops the engine: no callback is called once it has returned.
	// It flushes what it must (the local engine's SQLite store) first.
	Close() error
}

// ErrUnavailable is wrapped by the errors of an engine that cannot serve a
// request now (Redis unreachable, a full store queue): the node answers
// 503 unavailable and the client retries.
var ErrUnavailable = errors.New("engine unavailable")

// ErrUnknownRoom is returned by Open without create, and by Who, for a
// room that does not exist.
var ErrUnknownRoom = errors.New("unknown room")

// ErrClosed is wrapped by the errors of an engine that is closing (Close
// was called): the node answers 503 shutting_down.
var ErrClosed = errors.New("engine closed")

// Rooms orders the messages of rooms and carries them to the nodes that
// opened them.
type Rooms interface {
	// Retained calls fn with the name of every room the engine holds when
	// it starts (the local engine: the rooms loaded from its store), so the
	// node can open them and sweep them like any other. The Redis engine
	// holds none (its rooms live in Redis).
	Retained(fn func(name string))
	// Open opens room name for this node and calls done with its log (or
	// an error: ErrUnknownRoom without create, ErrUnavailable). With
	// create, a room that does not exist is made, with a new epoch. The
	// log is up to date when done is called (what it holds then is
	// visible: Top, After… show it without a Take) and stays so until
	// Drop. Two Opens of one room may give one log or two (the node keeps
	// one and drops the other).
	Open(name string, create bool, done func(Opened, error))
	// Drop tells the engine that the node no longer needs room name's log
	// l: the node holds the room's lock, and l.Idle() was true with no
	// member left; or l is a log the node does not keep (a second log of
	// a room it holds already, from Opens that raced, or one answered
	// after the node dropped rooms, which may be stale). The local engine
	// forgets the room if l is its log (a later Open creates it again
	// with a new epoch); the Redis engine stops receiving its messages
	// (the room lives on in Redis).
	Drop(name string, l Log)
}

// Opened is a room the node opened.
type Opened struct {
	Log Log
	// Present lists the users present in the room on other nodes (see
	// Presence): the node's view of presence starts from it.
	Present []Present
}

// Log is one room's ordered messages, as this node sees them. Every method
// is called with the node's lock of the room held; none blocks or does
// I/O. Offsets start at 1 within an epoch and have no gaps.
type Log interface {
	// Epoch is the room's epoch: it changes when the room's history is
	// lost (a deleted room made again, a store that was not closed
	// cleanly, a Redis that lost its data), and offsets start again.
	Epoch() string
	// Top is the offset of the newest visible message (0: none yet).
	Top() uint64
	// First is the offset of the oldest visible message retained (0: none).
	First() uint64
	// Resumable reports whether a client that has every message up to
	// offset after of epoch can be given exactly the rest: the epoch is
	// the room's, after ≤ Top, and the messages after it are retained and
	// at most max of them.
	Resumable(epoch string, after uint64, max int) bool
	// After returns the visible messages with offset > after, at most
	// limit, oldest first, and whether more follow.
	After(after uint64, limit int) ([]*Entry, bool)
	// Last returns the newest limit visible messages, oldest first, and
	// whether older ones are retained.
	Last(limit int) ([]*Entry, bool)
	// Before returns the limit visible messages before offset before,
	// oldest first, and whether older ones are retained.
	Before(before uint64, limit int) ([]*Entry, bool)
	// Expire drops the retained messages older than cutoff (Unix ms).
	Expire(cutoff int64)
	// Idle reports whether the log may be dropped once the room has no
	// member on this node: nothing published through it is waiting, and
	// (local engine) no message is retained.
	Idle() bool
	// Publish asks for m to be appended to the room. It returns the
	// ticket under which Take reports the outcome, or an error at once
	// (ErrUnavailable: the store's queue is full, Redis is unreachable).
	// The engine may learn that m is a retry (Dup) either here or later.
	// It does not keep m (m.Who excepted): the node reuses one Draft.
	Publish(m *Draft) (ticket uint64, err error)
	// Take appends to dst, in order, what happened to the log since the
	// last Take: outcomes of publishes and newly visible messages.
	Take(dst []Released) []Released
}

// Author is who sent a message: a user's name and colour, and the display
// name of a verified user's token ("" without one). The node shares one
// per user among that user's messages; the engine keeps the pointer it is
// given in the entries it retains.
type Author struct {
	Name, Color, Display string
}

// Entry is one retained message, kept compact (history is most of what a
// busy node holds besides its connections): the room's name and epoch are
// the log's, and the text and client id share one string.
type Entry struct {
	Off    uint64
	TS     int64 // Unix ms
	Who    *Author
	Data   string // the text, then the client id
	CIDLen uint8  // ≤ mux.MaxCIDBytes
}

// Text is the message's text.
func (e *Entry) Text() string { return e.Data[:len(e.Data)-int(e.CIDLen)] }

// CID is the message's client id ("" without one).
func (e *Entry) CID() string { return e.Data[len(e.Data)-int(e.CIDLen):] }

// Draft is a message to publish.
type Draft struct {
	Who  *Author
	Text string
	CID  string // "" without one
	TS   int64  // Unix ms, the time the node took the send
}

// Released is one thing Take reports.
type Released struct {
	// Ticket, when not 0, is the ticket of a Publish of this node that
	// this is the outcome of.
	Ticket uint64
	// Err is set when the publish failed (nothing was appended): the node
	// answers the sender with it (503 unavailable, wrapping
	// ErrUnavailable, or shutting down).
	Err error
	// Dup is set when the publish was a retry of a retained message: Off
	// and TS are the first copy's, and the first copy is visible.
	Dup bool
	// Reset is set when the log could not go on from where it was: its
	// epoch changed (history lost) or messages the node missed are no
	// longer retained. The log is now at its new epoch and Top; the node
	// must make the room's members resynchronise (their connections are
	// sent a goaway, they reconnect and resume with reset).
	Reset bool
	// Off and TS are the message's offset and time.
	Off uint64
	TS  int64
	// Entry is the newly visible message (nil for an outcome with Err or
	// Dup, for Reset, and for a message no longer retained when it became
	// visible: a burst beyond the room's bound); it points into the log's
	// retained messages, valid under the room's lock until the log's next
	// Publish or Take. Body is its push body (the JSON of mux.Message),
	// encoded once, the node's to keep.
	Entry *Entry
	Body  []byte
}

// Presence shares who is present in which room. A user is present in a
// room while one of its sessions, on any node, is in it.
type Presence interface {
	// SetPresent tells the other nodes that user u (colour) is now present
	// in room (in) or no longer (!in) on this node: the node calls it when
	// its own count of u's sessions in the room goes from 0 to 1, or from
	// 1 to 0. Fire and forget; the engine keeps the entry alive while this
	// node is.
	SetPresent(room string, u Author, in bool)
	// Who calls done with the users present in room on every node (for a
	// room this node has not opened; an opened room's presence is the
	// node's own view: Opened.Present and Sink.Presence), or
	// ErrUnknownRoom for a room that does not exist.
	Who(room string, done func([]Present, error))
}

// Present is one user present in a room on one node.
type Present struct {
	User Author
	Node string
}

// Users is the table of user names: which token holds a name, on which
// connections of which nodes, and the reservation of a name for its owner
// for a grace period after its last session; and private messages, which
// go to every session of a user wherever it is.
type Users interface {
	// Claim makes a session a session of a user (attach with a name, or
	// nick). Names are compared by mux.NameKey. It fails with 409
	// name_taken when the name is held by another token (online, or
	// reserved after its owner went) and the session's connection holds
	// none of the user's sessions. A new user gets the token asked for,
	// or a new random one.
	//
	// A Verified claim (the node verified the session's identity: --auth
	// jwt) makes a verified user, whose name is its own whatever the
	// token: it is refused (409 name_taken) only when the name is held,
	// online or reserved, by a user that is not verified, or by a verified
	// user of another spelling (two subjects of one case fold: one user
	// per name, one name per subject). A claim without Verified never
	// takes a verified user's name, on any connection. A verified user
	// has no token (Claimed.Token is ""); its name is reserved after its
	// last session as any other, for the next Verified claim.
	Claim(c Claim, done func(Claimed, error))
	// Release tells the engine that a session of user name is gone. After
	// the user's last session on every node the name is reserved to its
	// token for the grace period. Fire and forget.
	Release(name string, s SessionRef)
	// DM sends a private message: to every session of the user named
	// d.To, and to the sender's other sessions, on every node (through
	// Sink.DM). done gets the number of sessions it went to. 410
	// user_offline when the user has no session (a reserved name gets
	// nothing), 429 recipient_busy beyond the recipient's rate. With DM
	// history (dms.go) the message is first appended to the conversation
	// of the two users, which gives it its offset (DMSent.Off, and the
	// push's) atomically with the append; the engine answers (and
	// delivers) only once the append is as durable as a room's message
	// would be (the local engine's durable store: once committed).
	DM(d DMSend, done func(DMSent, error))
	// Disconnect ends the sessions of user name on every node: each node
	// detaches its sessions of the user (Sink.Disconnect, with reason).
	// done gets the number of sessions the user had (0: not online, which
	// is not an error).
	Disconnect(name, reason string, done func(int, error))
	// Conns calls done with the connections of user name on every node
	// and how many of its sessions each holds, oldest first (none: the
	// user is not online). A ConnRef's Since may be zero when the engine
	// does not keep it (the local engine: the node knows its own).
	Conns(name string, done func([]UserConn, error))
	// Online is the number of users online on every node, as far as the
	// engine knows it cheaply (the Redis engine may return this node's).
	Online() int
	// Reserved is the number of names reserved for offline users.
	Reserved() int
}

// ConnRef names a connection of a node. Connection ids increase with the
// connections' age on a node; Since orders connections of different nodes.
type ConnRef struct {
	Node  string
	ID    uint64
	Since time.Time
}

// SessionRef names a session of a connection.
type SessionRef struct {
	Conn ConnRef
	SID  uint32
}

// UserConn is a connection of a user and how many of the user's sessions
// it holds.
type UserConn struct {
	Conn     ConnRef
	Sessions int
}

// Claim asks for a name for a session.
type Claim struct {
	Name, Token string
	// Verified: the node verified that the session is user Name (its
	// token's subject); Token is then not used (see Users.Claim).
	Verified bool
	Session  SessionRef
	// MaxConns is the most connections a user may hold on every node
	// together (0: no limit); beyond it Claimed.Kick names the oldest.
	MaxConns int
}

// Claimed is the user a session became.
type Claimed struct {
	User  Author
	Token string
	// Gen is the user's generation (Gen(Token, verified)): the identity
	// its conversations are kept under (dms.go).
	Gen string
	// Kick lists connections (of this node or others) the user now holds
	// beyond Claim.MaxConns, oldest first: the node kicks its own; the
	// engine tells the other nodes (Sink.Kick).
	Kick []ConnRef
}

// DMSend is a private message to send.
type DMSend struct {
	From Author
	To   string
	Text string
	CID  string
	TS   int64 // Unix ms
	// Sender is the sending session: it does not get its own message. The
	// zero SessionRef is no session (the server API sends): every session
	// of the sender gets it.
	Sender SessionRef
	// FromGen is the sender's generation (Claimed.Gen; SystemGen for the
	// system sender). "": the engine finds the generation of whoever
	// holds the name From now (none: a side nobody can read).
	FromGen string
}

// DMSent is what a DM did.
type DMSent struct {
	ID       uint64 // increases in the order the recipient's messages were accepted
	TS       int64
	Sessions int // sessions it went to, on every node
	To       Author
	// Epoch and Off place the message in the conversation ("" and 0
	// without DM history).
	Epoch string
	Off   uint64
}

// Nodes is the list of live nodes, for /lbs.
type Nodes interface {
	// Nodes calls done with the live nodes, best first (fewest
	// connections). The local engine lists this node only.
	Nodes(done func([]Node, error))
}

// Node is one live node.
type Node struct {
	ID        string `json:"id"`
	Advertise string `json:"advertise"` // the ws:// URL clients connect to ("": the URL a client used to reach this node)
	Conns     int64  `json:"conns"`
}

// Sink is the node, as the engine sees it. The engine calls it from its own
// goroutines (the local engine: its store's writer, after a commit), or on
// the goroutine of one of the node's calls, before that call returns (the
// local engine delivers a DM's messages inside DM). Inside a node's call
// the Sink only queues, and never calls the engine back, so the engine may
// hold its own locks there; on the engine's goroutines the Sink may also
// write to connections and end them (and so Release their sessions), so
// the engine must not hold a lock there that such calls need. A Sink
// method may wait for the node's workers but never for a client.
type Sink interface {
	// Ready tells the node that the log of room has something to Take.
	Ready(room string)
	// Presence tells the node that user u is now present in room on node
	// (in) or no longer (!in).
	Presence(room string, p Present, in bool)
	// NodeGone tells the node that node is dead: its presence entries,
	// sessions and connections are gone.
	NodeGone(node string)
	// DM delivers a private message to this node's sessions of user to
	// (and of the sender, other than the sending session).
	DM(d DMDelivery)
	// Kick tells the node to close its connection id: its user holds too
	// many connections (goaway too_many_connections).
	Kick(id uint64, user string)
	// Disconnect tells the node to detach its sessions of user (by
	// mux.NameKey): the server API disconnected the user, for reason.
	Disconnect(user, reason string)
	// Conns is this node's number of open connections, for the node list.
	Conns() int64
}

// DMDelivery is a private message for this node's sessions.
type DMDelivery struct {
	// Body is the dm push body (the JSON of mux.DM), encoded once.
	Body []byte
	// Users names the users (by mux.NameKey) whose sessions on this node
	// get it: the recipient's, and the sender's.
	Users []string
	// Except is the sending session, which does not get it.
	Except SessionRef
}
