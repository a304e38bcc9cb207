package server

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"imload/mux"
	"imload/server/store"
)

// durableConfig is testConfig with the SQLite store in dir, durable.
func durableConfig(dir string) Config {
	cfg := testConfig()
	cfg.Memory = false
	cfg.DataDir = dir
	cfg.Durability = DurabilityDurable
	return cfg
}

// storeLock holds SQLite's write lock on dir's database from another
// connection, as a slow disk would: the server's writer cannot commit
// until unlock.
type storeLock struct {
	db   *sql.DB
	conn *sql.Conn
}

func lockStore(t *testing.T, dir string) *storeLock {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, store.FileName)+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(context.Background(), "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	l := &storeLock{db: db, conn: conn}
	t.Cleanup(l.unlock)
	return l
}

func (l *storeLock) unlock() {
	if l.conn == nil {
		return
	}
	_, _ = l.conn.ExecContext(context.Background(), "ROLLBACK")
	l.conn.Close()
	l.db.Close()
	l.conn = nil
}

// none checks that no frame matching arrives within d.
func (c *client) none(d time.Duration, what string, match func(mux.Frame) bool) {
	c.t.Helper()
	for _, f := range c.buf {
		if match(f) {
			c.t.Fatalf("%s: got %+v", what, f)
		}
	}
	timeout := time.After(d)
	for {
		select {
		case f, ok := <-c.frames:
			if !ok {
				c.t.Fatalf("%s: connection closed (close: %v)", what, c.closeErr())
			}
			if match(f) {
				c.t.Fatalf("%s: got %+v", what, f)
			}
			c.buf = append(c.buf, f)
		case <-timeout:
			return
		}
	}
}

func (c *client) rawCmd(sid uint32, seq uint64, cmd string, body any) {
	c.t.Helper()
	c.sendRaw(string(mux.AppendCmd(nil, sid, seq, cmd, mux.EncodeBody(body))))
}

func replyTo(sid uint32, seq uint64) func(mux.Frame) bool {
	return func(f mux.Frame) bool { return f.T == mux.TypeReply && f.SID == sid && f.Seq == seq }
}

func isPush(ev string) func(mux.Frame) bool {
	return func(f mux.Frame) bool { return f.T == mux.TypePush && f.Ev == ev }
}

// On a durable server nothing shows a message before the store has
// committed it: not the sender's reply, not a push, not history, not a
// join's top; a retry of its cid waits with it. Once committed, all of it
// comes, in order.
func TestDurableSendWaitsForCommit(t *testing.T) {
	skipOnRedis(t, "the SQLite store's durability (the Redis engine has no store)")
	dir := t.TempDir()
	ts := startServer(t, durableConfig(dir))
	a := dial(t, ts, nil)
	a.attach(1, "alice")
	a.join(1, "r")
	a.send(1, "r", "committed")
	b := dial(t, ts, nil)
	b.attach(1, "bob")
	b.join(1, "r")

	lock := lockStore(t, dir)
	a.rawCmd(1, 100, mux.CmdSend, mux.SendReq{Room: "r", Text: "waits", CID: "w-1"})
	a.rawCmd(1, 101, mux.CmdSend, mux.SendReq{Room: "r", Text: "waits", CID: "w-1"}) // a retry
	a.none(300*time.Millisecond, "reply before the commit", replyTo(1, 100))
	b.none(0, "push before the commit", isPush(mux.EvMsg))
	var h mux.HistoryResp
	b.ok(1, mux.CmdHistory, mux.HistoryReq{Room: "r"}, &h)
	if h.Top != 1 || len(h.Messages) != 1 {
		t.Fatalf("history before the commit: top %d, %d messages; want only offset 1", h.Top, len(h.Messages))
	}
	c := dial(t, ts, nil)
	c.attach(1, "carol")
	if j := c.join(1, "r"); j.Top != 1 {
		t.Fatalf("join before the commit: top %d, want 1", j.Top)
	}

	lock.unlock()
	var s1, s2 mux.SendResp
	if err := json.Unmarshal(a.next(replyTo(1, 100)).Body, &s1); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(a.next(replyTo(1, 101)).Body, &s2); err != nil {
		t.Fatal(err)
	}
	if s1.Offset != 2 || s1.Dup || s2.Offset != 2 || !s2.Dup {
		t.Fatalf("after the commit: %+v and the retry %+v", s1, s2)
	}
	for _, cl := range []*client{b, c} {
		var m mux.Message
		cl.push(mux.EvMsg, &m)
		if m.Offset != 2 || m.Text != "waits" {
			t.Fatalf("push after the commit: %+v", m)
		}
	}
	b.ok(1, mux.CmdHistory, mux.HistoryReq{Room: "r"}, &h)
	if h.Top != 2 || len(h.Messages) != 2 {
		t.Fatalf("history after the commit: top %d, %d messages", h.Top, len(h.Messages))
	}
}

