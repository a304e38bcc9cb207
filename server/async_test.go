package server

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"imload/mux"
	"imload/server/engine"
	"imload/server/engine/enginetest"
	"imload/server/redistest"
)

// testEngine is the engine wrapper of the suite: IMLOAD_TEST_ENGINE=async
// runs every test with the local engine's answers made asynchronous
// (enginetest.Async), as the Redis engine's are, so that the node's
// handling of late answers (await.go) is tested by the whole suite;
// IMLOAD_TEST_ENGINE=redis runs it with the Redis engine (testRedis).
func testEngine() func(engine.Engine) engine.Engine {
	switch e := os.Getenv("IMLOAD_TEST_ENGINE"); e {
	case "", "local", "redis":
		return nil
	case "async":
		return func(e engine.Engine) engine.Engine { return enginetest.NewAsync(e) }
	default:
		panic("IMLOAD_TEST_ENGINE: unknown engine " + e)
	}
}

// startAsync starts a server whose engine answers late, and returns the
// wrapper, to pause and resume its answers.
func startAsync(t *testing.T, cfg Config) (*testServer, *enginetest.Async) {
	t.Helper()
	var a *enginetest.Async
	cfg.WrapEngine = func(e engine.Engine) engine.Engine { a = enginetest.NewAsync(e); return a }
	return startServer(t, cfg), a
}

// cmdFrame is one command frame.
func cmdFrame(sid uint32, seq uint64, cmd string, body any) string {
	return string(mux.AppendCmd(nil, sid, seq, cmd, mux.EncodeBody(body)))
}

// While a command waits for the engine, the commands that follow it on
// its connection wait behind it, in the same message or later ones, and
// take effect in order once it is answered; a ping is answered at once.
func TestCommandsWaitBehindAnEngineAnswer(t *testing.T) {
	ts, a := startAsync(t, testConfig())
	bob := dial(t, ts, nil)
	bob.attach(1, "bob")
	bob.join(1, "r")

	c := dial(t, ts, nil)
	a.Pause()
	c.sendRaw(strings.Join([]string{
		cmdFrame(1, 1, mux.CmdAttach, mux.AttachReq{Name: "alice"}),
		cmdFrame(1, 2, mux.CmdJoin, mux.JoinReq{Room: "r"}),
		`{"t":"ping","seq":7}`,
	}, "\n"))
	c.sendRaw(cmdFrame(1, 3, mux.CmdSend, mux.SendReq{Room: "r", Text: "after the join"}))
	pong := c.next(func(f mux.Frame) bool { return f.T == mux.TypePong })
	if pong.Seq != 7 {
		t.Fatalf("pong %+v", pong)
	}
	c.none(200*time.Millisecond, "a reply while the attach waits", func(f mux.Frame) bool { return f.T == mux.TypeReply })
	if n := ts.srv.counters.commandsHeld.Load(); n == 0 {
		t.Fatal("no command held")
	}
	a.Resume()
	var order []uint64
	for range 3 {
		f := c.next(func(f mux.Frame) bool { return f.T == mux.TypeReply })
		if f.Code != mux.CodeOK {
			t.Fatalf("reply %+v", f)
		}
		order = append(order, f.Seq)
	}
	if fmt.Sprint(order) != "[1 2 3]" {
		t.Fatalf("replies in order %v, want [1 2 3]", order)
	}
	var m mux.Message
	bob.push(mux.EvMsg, &m)
	if m.From != "alice" || m.Text != "after the join" {
		t.Fatalf("bob got %+v", m)
	}
}

