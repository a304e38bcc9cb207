// Package redistest runs a real redis-server for tests: a child process of
// the test binary, started from PATH on a free loopback port in a temporary
// directory, with no persistence (--save "" --appendonly no), and stopped
// when the test (or the test package) ends.
//
// Two ways to get one:
//
//   - Shared(t) returns the package's shared server, started on first use
//     and stopped when the package's tests end. It needs the package's
//     TestMain to run the tests through WithShared:
//
//     func TestMain(m *testing.M) { goleak.VerifyTestMain(redistest.WithShared(m)) }
//
//   - Start(t) starts a server of the test's own, stopped when the test
//     ends: for a test that kills it (Kill, "Redis unreachable") or restarts
//     it (Restart, "redis-server restarted without persistence").
//
// Tests that share a server keep out of each other's keys by taking a
// database index each: Server.DB(t) leases an empty database (FLUSHDB) for
// the test and gives it back when the test ends; its URL
// (redis://127.0.0.1:PORT/N) is what the code under test is given. A
// database index separates keys only: Redis pub/sub channels, sharded or
// not, are global to the server (a PUBLISH from database 3 reaches a
// subscriber connected to database 5). Tests that run at the same time on
// one server and subscribe must therefore also name their channels apart:
// DB.Prefix is a string unique to the lease for that (the engine is expected
// to take a key and channel prefix). Tests that run one after the other, as
// most do, need nothing more: the subscriptions of a finished test are gone
// with its connections.
//
// When redis-server is not on PATH, Start and Shared skip the test, saying
// so once on stderr, unless IMLOAD_REQUIRE_REDIS=1 (as CI sets), when they
// fail it. A server that is installed but does not start always fails the
// test, with the tail of its log.
//
// On Linux the child gets SIGKILL if the test binary dies (Pdeathsig), and
// it is always reaped: each running server owns one goroutine, which waits
// for the process and ends with it, so a package checking for leaked
// goroutines (goleak) sees none once its servers are stopped.
package redistest

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// RequireEnv is the environment variable that turns a missing redis-server
// from a skip into a failure when set to "1" (CI sets it).
const RequireEnv = "IMLOAD_REQUIRE_REDIS"

// Databases is the number of database indexes each server is started with
// (--databases), and so the most leases (Server.DB) one server can have out
// at once.
const Databases = 64

// ReadyTimeout bounds the wait for a started server to answer PING.
const ReadyTimeout = 10 * time.Second

// stopGrace is how long Stop waits for the server to exit on SIGTERM
// before it kills it.
const stopGrace = 5 * time.Second

// Server is a redis-server child process on a fixed loopback port. Its
// methods are safe for concurrent use; Kill, Restart and Stop return errors
// rather than failing a test, so they may be called from any goroutine.
type Server struct {
	bin   string
	dir   string
	port  int
	extra []string

	mu   sync.Mutex
	proc *proc // the running process, nil once stopped or killed
	dbs  [Databases]bool
	seq  int // leases made, for DB.Prefix
}

// proc is one run of redis-server.
type proc struct {
	cmd  *exec.Cmd
	log  string        // path of its stdout and stderr
	done chan struct{} // closed once it has exited and been reaped
}

// errMissing wraps the failure to find redis-server on PATH.
var errMissing = errors.New("redis-server not found on PATH")

// lookPath finds redis-server on PATH.
func lookPath() (string, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return "", fmt.Errorf("%w (Debian: apt-get install redis-server)", errMissing)
	}
	return bin, nil
}

// missingOnce makes the "skipped" note go to stderr once per test binary,
// where `go test` without -v shows it; every skipped test still says why.
var missingOnce sync.Once

// skipOrFail skips tb for a missing redis-server, or fails it when
// RequireEnv is set. Any other error fails it.
func skipOrFail(tb testing.TB, err error) {
	tb.Helper()
	if !errors.Is(err, errMissing) {
		tb.Fatalf("redistest: %v", err)
	}
	msg := fmt.Sprintf("SKIPPED: the test needs a real redis-server: %v; set %s=1 to make this a failure", err, RequireEnv)
	if os.Getenv(RequireEnv) == "1" {
		tb.Fatalf("redistest: %s=1 but %v", RequireEnv, err)
	}
	missingOnce.Do(func() { fmt.Fprintln(os.Stderr, "redistest: "+msg) })
	tb.Skip(msg)
}

