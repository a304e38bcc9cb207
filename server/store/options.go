package store

import (
	"io"
	"log/slog"
	"time"
)

// Defaults used by OpenSQLite for the zero fields of Options.
const (
	DefaultMaxMessages   = 1000
	DefaultMaxAge        = 24 * time.Hour
	DefaultBatchSize     = 512
	DefaultFlushInterval = 50 * time.Millisecond
	DefaultQueueLen      = 65536
	// DefaultDMMaxMessages and DefaultDMMaxAge bound a conversation of
	// private messages.
	DefaultDMMaxMessages = 500
	DefaultDMMaxAge      = 7 * 24 * time.Hour
)

// ageTrimEvery is how often the writer deletes messages older than MaxAge
// (it also does so once at open).
const ageTrimEvery = time.Minute

// trimChunk is how many rooms one age-trim transaction covers: with many
// rooms a trim of all of them in one transaction would hold the writer (and
// so every durable send) for seconds.
const trimChunk = 256

// Options configures a SQLite store. The zero value of each field selects
// its default.
type Options struct {
	// MaxMessages is how many of a room's newest messages are kept
	// (default 1000).
	MaxMessages int
	// MaxAge is how long a message is kept (default 24h).
	MaxAge time.Duration
	// DMMaxMessages and DMMaxAge are the same for each conversation of
	// private messages (defaults 500 and 7 days).
	DMMaxMessages int
	DMMaxAge      time.Duration
	// BatchSize is the most changes the writer applies in one transaction
	// (default 512, at most QueueLen).
	BatchSize int
	// FlushInterval is how long a change may wait for others to share its
	// transaction (default 50ms). A full batch, Flush and Close do not wait.
	FlushInterval time.Duration
	// QueueLen bounds the changes queued and not yet committed (default
	// 65536). Append, CreateRoom and DeleteRoom return ErrFull while it is
	// reached.
	QueueLen int
	// Durable makes every commit durable before it is reported: SQLite's
	// synchronous=FULL (the write-ahead log is fsynced at each commit) and
	// no linger (the writer commits whatever is queued as soon as it is
	// free: a group commit, one transaction and one fsync for everything
	// queued meanwhile). Without it (relaxed) commits linger up to
	// FlushInterval and are not fsynced (synchronous=NORMAL), and a store
	// that was not closed cleanly gives every room a new epoch when it is
	// opened again: messages acknowledged before the crash may be gone, and
	// their offsets must not name other messages in the same epoch.
	Durable bool
	// NoSync, with Durable, commits without fsync (synchronous=NORMAL): a
	// commit then survives a crash of the process (the log is in the
	// kernel's page cache) but not of the machine. The store records the
	// machine's boot id while it is open; found open at the next start with
	// another boot id (the machine went down with it), every room gets a
	// new epoch, as for a relaxed store.
	NoSync bool
	// OnCommit, if set, is called by the writer goroutine after each
	// transaction that appended messages, with the newest committed message
	// of each room (the slice is reused after the call returns). It must
	// not call back into the store's queue-waiting calls (Flush, Close).
	OnCommit func([]Committed)
	// Logger receives write errors and warnings (default: discard).
	Logger *slog.Logger
	// Now is the clock used for message ages and room creation times
	// (default time.Now). Tests inject it.
	Now func() time.Time

	// ageTrimEvery is how often the writer trims by age (default
	// ageTrimEvery); tests shorten it.
	ageTrimEvery time.Duration
	// bootID returns the machine's boot id (default: Linux's
	// /proc/sys/kernel/random/boot_id; "" when unknown); tests replace it.
	bootID func() string
	// trimChunk is how many rooms one age-trim transaction covers (default
	// trimChunk); the writer commits queued changes between chunks.
	trimChunk int
}

// withDefaults returns o with every zero field set to its default.
func (o Options) withDefaults() Options {
	if o.MaxMessages <= 0 {
		o.MaxMessages = DefaultMaxMessages
	}
	if o.MaxAge <= 0 {
		o.MaxAge = DefaultMaxAge
	}
	if o.DMMaxMessages <= 0 {
		o.DMMaxMessages = DefaultDMMaxMessages
	}
	if o.DMMaxAge <= 0 {
		o.DMMaxAge = DefaultDMMaxAge
	}
	if o.BatchSize <= 0 {
		o.BatchSize = DefaultBatchSize
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = DefaultFlushInterval
	}
	if o.QueueLen <= 0 {
		o.QueueLen = DefaultQueueLen
	}
	if o.BatchSize > o.QueueLen {
		o.BatchSize = o.QueueLen
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.ageTrimEvery <= 0 {
		o.ageTrimEvery = ageTrimEvery
	}
	if o.bootID == nil {
		o.bootID = readBootID
	}
	if o.trimChunk <= 0 {
		o.trimChunk = trimChunk
	}
	return o
}

// fsync reports whether every commit is fsynced.
func (o Options) fsync() bool { return o.Durable && !o.NoSync }

// cutoffMS is the timestamp (Unix ms) before which messages are too old.
func (o Options) cutoffMS() int64 {
	return o.Now().Add(-o.MaxAge).UnixMilli()
}