// A connection that sends more than MaxBacklog bytes while a command
// waits is closed with 4009 and counted; the name its waiting attach
// claimed is released when the answer comes.
func TestBacklogBeyondItsBoundCloses(t *testing.T) {
	cfg := testConfig()
	cfg.Limits.MaxMessageBytes, cfg.Limits.MaxTextBytes = 4096, 2048
	cfg.MaxBacklog = 4096
	cfg.ConnRate, cfg.ConnBurst = 1e6, 1e6
	ts, a := startAsync(t, cfg)
	c := dial(t, ts, nil)
	a.Pause()
	c.sendRaw(cmdFrame(1, 1, mux.CmdAttach, mux.AttachReq{Name: "alice"}))
	eventually(t, 5*time.Second, "the attach to wait", func() bool { return a.Held() == 1 })
	text := strings.Repeat("x", 1000)
	for i := range 8 { // 8 KB behind it; the server closes on the way
		msg := cmdFrame(1, uint64(10+i), mux.CmdWho, mux.WhoReq{Room: "r" + text[:50]}) + "\n" +
			cmdFrame(1, uint64(100+i), mux.CmdSend, mux.SendReq{Room: "r", Text: text})
		if c.ws.WriteMessage(websocket.TextMessage, []byte(msg)) != nil {
			break
		}
	}
	if ce := c.waitClosed(5 * time.Second); ce == nil || ce.Code != closeBacklogFull {
		t.Fatalf("close %v, want %d", ce, closeBacklogFull)
	}
	if n := ts.srv.counters.backlogOverflows.Load(); n != 1 {
		t.Fatalf("backlog_overflows %d, want 1", n)
	}
	a.Resume()
	eventually(t, 5*time.Second, "the claimed name to be released", func() bool {
		return ts.srv.engine.Online() == 0 && ts.srv.Stats().PhysicalConnections == 0
	})
}

// A connection that ends while its attach waits: the answer, when it
// comes, releases the name (reserved to its token, as any name whose last
// session went), and nothing of the connection is left.
func TestConnectionEndsWhileACommandWaits(t *testing.T) {
	ts, a := startAsync(t, testConfig())
	c := dial(t, ts, nil)
	a.Pause()
	c.sendRaw(strings.Join([]string{
		cmdFrame(1, 1, mux.CmdAttach, mux.AttachReq{Name: "alice"}),
		cmdFrame(1, 2, mux.CmdJoin, mux.JoinReq{Room: "r"}),
	}, "\n"))
	eventually(t, 5*time.Second, "the attach to wait", func() bool { return a.Held() == 1 })
	c.ws.Close()
	waitConns(t, ts, 0)
	a.Resume()
	eventually(t, 5*time.Second, "the name to be released", func() bool {
		return ts.srv.engine.Online() == 0 && ts.srv.engine.Reserved() == 1
	})
	if n := ts.srv.Stats().LogicalSessions; n != 0 {
		t.Fatalf("%d sessions left", n)
	}
	if r := ts.srv.hub.room("r"); r != nil {
		t.Fatal("the join behind the attach ran after its connection ended")
	}
}

// A private message whose answer comes late: the deliveries are made at
// once (the local engine makes them inside DM) and written, the reply
// comes with the answer.
func TestDMAnsweredLate(t *testing.T) {
	ts, a := startAsync(t, testConfig())
	alice := dial(t, ts, nil)
	alice.attach(1, "alice")
	bob := dial(t, ts, nil)
	bob.attach(1, "bob")
	a.Pause()
	bob.sendRaw(cmdFrame(1, 50, mux.CmdDM, mux.DMReq{To: "alice", Text: "hi"}))
	var d mux.DM
	alice.push(mux.EvDM, &d)
	if d.Text != "hi" || d.From != "bob" {
		t.Fatalf("dm %+v", d)
	}
	bob.none(100*time.Millisecond, "the reply before the answer", replyTo(1, 50))
	a.Resume()
	if f := bob.next(replyTo(1, 50)); f.Code != mux.CodeOK {
		t.Fatalf("dm reply %+v", f)
	}
}

// testRedisDB is Config.Redis in a test configuration under
// IMLOAD_TEST_ENGINE=redis: the server a test starts gets a database of
// the package's redis-server (withTestRedis).
const testRedisDB = "redistest:"

// onRedis reports whether the suite runs with the Redis engine.
func onRedis() bool { return os.Getenv("IMLOAD_TEST_ENGINE") == "redis" }

// withTestRedis gives cfg a database of its own on the package's
// redis-server, if it asks for one (testRedisDB).
func withTestRedis(t testing.TB, cfg Config) Config {
	if cfg.Redis == testRedisDB {
		db := redistest.Shared(t).DB(t)
		cfg.Redis, cfg.RedisPrefix = db.URL, db.Prefix
	}
	return cfg
}

// skipOnRedis skips a test that is about the local engine (its store's
// durability, one process's state), saying why.
func skipOnRedis(t testing.TB, why string) {
	if onRedis() {
		t.Skip("IMLOAD_TEST_ENGINE=redis: " + why)
	}
}
