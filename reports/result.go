// Package reports holds the result model of an imload load run and every
// rendering of it: the text summary, the self-contained HTML report, the
// HdrHistogram percentile files (.hgrm), the comparison of two results and the
// exact merge of results taken on several load machines.
//
// The load generator (package loadgen) fills a [Result] and calls [WriteAll]
// after a run; the `imload report` subcommands load saved results with [Load].
package reports

import (
	"fmt"
	"time"
)

// SchemaVersion is the version of the result.json schema written by this
// build. Load refuses files whose version is newer.
const SchemaVersion = 1

// Histogram geometry shared by every latency histogram of a run: values are
// recorded in MICROSECONDS, from HistLowestUs (1 µs) to HistHighestUs (60 s),
// with HistSigFigs significant decimal digits. A value above HistHighestUs
// cannot be recorded: count it in Latency.AboveRange instead of dropping it.
const (
	HistLowestUs  int64 = 1
	HistHighestUs int64 = 60_000_000
	HistSigFigs         = 3
)

// Run modes.
const (
	ModeShared = "shared"  // one WebSocket per browser, carrying every tab
	ModePerTab = "per-tab" // one WebSocket per tab
)

// Histogram names used as keys of Run.Latency, in display order.
const (
	HistDelivery  = "delivery"  // sender's intended send time → each receiving tab
	HistDM        = "dm"        // private message, intended send → each receiving session
	HistReply     = "reply"     // command sent → its reply
	HistConnect   = "connect"   // dial → WebSocket open
	HistAttach    = "attach"    // attach sent → attach reply
	HistHeartbeat = "heartbeat" // ping → pong round trip
	HistReconnect = "reconnect" // link lost → sessions resumed
	// HistResume is, per browser, its first link lost → every room of every
	// tab of the browser resumed (attach, join and the history pages of the
	// catch-up all answered): what a user waits after a server restart.
	HistResume = "resume"
)

// HistogramNames yields the known histogram names in display order, with
// their index: for i, name := range reports.HistogramNames { ... }.
func HistogramNames(yield func(int, string) bool) {
	for i, n := range histogramNames() {
		if !yield(i, n) {
			return
		}
	}
}

func histogramNames() []string {
	return []string{HistDelivery, HistDM, HistReply, HistConnect, HistAttach, HistHeartbeat, HistReconnect, HistResume}
}

// Reconnect ladder steps used as keys of Counters.Reconnects.
const (
	StepRetry   = "retry"   // retried the same address
	StepSwitch  = "switch"  // moved to the next address of the list
	StepRefetch = "refetch" // fetched the address list (/lbs) again
	StepGiveUp  = "give_up" // gave up and reported the browser as lost
)

// ReconnectSteps yields the reconnect ladder steps in order, with their
// index: for i, step := range reports.ReconnectSteps { ... }.
func ReconnectSteps(yield func(int, string) bool) {
	for i, s := range reconnectSteps() {
		if !yield(i, s) {
			return
		}
	}
}

func reconnectSteps() []string { return []string{StepRetry, StepSwitch, StepRefetch, StepGiveUp} }

// Result is the content of result.json: everything one `imload run` (or a
// merge of several) measured. Version is SchemaVersion when written by this
// build. Runs holds one Run per mode that was measured (two with --mode both:
// shared and per-tab).
type Result struct {
	// Version is the schema version of the file (SchemaVersion).
	Version int `json:"version"`
	// Scenario is the configuration of the load, the same for every run.
	Scenario Scenario `json:"scenario"`
	// Environment describes the load machine and the tool that ran.
	Environment Environment `json:"environment"`
	// MergedFrom lists the environments of the results merged into this one
	// (empty for a result of a single machine).
	MergedFrom []Environment `json:"merged_from,omitempty"`
	// Thresholds are the limits the verdict checks.
	Thresholds Thresholds `json:"thresholds"`
	// Verdict is the overall verdict: pass only when every run passes.
	Verdict Verdict `json:"verdict"`
	// Runs holds one entry per measured mode.
	Runs []Run `json:"runs"`
}

