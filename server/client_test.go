package server

import (
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"imload/mux"
	"imload/server/internal/testserve"
	"imload/server/redistest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(redistest.WithShared(m)) }

// testServer is a real server on a loopback port. Starting, stopping and
// waiting are imload/server/internal/testserve's, as for every other
// package's tests (through servertest, which these tests cannot import:
// it imports this package).
type testServer struct {
	srv  *Server
	addr string
	run  *testserve.Running
}

// testConfig is the test configuration (servertest.Config's): the memory
// store, short shutdown and goaway hints, and the reader
// IMLOAD_TEST_READER names.
func testConfig() Config {
	cfg := DefaultConfig()
	cfg.Memory = true
	cfg.ShutdownTimeout = testserve.ShutdownTimeout
	cfg.GoAwayRetryMin, cfg.GoAwayRetryMax = testserve.GoAwayRetryMin, testserve.GoAwayRetryMax
	if r := testserve.Reader(); r != "" {
		cfg.Reader = r // run the suite with the other reader: goroutine or epoll
	}
	cfg.WrapEngine = testEngine() // IMLOAD_TEST_ENGINE (async_test.go)
	if onRedis() {
		cfg.Redis = testRedisDB
	}
	return cfg
}

func startServer(t testing.TB, cfg Config) *testServer {
	t.Helper()
	return startServerOn(t, cfg, "127.0.0.1:0")
}

// startServerOn serves cfg on addr (retrying while a restarted server's
// address is still in use).
func startServerOn(t testing.TB, cfg Config, addr string) *testServer {
	t.Helper()
	return startServerLn(t, cfg, testserve.Listen(t, addr))
}

// startServerLn serves cfg on ln (which the test may have wrapped).
func startServerLn(t testing.TB, cfg Config, ln net.Listener) *testServer {
	t.Helper()
	cfg = withTestRedis(t, cfg)
	if cfg.Logger == nil {
		cfg.Logger = testserve.Logger(t)
	}
	srv, err := New(cfg)
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	run := testserve.Start(t, srv, ln, cfg.ShutdownTimeout)
	return &testServer{srv: srv, addr: run.Addr(), run: run}
}

// stop shuts the server down and waits for Serve to return (idempotent;
// it fails the test if Serve failed or did not return in time).
func (ts *testServer) stop() { ts.run.Close() }

func (ts *testServer) url() string { return ts.run.WSURL() }

// client is a test client: it reads every frame into a channel and counts
// WebSocket messages and frames.
type client struct {
	t      *testing.T
	ws     *websocket.Conn
	frames chan mux.Frame
	closed chan struct{}
	mu     sync.Mutex
	seq    uint64
	msgs   int
	nframe int
	closeE *websocket.CloseError
	hello  mux.Hello
	buf    []mux.Frame // frames read while waiting for something else
}

func dial(t *testing.T, ts *testServer, hdr http.Header) *client {
	t.Helper()
	c, err := tryDial(t, ts, hdr)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func tryDial(t *testing.T, ts *testServer, hdr http.Header) (*client, error) {
	ws, _, err := websocket.DefaultDialer.Dial(ts.url(), hdr)
	if err != nil {
		return nil, err
	}
	c := &client{t: t, ws: ws, frames: make(chan mux.Frame, 100000), closed: make(chan struct{})}
	go c.read()
	t.Cleanup(func() { c.ws.Close(); <-c.closed })
	f := c.next(func(f mux.Frame) bool { return f.T == mux.TypeHello })
	if err := json.Unmarshal(f.Body, &c.hello); err != nil {
		t.Fatal(err)
	}
	return c, nil
}

func (c *client) read() {
	defer close(c.closed)
	defer close(c.frames)
	for {
		_, msg, err := c.ws.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				c.mu.Lock()
				c.closeE = ce
				c.mu.Unlock()
			}
			return
		}
		c.mu.Lock()
		c.msgs++
		c.mu.Unlock()
		err = mux.SplitMessage(msg, mux.Limits{}, func(b []byte) error {
			f, err := mux.DecodeServerFrame(b)
			if err != nil {
				c.t.Errorf("server sent a bad frame %s: %v", b, err)
				return nil
			}
			c.mu.Lock()
			c.nframe++
			c.mu.Unlock()
			c.frames <- f
			return nil
		})
		if err != nil {
			c.t.Errorf("split: %v", err)
		}
	}
}

