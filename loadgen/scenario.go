// Package loadgen is imload's load generator: it simulates thousands of
// chatting browsers, each with several tabs, against an imload server, checks
// that every message reaches every member tab exactly once and in order, and
// measures latency in HdrHistograms. The result is a reports.Result.
//
// The library is shaped like vegeta's: a Scenario describes the load,
// Run executes it (one run per mode) with functional Options, and Pacers
// decide when each tab sends.
//
//	res, err := loadgen.Run(ctx, loadgen.Scenario{Clients: 100, Tabs: 3,
//		Targets: []string{"ws://127.0.0.1:8080/ws"}}, loadgen.WithModes(reports.ModeShared))
//
// Architecture (see docs/loadgen.md): browsers are spread over a few shards;
// each shard has one goroutine that drives every timer of its browsers (sends,
// heartbeats, flushes, command timeouts, reconnect back-off) from one min-heap.
// On Linux the sockets are read by a few epoll loops (poller_linux.go), so an
// idle socket has no goroutine and no read buffer; elsewhere (or with
// Scenario.Reader ReaderGoroutine) each socket has one goroutine, its
// reader. There is no goroutine and no timer per tab.
package loadgen

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"imload/reports"
)

// Scenario is the load to apply. The zero value of a field means its default
// (see DefaultScenario), except where a comment says otherwise.
type Scenario struct {
	// Targets are the nodes' WebSocket URLs (ws://host:port/ws), or one
	// address list URL (http://host:port/lbs, whose JSON lists them, best
	// first). A single ws:// target's /lbs, when it answers, gives the
	// list instead. Browsers are spread over the nodes (browser i's sockets
	// start on node i mod N) and each node's share is in the result
	// (reports.Run.Nodes). /stats of the first target (of the list's first
	// node, for a list URL) is sampled every second, and, with several
	// nodes, each node's too. See nodes.go.
	Targets []string

	// Protocol is the protocol spoken: ProtocolImload (the default),
	// ProtocolSocketIO (a socket.io v4 chat server over WebSocket; a target
	// without a path gets /socket.io/?EIO=4&transport=websocket) or
	// ProtocolCentrifugo (a Centrifugo v6 server, client protocol v2 in
	// JSON; a target without a path gets /connection/websocket). The last
	// two have one socket per tab: per-tab mode only.
	Protocol string

	// Clients is the number of simulated browsers, Tabs the tab sessions of
	// each (one user per browser).
	Clients int
	Tabs    int

	// Rooms is the number of rooms (0: one per 10 browsers), RoomsPerUser
	// how many rooms each user
	// (all its tabs) joins. RoomSkew > 0 picks rooms with a Zipf
	// distribution of that exponent (> 1; popular rooms get most members);
	// 0 spreads members evenly.
	Rooms        int
	RoomsPerUser int
	RoomSkew     float64

	// Rate is the send rate per tab in messages per second (Poisson
	// arrivals, open model). 0 sends nothing.
	Rate float64
	// MsgSize is the text size of each message in bytes (at least the
	// header the generator needs, about 40 bytes).
	MsgSize int
	// DMRatio is the fraction of sends that are private messages to the
	// user of another browser (0..1).
	DMRatio float64
	// History is the number of messages fetched with each join of a new tab
	// (0 = none).
	History int

	// Ramp is the time over which browsers connect (evenly spaced), Duration
	// the time they chat after the ramp. Tabs start sending as soon as they
	// are attached.
	Ramp     time.Duration
	Duration time.Duration
	// Drain is the longest wait, after sends stop, for outstanding replies
	// and deliveries before the run is verified.
	Drain time.Duration

	// TabChurn is the number of tab close-and-reopen events per second over
	// the whole load (a random tab closes, and reopens 0.5–3 s later as a new
	// session that joins and fetches history). ConnKill is the number of
	// sockets killed per second (the TCP connection is cut without a close
	// frame; the browser reconnects through the ladder and resumes).
	TabChurn float64
	ConnKill float64

	// FlushInterval and FlushMax control the merging of a socket's outgoing
	// frames: frames are flushed as one WebSocket message FlushInterval after
	// the first one was queued, or as soon as FlushMax bytes are queued.
	// FlushInterval < 0 flushes every frame at once.
	FlushInterval time.Duration
	FlushMax      int

	// CmdTimeout is how long a command waits for its reply.
	CmdTimeout time.Duration
	// Heartbeat overrides the ping interval (0 = the server's hb_ms from its
	// hello frame). DeadAfter is how long a socket may receive nothing
	// before the client treats the link as dead (0 = the server's
	// hb_timeout_ms).
	Heartbeat time.Duration
	DeadAfter time.Duration

	// Ladder is the reconnect ladder (zero fields take their defaults).
	Ladder LadderConfig

	// SourceIPs are local addresses to spread sockets over (needed above
	// ~28,000 sockets to one address). Empty: the kernel chooses; with more
	// than 28,000 sockets to a loopback target, 127.0.0.1–127.0.0.N are used
	// automatically.
	SourceIPs []net.IP

	// Seed seeds every random choice; 0 picks one from the clock.
	Seed int64
	// Shards is the number of scheduler shards (0 = 2 × GOMAXPROCS, at
	// least 4).
	Shards int
	// Reader is how sockets are read: ReaderAuto (the default: ReaderEpoll
	// on Linux, else ReaderGoroutine), ReaderEpoll or ReaderGoroutine.
	Reader string

	// JWTSecret, if set, signs a JSON Web Token per simulated user (HS256,
	// sub its name) that its tabs attach with, for a server with --auth
	// jwt and the same secret; JWTTTL is how long one lasts (default 1 h):
	// a short one makes the tabs refresh their tokens during the run, as
	// the server tells them to (token.go).
	JWTSecret []byte
	JWTTTL    time.Duration
	// StatsURLs, if set, are the http://host:port the /stats of the nodes
	// are read at, in the order of the nodes (a server with --admin-addr
	// serves /stats there, not beside /ws); a node beyond the list is read
	// at its target's host and port.
	StatsURLs []string
}

