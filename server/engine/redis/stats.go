package redis

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// counters are the engine's counters (Stats).
type counters struct {
	published, publishRefused, dups                 atomic.Int64
	received, inboxDropped, malformed               atomic.Int64
	gapFills, resyncs, resets                       atomic.Int64
	queueFull, batches, commands, batchErrors       atomic.Int64
	reconnects, heartbeatErrors, nodesGone          atomic.Int64
	presenceDropped, releasesDropped, refreshesDrop atomic.Int64
}

// Stats are the engine's counters since it was made.
type Stats struct {
	// Published counts messages appended through this node; PublishRefused
	// the publishes refused at once (Redis unreachable, a full queue);
	// Dups the publishes answered as retries of a retained message.
	Published, PublishRefused, Dups int64
	// Received counts messages published on the channels this node holds
	// (rooms' messages and presence, users' private messages and kicks);
	// InboxDropped those dropped because the inbox was full (every open
	// room then resynchronises); Malformed those that could not be read.
	Received, InboxDropped, Malformed int64
	// GapFills counts reads of a room's stream to fill a gap (or to catch
	// up after a lost subscription); Resyncs the rooms read again from
	// their newest messages; Resets the logs reset (an epoch changed, or
	// the messages missed were no longer retained).
	GapFills, Resyncs, Resets int64
	// QueueFull counts requests refused because their shard's queue was
	// full; Batches the pipelined batches sent and Commands the commands
	// in them; BatchErrors the batches that failed (Redis unreachable).
	QueueFull, Batches, Commands, BatchErrors int64
	// Reconnects counts the times the subscription connection was made
	// again; HeartbeatErrors the heartbeats that failed; NodesGone the
	// nodes seen leaving the node list.
	Reconnects, HeartbeatErrors, NodesGone int64
	// PresenceDropped, ReleasesDropped and RefreshesDropped count the fire
	// and forget requests dropped on a full queue (their entries expire).
	PresenceDropped, ReleasesDropped, RefreshesDropped int64
	// Queued is the number of requests in the shards' queues now.
	Queued int64
}

// Stats returns the engine's counters.
func (e *Engine) Stats() Stats {
	c := &e.stats
	s := Stats{
		Published: c.published.Load(), PublishRefused: c.publishRefused.Load(), Dups: c.dups.Load(),
		Received: c.received.Load(), InboxDropped: c.inboxDropped.Load(), Malformed: c.malformed.Load(),
		GapFills: c.gapFills.Load(), Resyncs: c.resyncs.Load(), Resets: c.resets.Load(),
		QueueFull: c.queueFull.Load(), Batches: c.batches.Load(), Commands: c.commands.Load(), BatchErrors: c.batchErrors.Load(),
		Reconnects: c.reconnects.Load(), HeartbeatErrors: c.heartbeatErrors.Load(), NodesGone: c.nodesGone.Load(),
		PresenceDropped: c.presenceDropped.Load(), ReleasesDropped: c.releasesDropped.Load(), RefreshesDropped: c.refreshesDrop.Load(),
	}
	for _, sh := range e.shards {
		sh.mu.Lock()
		s.Queued += int64(len(sh.q))
		sh.mu.Unlock()
	}
	return s
}

// Register adds the engine's counters to reg, as imload_redis_* (the
// node's /metrics).
func (e *Engine) Register(reg prometheus.Registerer) {
	c := &e.stats
	counter := func(name, help string, v *atomic.Int64) {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "imload_redis_" + name, Help: help},
			func() float64 { return float64(v.Load()) }))
	}
	counter("published_total", "Messages appended to rooms through this node.", &c.published)
	counter("publish_refused_total", "Publishes refused at once (Redis unreachable, a full queue).", &c.publishRefused)
	counter("dups_total", "Publishes answered as retries of a retained message.", &c.dups)
	counter("received_total", "Messages received on the channels of the rooms and users this node holds.", &c.received)
	counter("inbox_dropped_total", "Received messages dropped on a full inbox (every open room then fills from its stream).", &c.inboxDropped)
	counter("malformed_total", "Received messages that could not be read.", &c.malformed)
	counter("gap_fills_total", "Reads of a room's stream to fill a gap or catch up.", &c.gapFills)
	counter("resyncs_total", "Rooms read again from their newest messages (epoch changed, or missed messages gone).", &c.resyncs)
	counter("resets_total", "Logs reset (their members resume with reset).", &c.resets)
	counter("queue_full_total", "Requests refused because their shard's queue was full.", &c.queueFull)
	counter("batches_total", "Pipelined batches sent to Redis.", &c.batches)
	counter("commands_total", "Commands in those batches.", &c.commands)
	counter("batch_errors_total", "Batches that failed (Redis unreachable).", &c.batchErrors)
	counter("reconnects_total", "Times the subscription connection was made again.", &c.reconnects)
	counter("heartbeat_errors_total", "Heartbeats that failed.", &c.heartbeatErrors)
	counter("nodes_gone_total", "Nodes seen leaving the node list.", &c.nodesGone)
	counter("presence_dropped_total", "Presence changes dropped on a full queue (the entries expire).", &c.presenceDropped)
	counter("releases_dropped_total", "Session releases dropped on a full queue (the sessions expire).", &c.releasesDropped)
	counter("refreshes_dropped_total", "Refreshes dropped on a full queue.", &c.refreshesDrop)
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "imload_redis_queued", Help: "Requests in the shards' queues."},
		func() float64 { return float64(e.Stats().Queued) }))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "imload_redis_inbox", Help: "Received messages waiting for the dispatcher."},
		func() float64 { return float64(len(e.inbox)) }))
}
