package testserve

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// recTB records what a test helper reports, instead of failing the test
// that runs it, and the cleanups it registers.
type recTB struct {
	testing.TB
	mu       sync.Mutex
	errs     []string
	cleanups []func()
}

func (r *recTB) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func (r *recTB) Cleanup(f func()) { r.cleanups = append(r.cleanups, f) }

func (r *recTB) errors() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.errs...)
}

// servable serves nothing: Serve waits for ctx, then for release, and
// returns err.
type servable struct {
	release chan struct{}
	err     error
}

func (s servable) Serve(ctx context.Context, ln net.Listener) error {
	defer ln.Close()
	<-ctx.Done()
	<-s.release
	return s.err
}

// Close reports an error Serve returned, once, and registers itself as a
// cleanup.
func TestCloseReportsServeError(t *testing.T) {
	rec := &recTB{TB: t}
	srv := servable{release: make(chan struct{}), err: fmt.Errorf("store: disk on fire")}
	close(srv.release)
	r := Start(rec, srv, Listen(t, "127.0.0.1:0"), time.Second)
	if len(rec.cleanups) != 1 {
		t.Fatalf("%d cleanups registered, want 1 (Close)", len(rec.cleanups))
	}
	r.Close()
	rec.cleanups[0]()
	r.Close()
	if errs := rec.errors(); len(errs) != 1 || !strings.Contains(errs[0], "disk on fire") {
		t.Fatalf("reported %q, want the Serve error once", errs)
	}
}

// A Serve that does not return within the shutdown timeout and the margin
// fails the test.
func TestCloseReportsServeThatDoesNotReturn(t *testing.T) {
	rec := &recTB{TB: t}
	srv := servable{release: make(chan struct{})}
	r := Start(rec, srv, Listen(t, "127.0.0.1:0"), -stopMargin+100*time.Millisecond)
	start := time.Now()
	r.Close()
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Close waited %v, want about 100ms", d)
	}
	close(srv.release)
	if err := <-r.done; err != nil { // the Serve goroutine ends
		t.Fatal(err)
	}
	if errs := rec.errors(); len(errs) != 1 || !strings.Contains(errs[0], "did not return") {
		t.Fatalf("reported %q, want that Serve did not return", errs)
	}
}

// A clean Serve reports nothing; the addresses name the listener.
func TestCloseCleanAndURLs(t *testing.T) {
	rec := &recTB{TB: t}
	srv := servable{release: make(chan struct{})}
	close(srv.release)
	ln := Listen(t, "127.0.0.1:0")
	addr := ln.Addr().String()
	r := Start(rec, srv, ln, time.Second)
	if r.Addr() != addr || r.URL() != "http://"+addr || r.WSURL() != "ws://"+addr+"/ws" {
		t.Errorf("addr %s, URL %s, WSURL %s (listener on %s)", r.Addr(), r.URL(), r.WSURL(), addr)
	}
	r.Close()
	if errs := rec.errors(); len(errs) != 0 {
		t.Fatalf("reported %q", errs)
	}
}

// Listen waits for an address in use to be free (a restart on the port of
// a server being stopped).
func TestListenRetriesAddressInUse(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := held.Addr().String()
	timer := time.AfterFunc(300*time.Millisecond, func() { held.Close() })
	defer timer.Stop()
	start := time.Now()
	ln := Listen(t, addr)
	defer ln.Close()
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Fatalf("listened on %s after %v, while it was still held", addr, d)
	}
}

func TestReaderFromEnvironment(t *testing.T) {
	t.Setenv(ReaderEnv, " goroutine ")
	if r := Reader(); r != "goroutine" {
		t.Errorf("Reader() = %q, want goroutine", r)
	}
	t.Setenv(ReaderEnv, "")
	if r := Reader(); r != "" {
		t.Errorf("Reader() = %q without %s", r, ReaderEnv)
	}
}
