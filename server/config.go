// Package server is imload's chat server: the HTTP endpoints, the WebSocket
// connections that carry many logical tab sessions each, the hub of users,
// rooms and sessions, and the history it keeps through a store.
package server

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"time"

	"imload/mux"
	"imload/server/engine"
	"imload/server/engine/redis"
)

// Config configures a Server. DefaultConfig gives working values; the zero
// value does not.
type Config struct {
	// DataDir is where the SQLite history lives (DataDir/history.db).
	DataDir string
	// Memory keeps history in memory only: nothing survives a restart.
	Memory bool
	// Durability is how a message is acknowledged with the SQLite store:
	// DurabilityDurable (the default) releases a message (its reply, its
	// pushes, history showing it) only once it is committed and fsynced,
	// one group commit for everything queued meanwhile; DurabilityProcess
	// releases it once committed without fsync (a crash of the process
	// loses nothing; after a crash of the machine every room gets a new
	// epoch); DurabilityRelaxed releases it at once and commits within
	// 50 ms, not fsynced, and an unclean stop then gives every room a new
	// epoch at the next start. Ignored with Memory.
	Durability string
	// StoreQueue bounds the changes queued for the store and not yet
	// committed; beyond it sends are refused with 503 unavailable.
	StoreQueue int
	// Origins lists the Origin values allowed to open /ws besides the
	// server's own host ("*" allows any). Requests without Origin (not
	// browsers) are always allowed.
	Origins []string
	// LBS lists the ws:// addresses served at /lbs; empty means this server.
	// Not used with Redis (the node list is).
	LBS []string

	// Redis, when set (redis://host:port/db), makes this server one node of
	// several that share every room, name, presence list and private
	// message through that Redis (the Redis engine, docs/scaling.md);
	// DataDir, Memory and Durability do not apply then.
	Redis string
	// RedisPrefix goes before every key and channel name in Redis (tests
	// share one redis-server).
	RedisPrefix string
	// NodeID names this node among those sharing Redis (default: the
	// host name and a random suffix).
	NodeID string
	// Advertise is the ws:// URL clients reach this node at, listed at
	// /lbs by every node ("": the URL a client used).
	Advertise string

	// HeartbeatInterval is how often clients should ping (told in hello).
	HeartbeatInterval time.Duration
	// HeartbeatTimeout closes a connection that sent nothing for this long.
	HeartbeatTimeout time.Duration
	// WriteTimeout closes a connection (a slow consumer) whose socket
	// takes no byte for this long while the server has data for it.
	WriteTimeout time.Duration

	// Limits are the protocol limits announced in hello and enforced.
	Limits mux.Limits
	// MaxQueueBytes bounds the outgoing queue of one connection; a client
	// that falls further behind is disconnected as a slow consumer.
	MaxQueueBytes int
	// MaxBacklog bounds the bytes of commands a connection may send while
	// one of its commands waits for the engine's answer (they wait behind
	// it); beyond it the connection is closed with 4009. It must hold a
	// whole message (Limits.MaxMessageBytes).
	MaxBacklog int
	// MaxFramesPerWrite bounds how many frames one WebSocket message merges.
	MaxFramesPerWrite int
	// WriteDelay, if positive, makes the writer wait this long after the
	// first frame is queued to merge more into one message.
	WriteDelay time.Duration
	// WritePace and WriteBurst pace each connection's writes: a burst of
	// WriteBurst messages, then one message per WritePace, frames queued
	// meanwhile merged into it (see pace.go). WritePace 0 writes at once.
	WritePace  time.Duration
	WriteBurst int
	// MaxConnsPerUser caps the physical connections of one user name; the
	// oldest is told to go away. 0 means no cap.
	MaxConnsPerUser int
	// RateLimit and RateBurst limit send and dm per session (per second).
	RateLimit float64
	RateBurst int
	// ConnRate and ConnBurst limit the commands of one connection, all
	// commands of all its sessions together (per second; see limits.go).
	ConnRate  float64
	ConnBurst int
	// IPRate and IPBurst limit the commands of all connections from one
	// source address together (per second).
	IPRate  float64
	IPBurst int
	// MaxConnsPerIP caps the open WebSocket connections from one source
	// address; more are refused with HTTP 429 before the upgrade. 0: no cap.
	MaxConnsPerIP int
	// IPLimitExempt lists the networks (CIDR, or single addresses) that the
	// per-address limits do not apply to: by default loopback, where tests
	// and the load generator open thousands of connections, and where a
	// reverse proxy on the same host would put every client.
	IPLimitExempt []string
	// DMInRate and DMInBurst bound the private messages one user receives
	// (per second, from everyone together); more are refused to the sender
	// with 429 recipient_busy.
	DMInRate  float64
	DMInBurst int
	// NameGrace is how long a name stays reserved to its token after its
	// last session goes (0: twice HeartbeatTimeout; negative: not at all).
	NameGrace time.Duration
	// MaxReservedNames bounds the names held in reserve for offline users;
	// beyond it the oldest reservation ends early.
	MaxReservedNames int
	// PresenceInterval coalesces the join and leave pushes of a room: the
	// first change of a quiet room goes out at once, later ones within this
	// interval are merged into one net change per user (see presence.go).
	// 0 pushes every change at once.
	PresenceInterval time.Duration
	// PresenceGrace holds the leave of a user whose last session in a room
	// went without leaving it (the tab detached, closing or reloading; the
	// connection ended or was lost; its node died) for this long: a user
	// whose browser comes back meanwhile, here or on another node, was
	// never gone for the room's members (no leave, no join). A leave
	// command takes effect at once. 0: no grace. At most the name grace
	// (the name is its owner's meanwhile).
	PresenceGrace time.Duration

	// MaxRooms bounds the rooms the server holds (0: no bound): a join
	// that would create one more is refused with 503 too_many_rooms.
	MaxRooms int
	// RoomCreateRate and RoomCreateBurst limit how fast one connection may
	// create rooms (rooms per second); beyond, 429 room_rate_limited.
	RoomCreateRate  float64
	RoomCreateBurst int

	// HistoryMax and HistoryAge bound the history kept per room.
	HistoryMax int
	HistoryAge time.Duration

	// DMHistoryMax bounds the private messages kept per conversation (the
	// pair of users; 0: none are kept, DMs are live only), DMHistoryAge
	// how long they are kept, and DMMaxConversations the conversations
	// kept (by the node with the local engine, by the deployment with
	// Redis): beyond it the least recently active one goes.
	DMHistoryMax       int
	DMHistoryAge       time.Duration
	DMMaxConversations int

	// ShutdownTimeout bounds a graceful shutdown.
	ShutdownTimeout time.Duration
	// GoAwayRetryMin and GoAwayRetryMax bound the jittered retry hint sent
	// to clients at shutdown.
	GoAwayRetryMin, GoAwayRetryMax time.Duration

	// Reader chooses how connections are read: ReaderAuto, ReaderEpoll or
	// ReaderGoroutine (see poller).
	Reader string
	// ReadBufferSize is the read buffer of a connection read by its own
	// goroutine (ReaderGoroutine), in bytes: a larger frame grows it while
	// it is read. With epoll a readable connection borrows a pooled 16 KiB
	// buffer for the time of the read instead, and holds none in between.
	ReadBufferSize int

	// HTTPIdleTimeout closes an HTTP keep-alive connection that has been
	// idle this long between two requests (a WebSocket, once upgraded, is
	// not an HTTP connection any more: the heartbeat timeout applies).
	HTTPIdleTimeout time.Duration
	// HTTPHeaderTimeout bounds the time to read a request's headers.
	HTTPHeaderTimeout time.Duration
	// HTTPMaxHeaderBytes bounds the size of a request's headers (answered
	// with 431 beyond it).
	HTTPMaxHeaderBytes int

	// Pprof serves net/http/pprof at /debug/pprof/ (for profiling; off by
	// default: it exposes internals), on the admin listener if there is
	// one.
	Pprof bool

	// Auth is how a session becomes a user: AuthNone (names are claimed,
	// first come, with a token to get one back) or AuthJWT (a session
	// attaches with a JSON Web Token whose sub is its user; docs/protocol.md
	// "Authentication"). AuthJWT needs a key: JWTHMACSecret, JWTPublicKeys
	// or JWKSURL.
	Auth string
	// JWTHMACSecret verifies HS256/384/512 tokens (at least 32 bytes).
	JWTHMACSecret []byte
	// JWTPublicKeys verify RS*, PS* and ES* tokens (auth.ParsePublicKeys
	// reads a PEM file's).
	JWTPublicKeys []any
	// JWKSURL is a JWK Set the public keys are fetched from, again every
	// JWKSRefresh and when a token names a key id it does not hold (at
	// most once per JWKSMinRefresh; JWKSMaxWaiting tokens may wait for a
	// fetch, beyond which attach and refresh get 503 unavailable).
	JWKSURL        string
	JWKSRefresh    time.Duration
	JWKSMinRefresh time.Duration
	JWKSMaxWaiting int
	// JWTAudience and JWTIssuer, if set, must be a token's aud (one of)
	// and iss.
	JWTAudience, JWTIssuer string
	// TokenExpiringAhead is how long before its token expires a session is
	// told (token_expiring push); at most half the time the token has
	// left when it is verified.
	TokenExpiringAhead time.Duration

	// APIAddr, if set, is where the server API listens (host:port;
	// docs/api.md), guarded by APIKey (Authorization: Bearer …).
	APIAddr string
	APIKey  []byte
	// AdminAddr, if set, is where /metrics, /stats and /debug/pprof/ are
	// served instead of the public listener, which then serves /ws, /lbs,
	// /healthz and the demo page only.
	AdminAddr string

	// Static is served at /; nil means the embedded demo page.
	Static fs.FS
	// Logger receives the server's logs; nil discards them.
	Logger *slog.Logger
	// Version is reported in hello and /stats.
	Version string

	// WrapEngine, if set, wraps the engine the server makes (tests make
	// the local engine's answers asynchronous with it, as the Redis
	// engine's are: enginetest.Async).
	WrapEngine func(engine.Engine) engine.Engine
}

