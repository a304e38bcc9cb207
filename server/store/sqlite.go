package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"imload/mux"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// FileName is the name of the database file OpenSQLite uses in its
// directory.
const FileName = "history.db"

// readConns is how many connections Load and other readers may use beside
// the writer's (WAL lets them read while it writes).
const readConns = 2 // plus the checkpointer's (checkpoint.go)

// sqliteStore is the Store OpenSQLite returns.
type sqliteStore struct {
	path string // the database file
	db   *sql.DB
	opts Options
	q    *queue
	w    *writer
	cp   *checkpointer

	closeOnce sync.Once
	closed    atomic.Bool
	dropped   atomic.Int64 // changes refused after Close
}

// OpenSQLite opens (creating it and dir if needed) the SQLite database
// dir/history.db, brings its schema up to date, deletes what is beyond the
// bounds in opts, and starts the store's writer goroutine, which Close
// stops. The database is in WAL mode. With opts.Durable (and not NoSync)
// every commit is fsynced (synchronous=FULL) and survives a power loss;
// otherwise a commit survives a crash of the process, a power loss may
// lose the last commits but not corrupt the file, and a store that may
// have lost some gives every room a new epoch here (see Options.Durable
// and NoSync).
func OpenSQLite(ctx context.Context, dir string, opts Options) (Store, error) {
	opts = opts.withDefaults()
	path := filepath.Join(dir, FileName)
	s, err := openSQLite(ctx, path, opts)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	return s, nil
}

func openSQLite(ctx context.Context, path string, opts Options) (_ *sqliteStore, err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	if fi, err := os.Stat(abs); err == nil && fi.IsDir() {
		return nil, errors.New("is a directory")
	}
	db, err := sql.Open("sqlite", dsn(abs, false, opts.fsync()))
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(2 + readConns)
	db.SetMaxIdleConns(2 + readConns)
	var conn *sql.Conn
	defer func() {
		if err != nil {
			if conn != nil {
				_ = conn.Close()
			}
			_ = db.Close()
		}
	}()
	// The writer's connection, kept for the life of the store.
	conn, err = db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	var mode string
	if err := conn.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return nil, fmt.Errorf("read journal mode: %w", err)
	}
	if !strings.EqualFold(mode, "wal") {
		return nil, fmt.Errorf("journal mode is %q, not WAL", mode)
	}
	if err := migrate(ctx, conn); err != nil {
		return nil, err
	}
	if err := markOpen(ctx, conn, opts); err != nil {
		return nil, err
	}
	q := newQueue(opts.QueueLen, opts.BatchSize, opts.Durable)
	w, err := newWriter(ctx, conn, q, opts)
	if err != nil {
		return nil, err
	}
	// Trim what aged while the server was down, or overflowed bounds that
	// were lowered, before anyone loads it.
	if _, err := w.trimAll(ctx, nil); err != nil {
		w.closeStmts()
		return nil, fmt.Errorf("trim: %w", err)
	}
	cp, err := startCheckpointer(ctx, db, conn, opts)
	if err != nil {
		w.closeStmts()
		return nil, fmt.Errorf("start the checkpointer: %w", err)
	}
	s := &sqliteStore{path: abs, db: db, opts: opts, q: q, w: w, cp: cp}
	go w.run()
	return s, nil
}

// Load returns every stored room, sorted by name, each with its newest
// messages within the bounds, oldest first, with Room and Epoch filled in
// from the room. A room whose messages are all gone is returned with none:
// its epoch lives on. Messages are returned only as a run of consecutive
// offsets ending at the newest one: should a dropped batch have left a gap,
// what is before it is left out (and logged).
//
// Load reads one snapshot of the database; changes still queued are not in
// it (call Flush first to include them).
func (s *sqliteStore) Load(ctx context.Context) ([]Room, error) {
	if s.closed.Load() {
		return nil, fmt.Errorf("store: load %s: %w", s.path, ErrClosed)
	}
	rooms, err := s.load(ctx)
	if err != nil {
		return nil, fmt.Errorf("store: load %s: %w", s.path, err)
	}
	return rooms, nil
}