// A store that cannot keep up never makes a worker wait: sends beyond its
// queue are refused with 503 unavailable at once, other connections are
// served meanwhile, and what was accepted is released once the store
// catches up.
func TestFullStoreRefusesSends(t *testing.T) {
	skipOnRedis(t, "the SQLite store's durability (the Redis engine has no store)")
	dir := t.TempDir()
	cfg := durableConfig(dir)
	cfg.StoreQueue = 16
	cfg.RateLimit, cfg.RateBurst = 1e6, 1e6
	cfg.ConnRate, cfg.ConnBurst = 1e6, 1e6
	ts := startServer(t, cfg)
	const senders = 8
	clients := make([]*client, senders)
	for i := range clients {
		clients[i] = dial(t, ts, nil)
		clients[i].attach(1, fmt.Sprint("s", i))
		clients[i].join(1, fmt.Sprint("room", i))
	}
	canary := dial(t, ts, nil)
	canary.attach(1, "canary")
	canary.join(1, "room0")

	lock := lockStore(t, dir)
	const perSender = 20
	for i, c := range clients {
		for k := range perSender {
			c.rawCmd(1, uint64(100+k), mux.CmdSend, mux.SendReq{Room: fmt.Sprint("room", i), Text: fmt.Sprint("m", k)})
		}
	}
	// The refusals come at once, while the store is still locked; the
	// accepted sends get no reply yet.
	time.Sleep(2 * time.Second)
	refused := 0
	waiting := make(map[*client][]uint64)
	for _, c := range clients {
		c.drain()
		for k := range perSender {
			f, ok := c.tryNext(0, replyTo(1, uint64(100+k)))
			if !ok {
				waiting[c] = append(waiting[c], uint64(100+k)) // accepted: waits for the commit
				continue
			}
			if f.Code != mux.CodeUnavailable || f.Err != mux.ErrUnavailable {
				t.Fatalf("reply while the store is locked: %d %s %s", f.Code, f.Err, f.Msg)
			}
			refused++
		}
	}
	// Other commands are served meanwhile.
	for range 10 {
		start := time.Now()
		canary.ok(1, mux.CmdWho, mux.WhoReq{Room: "room0"}, nil)
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("a who took %v while the store was locked", d)
		}
	}
	lock.unlock()
	accepted := 0
	for c, seqs := range waiting {
		for _, seq := range seqs {
			f, ok := c.tryNext(10*time.Second, replyTo(1, seq))
			if !ok || f.Code != mux.CodeOK {
				t.Fatalf("send %d accepted while the store was locked: after it caught up %v %+v", seq, ok, f)
			}
			accepted++
		}
	}
	if accepted+refused != senders*perSender || accepted == 0 {
		t.Fatalf("%d accepted and %d refused of %d", accepted, refused, senders*perSender)
	}
	if n := ts.srv.counters.storeRefused.Load(); n != int64(refused) {
		t.Fatalf("store_refused counter %d, want %d", n, refused)
	}
}

// drain moves every frame received so far into c.buf.
func (c *client) drain() {
	for {
		select {
		case f, ok := <-c.frames:
			if !ok {
				return
			}
			c.buf = append(c.buf, f)
		default:
			return
		}
	}
}

// tryNext returns the first frame that matches within d, and false if none
// came.
func (c *client) tryNext(d time.Duration, match func(mux.Frame) bool) (mux.Frame, bool) {
	c.t.Helper()
	for i, f := range c.buf {
		if match(f) {
			c.buf = append(c.buf[:i:i], c.buf[i+1:]...)
			return f, true
		}
	}
	timeout := time.After(d)
	for {
		select {
		case f, ok := <-c.frames:
			if !ok {
				return mux.Frame{}, false
			}
			if match(f) {
				return f, true
			}
			c.buf = append(c.buf, f)
		case <-timeout:
			return mux.Frame{}, false
		}
	}
}

// Many rooms emptied at once are swept without stalling anyone: a canary's
// commands keep their answers coming while 20,000 empty rooms are deleted
// (durable store; the deletions reach it a few at a time).
func TestSweepOfManyRoomsKeepsServing(t *testing.T) {
	if testing.Short() {
		t.Skip("creates 20,000 rooms")
	}
	dir := t.TempDir()
	cfg := durableConfig(dir)
	cfg.RoomCreateRate, cfg.RoomCreateBurst = 1e6, 1e6
	cfg.HistoryAge = 10 * time.Second // the janitor sweeps rooms every second
	cfg.Limits.MaxRoomsPerSession = 30000
	cfg.RateLimit, cfg.RateBurst = 1e6, 1e6
	cfg.ConnRate, cfg.ConnBurst = 1e6, 1e6
	ts := startServer(t, cfg)
	flood := dial(t, ts, nil)
	flood.attach(1, "flood")
	rooms := 20000
	if onRedis() {
		// Each join waits for its Open (a subscription and a read, two
		// round trips to Redis) before the connection's next command: 2,000
		// rooms still make the janitor drop (unsubscribe) many at once.
		rooms = 2000
	}
	var batch []byte
	for i := range rooms {
		batch = mux.AppendCmd(batch, 1, uint64(i+1), mux.CmdJoin, mux.EncodeBody(mux.JoinReq{Room: fmt.Sprint("f", i)}))
		batch = append(batch, '\n')
		if i%100 == 99 {
			flood.sendRaw(string(batch))
			batch = batch[:0]
			flood.next(replyTo(1, uint64(i+1))) // keep the store's queue from overflowing
		}
	}
	if n := ts.srv.hub.roomCount(); n != rooms {
		t.Fatalf("%d rooms after the joins, want %d", n, rooms)
	}
	// Leaving all at once (the connection ends) leaves 20,000 idle rooms.
	flood.ws.Close()
	canary := dial(t, ts, nil)
	canary.attach(1, "canary")
	canary.join(1, "lobby")
	var worst time.Duration
	deadline := time.Now().Add(30 * time.Second)
	for ts.srv.hub.roomCount() > 1 {
		if time.Now().After(deadline) {
			t.Fatalf("%d rooms left after 30s", ts.srv.hub.roomCount())
		}
		start := time.Now()
		canary.ok(1, mux.CmdSend, mux.SendReq{Room: "lobby", Text: "still here"}, nil)
		worst = max(worst, time.Since(start))
	}
	if worst > time.Second {
		t.Fatalf("a canary send took %v while the rooms were swept", worst)
	}
	t.Logf("slowest canary send during the sweep: %v", worst)
}
