package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"

	"imload/loadgen"
	"imload/loadgen/localserver"
	"imload/reports"
)

func init() { subcommands = append(subcommands, newRunCmd) }

func newRunCmd() *cobra.Command {
	sc := loadgen.DefaultScenario()
	sc.Clients = 1000
	var (
		mode       string
		targets    []string
		out        string
		sourceIPs  string
		maxP99     time.Duration
		thr        = reports.Thresholds{}
		noProgress bool
		serverArgs []string
		serverLog  string
		serverData string
		cpuProfile string
		faults     faultFlags
		nodes      int
		jwtSecret  string
	)
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Simulate thousands of chatting browsers with several tabs each, verify every delivery, measure latency",
		Long: `imload run simulates --clients browsers, each with --tabs tab sessions of one
user, chatting in --rooms rooms. In --mode shared each browser opens ONE
WebSocket carrying all its tabs (what the SharedWorker does); in --mode
per-tab each tab opens its own; --mode both (the default) runs the same
scenario twice, one after the other, and compares them.

Browsers connect evenly over --ramp, then chat for --duration: every tab sends
--rate messages per second at Poisson-distributed times, scheduled whatever
the server does (open model); latency is measured from the scheduled time, so
a slow server cannot hide its own delays. Every room message is checked: each
tab that was a member when it was sent must receive it exactly once and in
offset order, across reconnects. Private messages (--dm-ratio) likewise.

With no --target, imload run starts "imload serve --memory" (this binary) as a
child process on a free loopback port, samples its CPU and memory for the
report, and stops it at the end. With --nodes N it starts a local cluster
instead: a redis-server child (from PATH, on a free loopback port, without
persistence) and N "imload serve --redis … --node-id nK" children sharing it,
and runs against their /lbs; the report's server CPU and memory cover every
node and redis-server. --nodes 1 is one node over Redis (to compare with the
memory server, the default). --kill-node-at 20s (with --nodes 2 or more)
kills the node with the most connections with SIGKILL 20 s into each run; its
browsers move to the other nodes through the reconnect ladder and resume by
offset, and the run must still lose nothing.

Several nodes: --target takes several ws:// addresses (comma separated or
repeated) or one address list URL, http://host:port/lbs (its JSON lists the
nodes, best first; the reconnect ladder reads it again). Browser i's
sockets start on node i mod N; a socket the ladder moves to another node
counts there from then on. The result has each node's connections,
sessions, messages, deliveries and reconnects, and the deliveries whose
sender was on another node (cross-node).

Faults on demand (local server only): --crash-server-at 20s kills it with
SIGKILL 20 s into each run, --restart-server-at 20s stops it with SIGTERM;
either way it is started again on the same address and data directory
--restart-delay later (the local server then runs with --server-data, or a
temporary data directory). The links it cuts count as reconnects, not errors;
the report shows the time until every browser has resumed every room, and
the resets. Every delivery's content (sender, cid, text) is checked too: two
different messages under one offset count as mismatched and fail the run. A
connection the server kicks (too_many_connections) is not reconnected; kicks
fail the run.

Results go to --out (default ./imload-reports/<time>/): result.json (with
every histogram, mergeable across machines), report.html, summary.txt,
.hgrm percentile files; the summary is printed at the end. The exit code is 1
when anything was lost or a threshold (--max-p99, --max-errors, ...) was not
met.

Examples:
  imload run --clients 5000                       # both modes against a fresh local server
  imload run --clients 200 --duration 10s --mode shared
  imload run --target ws://10.0.0.5:8080/ws --clients 20000 --source-ips 127.0.0.2-127.0.0.20
  imload run --target ws://10.0.0.5:8080/ws,ws://10.0.0.6:8080/ws --mode shared
  imload run --target http://10.0.0.5:8080/lbs --clients 20000
  imload run --tab-churn 5 --conn-kill 2 --max-p99 50ms
  imload run --clients 200 --duration 30s --crash-server-at 20s
  imload run --nodes 3 --clients 1000 --duration 30s --kill-node-at 15s
  imload run --protocol socketio --target ws://127.0.0.1:3000 --clients 1000 --tabs 1
  imload run --protocol centrifugo --target ws://127.0.0.1:8000 --clients 1000 --tabs 1

--protocol socketio drives a plain socket.io v4 chat server instead (WebSocket
transport only, one socket per tab since socket.io cannot share one between
tabs; events join, message and dm with acks), with the same scenario, pacing,
histograms and loss accounting: measure a socket.io deployment before
switching. --protocol centrifugo does the same with a Centrifugo v6 server
(client protocol v2 in JSON at /connection/websocket, one socket per tab; a
room is the channel chat:ROOM, subscribed with positioning so that offsets
are verified; a private message is a publish into the target's personal
channel dm:USER). The server must allow anonymous connections, and
subscribe and publish in those namespaces: see bench/centrifugo.json.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			modes, note, err := runModes(sc.Protocol, mode)
			if err != nil {
				return err
			}
			if note != "" {
				fmt.Fprintln(cmd.ErrOrStderr(), "imload run: "+note)
			}
			if sc.Protocol == loadgen.ProtocolSocketIO && len(targets) == 0 {
				return errors.New("--protocol socketio needs --target (a socket.io server, e.g. ws://127.0.0.1:3000 from `node bench/server.js --port 3000`): the local server is imload's")
			}
			if sc.Protocol == loadgen.ProtocolCentrifugo && len(targets) == 0 {
				return errors.New("--protocol centrifugo needs --target (a Centrifugo server, e.g. ws://127.0.0.1:8000 from `centrifugo -c bench/centrifugo.json`): the local server is imload's")
			}
			sc.Targets = targets
			if sourceIPs != "" {
				ips, err := loadgen.ParseSourceIPs(sourceIPs)
				if err != nil {
					return err
				}
				sc.SourceIPs = ips
			}
			thr.MaxP99Ms = float64(maxP99) / float64(time.Millisecond)
			if cpuProfile != "" {
				pf, err := os.Create(cpuProfile)
				if err != nil {
					return err
				}
				defer pf.Close()
				if err := pprof.StartCPUProfile(pf); err != nil {
					return err
				}
				defer pprof.StopCPUProfile()
			}
			fl, err := faults.list(len(targets) > 0)
			if err != nil {
				return err
			}
			if err := checkNodes(nodes, faults, len(targets) > 0, serverData); err != nil {
				return err
			}
			if jwtSecret != "" {
				// Tokens per simulated user; a local server verifies them
				// with the same secret.
				if sc.JWTSecret, err = readSecretFile(jwtSecret); err != nil {
					return fmt.Errorf("--jwt-hmac-secret-file: %w", err)
				}
				if len(targets) == 0 {
					abs, err := filepath.Abs(jwtSecret)
					if err != nil {
						return err
					}
					serverArgs = append(serverArgs, "--auth", "jwt", "--jwt-hmac-secret-file", abs)
				}
			}
			return runLoad(cmd, sc, modes, out, thr, !noProgress, localServer{args: serverArgs, log: serverLog, data: serverData, faults: fl,
				nodes: nodes, killNodeAt: faults.killNodeAt})
		},
	}
	f := cmd.Flags()
	f.IntVar(&sc.Clients, "clients", sc.Clients, "simulated browsers (one user each)")
	f.IntVar(&sc.Tabs, "tabs", sc.Tabs, "tab sessions per browser")
	f.StringVar(&mode, "mode", "both", "shared (one socket per browser), per-tab (one socket per tab), or both (one after the other, compared)")
	f.StringVar(&sc.Protocol, "protocol", loadgen.ProtocolImload, "imload; socketio: a socket.io v4 chat server over WebSocket (join/message/dm events with acks); centrifugo: a Centrifugo v6 server (client protocol v2, JSON); the last two per-tab only")
	f.StringSliceVar(&targets, "target", nil, "the nodes' WebSocket URLs, ws://host:port/ws (comma separated or repeated; browsers are spread over them), or one address list URL, http://host:port/lbs; a single ws:// target's /lbs, when it answers, gives the list (default: start a local imload serve)")
	f.IntVar(&sc.Rooms, "rooms", sc.Rooms, "number of rooms (0: one per 10 browsers, rooms of about 10 users)")
	f.IntVar(&sc.RoomsPerUser, "rooms-per-user", sc.RoomsPerUser, "rooms each user (all its tabs) joins")
	f.Float64Var(&sc.RoomSkew, "room-skew", 0, "0 spreads members evenly over rooms; > 1 picks rooms Zipf-distributed with this exponent (a few big rooms)")
	f.Float64Var(&sc.Rate, "rate", sc.Rate, "messages per second per tab (Poisson arrivals, open model)")
	f.IntVar(&sc.MsgSize, "msg-size", sc.MsgSize, "message text size in bytes (48..4096)")
	f.Float64Var(&sc.DMRatio, "dm-ratio", sc.DMRatio, "fraction of sends that are private messages to another user (0..1)")
	f.IntVar(&sc.History, "history", sc.History, "messages fetched with each join of a new tab (0: none)")
	f.DurationVar(&sc.Duration, "duration", sc.Duration, "how long browsers chat after the ramp")
	f.DurationVar(&sc.Ramp, "ramp", sc.Ramp, "time over which browsers connect, evenly spaced")
	f.DurationVar(&sc.Drain, "drain", sc.Drain, "longest wait after sends stop for outstanding replies and deliveries")
	f.Float64Var(&sc.TabChurn, "tab-churn", 0, "tabs closed (and reopened 0.5-3 s later) per second over the whole load (0: none)")
	f.Float64Var(&sc.ConnKill, "conn-kill", 0, "sockets cut per second over the whole load, to exercise reconnect and resume (0: none)")
	f.StringVar(&sc.Reader, "reader", loadgen.ReaderAuto, "how the generator reads its sockets: epoll (epoll loops, no goroutine per socket; Linux), goroutine (one per socket), or auto")
	f.DurationVar(&sc.FlushInterval, "flush-interval", sc.FlushInterval, "merge a socket's outgoing frames for this long before writing (negative: write each at once)")
	f.IntVar(&sc.FlushMax, "flush-max", sc.FlushMax, "write a socket's merged frames as soon as this many bytes are queued")
	f.DurationVar(&sc.CmdTimeout, "cmd-timeout", sc.CmdTimeout, "a command without a reply after this long is a timeout error")
	f.DurationVar(&sc.Heartbeat, "heartbeat", 0, "ping interval (default: the server's hb_ms from its hello)")
	f.IntVar(&sc.Ladder.RetrySame, "retry-same", sc.Ladder.RetrySame, "reconnect ladder: attempts on one address before moving to the next")
	f.DurationVar(&sc.Ladder.Base, "backoff", sc.Ladder.Base, "reconnect ladder: first back-off delay (doubles per attempt, ±50% jitter)")
	f.DurationVar(&sc.Ladder.Max, "backoff-max", sc.Ladder.Max, "reconnect ladder: longest back-off delay")
	f.IntVar(&sc.Ladder.Refetches, "refetches", sc.Ladder.Refetches, "reconnect ladder: /lbs refetches before giving up")
	f.StringVar(&sourceIPs, "source-ips", "", "local addresses to spread sockets over, e.g. 127.0.0.2-127.0.0.20 (default: automatic above 28,000 sockets to a loopback target)")
	f.Int64Var(&sc.Seed, "seed", 0, "random seed (0: from the clock); both modes use the same")
	f.IntVar(&sc.Shards, "shards", 0, "scheduler shards (0: 2 × GOMAXPROCS, at least 4)")
	f.StringVar(&out, "out", "", "directory for result.json and reports (default: ./imload-reports/<timestamp>)")
	f.DurationVar(&maxP99, "max-p99", 0, "fail when the delivery p99 is above this (0: no limit)")
	f.Int64Var(&thr.MaxErrors, "max-errors", 0, "fail with more errors than this (-1: no limit)")
	f.Int64Var(&thr.MaxLost, "max-lost", 0, "fail with more lost messages than this (-1: no limit)")
	f.Int64Var(&thr.MaxDuplicated, "max-duplicated", 0, "fail with more duplicated messages than this (-1: no limit)")
	f.Int64Var(&thr.MaxReordered, "max-reordered", 0, "fail with more reordered messages than this (-1: no limit)")
	f.Int64Var(&thr.MaxMismatched, "max-mismatched", 0, "fail with more deliveries whose content differs from another copy under the same offset (-1: no limit)")
	f.Int64Var(&thr.MaxKicks, "max-kicks", 0, "fail with more connections kicked by the server for too_many_connections (-1: no limit)")
	f.DurationVar(&faults.crashAt, "crash-server-at", 0, "local server only: kill it with SIGKILL this long after each run's start, and restart it on the same address and data directory")
	f.DurationVar(&faults.restartAt, "restart-server-at", 0, "local server only: stop it with SIGTERM (graceful) this long after each run's start, and restart it the same way")
	f.DurationVar(&faults.delay, "restart-delay", time.Second, "with --crash-server-at/--restart-server-at: wait this long after the server exited before starting it again")
	f.IntVar(&nodes, "nodes", 0, "no --target: start a local cluster of this many imload serve nodes sharing a redis-server child (redis-server from PATH), and run against their /lbs (1: one node over Redis; 0: one server with the memory engine)")
	f.DurationVar(&faults.killNodeAt, "kill-node-at", 0, "with --nodes 2 or more: kill the node with the most connections with SIGKILL this long after each run's start (not restarted: its browsers move to the other nodes)")
	f.StringVar(&serverData, "server-data", "", "data directory of the local server (default: --memory; with a fault, a temporary directory removed at the end)")
	f.BoolVar(&noProgress, "no-progress", false, "do not print the live progress line")
	f.StringSliceVar(&serverArgs, "server-arg", nil, "extra argument for the local imload serve (repeatable), e.g. --server-arg=--write-delay=1ms")
	f.StringVar(&serverLog, "server-log", "", "file for the local server's logs (default: server.log in --out)")
	f.StringVar(&jwtSecret, "jwt-hmac-secret-file", "", "sign a JSON Web Token per simulated user (HS256, sub its name) with the secret in this file, for a server with --auth jwt (the local server gets --auth jwt and the same file); attach latency then includes verification")
	f.DurationVar(&sc.JWTTTL, "jwt-ttl", 0, "with --jwt-hmac-secret-file: how long a token lasts (default 1h); a short one (10s) makes tabs refresh their tokens under load, when the server tells them")
	f.StringSliceVar(&sc.StatsURLs, "stats-url", nil, "http://host:port the nodes' /stats is read at, in the order of the nodes, for servers with --admin-addr (default: each target's host and port)")
	f.StringVar(&cpuProfile, "cpuprofile", "", "write the load generator's CPU profile to this file")
	_ = f.MarkHidden("cpuprofile")
	return cmd
}

// runModes returns the modes to run for --protocol and --mode, and a note to
// print when it adjusted them.
func runModes(protocol, mode string) ([]string, string, error) {
	name := ""
	switch protocol {
	case loadgen.ProtocolImload, "":
	case loadgen.ProtocolSocketIO:
		name = "socket.io"
	case loadgen.ProtocolCentrifugo:
		name = "Centrifugo"
	default:
		return nil, "", fmt.Errorf("--protocol %q: want imload, socketio or centrifugo", protocol)
	}
	if name != "" {
		switch mode {
		case reports.ModePerTab:
			return []string{mode}, "", nil
		case "both", "":
			return []string{reports.ModePerTab},
				fmt.Sprintf("--protocol %s: %s has no multi-tab sharing (one socket per tab), so --mode both runs per-tab only", protocol, name), nil
		case reports.ModeShared:
			return nil, "", fmt.Errorf("--mode shared: %s has no multi-tab sharing (one socket per tab); --protocol %s runs --mode per-tab only", name, protocol)
		}
		return nil, "", fmt.Errorf("--mode %q: want per-tab with --protocol %s", mode, protocol)
	}
	switch mode {
	case "both", "":
		return []string{reports.ModeShared, reports.ModePerTab}, "", nil
	case reports.ModeShared, reports.ModePerTab:
		return []string{mode}, "", nil
	}
	return nil, "", fmt.Errorf("--mode %q: want shared, per-tab or both", mode)
}

// faultFlags are the fault-injection flags of imload run.
type faultFlags struct {
	crashAt, restartAt, delay time.Duration
	killNodeAt                time.Duration
}

// checkNodes checks --nodes and --kill-node-at against the other flags.
func checkNodes(nodes int, f faultFlags, remote bool, serverData string) error {
	switch {
	case nodes < 0:
		return fmt.Errorf("--nodes %d: want 1 or more (0: one server with the memory engine)", nodes)
	case nodes > 0 && remote:
		return errors.New("--nodes starts a local cluster: leave out --target (or give the nodes' addresses to --target and leave out --nodes)")
	case nodes > 0 && (f.crashAt > 0 || f.restartAt > 0):
		return errors.New("--crash-server-at and --restart-server-at stop the single local server; with --nodes, kill a node with --kill-node-at")
	case nodes > 0 && serverData != "":
		return errors.New("--server-data does not apply with --nodes: the history lives in Redis")
	case f.killNodeAt < 0:
		return errors.New("--kill-node-at must not be negative")
	case f.killNodeAt > 0 && nodes < 2:
		return fmt.Errorf("--kill-node-at needs --nodes 2 or more (a node to kill and one to move to), not %d", nodes)
	}
	return nil
}

// list returns the faults asked for, in time order.
func (f faultFlags) list(remote bool) ([]loadgen.Fault, error) {
	var out []loadgen.Fault
	if f.crashAt > 0 {
		out = append(out, loadgen.Fault{Kind: reports.FaultCrash, At: f.crashAt, RestartDelay: f.delay})
	}
	if f.restartAt > 0 {
		out = append(out, loadgen.Fault{Kind: reports.FaultRestart, At: f.restartAt, RestartDelay: f.delay})
	}
	if len(out) == 2 && out[1].At < out[0].At {
		out[0], out[1] = out[1], out[0]
	}
	if len(out) > 0 && remote {
		return nil, errors.New("--crash-server-at and --restart-server-at stop and restart the local server: leave out --target")
	}
	if f.crashAt < 0 || f.restartAt < 0 || f.delay < 0 {
		return nil, errors.New("--crash-server-at, --restart-server-at and --restart-delay must not be negative")
	}
	return out, nil
}

// localServer says how to run the local server (no --target).
type localServer struct {
	args   []string
	log    string
	data   string
	faults []loadgen.Fault
	// nodes > 0: a local cluster of that many nodes over a redis-server
	// child instead, and killNodeAt its kill_node fault.
	nodes      int
	killNodeAt time.Duration
}

func runLoad(cmd *cobra.Command, sc loadgen.Scenario, modes []string, out string, thr reports.Thresholds,
	progress bool, ls localServer) error {
	serverLog := ls.log
	ctx := cmd.Context()
	stdout, stderr := cmd.OutOrStdout(), cmd.ErrOrStderr()
	tty := false
	if f, ok := stderr.(*os.File); ok {
		tty = isatty.IsTerminal(f.Fd())
	}
	pp := &progressPrinter{W: stderr, TTY: tty}

	if out == "" {
		out = filepath.Join("imload-reports", time.Now().Format("20060102-150405"))
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return fmt.Errorf("create --out directory: %w", err)
	}

	// Raise the open-files limit first: the child server inherits it.
	sockets := 0
	for _, m := range modes {
		sockets = max(sockets, sc.Sockets(m))
	}
	if err := loadgen.EnsureFileLimit(sockets + 256); err != nil {
		return err
	}

	opts := []loadgen.Option{
		loadgen.WithModes(modes...),
		loadgen.WithThresholds(thr),
		loadgen.WithVersion(buildVersion()),
		loadgen.WithLogf(pp.Logf),
	}
	if progress {
		opts = append(opts, loadgen.WithProgress(pp.Print))
	}
	var child *localserver.Server
	var cluster *localserver.Cluster
	if len(sc.Targets) == 0 && ls.nodes > 0 {
		if serverLog == "" {
			serverLog = filepath.Join(out, "server.log")
		}
		var err error
		cluster, err = startCluster(ctx, ls, serverLog, pp.Logf)
		if err != nil {
			return err
		}
		defer cluster.Stop(15 * time.Second)
		sc.Targets = []string{cluster.LBS()}
		opts = append(opts, loadgen.WithServerProcesses(clusterProcesses(cluster)...),
			loadgen.WithRedisCounters(cluster.Redis.Counters))
		if ls.killNodeAt > 0 {
			opts = append(opts, loadgen.WithKillNode(clusterKiller{cluster, pp.Logf}, ls.killNodeAt))
		}
	}
	if len(sc.Targets) == 0 {
		if serverLog == "" {
			serverLog = filepath.Join(out, "server.log")
		}
		logf, err := os.Create(serverLog)
		if err != nil {
			return fmt.Errorf("server log: %w", err)
		}
		defer logf.Close()
		data := ls.data
		if data == "" && len(ls.faults) > 0 {
			// A restart must find the history again: a data directory for
			// this run, removed at the end.
			if data, err = os.MkdirTemp("", "imload-run-data-*"); err != nil {
				return fmt.Errorf("data directory for the local server: %w", err)
			}
			defer os.RemoveAll(data)
		}
		child, err = localserver.Start(ctx, localserver.Config{Args: ls.args, Stderr: logf, DataDir: data})
		if err != nil {
			return fmt.Errorf("no --target given and the local server did not start: %w", err)
		}
		store := "--memory"
		if data != "" {
			store = "--data " + data
		}
		pp.Logf("no --target: started a local server, `imload serve %s` (pid %d) at %s; its logs go to %s",
			store, child.PID(), child.URL, serverLog)
		sc.Targets = []string{child.WS}
		opts = append(opts, loadgen.WithServerPIDFunc(child.PID))
		if len(ls.faults) > 0 {
			opts = append(opts, loadgen.WithFaults(child, ls.faults...))
		}
		defer child.Stop(15 * time.Second)
	}

	res, runErr := loadgen.Run(ctx, sc, opts...)
	pp.Done()
	if child != nil {
		if err := child.Stop(15 * time.Second); err != nil {
			pp.Logf("local server: %v", err)
		} else {
			pp.Logf("local server stopped")
		}
	}
	if cluster != nil {
		if err := cluster.Stop(15 * time.Second); err != nil {
			pp.Logf("local cluster: %v", err)
		} else {
			pp.Logf("local cluster stopped (%d nodes and redis-server)", len(cluster.Nodes))
		}
	}
	if res == nil {
		return runErr
	}
	if cluster != nil {
		if res.Scenario.Extra == nil {
			res.Scenario.Extra = map[string]string{}
		}
		res.Scenario.Extra["local_nodes"] = fmt.Sprintf("%d over redis-server", len(cluster.Nodes))
	}
	if errors.Is(runErr, loadgen.ErrInterrupted) {
		pp.Logf("interrupted: writing what was measured so far")
	}
	if err := res.Save(filepath.Join(out, reports.FileResult)); err != nil {
		return err
	}
	if err := reports.WriteAll(out, res); err != nil {
		pp.Logf("some reports could not be written: %v", err)
	}
	fmt.Fprintln(stdout)
	if err := reports.Text(stdout, res); err != nil {
		return err
	}
	fmt.Fprintln(stdout)
	fmt.Fprintln(stdout, verdictLine(res, out))
	if runErr != nil {
		return &exitError{code: 1, err: runErr}
	}
	if !res.Verdict.Pass {
		return &exitError{code: 1, err: errors.New("verdict " + res.Verdict.String())}
	}
	return nil
}

// startCluster starts the local cluster of --nodes: redis-server and the
// nodes, each logging to a file of its own next to serverLog (server.log:
// server-n0.log, …, server-redis.log).
func startCluster(ctx context.Context, ls localServer, serverLog string, logf func(string, ...any)) (*localserver.Cluster, error) {
	ext := filepath.Ext(serverLog)
	stem := strings.TrimSuffix(serverLog, ext)
	var files []*os.File
	var ferr error
	logOf := func(name string) io.Writer {
		if name == "redis-server" {
			name = "redis"
		}
		f, err := os.Create(stem + "-" + name + ext)
		if err != nil {
			ferr = err
			return nil
		}
		files = append(files, f)
		return f
	}
	cluster, err := localserver.StartCluster(ctx, localserver.ClusterConfig{Nodes: ls.nodes, Args: ls.args, Log: logOf})
	// The children have their own descriptors of the log files (or a
	// copying goroutine that ends with them: not with a file, which the
	// child gets as is).
	for _, f := range files {
		f.Close()
	}
	if err != nil {
		if errors.Is(err, localserver.ErrNoRedis) {
			return nil, fmt.Errorf("--nodes %d: %w", ls.nodes, err)
		}
		return nil, fmt.Errorf("no --target given and the local cluster did not start: %w", err)
	}
	if ferr != nil {
		logf("local cluster: some logs cannot be written: %v", ferr)
	}
	var pids []string
	for i, n := range cluster.Nodes {
		pids = append(pids, fmt.Sprintf("%s pid %d at %s", cluster.IDs[i], n.PID(), n.WS))
	}
	logf("no --target: started a local cluster: redis-server (pid %d) at %s, and %d nodes `imload serve --redis %s --node-id nK --advertise ws://…/ws` (%s); their /lbs at %s; logs in %s-*%s",
		cluster.Redis.PID(), cluster.Redis.Addr, len(cluster.Nodes), cluster.Redis.URL, strings.Join(pids, ", "), cluster.LBS(), stem, ext)
	return cluster, nil
}

