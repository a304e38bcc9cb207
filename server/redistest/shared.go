package redistest

import (
	"fmt"
	"os"
	"sync"
	"testing"
)

// The package's one piece of global state: the shared server of the test
// binary it is linked into. A test package is one process, and TestMain,
// which must stop the server after the last test, has no testing.TB to
// hang it on, so it lives here: started by the first Shared call, stopped
// by WithShared's Run.
var shared struct {
	mu      sync.Mutex
	enabled bool    // WithShared's Run is running the tests
	srv     *Server // started, nil before the first Shared call or after a failed one
	dir     string  // its directory, removed with it
	err     error   // why it could not be started; every later Shared gets it too
}

// TestingM is what a TestMain is given (*testing.M) and what
// goleak.VerifyTestMain takes.
type TestingM interface {
	Run() int
}

// WithShared returns m with a Run that runs the tests and then stops the
// shared server, if a test started one. Use it in TestMain:
//
//	func TestMain(m *testing.M) { goleak.VerifyTestMain(redistest.WithShared(m)) }
//
// or, without goleak, os.Exit(redistest.WithShared(m).Run()).
func WithShared(m TestingM) TestingM { return withShared{m} }

type withShared struct{ m TestingM }

// Run runs the tests, then stops the shared server (reported on stderr and
// failing the run if that fails).
func (w withShared) Run() int {
	shared.mu.Lock()
	shared.enabled = true
	shared.mu.Unlock()
	code := w.m.Run()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	shared.enabled = false
	if shared.srv != nil {
		if err := shared.srv.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "redistest: stop the shared server:", err)
			if code == 0 {
				code = 1
			}
		}
		os.RemoveAll(shared.dir)
		shared.srv, shared.dir = nil, ""
	}
	return code
}

// Shared returns the test binary's shared redis-server, started on the
// first call. Tests take a database of it each (Server.DB) and must not
// kill, stop or restart it: a test that needs to do that starts its own
// (Start). It skips or fails tb as the package doc says when redis-server
// is missing, fails tb when it does not start, and fails tb when the
// package's TestMain does not use WithShared (nothing would stop it).
func Shared(tb testing.TB) *Server {
	tb.Helper()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if !shared.enabled {
		tb.Fatal("redistest.Shared: the package's TestMain must run its tests through redistest.WithShared(m), " +
			"which stops the shared server after them")
	}
	if shared.srv == nil && shared.err == nil {
		shared.srv, shared.dir, shared.err = startShared()
	}
	if shared.err != nil {
		skipOrFail(tb, shared.err)
	}
	return shared.srv
}

// startShared starts the shared server in a directory of its own.
func startShared() (*Server, string, error) {
	bin, err := lookPath()
	if err != nil {
		return nil, "", err
	}
	dir, err := os.MkdirTemp("", "redistest-")
	if err != nil {
		return nil, "", err
	}
	s := &Server{bin: bin, dir: dir}
	if err := s.startFree(); err != nil {
		os.RemoveAll(dir)
		return nil, "", err
	}
	return s, dir, nil
}
