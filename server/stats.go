package server

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"imload/mux"
)

// counters are the server's live numbers, updated with atomics on the hot
// path and read by /stats and /metrics (which export the same values).
type counters struct {
	physical         atomic.Int64
	sessions         atomic.Int64
	acceptErrors     atomic.Int64
	messagesIn       atomic.Int64
	messagesOut      atomic.Int64
	dmsIn            atomic.Int64
	dmsOut           atomic.Int64
	framesIn         atomic.Int64
	framesOut        atomic.Int64
	bytesIn          atomic.Int64
	bytesOut         atomic.Int64
	wsMsgsOut        atomic.Int64
	slowConsumers    atomic.Int64
	writeTimeouts    atomic.Int64
	socketFull       atomic.Int64
	pacedWrites      atomic.Int64
	handedOver       atomic.Int64
	hbTimeouts       atomic.Int64
	kicked           atomic.Int64
	badFrames        atomic.Int64
	roomsRefused     atomic.Int64                     // joins refused a new room: --max-rooms or the creation rate
	storeRefused     atomic.Int64                     // sends refused because the store's queue was full
	joins            atomic.Int64                     // join commands answered 200
	joinSessions     atomic.Int64                     // sessions those joins were for (sids included)
	commandsHeld     atomic.Int64                     // commands whose engine answer came after the call returned (await.go)
	backlogOverflows atomic.Int64                     // connections closed for sending more than MaxBacklog behind such a command
	dmHistory        atomic.Int64                     // dm_history commands
	byMode           [len(mux.Modes) + 1]atomic.Int64 // last slot: unknown (no attach yet)

	// limits.go, names.go, presence.go
	rateLimited       atomic.Int64
	connRateLimited   atomic.Int64
	ipRateLimited     atomic.Int64
	recipientBusy     atomic.Int64
	ipConnsRefused    atomic.Int64
	namesEvicted      atomic.Int64
	presencePushes    atomic.Int64
	presenceCoalesced atomic.Int64
	presenceHeld      atomic.Int64 // leaves held for the presence grace
	presenceKept      atomic.Int64 // held leaves that never happened: the user came back

	// tokens.go, api.go
	tokensInvalid        atomic.Int64 // attach and refresh answered 401 token_invalid
	tokensExpired        atomic.Int64 // attach and refresh answered 401 token_expired
	forbidden            atomic.Int64 // commands answered 403 forbidden
	refreshes            atomic.Int64 // refresh commands answered 200
	tokenExpiring        atomic.Int64 // token_expiring pushes
	sessionsExpired      atomic.Int64 // sessions detached at their token's expiry
	sessionsDisconnected atomic.Int64 // sessions detached by the server API's disconnect
	apiRequests          atomic.Int64 // server API requests
	apiUnauthorized      atomic.Int64 // server API requests refused 401 unauthorized
}

const modeUnknown = len(mux.Modes)

func modeIndex(m string) int {
	for i, v := range mux.Modes {
		if v == m {
			return i
		}
	}
	return modeUnknown
}

// Stats returns the numbers served at /stats.
func (s *Server) Stats() mux.Stats {
	c := &s.counters
	by := make(map[string]int64, len(mux.Modes)+1)
	for i, m := range mux.Modes {
		by[m] = c.byMode[i].Load()
	}
	by["unknown"] = c.byMode[modeUnknown].Load()
	return mux.Stats{
		PhysicalConnections: c.physical.Load(),
		LogicalSessions:     c.sessions.Load(),
		Users:               int64(s.engine.Online()),
		Rooms:               int64(s.hub.roomCount()),
		MessagesIn:          c.messagesIn.Load(),
		MessagesOut:         c.messagesOut.Load(),
		FramesOut:           c.framesOut.Load(),
		BytesOut:            c.bytesOut.Load(),
		FramesIn:            c.framesIn.Load(),
		BytesIn:             c.bytesIn.Load(),
		DMsIn:               c.dmsIn.Load(),
		DMsOut:              c.dmsOut.Load(),
		SlowConsumers:       c.slowConsumers.Load(),
		AcceptErrors:        c.acceptErrors.Load(),
		Joins:               c.joins.Load(),
		JoinSessions:        c.joinSessions.Load(),
		PhysicalByMode:      by,
		UptimeSeconds:       time.Since(s.started).Seconds(),
	}
}

