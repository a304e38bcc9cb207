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
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"imload/mux"
	"imload/server/auth"
	"imload/server/engine"
)

// Server is an imload chat server: one node. What the nodes of a
// deployment share is its engine's (package engine; the local engine, one
// node on its own, is the only one yet). Create it with New, run it with
// Serve.
type Server struct {
	cfg      Config
	logger   *slog.Logger
	engine   engine.Engine
	node     string // this node's name for the engine
	hub      *hub
	ips      *ipTable         // per-address limits (limits.go)
	presence *presenceFlusher // pushes the coalesced presence changes of rooms (presence.go)
	counters counters
	registry *prometheus.Registry
	upgrader websocket.Upgrader
	started  time.Time

	nextConnID   atomic.Uint64
	shuttingDown atomic.Bool

	poller  poller         // nil: a goroutine per connection
	live    sync.WaitGroup // one per open connection
	readers sync.WaitGroup // goroutines reading connections
	writers sync.WaitGroup // writer goroutines (alive only while a queue is not empty)
	async   sync.WaitGroup // short-lived helpers (closing slow consumers, kicks)
	work    chan work      // messages for the workers
	workers sync.WaitGroup
	// jobs carries the engine's work to the workers: answers that came
	// late (await.go), rooms made ready (release.go). stopJobs is closed
	// once no connection is left, before the workers stop, so that a late
	// answer or commit does not wait for them.
	jobs       chan job
	stopJobs   chan struct{}
	readyMu    sync.Mutex
	readyRooms []*room // rooms made ready, for the next job.ready
	// sinkCalls counts the workers inside an engine call; sinkConns are
	// the connections Sink calls queued to meanwhile (await.go).
	sinkCalls atomic.Int32
	sinkMu    sync.Mutex
	sinkConns []*conn
	pacer     *pacer      // writes connections held back by their write pace
	queues    queueArrays // recycled queue arrays

	heartbeats heartbeats // finds silent connections (heartbeat.go)
	peers      peerHosts  // the hosts of the cluster's nodes, for the origin check (peers.go)

	auth     *auth.Verifier // verifies tokens (--auth jwt); nil: none
	expiries expiries       // the sessions' token expiries (expiry.go)
	adminLn  net.Listener   // --admin-addr's; nil: none
	apiLn    net.Listener   // --api-addr's; nil: none

	serveOnce sync.Once
	closeOnce sync.Once
}

