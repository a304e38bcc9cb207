package store

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
)

// The schema. Each entry of migrations takes the database from version i
// (PRAGMA user_version) to version i+1; a new version appends an entry and
// never edits an old one. A database newer than this build is refused.
//
// Version 1:
//   - rooms: one row per room, with the epoch its offsets belong to and when
//     it was created.
//   - messages: the retained messages, keyed by (room, offset). There is no
//     foreign key: the writer deletes a room's messages itself when the room is
//     deleted or made again with a new epoch, and Append only inserts a
//     message whose room and epoch are stored (see stmtAppend).
//
// Version 2:
//   - meta: keys and values of the store itself. "unclean" is "1" while a
//     store opened in relaxed mode (acknowledging before commit) is open:
//     found at open, it means that store stopped without Close, and every
//     room gets a new epoch.
//
// Version 3:
//   - dm_convs and dm_messages: the conversations of private messages, as
//     rooms and messages are for rooms (name is the conversation: the two
//     users' keys in order, joined by '|'), with the users as spelt and the
//     generation of each side (who may read it: engine.Gen).
//
// Version 4:
//   - messages.display and dm_messages.display: the sender's display name
//     (the name claim of its token, --auth jwt), empty without one.
//
// There is no index on ts_ms: it would cost every insert a second B-tree
// write in a place unrelated to the room's. The age trim walks each room's
// messages in offset order instead (times grow with offsets), which touches
// only what it deletes.
var migrations = []string{
	`CREATE TABLE rooms (
		name       TEXT    NOT NULL PRIMARY KEY,
		epoch      TEXT    NOT NULL,
		created_ms INTEGER NOT NULL
	) WITHOUT ROWID;
	CREATE TABLE messages (
		room      TEXT    NOT NULL,
		"offset"  INTEGER NOT NULL,
		from_user TEXT    NOT NULL,
		color     TEXT    NOT NULL,
		text      TEXT    NOT NULL,
		ts_ms     INTEGER NOT NULL,
		cid       TEXT    NOT NULL DEFAULT '',
		PRIMARY KEY (room, "offset")
	) WITHOUT ROWID;`,
	`CREATE TABLE meta (
		key   TEXT NOT NULL PRIMARY KEY,
		value TEXT NOT NULL
	) WITHOUT ROWID;`,
	`CREATE TABLE dm_convs (
		name       TEXT    NOT NULL PRIMARY KEY,
		epoch      TEXT    NOT NULL,
		created_ms INTEGER NOT NULL,
		user_a     TEXT    NOT NULL DEFAULT '',
		user_b     TEXT    NOT NULL DEFAULT '',
		gen_a      TEXT    NOT NULL DEFAULT '',
		gen_b      TEXT    NOT NULL DEFAULT ''
	) WITHOUT ROWID;
	CREATE TABLE dm_messages (
		conv      TEXT    NOT NULL,
		"offset"  INTEGER NOT NULL,
		from_user TEXT    NOT NULL,
		color     TEXT    NOT NULL,
		text      TEXT    NOT NULL,
		ts_ms     INTEGER NOT NULL,
		cid       TEXT    NOT NULL DEFAULT '',
		PRIMARY KEY (conv, "offset")
	) WITHOUT ROWID;`,
	`ALTER TABLE messages ADD COLUMN display TEXT NOT NULL DEFAULT '';
	ALTER TABLE dm_messages ADD COLUMN display TEXT NOT NULL DEFAULT '';`,
}

// schemaVersion is the version this build writes.
var schemaVersion = len(migrations)

// busyTimeoutMS is how long a connection waits for a lock held by another.
const busyTimeoutMS = 5000

// dsn returns the driver name for the database file at path: a file: URI
// (so that any byte of the path is escaped) with the per-connection pragmas.
// readOnly opens it with mode=ro, for tools and tests; durable fsyncs the
// write-ahead log at every commit (synchronous=FULL) rather than only at
// checkpoints (NORMAL, which survives a crash of the process but may lose
// the last commits to a power loss).
func dsn(path string, readOnly, durable bool) string {
	q := url.Values{}
	q.Set("_busy_timeout", fmt.Sprint(busyTimeoutMS))
	if readOnly {
		q.Set("mode", "ro")
	} else {
		q.Add("_pragma", "journal_mode(WAL)")
		if durable {
			q.Add("_pragma", "synchronous(FULL)")
		} else {
			q.Add("_pragma", "synchronous(NORMAL)")
		}
	}
	u := url.URL{Scheme: "file", Path: path, RawQuery: q.Encode()}
	return u.String()
}

// migrate brings the database on conn to schemaVersion, in one
// transaction.
func migrate(ctx context.Context, conn *sql.Conn) (err error) {
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() {
		if err != nil {
			_, _ = conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
		}
	}()
	var v int
	if err := conn.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if v > schemaVersion {
		return fmt.Errorf("schema version %d is newer than this build's %d", v, schemaVersion)
	}
	for ; v < schemaVersion; v++ {
		if _, err := conn.ExecContext(ctx, migrations[v]); err != nil {
			return fmt.Errorf("migrate schema to version %d: %w", v+1, err)
		}
	}
	// PRAGMA takes no parameters; v is an int.
	if _, err := conn.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", v)); err != nil {
		return fmt.Errorf("set schema version %d: %w", v, err)
	}
	if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}