// DefaultScenario returns the default scenario: 5,000 browsers with 3 tabs,
// in rooms of about 10 users (Rooms 0: one room per 10 browsers), 0.1
// messages per second per tab, 30 s after a 10 s ramp. On a 2-core machine
// it passes in both modes: with 100 rooms of 50 users (150 tabs) the
// per-tab run needs ~180,000 socket writes per second and saturates the box.
// Targets is empty: the caller sets it (or the CLI starts a server).
func DefaultScenario() Scenario {
	return Scenario{
		Clients:       5000,
		Tabs:          3,
		Rooms:         0, // one per 10 browsers
		RoomsPerUser:  1,
		Rate:          0.1,
		MsgSize:       64,
		DMRatio:       0.05,
		History:       20,
		Ramp:          10 * time.Second,
		Duration:      30 * time.Second,
		Drain:         15 * time.Second,
		FlushInterval: 2 * time.Millisecond,
		FlushMax:      16 << 10,
		CmdTimeout:    10 * time.Second,
		Ladder:        DefaultLadder(),
	}
}

// withDefaults fills zero fields from DefaultScenario.
func (s Scenario) withDefaults() Scenario {
	d := DefaultScenario()
	if s.Clients == 0 {
		s.Clients = d.Clients
	}
	if s.Tabs == 0 {
		s.Tabs = d.Tabs
	}
	if s.Protocol == "" {
		s.Protocol = ProtocolImload
	}
	if s.Rooms == 0 {
		s.Rooms = max(1, s.Clients/10)
	}
	if s.RoomsPerUser == 0 {
		s.RoomsPerUser = d.RoomsPerUser
	}
	if s.MsgSize == 0 {
		s.MsgSize = d.MsgSize
	}
	if s.History < 0 {
		s.History = 0
	}
	if s.Ramp == 0 {
		s.Ramp = d.Ramp
	}
	if s.Duration == 0 {
		s.Duration = d.Duration
	}
	if s.Drain == 0 {
		s.Drain = d.Drain
	}
	if s.FlushInterval == 0 {
		s.FlushInterval = d.FlushInterval
	}
	if s.FlushMax == 0 {
		s.FlushMax = d.FlushMax
	}
	if s.CmdTimeout == 0 {
		s.CmdTimeout = d.CmdTimeout
	}
	if s.JWTSecret != nil && s.JWTTTL == 0 {
		s.JWTTTL = time.Hour
	}
	s.Ladder = s.Ladder.withDefaults()
	return s
}

