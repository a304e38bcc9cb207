package loadgen

// Run and its options: what happens once before the modes run (the wire
// for the scenario's protocol, its targets' URLs, the probe, the address
// list, the open-files limit), then one engine per mode.

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"time"

	"imload/loadgen/wire"
	"imload/mux"
	"imload/reports"
)

const protocolVersion = mux.ProtocolVersion

// ErrInterrupted is wrapped by Run's error when ctx ended before the
// scenario did, with ctx's error (context.Canceled or
// context.DeadlineExceeded); the returned result holds what was measured
// until then.
var ErrInterrupted = errors.New("run interrupted")

// Progress is a snapshot of a running mode, given every second to the
// WithProgress callback.
type Progress struct {
	Mode     string
	Phase    string // "ramp", "run", "drain"
	Elapsed  time.Duration
	Total    time.Duration // ramp + duration
	Conns    int64
	Sessions int64
	// SendRate and DeliverRate are per second over the last second.
	SendRate    float64
	DeliverRate float64
	// P99Ms is the delivery p99 so far.
	P99Ms      float64
	Errors     int64
	Reconnects int64
}

// Option configures Run.
type Option func(*options)

type options struct {
	modes      []string
	pacer      func(rate float64) Pacer
	progress   func(Progress)
	logf       func(format string, args ...any)
	serverPID  func() int
	serverPS   []ServerProcess
	redis      func(context.Context) (map[string]int64, error)
	faults     []Fault
	faultSrv   FaultServer
	nodeKiller NodeKiller
	thresholds reports.Thresholds
	version    string
	noStats    bool
	settle     time.Duration
}

// WithModes sets the modes to run, in order (default: shared, then per-tab;
// per-tab only with ProtocolSocketIO and ProtocolCentrifugo).
func WithModes(modes ...string) Option { return func(o *options) { o.modes = modes } }

// WithPacer sets the pacer factory (default: PoissonPacer).
func WithPacer(f func(rate float64) Pacer) Option { return func(o *options) { o.pacer = f } }

// WithProgress sets a callback called every second with a snapshot.
func WithProgress(f func(Progress)) Option { return func(o *options) { o.progress = f } }

// WithLogf sets where informational lines go (default: nowhere).
func WithLogf(f func(format string, args ...any)) Option { return func(o *options) { o.logf = f } }

// WithServerPID names the target's process (a local server): its CPU time
// and peak RSS during each run go into the result's server_process.
func WithServerPID(pid int) Option {
	return func(o *options) { o.serverPID = func() int { return pid } }
}

// WithServerPIDFunc is WithServerPID for a server whose process may change
// during the run (one restarted by a fault): pid names the current one.
func WithServerPIDFunc(pid func() int) Option { return func(o *options) { o.serverPID = pid } }

// WithServerProcesses names the processes of a server made of several (the
// local cluster of imload run --nodes: each node and the redis-server):
// each one's CPU time and peak RSS during each run go into the result's
// server_process.processes, their sum (CPU) and the peak of their summed
// RSS into server_process. A node a kill_node fault killed is marked so.
func WithServerProcesses(ps ...ServerProcess) Option {
	return func(o *options) { o.serverPS = ps }
}

// WithRedisCounters reads the counters of the Redis a local cluster shares
// (localserver.Redis.Counters): sampled before each run's first connection
// and after its drain, their differences go into the run's notes
// (reports.NoteRedisPrefix + a name: commands, bytes in and out, the calls
// of the commands a message costs). Sampling it at the end, before the
// connections close, leaves out what closing them costs.
func WithRedisCounters(read func(context.Context) (map[string]int64, error)) Option {
	return func(o *options) { o.redis = read }
}

// Fault is a fault injected into the target server during each run (each
// mode): at At after the run's start (the start of its ramp), the server is
// stopped (Kind reports.FaultCrash: SIGKILL; reports.FaultRestart: SIGTERM,
// a graceful stop) and started again on the same address and data directory
// RestartDelay after it exited; or (reports.FaultKillNode, WithKillNode)
// one node of several is killed with SIGKILL and not started again.
type Fault struct {
	Kind         string
	At           time.Duration
	RestartDelay time.Duration
}

// FaultServer is a server faults can be injected into: a
// *localserver.Server, which imload run starts when it has no --target.
type FaultServer interface {
	// Kill stops the server with SIGKILL and waits until it has exited.
	Kill()
	// Stop stops it with SIGTERM (SIGKILL after timeout) and waits.
	Stop(timeout time.Duration) error
	// Restart starts it again on the same address and data.
	Restart(ctx context.Context) error
}

// WithFaults injects faults into srv during each run. The links a fault
// cuts are counted in the fault's link_losses, as reconnects, not errors.
func WithFaults(srv FaultServer, faults ...Fault) Option {
	return func(o *options) { o.faultSrv, o.faults = srv, append(o.faults, faults...) }
}