// Scenario is the load's configuration as given to `imload run`. Merge refuses
// results whose scenarios differ in any field except Seed.
type Scenario struct {
	// Targets are the server URLs as given to imload run: the nodes' /ws
	// endpoints (one or several), or one /lbs URL whose JSON lists them.
	// The addresses actually dialled are the runs' Nodes.
	Targets []string `json:"targets"`
	// Protocol is the version of imload's wire protocol spoken by the load
	// generator, or 0 when it spoke another protocol (named by
	// Extra["protocol"]; see ProtocolName).
	Protocol int `json:"protocol"`
	// Rooms is the number of rooms; RoomsPerUser how many each user joins.
	Rooms        int `json:"rooms"`
	RoomsPerUser int `json:"rooms_per_user"`
	// Rate is the send rate per tab, in messages per second.
	Rate float64 `json:"rate"`
	// Duration is the measured part of the run, Ramp the ramp-up before it.
	Duration Duration `json:"duration"`
	Ramp     Duration `json:"ramp"`
	// MsgSize is the message body size in bytes.
	MsgSize int `json:"msg_size"`
	// DMRatio is the fraction of sends that are private messages (0..1).
	DMRatio float64 `json:"dm_ratio"`
	// TabChurn is the tab close/open rate and ConnKill the rate of killed
	// connections, both as given on the command line (0 = none).
	TabChurn float64 `json:"tab_churn"`
	ConnKill float64 `json:"conn_kill"`
	// FlushInterval and FlushMax control buffered flushing of outgoing frames.
	FlushInterval Duration `json:"flush_interval"`
	FlushMax      int      `json:"flush_max"`
	// Seed seeds the scenario's random choices. It may differ between merged
	// results (each load machine should use its own seed).
	Seed int64 `json:"seed"`
	// Extra holds further settings, by flag name, for display and comparison.
	// Merge requires equal values except for machine-local keys
	// ("source_ips"), whose values it lists. Extra["protocol"] names the wire
	// protocol when it is not imload's (ProtocolSocketIO, ProtocolCentrifugo).
	Extra map[string]string `json:"extra,omitempty"`
}

// Wire protocols, as Scenario.Extra["protocol"] records them. A scenario
// without that key spoke imload's protocol, version Scenario.Protocol.
const (
	ProtocolImload     = "imload"     // imload's own protocol (docs/protocol.md)
	ProtocolSocketIO   = "socketio"   // socket.io v4 over WebSocket (Engine.IO v4)
	ProtocolCentrifugo = "centrifugo" // Centrifugo's client protocol v2 in JSON over WebSocket
)

// ProtocolName names the wire protocol the load generator spoke, for
// display: "imload v1" (Scenario.Protocol is imload's protocol version),
// "socket.io (Engine.IO v4)", "Centrifugo (client protocol v2, JSON)", or the raw Extra["protocol"] value of a
// protocol this build does not know. Merge refuses results whose protocol
// names differ.
func (s Scenario) ProtocolName() string {
	switch p := s.Extra["protocol"]; p {
	case "", ProtocolImload:
		if s.Protocol > 0 {
			return fmt.Sprintf("imload v%d", s.Protocol)
		}
		return "imload"
	case ProtocolSocketIO:
		return "socket.io (Engine.IO v4)"
	case ProtocolCentrifugo:
		return "Centrifugo (client protocol v2, JSON)"
	default:
		return p
	}
}

// Environment describes the load machine and the program that made a result.
type Environment struct {
	// ImloadVersion and ProtocolVersion identify the load generator build.
	ImloadVersion   string `json:"imload_version"`
	ProtocolVersion int    `json:"protocol_version"`
	// GoVersion, GOOS and GOARCH are runtime.Version(), runtime.GOOS and
	// runtime.GOARCH of the load generator.
	GoVersion string `json:"go_version"`
	GOOS      string `json:"goos"`
	GOARCH    string `json:"goarch"`
	// NumCPU and GOMAXPROCS describe the load machine's CPUs (a merged
	// result sums NumCPU over the machines).
	NumCPU     int `json:"num_cpu"`
	GOMAXPROCS int `json:"gomaxprocs,omitempty"`
	// Hostname names the load machine (a merged result lists them all).
	Hostname string `json:"hostname"`
	// ServerVersion is the target's version if it reported one.
	ServerVersion string `json:"server_version,omitempty"`
	// Start and End are the wall-clock times of the whole command.
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}