func (s *sqliteStore) load(ctx context.Context) (_ []Room, err error) {
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	defer func() { _ = tx.Rollback() }()

	var rooms []Room
	rows, err := tx.QueryContext(ctx, `SELECT name, epoch FROM rooms ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("read rooms: %w", err)
	}
	for rows.Next() {
		var r Room
		if err := rows.Scan(&r.Name, &r.Epoch); err != nil {
			_ = rows.Close()
			return nil, fmt.Errorf("read rooms: %w", err)
		}
		rooms = append(rooms, r)
	}
	if err := rows.Close(); err != nil {
		return nil, fmt.Errorf("read rooms: %w", err)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read rooms: %w", err)
	}

	l, err := s.newLoader(ctx, tx, kindRoom)
	if err != nil {
		return nil, err
	}
	defer l.stmt.Close()
	for i := range rooms {
		if rooms[i].Messages, err = l.messages(ctx, rooms[i].Name, rooms[i].Epoch); err != nil {
			return nil, fmt.Errorf("read room %q: %w", rooms[i].Name, err)
		}
	}
	return rooms, nil
}

// newLoader prepares the reading of kind k's messages in tx.
func (s *sqliteStore) newLoader(ctx context.Context, tx *sql.Tx, k logKind) (*loader, error) {
	stmt, err := tx.PrepareContext(ctx, tablesOf[k].sql(sqlLoadMessages))
	if err != nil {
		return nil, fmt.Errorf("prepare: %w", err)
	}
	max, cutoff := s.opts.bounds(k)
	return &loader{stmt: stmt, what: tablesOf[k].what, cutoffMS: cutoff, max: max,
		log: s.opts.Logger, intern: make(map[string]string)}, nil
}

// LoadConvs returns every stored conversation, sorted by name, each with
// its newest messages within the conversations' bounds, oldest first (as
// Load does for rooms; a message's Room is its conversation).
func (s *sqliteStore) LoadConvs(ctx context.Context) ([]Conv, error) {
	if s.closed.Load() {
		return nil, fmt.Errorf("store: load conversations %s: %w", s.path, ErrClosed)
	}
	convs, err := s.loadConvs(ctx)
	if err != nil {
		return nil, fmt.Errorf("store: load conversations %s: %w", s.path, err)
	}
	return convs, nil
}

func (s *sqliteStore) loadConvs(ctx context.Context) ([]Conv, error) {
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	defer func() { _ = tx.Rollback() }()
	rows, err := tx.QueryContext(ctx, `SELECT name, epoch, user_a, user_b, gen_a, gen_b FROM dm_convs ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("read conversations: %w", err)
	}
	var convs []Conv
	for rows.Next() {
		var c Conv
		if err := rows.Scan(&c.Name, &c.Epoch, &c.Users[0], &c.Users[1], &c.Gens[0], &c.Gens[1]); err != nil {
			_ = rows.Close()
			return nil, fmt.Errorf("read conversations: %w", err)
		}
		convs = append(convs, c)
	}
	if err := rows.Close(); err != nil {
		return nil, fmt.Errorf("read conversations: %w", err)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read conversations: %w", err)
	}
	l, err := s.newLoader(ctx, tx, kindDM)
	if err != nil {
		return nil, err
	}
	defer l.stmt.Close()
	for i := range convs {
		if convs[i].Messages, err = l.messages(ctx, convs[i].Name, convs[i].Epoch); err != nil {
			return nil, fmt.Errorf("read conversation %q: %w", convs[i].Name, err)
		}
	}
	return convs, nil
}

// loader reads the messages of the rooms for Load (or of the
// conversations, for LoadConvs).
type loader struct {
	stmt     *sql.Stmt
	what     string
	cutoffMS int64
	max      int
	log      *slog.Logger
	scratch  []mux.Message     // reused between rooms
	intern   map[string]string // one copy of each sender name and colour
}

// messages reads a log's retained messages, newest first, stops at a gap
// in the offsets, and returns them oldest first in a slice of their size.
func (l *loader) messages(ctx context.Context, name, epoch string) ([]mux.Message, error) {
	rows, err := l.stmt.QueryContext(ctx, name, l.cutoffMS, l.max)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	msgs := l.scratch[:0]
	for rows.Next() {
		m := mux.Message{Room: name, Epoch: epoch}
		var off int64
		if err := rows.Scan(&off, &m.From, &m.Color, &m.Text, &m.TS, &m.CID, &m.Display); err != nil {
			return nil, err
		}
		m.Offset = uint64(off)
		if n := len(msgs); n > 0 && m.Offset != msgs[n-1].Offset-1 {
			l.log.Warn("store: gap in a "+l.what+"'s offsets, older messages left out",
				l.what, name, "offset", m.Offset, "next", msgs[n-1].Offset)
			break
		}
		m.From, m.Color, m.Display = l.str(m.From), l.str(m.Color), l.str(m.Display)
		msgs = append(msgs, m)
	}
	l.scratch = msgs
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(msgs) == 0 {
		return nil, nil
	}
	out := make([]mux.Message, len(msgs))
	for i, m := range msgs {
		out[len(msgs)-1-i] = m
	}
	clear(msgs) // the scratch must not keep the texts alive
	return out, nil
}

// str returns the first copy of s seen by this Load: the hub keeps the
// messages, and a user's name and colour repeat in every one of them.
func (l *loader) str(s string) string {
	if v, ok := l.intern[s]; ok {
		return v
	}
	l.intern[s] = s
	return s
}

// CreateRoom queues the creation of a room with its epoch. Creating a room
// that is stored with another epoch replaces it and drops its messages;
// with the same epoch, it changes nothing.
func (s *sqliteStore) CreateRoom(name, epoch string) error {
	return s.put(op{op: opCreate, m: mux.Message{Room: name, Epoch: epoch, TS: s.opts.Now().UnixMilli()}}, s.opts.QueueLen)
}

