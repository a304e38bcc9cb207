package server

import (
	"encoding/json"
	"errors"
	"io/fs"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"path"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"imload/mux"
	"imload/server/engine"
	workerjs "imload/worker-js"
)

// Handler returns the HTTP handler of the server's public listener: /ws,
// /lbs, /healthz and the browser files at /; and, without an admin
// listener (Config.AdminAddr), the operator's endpoints too (see
// AdminHandler).
func (s *Server) Handler() http.Handler {
	m := http.NewServeMux()
	m.HandleFunc("GET /ws", s.handleWS)
	m.HandleFunc("GET /lbs", s.handleLBS)
	m.HandleFunc("GET /healthz", s.handleHealthz)
	if s.cfg.AdminAddr == "" {
		s.adminRoutes(m)
	}
	static := s.cfg.Static
	if static == nil {
		static = workerjs.FS()
	}
	files := http.FileServerFS(static)
	m.Handle("GET /", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !servable(static, r.URL.Path) {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Content-Security-Policy", "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; style-src 'self'; script-src 'self'; worker-src 'self'")
		h.Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	}))
	return m
}

// AdminHandler returns the handler of the operator's endpoints: /stats,
// /metrics, /healthz and, with Config.Pprof, /debug/pprof/. They are
// served on the admin listener (Config.AdminAddr), or on the public one
// without it.
func (s *Server) AdminHandler() http.Handler {
	m := http.NewServeMux()
	m.HandleFunc("GET /healthz", s.handleHealthz)
	s.adminRoutes(m)
	return m
}

// adminRoutes adds the operator's endpoints to m.
func (s *Server) adminRoutes(m *http.ServeMux) {
	m.HandleFunc("GET /stats", s.handleStats)
	m.Handle("GET /metrics", promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{}))
	if s.cfg.Pprof {
		m.HandleFunc("GET /debug/pprof/", pprof.Index)
		m.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		m.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		m.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		m.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
}

// handleHealthz answers ok while the server can order new messages.
func (s *Server) handleHealthz(w http.ResponseWriter, _ *http.Request) {
	if s.shuttingDown.Load() {
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	if err := s.engine.Health(); err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	w.Write([]byte("ok\n"))
}

// servable reports whether the file server may answer urlPath: anything
// but a directory without an index.html, which http.FileServer would list
// (the layout of the served files is nobody's business).
func servable(fsys fs.FS, urlPath string) bool {
	name := strings.TrimPrefix(path.Clean("/"+urlPath), "/")
	if name == "" {
		name = "."
	}
	st, err := fs.Stat(fsys, name)
	if err != nil || !st.IsDir() {
		return true // a file, or the file server's own 404
	}
	st, err = fs.Stat(fsys, path.Join(name, "index.html"))
	return err == nil && !st.IsDir()
}

// acceptWarnEvery is the most often accept errors are logged: a storm of
// them (out of descriptors, every client retrying) makes one line a
// second, with the count of those not logged since.
const acceptWarnEvery = time.Second

// watchAccept wraps ln so that its accept errors are counted
// (imload_accept_errors_total, accept_errors in /stats) and logged at
// warn. http.Server retries temporary ones (EMFILE is one) after a short
// back-off, and logs them only to its ErrorLog, at debug here.
func (s *Server) watchAccept(ln net.Listener) net.Listener {
	return &acceptWatcher{Listener: ln, srv: s}
}

type acceptWatcher struct {
	net.Listener
	srv *Server
	// lastWarn is when the last warning was logged (Unix ns); unlogged
	// counts the errors since.
	lastWarn atomic.Int64
	unlogged atomic.Int64
}

func (l *acceptWatcher) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil && !errors.Is(err, net.ErrClosed) {
		l.failed(err)
	}
	return nc, err
}