// Auth modes (Config.Auth), as announced in hello.
const (
	AuthNone = mux.AuthNone
	AuthJWT  = mux.AuthJWT
)

// MinAPIKeyBytes is the shortest server API key accepted.
const MinAPIKeyBytes = 16

// Durability modes (Config.Durability).
const (
	DurabilityDurable = "durable"
	DurabilityProcess = "process"
	DurabilityRelaxed = "relaxed"
)

// durable reports whether messages are released only once committed.
func (c *Config) durable() bool {
	return !c.Memory && c.Redis == "" && c.Durability != DurabilityRelaxed
}

// DefaultConfig returns the configuration of `imload serve` with no flags.
func DefaultConfig() Config {
	return Config{
		DataDir:           "./imload-data",
		HeartbeatInterval: 15 * time.Second,
		HeartbeatTimeout:  45 * time.Second,
		WriteTimeout:      10 * time.Second,
		Limits:            mux.DefaultLimits(),
		MaxQueueBytes:     1 << 20,
		MaxBacklog:        256 << 10,
		Reader:            ReaderAuto,
		ReadBufferSize:    512,
		MaxFramesPerWrite: 64,
		WritePace:         20 * time.Millisecond,
		WriteBurst:        4,
		MaxConnsPerUser:   16,
		Durability:        DurabilityDurable,
		StoreQueue:        65536,
		MaxRooms:          100000,
		RoomCreateRate:    5,
		RoomCreateBurst:   20,
		RateLimit:         20,
		RateBurst:         40,
		ConnRate:          100,
		ConnBurst:         200,
		IPRate:            1000,
		IPBurst:           2000,
		MaxConnsPerIP:     64,
		IPLimitExempt:     []string{"127.0.0.0/8", "::1/128"},
		DMInRate:          20,
		DMInBurst:         40,
		MaxReservedNames:  100000,
		PresenceInterval:  250 * time.Millisecond,
		PresenceGrace:     5 * time.Second,
		HistoryMax:        1000,
		HistoryAge:        24 * time.Hour,

		DMHistoryMax:       500,
		DMHistoryAge:       7 * 24 * time.Hour,
		DMMaxConversations: 100000,

		ShutdownTimeout: 10 * time.Second,
		GoAwayRetryMin:  time.Second,
		GoAwayRetryMax:  5 * time.Second,
		Version:         "dev",

		Auth:               AuthNone,
		TokenExpiringAhead: time.Minute,
		JWKSRefresh:        time.Hour,
		JWKSMinRefresh:     30 * time.Second,
		JWKSMaxWaiting:     10000,

		HTTPIdleTimeout:    60 * time.Second,
		HTTPHeaderTimeout:  10 * time.Second,
		HTTPMaxHeaderBytes: 16 << 10,
	}
}