// DeleteRoom queues the deletion of a room and its messages, if the room
// is stored with epoch. Deletions can wait: they may take only half of the
// queue, and are refused (ErrFull) beyond, so that many rooms expiring at
// once never crowd out messages.
func (s *sqliteStore) DeleteRoom(name, epoch string) error {
	return s.put(op{op: opDelete, m: mux.Message{Room: name, Epoch: epoch}}, s.opts.QueueLen/2)
}

// Append queues a message. Its room and epoch must be those of a created
// room (a room not stored is created with m.Epoch); a message of another
// epoch is dropped by the writer. A message with an offset already stored
// replaces it.
func (s *sqliteStore) Append(m mux.Message) error {
	return s.put(op{op: opAppend, m: m}, s.opts.QueueLen)
}

// CreateConv queues the record of a conversation with its epoch, users
// and generations. Creating one that is stored with another epoch replaces
// it and drops its old messages; with the same epoch, it changes nothing
// (but its users and generations).
func (s *sqliteStore) CreateConv(c ConvMeta) error {
	meta := c
	return s.put(op{op: opCreate, kind: kindDM, m: mux.Message{Room: c.Name, Epoch: c.Epoch, TS: s.opts.Now().UnixMilli()}, conv: &meta}, s.opts.QueueLen)
}

// DeleteConv queues the deletion of a conversation and its messages, if
// it is stored with epoch (as DeleteRoom, in half of the queue at most).
func (s *sqliteStore) DeleteConv(name, epoch string) error {
	return s.put(op{op: opDelete, kind: kindDM, m: mux.Message{Room: name, Epoch: epoch}}, s.opts.QueueLen/2)
}

// AppendDM queues a private message of conversation m.Room (as Append).
func (s *sqliteStore) AppendDM(m mux.Message) error {
	return s.put(op{op: opAppend, kind: kindDM, m: m}, s.opts.QueueLen)
}

// put queues a change without waiting. A change refused after Close is
// logged (the first at warn level, the rest of a hub still draining at
// debug).
func (s *sqliteStore) put(o op, limit int) error {
	err := s.q.put(o, limit)
	if errors.Is(err, ErrClosed) {
		level := s.opts.Logger.Debug
		if s.dropped.Add(1) == 1 {
			level = s.opts.Logger.Warn
		}
		level("store: change after Close dropped", "path", s.path, "kind", o.op.String(),
			tablesOf[o.kind].what, o.m.Room, "offset", o.m.Offset)
	}
	return err
}

// Flush waits until every change queued before it is committed, or ctx
// ends. It returns an error if changes queued since the previous Flush
// could not be written. After Close it returns nil at once.
func (s *sqliteStore) Flush(ctx context.Context) error {
	done := make(chan error, 1)
	if !s.q.putFlush(op{op: opFlush, done: done}) {
		return nil
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("store: flush %s: %w", s.path, context.Cause(ctx))
	}
}

// Err returns ErrClosed after Close, else the error of the batch the
// writer is retrying, or nil.
func (s *sqliteStore) Err() error {
	if s.closed.Load() {
		return ErrClosed
	}
	if p := s.w.failing.Load(); p != nil {
		return fmt.Errorf("store: writing %s: %w", s.path, *p)
	}
	return nil
}

// Close writes everything queued, stops the writer and closes the
// database. It returns an error if some changes could not be written or
// the database did not close cleanly. Calls after the first return nil.
func (s *sqliteStore) Close() error {
	var err error
	s.closeOnce.Do(func() { err = s.close() })
	return err
}

func (s *sqliteStore) close() error {
	s.q.close()
	<-s.w.done
	cpErr := s.cp.close()
	s.closed.Store(true)
	errs := []error{s.w.takeLost()}
	if cpErr != nil {
		errs = append(errs, fmt.Errorf("store: close %s: checkpointer: %w", s.path, cpErr))
	}
	if errs[0] == nil {
		// Everything was written: the next open need not renew epochs.
		if err := markClosed(context.Background(), s.w.conn); err != nil {
			errs = append(errs, fmt.Errorf("store: close %s: %w", s.path, err))
		}
	}
	s.w.closeStmts()
	// Let SQLite refresh its planner statistics, cheaply, as advised
	// before closing a connection that wrote.
	if _, err := s.w.conn.ExecContext(context.Background(), "PRAGMA optimize"); err != nil {
		s.opts.Logger.Warn("store: optimize at close failed", "path", s.path, "err", err)
	}
	if err := s.w.conn.Close(); err != nil {
		errs = append(errs, fmt.Errorf("store: close %s: %w", s.path, err))
	}
	if err := s.db.Close(); err != nil {
		errs = append(errs, fmt.Errorf("store: close %s: %w", s.path, err))
	}
	return errors.Join(errs...)
}

// String names the kind of change, for logs.
func (k opKind) String() string {
	switch k {
	case opCreate:
		return "create_room"
	case opDelete:
		return "delete_room"
	case opAppend:
		return "append"
	case opFlush:
		return "flush"
	}
	return fmt.Sprintf("opKind(%d)", uint8(k))
}