// newRegistry builds the Prometheus registry of one server. Every metric
// reads the same atomics as /stats, so the two never disagree.
func (s *Server) newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	c := &s.counters
	gauge := func(name, help string, f func() float64) {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "imload_" + name, Help: help}, f))
	}
	counterFn := func(name, help string, f func() float64) {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "imload_" + name, Help: help}, f))
	}
	counter := func(name, help string, v *atomic.Int64) {
		counterFn(name, help, func() float64 { return float64(v.Load()) })
	}
	if m, ok := s.engine.(interface{ Register(prometheus.Registerer) }); ok {
		m.Register(reg) // the Redis engine's counters (imload_redis_*)
	}
	gauge("physical_connections", "Open WebSocket connections.", func() float64 { return float64(c.physical.Load()) })
	gauge("logical_sessions", "Attached logical (tab) sessions.", func() float64 { return float64(c.sessions.Load()) })
	gauge("users", "Online user names.", func() float64 { return float64(s.engine.Online()) })
	gauge("rooms", "Rooms with members or history.", func() float64 { return float64(s.hub.roomCount()) })
	counter("messages_in_total", "Room messages accepted.", &c.messagesIn)
	counter("messages_out_total", "Room-message deliveries to sessions.", &c.messagesOut)
	counter("dms_in_total", "Private messages accepted.", &c.dmsIn)
	counter("dms_out_total", "Private-message deliveries to sessions.", &c.dmsOut)
	counter("frames_in_total", "Protocol frames received.", &c.framesIn)
	counter("frames_out_total", "Protocol frames sent.", &c.framesOut)
	counter("bytes_in_total", "WebSocket payload bytes received.", &c.bytesIn)
	counter("bytes_out_total", "WebSocket payload bytes sent.", &c.bytesOut)
	counter("ws_messages_out_total", "WebSocket messages sent (each merges one or more frames).", &c.wsMsgsOut)
	counter("slow_consumers_total", "Connections closed as slow consumers: their queue overflowed, or their socket took nothing for the write timeout.", &c.slowConsumers)
	counter("write_timeouts_total", "Connections closed because their socket took nothing for the write timeout (counted in slow_consumers_total too, unless their queue had overflowed first).", &c.writeTimeouts)
	counter("socket_full_total", "Writes that found the socket's send buffer full and went on in a writer goroutine.", &c.socketFull)
	counter("paced_writes_total", "Writes held back by the per-connection write pace, to merge the frames that follow.", &c.pacedWrites)
	counter("writes_handed_over_total", "Connections a worker left to the pacer to write because more messages were waiting to be handled.", &c.handedOver)
	counter("heartbeat_timeouts_total", "Connections closed for silence.", &c.hbTimeouts)
	counter("accept_errors_total", "Errors accepting a TCP connection (such as EMFILE: out of file descriptors).", &c.acceptErrors)
	counter("kicked_total", "Connections told to go away for exceeding the per-user cap.", &c.kicked)
	counter("bad_frames_total", "Frames that were not valid (answered with an error frame, or an error reply for a cmd with a readable sid and seq).", &c.badFrames)
	counter("rooms_refused_total", "Joins refused because a new room was over --max-rooms or the connection's room-creation rate.", &c.roomsRefused)
	counter("store_refused_total", "Sends refused with 503 unavailable because the history store's queue was full.", &c.storeRefused)
	counter("joins_total", "join commands answered 200 (a join naming several sessions with sids counts once).", &c.joins)
	counter("join_sessions_total", "Sessions the successful joins were for (each session named in sids counts).", &c.joinSessions)
	counter("rate_limited_total", "Sends and dms refused with 429 rate_limited (per-session limit).", &c.rateLimited)
	counter("conn_rate_limited_total", "Commands refused with 429 conn_rate_limited (per-connection limit).", &c.connRateLimited)
	counter("ip_rate_limited_total", "Commands refused with 429 ip_rate_limited (per-address limit).", &c.ipRateLimited)
	counter("recipient_busy_total", "Private messages refused with 429 recipient_busy (per-recipient limit).", &c.recipientBusy)
	counter("ip_conns_refused_total", "WebSocket upgrades refused with HTTP 429 for --max-conns-per-ip.", &c.ipConnsRefused)
	counter("names_evicted_total", "Name reservations ended early because --max-reserved-names were reserved.", &c.namesEvicted)
	counter("presence_pushes_total", "join and leave events queued to connections.", &c.presencePushes)
	counter("presence_coalesced_total", "Presence changes held back to be merged into the next flush of their room.", &c.presenceCoalesced)
	counter("presence_held_total", "Leaves of users whose connection was lost, held for the presence grace (--presence-grace).", &c.presenceHeld)
	counter("presence_kept_total", "Held leaves that never happened: the user came back within the presence grace.", &c.presenceKept)
	counter("commands_held_total", "Commands whose engine answer came after the engine call returned: their connection's next commands waited behind them.", &c.commandsHeld)
	counter("backlog_overflows_total", "Connections closed with 4009: more than --max-backlog bytes of commands came while one of their commands waited for the engine.", &c.backlogOverflows)
	counter("tokens_invalid_total", "attach and refresh commands refused with 401 token_invalid (--auth jwt).", &c.tokensInvalid)
	counter("tokens_expired_total", "attach and refresh commands refused with 401 token_expired.", &c.tokensExpired)
	counter("forbidden_total", "Commands refused with 403 forbidden: a room outside the token's rooms, a token of another user.", &c.forbidden)
	counter("refreshes_total", "refresh commands answered 200.", &c.refreshes)
	counter("token_expiring_total", "token_expiring pushes (--token-expiring-ahead before a token's expiry).", &c.tokenExpiring)
	counter("sessions_expired_total", "Sessions detached because their token expired (detached push, 401 token_expired).", &c.sessionsExpired)
	counter("sessions_disconnected_total", "Sessions detached by the server API's disconnect (detached push, 403 disconnected).", &c.sessionsDisconnected)
	counter("api_requests_total", "Server API requests (--api-addr).", &c.apiRequests)
	counter("api_unauthorized_total", "Server API requests refused with 401 unauthorized (no or a wrong key).", &c.apiUnauthorized)
	gauge("token_sessions", "Sessions with a token whose expiry is tracked.", func() float64 { return float64(s.expiries.size()) })
	if s.auth != nil {
		counterFn("jwks_fetches_total", "JWK Set fetches (--jwks-url).", func() float64 { return float64(s.auth.Stats().Fetches) })
		counterFn("jwks_fetch_errors_total", "JWK Set fetches that failed (the keys fetched before stay).", func() float64 { return float64(s.auth.Stats().FetchErrors) })
		gauge("jwks_waiting", "Tokens waiting for a JWK Set fetch (at most --jwks-max-waiting).", func() float64 { return float64(s.auth.Stats().Waiting) })
		counterFn("jwks_refused_total", "Tokens refused at once for an unknown key id (within --jwks-min-refresh of a fetch) or beyond --jwks-max-waiting.", func() float64 { return float64(s.auth.Stats().Refused) })
	}
	gauge("reserved_names", "Names held for offline users (--name-grace).", func() float64 { return float64(s.engine.Reserved()) })
	counter("dm_history_total", "dm_history commands.", &c.dmHistory)
	gauge("dm_conversations", "Conversations of private messages kept (at most --dm-max-conversations; with --redis, the deployment's as this node last saw them).",
		func() float64 { return float64(s.engine.DMStats().Conversations) })
	counterFn("dm_trimmed_total", "Private messages dropped beyond their conversation's --dm-history-max.", func() float64 { return float64(s.engine.DMStats().Trimmed) })
	counterFn("dm_expired_total", "Private messages dropped for their age (--dm-history-age), as far as this node saw.", func() float64 { return float64(s.engine.DMStats().Expired) })
	counterFn("dm_conversations_evicted_total", "Conversations dropped, the least recently active, beyond --dm-max-conversations.", func() float64 { return float64(s.engine.DMStats().Evicted) })
	gauge("ip_table_entries", "Source addresses tracked for the per-address limits.", func() float64 { return float64(s.ips.size()) })
	byMode := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "imload_physical_connections_by_mode", Help: "Open connections by the client mode of their first attach."}, []string{"mode"})
	reg.MustRegister(prometheusCollectorFunc(func(ch chan<- prometheus.Metric) {
		for i, m := range mux.Modes {
			byMode.WithLabelValues(m).Set(float64(c.byMode[i].Load()))
		}
		byMode.WithLabelValues("unknown").Set(float64(c.byMode[modeUnknown].Load()))
		byMode.Collect(ch)
	}, byMode))
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// prometheusCollectorFunc adapts a collect function refreshing a vector.
type collectorFunc struct {
	collect func(chan<- prometheus.Metric)
	desc    prometheus.Collector
}

func prometheusCollectorFunc(f func(chan<- prometheus.Metric), desc prometheus.Collector) prometheus.Collector {
	return collectorFunc{collect: f, desc: desc}
}

func (c collectorFunc) Describe(ch chan<- *prometheus.Desc) { c.desc.Describe(ch) }
func (c collectorFunc) Collect(ch chan<- prometheus.Metric) { c.collect(ch) }