// Run is the measurement of one mode.
type Run struct {
	// Mode is ModeShared or ModePerTab.
	Mode string `json:"mode"`
	// Clients is the number of simulated browsers, Tabs the tabs of each.
	Clients int `json:"clients"`
	Tabs    int `json:"tabs"`
	// Start and End are the wall-clock times of this run.
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	// PhysicalConnectionsPeak is the most WebSockets open at once and
	// SessionsPeak the most attached logical sessions (tabs), as seen by the
	// load generator.
	PhysicalConnectionsPeak int64 `json:"physical_connections_peak"`
	SessionsPeak            int64 `json:"sessions_peak"`
	// ServerStatsPeak is the target's /stats JSON object at peak, or nil.
	// With several nodes it is their aggregate at its peak: every node's
	// /stats sampled at the same second, numbers summed over the nodes
	// that answered (connections, sessions and counters; users and rooms
	// count on each node that has them), uptime_seconds the largest, and
	// "nodes" the number of nodes summed (each node's own is in Nodes).
	ServerStatsPeak map[string]any `json:"server_stats_peak"`
	// Nodes holds one entry per node the load generator connected to (each
	// address of --target or of the /lbs list), in the order of the list
	// (nodes that a refetched list added come last). A result written
	// before nodes were reported has none: its runs' connections may have
	// been on any node, and its Delivery.CrossNode was not measured.
	Nodes []Node `json:"nodes,omitempty"`
	// ServerProcess is the target process's resource use, when known (the
	// target is local), or nil.
	ServerProcess *Process `json:"server_process"`
	// LoadProcess is the load generator's own resource use.
	LoadProcess *Process `json:"load_process"`
	// Delivery is the outcome of delivery verification.
	Delivery Delivery `json:"delivery"`
	// DMDelivery is the outcome of private-message verification (each DM
	// must reach, once, every session the server says it pushed it to), or
	// nil when the run sent none. Losses excused by a disruption of the
	// sender or target (socket lost, tab churned) are in Notes, not here.
	DMDelivery *Delivery `json:"dm_delivery,omitempty"`
	// Notes are counts that explain a run but are not errors (for example
	// sockets killed on purpose, go-aways, deliveries by push vs. by
	// resume, and the server's /stats counter deltas over the run), keyed
	// by name.
	Notes map[string]int64 `json:"notes,omitempty"`
	// Latency holds one summary per histogram, keyed by the Hist* names.
	Latency map[string]Latency `json:"latency"`
	// Counters are totals over the run.
	Counters Counters `json:"counters"`
	// Series is the per-second time series, in time order.
	Series []Point `json:"series"`
	// Faults lists the faults injected into the target during the run
	// (imload run --crash-server-at / --restart-server-at), in order.
	Faults []Fault `json:"faults,omitempty"`
	// Verdict is this run's verdict against Result.Thresholds.
	Verdict Verdict `json:"verdict"`
}

// Fault kinds (Fault.Kind).
const (
	FaultCrash   = "crash"   // SIGKILL, then a restart on the same address and data
	FaultRestart = "restart" // SIGTERM (graceful stop), then the same restart
	// FaultKillNode is SIGKILL of one node of several (imload run --nodes
	// N --kill-node-at): not restarted; its browsers move to the other
	// nodes through the reconnect ladder.
	FaultKillNode = "kill_node"
)

// Fault is one fault injected into a local server during a run.
type Fault struct {
	// Kind is FaultCrash, FaultRestart or FaultKillNode.
	Kind string `json:"kind"`
	// AtMs is when the signal was sent, in ms since the run's start.
	AtMs int64 `json:"at_ms"`
	// DownMs is from the signal to the new server listening again (the
	// stop, the --restart-delay and the start); 0 for FaultKillNode (the
	// node is not restarted).
	DownMs int64 `json:"down_ms"`
	// LinkLosses counts the links the fault cut (counted as reconnects,
	// not as link_lost errors): every link to the server for a crash or
	// restart, the links to the killed node for FaultKillNode.
	LinkLosses int64 `json:"link_losses"`
	// Node is the killed node's address (a Run.Nodes target), for
	// FaultKillNode: the node with the most of the load generator's
	// connections when it was killed (the first in the list on a tie), and
	// NodeConnections how many it had.
	Node            string `json:"node,omitempty"`
	NodeConnections int64  `json:"node_connections,omitempty"`
	// GoneFromListMs is, for FaultKillNode with an address list (/lbs),
	// from the signal until the list no longer named the killed node
	// (polled every 100 ms, for at most 10 s; -1: still listed then; 0:
	// not measured).
	GoneFromListMs int64 `json:"gone_from_list_ms,omitempty"`
	// Error says why the restart failed, if it did ("" when it worked).
	Error string `json:"error,omitempty"`
}