// Start starts a redis-server for tb alone, on a free loopback port in a
// directory of tb.TempDir(), and stops it when tb ends. extra arguments are
// added to its command line (for example "--maxmemory", "1mb"). It skips
// or fails tb as the package doc says when redis-server is missing, and
// fails tb when it does not start.
func Start(tb testing.TB, extra ...string) *Server {
	tb.Helper()
	bin, err := lookPath()
	if err != nil {
		skipOrFail(tb, err)
	}
	s := &Server{bin: bin, dir: tb.TempDir(), extra: extra}
	if err := s.startFree(); err != nil {
		tb.Fatalf("redistest: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.Stop(); err != nil {
			tb.Errorf("redistest: stop: %v", err)
		}
	})
	return s
}

// startFree starts the server on a free port, trying again on another port
// when the one it was given was taken in between.
func (s *Server) startFree() error {
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		var port int
		if port, err = freePort(); err != nil {
			return err
		}
		s.port = port
		s.mu.Lock()
		err = s.start()
		s.mu.Unlock()
		if err == nil || !errors.Is(err, errPortTaken) {
			return err
		}
	}
	return err
}

// freePort returns a loopback TCP port nobody listened on a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// errPortTaken: the server exited, or another one answered, because the
// port was taken.
var errPortTaken = errors.New("port taken")

// start runs redis-server on s.port and waits until it answers PING. s.mu
// is held.
func (s *Server) start() error {
	if s.proc != nil {
		return errors.New("already running")
	}
	logPath := filepath.Join(s.dir, "redis-"+strconv.Itoa(s.port)+".log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	args := []string{
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", s.dir,
		"--databases", strconv.Itoa(Databases),
		"--daemonize", "no",
		"--logfile", "", // to stdout, which is the log file
	}
	args = append(args, s.extra...)
	cmd := exec.Command(s.bin, args...)
	cmd.Dir = s.dir
	cmd.Stdout, cmd.Stderr = logf, logf // files: no copying goroutines
	cmd.SysProcAttr = procAttr()
	err = cmd.Start()
	logf.Close() // the child has its own descriptor
	if err != nil {
		return fmt.Errorf("start %s: %w", s.bin, err)
	}
	p := &proc{cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	if err := p.waitReady(s.Addr(), ReadyTimeout); err != nil {
		p.kill()
		tail := logTail(logPath, 20)
		if strings.Contains(tail, "Address already in use") || errors.Is(err, errPortTaken) {
			return fmt.Errorf("%s on port %d: %w: %v\n%s", s.bin, s.port, errPortTaken, err, tail)
		}
		return fmt.Errorf("%s on port %d did not start: %v; the end of its log (%s):\n%s", s.bin, s.port, err, logPath, tail)
	}
	s.proc = p
	return nil
}

// waitReady polls addr with PING until the server answers, checking that
// the server answering is this process (INFO's process_id), not another
// one that holds the port.
func (p *proc) waitReady(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		select {
		case <-p.done:
			return fmt.Errorf("it exited: %v", p.cmd.ProcessState)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no answer to PING within %v: %v", timeout, last)
		}
		reply, err := doTimeout(addr, -1, 300*time.Millisecond, "PING")
		if err == nil && reply == "PONG" {
			info, err := doTimeout(addr, -1, time.Second, "INFO", "server")
			if err != nil {
				return fmt.Errorf("INFO server: %w", err)
			}
			want := "process_id:" + strconv.Itoa(p.cmd.Process.Pid) + "\r\n"
			if s, _ := info.(string); !strings.Contains(s, want) {
				return fmt.Errorf("%w: a server that is not ours answers there", errPortTaken)
			}
			return nil
		}
		if err == nil {
			err = fmt.Errorf("PING answered %v", reply)
		}
		last = err
		time.Sleep(10 * time.Millisecond)
	}
}

// kill sends SIGKILL and waits until the process is reaped.
func (p *proc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// logTail returns the last n lines of the file at path.
func logTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Addr returns the server's address, "127.0.0.1:PORT". It stays the same
// across Kill and Restart.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// Port returns the server's TCP port.
func (s *Server) Port() int { return s.port }

// URL returns redis://127.0.0.1:PORT/0, the server's database 0. Tests
// that share the server should use a DB of their own instead (Server.DB).
func (s *Server) URL() string { return s.urlDB(0) }

func (s *Server) urlDB(i int) string { return "redis://" + s.Addr() + "/" + strconv.Itoa(i) }

// Running reports whether the server process is up (started and neither
// killed nor stopped since).
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return false
	}
	select {
	case <-s.proc.done:
		return false
	default:
		return true
	}
}

// Pid returns the process id of the running server, or 0 when it is not
// running.
func (s *Server) Pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return 0
	}
	return s.proc.cmd.Process.Pid
}

// Log returns the last n lines of the current (or last) run's log.
func (s *Server) Log(n int) string {
	return logTail(filepath.Join(s.dir, "redis-"+strconv.Itoa(s.port)+".log"), n)
}

