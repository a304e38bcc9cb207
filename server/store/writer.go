package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"imload/mux"
)

// Statements of the writer, prepared once on its connection. ?1 is the room
// in all of them.
const (
	// sqlDropStale deletes a room's messages if the room is stored with
	// another epoch than ?2: the room was made again, its offsets restart.
	sqlDropStale = `DELETE FROM messages WHERE room = ?1
		AND EXISTS (SELECT 1 FROM rooms WHERE name = ?1 AND epoch <> ?2)`
	// sqlUpsertRoom records a room; a replay (same epoch) changes nothing.
	sqlUpsertRoom = `INSERT INTO rooms (name, epoch, created_ms) VALUES (?1, ?2, ?3)
		ON CONFLICT (name) DO UPDATE SET epoch = excluded.epoch, created_ms = excluded.created_ms
		WHERE epoch <> excluded.epoch`
	sqlDeleteMessages = `DELETE FROM messages WHERE room = ?1`
	sqlDeleteRoom     = `DELETE FROM rooms WHERE name = ?1`
	// sqlAppend stores a message if its room is stored with its epoch
	// (?8), replacing a message of the same offset (a replay).
	sqlAppend = `INSERT INTO messages (room, "offset", from_user, color, text, ts_ms, cid)
		SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7 FROM rooms WHERE name = ?1 AND epoch = ?8
		ON CONFLICT (room, "offset") DO UPDATE SET from_user = excluded.from_user,
			color = excluded.color, text = excluded.text, ts_ms = excluded.ts_ms, cid = excluded.cid`
	sqlRoomEpoch = `SELECT epoch FROM rooms WHERE name = ?1`
	// sqlTrimCount keeps the newest ?2 offsets of a room.
	sqlTrimCount = `DELETE FROM messages WHERE room = ?1
		AND "offset" <= (SELECT MAX("offset") FROM messages WHERE room = ?1) - ?2`
	// sqlTrimAge deletes a room's messages before its first one sent at or
	// after ?2 (Unix ms), all of them if there is none. The subquery walks
	// the room in offset order and stops at that message.
	sqlTrimAge = `DELETE FROM messages WHERE room = ?1 AND "offset" < COALESCE(
		(SELECT "offset" FROM messages WHERE room = ?1 AND ts_ms >= ?2 ORDER BY "offset" LIMIT 1),
		9223372036854775807)`
	sqlRoomNames = `SELECT name FROM rooms`
)

// retryPause is how long the writer waits before it retries a failed batch.
const retryPause = 100 * time.Millisecond

// writer is the goroutine that owns the write connection: it takes queued
// changes, applies them in batches, one transaction each, and trims.
type writer struct {
	conn *sql.Conn
	opts Options
	log  *slog.Logger
	q    *queue
	done chan struct{} // closed when run returns

	dropStale, upsertRoom, deleteMessages, deleteRoom *sql.Stmt
	appendMsg, roomEpoch, trimCount, trimAge          *sql.Stmt

	touched map[string]struct{} // rooms appended to in the current batch

	// Outcome reported to the next Flush: changes dropped since the last
	// one, and the first error that dropped them.
	lost    int
	lostErr error
}

// newWriter prepares the writer's statements on conn.
func newWriter(ctx context.Context, conn *sql.Conn, q *queue, opts Options) (*writer, error) {
	w := &writer{
		conn:    conn,
		opts:    opts,
		log:     opts.Logger,
		q:       q,
		done:    make(chan struct{}),
		touched: make(map[string]struct{}),
	}
	for _, p := range []struct {
		stmt **sql.Stmt
		sql  string
	}{
		{&w.dropStale, sqlDropStale},
		{&w.upsertRoom, sqlUpsertRoom},
		{&w.deleteMessages, sqlDeleteMessages},
		{&w.deleteRoom, sqlDeleteRoom},
		{&w.appendMsg, sqlAppend},
		{&w.roomEpoch, sqlRoomEpoch},
		{&w.trimCount, sqlTrimCount},
		{&w.trimAge, sqlTrimAge},
	} {
		s, err := conn.PrepareContext(ctx, p.sql)
		if err != nil {
			w.closeStmts()
			return nil, fmt.Errorf("prepare %q: %w", p.sql, err)
		}
		*p.stmt = s
	}
	return w, nil
}

