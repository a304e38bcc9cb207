// Package testserve is the one implementation of running a server for a
// test: listen on a loopback address (retrying briefly while a stopped
// server's port is still in use), run Serve on a goroutine, and stop it at
// the end of the test, gracefully and within a bound, failing the test if
// Serve returned an error or did not return in time. It also holds the test
// defaults that every suite shares, and is the one place that reads
// IMLOAD_TEST_READER.
//
// It does not import package server, and takes the server through the
// small [Servable] interface: the server's own internal tests (package
// server) use it through a thin wrapper, which they could not do with
// package servertest (servertest imports server, so server's internal
// tests importing it would be an import cycle). Every other package's tests
// use servertest, which is built on this package.
package testserve

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The test defaults of a server's configuration (server.Config fields of
// the same names); tests adjust what they test.
const (
	// ShutdownTimeout bounds a graceful shutdown: a test's server stops
	// within it even with clients that do not go away.
	ShutdownTimeout = 3 * time.Second
	// GoAwayRetryMin and GoAwayRetryMax are the range of the retry hint
	// in a goaway: short, so clients that reconnect after a restart do so
	// at once.
	GoAwayRetryMin = 10 * time.Millisecond
	GoAwayRetryMax = 50 * time.Millisecond
)

// ReaderEnv is the environment variable that names the reader test servers
// use (server.Config.Reader: epoll, goroutine or auto); CI runs suites a
// second time with IMLOAD_TEST_READER=goroutine.
const ReaderEnv = "IMLOAD_TEST_READER"

// Reader returns the reader IMLOAD_TEST_READER names, or "" when it is not
// set (the configuration's default then stands).
func Reader() string { return strings.TrimSpace(os.Getenv(ReaderEnv)) }

// stopMargin is how much longer than the server's shutdown timeout Close
// waits for Serve to return (closing the store, the last writes).
const stopMargin = 15 * time.Second

// listenRetry is how long Listen retries an address in use.
const listenRetry = 5 * time.Second

// Servable is what Start runs: *server.Server. Serve serves on ln until
// ctx is done, shuts down gracefully and closes the server.
type Servable interface {
	Serve(ctx context.Context, ln net.Listener) error
}

// Running is a server serving on a listener for a test, until Close.
type Running struct {
	t          testing.TB
	addr       string
	cancel     context.CancelFunc
	done       chan error
	stopWithin time.Duration
	once       sync.Once
}

// Listen listens on addr (host:port; port 0 for any free port). While the
// address is in use, as it may be for a moment when a test restarts a
// server on the port of one it just stopped, it retries for up to 5 s. It
// fails the test if it cannot listen.
func Listen(t testing.TB, addr string) net.Listener {
	t.Helper()
	deadline := time.Now().Add(listenRetry)
	for {
		ln, err := net.Listen("tcp", addr)
		if err == nil {
			return ln
		}
		if !errors.Is(err, syscall.EADDRINUSE) || time.Now().After(deadline) {
			t.Fatalf("listen on %s: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Start runs srv.Serve on ln (which srv then owns) on a goroutine of its
// own, and registers Close with t.Cleanup. shutdownTimeout is the server's
// own bound on a graceful shutdown: Close waits that long and 15 s more
// for Serve to return.
func Start(t testing.TB, srv Servable, ln net.Listener, shutdownTimeout time.Duration) *Running {
	ctx, cancel := context.WithCancel(context.Background())
	r := &Running{t: t, addr: ln.Addr().String(), cancel: cancel, done: make(chan error, 1),
		stopWithin: shutdownTimeout + stopMargin}
	go func() { r.done <- srv.Serve(ctx, ln) }()
	t.Cleanup(r.Close)
	return r
}

// Addr returns the address the server listens on (host:port).
func (r *Running) Addr() string { return r.addr }

// URL returns the base of the server's HTTP endpoints: http://host:port.
func (r *Running) URL() string { return "http://" + r.addr }

// WSURL returns the URL of the server's WebSocket endpoint:
// ws://host:port/ws.
func (r *Running) WSURL() string { return "ws://" + r.addr + "/ws" }

// Close shuts the server down gracefully (as SIGTERM does: goaway to every
// connection, then close) and waits for Serve to return. It fails the test
// (Errorf) if Serve returned an error or did not return within the
// shutdown timeout and a margin. Only the first call does anything; later
// ones return at once. Start registers it with t.Cleanup, so a test calls
// it only to stop the server before the test ends (to restart it, say).
func (r *Running) Close() {
	r.once.Do(func() {
		r.cancel()
		timer := time.NewTimer(r.stopWithin)
		defer timer.Stop()
		select {
		case err := <-r.done:
			if err != nil {
				r.t.Errorf("server on %s: Serve: %v", r.addr, err)
			}
		case <-timer.C:
			r.t.Errorf("server on %s: Serve did not return within %v of the shutdown", r.addr, r.stopWithin)
		}
	})
}

// Logger returns a logger that writes to the test log (debug level), when
// tests run with -v; else nil, which leaves the server's default (no logs).
func Logger(t testing.TB) *slog.Logger {
	if !testing.Verbose() {
		return nil
	}
	return slog.New(slog.NewTextHandler(logWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// logWriter sends each log line to the test log.
type logWriter struct{ t testing.TB }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