// Process is the resource use of one process (or, in a merged result, the
// sum over the load machines for the load generator), or of the several
// processes a server was made of (Processes).
type Process struct {
	// CPUSeconds is user + system CPU time over the run.
	CPUSeconds float64 `json:"cpu_seconds"`
	// RSSPeakBytes is the peak resident set size.
	RSSPeakBytes int64 `json:"rss_peak_bytes"`
	// Processes, when the server was several processes (imload run
	// --nodes: each node and the redis-server), holds each one's use, in
	// the order they were started; CPUSeconds is then their sum and
	// RSSPeakBytes the peak of their summed RSS (all sampled together
	// every second). Empty for one process.
	Processes []ProcessPart `json:"processes,omitempty"`
}

// ProcessPart is the resource use of one process of a server made of
// several (Process.Processes).
type ProcessPart struct {
	// Name names the process: a node's id ("n0", "n1", …) or
	// "redis-server".
	Name string `json:"name"`
	// Target is a node's WebSocket address (a Run.Nodes target); empty
	// for redis-server.
	Target string `json:"target,omitempty"`
	// CPUSeconds is its user + system CPU time over the run (up to its
	// last sample when it was killed), RSSPeakBytes its peak resident set
	// size.
	CPUSeconds   float64 `json:"cpu_seconds"`
	RSSPeakBytes int64   `json:"rss_peak_bytes"`
	// Killed says the process was killed during the run (FaultKillNode).
	Killed bool `json:"killed,omitempty"`
}

// Delivery counts the outcome of delivery verification: every room message
// sent must reach every member tab once, in offset order.
type Delivery struct {
	// Expected is the number of (message, receiving tab) pairs expected.
	Expected int64 `json:"expected"`
	// Delivered is the number of those received (first copies).
	Delivered int64 `json:"delivered"`
	// Lost were expected but never received.
	Lost int64 `json:"lost"`
	// LostTail is the part of Lost at the end of a room's track: offsets
	// above the last one the tab received, when the run ended. Such a
	// backlog was still queued (the server or the socket fell behind)
	// rather than skipped; Lost − LostTail are gaps.
	LostTail int64 `json:"lost_tail,omitempty"`
	// Duplicated counts extra copies received.
	Duplicated int64 `json:"duplicated"`
	// Reordered counts messages received after a later offset of their room.
	Reordered int64 `json:"reordered"`
	// Mismatched counts deliveries whose content (sender, cid and text,
	// compared as a 64-bit hash) differs from what the sender sent, or
	// another receiver got, under the same room, epoch and offset: two
	// messages with one number.
	Mismatched int64 `json:"mismatched"`
	// CrossNode counts the deliveries (of Delivered) whose sender's socket
	// was on another node than the receiving tab's socket: the sender's
	// node is the one its socket was on when the message was first written
	// (a message re-sent after a reconnect keeps it), the receiver's the
	// one its socket was on when the copy arrived. Always 0 with one node;
	// not measured (0) in a run without Nodes.
	CrossNode int64 `json:"cross_node"`
}

