package main

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"runtime/debug"

	"github.com/spf13/cobra"

	"imload/server"
	"imload/server/auth"
)

func init() { subcommands = append(subcommands, newServeCmd) }

func newServeCmd() *cobra.Command {
	cfg := server.DefaultConfig()
	var addr, logLevel string
	var gcPercent int
	var secretFile, publicKeyFile, apiKeyFile string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the chat server (one WebSocket per browser, many tabs per socket)",
		Long: `serve runs the imload chat server.

Browsers open ONE WebSocket at /ws and carry every tab over it as a logical
session: rooms, user names with colours, private messages (@name), history
with offsets for incremental sync, presence, heartbeats and acks. The demo
chat page and its SharedWorker script are served at /. Other endpoints:
/lbs (addresses clients may use), /stats (live counts as JSON), /metrics
(Prometheus), /healthz. With --admin-addr, /stats, /metrics and
/debug/pprof/ move to that listener; --api-addr serves the server API for
a team's backend (publish, dm, disconnect, presence, history,
connections: docs/api.md), guarded by --api-key-file.

Authentication: by default (--auth none) a session takes any free name,
first come. With --auth jwt a session attaches with a JSON Web Token whose
sub is its user name, verified with --jwt-hmac-secret-file (HS256),
--jwt-public-key-file (RS256/ES256, PEM) or --jwks-url (a JWK Set); its
optional rooms claim bounds the rooms it may join; it is told before the
token expires (token_expiring) and may refresh it; at the expiry it is
detached. imload token prints a token for local testing.

History is kept in SQLite under --data and survives restarts; --memory keeps
it in memory only. On SIGINT/SIGTERM the server tells every client to go away
and come back after a jittered delay, flushes the history and exits.

The first line on stdout is "listening on http://HOST:PORT" once the server
accepts connections (--addr 127.0.0.1:0 picks a free port). Logs go to
stderr.`,
		Example: `  imload serve                          # http://127.0.0.1:8080, history in ./imload-data
  imload serve --memory --addr :9000     # no files, all interfaces
  imload serve --auth jwt --jwt-hmac-secret-file secret.txt --admin-addr 127.0.0.1:9090
  imload serve --auth jwt --jwks-url https://id.example.com/.well-known/jwks.json \
      --jwt-audience chat --api-addr 10.0.0.1:8081 --api-key-file api-key.txt
  IMLOAD_MAX_CONNS_PER_USER=4 imload serve`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return fmt.Errorf("--log-level: %w", err)
			}
			if gcPercent < -1 || gcPercent == 0 {
				return fmt.Errorf("--gc-percent must be positive, or -1 to turn the GC off; got %d", gcPercent)
			}
			if cmd.Flags().Changed("gc-percent") || os.Getenv("GOGC") == "" {
				debug.SetGCPercent(gcPercent)
			}
			if cfg.Redis != "" && (cmd.Flags().Changed("data") || cmd.Flags().Changed("durability")) {
				return errors.New("--data and --durability do not apply with --redis: the history lives in Redis (drop them, or drop --redis to keep it in SQLite)")
			}
			if err := readAuthFiles(&cfg, secretFile, publicKeyFile, apiKeyFile); err != nil {
				return err
			}
			cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
			cfg.Version = buildVersion()
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return fmt.Errorf("listen on %s: %w", addr, err)
			}
			if cfg.Redis != "" {
				nodeDefaults(&cfg, ln.Addr())
			}
			srv, err := server.New(cfg)
			if err != nil {
				ln.Close()
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "listening on http://%s\n", ln.Addr())
			if a := srv.AdminAddr(); a != "" {
				fmt.Fprintf(cmd.OutOrStdout(), "admin on http://%s\n", a)
				cfg.Logger.Info("admin endpoints", "addr", a)
			}
			if a := srv.APIAddr(); a != "" {
				fmt.Fprintf(cmd.OutOrStdout(), "api on http://%s\n", a)
				cfg.Logger.Info("server API", "addr", a)
			}
			if cfg.Redis != "" {
				redisURL := cfg.Redis
				if u, err := url.Parse(redisURL); err == nil {
					redisURL = u.Redacted() // no password in the log
				}
				cfg.Logger.Info("serving", "addr", ln.Addr().String(), "redis", redisURL, "node", cfg.NodeID, "advertise", cfg.Advertise)
			} else {
				cfg.Logger.Info("serving", "addr", ln.Addr().String(), "memory", cfg.Memory, "data", cfg.DataDir)
			}
			return srv.Serve(cmd.Context(), ln)
		},
	}
	f := cmd.Flags()
	f.StringVar(&addr, "addr", "127.0.0.1:8080", "address to listen on (host:port; port 0 picks a free one)")
	f.StringVar(&cfg.DataDir, "data", cfg.DataDir, "directory for the history database (history.db); not with --redis")
	f.BoolVar(&cfg.Memory, "memory", false, "keep history in memory only (nothing is written; a restart forgets it)")
	f.StringVar(&cfg.Durability, "durability", cfg.Durability, "with --data (not with --redis): durable (a message is acknowledged and pushed only once committed and fsynced: no crash loses anything anyone saw), process (once committed, not fsynced: a crash of the process loses nothing; after a crash of the machine every room gets a new epoch) or relaxed (acknowledged at once, committed within 50 ms; after any unclean stop every room gets a new epoch)")
	f.IntVar(&cfg.StoreQueue, "store-queue", cfg.StoreQueue, "changes queued for the history store and not yet committed; beyond, sends are refused with 503 unavailable")
	f.StringSliceVar(&cfg.Origins, "origins", nil, "extra allowed browser origins for /ws, e.g. https://chat.example.com (default: the same host, and the other nodes of a --redis cluster; * allows any)")
	f.StringSliceVar(&cfg.LBS, "lbs", nil, "ws:// addresses served at /lbs for clients to use, best first (default: this server; with --redis: the live nodes)")
	f.StringVar(&cfg.Redis, "redis", "", "run as one of several nodes sharing rooms, names, presence and DMs through this Redis (redis://host:port/db, Redis 7+; docs/scaling.md); history lives in Redis, so --data and --durability do not apply")
	f.StringVar(&cfg.NodeID, "node-id", "", "with --redis: this node's id among the nodes (default: the host name and the port)")
	f.StringVar(&cfg.Advertise, "advertise", "", "with --redis: the ws:// URL clients reach this node at, listed at /lbs by every node (default: from --addr, ws://HOST:PORT/ws, the host name for an unspecified host)")
	f.DurationVar(&cfg.HeartbeatInterval, "heartbeat", cfg.HeartbeatInterval, "how often clients should ping (announced in hello)")
	f.DurationVar(&cfg.HeartbeatTimeout, "heartbeat-timeout", cfg.HeartbeatTimeout, "close a connection that sent nothing for this long")
	f.DurationVar(&cfg.WriteTimeout, "write-timeout", cfg.WriteTimeout, "close a connection (counted as a slow consumer) whose socket takes nothing for this long while the server has data for it")
	f.IntVar(&cfg.Limits.MaxMessageBytes, "max-message", cfg.Limits.MaxMessageBytes, "largest WebSocket message accepted, in bytes")
	f.IntVar(&cfg.Limits.MaxFramesPerMsg, "max-frames", cfg.Limits.MaxFramesPerMsg, "most protocol frames in one WebSocket message")
	f.IntVar(&cfg.Limits.MaxTextBytes, "max-text", cfg.Limits.MaxTextBytes, "longest chat message text, in bytes")
	f.IntVar(&cfg.Limits.MaxSessions, "max-sessions", cfg.Limits.MaxSessions, "most logical (tab) sessions on one connection")
	f.IntVar(&cfg.Limits.MaxHistory, "max-history-reply", cfg.Limits.MaxHistory, "most messages in one history or join reply")
	f.IntVar(&cfg.Limits.MaxRoomsPerSession, "max-rooms-per-session", cfg.Limits.MaxRoomsPerSession, "most rooms one session may be in")
	f.IntVar(&cfg.MaxRooms, "max-rooms", cfg.MaxRooms, "most rooms the server holds; a join that would create one more is refused with 503 too_many_rooms (0: no bound)")
	f.Float64Var(&cfg.RoomCreateRate, "room-create-rate", cfg.RoomCreateRate, "rooms per second one connection may create (by joining a room that does not exist); beyond, 429 room_rate_limited")
	f.IntVar(&cfg.RoomCreateBurst, "room-create-burst", cfg.RoomCreateBurst, "burst allowed above --room-create-rate")
	f.IntVar(&cfg.MaxQueueBytes, "max-queue", cfg.MaxQueueBytes, "outgoing bytes queued per connection before it is dropped as a slow consumer")
	f.IntVar(&cfg.MaxBacklog, "max-backlog", cfg.MaxBacklog, "bytes of commands a connection may send while one of its commands waits for the engine (multi-node) before it is closed with 4009")
	f.IntVar(&cfg.MaxFramesPerWrite, "merge-frames", cfg.MaxFramesPerWrite, "most frames merged into one outgoing WebSocket message")
	f.DurationVar(&cfg.WriteDelay, "write-delay", cfg.WriteDelay, "wait this long before writing, to merge more frames per message (0: write at once)")
	f.DurationVar(&cfg.WritePace, "write-pace", cfg.WritePace, "after a burst of --write-burst messages, write to a connection at most once per this long, merging the frames queued meanwhile (0: write at once)")
	f.IntVar(&cfg.WriteBurst, "write-burst", cfg.WriteBurst, "messages a connection may be written at once before --write-pace applies")
	f.IntVar(&cfg.MaxConnsPerUser, "max-conns-per-user", cfg.MaxConnsPerUser, "most physical connections per user name; the oldest is told to go away (0: no cap)")
	f.Float64Var(&cfg.RateLimit, "rate-limit", cfg.RateLimit, "messages per second one session may send (send and dm)")
	f.IntVar(&cfg.RateBurst, "rate-burst", cfg.RateBurst, "burst allowed above --rate-limit")
	f.Float64Var(&cfg.ConnRate, "conn-rate", cfg.ConnRate, "commands per second one connection may send, all its sessions and commands together (429 conn_rate_limited)")
	f.IntVar(&cfg.ConnBurst, "conn-burst", cfg.ConnBurst, "burst allowed above --conn-rate")
	f.Float64Var(&cfg.IPRate, "ip-rate", cfg.IPRate, "commands per second all connections from one source address may send together (429 ip_rate_limited; IPv6 counts per /64)")
	f.IntVar(&cfg.IPBurst, "ip-burst", cfg.IPBurst, "burst allowed above --ip-rate")
	f.IntVar(&cfg.MaxConnsPerIP, "max-conns-per-ip", cfg.MaxConnsPerIP, "most open connections from one source address; more get HTTP 429 before the upgrade (0: no cap)")
	f.StringSliceVar(&cfg.IPLimitExempt, "ip-limit-exempt", cfg.IPLimitExempt, "networks (CIDR) or addresses the per-address limits do not apply to (default loopback, where tests, the load generator and a local reverse proxy connect from; \"\" exempts none)")
	f.Float64Var(&cfg.DMInRate, "dm-in-rate", cfg.DMInRate, "private messages per second one user may receive, from all senders together (429 recipient_busy)")
	f.IntVar(&cfg.DMInBurst, "dm-in-burst", cfg.DMInBurst, "burst allowed above --dm-in-rate")
	f.DurationVar(&cfg.NameGrace, "name-grace", cfg.NameGrace, "how long a name stays reserved to its token after its last session goes (0: twice --heartbeat-timeout; negative: not reserved)")
	f.IntVar(&cfg.MaxReservedNames, "max-reserved-names", cfg.MaxReservedNames, "most names held for offline users; beyond it the oldest reservation ends early")
	f.DurationVar(&cfg.PresenceGrace, "presence-grace", cfg.PresenceGrace, "hold the leave of a user whose last session in a room went without a leave command (a tab closed or reloading, a connection lost, a node dead) this long: a browser back meanwhile, on any node, makes no leave and no join (0: none; at most the name grace)")
	f.DurationVar(&cfg.PresenceInterval, "presence-interval", cfg.PresenceInterval, "merge a room's join/leave pushes over this long (the first change of a quiet room goes out at once; 0: push every change at once)")
	f.IntVar(&cfg.HistoryMax, "history-max", cfg.HistoryMax, "messages kept per room")
	f.DurationVar(&cfg.HistoryAge, "history-age", cfg.HistoryAge, "how long messages are kept")
	f.IntVar(&cfg.DMHistoryMax, "dm-history-max", cfg.DMHistoryMax, "private messages kept per conversation (a pair of users), read with dm_history (0: none are kept, DMs are live only)")
	f.DurationVar(&cfg.DMHistoryAge, "dm-history-age", cfg.DMHistoryAge, "how long private messages are kept")
	f.IntVar(&cfg.DMMaxConversations, "dm-max-conversations", cfg.DMMaxConversations, "most conversations of private messages kept (per node, or per deployment with --redis); beyond, the least recently active one is dropped")
	f.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", cfg.ShutdownTimeout, "longest graceful shutdown")
	f.DurationVar(&cfg.HTTPIdleTimeout, "http-idle-timeout", cfg.HTTPIdleTimeout, "close an HTTP keep-alive connection idle this long between requests")
	f.DurationVar(&cfg.HTTPHeaderTimeout, "http-header-timeout", cfg.HTTPHeaderTimeout, "longest time to read an HTTP request's headers")
	f.IntVar(&cfg.HTTPMaxHeaderBytes, "http-max-header-bytes", cfg.HTTPMaxHeaderBytes, "largest HTTP request headers accepted, in bytes (431 beyond)")
	f.StringVar(&cfg.Reader, "reader", cfg.Reader, "how connections are read: epoll (no goroutine per idle connection, Linux), goroutine (one per connection), or auto")
	f.IntVar(&cfg.ReadBufferSize, "read-buffer", cfg.ReadBufferSize, "read buffer per connection with --reader goroutine, in bytes (epoll readers borrow a pooled one while reading)")
	f.IntVar(&gcPercent, "gc-percent", 25, "Go GC target: the heap may grow this many percent over live data before a collection (Go's default is 100; lower keeps RSS closer to what the server holds, for a little more GC work). A GOGC environment variable wins unless this flag is given")
	f.BoolVar(&cfg.Pprof, "pprof", false, "serve Go profiles at /debug/pprof/ (exposes internals: for benchmarks and debugging; on --admin-addr if set)")
	f.StringVar(&cfg.Auth, "auth", cfg.Auth, "how a session becomes a user: none (any free name, first come) or jwt (attach with a JSON Web Token whose sub is the user; needs a key flag below)")
	f.StringVar(&secretFile, "jwt-hmac-secret-file", "", "with --auth jwt: file holding the HMAC secret of HS256/384/512 tokens (at least 32 bytes; a trailing newline is ignored)")
	f.StringVar(&publicKeyFile, "jwt-public-key-file", "", "with --auth jwt: PEM file of the public keys of RS256…/PS256…/ES256… tokens (PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE blocks)")
	f.StringVar(&cfg.JWKSURL, "jwks-url", "", "with --auth jwt: URL of a JWK Set the public keys are fetched from (again every --jwks-refresh, and when a token names an unknown kid)")
	f.StringVar(&cfg.JWTAudience, "jwt-audience", "", "with --auth jwt: a token's aud must hold this (default: not checked)")
	f.StringVar(&cfg.JWTIssuer, "jwt-issuer", "", "with --auth jwt: a token's iss must be this (default: not checked)")
	f.DurationVar(&cfg.TokenExpiringAhead, "token-expiring-ahead", cfg.TokenExpiringAhead, "with --auth jwt: push token_expiring to a session this long before its token expires (at most half the token's remaining life), so that it refreshes it")
	f.DurationVar(&cfg.JWKSRefresh, "jwks-refresh", cfg.JWKSRefresh, "with --jwks-url: fetch the JWK Set again this often (revoked keys go)")
	f.DurationVar(&cfg.JWKSMinRefresh, "jwks-min-refresh", cfg.JWKSMinRefresh, "with --jwks-url: least time between two fetches made for an unknown kid (a token with an unknown kid is refused at once meanwhile)")
	f.IntVar(&cfg.JWKSMaxWaiting, "jwks-max-waiting", cfg.JWKSMaxWaiting, "with --jwks-url: most tokens waiting for a JWK Set fetch; beyond, attach and refresh get 503 unavailable")
	f.StringVar(&cfg.APIAddr, "api-addr", "", "serve the server API (docs/api.md) on this address, host:port (default: off); needs --api-key-file")
	f.StringVar(&apiKeyFile, "api-key-file", "", "file holding the server API's key (at least 16 bytes; a trailing newline is ignored): requests carry Authorization: Bearer KEY")
	f.StringVar(&cfg.AdminAddr, "admin-addr", "", "serve /metrics, /stats and /debug/pprof/ on this address (host:port) instead of --addr, which then serves /ws, /lbs, /healthz and the demo page only")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn, error")
	return cmd
}

