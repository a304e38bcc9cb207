package store

import (
	"context"
	"database/sql"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// A sender's display name is stored with each message, of rooms and of
// conversations, and comes back after a reopen.
func TestDisplayNameKept(t *testing.T) {
	dir := t.TempDir()
	clk := newClock()
	s := open(t, dir, Options{Now: clk.Now, Durable: true})
	s.CreateRoom("r", "e")
	if err := s.CreateConv(convMeta("c")); err != nil {
		t.Fatal(err)
	}
	m := msg("r", "e", 1, clk.Now())
	m.Display = "Alice \"A\" Smith"
	s.Append(m)
	s.Append(msg("r", "e", 2, clk.Now())) // no display name
	d := msg("alice|bob", "c", 1, clk.Now())
	d.Display = "Bob B"
	if err := s.AppendDM(d); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir, Options{Now: clk.Now})
	rooms := load(t, s)
	if len(rooms) != 1 || len(rooms[0].Messages) != 2 {
		t.Fatalf("Load = %+v", rooms)
	}
	if got := rooms[0].Messages; got[0].Display != m.Display || got[1].Display != "" {
		t.Fatalf("display names after reopen = %q, %q; want %q, \"\"", got[0].Display, got[1].Display, m.Display)
	}
	convs := loadConvs(t, s)
	if len(convs) != 1 || len(convs[0].Messages) != 1 || convs[0].Messages[0].Display != "Bob B" {
		t.Fatalf("LoadConvs = %+v", convs)
	}
}

// A database of version 3 (before display names) is migrated: its
// messages are kept, without a display name, and new ones have one.
func TestMigrateToDisplayNames(t *testing.T) {
	dir := t.TempDir()
	db, err := sql.Open("sqlite", dsn(filepath.Join(dir, FileName), false, false))
	if err != nil {
		t.Fatal(err)
	}
	for _, ddl := range migrations[:3] {
		if _, err := db.Exec(ddl); err != nil {
			t.Fatal(err)
		}
	}
	clk := newClock()
	ts := clk.Now().UnixMilli()
	for _, q := range []string{
		`PRAGMA user_version = 3`,
		`INSERT INTO rooms VALUES ('r', 'e', 1)`,
		`INSERT INTO messages (room, "offset", from_user, color, text, ts_ms) VALUES ('r', 1, 'alice', '#123456', 'old', ` + strconv.FormatInt(ts, 10) + `)`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()

	s := open(t, dir, Options{Now: clk.Now, Durable: true})
	m := msg("r", "e", 2, clk.Now())
	m.Display = "Alice Smith"
	s.Append(m)
	flush(t, s)
	rooms := load(t, s)
	if len(rooms) != 1 || len(rooms[0].Messages) != 2 {
		t.Fatalf("Load after migration = %+v", rooms)
	}
	old, cur := rooms[0].Messages[0], rooms[0].Messages[1]
	if old.Text != "old" || old.From != "alice" || old.Display != "" || cur.Display != "Alice Smith" {
		t.Fatalf("messages after migration = %+v, %+v", old, cur)
	}
	var v int
	if err := s.(*sqliteStore).db.QueryRowContext(context.Background(), "PRAGMA user_version").Scan(&v); err != nil {
		t.Fatal(err)
	}
	if v != schemaVersion || !strings.Contains(migrations[v-1], "display") {
		t.Fatalf("user_version = %d after migration, want %d", v, schemaVersion)
	}
}
