package server

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
)

// The listeners beside the public one (the listener Serve is given):
// --admin-addr, the operator's endpoints (AdminHandler), and --api-addr,
// the server API (APIHandler). New listens on them, so that a port in use
// fails the start and a test can ask for port 0 and read the address
// (AdminAddr, APIAddr); Serve serves them with the public listener's
// bounds, and stops them with it.

// listenExtra listens on the admin and API addresses configured.
func (s *Server) listenExtra() error {
	for _, l := range []struct {
		addr string
		ln   *net.Listener
		what string
	}{{s.cfg.AdminAddr, &s.adminLn, "--admin-addr"}, {s.cfg.APIAddr, &s.apiLn, "--api-addr"}} {
		if l.addr == "" {
			continue
		}
		ln, err := net.Listen("tcp", l.addr)
		if err != nil {
			s.closeExtra()
			return fmt.Errorf("server: %s: %w", l.what, err)
		}
		*l.ln = ln
	}
	return nil
}

// closeExtra closes the admin and API listeners (when Serve never served
// them; else their http.Server closed them already).
func (s *Server) closeExtra() {
	for _, ln := range []net.Listener{s.adminLn, s.apiLn} {
		if ln != nil {
			_ = ln.Close()
		}
	}
}

// closeAuth stops the token verifier (its JWK Set fetches).
func (s *Server) closeAuth() {
	if s.auth != nil {
		s.auth.Close()
	}
}

// AdminAddr is the address of the admin listener (host:port; "": none).
func (s *Server) AdminAddr() string { return addrOf(s.adminLn) }

// APIAddr is the address of the server API's listener (host:port; "":
// none).
func (s *Server) APIAddr() string { return addrOf(s.apiLn) }

func addrOf(ln net.Listener) string {
	if ln == nil {
		return ""
	}
	return ln.Addr().String()
}

// extraServer is an HTTP server of a listener beside the public one.
type extraServer struct {
	srv  *http.Server
	ln   net.Listener
	what string
}

// extraServers makes the HTTP servers of the admin and API listeners,
// bounded as the public one.
func (s *Server) extraServers() []extraServer {
	var out []extraServer
	mk := func(ln net.Listener, h http.Handler, what string) {
		if ln == nil {
			return
		}
		out = append(out, extraServer{ln: ln, what: what, srv: &http.Server{
			Handler:           h,
			ReadHeaderTimeout: s.cfg.HTTPHeaderTimeout,
			IdleTimeout:       s.cfg.HTTPIdleTimeout,
			MaxHeaderBytes:    s.cfg.HTTPMaxHeaderBytes,
			ErrorLog:          slog.NewLogLogger(s.logger.Handler(), slog.LevelDebug),
		}})
	}
	mk(s.adminLn, s.AdminHandler(), "admin")
	mk(s.apiLn, s.APIHandler(), "api")
	return out
}

// serveExtra serves x until it is shut down.
func (s *Server) serveExtra(x extraServer) {
	if err := x.srv.Serve(x.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		s.logger.Warn("a listener stopped", "listener", x.what, "addr", x.ln.Addr().String(), "err", err)
	}
}
