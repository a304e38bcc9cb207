// Package servertest starts a real imload server (server.Server) on a
// loopback port for a test, in the manner of net/http/httptest:
//
//	ts := servertest.Start(t, servertest.Config())
//	ws, _, err := websocket.DefaultDialer.Dial(ts.WSURL(), nil)
//
// The server is stopped at the end of the test (t.Cleanup), gracefully,
// and the test fails if Serve returned an error or did not return in time.
// A test may stop it earlier with Close, and start another on the same
// address with StartOn (a restart); StartListener serves on a listener the
// test made (a wrapped one, say). With -v the server's logs go to the test
// log.
//
// Config is the one test configuration every suite starts from, and it
// reads IMLOAD_TEST_READER: the suites of every package that starts servers
// this way run with the reader it names (CI runs them again with
// IMLOAD_TEST_READER=goroutine).
//
// # One implementation
//
// The start, stop and wait logic is not in this package but in
// imload/server/internal/testserve, which does not import package server
// and runs anything with a Serve(ctx, ln) method. The server's own internal
// tests (package server) cannot import servertest, which imports server
// (an import cycle); they use testserve through a thin wrapper of the same
// shape as this package, and so do not carry a copy of the logic.
package servertest

import (
	"net"
	"testing"

	"imload/server"
	"imload/server/internal/testserve"
)

// ReaderEnv is the environment variable that names the reader (epoll,
// goroutine or auto) of the servers Config makes: IMLOAD_TEST_READER.
const ReaderEnv = testserve.ReaderEnv

// Reader returns the reader IMLOAD_TEST_READER names, or "" when it is
// not set. Config uses it; a suite that picks readers of its own (the load
// generator's, which have the same names) may follow it too.
func Reader() string { return testserve.Reader() }

// Config returns the configuration a test server starts from: the
// defaults of server.DefaultConfig with the memory store, a 3 s shutdown
// timeout, goaway retry hints of 10–50 ms and the reader IMLOAD_TEST_READER
// names (the default, auto, when it is not set). Tests adjust what they
// test.
func Config() server.Config {
	cfg := server.DefaultConfig()
	cfg.Memory = true
	cfg.ShutdownTimeout = testserve.ShutdownTimeout
	cfg.GoAwayRetryMin, cfg.GoAwayRetryMax = testserve.GoAwayRetryMin, testserve.GoAwayRetryMax
	if r := testserve.Reader(); r != "" {
		cfg.Reader = r
	}
	return cfg
}

// Server is a server.Server serving on a loopback address for a test.
type Server struct {
	// Server is the running server, for what a test inspects (Stats,
	// Handler, …). Stop it with the Close of this Server, not its own.
	Server *server.Server

	run *testserve.Running
}

// Start starts a server with cfg on 127.0.0.1, on a free port. It fails
// the test if the server cannot start, and stops it when the test ends.
func Start(t testing.TB, cfg server.Config) *Server {
	t.Helper()
	return StartOn(t, cfg, "127.0.0.1:0")
}

// StartOn starts a server with cfg on addr (host:port). For a restart on
// the address of a server the test just closed, it retries the listen for
// a few seconds while the address is in use.
func StartOn(t testing.TB, cfg server.Config, addr string) *Server {
	t.Helper()
	return StartListener(t, cfg, testserve.Listen(t, addr))
}

// StartListener starts a server with cfg serving on ln, which it then
// owns (it is closed when the server stops, or at once if the server
// cannot start).
func StartListener(t testing.TB, cfg server.Config, ln net.Listener) *Server {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testserve.Logger(t)
	}
	srv, err := server.New(cfg)
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	return &Server{Server: srv, run: testserve.Start(t, srv, ln, cfg.ShutdownTimeout)}
}

// Addr returns the address the server listens on (host:port).
func (s *Server) Addr() string { return s.run.Addr() }

// URL returns the base URL of the server's HTTP endpoints,
// http://host:port (as httptest.Server.URL).
func (s *Server) URL() string { return s.run.URL() }

// WSURL returns the URL of the server's WebSocket endpoint,
// ws://host:port/ws.
func (s *Server) WSURL() string { return s.run.WSURL() }

// Close shuts the server down gracefully and waits for Serve to return. It
// fails the test if Serve returned an error or did not return within the
// configured shutdown timeout and a margin. It is idempotent, and runs at
// the end of the test anyway: call it to stop the server earlier.
func (s *Server) Close() { s.run.Close() }