// New checks cfg, starts the engine (the local one: it opens the history
// store and loads the rooms it holds) and opens the rooms it retained.
// Serve closes the engine when it returns; call Close instead if Serve is
// never called.
func New(cfg Config) (*Server, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("server: invalid configuration: %w", err)
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := &Server{cfg: cfg, logger: logger, started: time.Now(), node: nodeID(&cfg),
		jobs: make(chan job, 256), stopJobs: make(chan struct{})}
	if err := s.listenExtra(); err != nil {
		return nil, err
	}
	if cfg.Auth == AuthJWT {
		v, err := auth.New(auth.Config{
			HMACSecret: cfg.JWTHMACSecret, PublicKeys: cfg.JWTPublicKeys, JWKSURL: cfg.JWKSURL,
			JWKSRefresh: cfg.JWKSRefresh, JWKSMinRefresh: cfg.JWKSMinRefresh, MaxWaiting: cfg.JWKSMaxWaiting,
			Audience: cfg.JWTAudience, Issuer: cfg.JWTIssuer, Logger: logger,
		})
		if err != nil {
			s.closeExtra()
			return nil, fmt.Errorf("server: %w", err)
		}
		s.auth = v
	}
	// Connection ids increase on a node from a random start (20 random
	// bits above 32 bits of count): a node restarted under the same id
	// (--node-id) does not reuse its predecessor's ids, which other nodes
	// may still name for a while (a kick through Redis, a session entry
	// that has not expired). Below 2^53, so that every JSON reader (a
	// browser's) reads them exactly.
	s.nextConnID.Store(uint64(rand.Uint32()&(1<<20-1)) << 32)
	eng, err := s.newEngine()
	if err != nil {
		s.closeAuth()
		s.closeExtra()
		return nil, err
	}
	s.engine = eng
	s.hub = newHub(&s.cfg, eng, &s.counters)
	s.ips = newIPTable(&s.cfg)
	var retained []string
	eng.Retained(func(name string) { retained = append(retained, name) })
	if err := eng.Start(context.Background(), nodeSink{s}); err != nil {
		eng.Close()
		s.closeAuth()
		s.closeExtra()
		return nil, fmt.Errorf("server: start the engine: %w", err)
	}
	s.openRetained(retained)
	if cfg.Reader != ReaderGoroutine {
		p, err := newPoller(s.onReady)
		switch {
		case err == nil:
			s.poller = p
		case cfg.Reader == ReaderEpoll:
			eng.Close()
			s.closeAuth()
			s.closeExtra()
			return nil, fmt.Errorf("server: --reader epoll: %w", err)
		default:
			logger.Info("reading with a goroutine per connection", "reason", err)
		}
	}
	s.registry = s.newRegistry()
	s.pacer = newPacer(s)
	s.presence = newPresenceFlusher(s)
	nworkers := max(4, 2*runtime.GOMAXPROCS(0))
	s.work = make(chan work, nworkers) // its length tells a worker that messages wait
	for range nworkers {
		s.workers.Add(1)
		go s.runWorker()
	}
	s.upgrader = websocket.Upgrader{
		// gorilla only does the handshake: it adopts the HTTP server's
		// read buffer and takes a write buffer from the pool only for the
		// handshake's response, and the Conn it makes is dropped.
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
	// The HTTP server's own log says little an operator acts on (client
	// TLS or protocol noise): debug. Accept errors, which do matter, are
	// logged at warn and counted by the listener wrapper (http.go).
	httpSrv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: s.cfg.HTTPHeaderTimeout,
		IdleTimeout:       s.cfg.HTTPIdleTimeout,
		MaxHeaderBytes:    s.cfg.HTTPMaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.logger.Handler(), slog.LevelDebug),
	}
	ln = s.watchAccept(ln)
	// The janitor and the HTTP server live and die with serve.
	var group errgroup.Group
	janitorCtx, stopJanitor := context.WithCancel(context.Background())
	group.Go(func() error { s.runJanitor(janitorCtx); return nil })
	errc := make(chan error, 1)
	group.Go(func() error { errc <- httpSrv.Serve(ln); return nil })
	extra := s.extraServers()
	for _, x := range extra {
		group.Go(func() error { s.serveExtra(x); return nil })
	}

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
	for _, x := range extra {
		_ = x.srv.Shutdown(shutCtx) // the API's requests in flight end first
	}
	if serveErr == nil {
		<-errc
	}
	s.goAwayAll(shutCtx)
	stopJanitor()
	_ = group.Wait()
	if err := s.Close(); err != nil && serveErr == nil {
		serveErr = err
	}
	return serveErr
}

// goAwayAll tells every connection to go away, waits for the read loops to
// end until ctx is done, then closes what is left.
func (s *Server) goAwayAll(ctx context.Context) {
	for _, c := range s.hub.allConns() {
		c.goAway(mux.GoAwayShutdown, s.retryHint(), websocket.CloseGoingAway)
	}
	done := make(chan struct{})
	go func() { s.live.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		for _, c := range s.hub.allConns() {
			c.closeNow()
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
		s.live.Wait()
		if s.poller != nil {
			s.poller.close()
		}
		s.readers.Wait()
		// No connection is left: what the engine answers or commits from
		// here on has nobody to go to.
		close(s.stopJobs)
		close(s.work)
		s.workers.Wait()
		s.presence.close()
		s.pacer.close()
		s.writers.Wait()
		s.async.Wait()
		s.closeAuth()
		s.closeExtra()
		if cerr := s.engine.Close(); cerr != nil {
			err = fmt.Errorf("server: close the engine: %w", cerr)
		}
	})
	return err
}

