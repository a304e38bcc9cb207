package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"imload/server/store"
)

// Server is an imload chat server. Create it with New, run it with Serve.
type Server struct {
	cfg      Config
	logger   *slog.Logger
	store    store.Store
	hub      *hub
	counters counters
	registry *prometheus.Registry
	upgrader websocket.Upgrader
	started  time.Time

	nextConnID   atomic.Uint64
	shuttingDown atomic.Bool

	readers sync.WaitGroup // one per connection read loop
	writers sync.WaitGroup // writer goroutines (alive only while a queue is not empty)
	async   sync.WaitGroup // short-lived helpers (closing slow consumers, kicks)

	serveOnce sync.Once
	closeOnce sync.Once
}

// New checks cfg, opens the history store and loads the rooms it holds.
// Serve closes the store when it returns; call Close instead if Serve is
// never called.
func New(cfg Config) (*Server, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("server: invalid configuration: %w", err)
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	var st store.Store
	if cfg.Memory {
		st = store.NewMemory()
	} else {
		var err error
		st, err = store.OpenSQLite(context.Background(), cfg.DataDir, store.Options{
			MaxMessages: cfg.HistoryMax, MaxAge: cfg.HistoryAge, Logger: logger,
		})
		if err != nil {
			return nil, fmt.Errorf("server: open history in %s: %w", filepath.Clean(cfg.DataDir), err)
		}
	}
	s := &Server{cfg: cfg, logger: logger, store: st, started: time.Now()}
	s.hub = newHub(&s.cfg, st, &s.counters)
	if err := s.hub.load(context.Background()); err != nil {
		st.Close()
		return nil, fmt.Errorf("server: load history: %w", err)
	}
	s.registry = s.newRegistry()
	s.upgrader = websocket.Upgrader{
		ReadBufferSize:   1024,
		WriteBufferSize:  4096,
		WriteBufferPool:  &sync.Pool{},
		HandshakeTimeout: 10 * time.Second,
		CheckOrigin:      s.checkOrigin,
	}
	return s, nil
}

// Serve accepts connections on ln until ctx ends, then shuts down
// gracefully: it stops accepting, sends every connection a goaway with a
// jittered retry hint, waits for them to close (at most ShutdownTimeout),
// flushes the history store and returns. Serve may be called once.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	err := errors.New("server: Serve called twice")
	s.serveOnce.Do(func() { err = s.serve(ctx, ln) })
	return err
}

func (s *Server) serve(ctx context.Context, ln net.Listener) error {
	httpSrv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.logger.Handler(), slog.LevelDebug),
	}
	janitorCtx, stopJanitor := context.WithCancel(context.Background())
	var janitor sync.WaitGroup
	janitor.Add(1)
	go func() {
		defer janitor.Done()
		s.runJanitor(janitorCtx)
	}()
	errc := make(chan error, 1)
	go func() { errc <- httpSrv.Serve(ln) }()

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
		serveErr = fmt.Errorf("server: serve on %s: %w", ln.Addr(), serveErr)
	}
	s.logger.Info("shutting down", "connections", s.hub.connCount())
	s.shuttingDown.Store(true)
	shutCtx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	_ = httpSrv.Shutdown(shutCtx) // stops the listener; hijacked sockets are ours
	if serveErr == nil {
		<-errc
	}
	s.goAwayAll(shutCtx)
	stopJanitor()
	janitor.Wait()
	if err := s.Close(); err != nil && serveErr == nil {
		serveErr = err
	}
	return serveErr
}

// goAwayAll tells every connection to go away, waits for the read loops to
// end until ctx is done, then closes what is left.
func (s *Server) goAwayAll(ctx context.Context) {
	for _, c := range s.hub.allConns() {
		c.goAway("shutdown", s.retryHint(), websocket.CloseGoingAway)
	}
	done := make(chan struct{})
	go func() { s.readers.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		for _, c := range s.hub.allConns() {
			c.ws.Close()
		}
		<-done
	}
}

func (s *Server) retryHint() time.Duration {
	lo, hi := s.cfg.GoAwayRetryMin, s.cfg.GoAwayRetryMax
	if hi <= lo {
		return lo
	}
	return lo + rand.N(hi-lo)
}

// Close releases the store after the connections are gone. Serve calls it;
// call it directly only for a Server that never served.
func (s *Server) Close() error {
	var err error
	s.closeOnce.Do(func() {
		s.readers.Wait()
		s.writers.Wait()
		s.async.Wait()
		if cerr := s.store.Close(); cerr != nil {
			err = fmt.Errorf("server: close history: %w", cerr)
		}
	})
	return err
}

func (s *Server) runJanitor(ctx context.Context) {
	every := min(time.Minute, max(s.cfg.HistoryAge/10, time.Second))
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			s.hub.sweep(now)
		}
	}
}

// goAsync runs f on a goroutine that Close waits for.
func (s *Server) goAsync(f func()) {
	s.async.Add(1)
	go func() {
		defer s.async.Done()
		f()
	}()
}

// kick tells c to go away because user has too many connections.
func (s *Server) kick(c *conn, user string) {
	if c == nil {
		return
	}
	s.counters.kicked.Add(1)
	s.logger.Info("too many connections for user: closing the oldest", "user", user, "conn", c.id)
	c.goAway("too_many_connections", s.retryHint(), closeTooManyConns)
}

// handleWS upgrades the request and runs the connection's read loop on this
// goroutine.
func (s *Server) handleWS(w http.ResponseWriter, r *http.Request) {
	if s.shuttingDown.Load() {
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	ws, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered with an HTTP error
	}
	s.readers.Add(1)
	defer s.readers.Done()
	c := &conn{id: s.nextConnID.Add(1), srv: s, ws: ws, created: time.Now(), mode: modeUnknown}
	s.counters.physical.Add(1)
	s.counters.byMode[modeUnknown].Add(1)
	s.hub.addConn(c)
	if s.shuttingDown.Load() { // raced with shutdown: goAwayAll may have missed it
		c.goAway("shutdown", s.retryHint(), websocket.CloseGoingAway)
	} else {
		c.enqueue(s.helloFrame(c), nil)
	}
	c.readLoop()
}
