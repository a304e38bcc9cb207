package store

import (
	"context"
	"database/sql"
	"time"
)

// Checkpoints. SQLite in WAL mode copies the log back into the database
// (a checkpoint, with an fsync of the database file) when the log passes
// 1,000 pages, inside the commit that passed it. At W1's rate that is about
// once a second, and on a durable store every send waits for the commit in
// progress: a checkpoint there puts tens to hundreds of milliseconds on
// the deliveries of that moment. So the writer's connection does no
// checkpoints (wal_autocheckpoint=0) and a checkpointer goroutine runs
// them beside it, on a connection of its own, in PASSIVE mode: it copies
// what no reader needs and never waits for, nor blocks, the writer.

// checkpointEvery is how often the checkpointer runs.
const checkpointEvery = 500 * time.Millisecond

// checkpointer runs passive checkpoints on its own connection until
// stop is closed; done is closed when it has returned.
type checkpointer struct {
	conn *sql.Conn
	stop chan struct{}
	done chan struct{}
	opts Options
}

// startCheckpointer turns the writer's automatic checkpoints off and starts
// the checkpointer on a connection of db.
func startCheckpointer(ctx context.Context, db *sql.DB, writer *sql.Conn, opts Options) (*checkpointer, error) {
	if _, err := writer.ExecContext(ctx, "PRAGMA wal_autocheckpoint = 0"); err != nil {
		return nil, err
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	c := &checkpointer{conn: conn, stop: make(chan struct{}), done: make(chan struct{}), opts: opts}
	go c.run()
	return c, nil
}

func (c *checkpointer) run() {
	defer close(c.done)
	tick := time.NewTicker(checkpointEvery)
	defer tick.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-tick.C:
			var busy, logPages, done int
			err := c.conn.QueryRowContext(context.Background(), "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &logPages, &done)
			if err != nil {
				c.opts.Logger.Warn("store: checkpoint failed", "err", err)
			}
		}
	}
}

// close stops the checkpointer and releases its connection.
func (c *checkpointer) close() error {
	close(c.stop)
	<-c.done
	return c.conn.Close()
}
