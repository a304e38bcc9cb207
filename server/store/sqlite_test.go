package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestReopenLoad(t *testing.T) {
	dir := t.TempDir()
	clk := newClock()
	opts := Options{Now: clk.Now, BatchSize: 64}
	s, err := OpenSQLite(context.Background(), dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	if rooms := load(t, s); len(rooms) != 0 {
		t.Fatalf("new store: Load = %d rooms", len(rooms))
	}
	const perRoom = 300
	names := []string{"alpha", "beta", "gamma", "delta", "empty"}
	for _, n := range names {
		s.CreateRoom(n, "ep-"+n)
	}
	ts := clk.Now()
	// Interleave the rooms, as a busy hub would.
	for off := uint64(1); off <= perRoom; off++ {
		for _, n := range names[:4] {
			s.Append(msg(n, "ep-"+n, off, ts))
		}
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s = open(t, dir, opts)
	rooms := load(t, s)
	if len(rooms) != len(names) {
		t.Fatalf("Load = %d rooms, want %d", len(rooms), len(names))
	}
	// Sorted by name: alpha beta delta empty gamma.
	want := []string{"alpha", "beta", "delta", "empty", "gamma"}
	for i, r := range rooms {
		last := uint64(perRoom)
		if r.Name == "empty" {
			last = 0
		}
		checkRoom(t, r, want[i], "ep-"+want[i], 1, last, ts)
	}
}

func TestTrimCount(t *testing.T) {
	dir := t.TempDir()
	clk := newClock()
	s := open(t, dir, Options{Now: clk.Now, MaxMessages: 10, BatchSize: 7})
	s.CreateRoom("r", "e")
	s.CreateRoom("q", "e")
	for off := uint64(1); off <= 25; off++ {
		s.Append(msg("r", "e", off, clk.Now()))
	}
	s.Append(msg("q", "e", 1, clk.Now()))
	flush(t, s)
	rooms := load(t, s)
	checkRoom(t, rooms[0], "q", "e", 1, 1, clk.Now())
	checkRoom(t, rooms[1], "r", "e", 16, 25, clk.Now())
	ro := readOnly(t, dir)
	if n := count(t, ro, `SELECT count(*) FROM messages WHERE room = 'r'`); n != 10 {
		t.Fatalf("room r has %d rows on disk, want 10", n)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Lowering the bound trims at open.
	s = open(t, dir, Options{Now: clk.Now, MaxMessages: 4})
	checkRoom(t, load(t, s)[1], "r", "e", 22, 25, clk.Now())
	if n := count(t, ro, `SELECT count(*) FROM messages WHERE room = 'r'`); n != 4 {
		t.Fatalf("room r has %d rows on disk after reopen, want 4", n)
	}
}

func TestTrimAge(t *testing.T) {
	dir := t.TempDir()
	clk := newClock()
	opts := Options{Now: clk.Now, MaxAge: time.Hour}
	s := open(t, dir, opts)
	s.CreateRoom("r", "e")
	s.CreateRoom("old", "e")
	t0 := clk.Now()
	for off := uint64(1); off <= 5; off++ {
		s.Append(msg("r", "e", off, t0))
		s.Append(msg("old", "e", off, t0))
	}
	clk.Advance(40 * time.Minute)
	t1 := clk.Now()
	for off := uint64(6); off <= 8; off++ {
		s.Append(msg("r", "e", off, t1))
	}
	flush(t, s)
	rooms := load(t, s)
	checkRoom(t, rooms[0], "old", "e", 1, 5, t0)

	// 70 minutes after t0: offsets 1..5 are too old.
	clk.Advance(30 * time.Minute)
	rooms = load(t, s)
	checkRoom(t, rooms[0], "old", "e", 1, 0, t0) // kept, with its epoch
	if len(rooms[1].Messages) != 3 {
		t.Fatalf("room r: %d messages, want 3", len(rooms[1].Messages))
	}
	for i, m := range rooms[1].Messages {
		if want := msg("r", "e", uint64(6+i), t1); m != want {
			t.Fatalf("room r message %d = %+v, want %+v", i, m, want)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Reopening deletes the old rows from the file.
	s = open(t, dir, opts)
	ro := readOnly(t, dir)
	if n := count(t, ro, `SELECT count(*) FROM messages`); n != 3 {
		t.Fatalf("%d rows on disk after reopen, want 3", n)
	}
	if n := count(t, ro, `SELECT count(*) FROM rooms`); n != 2 {
		t.Fatalf("%d rooms on disk after reopen, want 2", n)
	}
	if got := load(t, s); len(got) != 2 || len(got[1].Messages) != 3 {
		t.Fatalf("Load after reopen = %+v", got)
	}
}

func TestDeleteRoom(t *testing.T) {
	dir := t.TempDir()
	clk := newClock()
	s := open(t, dir, Options{Now: clk.Now})
	s.CreateRoom("keep", "k")
	s.CreateRoom("gone", "g1")
	for off := uint64(1); off <= 5; off++ {
		s.Append(msg("keep", "k", off, clk.Now()))
		s.Append(msg("gone", "g1", off, clk.Now()))
	}
	s.DeleteRoom("gone", "g1")
	s.DeleteRoom("keep", "not-its-epoch") // a stale deletion changes nothing
	s.DeleteRoom("never-existed", "x")
	flush(t, s)
	rooms := load(t, s)
	if len(rooms) != 1 {
		t.Fatalf("Load = %d rooms, want 1", len(rooms))
	}
	checkRoom(t, rooms[0], "keep", "k", 1, 5, clk.Now())
	ro := readOnly(t, dir)
	if n := count(t, ro, `SELECT count(*) FROM messages WHERE room = 'gone'`); n != 0 {
		t.Fatalf("deleted room has %d rows on disk", n)
	}

	// Made again: a new epoch, offsets from 1.
	s.CreateRoom("gone", "g2")
	s.Append(msg("gone", "g2", 1, clk.Now()))
	flush(t, s)
	checkRoom(t, load(t, s)[0], "gone", "g2", 1, 1, clk.Now())
}

func TestCreateRoomEpoch(t *testing.T) {
	clk := newClock()
	s := open(t, t.TempDir(), Options{Now: clk.Now})
	s.CreateRoom("r", "e1")
	for off := uint64(1); off <= 3; off++ {
		s.Append(msg("r", "e1", off, clk.Now()))
	}
	s.CreateRoom("r", "e1") // a replay: nothing changes
	flush(t, s)
	checkRoom(t, load(t, s)[0], "r", "e1", 1, 3, clk.Now())

	s.CreateRoom("r", "e2") // made again: the old messages go
	flush(t, s)
	checkRoom(t, load(t, s)[0], "r", "e2", 1, 0, clk.Now())
}

func TestAppendReplayAndStrays(t *testing.T) {
	clk := newClock()
	log, logs := testLogger()
	s := open(t, t.TempDir(), Options{Now: clk.Now, Logger: log})
	s.CreateRoom("r", "e")
	for range 2 { // a replay is idempotent
		for off := uint64(1); off <= 4; off++ {
			s.Append(msg("r", "e", off, clk.Now()))
		}
	}
	s.Append(msg("r", "stale", 5, clk.Now()))     // another epoch: dropped
	s.Append(msg("implicit", "ie", 1, clk.Now())) // no CreateRoom: created
	s.Append(msg("noepoch", "", 1, clk.Now()))    // cannot be created
	flush(t, s)
	rooms := load(t, s)
	if len(rooms) != 2 {
		t.Fatalf("Load = %d rooms, want 2: %+v", len(rooms), rooms)
	}
	checkRoom(t, rooms[0], "implicit", "ie", 1, 1, clk.Now())
	checkRoom(t, rooms[1], "r", "e", 1, 4, clk.Now())
	for _, want := range []string{"room has another epoch", "unknown room and no epoch"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
}

func TestLoadStopsAtGap(t *testing.T) {
	clk := newClock()
	log, logs := testLogger()
	s := open(t, t.TempDir(), Options{Now: clk.Now, Logger: log})
	s.CreateRoom("r", "e")
	for _, off := range []uint64{1, 2, 3, 6, 7, 8} {
		s.Append(msg("r", "e", off, clk.Now()))
	}
	flush(t, s)
	checkRoom(t, load(t, s)[0], "r", "e", 6, 8, clk.Now())
	if !strings.Contains(logs.String(), "gap") {
		t.Errorf("gap not logged:\n%s", logs)
	}
}

func TestFlush(t *testing.T) {
	dir := t.TempDir()
	clk := newClock()
	// A linger of an hour: nothing is written unless asked.
	s := open(t, dir, Options{Now: clk.Now, FlushInterval: time.Hour})
	ro := readOnly(t, dir)
	s.CreateRoom("r", "e")
	for off := uint64(1); off <= 100; off++ {
		s.Append(msg("r", "e", off, clk.Now()))
	}
	time.Sleep(20 * time.Millisecond)
	if n := count(t, ro, `SELECT count(*) FROM messages`); n != 0 {
		t.Fatalf("%d rows visible before Flush, want 0 (linger)", n)
	}
	flush(t, s)
	if n := count(t, ro, `SELECT count(*) FROM messages`); n != 100 {
		t.Fatalf("%d rows visible after Flush, want 100", n)
	}
	if n := count(t, ro, `SELECT count(*) FROM rooms WHERE epoch = 'e'`); n != 1 {
		t.Fatalf("%d rooms visible after Flush, want 1", n)
	}
	// A Flush with nothing queued returns at once.
	flush(t, s)
	// A Flush whose context ends first returns the context's error.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s.Append(msg("r", "e", 101, clk.Now()))
	if err := s.Flush(ctx); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("Flush(cancelled) = %v", err)
	}
}

func TestFlushWhenBatchFull(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{FlushInterval: time.Hour, BatchSize: 10})
	ro := readOnly(t, dir)
	s.CreateRoom("r", "e")
	for off := uint64(1); off <= 29; off++ { // 30 changes: three batches' worth
		s.Append(msg("r", "e", off, time.Now()))
	}
	// The writer takes what is queued whenever a full batch is there, so
	// all but at most one partial batch (< 10 changes, held for the flush
	// interval) must be written without a Flush.
	deadline := time.Now().Add(10 * time.Second)
	for count(t, ro, `SELECT count(*) FROM messages`) < 20 {
		if time.Now().After(deadline) {
			t.Fatal("full batches were not written without a Flush")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestConcurrentAppend(t *testing.T) {
	dir := t.TempDir()
	clk := newClock()
	// A small queue, so that senders find it full and try again.
	opts := Options{Now: clk.Now, QueueLen: 64, BatchSize: 16, FlushInterval: time.Millisecond}
	s, err := OpenSQLite(context.Background(), dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	const goroutines, perRoom = 16, 400
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			room := fmt.Sprintf("room%02d", g)
			for s.CreateRoom(room, "e"+room) != nil {
				time.Sleep(time.Millisecond)
			}
			for off := uint64(1); off <= perRoom; off++ {
				appendRetry(t, s, msg(room, "e"+room, off, clk.Now()))
				if off%100 == 0 {
					flush(t, s)
				}
			}
		})
	}
	// Loads run beside the writer.
	wg.Go(func() {
		for range 20 {
			if _, err := s.Load(context.Background()); err != nil {
				t.Errorf("Load: %v", err)
			}
		}
	})
	wg.Wait()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir, opts)
	rooms := load(t, s)
	if len(rooms) != goroutines {
		t.Fatalf("Load = %d rooms, want %d", len(rooms), goroutines)
	}
	for g, r := range rooms {
		room := fmt.Sprintf("room%02d", g)
		checkRoom(t, r, room, "e"+room, 1, perRoom, clk.Now())
	}
}

func TestAfterClose(t *testing.T) {
	log, logs := testLogger()
	s, err := OpenSQLite(context.Background(), t.TempDir(), Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	s.CreateRoom("r", "e")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s.Append(msg("r", "e", 1, time.Now()))
	s.Append(msg("r", "e", 2, time.Now()))
	s.CreateRoom("x", "e")
	s.DeleteRoom("r", "e")
	if err := s.Flush(context.Background()); err != nil {
		t.Fatalf("Flush after Close = %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
	if _, err := s.Load(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Load after Close = %v, want ErrClosed", err)
	}
	if got := strings.Count(logs.String(), "change after Close dropped"); got != 4 {
		t.Fatalf("%d drops logged, want 4:\n%s", got, logs)
	}
}

func TestCloseWhileAppending(t *testing.T) {
	// Senders appending while Close is called get their change queued
	// (then written), refused as full, or refused as closed, and never
	// hang or panic.
	s, err := OpenSQLite(context.Background(), t.TempDir(), Options{QueueLen: 4, BatchSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	s.CreateRoom("r", "e")
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				err := s.Append(msg("r", "e", uint64(g*1000+i+1), time.Now()))
				if err != nil && !errors.Is(err, ErrFull) && !errors.Is(err, ErrClosed) {
					t.Errorf("Append: %v", err)
				}
			}
		})
	}
	time.Sleep(10 * time.Millisecond)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
}

func TestOpenErrors(t *testing.T) {
	tmp := t.TempDir()
	file := filepath.Join(tmp, "file")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	dbDir := filepath.Join(tmp, "dbdir")
	if err := os.MkdirAll(filepath.Join(dbDir, FileName), 0o755); err != nil {
		t.Fatal(err)
	}
	junk := filepath.Join(tmp, "junk")
	if err := os.MkdirAll(junk, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(junk, FileName), []byte(strings.Repeat("not a database\n", 500)), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, dir := range map[string]string{
		"dir under a file":   filepath.Join(file, "sub"),
		"dir is a file":      file,
		"db is a directory":  dbDir,
		"db is not a sqlite": junk,
	} {
		t.Run(name, func(t *testing.T) {
			s, err := OpenSQLite(context.Background(), dir, Options{})
			if err == nil {
				s.Close()
				t.Fatal("OpenSQLite succeeded")
			}
			if want := filepath.Join(dir, FileName); !strings.Contains(err.Error(), want) {
				t.Fatalf("error %q does not name %s", err, want)
			}
			t.Log(err)
		})
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", dsn(filepath.Join(dir, FileName), false, false))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`PRAGMA user_version = 99`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	_, err = OpenSQLite(context.Background(), dir, Options{})
	if err == nil || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("OpenSQLite on a newer schema = %v", err)
	}
}

func TestWriteErrorsAreRetried(t *testing.T) {
	// A batch that fails is retried until it is written: nothing queued is
	// lost while the store is open, and later changes wait behind it (they
	// are committed in order).
	dir := t.TempDir()
	log, logs := testLogger()
	s := open(t, dir, Options{Logger: log})
	s.CreateRoom("r", "e")
	s.Append(msg("r", "e", 1, time.Now()))
	flush(t, s)

	// Break the schema behind the store's back.
	db, err := sql.Open("sqlite", dsn(filepath.Join(dir, FileName), false, false))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`ALTER TABLE messages RENAME TO messages_away`); err != nil {
		t.Fatal(err)
	}
	s.Append(msg("r", "e", 2, time.Now()))
	s.Append(msg("r", "e", 3, time.Now()))
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), "write failed, retrying") {
		if time.Now().After(deadline) {
			t.Fatalf("no retry logged:\n%s", logs)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := s.Err(); err == nil || !strings.Contains(err.Error(), "messages") {
		t.Fatalf("Err while a batch is retried = %v, want the write's error", err)
	}
	// The store goes on: once the table is back, the same batch succeeds.
	if _, err := db.Exec(`ALTER TABLE messages_away RENAME TO messages`); err != nil {
		t.Fatal(err)
	}
	flush(t, s)
	rooms := load(t, s)
	if len(rooms) != 1 || len(rooms[0].Messages) != 3 || rooms[0].Messages[1].Offset != 2 || rooms[0].Messages[2].Offset != 3 {
		t.Fatalf("Load after recovery = %+v", rooms)
	}
	if !strings.Contains(logs.String(), "write succeeded after retrying") {
		t.Errorf("recovery not logged:\n%s", logs)
	}
	if err := s.Err(); err != nil {
		t.Fatalf("Err after recovery = %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	if err := s.Err(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Err after Close = %v, want ErrClosed", err)
	}
}

func TestWriteErrorsAtCloseAreReported(t *testing.T) {
	// Closing a store whose writes fail drops them after a second try and
	// says so, rather than hanging.
	dir := t.TempDir()
	log, logs := testLogger()
	s, err := OpenSQLite(context.Background(), dir, Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	s.CreateRoom("r", "e")
	flush(t, s)
	db, err := sql.Open("sqlite", dsn(filepath.Join(dir, FileName), false, false))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`ALTER TABLE messages RENAME TO messages_away`); err != nil {
		t.Fatal(err)
	}
	s.Append(msg("r", "e", 1, time.Now()))
	err = s.Close()
	if err == nil || !strings.Contains(err.Error(), "1 changes were not written") {
		t.Fatalf("Close after failed writes = %v", err)
	}
	if !strings.Contains(logs.String(), "changes dropped") {
		t.Errorf("drop not logged:\n%s", logs)
	}
}

func TestTrimAgePeriodically(t *testing.T) {
	dir := t.TempDir()
	clk := newClock()
	s := open(t, dir, Options{Now: clk.Now, MaxAge: time.Hour, ageTrimEvery: 5 * time.Millisecond})
	ro := readOnly(t, dir)
	s.CreateRoom("r", "e")
	for off := uint64(1); off <= 10; off++ {
		s.Append(msg("r", "e", off, clk.Now()))
		if off == 6 {
			clk.Advance(30 * time.Minute)
		}
	}
	flush(t, s)
	clk.Advance(45 * time.Minute) // 1..6 are 75 minutes old, 7..10 45
	deadline := time.Now().Add(10 * time.Second)
	for count(t, ro, `SELECT count(*) FROM messages`) != 4 {
		if time.Now().After(deadline) {
			t.Fatal("old messages were not trimmed while the store ran")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if n := count(t, ro, `SELECT min("offset") FROM messages`); n != 7 {
		t.Fatalf("oldest offset kept = %d, want 7", n)
	}
}

func TestSmallQueueDoesNotLinger(t *testing.T) {
	// A full queue ends the writer's linger: a sender that finds it full
	// and tries again gets through without waiting for the flush interval,
	// even when the queue is shorter than a batch.
	s := open(t, t.TempDir(), Options{QueueLen: 8, BatchSize: 512, FlushInterval: time.Hour})
	s.CreateRoom("r", "e")
	done := make(chan struct{})
	go func() {
		defer close(done)
		for off := uint64(1); off <= 100; off++ {
			appendRetry(t, s, msg("r", "e", off, time.Now()))
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the writer lingered on a full queue")
	}
}

func TestOpenUnwritableDir(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root writes through permissions")
	}
	dir := filepath.Join(t.TempDir(), "ro")
	if err := os.Mkdir(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	_, err := OpenSQLite(context.Background(), dir, Options{})
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, FileName)) {
		t.Fatalf("OpenSQLite on a read-only dir = %v", err)
	}
	t.Log(err)
}