// Validate checks the scenario (after defaults are applied).
func (s Scenario) Validate() error {
	var errs []error
	if len(s.Targets) == 0 {
		errs = append(errs, errors.New("no target: give at least one ws:// URL, or an http://…/lbs address list URL"))
	}
	if err := checkReader(s.Reader); err != nil {
		errs = append(errs, err)
	}
	switch s.Protocol {
	case ProtocolImload, ProtocolSocketIO, ProtocolCentrifugo:
	default:
		errs = append(errs, fmt.Errorf("protocol %q: want %q, %q or %q", s.Protocol, ProtocolImload, ProtocolSocketIO, ProtocolCentrifugo))
	}
	errs = append(errs, checkTargets(s.Targets)...)
	if s.Clients < 1 {
		errs = append(errs, fmt.Errorf("clients must be at least 1 (got %d)", s.Clients))
	}
	if s.Tabs < 1 || s.Tabs > 32 {
		errs = append(errs, fmt.Errorf("tabs must be 1..32 (got %d)", s.Tabs))
	}
	if s.Rooms < 1 {
		errs = append(errs, fmt.Errorf("rooms must be at least 1 (got %d)", s.Rooms))
	}
	if s.RoomsPerUser < 1 || s.RoomsPerUser > s.Rooms || s.RoomsPerUser > 64 {
		errs = append(errs, fmt.Errorf("rooms-per-user must be 1..min(rooms, 64) (got %d)", s.RoomsPerUser))
	}
	if s.RoomSkew != 0 && s.RoomSkew <= 1 {
		errs = append(errs, fmt.Errorf("room skew must be 0 (even) or above 1 (Zipf exponent), got %g", s.RoomSkew))
	}
	if s.MsgSize < minMsgSize || s.MsgSize > 4096 {
		errs = append(errs, fmt.Errorf("message size must be %d..4096 bytes (got %d)", minMsgSize, s.MsgSize))
	}
	if s.DMRatio < 0 || s.DMRatio > 1 {
		errs = append(errs, fmt.Errorf("dm-ratio must be 0..1 (got %g)", s.DMRatio))
	}
	if s.Duration < 0 || s.Ramp < 0 {
		errs = append(errs, errors.New("duration and ramp must not be negative"))
	}
	if s.TabChurn < 0 || s.ConnKill < 0 {
		errs = append(errs, errors.New("tab-churn and conn-kill must not be negative"))
	}
	if s.JWTSecret != nil {
		if s.Protocol != ProtocolImload {
			errs = append(errs, fmt.Errorf("tokens (--jwt-hmac-secret-file) are for imload's protocol, not %s", s.Protocol))
		}
		if len(s.JWTSecret) < 32 {
			errs = append(errs, fmt.Errorf("the JWT secret has %d bytes: HS256 needs at least 32", len(s.JWTSecret)))
		}
		if s.JWTTTL < 2*time.Second {
			errs = append(errs, fmt.Errorf("jwt-ttl must be at least 2s (got %v)", s.JWTTTL))
		}
	}
	if s.JWTSecret == nil && s.JWTTTL != 0 {
		errs = append(errs, errors.New("jwt-ttl needs a JWT secret (--jwt-hmac-secret-file)"))
	}
	for _, u := range s.StatsURLs {
		if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
			errs = append(errs, fmt.Errorf("stats URL %q: want http://host:port", u))
		}
	}
	if s.FlushMax < 256 || s.FlushMax > 60<<10 {
		errs = append(errs, fmt.Errorf("flush-max must be 256..61440 bytes (got %d)", s.FlushMax))
	}
	return errors.Join(errs...)
}

// Sockets returns how many WebSockets the scenario holds in a mode.
func (s Scenario) Sockets(mode string) int {
	if mode == reports.ModePerTab {
		return s.Clients * s.Tabs
	}
	return s.Clients
}

// reportScenario converts s into the result model's scenario.
func (s Scenario) report() reports.Scenario {
	extra := map[string]string{
		"cmd_timeout": s.CmdTimeout.String(),
	}
	if s.Protocol == ProtocolImload { // socket.io and Centrifugo joins fetch no history
		extra["history"] = fmt.Sprint(s.History)
	}
	if s.RoomSkew > 0 {
		extra["room_skew"] = fmt.Sprint(s.RoomSkew)
	}
	if s.JWTSecret != nil {
		extra["jwt_ttl"] = s.JWTTTL.String()
	}
	if len(s.SourceIPs) > 0 {
		ips := make([]string, len(s.SourceIPs))
		for i, ip := range s.SourceIPs {
			ips[i] = ip.String()
		}
		extra["source_ips"] = strings.Join(ips, ",")
	}
	proto := protocolVersion
	if s.Protocol != ProtocolImload {
		// Not imload's protocol: its version does not apply.
		extra["protocol"] = s.Protocol
		proto = 0
	}
	return reports.Scenario{
		Targets:       append([]string(nil), s.Targets...),
		Protocol:      proto,
		Rooms:         s.Rooms,
		RoomsPerUser:  s.RoomsPerUser,
		Rate:          s.Rate,
		Duration:      reports.Duration(s.Duration),
		Ramp:          reports.Duration(s.Ramp),
		MsgSize:       s.MsgSize,
		DMRatio:       s.DMRatio,
		TabChurn:      s.TabChurn,
		ConnKill:      s.ConnKill,
		FlushInterval: reports.Duration(s.FlushInterval),
		FlushMax:      s.FlushMax,
		Seed:          s.Seed,
		Extra:         extra,
	}
}
