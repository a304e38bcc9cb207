package store

import (
	"context"
	"sync"
	"testing"
	"time"
)

// loadConvs loads s's conversations.
func loadConvs(t testing.TB, s Store) []Conv {
	t.Helper()
	convs, err := s.LoadConvs(context.Background())
	if err != nil {
		t.Fatalf("LoadConvs: %v", err)
	}
	return convs
}

// convMeta is the conversation of alice and bob.
func convMeta(epoch string) ConvMeta {
	return ConvMeta{Name: "alice|bob", Epoch: epoch, Users: [2]string{"Alice", "bob"}, Gens: [2]string{"ta", "tb"}}
}

// checkConv checks that c holds exactly offsets first..last in epoch.
func checkConv(t testing.TB, c Conv, epoch string, first, last uint64) {
	t.Helper()
	if c.Epoch != epoch {
		t.Fatalf("conversation %q epoch %q, want %q", c.Name, c.Epoch, epoch)
	}
	if n := int(last) - int(first) + 1; len(c.Messages) != max(0, n) {
		t.Fatalf("conversation %q: %d messages, want offsets %d..%d", c.Name, len(c.Messages), first, last)
	}
	for i, m := range c.Messages {
		if m.Offset != first+uint64(i) || m.Room != c.Name || m.Epoch != epoch {
			t.Fatalf("conversation %q message %d = %+v", c.Name, i, m)
		}
	}
}

// Conversations are kept apart from rooms, with their users and
// generations, and come back after a reopen with the same epoch and
// offsets; a room of the same name is another log.
func TestConvsReopen(t *testing.T) {
	dir := t.TempDir()
	clk := newClock()
	opts := Options{Now: clk.Now, Durable: true}
	s := open(t, dir, opts)
	if err := s.CreateConv(convMeta("e1")); err != nil {
		t.Fatal(err)
	}
	s.CreateRoom("alice|bob", "room-epoch") // not a valid room name, but the store does not care
	for off := uint64(1); off <= 3; off++ {
		if err := s.AppendDM(msg("alice|bob", "e1", off, clk.Now())); err != nil {
			t.Fatal(err)
		}
	}
	s.Append(msg("alice|bob", "room-epoch", 1, clk.Now()))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir, opts)
	convs := loadConvs(t, s)
	if len(convs) != 1 || convs[0].ConvMeta != convMeta("e1") {
		t.Fatalf("conversations after a reopen: %+v", convs)
	}
	checkConv(t, convs[0], "e1", 1, 3)
	if rooms := load(t, s); len(rooms) != 1 || len(rooms[0].Messages) != 1 || rooms[0].Epoch != "room-epoch" {
		t.Fatalf("rooms after a reopen: %+v", rooms)
	}

	// Made again with another epoch (another holder of a name): the old
	// messages go; a message of the old epoch is stale.
	next := convMeta("e2")
	next.Gens[0] = "tc"
	s.CreateConv(next)
	s.AppendDM(msg("alice|bob", "e1", 4, clk.Now()))
	s.AppendDM(msg("alice|bob", "e2", 1, clk.Now()))
	flush(t, s)
	convs = loadConvs(t, s)
	if len(convs) != 1 || convs[0].ConvMeta != next {
		t.Fatalf("conversation made again: %+v", convs)
	}
	checkConv(t, convs[0], "e2", 1, 1)

	// Deleted with its epoch only.
	s.DeleteConv("alice|bob", "e1")
	flush(t, s)
	if len(loadConvs(t, s)) != 1 {
		t.Fatal("deleted with a stale epoch")
	}
	s.DeleteConv("alice|bob", "e2")
	flush(t, s)
	if c := loadConvs(t, s); len(c) != 0 {
		t.Fatalf("after DeleteConv: %+v", c)
	}
	if rooms := load(t, s); len(rooms) != 1 {
		t.Fatalf("the room went with the conversation: %+v", rooms)
	}
}

// A conversation is trimmed to DMMaxMessages at every append and to
// DMMaxAge by the periodic trim, whatever the rooms' bounds.
func TestConvsBounds(t *testing.T) {
	dir := t.TempDir()
	clk := newClock()
	s := open(t, dir, Options{Now: clk.Now, MaxMessages: 100, MaxAge: time.Hour,
		DMMaxMessages: 4, DMMaxAge: 10 * time.Minute, ageTrimEvery: 20 * time.Millisecond})
	s.CreateConv(convMeta("e"))
	s.CreateRoom("r", "e")
	for off := uint64(1); off <= 10; off++ {
		s.AppendDM(msg("alice|bob", "e", off, clk.Now()))
		s.Append(msg("r", "e", off, clk.Now()))
	}
	flush(t, s)
	checkConv(t, loadConvs(t, s)[0], "e", 7, 10)
	checkRoom(t, load(t, s)[0], "r", "e", 1, 10, clk.Now())
	ro := readOnly(t, dir)
	if n := count(t, ro, `SELECT count(*) FROM dm_messages`); n != 4 {
		t.Fatalf("%d private messages on disk, want 4", n)
	}
	clk.Advance(11 * time.Minute) // too old for a conversation, not for a room
	deadline := time.Now().Add(10 * time.Second)
	for count(t, ro, `SELECT count(*) FROM dm_messages`) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("old private messages not trimmed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := count(t, ro, `SELECT count(*) FROM messages`); n != 10 {
		t.Fatalf("the rooms' messages were trimmed with the conversations': %d left", n)
	}
	if c := loadConvs(t, s); len(c) != 1 || len(c[0].Messages) != 0 {
		t.Fatalf("conversation after its messages aged: %+v", c)
	}
}

// OnCommit tells a conversation's commits from a room's.
func TestConvsOnCommit(t *testing.T) {
	var mu sync.Mutex
	var got []Committed
	s := open(t, t.TempDir(), Options{Durable: true, OnCommit: func(cs []Committed) {
		mu.Lock()
		got = append(got, cs...)
		mu.Unlock()
	}})
	s.CreateConv(convMeta("e"))
	s.CreateRoom("alice|bob", "e")
	s.AppendDM(msg("alice|bob", "e", 1, time.Now()))
	s.AppendDM(msg("alice|bob", "e", 2, time.Now()))
	s.Append(msg("alice|bob", "e", 1, time.Now()))
	flush(t, s)
	mu.Lock()
	defer mu.Unlock()
	var dm, room uint64
	for _, c := range got {
		if c.DM {
			dm = max(dm, c.Offset)
		} else {
			room = max(room, c.Offset)
		}
	}
	if dm != 2 || room != 1 {
		t.Fatalf("commits %+v: conversation up to %d, room up to %d; want 2 and 1", got, dm, room)
	}
}

// A relaxed store that stopped uncleanly renews the conversations' epochs
// too.
func TestConvsUncleanStopRenewsEpochs(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenSQLite(context.Background(), dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.CreateConv(convMeta("e1"))
	s.AppendDM(msg("alice|bob", "e1", 1, time.Now()))
	flush(t, s)
	crash(t, s)
	s = open(t, dir, Options{Durable: true})
	convs := loadConvs(t, s)
	if len(convs) != 1 || convs[0].Epoch == "e1" || len(convs[0].Messages) != 1 || convs[0].Messages[0].Epoch != convs[0].Epoch {
		t.Fatalf("after an unclean stop: %+v, want a new epoch", convs)
	}
	if convs[0].Gens != convMeta("").Gens {
		t.Fatalf("generations lost: %+v", convs[0])
	}
}
