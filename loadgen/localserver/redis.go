package localserver

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ErrNoRedis is wrapped by StartRedis's (and StartCluster's) error when no
// redis-server is on PATH.
var ErrNoRedis = errors.New("redis-server not found on PATH: several local nodes share their rooms through Redis; install the package redis-server (Debian/Ubuntu: apt-get install redis-server), Redis 7 or later")

// Redis is a redis-server child process on a loopback port: no
// persistence (--save "" --appendonly no), its working directory a
// temporary one removed when it stops.
type Redis struct {
	// Addr is 127.0.0.1:PORT, URL redis://127.0.0.1:PORT/0.
	Addr string
	URL  string

	dir string
	p   *proc
}

// RedisConfig says how to start redis-server.
type RedisConfig struct {
	// Bin is the redis-server binary (default: redis-server from PATH).
	Bin string
	// Log receives its log (default: discarded).
	Log io.Writer
	// StartTimeout bounds the wait for its answer to PING (default 10 s).
	StartTimeout time.Duration
}

// StartRedis starts redis-server on a free loopback port and waits until
// it answers PING (and is the process that answers: INFO's process_id).
// A port taken between the choice and the start is retried on another
// one. Without redis-server on PATH the error wraps ErrNoRedis.
func StartRedis(ctx context.Context, cfg RedisConfig) (*Redis, error) {
	bin := cfg.Bin
	if bin == "" {
		var err error
		if bin, err = exec.LookPath("redis-server"); err != nil {
			return nil, ErrNoRedis
		}
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = 10 * time.Second
	}
	dir, err := os.MkdirTemp("", "imload-redis-*")
	if err != nil {
		return nil, fmt.Errorf("a directory for redis-server: %w", err)
	}
	var last error
	for attempt := 0; attempt < 3; attempt++ {
		port, err := freePort()
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		r := &Redis{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), dir: dir}
		r.URL = "redis://" + r.Addr + "/0"
		if last = r.start(ctx, bin, cfg, port); last == nil {
			return r, nil
		}
		if ctx.Err() != nil {
			break
		}
	}
	os.RemoveAll(dir)
	return nil, last
}

// start runs redis-server on port and waits until it answers.
func (r *Redis) start(ctx context.Context, bin string, cfg RedisConfig, port int) error {
	cmd := exec.Command(bin,
		"--port", strconv.Itoa(port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", r.dir,
		"--daemonize", "no",
		"--logfile", "", // to stdout
	)
	cmd.Dir = r.dir
	cmd.Stdout, cmd.Stderr = cfg.Log, cfg.Log
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", bin, err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	deadline := time.Now().Add(cfg.StartTimeout)
	for {
		select {
		case <-p.done:
			return fmt.Errorf("redis-server on port %d exited at once (%v): its log says why", port, p.err)
		case <-ctx.Done():
			p.kill()
			return ctx.Err()
		default:
		}
		if ok, err := r.ours(p.cmd.Process.Pid); ok {
			r.p = p
			return nil
		} else if time.Now().After(deadline) {
			p.kill()
			return fmt.Errorf("redis-server on port %d did not answer within %s: %v", port, cfg.StartTimeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ours asks the server at r.Addr for its process id (INFO server) and
// says whether it is pid: the server started, not another one that holds
// the port.
func (r *Redis) ours(pid int) (bool, error) {
	c, err := net.DialTimeout("tcp", r.Addr, 300*time.Millisecond)
	if err != nil {
		return false, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := io.WriteString(c, "INFO server\r\n"); err != nil {
		return false, err
	}
	br := bufio.NewReader(c)
	head, err := br.ReadString('\n')
	if err != nil {
		return false, err
	}
	if !strings.HasPrefix(head, "$") {
		return false, fmt.Errorf("INFO answered %q", strings.TrimSpace(head))
	}
	n, err := strconv.Atoi(strings.TrimSpace(head[1:]))
	if err != nil || n < 0 || n > 1<<20 {
		return false, fmt.Errorf("INFO answered %q", strings.TrimSpace(head))
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(br, body); err != nil {
		return false, err
	}
	if !strings.Contains(string(body), "process_id:"+strconv.Itoa(pid)+"\r\n") {
		return false, errors.New("another redis-server answers on this port")
	}
	return true, nil
}

// Counters returns redis-server's cumulative counters: every numeric
// field of INFO stats (total_commands_processed, total_net_input_bytes,
// total_net_output_bytes, …) and, from INFO commandstats, the calls of
// each command as cmdstat_NAME (evalsha, spublish, …; commands a script
// runs are counted too).
func (r *Redis) Counters(ctx context.Context) (map[string]int64, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", r.Addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	out := make(map[string]int64)
	for _, section := range []string{"stats", "commandstats"} {
		body, err := redisInfo(c, section)
		if err != nil {
			return nil, err
		}
		for _, line := range strings.Split(body, "\r\n") {
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			if section == "commandstats" {
				// cmdstat_evalsha:calls=12,usec=…
				calls, _, _ := strings.Cut(strings.TrimPrefix(v, "calls="), ",")
				if n, err := strconv.ParseInt(calls, 10, 64); err == nil {
					out[k] = n
				}
				continue
			}
			if n, err := strconv.ParseInt(v, 10, 64); err == nil {
				out[k] = n
			}
		}
	}
	return out, nil
}

// redisInfo sends INFO section on c and returns the bulk string answered.
func redisInfo(c net.Conn, section string) (string, error) {
	if _, err := io.WriteString(c, "INFO "+section+"\r\n"); err != nil {
		return "", err
	}
	br := bufio.NewReader(c)
	head, err := br.ReadString('\n')
	if err != nil {
		return "", err
	}
	n, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(head, "$")))
	if !strings.HasPrefix(head, "$") || err != nil || n < 0 || n > 1<<20 {
		return "", fmt.Errorf("INFO %s answered %q", section, strings.TrimSpace(head))
	}
	body := make([]byte, n+2)
	if _, err := io.ReadFull(br, body); err != nil {
		return "", err
	}
	return string(body[:n]), nil
}

// PID returns redis-server's process id.
func (r *Redis) PID() int { return r.p.cmd.Process.Pid }

// Stop stops redis-server (SIGTERM, SIGKILL after timeout), waits until it
// has exited and removes its directory.
func (r *Redis) Stop(timeout time.Duration) error {
	defer os.RemoveAll(r.dir)
	select {
	case <-r.p.done:
		return nil
	default:
	}
	_ = r.p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.p.done:
		return nil
	case <-time.After(timeout):
	}
	r.p.kill()
	return fmt.Errorf("redis-server did not stop within %s after SIGTERM and was killed", timeout)
}

// freePort returns a loopback TCP port nobody listened on a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