func (c *Config) validate() error {
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	check(c.HeartbeatInterval > 0, "heartbeat interval must be positive, got %v", c.HeartbeatInterval)
	check(c.HeartbeatTimeout > c.HeartbeatInterval, "heartbeat timeout (%v) must exceed the interval (%v)", c.HeartbeatTimeout, c.HeartbeatInterval)
	check(c.WriteTimeout > 0, "write timeout must be positive")
	check(c.Limits.MaxMessageBytes >= 1024, "max message size must be at least 1024 bytes")
	check(c.Limits.MaxFramesPerMsg > 0, "max frames per message must be positive")
	check(c.Limits.MaxTextBytes > 0 && c.Limits.MaxTextBytes < c.Limits.MaxMessageBytes, "max text must be positive and below the max message size")
	check(c.Limits.MaxSessions > 0, "max sessions per connection must be positive")
	check(c.Limits.MaxHistory > 0, "max history per reply must be positive")
	check(c.Limits.MaxRoomsPerSession > 0, "max rooms per session must be positive")
	check(c.MaxQueueBytes >= c.Limits.MaxMessageBytes, "max queue (%d) must be at least the max message size (%d)", c.MaxQueueBytes, c.Limits.MaxMessageBytes)
	check(c.MaxBacklog >= c.Limits.MaxMessageBytes, "max backlog (%d) must be at least the max message size (%d)", c.MaxBacklog, c.Limits.MaxMessageBytes)
	check(c.MaxFramesPerWrite > 0, "max frames per write must be positive")
	check(c.WritePace >= 0 && c.WritePace <= time.Second, "write pace must be between 0 and 1s, got %v", c.WritePace)
	check(c.WriteBurst > 0, "write burst must be positive")
	check(c.MaxConnsPerUser >= 0, "max connections per user must not be negative")
	check(c.RateLimit > 0 && c.RateBurst > 0, "rate limit and burst must be positive")
	check(c.Durability == DurabilityDurable || c.Durability == DurabilityProcess || c.Durability == DurabilityRelaxed,
		"durability must be %s, %s or %s, not %q", DurabilityDurable, DurabilityProcess, DurabilityRelaxed, c.Durability)
	check(c.StoreQueue > 0, "store queue must be positive")
	check(c.MaxRooms >= 0, "max rooms must not be negative")
	check(c.RoomCreateRate > 0 && c.RoomCreateBurst > 0, "room creation rate and burst must be positive")
	check(c.ConnRate > 0 && c.ConnBurst > 0, "connection rate and burst must be positive")
	check(c.IPRate > 0 && c.IPBurst > 0, "per-address rate and burst must be positive")
	check(c.MaxConnsPerIP >= 0, "max connections per address must not be negative")
	_, err := parseNets(c.IPLimitExempt)
	check(err == nil, "ip limit exemptions: %v", err)
	check(c.DMInRate > 0 && c.DMInBurst > 0, "dm-in rate and burst must be positive")
	check(c.MaxReservedNames > 0, "max reserved names must be positive")
	check(c.PresenceInterval >= 0 && c.PresenceInterval <= 10*time.Second, "presence interval must be between 0 and 10s, got %v", c.PresenceInterval)
	check(c.PresenceGrace >= 0 && c.PresenceGrace <= 10*time.Minute, "presence grace must be between 0 and 10m, got %v", c.PresenceGrace)
	check(c.HistoryMax > 0, "history max must be positive")
	check(c.HistoryAge > 0, "history age must be positive")
	check(c.DMHistoryMax >= 0, "dm history max must not be negative (0: no DM history)")
	check(c.DMHistoryAge > 0, "dm history age must be positive")
	check(c.DMMaxConversations > 0, "dm max conversations must be positive")
	check(c.ShutdownTimeout > 0, "shutdown timeout must be positive")
	check(c.HTTPIdleTimeout > 0, "HTTP idle timeout must be positive, got %v", c.HTTPIdleTimeout)
	check(c.HTTPHeaderTimeout > 0, "HTTP header timeout must be positive, got %v", c.HTTPHeaderTimeout)
	check(c.HTTPMaxHeaderBytes >= 1024, "HTTP max header size must be at least 1024 bytes, got %d", c.HTTPMaxHeaderBytes)
	check(c.GoAwayRetryMax >= c.GoAwayRetryMin && c.GoAwayRetryMin >= 0, "go-away retry bounds are inverted")
	check(c.Reader == ReaderAuto || c.Reader == ReaderEpoll || c.Reader == ReaderGoroutine, "reader must be auto, epoll or goroutine, not %q", c.Reader)
	check(c.ReadBufferSize >= 64, "read buffer must be at least 64 bytes")
	check(c.Memory || c.DataDir != "" || c.Redis != "", "a data directory is needed unless memory mode is on")
	check(c.Auth == AuthNone || c.Auth == AuthJWT, "auth must be %s or %s, not %q", AuthNone, AuthJWT, c.Auth)
	if c.Auth == AuthJWT {
		check(len(c.JWTHMACSecret) > 0 || len(c.JWTPublicKeys) > 0 || c.JWKSURL != "", "--auth jwt needs a key: --jwt-hmac-secret-file, --jwt-public-key-file or --jwks-url")
		check(c.TokenExpiringAhead > 0, "token-expiring-ahead must be positive, got %v", c.TokenExpiringAhead)
		check(c.JWKSRefresh > 0 && c.JWKSMinRefresh > 0 && c.JWKSMaxWaiting > 0, "JWKS refresh, min refresh and max waiting must be positive")
	} else {
		check(len(c.JWTHMACSecret) == 0 && len(c.JWTPublicKeys) == 0 && c.JWKSURL == "" && c.JWTAudience == "" && c.JWTIssuer == "",
			"the --jwt-* and --jwks-url flags need --auth jwt")
	}
	if c.APIAddr != "" {
		check(len(c.APIKey) >= MinAPIKeyBytes, "--api-addr needs an API key of at least %d bytes (--api-key-file)", MinAPIKeyBytes)
	}
	if c.Redis != "" && c.NodeID != "" {
		check(redis.CheckNode(c.NodeID) == nil, "--node-id: %v", redis.CheckNode(c.NodeID))
	}
	return errors.Join(errs...)
}

// nameGrace is the reservation of a name after its last session goes.
// presenceGrace is the presence grace in effect: PresenceGrace, but no
// longer than the name grace (after it the name may be another user's).
func (c *Config) presenceGrace() time.Duration {
	return min(c.PresenceGrace, c.nameGrace())
}

func (c *Config) nameGrace() time.Duration {
	switch {
	case c.NameGrace < 0:
		return 0
	case c.NameGrace == 0:
		return 2 * c.HeartbeatTimeout
	}
	return c.NameGrace
}