// next returns the first frame (buffered or new) that matches, within 5s.
func (c *client) next(match func(mux.Frame) bool) mux.Frame {
	c.t.Helper()
	for i, f := range c.buf {
		if match(f) {
			c.buf = append(c.buf[:i:i], c.buf[i+1:]...)
			return f
		}
	}
	timeout := time.After(5 * time.Second)
	for {
		select {
		case f, ok := <-c.frames:
			if !ok {
				c.t.Fatalf("connection closed while waiting (close: %v)", c.closeErr())
			}
			if match(f) {
				return f
			}
			c.buf = append(c.buf, f)
		case <-timeout:
			c.t.Fatal("no matching frame within 5s")
		}
	}
}

func (c *client) closeErr() *websocket.CloseError {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closeE
}

// waitClosed waits for the server to close the connection and returns the
// close error.
func (c *client) waitClosed(d time.Duration) *websocket.CloseError {
	c.t.Helper()
	select {
	case <-c.closed:
		return c.closeErr()
	case <-time.After(d):
		c.t.Fatalf("connection not closed within %v", d)
		return nil
	}
}

func (c *client) sendRaw(msg string) {
	c.t.Helper()
	if err := c.ws.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
		c.t.Fatal(err)
	}
}

// cmd sends one command and returns its reply.
func (c *client) cmd(sid uint32, cmd string, body any) mux.Frame {
	c.t.Helper()
	c.seq++
	seq := c.seq
	var b []byte
	if body != nil {
		b = mux.EncodeBody(body)
	}
	c.sendRaw(string(mux.AppendCmd(nil, sid, seq, cmd, b)))
	return c.next(func(f mux.Frame) bool { return f.T == mux.TypeReply && f.SID == sid && f.Seq == seq })
}

// ok sends a command, fails the test unless it succeeds, and decodes the body.
func (c *client) ok(sid uint32, cmd string, body any, out any) {
	c.t.Helper()
	f := c.cmd(sid, cmd, body)
	if f.Code != mux.CodeOK {
		c.t.Fatalf("%s from sid %d: %d %s %s", cmd, sid, f.Code, f.Err, f.Msg)
	}
	if out != nil {
		if err := json.Unmarshal(f.Body, out); err != nil {
			c.t.Fatal(err)
		}
	}
}

// fails sends a command and checks that it fails with code and name.
func (c *client) fails(sid uint32, cmd string, body any, code int, name string) {
	c.t.Helper()
	f := c.cmd(sid, cmd, body)
	if f.Code != code || f.Err != name {
		c.t.Fatalf("%s: got %d %s (%s), want %d %s", cmd, f.Code, f.Err, f.Msg, code, name)
	}
}

func (c *client) attach(sid uint32, name string) mux.AttachResp {
	c.t.Helper()
	var r mux.AttachResp
	c.ok(sid, mux.CmdAttach, mux.AttachReq{Name: name, Mode: mux.ModeLoadgen}, &r)
	return r
}

func (c *client) join(sid uint32, room string) mux.JoinResp {
	c.t.Helper()
	var r mux.JoinResp
	c.ok(sid, mux.CmdJoin, mux.JoinReq{Room: room}, &r)
	return r
}

func (c *client) send(sid uint32, room, text string) mux.SendResp {
	c.t.Helper()
	var r mux.SendResp
	c.ok(sid, mux.CmdSend, mux.SendReq{Room: room, Text: text}, &r)
	return r
}

// push waits for a push of event ev and decodes its body.
func (c *client) push(ev string, out any) mux.Frame {
	c.t.Helper()
	f := c.next(func(f mux.Frame) bool { return f.T == mux.TypePush && f.Ev == ev })
	if out != nil {
		if err := json.Unmarshal(f.Body, out); err != nil {
			c.t.Fatal(err)
		}
	}
	return f
}

func (c *client) counts() (msgs, frames int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.msgs, c.nframe
}

// eventually polls cond every 10ms for up to d.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