// Node is what one run saw of one node of the target: one WebSocket address
// the load generator connected to. Browser i's sockets start on node i mod
// N (N the nodes of the initial list); a socket that the reconnect ladder
// moves to another node is counted on that node from then on.
type Node struct {
	// Target is the node's WebSocket address, as dialled.
	Target string `json:"target"`
	// PhysicalConnectionsPeak is the most WebSockets open to this node at
	// once and SessionsPeak the most sessions (tabs) attached through them,
	// as seen by the load generator. The nodes' peaks need not add up to
	// the run's (they may fall at different times).
	PhysicalConnectionsPeak int64 `json:"physical_connections_peak"`
	SessionsPeak            int64 `json:"sessions_peak"`
	// MessagesSent and DMsSent count the room and private messages first
	// written to a socket on this node (a message re-sent after a
	// reconnect counts where it was first written).
	MessagesSent int64 `json:"messages_sent"`
	DMsSent      int64 `json:"dms_sent,omitempty"`
	// Delivered counts the room-message deliveries (first copies, as
	// Delivery.Delivered) received by tabs whose socket was on this node,
	// and CrossNode those of them sent through another node.
	Delivered int64 `json:"delivered"`
	CrossNode int64 `json:"cross_node"`
	// Reconnects counts the links re-established onto this node after a
	// lost link (a socket's first connection and a reopened tab's are not
	// reconnects), and SwitchedIn those of them whose previous link was to
	// another node.
	Reconnects int64 `json:"reconnects"`
	SwitchedIn int64 `json:"switched_in"`
	// ServerStatsPeak is this node's /stats object at its peak (most
	// physical connections), when the run had several nodes and their
	// /stats answered; with one node it is the run's ServerStatsPeak.
	ServerStatsPeak map[string]any `json:"server_stats_peak,omitempty"`
}

// MultiNode says whether the run connected to more than one node; the
// reports show per-node figures and cross-node deliveries only then.
func (run *Run) MultiNode() bool { return len(run.Nodes) > 1 }

// Counters are totals over a run.
type Counters struct {
	// MessagesSent counts room messages sent, DMsSent private messages sent.
	MessagesSent int64 `json:"messages_sent"`
	DMsSent      int64 `json:"dms_sent"`
	// FramesOut/FramesIn count protocol frames, WSMessagesOut/WSMessagesIn
	// WebSocket messages (one carries one or more frames), BytesOut/BytesIn
	// WebSocket payload bytes, all seen from the load generator.
	FramesOut     int64 `json:"frames_out"`
	FramesIn      int64 `json:"frames_in"`
	WSMessagesOut int64 `json:"ws_messages_out,omitempty"`
	WSMessagesIn  int64 `json:"ws_messages_in,omitempty"`
	BytesOut      int64 `json:"bytes_out"`
	BytesIn       int64 `json:"bytes_in"`
	// Errors counts errors by kind: the Error* keys (contract.go), and
	// ErrorReplyPrefix + an error name for each refused reply
	// ("reply_rate_limited").
	Errors map[string]int64 `json:"errors"`
	// Reconnects counts reconnect ladder steps taken, keyed by the Step* names.
	Reconnects map[string]int64 `json:"reconnects"`
	// Kicks counts connections the server closed with a goaway
	// too_many_connections (the per-user connection cap); they are not
	// reconnected (their tabs close), as a browser does.
	Kicks int64 `json:"kicks"`
	// Resets counts join replies with reset: true (a resume the server could
	// not serve from the offset asked: history bound, or a new epoch).
	Resets int64 `json:"resets"`
}

// Point is one second of a run's time series.
type Point struct {
	// T is the end of the second, in Unix milliseconds (wall clock).
	T int64 `json:"t"`
	// Connections and Sessions are the open WebSockets and attached sessions
	// at T.
	Connections int64 `json:"connections"`
	Sessions    int64 `json:"sessions"`
	// Sent and Delivered are the messages sent and delivered during the
	// second (per second rates).
	Sent      float64 `json:"sent"`
	Delivered float64 `json:"delivered"`
	// P50Ms and P99Ms are the delivery latency percentiles of deliveries
	// during the second (0 when there were none).
	P50Ms float64 `json:"p50_ms"`
	P99Ms float64 `json:"p99_ms"`
	// Errors and Reconnects count those during the second.
	Errors     int64 `json:"errors"`
	Reconnects int64 `json:"reconnects,omitempty"`
}

// RunByMode returns the run of the given mode, or nil.
func (r *Result) RunByMode(mode string) *Run {
	for i := range r.Runs {
		if r.Runs[i].Mode == mode {
			return &r.Runs[i]
		}
	}
	return nil
}