// closeStmts releases the prepared statements.
func (w *writer) closeStmts() {
	for _, s := range []*sql.Stmt{w.dropStale, w.upsertRoom, w.deleteMessages,
		w.deleteRoom, w.appendMsg, w.roomEpoch, w.trimCount, w.trimAge} {
		if s != nil {
			_ = s.Close()
		}
	}
}

// run is the writer goroutine. It returns once the queue is closed and
// everything queued before has been written.
func (w *writer) run() {
	defer close(w.done)
	ageTick := time.NewTicker(w.opts.ageTrimEvery)
	defer ageTick.Stop()
	// linger holds a batch that is not full for FlushInterval, so that
	// changes arriving close together share a transaction.
	linger := time.NewTimer(time.Hour)
	linger.Stop()
	armed := false
	for {
		force := false
		select {
		case <-w.q.wake:
		case <-linger.C:
			armed, force = false, true
		case <-ageTick.C:
			w.trimOld()
			continue
		}
		ops, pending, closed := w.q.take(force)
		if ops == nil {
			if closed {
				return
			}
			if pending > 0 && !armed {
				linger.Reset(w.opts.FlushInterval)
				armed = true
			}
			continue
		}
		if armed {
			linger.Stop()
			armed = false
		}
		w.process(ops)
		w.q.recycle(ops)
		if closed {
			return
		}
	}
}

// process writes ops in batches of at most BatchSize changes, answering
// each flush marker once everything before it is committed.
func (w *writer) process(ops []op) {
	start := 0
	for i, o := range ops {
		if o.kind == opFlush {
			w.commit(ops[start:i])
			start = i + 1
			o.done <- w.takeLost()
			continue
		}
		if i+1-start >= w.opts.BatchSize {
			w.commit(ops[start : i+1])
			start = i + 1
		}
	}
	w.commit(ops[start:])
}

// takeLost returns the error to report to a Flush, and resets it.
func (w *writer) takeLost() error {
	if w.lost == 0 {
		return nil
	}
	err := fmt.Errorf("store: %d changes were not written: %w", w.lost, w.lostErr)
	w.lost, w.lostErr = 0, nil
	return err
}

// commit applies a batch of changes (no flush markers) in one
// transaction, retrying once, then frees their room in the queue. A batch
// that fails twice is logged and dropped: the server goes on, and the
// hub's memory still has the messages.
func (w *writer) commit(batch []op) {
	if len(batch) == 0 {
		return
	}
	defer w.q.release(len(batch))
	err := w.apply(batch)
	if err == nil {
		return
	}
	first, last := batch[0].m.Room, batch[len(batch)-1].m.Room
	w.log.Warn("store: write failed, retrying", "changes", len(batch),
		"first_room", first, "last_room", last, "err", err)
	time.Sleep(retryPause)
	if err = w.apply(batch); err == nil {
		return
	}
	w.log.Error("store: write failed twice, changes dropped", "changes", len(batch),
		"first_room", first, "last_room", last, "err", err)
	if w.lost == 0 {
		w.lostErr = err
	}
	w.lost += len(batch)
}