// NodeKiller kills one node of several: a *localserver.Cluster, which
// imload run --nodes starts.
type NodeKiller interface {
	// KillNode kills the node whose WebSocket address is ws (SIGKILL) and
	// waits until it has exited.
	KillNode(ws string) error
	// RestartNode starts the node killed at ws again, on the same
	// address, and returns once the other nodes list it: Run does it
	// before the next mode, so that every mode starts with every node.
	RestartNode(ctx context.Context, ws string) error
}

// WithKillNode kills one node of the target (at least two nodes) at each
// run's start + at, through k: the node with the most of the generator's
// connections at that moment (the first of the node table on a tie). It
// is not restarted during the run: its browsers move to the other nodes
// through the reconnect ladder and resume there (it is restarted before
// the next mode, which starts with every node). The links it cut are the fault's
// link_losses (reconnects, not errors); the fault names the node
// (reports.Fault.Node) and, with an address list, how long the list took
// to drop it (GoneFromListMs).
func WithKillNode(k NodeKiller, at time.Duration) Option {
	return func(o *options) {
		o.nodeKiller = k
		o.faults = append(o.faults, Fault{Kind: reports.FaultKillNode, At: at})
	}
}

// checkFaults validates the faults against the scenario.
func checkFaults(o *options, sc Scenario) error {
	slices.SortStableFunc(o.faults, func(a, b Fault) int { return cmp.Compare(a.At, b.At) })
	for _, f := range o.faults {
		switch f.Kind {
		case reports.FaultCrash, reports.FaultRestart:
			if o.faultSrv == nil {
				return errors.New("faults need a server to inject them into (a local server: no --target)")
			}
		case reports.FaultKillNode:
			if o.nodeKiller == nil {
				return errors.New("killing a node needs the nodes to kill (a local cluster: --nodes)")
			}
		default:
			return fmt.Errorf("unknown fault %q (want %q, %q or %q)", f.Kind, reports.FaultCrash, reports.FaultRestart, reports.FaultKillNode)
		}
		if sc.Protocol != ProtocolImload && sc.Protocol != "" {
			return fmt.Errorf("faults are for imload's own server, not --protocol %s", sc.Protocol)
		}
		if f.At <= 0 || f.At >= sc.Ramp+sc.Duration {
			return fmt.Errorf("a %s at %s is outside the run (ramp %s + duration %s)", f.Kind, f.At, sc.Ramp, sc.Duration)
		}
		if f.RestartDelay < 0 {
			return fmt.Errorf("negative restart delay %s", f.RestartDelay)
		}
	}
	return nil
}

// WithThresholds sets the limits the verdict checks.
func WithThresholds(t reports.Thresholds) Option { return func(o *options) { o.thresholds = t } }

// WithVersion sets the imload version recorded in the result.
func WithVersion(v string) Option { return func(o *options) { o.version = v } }

// WithoutStats disables polling the target's /stats.
func WithoutStats() Option { return func(o *options) { o.noStats = true } }

// WithSettle sets the pause between two modes (default 2 s), so the server
// has closed the first mode's connections before the second starts.
func WithSettle(d time.Duration) Option { return func(o *options) { o.settle = d } }