func (l *acceptWatcher) failed(err error) {
	l.srv.counters.acceptErrors.Add(1)
	n := l.unlogged.Add(1)
	now := time.Now().UnixNano()
	last := l.lastWarn.Load()
	if now-last < int64(acceptWarnEvery) || !l.lastWarn.CompareAndSwap(last, now) {
		return
	}
	l.unlogged.Add(-n)
	args := []any{"err", err, "errors", n, "total", l.srv.counters.acceptErrors.Load()}
	if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
		args = append(args, "hint", "out of file descriptors: raise the open-files limit (ulimit -n) or lower the connections")
	}
	l.srv.logger.Warn("cannot accept connections", args...)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func (s *Server) handleStats(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, s.Stats())
}

// LBS is the body of /lbs: the addresses a client may connect to, best first.
type LBS struct {
	Addrs []string `json:"addrs"`
}

// handleLBS lists the engine's live nodes, best first (the local engine:
// this node, or --lbs); a node without an advertised address is this one,
// at the address the request used.
func (s *Server) handleLBS(w http.ResponseWriter, r *http.Request) {
	type answer struct {
		nodes []engine.Node
		err   error
	}
	ch := make(chan answer, 1)
	s.engine.Nodes(func(nodes []engine.Node, err error) { ch <- answer{nodes, err} })
	var a answer
	select {
	case a = <-ch:
	case <-r.Context().Done():
		return
	}
	if a.err != nil {
		http.Error(w, "node list unavailable: "+a.err.Error(), http.StatusServiceUnavailable)
		return
	}
	addrs := make([]string, 0, len(a.nodes))
	for _, n := range a.nodes {
		addr := n.Advertise
		if addr == "" {
			scheme := "ws"
			if r.TLS != nil {
				scheme = "wss"
			}
			addr = scheme + "://" + r.Host + "/ws"
		}
		addrs = append(addrs, addr)
	}
	// Readable from any page: the list is public (clients connect to it
	// anyway), and a browser whose page came from a node that died asks
	// the others for it (core/conn.js refetch).
	w.Header().Set("Access-Control-Allow-Origin", "*")
	writeJSON(w, LBS{Addrs: addrs})
}

// checkOrigin allows requests without Origin (not browsers), from the
// server's own host, from the hosts of the other nodes of its cluster
// (peers.go), and from the configured allow list.
func (s *Server) checkOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) || s.isPeer(u.Host) {
		return true
	}
	for _, o := range s.cfg.Origins {
		if o == "*" || strings.EqualFold(strings.TrimRight(o, "/"), origin) {
			return true
		}
	}
	s.logger.Info("refused WebSocket from another origin", "origin", origin, "host", r.Host)
	return false
}

func (s *Server) helloFrame(c *conn) []byte {
	l := s.cfg.Limits
	h := mux.Hello{
		Version:         mux.ProtocolVersion,
		Server:          "imload/" + s.cfg.Version,
		ConnID:          c.id,
		HeartbeatMS:     s.cfg.HeartbeatInterval.Milliseconds(),
		TimeoutMS:       s.cfg.HeartbeatTimeout.Milliseconds(),
		MaxMessage:      l.MaxMessageBytes,
		MaxFrames:       l.MaxFramesPerMsg,
		MaxText:         l.MaxTextBytes,
		MaxSessions:     l.MaxSessions,
		MaxRooms:        l.MaxRoomsPerSession,
		MaxHistory:      l.MaxHistory,
		HistoryMax:      s.cfg.HistoryMax,
		HistoryAgeMS:    s.cfg.HistoryAge.Milliseconds(),
		MaxConnsPerUser: s.cfg.MaxConnsPerUser,
		RateLimit:       s.cfg.RateLimit,
		RateBurst:       s.cfg.RateBurst,
	}
	if s.auth != nil {
		h.Auth, h.TokenExpiringMS = AuthJWT, s.cfg.TokenExpiringAhead.Milliseconds()
	}
	if s.cfg.DMHistoryMax > 0 {
		h.DMHistoryMax, h.DMHistoryAgeMS = s.cfg.DMHistoryMax, s.cfg.DMHistoryAge.Milliseconds()
	}
	s.limitsHello(&h, c)
	return mux.AppendHello(nil, h)
}
