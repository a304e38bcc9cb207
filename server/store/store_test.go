package store

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"imload/mux"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// clock is a settable time source for Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// syncBuffer is a bytes.Buffer safe for the writer goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// testLogger returns a logger writing to the returned buffer.
func testLogger() (*slog.Logger, *syncBuffer) {
	buf := &syncBuffer{}
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

// open opens a store on dir and closes it at the end of the test.
func open(t testing.TB, dir string, opts Options) Store {
	t.Helper()
	s, err := OpenSQLite(context.Background(), dir, opts)
	if err != nil {
		t.Fatalf("OpenSQLite: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// readOnly opens dir's database read-only, as another process would.
func readOnly(t testing.TB, dir string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", dsn(filepath.Join(dir, FileName), true, false))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// count runs a counting query.
func count(t testing.TB, db *sql.DB, query string, args ...any) int {
	t.Helper()
	var n int
	if err := db.QueryRow(query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// msg makes message off of room, sent at ts.
func msg(room, epoch string, off uint64, ts time.Time) mux.Message {
	return mux.Message{
		Room:   room,
		Offset: off,
		Epoch:  epoch,
		From:   fmt.Sprintf("user%d", off%7),
		Color:  "#a1b2c3",
		Text:   fmt.Sprintf("message %d of %s", off, room),
		TS:     ts.UnixMilli(),
		CID:    fmt.Sprintf("c%d", off),
	}
}

func flush(t testing.TB, s Store) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
}

func load(t testing.TB, s Store) []Room {
	t.Helper()
	rooms, err := s.Load(context.Background())
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return rooms
}

// checkRoom checks that r holds exactly offsets first..last of room with
// epoch, as msg made them.
func checkRoom(t testing.TB, r Room, name, epoch string, first, last uint64, ts time.Time) {
	t.Helper()
	if r.Name != name || r.Epoch != epoch {
		t.Fatalf("room = %q epoch %q, want %q epoch %q", r.Name, r.Epoch, name, epoch)
	}
	want := int(last - first + 1)
	if first > last {
		want = 0
	}
	if len(r.Messages) != want {
		t.Fatalf("room %q: %d messages, want %d (offsets %d..%d)", name, len(r.Messages), want, first, last)
	}
	for i, m := range r.Messages {
		w := msg(name, epoch, first+uint64(i), ts)
		if m != w {
			t.Fatalf("room %q message %d = %+v, want %+v", name, i, m, w)
		}
	}
}

// appendRetry appends m, trying again while the queue is full (as a client
// told 503 would).
func appendRetry(t testing.TB, s Store, m mux.Message) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := s.Append(m)
		if err == nil {
			return
		}
		if !errors.Is(err, ErrFull) || time.Now().After(deadline) {
			t.Errorf("Append offset %d: %v", m.Offset, err)
			return
		}
		time.Sleep(100 * time.Microsecond)
	}
}
