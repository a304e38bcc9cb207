// Package localserver runs the server under test on this machine, for
// `imload run` without --target: it starts `imload serve` as a child process
// on a loopback port, stops it at the end, and can kill, stop and restart it
// on the same address and data directory in the middle of a run (the faults
// on demand, driven by loadgen.WithFaults). With `imload run --nodes N` it
// starts a Cluster instead: a redis-server child (StartRedis) and N `imload
// serve --redis` nodes sharing it, stopped together, one of which can be
// killed (loadgen's kill_node fault). The load generator itself (package
// loadgen) manages no process.
package localserver

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Server is an `imload serve` process started on this machine. It is a
// separate process, not a goroutine, because the open-files limit is per
// process: 15,000 client sockets and 15,000 server sockets do not fit under
// one limit of 20,000.
//
// A Server can be stopped and started again on the same address and data
// directory (Kill or Stop, then Restart): the faults on demand of `imload
// run`; it is the loadgen.FaultServer they drive. Its methods are safe for
// concurrent use.
type Server struct {
	URL string // http://127.0.0.1:PORT
	WS  string // ws://127.0.0.1:PORT/ws

	exe  string
	cfg  Config
	addr string // 127.0.0.1:PORT, bound by the first start

	mu sync.Mutex
	p  *proc // the current process
}

// proc is one process of a Server.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// Config says how to start the server.
type Config struct {
	// Exe is the imload binary (default: this executable).
	Exe string
	// Args are extra arguments after `serve --addr 127.0.0.1:0 --memory`
	// (or `--data DataDir`, or the Redis flags).
	Args []string
	// DataDir, when set, is the server's data directory (--data) instead
	// of --memory: what a restart needs to keep history.
	DataDir string
	// Redis, when set (redis://127.0.0.1:PORT/0), makes the server a node
	// of several sharing that Redis: `--redis Redis --node-id NodeID
	// --advertise ws://Addr/ws` instead of --memory or --data. It needs
	// Addr with a port (the advertised address is decided before the
	// start).
	Redis  string
	NodeID string
	// Addr is the address to listen on (default 127.0.0.1:0, a free port).
	Addr string
	// Stderr receives the server's logs (default: discarded).
	Stderr io.Writer
	// StartTimeout bounds the wait for the "listening on" line.
	StartTimeout time.Duration
}

// Start starts `imload serve --addr 127.0.0.1:0 --memory` (or --data
// DataDir) and waits for its "listening on http://HOST:PORT" line.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	exe := cfg.Exe
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("find the imload executable: %w", err)
		}
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = 15 * time.Second
	}
	addr := cfg.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	if cfg.Redis != "" && strings.HasSuffix(addr, ":0") {
		return nil, errors.New("a node over Redis needs its port before it starts (Config.Addr), to advertise it")
	}
	c := &Server{exe: exe, cfg: cfg}
	p, url, err := c.start(ctx, addr)
	if err != nil {
		return nil, err
	}
	c.p = p
	c.URL = url
	c.addr = strings.TrimPrefix(url, "http://")
	c.WS = "ws://" + c.addr + "/ws"
	return c, nil
}

// start runs one server process on addr and waits until it listens.
func (c *Server) start(ctx context.Context, addr string) (*proc, string, error) {
	c.mu.Lock()
	cfg := c.cfg
	c.mu.Unlock()
	store := []string{"--memory"}
	switch {
	case cfg.Redis != "":
		store = []string{"--redis", cfg.Redis, "--node-id", cfg.NodeID, "--advertise", "ws://" + addr + "/ws"}
	case cfg.DataDir != "":
		store = []string{"--data", cfg.DataDir}
	}
	args := append(append([]string{"serve", "--addr", addr}, store...), cfg.Args...)
	cmd := exec.Command(c.exe, args...)
	cmd.Stderr = cfg.Stderr
	cmd.SysProcAttr = procAttr()
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, "", err
	}
	if err := cmd.Start(); err != nil {
		return nil, "", fmt.Errorf("start %s serve: %w", c.exe, err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	lines := make(chan string, 1)
	go func() {
		br := bufio.NewReader(out)
		line, err := br.ReadString('\n')
		if err == nil {
			lines <- strings.TrimSpace(line)
		} else {
			close(lines)
		}
		io.Copy(io.Discard, br) // keep the pipe drained
	}()
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	timer := time.NewTimer(cfg.StartTimeout)
	defer timer.Stop()
	select {
	case line, ok := <-lines:
		const prefix = "listening on "
		if !ok || !strings.HasPrefix(line, prefix) {
			p.stop(5 * time.Second)
			if !ok {
				<-p.done
				return nil, "", fmt.Errorf("%w (%v); run `%s %s` to see why", errExited, p.err, c.exe, strings.Join(args, " "))
			}
			return nil, "", fmt.Errorf("imload serve printed %q, want \"listening on http://…\"", line)
		}
		return p, strings.TrimPrefix(line, prefix), nil
	case <-timer.C:
		p.stop(5 * time.Second)
		return nil, "", fmt.Errorf("imload serve did not say it was listening within %s", cfg.StartTimeout)
	case <-ctx.Done():
		p.stop(5 * time.Second)
		return nil, "", ctx.Err()
	}
}

// errExited: the server process ended before it said it was listening
// (its address taken, a bad argument, …).
var errExited = errors.New("imload serve exited before it was ready")

// PID returns the current server process's id (it changes at a restart).
func (c *Server) PID() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.p.cmd.Process.Pid
}

// Done is closed when the current process has exited.
func (c *Server) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.p.done
}

// Stop asks the server to shut down gracefully (SIGTERM) and kills it
// (SIGKILL) if it has not exited after timeout. It returns the process's
// exit error, if any other than the signals sent.
func (c *Server) Stop(timeout time.Duration) error {
	c.mu.Lock()
	p := c.p
	c.mu.Unlock()
	return p.stop(timeout)
}

// Kill stops the server at once with SIGKILL (a crash: nothing flushed,
// no goaway) and waits until it has exited.
func (c *Server) Kill() {
	c.mu.Lock()
	p := c.p
	c.mu.Unlock()
	p.kill()
}

// Restart starts the server again on the same address, data directory and
// arguments, after the current process has exited (after Kill or Stop). A
// port still held for a moment is retried for up to 10 s.
func (c *Server) Restart(ctx context.Context) error {
	c.mu.Lock()
	old := c.p
	c.mu.Unlock()
	select {
	case <-old.done:
	default:
		return errors.New("restart: the server is still running")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		p, url, err := c.start(ctx, c.addr)
		if err == nil {
			if url != c.URL {
				p.stop(5 * time.Second)
				return fmt.Errorf("restart: the server listens on %s, not %s", url, c.URL)
			}
			c.mu.Lock()
			c.p = p
			c.mu.Unlock()
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("restart on %s: %w", c.addr, err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (p *proc) stop(timeout time.Duration) error {
	select {
	case <-p.done:
		return p.exitErr()
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.exitErr()
	case <-time.After(timeout):
	}
	_ = p.cmd.Process.Kill()
	<-p.done
	return fmt.Errorf("imload serve did not stop within %s after SIGTERM and was killed", timeout)
}

func (p *proc) exitErr() error {
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && (ws.Signal() == syscall.SIGTERM || ws.Signal() == syscall.SIGKILL) {
			return nil
		}
	}
	return p.err
}

// kill sends SIGKILL and waits until the process has exited.
func (p *proc) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}