// Kill sends SIGKILL to the server and waits until it has exited: its
// clients' connections are reset and new ones are refused, as when Redis
// dies. Killing a server that is not running does nothing.
func (s *Server) Kill() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		s.proc.kill()
		s.proc = nil
	}
	return nil
}

// Restart kills the server if it runs, then starts it again on the same
// port with empty data, as a redis-server restarted without persistence
// comes back. It returns once the new one answers PING. Leases (DB) stay
// valid; their databases are empty.
func (s *Server) Restart() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		s.proc.kill()
		s.proc = nil
	}
	return s.start()
}

// Stop stops the server (SIGTERM, then SIGKILL if it has not exited within
// 5 s) and waits until it has exited. Stopping a server that is not running
// does nothing. Start's and Shared's servers are stopped for you.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.proc
	if p == nil {
		return nil
	}
	s.proc = nil
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(stopGrace):
		p.kill()
		return fmt.Errorf("redis-server on port %d ignored SIGTERM for %v; killed", s.port, stopGrace)
	}
}

// Do sends one command to database 0 of the server on a new connection
// and returns the reply (see DB.Do for its types).
func (s *Server) Do(args ...string) (any, error) { return do(s.Addr(), -1, args...) }

// FlushAll empties every database of the server (FLUSHALL). Tests that
// lease a DB need not call it.
func (s *Server) FlushAll() error {
	_, err := s.Do("FLUSHALL")
	return err
}

// DB is one database index of a Server, leased to one test by Server.DB.
type DB struct {
	// Server is the server the database is on.
	Server *Server
	// Index is the database index, 0 ≤ Index < Databases.
	Index int
	// URL is redis://127.0.0.1:PORT/Index, to give the code under test.
	URL string
	// Prefix is unique among the leases of the server ("t<N>:"), for tests
	// that run at the same time to name their pub/sub channels apart
	// (channels are not per database).
	Prefix string
}

// DB leases a database of s to tb: it picks an index no running test has,
// empties it (FLUSHDB), and gives it back when tb ends. It fails tb when
// all Databases are out or the server does not answer.
func (s *Server) DB(tb testing.TB) DB {
	tb.Helper()
	s.mu.Lock()
	idx := -1
	for i, used := range s.dbs {
		if !used {
			idx = i
			break
		}
	}
	if idx >= 0 {
		s.dbs[idx] = true
		s.seq++
	}
	seq := s.seq
	s.mu.Unlock()
	if idx < 0 {
		tb.Fatalf("redistest: all %d databases of %s are leased", Databases, s.Addr())
	}
	tb.Cleanup(func() {
		s.mu.Lock()
		s.dbs[idx] = false
		s.mu.Unlock()
	})
	db := DB{Server: s, Index: idx, URL: s.urlDB(idx), Prefix: "t" + strconv.Itoa(seq) + ":"}
	if _, err := db.Do("FLUSHDB"); err != nil {
		tb.Fatalf("redistest: FLUSHDB on %s: %v", db.URL, err)
	}
	return db
}

// Do sends one command to the database on a new connection (SELECT, then
// the command) and returns the reply: a string for a simple or bulk
// string, an int64 for an integer, nil for a null, []any for an array, and
// an error of type Error for an error reply. It is meant for tests to set
// up and inspect state without the client library the code under test
// uses.
func (db DB) Do(args ...string) (any, error) { return do(db.Server.Addr(), db.Index, args...) }

// Error is an error reply from Redis ("ERR unknown command ...").
type Error string

// Error returns the reply's text.
func (e Error) Error() string { return string(e) }

// do dials addr, selects database db (unless db < 0), sends args and
// reads the reply, within 5 s.
func do(addr string, db int, args ...string) (any, error) {
	return doTimeout(addr, db, 5*time.Second, args...)
}

// doTimeout is do within timeout.
func doTimeout(addr string, db int, timeout time.Duration, args ...string) (any, error) {
	if len(args) == 0 {
		return nil, errors.New("no command")
	}
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	var buf bytes.Buffer
	if db >= 0 {
		appendCommand(&buf, "SELECT", strconv.Itoa(db))
	}
	appendCommand(&buf, args...)
	if _, err := c.Write(buf.Bytes()); err != nil {
		return nil, err
	}
	r := newReader(c)
	if db >= 0 {
		v, err := r.read()
		if err != nil {
			return nil, err
		}
		if e, ok := v.(Error); ok {
			return nil, fmt.Errorf("SELECT %d: %w", db, e)
		}
	}
	v, err := r.read()
	if err != nil {
		return nil, err
	}
	if e, ok := v.(Error); ok {
		return nil, e
	}
	return v, nil
}