// clusterKiller is the local cluster as the kill_node fault's NodeKiller,
// saying which process a restarted node is.
type clusterKiller struct {
	c    *localserver.Cluster
	logf func(string, ...any)
}

func (k clusterKiller) KillNode(ws string) error { return k.c.KillNode(ws) }

func (k clusterKiller) RestartNode(ctx context.Context, ws string) error {
	if err := k.c.RestartNode(ctx, ws); err != nil {
		return err
	}
	id, srv := k.c.Node(ws)
	k.logf("local cluster: node %s started again as %s (pid %d)", ws, id, srv.PID())
	return nil
}

// clusterProcesses names the cluster's processes for server_process: each
// node (by id, with its address) and redis-server.
func clusterProcesses(c *localserver.Cluster) []loadgen.ServerProcess {
	var ps []loadgen.ServerProcess
	for i, n := range c.Nodes {
		ps = append(ps, loadgen.ServerProcess{Name: c.IDs[i], Target: n.WS, PID: n.PID})
	}
	return append(ps, loadgen.ServerProcess{Name: "redis-server", PID: c.Redis.PID})
}

// verdictLine is the one-line verdict printed last: the verdict, then the
// numbers of each run that matter most, then where the results are.
func verdictLine(r *reports.Result, out string) string {
	var parts []string
	for _, run := range r.Runs {
		p := fmt.Sprintf("%s %d conns/%d sessions", run.Mode, run.PhysicalConnectionsPeak, run.SessionsPeak)
		if run.MultiNode() {
			p += fmt.Sprintf(" over %d nodes", len(run.Nodes))
		}
		p += fmt.Sprintf(", %d/%d delivered, %d lost, %d mismatched, p99 %.1f ms",
			run.Delivery.Delivered, run.Delivery.Expected, run.Delivery.Lost, run.Delivery.Mismatched, run.Latency[reports.HistDelivery].P99Ms)
		if run.MultiNode() {
			p += fmt.Sprintf(", %d cross-node", run.Delivery.CrossNode)
		}
		if run.Counters.Kicks > 0 {
			p += fmt.Sprintf(", %d KICKS (too_many_connections)", run.Counters.Kicks)
		}
		for _, f := range run.Faults {
			if f.Kind == reports.FaultKillNode {
				p += fmt.Sprintf(", node %s killed at %.1f s (%d links cut, %d resets)", f.Node, float64(f.AtMs)/1000, f.LinkLosses, run.Counters.Resets)
				continue
			}
			p += fmt.Sprintf(", %s at %.1f s (%d links cut, %d resets)", f.Kind, float64(f.AtMs)/1000, f.LinkLosses, run.Counters.Resets)
		}
		parts = append(parts, p)
	}
	return fmt.Sprintf("imload run: %s — %s; results in %s", r.Verdict, strings.Join(parts, "; "), out)
}
