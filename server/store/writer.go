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

	stmts [numKinds]logStmts // the statements on each kind's tables

	touched map[logKey]struct{} // logs appended to in the current batch

	commits   []Committed    // reported to OnCommit, reused
	commitIdx map[logKey]int // log → index in commits

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
		touched:   make(map[logKey]struct{}),
		commitIdx: make(map[logKey]int),
	}
	for k := range w.stmts {
		if err := w.stmts[k].prepare(ctx, conn, logKind(k)); err != nil {
			w.closeStmts()
			return nil, err
		}
	}
	return w, nil
}

// closeStmts releases the prepared statements.
func (w *writer) closeStmts() {
	for k := range w.stmts {
		w.stmts[k].close()
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
		if o.op == opFlush {
			w.commit(ops[start:i])
			start, deletes = i+1, 0
			o.done <- w.takeLost()
			continue
		}
		if o.op == opDelete {
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

// committed reports the newest message of each log appended to in batch,
// just committed, to Options.OnCommit.
func (w *writer) committed(batch []op) {
	if w.opts.OnCommit == nil {
		return
	}
	w.commits = w.commits[:0]
	clear(w.commitIdx)
	for i := range batch {
		m := &batch[i].m
		if batch[i].op != opAppend {
			continue
		}
		key := logKey{batch[i].kind, m.Room}
		if j, ok := w.commitIdx[key]; ok {
			w.commits[j].Epoch, w.commits[j].Offset = m.Epoch, m.Offset
			continue
		}
		w.commitIdx[key] = len(w.commits)
		w.commits = append(w.commits, Committed{Room: m.Room, Epoch: m.Epoch, Offset: m.Offset, DM: batch[i].kind == kindDM})
	}
	if len(w.commits) > 0 {
		w.opts.OnCommit(w.commits)
	}
	clear(w.commits)
}

// apply runs one batch in one transaction: the changes in order, then the
// count trim of the logs appended to.
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
	for key := range w.touched {
		max, _ := w.opts.bounds(key.kind)
		if _, err := w.stmts[key.kind].trimCount.ExecContext(ctx, key.name, max); err != nil {
			return fmt.Errorf("trim %s %q: %w", tablesOf[key.kind].what, key.name, err)
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
	st, what := &w.stmts[o.kind], tablesOf[o.kind].what
	switch o.op {
	case opCreate:
		if _, err := st.dropStale.ExecContext(ctx, m.Room, m.Epoch); err != nil {
			return fmt.Errorf("create %s %q: %w", what, m.Room, err)
		}
		if _, err := st.upsert.ExecContext(ctx, m.Room, m.Epoch, m.TS); err != nil {
			return fmt.Errorf("create %s %q: %w", what, m.Room, err)
		}
		if c := o.conv; c != nil && st.setMeta != nil {
			if _, err := st.setMeta.ExecContext(ctx, m.Room, m.Epoch, c.Users[0], c.Users[1], c.Gens[0], c.Gens[1]); err != nil {
				return fmt.Errorf("create %s %q: %w", what, m.Room, err)
			}
		}
	case opDelete:
		if _, err := st.deleteMessages.ExecContext(ctx, m.Room, m.Epoch); err != nil {
			return fmt.Errorf("delete %s %q: %w", what, m.Room, err)
		}
		if _, err := st.deleteLog.ExecContext(ctx, m.Room, m.Epoch); err != nil {
			return fmt.Errorf("delete %s %q: %w", what, m.Room, err)
		}
	case opAppend:
		return w.applyAppend(ctx, o.kind, m)
	}
	return nil
}

// applyAppend stores a message. A message for a log that is not stored
// creates the log with the message's epoch (the caller need not create it
// first; a conversation made so has no users nor generations, and so no
// reader); one whose epoch is not the log's is stale and is dropped with a
// warning.
func (w *writer) applyAppend(ctx context.Context, k logKind, m *mux.Message) error {
	st, what := &w.stmts[k], tablesOf[k].what
	res, err := st.appendMsg.ExecContext(ctx, m.Room, int64(m.Offset), m.From, m.Color, m.Text, m.TS, m.CID, m.Epoch, m.Display)
	if err != nil {
		return fmt.Errorf("append to %s %q offset %d: %w", what, m.Room, m.Offset, err)
	}
	if n, err := res.RowsAffected(); err == nil && n > 0 {
		w.touched[logKey{k, m.Room}] = struct{}{}
		return nil
	}
	var epoch string
	switch err := st.epoch.QueryRowContext(ctx, m.Room).Scan(&epoch); {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return fmt.Errorf("append to %s %q: read epoch: %w", what, m.Room, err)
	default:
		w.log.Warn("store: message dropped: "+what+" has another epoch", what, m.Room,
			"offset", m.Offset, "epoch", m.Epoch, "stored_epoch", epoch)
		return nil
	}
	if m.Epoch == "" {
		w.log.Warn("store: message dropped: unknown "+what+" and no epoch", what, m.Room, "offset", m.Offset)
		return nil
	}
	if _, err := st.upsert.ExecContext(ctx, m.Room, m.Epoch, m.TS); err != nil {
		return fmt.Errorf("append to %s %q: create it: %w", what, m.Room, err)
	}
	if _, err := st.appendMsg.ExecContext(ctx, m.Room, int64(m.Offset), m.From, m.Color, m.Text, m.TS, m.CID, m.Epoch, m.Display); err != nil {
		return fmt.Errorf("append to %s %q offset %d: %w", what, m.Room, m.Offset, err)
	}
	w.touched[logKey{k, m.Room}] = struct{}{}
	return nil
}

// trimOld deletes the messages older than their kind's age bound (and
// any beyond its count bound), committing what is queued between chunks of
// logs. An error is logged; the next tick tries again.
func (w *writer) trimOld() {
	n, err := w.trimAll(context.Background(), w.serviceQueue)
	if err != nil {
		w.log.Error("store: trim failed", "max_age", w.opts.MaxAge, "dm_max_age", w.opts.DMMaxAge, "err", err)
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

// trimAll deletes, log by log (rooms, then conversations), the messages
// older than their kind's age bound and those beyond its newest count
// (which the batches already do for the logs they touch, but not after a
// bound was lowered). Logs are trimmed in chunks of trimChunk, one
// transaction each, and between (if not nil) runs after each chunk. It
// returns how many messages it deleted. Each log costs a few index seeks
// plus what it deletes.
func (w *writer) trimAll(ctx context.Context, between func()) (deleted int64, err error) {
	for k := range numKinds {
		names, err := logNames(ctx, w.conn, k)
		if err != nil {
			return deleted, err
		}
		for len(names) > 0 {
			chunk := names[:min(len(names), w.opts.trimChunk)]
			names = names[len(chunk):]
			n, err := w.trimLogs(ctx, k, chunk)
			deleted += n
			if err != nil {
				return deleted, err
			}
			if between != nil && len(names) > 0 {
				between()
			}
		}
	}
	return deleted, nil
}

// trimLogs trims logs of kind k in one transaction.
func (w *writer) trimLogs(ctx context.Context, k logKind, names []string) (deleted int64, err error) {
	if _, err := w.conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return 0, fmt.Errorf("begin: %w", err)
	}
	defer func() {
		if err != nil {
			_, _ = w.conn.ExecContext(ctx, "ROLLBACK")
		}
	}()
	max, cutoff := w.opts.bounds(k)
	st := &w.stmts[k]
	for _, name := range names {
		for _, trim := range []struct {
			stmt *sql.Stmt
			arg  any
		}{{st.trimAge, cutoff}, {st.trimCount, max}} {
			res, err := trim.stmt.ExecContext(ctx, name, trim.arg)
			if err != nil {
				return 0, fmt.Errorf("trim %s %q: %w", tablesOf[k].what, name, err)
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

// logNames lists the stored logs of kind k.
func logNames(ctx context.Context, conn *sql.Conn, k logKind) ([]string, error) {
	rows, err := conn.QueryContext(ctx, tablesOf[k].sql(sqlLogNames))
	if err != nil {
		return nil, fmt.Errorf("list %ss: %w", tablesOf[k].what, err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, fmt.Errorf("list %ss: %w", tablesOf[k].what, err)
		}
		names = append(names, name)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list %ss: %w", tablesOf[k].what, err)
	}
	return names, nil
}
