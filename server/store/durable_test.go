package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// crash stops a store the way a killed process would: the writer stops
// after what it has, and nothing marks the store closed.
func crash(t *testing.T, s Store) {
	t.Helper()
	st := s.(*sqliteStore)
	st.closeOnce.Do(func() {
		st.q.close()
		<-st.w.done
		_ = st.cp.close()
		st.closed.Store(true)
		st.w.closeStmts()
		_ = st.w.conn.Close()
		_ = st.db.Close()
	})
}

// A full queue refuses a change at once instead of making the caller wait
// for the disk (the hub queues under a room's lock).
func TestFullQueueRefusesAtOnce(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{QueueLen: 4, BatchSize: 4})
	s.CreateRoom("r", "e")
	flush(t, s)
	// Another connection holds the write lock: the writer's transaction
	// waits for it, and the queue fills up behind.
	db, err := sql.Open("sqlite", dsn(filepath.Join(dir, FileName), false, false))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	lock, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if _, err := lock.ExecContext(context.Background(), "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	var full int
	start := time.Now()
	for off := uint64(1); off <= 20; off++ {
		switch err := s.Append(msg("r", "e", off, time.Now())); {
		case errors.Is(err, ErrFull):
			full++
		case err != nil:
			t.Fatal(err)
		}
	}
	if full < 16 {
		t.Fatalf("%d of 20 appends refused, want at least 16 (queue of 4)", full)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("20 appends to a full queue took %v: they waited", d)
	}
	if _, err := lock.ExecContext(context.Background(), "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	flush(t, s)
	rooms := load(t, s)
	if len(rooms) != 1 || len(rooms[0].Messages) != 20-full {
		t.Fatalf("after the lock: %d rooms, messages %v; want the %d accepted", len(rooms), rooms, 20-full)
	}
}

// OnCommit reports each room's newest appended message once the
// transaction holding it is committed: a reader sees it by then.
func TestOnCommitReportsCommitted(t *testing.T) {
	dir := t.TempDir()
	var (
		mu   sync.Mutex
		tops = make(map[string]uint64)
		bad  []string
	)
	var ro *sql.DB
	s := open(t, dir, Options{Durable: true, OnCommit: func(cs []Committed) {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range cs {
			if c.Offset <= tops[c.Room] {
				bad = append(bad, fmt.Sprintf("%s offset %d after %d", c.Room, c.Offset, tops[c.Room]))
			}
			tops[c.Room] = c.Offset
			var n int
			if err := ro.QueryRow(`SELECT count(*) FROM messages WHERE room = ?1 AND "offset" = ?2`, c.Room, int64(c.Offset)).Scan(&n); err != nil || n != 1 {
				bad = append(bad, fmt.Sprintf("%s offset %d reported but not readable (%d, %v)", c.Room, c.Offset, n, err))
			}
			if c.Epoch != "e"+c.Room {
				bad = append(bad, fmt.Sprintf("%s epoch %q", c.Room, c.Epoch))
			}
		}
	}})
	ro = readOnly(t, dir)
	for _, r := range []string{"a", "b"} {
		s.CreateRoom(r, "e"+r)
	}
	for off := uint64(1); off <= 300; off++ {
		for _, r := range []string{"a", "b"} {
			appendRetry(t, s, msg(r, "e"+r, off, time.Now()))
		}
	}
	flush(t, s)
	mu.Lock()
	defer mu.Unlock()
	if len(bad) > 0 {
		t.Fatalf("%d bad reports, first: %v", len(bad), bad[:min(5, len(bad))])
	}
	if tops["a"] != 300 || tops["b"] != 300 {
		t.Fatalf("newest reported: %v, want 300 in both", tops)
	}
}

// A relaxed store that stopped without Close gives every room a new epoch
// at the next open (messages kept, under the new epoch), and so does a
// durable store without fsync when the machine restarted meanwhile; one
// closed cleanly, one without fsync after a crash of the process only, and
// a durable one that fsyncs after any crash keep their epochs.
func TestUncleanStopRenewsEpochs(t *testing.T) {
	for _, tc := range []struct {
		name                    string
		durable, noSync, closed bool
		rebooted                bool // the machine restarted before the reopen
		renewed                 bool
	}{
		{"relaxed crash", false, false, false, false, true},
		{"relaxed clean", false, false, true, false, false},
		{"durable crash", true, false, false, true, false},
		{"no-sync crash", true, true, false, false, false},
		{"no-sync crash after a reboot", true, true, false, true, true},
		{"no-sync clean, then a reboot", true, true, true, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			opts := Options{Durable: tc.durable, NoSync: tc.noSync, bootID: func() string { return "boot-1" }}
			s, err := OpenSQLite(context.Background(), dir, opts)
			if err != nil {
				t.Fatal(err)
			}
			s.CreateRoom("r", "e1")
			for off := uint64(1); off <= 5; off++ {
				s.Append(msg("r", "e1", off, time.Now()))
			}
			flush(t, s)
			if tc.closed {
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
			} else {
				crash(t, s)
			}
			boot := "boot-1"
			if tc.rebooted {
				boot = "boot-2"
			}
			s = open(t, dir, Options{Durable: true, bootID: func() string { return boot }})
			rooms := load(t, s)
			if len(rooms) != 1 || len(rooms[0].Messages) != 5 {
				t.Fatalf("after reopening: %+v", rooms)
			}
			if renewed := rooms[0].Epoch != "e1"; renewed != tc.renewed {
				t.Fatalf("epoch %q after reopening: renewed %v, want %v", rooms[0].Epoch, renewed, tc.renewed)
			}
			for _, m := range rooms[0].Messages {
				if m.Epoch != rooms[0].Epoch {
					t.Fatalf("message %d epoch %q, room's %q", m.Offset, m.Epoch, rooms[0].Epoch)
				}
			}
			// Appends go on under the room's epoch as loaded.
			s.Append(msg("r", rooms[0].Epoch, 6, time.Now()))
			flush(t, s)
			if got := load(t, s)[0].Messages; len(got) != 6 {
				t.Fatalf("append after reopening: %d messages", len(got))
			}
		})
	}
}