// readAuthFiles reads the files of --jwt-hmac-secret-file,
// --jwt-public-key-file and --api-key-file into cfg.
func readAuthFiles(cfg *server.Config, secretFile, publicKeyFile, apiKeyFile string) error {
	if secretFile != "" {
		b, err := readSecretFile(secretFile)
		if err != nil {
			return fmt.Errorf("--jwt-hmac-secret-file: %w", err)
		}
		cfg.JWTHMACSecret = b
	}
	if publicKeyFile != "" {
		b, err := os.ReadFile(publicKeyFile)
		if err != nil {
			return fmt.Errorf("--jwt-public-key-file: %w", err)
		}
		keys, err := auth.ParsePublicKeys(b)
		if err != nil {
			return fmt.Errorf("--jwt-public-key-file %s: %w", publicKeyFile, err)
		}
		cfg.JWTPublicKeys = keys
	}
	if apiKeyFile != "" {
		b, err := readSecretFile(apiKeyFile)
		if err != nil {
			return fmt.Errorf("--api-key-file: %w", err)
		}
		cfg.APIKey = b
	}
	return nil
}

// readSecretFile reads a secret from a file, without its trailing
// newline.
func readSecretFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	b = bytes.TrimRight(b, "\r\n")
	if len(b) == 0 {
		return nil, fmt.Errorf("%s is empty", path)
	}
	return b, nil
}

// nodeDefaults fills in the node id (the host name and the port) and the
// advertised URL (ws://HOST:PORT/ws, the host name for an unspecified
// listen host) that --redis needs and the flags left out.
func nodeDefaults(cfg *server.Config, addr net.Addr) {
	host, port, _ := net.SplitHostPort(addr.String())
	name, err := os.Hostname()
	if err != nil || name == "" {
		name = "localhost"
	}
	if cfg.NodeID == "" {
		cfg.NodeID = name + ":" + port
	}
	if cfg.Advertise == "" {
		if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
			host = name
		}
		cfg.Advertise = "ws://" + net.JoinHostPort(host, port) + "/ws"
	}
}