// apply runs one batch in one transaction: the changes in order, then the
// count trim of the rooms appended to.
func (w *writer) apply(batch []op) (err error) {
	ctx := context.Background()
	if _, err := w.conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() {
		if err != nil {
			// Some errors roll back by themselves; then this one fails.
			_, _ = w.conn.ExecContext(ctx, "ROLLBACK")
		}
	}()
	clear(w.touched)
	for _, o := range batch {
		if err := w.applyOne(ctx, o); err != nil {
			return err
		}
	}
	for room := range w.touched {
		if _, err := w.trimCount.ExecContext(ctx, room, w.opts.MaxMessages); err != nil {
			return fmt.Errorf("trim room %q: %w", room, err)
		}
	}
	if _, err := w.conn.ExecContext(ctx, "COMMIT"); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// applyOne runs one change inside the batch's transaction.
func (w *writer) applyOne(ctx context.Context, o op) error {
	m := &o.m
	switch o.kind {
	case opCreate:
		if _, err := w.dropStale.ExecContext(ctx, m.Room, m.Epoch); err != nil {
			return fmt.Errorf("create room %q: %w", m.Room, err)
		}
		if _, err := w.upsertRoom.ExecContext(ctx, m.Room, m.Epoch, m.TS); err != nil {
			return fmt.Errorf("create room %q: %w", m.Room, err)
		}
	case opDelete:
		if _, err := w.deleteMessages.ExecContext(ctx, m.Room); err != nil {
			return fmt.Errorf("delete room %q: %w", m.Room, err)
		}
		if _, err := w.deleteRoom.ExecContext(ctx, m.Room); err != nil {
			return fmt.Errorf("delete room %q: %w", m.Room, err)
		}
	case opAppend:
		return w.applyAppend(ctx, m)
	}
	return nil
}

// applyAppend stores a message. A message for a room that is not stored
// creates the room with the message's epoch (the hub need not call
// CreateRoom first); one whose epoch is not the room's is stale and is
// dropped with a warning.
func (w *writer) applyAppend(ctx context.Context, m *mux.Message) error {
	res, err := w.appendMsg.ExecContext(ctx, m.Room, int64(m.Offset), m.From, m.Color, m.Text, m.TS, m.CID, m.Epoch)
	if err != nil {
		return fmt.Errorf("append to room %q offset %d: %w", m.Room, m.Offset, err)
	}
	if n, err := res.RowsAffected(); err == nil && n > 0 {
		w.touched[m.Room] = struct{}{}
		return nil
	}
	var epoch string
	switch err := w.roomEpoch.QueryRowContext(ctx, m.Room).Scan(&epoch); {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return fmt.Errorf("append to room %q: read epoch: %w", m.Room, err)
	default:
		w.log.Warn("store: message dropped: room has another epoch", "room", m.Room,
			"offset", m.Offset, "epoch", m.Epoch, "room_epoch", epoch)
		return nil
	}
	if m.Epoch == "" {
		w.log.Warn("store: message dropped: unknown room and no epoch", "room", m.Room, "offset", m.Offset)
		return nil
	}
	if _, err := w.upsertRoom.ExecContext(ctx, m.Room, m.Epoch, m.TS); err != nil {
		return fmt.Errorf("append to room %q: create room: %w", m.Room, err)
	}
	if _, err := w.appendMsg.ExecContext(ctx, m.Room, int64(m.Offset), m.From, m.Color, m.Text, m.TS, m.CID, m.Epoch); err != nil {
		return fmt.Errorf("append to room %q offset %d: %w", m.Room, m.Offset, err)
	}
	w.touched[m.Room] = struct{}{}
	return nil
}

// trimOld deletes the messages older than MaxAge (and any beyond
// MaxMessages). An error is logged; the next tick tries again.
func (w *writer) trimOld() {
	n, err := w.trimAll(context.Background())
	if err != nil {
		w.log.Error("store: trim failed", "max_age", w.opts.MaxAge, "err", err)
		return
	}
	if n > 0 {
		w.log.Debug("store: trimmed old messages", "deleted", n)
	}
}

// trimAll deletes, room by room and in one transaction, the messages older
// than MaxAge and those beyond the newest MaxMessages (which the batches
// already do for the rooms they touch, but not after MaxMessages was
// lowered). It returns how many messages it deleted. Each room costs a few
// index seeks plus what it deletes.
func (w *writer) trimAll(ctx context.Context) (deleted int64, err error) {
	cutoff := w.opts.cutoffMS()
	if _, err := w.conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return 0, fmt.Errorf("begin: %w", err)
	}
	defer func() {
		if err != nil {
			_, _ = w.conn.ExecContext(ctx, "ROLLBACK")
		}
	}()
	rooms, err := w.roomNames(ctx)
	if err != nil {
		return 0, err
	}
	for _, room := range rooms {
		for _, trim := range []struct {
			stmt *sql.Stmt
			arg  any
		}{{w.trimAge, cutoff}, {w.trimCount, w.opts.MaxMessages}} {
			res, err := trim.stmt.ExecContext(ctx, room, trim.arg)
			if err != nil {
				return 0, fmt.Errorf("trim room %q: %w", room, err)
			}
			if n, err := res.RowsAffected(); err == nil {
				deleted += n
			}
		}
	}
	if _, err := w.conn.ExecContext(ctx, "COMMIT"); err != nil {
		return 0, fmt.Errorf("commit: %w", err)
	}
	return deleted, nil
}

// roomNames lists the stored rooms.
func (w *writer) roomNames(ctx context.Context) ([]string, error) {
	rows, err := w.conn.QueryContext(ctx, sqlRoomNames)
	if err != nil {
		return nil, fmt.Errorf("list rooms: %w", err)
	}
	defer rows.Close()
	var rooms []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, fmt.Errorf("list rooms: %w", err)
		}
		rooms = append(rooms, name)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list rooms: %w", err)
	}
	return rooms, nil
}