// Run executes the scenario once per mode and returns the result, with its
// verdict evaluated. On a configuration or connectivity problem it returns
// an error and no result. If ctx ends early it stops cleanly, verifies what
// it can, and returns the partial result with an error wrapping
// ErrInterrupted.
func Run(ctx context.Context, sc Scenario, opts ...Option) (*reports.Result, error) {
	o := &options{
		pacer:  func(r float64) Pacer { return PoissonPacer{PerSecond: r} },
		logf:   func(string, ...any) {},
		settle: 2 * time.Second,
	}
	for _, f := range opts {
		f(o)
	}
	sc = sc.withDefaults()
	if sc.Seed == 0 {
		sc.Seed = time.Now().UnixNano() & 0x7fffffffffff
	}
	w, werr := wire.New(sc.Protocol, wire.Config{DMs: sc.DMRatio > 0})
	if werr == nil {
		// The URLs of the protocol (socket.io's and Centrifugo's paths);
		// an address list URL is read as it is.
		targets := make([]string, len(sc.Targets))
		for i, t := range sc.Targets {
			if isListURL(t) {
				targets[i] = t
				continue
			}
			u, err := w.URL(t)
			if err != nil {
				return nil, fmt.Errorf("target %q: %w", t, err)
			}
			targets[i] = u
		}
		sc.Targets = targets
	}
	if err := sc.Validate(); err != nil {
		return nil, err
	}
	if werr != nil {
		return nil, werr
	}
	tr := w.Traits()
	if !tr.Stats {
		o.noStats = true
	}
	if o.modes == nil {
		o.modes = []string{reports.ModeShared, reports.ModePerTab}
		if !tr.Shared {
			o.modes = []string{reports.ModePerTab}
		}
	}
	if err := checkFaults(o, sc); err != nil {
		return nil, err
	}
	for _, m := range o.modes {
		if m != reports.ModeShared && m != reports.ModePerTab {
			return nil, fmt.Errorf("unknown mode %q (want %q or %q)", m, reports.ModeShared, reports.ModePerTab)
		}
		if !tr.Shared && m != reports.ModePerTab {
			return nil, fmt.Errorf("mode %q: %s has no multi-tab sharing, --protocol %s runs per-tab only", m, tr.Name, sc.Protocol)
		}
	}
	res := &reports.Result{
		Version:    reports.SchemaVersion,
		Scenario:   sc.report(),
		Thresholds: o.thresholds,
		Environment: reports.Environment{
			ImloadVersion:   o.version,
			ProtocolVersion: protocolVersion,
			GoVersion:       runtime.Version(),
			GOOS:            runtime.GOOS,
			GOARCH:          runtime.GOARCH,
			NumCPU:          runtime.NumCPU(),
			GOMAXPROCS:      runtime.GOMAXPROCS(0),
			Start:           time.Now(),
		},
	}
	res.Environment.Hostname, _ = os.Hostname()

	// Where to connect (nodes.go): the nodes, and the address list's URL.
	tl, err := resolveTargets(ctx, sc.Targets, tr, o.logf)
	if err != nil {
		return nil, err
	}
	for _, f := range o.faults {
		if f.Kind == reports.FaultKillNode && len(tl.addrs) < 2 {
			return nil, fmt.Errorf("killing a node needs at least two nodes (the target has %d: %v)", len(tl.addrs), tl.addrs)
		}
	}
	name, err := probeNodes(ctx, w, tl.addrs)
	if err != nil && tl.fromLBS && (len(tl.addrs) > 1 || tl.addrs[0] != sc.Targets[0]) {
		// The list a single target gave is not reachable from here: the
		// target alone.
		o.logf("%v: connecting to %s alone", err, sc.Targets[0])
		tl.addrs, tl.fromLBS = []string{sc.Targets[0]}, false
		name, err = probeNodes(ctx, w, tl.addrs)
	}
	if err != nil {
		return nil, err
	}
	res.Environment.ServerVersion = name
	addrs := tl.addrs

	maxSockets := 0
	for _, m := range o.modes {
		maxSockets = max(maxSockets, sc.Sockets(m))
	}
	if err := EnsureFileLimit(maxSockets + 256); err != nil {
		return nil, err
	}
	if len(sc.SourceIPs) == 0 {
		if ips := AutoSourceIPs(addrs, maxSockets); len(ips) > 0 {
			sc.SourceIPs = ips
			o.logf("%d sockets to %d node(s) on loopback: spreading them over source addresses %s–%s", maxSockets, len(addrs), ips[0], ips[len(ips)-1])
		} else if maxSockets > SocketsPerSourceIP && len(addrs) > 1 {
			o.logf("%d sockets over %d nodes, not all on loopback: no automatic source addresses (--source-ips if a node gets more than %d)", maxSockets, len(addrs), SocketsPerSourceIP)
		}
	}

	var runErr error
	for i, mode := range o.modes {
		if i > 0 {
			restartKilled(ctx, o, res.Runs[i-1])
			runtime.GC()
			debug.FreeOSMemory()
			select {
			case <-ctx.Done():
			case <-time.After(o.settle):
			}
		}
		if ctx.Err() != nil {
			runErr = fmt.Errorf("%w: %w", ErrInterrupted, ctx.Err())
			break
		}
		e := newEngine(sc, mode, o, w, tl)
		run := e.execute(ctx)
		res.Runs = append(res.Runs, run)
		if ctx.Err() != nil {
			runErr = fmt.Errorf("%w: %w", ErrInterrupted, ctx.Err())
			break
		}
	}
	res.Environment.End = time.Now()
	if len(res.Runs) == 0 {
		return nil, runErr
	}
	res.Evaluate()
	if runErr != nil {
		res.Verdict = reports.Verdict{Pass: false, Reason: "interrupted before the end: " + res.Verdict.Reason}
	}
	return res, runErr
}

// restartKilled starts again the nodes the last run's kill_node faults
// killed, before the next mode.
func restartKilled(ctx context.Context, o *options, last reports.Run) {
	for _, f := range last.Faults {
		if f.Kind != reports.FaultKillNode || f.Error != "" || f.Node == "" {
			continue
		}
		t := time.Now()
		if err := o.nodeKiller.RestartNode(ctx, f.Node); err != nil {
			o.logf("the node killed in the %s run, %s, did not start again: %v (the next run has one node fewer)", last.Mode, f.Node, err)
			continue
		}
		o.logf("the node killed in the %s run, %s, started again for the next run (%s)", last.Mode, f.Node, time.Since(t).Round(time.Millisecond))
	}
}

func defaultShards() int {
	return max(4, 2*runtime.GOMAXPROCS(0))
}
