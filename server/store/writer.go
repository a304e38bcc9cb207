package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
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
	// sqlDeleteMessages and sqlDeleteRoom delete a room stored with epoch
	// ?2 (messages first, while the room row says which epoch is stored).
	sqlDeleteMessages = `DELETE FROM messages WHERE room = ?1
		AND EXISTS (SELECT 1 FROM rooms WHERE name = ?1 AND epoch = ?2)`
	sqlDeleteRoom = `DELETE FROM rooms WHERE name = ?1 AND epoch = ?2`
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

// retryPause is how long the writer waits before it first retries a failed
// batch; the pause doubles up to maxRetryPause.
const (
	retryPause    = 100 * time.Millisecond
	maxRetryPause = 5 * time.Second
)

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

	commits   []Committed    // reported to OnCommit, reused
	commitIdx map[string]int // room → index in commits

	// Outcome reported to the next Flush: changes dropped since the last
	// one, and the first error that dropped them.
	lost    int
	lostErr error

	// failing is the error of the batch being retried (nil: none), for
	// Store.Err.
	failing atomic.Pointer[error]
}

// newWriter prepares the writer's statements on conn.
func newWriter(ctx context.Context, conn *sql.Conn, q *queue, opts Options) (*writer, error) {
	w := &writer{
		conn:      conn,
		opts:      opts,
		log:       opts.Logger,
		q:         q,
		done:      make(chan struct{}),
		touched:   make(map[string]struct{}),
		commitIdx: make(map[string]int),
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
	start, deletes := 0, 0
	for i, o := range ops {
		if o.kind == opFlush {
			w.commit(ops[start:i])
			start, deletes = i+1, 0
			o.done <- w.takeLost()
			continue
		}
		if o.kind == opDelete {
			deletes++
		}
		// A deletion costs a transaction far more than an append: a batch
		// takes only a few, so that messages queued behind many expiring
		// rooms wait for little.
		if i+1-start >= w.opts.BatchSize || deletes >= maxDeletesPerBatch {
			w.commit(ops[start : i+1])
			start, deletes = i+1, 0
		}
	}
	w.commit(ops[start:])
}

// maxDeletesPerBatch is the most room deletions one transaction makes.
const maxDeletesPerBatch = 32

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
// transaction, then reports the committed messages (Options.OnCommit) and
// frees their room in the queue. A batch that fails is retried, with a
// pause that grows to maxRetryPause, for as long as the store is open:
// changes are committed in order or not at all, and a durable server has
// acknowledged none of them yet (its senders get 503 once the queue is
// full). Once the store is closing, a batch that still fails is logged and
// dropped, and the next Flush (or Close) reports it.
func (w *writer) commit(batch []op) {
	if len(batch) == 0 {
		return
	}
	defer w.q.release(len(batch))
	first, last := batch[0].m.Room, batch[len(batch)-1].m.Room
	pause := retryPause
	for attempt := 1; ; attempt++ {
		err := w.apply(batch)
		if err == nil {
			if attempt > 1 {
				w.failing.Store(nil)
				w.log.Info("store: write succeeded after retrying", "changes", len(batch), "attempts", attempt)
			}
			w.committed(batch)
			return
		}
		if attempt >= 2 && w.q.isClosed() {
			w.log.Error("store: write failed twice while closing, changes dropped", "changes", len(batch),
				"first_room", first, "last_room", last, "err", err)
			if w.lost == 0 {
				w.lostErr = err
			}
			w.lost += len(batch)
			return
		}
		w.failing.Store(&err)
		w.log.Warn("store: write failed, retrying", "changes", len(batch), "attempt", attempt,
			"first_room", first, "last_room", last, "retry_in", pause, "err", err)
		time.Sleep(pause)
		pause = min(2*pause, maxRetryPause)
	}
}

// committed reports the newest message of each room appended to in batch,
// just committed, to Options.OnCommit.
func (w *writer) committed(batch []op) {
	if w.opts.OnCommit == nil {
		return
	}
	w.commits = w.commits[:0]
	clear(w.commitIdx)
	for i := range batch {
		m := &batch[i].m
		if batch[i].kind != opAppend {
			continue
		}
		if j, ok := w.commitIdx[m.Room]; ok {
			w.commits[j].Epoch, w.commits[j].Offset = m.Epoch, m.Offset
			continue
		}
		w.commitIdx[m.Room] = len(w.commits)
		w.commits = append(w.commits, Committed{Room: m.Room, Epoch: m.Epoch, Offset: m.Offset})
	}
	if len(w.commits) > 0 {
		w.opts.OnCommit(w.commits)
	}
	clear(w.commits)
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
		if _, err := w.deleteMessages.ExecContext(ctx, m.Room, m.Epoch); err != nil {
			return fmt.Errorf("delete room %q: %w", m.Room, err)
		}
		if _, err := w.deleteRoom.ExecContext(ctx, m.Room, m.Epoch); err != nil {
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
// MaxMessages), committing what is queued between chunks of rooms. An error
// is logged; the next tick tries again.
func (w *writer) trimOld() {
	n, err := w.trimAll(context.Background(), w.serviceQueue)
	if err != nil {
		w.log.Error("store: trim failed", "max_age", w.opts.MaxAge, "err", err)
		return
	}
	if n > 0 {
		w.log.Debug("store: trimmed old messages", "deleted", n)
	}
}

// serviceQueue commits whatever is queued now: between the chunks of a
// long trim, so that queued changes (durable sends waiting for their
// commit) do not wait for all of it.
func (w *writer) serviceQueue() {
	if ops, _, _ := w.q.take(true); ops != nil {
		w.process(ops)
		w.q.recycle(ops)
	}
}

// trimAll deletes, room by room, the messages older than MaxAge and those
// beyond the newest MaxMessages (which the batches already do for the rooms
// they touch, but not after MaxMessages was lowered). Rooms are trimmed in
// chunks of trimChunk, one transaction each, and between (if not nil) runs
// after each chunk. It returns how many messages it deleted. Each room
// costs a few index seeks plus what it deletes.
func (w *writer) trimAll(ctx context.Context, between func()) (deleted int64, err error) {
	cutoff := w.opts.cutoffMS()
	rooms, err := w.roomNames(ctx)
	if err != nil {
		return 0, err
	}
	for len(rooms) > 0 {
		chunk := rooms[:min(len(rooms), w.opts.trimChunk)]
		rooms = rooms[len(chunk):]
		n, err := w.trimRooms(ctx, chunk, cutoff)
		deleted += n
		if err != nil {
			return deleted, err
		}
		if between != nil && len(rooms) > 0 {
			between()
		}
	}
	return deleted, nil
}

// trimRooms trims rooms in one transaction.
func (w *writer) trimRooms(ctx context.Context, rooms []string, cutoff int64) (deleted int64, err error) {
	if _, err := w.conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return 0, fmt.Errorf("begin: %w", err)
	}
	defer func() {
		if err != nil {
			_, _ = w.conn.ExecContext(ctx, "ROLLBACK")
		}
	}()
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