// runJanitor closes silent connections (within hbTick of the heartbeat
// timeout), expires history and drops the rooms with no member here and
// an idle log (every minute at most), and pushes token_expiring to the
// sessions whose token expires soon and detaches those whose token has
// expired (within tokenTick).
func (s *Server) runJanitor(ctx context.Context) {
	hb := time.NewTicker(hbTick(s.cfg.HeartbeatTimeout))
	defer hb.Stop()
	rooms := time.NewTicker(min(time.Minute, max(s.cfg.HistoryAge/10, time.Second)))
	defer rooms.Stop()
	var tokens <-chan time.Time // nil without tokens: never ready
	if s.auth != nil {
		t := time.NewTicker(tokenTick)
		defer t.Stop()
		tokens = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-hb.C:
			s.sweepHeartbeats(now)
			s.notePeers(now)
		case now := <-rooms.C:
			s.hub.sweep(now)
		case now := <-tokens:
			s.sweepTokens(now.UnixNano())
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

// kickAll kicks this node's connections of kicks (the engine tells the
// other nodes about theirs).
func (s *Server) kickAll(kicks []engine.ConnRef, user string) {
	for _, k := range kicks {
		if k.Node != s.node {
			continue
		}
		if c := s.hub.userConn(user, k.ID); c != nil {
			s.kick(c, user)
		}
	}
}

// kick tells c to go away because user has too many connections.
func (s *Server) kick(c *conn, user string) {
	if c == nil {
		return
	}
	s.counters.kicked.Add(1)
	s.logger.Info("too many connections for user: closing the oldest", "user", user, "conn", c.id)
	c.goAway(mux.GoAwayTooManyConns, s.retryHint(), closeTooManyConns)
}

// handleWS upgrades the request and starts reading the connection.
func (s *Server) handleWS(w http.ResponseWriter, r *http.Request) {
	if s.shuttingDown.Load() {
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	ip, err := s.ips.admit(r)
	if err != nil {
		s.refuseConn(w, err)
		return
	}
	// The connection counts as live from before the upgrade, while the
	// HTTP server still tracks the request: Shutdown waits for it until
	// the upgrade hijacks the connection, so the shutdown's wait for live
	// connections (goAwayAll) cannot begin before this Add. Counted after
	// the upgrade, a connection whose client had its 101 and left could be
	// added while (or after) that wait saw none: a WaitGroup misuse the
	// race detector reported when a test ended right after a dial.
	s.live.Add(1)
	ws, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		s.live.Done()
		s.ips.release(ip)
		return // the upgrader has answered with an HTTP error
	}
	// From here on the server reads and writes the frames itself (read.go,
	// write.go): gorilla's Conn, with its buffers, is dropped. gorilla
	// refuses a client that sent data before the handshake completed, so
	// nothing is left in its read buffer.
	c := &conn{id: s.nextConnID.Add(1), srv: s, mode: modeUnknown, ip: ip, since: time.Now().UnixNano()}
	if !s.ownSocket(c, ws.NetConn()) {
		c.nc = ws.NetConn()
		c.raw = rawConnOf(c.nc)
	}
	c.in.Limit, c.in.Masked = s.cfg.Limits.MaxMessageBytes, true
	c.lastRead.Store(time.Now().UnixNano())
	s.heartbeats.add(c, s.cfg.HeartbeatTimeout)
	s.counters.physical.Add(1)
	s.counters.byMode[modeUnknown].Add(1)
	s.hub.addConn(c)
	if s.shuttingDown.Load() { // raced with shutdown: goAwayAll may have missed it
		c.goAway(mux.GoAwayShutdown, s.retryHint(), websocket.CloseGoingAway)
	} else {
		c.enqueue(s.helloFrame(c))
	}
	if c.nc == nil {
		if err := s.poller.add(c); err != nil {
			s.logger.Warn("cannot watch a connection", "err", err)
			c.closeNow()
		}
		return // this goroutine, with its request and grown stack, ends here
	}
	// The read loop runs on a new goroutine so that this one, with the
	// request, the response writer and a stack grown by the HTTP exchange,
	// is released.
	s.readers.Add(1)
	go func() {
		defer s.readers.Done()
		c.readLoop()
	}()
}

// ownSocket takes the socket of nc from the runtime for c (epoll mode; see
// rawSock). It reports false when c is to keep nc: without epoll, or if
// the socket cannot be taken.
func (s *Server) ownSocket(c *conn, nc net.Conn) bool {
	if s.poller == nil {
		return false
	}
	fd, err := detachSocket(nc)
	if err != nil {
		s.logger.Warn("socket left to the runtime", "err", err)
		return false
	}
	c.sock.fd = int32(fd)
	return true
}

// onReady is the poller's callback: a worker reads the connection (see
// runWorker). When every worker is busy the poller waits here, and the
// kernel keeps the readiness of the connections behind.
func (s *Server) onReady(c *conn) {
	s.work <- work{c: c}
}

// afterFunc runs f after d on a goroutine that Close waits for.
func (s *Server) afterFunc(d time.Duration, f func()) {
	s.async.Add(1)
	time.AfterFunc(d, func() {
		defer s.async.Done()
		f()
	})
}

// sweepHeartbeats closes connections silent for the heartbeat timeout or
// longer: 4002 for an open one; one already closing whose close has not
// ended it by then is closed at once. Both read modes rely on it. It looks
// only at the connections due (see heartbeats).
func (s *Server) sweepHeartbeats(now time.Time) {
	for _, c := range s.heartbeats.sweep(now, s.cfg.HeartbeatTimeout) {
		if c.closing.Load() {
			c.closeNow()
			continue
		}
		s.counters.hbTimeouts.Add(1)
		c.abort(closeHeartbeat, "heartbeat timeout")
	}
}
