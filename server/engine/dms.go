package engine

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"
)

// # Private message history
//
// A conversation is the unordered pair of two users (by mux.NameKey; a
// user with itself is a conversation too). It has an epoch and offsets
// 1, 2, 3 … like a room's, given by the engine atomically with the append
// (DM), and retains at most a bound of messages for a bound of time. The
// engine keeps a bounded number of conversations, dropping the least
// recently active beyond it.
//
// Who may read a conversation: each of its two sides is a user *and a
// generation* (Gen): the identity that held the name when the side's
// messages were written. A read (DMHistory, DMList) names the reader's
// generation, and shows nothing of a conversation whose side is another
// generation of the reader's name. A DM between two users whose
// generations are not those the conversation holds starts it again: a
// new epoch, offsets from 1, the old messages gone. So a user who takes a
// name freed by another (--auth none, after the name's grace) never reads
// the earlier holder's conversations, and the earlier holder's peers see
// the conversation reset (a new epoch) at the first message with the new
// holder. Under --auth jwt the generation of every verified user is the
// same (VerifiedGen): its history outlives its sessions.

// DMs is the history of private messages (see above).
type DMs interface {
	// DMHistory calls done with a window of the conversation of q.User
	// (as generation q.Gen) with q.Peer: an empty page (Epoch "") when
	// there is none the reader may see.
	DMHistory(q DMQuery, done func(DMPage, error))
	// DMList calls done with the conversations of user (as generation
	// gen), the most recently active first, at most limit, and whether
	// more remain.
	DMList(user, gen string, limit int, done func([]DMConv, bool, error))
	// DMStats reports what the engine keeps of private messages.
	DMStats() DMStats
}

// DMQuery asks for a window of one conversation (docs/protocol.md,
// dm_history): with Epoch or After, the messages after After (a reset
// to the latest Limit when Epoch is not the conversation's, or After+1
// is no longer retained); with Before, the Limit messages before it;
// with neither, the latest Limit.
type DMQuery struct {
	User, Gen     string // the reader's name and generation
	Peer          string // the other user's name
	Epoch         string
	After, Before uint64
	Limit         int // ≥ 1
}

// Resume reports whether q asks for what follows an offset (its reply
// keeps the oldest messages when they do not all fit, unless it resets).
func (q *DMQuery) Resume() bool { return q.After > 0 || q.Epoch != "" }

// DMPage is a window of a conversation, oldest first.
type DMPage struct {
	// Epoch is the conversation's epoch ("": there is none the reader
	// may see; Top and First are then 0).
	Epoch      string
	Top, First uint64
	// Reset: the query resumed from an epoch or offset that cannot be
	// continued; Messages are the latest instead.
	Reset bool
	// More: more messages remain beyond the window (older ones for a
	// window of the latest or before an offset, newer ones after an
	// offset).
	More     bool
	Messages []DMEntry
}

// DMEntry is one retained private message: Color and Display are the
// sender's.
type DMEntry struct {
	Off                                 uint64
	TS                                  int64
	From, To, Color, Display, Text, CID string
}

// DMConv is a conversation of a user, as DMList lists it.
type DMConv struct {
	Peer  string // the other user's name, as spelt in the conversation
	Epoch string
	Top   uint64 // the newest offset
	TS    int64  // the newest message's time (Unix ms)
}

// DMStats are an engine's numbers about private messages.
type DMStats struct {
	// Conversations is the number of conversations kept (the Redis
	// engine: as this node last saw it).
	Conversations int64
	// Trimmed counts messages dropped beyond a conversation's bound;
	// Expired those dropped for their age (as far as this node saw);
	// Evicted the conversations dropped beyond the bound on
	// conversations.
	Trimmed, Expired, Evicted int64
}

// VerifiedGen is the generation of every verified user (--auth jwt): a
// subject is the same user whenever it comes back.
const VerifiedGen = "v"

// SystemGen is the generation of the system sender (mux.SystemName), the
// side of a conversation the server API writes without a user.
const SystemGen = "s"

// Gen returns the generation of a user that holds its name with token
// (verified: VerifiedGen). Under --auth none whoever holds a name's token
// is its holder (a browser with the token gets the name back, before or
// after its grace), so the generation is a digest of the token: one who
// takes a freed name gets another token, and another generation.
func Gen(token string, verified bool) string {
	if verified {
		return VerifiedGen
	}
	sum := sha256.Sum256([]byte(token))
	return "t" + hex.EncodeToString(sum[:12])
}

// DMPair returns the conversation of users a and b (by mux.NameKey): the
// two keys in order, joined by '|' (no user name holds one), and which
// side a is (0: the first, 1: the second; a user with itself: 0).
func DMPair(a, b string) (pair string, side int) {
	if b < a {
		return b + "|" + a, 1
	}
	return a + "|" + b, 0
}

// DMPairKeys returns the two users (by mux.NameKey) of a conversation
// DMPair made.
func DMPairKeys(pair string) (a, b string) {
	a, b, _ = strings.Cut(pair, "|")
	return a, b
}

// NewestConvs orders convs as DMList lists them, the most recently active
// first (by the newest message's time, then by peer), and keeps the first
// limit: it returns them and whether more were left out.
func NewestConvs(convs []DMConv, limit int) ([]DMConv, bool) {
	slices.SortFunc(convs, func(a, b DMConv) int {
		if c := cmp.Compare(b.TS, a.TS); c != 0 {
			return c
		}
		return cmp.Compare(a.Peer, b.Peer)
	})
	if len(convs) > limit {
		return convs[:limit], true
	}
	return convs, false
}
