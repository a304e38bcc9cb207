package loadgen

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// Child is an `imload serve` process started by the load generator when no
// target is given. It is a separate process, not a goroutine, because the
// open-files limit is per process: 15,000 client sockets and 15,000 server
// sockets do not fit under one limit of 20,000.
type Child struct {
	cmd  *exec.Cmd
	URL  string // http://127.0.0.1:PORT
	WS   string // ws://127.0.0.1:PORT/ws
	done chan struct{}
	err  error
}

// ChildConfig says how to start the server.
type ChildConfig struct {
	// Exe is the imload binary (default: this executable).
	Exe string
	// Args are extra arguments after `serve --addr 127.0.0.1:0 --memory`.
	Args []string
	// Stderr receives the server's logs (default: discarded).
	Stderr io.Writer
	// StartTimeout bounds the wait for the "listening on" line.
	StartTimeout time.Duration
}

// StartChild starts `imload serve --addr 127.0.0.1:0 --memory` and waits for
// its "listening on http://HOST:PORT" line.
func StartChild(ctx context.Context, cfg ChildConfig) (*Child, error) {
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
	args := append([]string{"serve", "--addr", "127.0.0.1:0", "--memory"}, cfg.Args...)
	cmd := exec.Command(exe, args...)
	cmd.Stderr = cfg.Stderr
	cmd.SysProcAttr = childProcAttr()
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s serve: %w", exe, err)
	}
	c := &Child{cmd: cmd, done: make(chan struct{})}
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
		c.err = cmd.Wait()
		close(c.done)
	}()
	timer := time.NewTimer(cfg.StartTimeout)
	defer timer.Stop()
	select {
	case line, ok := <-lines:
		const prefix = "listening on "
		if !ok || !strings.HasPrefix(line, prefix) {
			c.Stop(5 * time.Second)
			if !ok {
				return nil, fmt.Errorf("imload serve exited before it was ready (%v); run `%s serve --memory` to see why", c.err, exe)
			}
			return nil, fmt.Errorf("imload serve printed %q, want \"listening on http://…\"", line)
		}
		c.URL = strings.TrimPrefix(line, prefix)
		c.WS = "ws://" + strings.TrimPrefix(c.URL, "http://") + "/ws"
		return c, nil
	case <-timer.C:
		c.Stop(5 * time.Second)
		return nil, fmt.Errorf("imload serve did not say it was listening within %s", cfg.StartTimeout)
	case <-ctx.Done():
		c.Stop(5 * time.Second)
		return nil, ctx.Err()
	}
}

// PID returns the server's process id.
func (c *Child) PID() int { return c.cmd.Process.Pid }

// Done is closed when the process has exited.
func (c *Child) Done() <-chan struct{} { return c.done }

// Stop asks the server to shut down gracefully (SIGTERM) and kills it
// (SIGKILL) if it has not exited after timeout. It returns the process's
// exit error, if any other than the signals sent.
func (c *Child) Stop(timeout time.Duration) error {
	select {
	case <-c.done:
		return c.exitErr()
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
		return c.exitErr()
	case <-time.After(timeout):
	}
	_ = c.cmd.Process.Kill()
	<-c.done
	return fmt.Errorf("imload serve did not stop within %s after SIGTERM and was killed", timeout)
}

func (c *Child) exitErr() error {
	var ee *exec.ExitError
	if errors.As(c.err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGTERM {
			return nil
		}
	}
	return c.err
}