// A trim of many rooms is cut into chunks of a few rooms, one transaction
// each, with a call between them (where the writer commits what was queued
// meanwhile: a trim of 100,000 rooms must not hold durable sends for
// seconds).
func TestTrimInChunks(t *testing.T) {
	clk := newClock()
	s := open(t, t.TempDir(), Options{Now: clk.Now, MaxAge: time.Hour, trimChunk: 2})
	st := s.(*sqliteStore)
	for i := range 51 {
		room := fmt.Sprint("room", i)
		s.CreateRoom(room, "e")
		s.Append(msg(room, "e", 1, clk.Now()))
	}
	flush(t, s)
	clk.Advance(2 * time.Hour)
	// The writer goroutine owns the connection: stop it, then trim on it.
	st.q.close()
	<-st.w.done
	calls := 0
	n, err := st.w.trimAll(context.Background(), func() { calls++ })
	if err != nil {
		t.Fatal(err)
	}
	if n != 51 || calls != 25 {
		t.Fatalf("trimmed %d messages with %d calls between chunks, want 51 and 25", n, calls)
	}
}

// The writer makes no checkpoints (they would sit in a commit that durable
// sends wait for); the checkpointer copies the log into the database file
// beside it.
func TestCheckpointerCopiesTheLog(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{Durable: true})
	path := filepath.Join(dir, FileName)
	size := func() int64 {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	s.CreateRoom("r", "e")
	flush(t, s)
	before := size()
	for off := uint64(1); off <= 3000; off++ {
		appendRetry(t, s, msg("r", "e", off, time.Now()))
	}
	flush(t, s)
	deadline := time.Now().Add(10 * time.Second)
	for size() <= before {
		if time.Now().After(deadline) {
			t.Fatalf("database file still %d bytes 10 s after 3,000 commits: no checkpoint", before)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
