package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// The store keeps two kinds of logs the same way: rooms (rooms, messages)
// and the conversations of private messages (dm_convs, dm_messages). A log
// has a name, an epoch and messages by offset; each kind has its own
// bounds (Options.MaxMessages and MaxAge; DMMaxMessages and DMMaxAge). The
// writer's statements are the same for both, on each kind's tables.

// logKind is a kind of log.
type logKind uint8

const (
	kindRoom logKind = iota // a room
	kindDM                  // a conversation of private messages
	numKinds
)

// logTables names one kind's tables: the logs (owners, keyed by name) and
// their messages (msgs, keyed by col and offset); what names a log in
// errors.
type logTables struct {
	owners, msgs, col, what string
}

var tablesOf = [numKinds]logTables{
	kindRoom: {owners: "rooms", msgs: "messages", col: "room", what: "room"},
	kindDM:   {owners: "dm_convs", msgs: "dm_messages", col: "conv", what: "conversation"},
}

// Statements of the writer on one kind's tables ({O} the logs, {M} their
// messages, {C} the messages' log column), prepared once on its
// connection. ?1 is the log in all of them.
const (
	// sqlDropStale deletes a log's messages if the log is stored with
	// another epoch than ?2: it was made again, its offsets restart.
	sqlDropStale = `DELETE FROM {M} WHERE {C} = ?1
		AND EXISTS (SELECT 1 FROM {O} WHERE name = ?1 AND epoch <> ?2)`
	// sqlUpsertLog records a log; a replay (same epoch) changes nothing.
	sqlUpsertLog = `INSERT INTO {O} (name, epoch, created_ms) VALUES (?1, ?2, ?3)
		ON CONFLICT (name) DO UPDATE SET epoch = excluded.epoch, created_ms = excluded.created_ms
		WHERE epoch <> excluded.epoch`
	// sqlDeleteMessages and sqlDeleteLog delete a log stored with epoch
	// ?2 (messages first, while the log's row says which epoch is stored).
	sqlDeleteMessages = `DELETE FROM {M} WHERE {C} = ?1
		AND EXISTS (SELECT 1 FROM {O} WHERE name = ?1 AND epoch = ?2)`
	sqlDeleteLog = `DELETE FROM {O} WHERE name = ?1 AND epoch = ?2`
	// sqlAppend stores a message if its log is stored with its epoch
	// (?8), replacing a message of the same offset (a replay).
	sqlAppend = `INSERT INTO {M} ({C}, "offset", from_user, color, text, ts_ms, cid, display)
		SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?9 FROM {O} WHERE name = ?1 AND epoch = ?8
		ON CONFLICT ({C}, "offset") DO UPDATE SET from_user = excluded.from_user,
			color = excluded.color, text = excluded.text, ts_ms = excluded.ts_ms, cid = excluded.cid,
			display = excluded.display`
	sqlLogEpoch = `SELECT epoch FROM {O} WHERE name = ?1`
	// sqlTrimCount keeps the newest ?2 offsets of a log.
	sqlTrimCount = `DELETE FROM {M} WHERE {C} = ?1
		AND "offset" <= (SELECT MAX("offset") FROM {M} WHERE {C} = ?1) - ?2`
	// sqlTrimAge deletes a log's messages before its first one sent at or
	// after ?2 (Unix ms), all of them if there is none. The subquery walks
	// the log in offset order and stops at that message.
	sqlTrimAge = `DELETE FROM {M} WHERE {C} = ?1 AND "offset" < COALESCE(
		(SELECT "offset" FROM {M} WHERE {C} = ?1 AND ts_ms >= ?2 ORDER BY "offset" LIMIT 1),
		9223372036854775807)`
	sqlLogNames = `SELECT name FROM {O}`
	// sqlLoadMessages reads a log's newest ?3 messages sent at or after ?2.
	sqlLoadMessages = `SELECT "offset", from_user, color, text, ts_ms, cid, display
		FROM {M} WHERE {C} = ?1 AND ts_ms >= ?2 ORDER BY "offset" DESC LIMIT ?3`
	// sqlSetConvMeta records a conversation's users and generations (?3…?6)
	// if it is stored with epoch ?2.
	sqlSetConvMeta = `UPDATE dm_convs SET user_a = ?3, user_b = ?4, gen_a = ?5, gen_b = ?6
		WHERE name = ?1 AND epoch = ?2`
)

// sql returns statement q on t's tables.
func (t logTables) sql(q string) string {
	return strings.NewReplacer("{O}", t.owners, "{M}", t.msgs, "{C}", t.col).Replace(q)
}

// logStmts are the writer's prepared statements on one kind's tables.
type logStmts struct {
	dropStale, upsert, deleteMessages, deleteLog *sql.Stmt
	appendMsg, epoch, trimCount, trimAge         *sql.Stmt
	setMeta                                      *sql.Stmt // conversations only
}

// prepare prepares the statements of kind k on conn.
func (s *logStmts) prepare(ctx context.Context, conn *sql.Conn, k logKind) error {
	t := tablesOf[k]
	stmts := []struct {
		stmt **sql.Stmt
		sql  string
	}{
		{&s.dropStale, t.sql(sqlDropStale)},
		{&s.upsert, t.sql(sqlUpsertLog)},
		{&s.deleteMessages, t.sql(sqlDeleteMessages)},
		{&s.deleteLog, t.sql(sqlDeleteLog)},
		{&s.appendMsg, t.sql(sqlAppend)},
		{&s.epoch, t.sql(sqlLogEpoch)},
		{&s.trimCount, t.sql(sqlTrimCount)},
		{&s.trimAge, t.sql(sqlTrimAge)},
	}
	if k == kindDM {
		stmts = append(stmts, struct {
			stmt **sql.Stmt
			sql  string
		}{&s.setMeta, sqlSetConvMeta})
	}
	for _, p := range stmts {
		st, err := conn.PrepareContext(ctx, p.sql)
		if err != nil {
			return fmt.Errorf("prepare %q: %w", p.sql, err)
		}
		*p.stmt = st
	}
	return nil
}

// close releases the statements.
func (s *logStmts) close() {
	for _, st := range []*sql.Stmt{s.dropStale, s.upsert, s.deleteMessages, s.deleteLog,
		s.appendMsg, s.epoch, s.trimCount, s.trimAge, s.setMeta} {
		if st != nil {
			_ = st.Close()
		}
	}
}

// bounds returns the most messages and the oldest (Unix ms) a log of kind
// k keeps.
func (o Options) bounds(k logKind) (max int, cutoffMS int64) {
	if k == kindDM {
		return o.DMMaxMessages, o.Now().Add(-o.DMMaxAge).UnixMilli()
	}
	return o.MaxMessages, o.cutoffMS()
}

// logKey names one log of one kind (the writer's batch bookkeeping).
type logKey struct {
	kind logKind
	name string
}
