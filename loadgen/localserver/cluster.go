package localserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Cluster is a local deployment of several nodes: one redis-server child
// and N `imload serve --redis` children sharing it (imload run --nodes N),
// each on a loopback port of its own, node K named nK and advertising
// ws://127.0.0.1:PORT/ws, so that every node's /lbs lists them all. Stop
// stops them all; KillNode kills one (SIGKILL) for good. Its methods are
// safe for concurrent use.
type Cluster struct {
	// Redis is the redis-server the nodes share.
	Redis *Redis
	// Nodes are the nodes, node K's id IDs[K] (nK; nK.G after its G-th
	// RestartNode). IDs changes at a restart: read it between runs only.
	Nodes []*Server
	IDs   []string

	mu     sync.Mutex
	killed []bool
	gen    []int // restarts of each node
}

// ClusterConfig says how to start a Cluster.
type ClusterConfig struct {
	// Nodes is the number of imload serve nodes (at least 1).
	Nodes int
	// Exe is the imload binary (default: this executable).
	Exe string
	// Args are extra arguments for every node, after the Redis flags.
	Args []string
	// Log returns where the process named name writes its logs ("n0", …
	// for the nodes, "redis-server"); nil, or a nil writer: discarded.
	Log func(name string) io.Writer
	// RedisBin is the redis-server binary (default: from PATH).
	RedisBin string
	// StartTimeout bounds each process's start.
	StartTimeout time.Duration
}

// StartCluster starts redis-server, then the nodes one after the other,
// each on a free loopback port chosen before it starts (its advertised
// address names it; a port taken meanwhile is retried on another one).
// If anything fails, what was started is stopped. Without redis-server on
// PATH the error wraps ErrNoRedis.
func StartCluster(ctx context.Context, cfg ClusterConfig) (*Cluster, error) {
	if cfg.Nodes < 1 {
		return nil, fmt.Errorf("a cluster needs at least one node, not %d", cfg.Nodes)
	}
	logOf := func(name string) io.Writer {
		if cfg.Log == nil {
			return nil
		}
		return cfg.Log(name)
	}
	r, err := StartRedis(ctx, RedisConfig{Bin: cfg.RedisBin, Log: logOf("redis-server"), StartTimeout: cfg.StartTimeout})
	if err != nil {
		return nil, err
	}
	c := &Cluster{Redis: r, killed: make([]bool, cfg.Nodes), gen: make([]int, cfg.Nodes)}
	for k := range cfg.Nodes {
		id := "n" + strconv.Itoa(k)
		var srv *Server
		for attempt := 0; ; attempt++ {
			port, perr := freePort()
			if perr != nil {
				err = perr
				break
			}
			srv, err = Start(ctx, Config{Exe: cfg.Exe, Args: cfg.Args, Stderr: logOf(id), StartTimeout: cfg.StartTimeout,
				Redis: r.URL, NodeID: id, Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port))})
			if err == nil || !errors.Is(err, errExited) || attempt == 2 || ctx.Err() != nil {
				break
			}
		}
		if err != nil {
			c.Stop(5 * time.Second)
			return nil, fmt.Errorf("node %s: %w", id, err)
		}
		c.Nodes = append(c.Nodes, srv)
		c.IDs = append(c.IDs, id)
	}
	// Each node refreshes its view of the node list every second: wait
	// until every node's /lbs lists them all, so that a run starting now
	// finds every node.
	if err := c.waitListed(ctx, 10*time.Second); err != nil {
		c.Stop(5 * time.Second)
		return nil, err
	}
	return c, nil
}

// waitListed waits until the /lbs of every node lists every node.
func (c *Cluster) waitListed(ctx context.Context, timeout time.Duration) error {
	want := c.WS()
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	for _, n := range c.Nodes {
		for {
			got, err := fetchList(ctx, client, n.URL+"/lbs")
			if err == nil && containsAll(got, want) {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("the nodes do not all list each other after %s: %s/lbs lists %v (%v), want %v", timeout, n.URL, got, err, want)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	return nil
}

// fetchList reads an /lbs address list.
func fetchList(ctx context.Context, client *http.Client, u string) ([]string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	var v struct {
		Addrs []string `json:"addrs"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&v); err != nil {
		return nil, err
	}
	return v.Addrs, nil
}

func containsAll(got, want []string) bool {
	for _, w := range want {
		if !slices.Contains(got, w) {
			return false
		}
	}
	return true
}

// WS returns the nodes' WebSocket addresses, node 0 first.
func (c *Cluster) WS() []string {
	out := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		out[i] = n.WS
	}
	return out
}

// LBS returns the address list URL of node 0 (every node's /lbs lists the
// live nodes).
func (c *Cluster) LBS() string { return c.Nodes[0].URL + "/lbs" }

// KillNode kills the node whose WebSocket address is ws with SIGKILL (no
// goaway, nothing said to Redis: it drops out of the node list when its
// entry expires) and waits until it has exited. It is not restarted.
func (c *Cluster) KillNode(ws string) error {
	for i, n := range c.Nodes {
		if n.WS != ws {
			continue
		}
		c.mu.Lock()
		c.killed[i] = true
		c.mu.Unlock()
		n.Kill()
		return nil
	}
	return fmt.Errorf("no node at %s", ws)
}

// RestartNode starts the node at ws, killed by KillNode, again on the same
// address, and waits until every node lists it. It comes back under a new
// node id, nK.G (the G-th restart of node K): the dead node's sessions stay
// in Redis until they expire (15 s), and a new process under the old id
// would be taken for it (a kick for one of the dead node's connections
// would close the new process's connection of that number).
func (c *Cluster) RestartNode(ctx context.Context, ws string) error {
	for i, n := range c.Nodes {
		if n.WS != ws {
			continue
		}
		c.mu.Lock()
		c.gen[i]++
		id := fmt.Sprintf("n%d.%d", i, c.gen[i])
		c.mu.Unlock()
		n.mu.Lock()
		n.cfg.NodeID = id
		n.mu.Unlock()
		if err := n.Restart(ctx); err != nil {
			return err
		}
		c.mu.Lock()
		c.killed[i] = false
		c.IDs[i] = id
		c.mu.Unlock()
		return c.waitListed(ctx, 10*time.Second)
	}
	return fmt.Errorf("no node at %s", ws)
}

// Node returns the id and the process of the node at ws (nil if none).
func (c *Cluster) Node(ws string) (string, *Server) {
	for i, n := range c.Nodes {
		if n.WS == ws {
			c.mu.Lock()
			defer c.mu.Unlock()
			return c.IDs[i], n
		}
	}
	return "", nil
}

// Killed reports whether node i was killed (KillNode).
func (c *Cluster) Killed(i int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.killed[i]
}

// Stop stops every node (SIGTERM, all at once, SIGKILL after timeout),
// then redis-server, and waits until they have all exited. It returns the
// first error.
func (c *Cluster) Stop(timeout time.Duration) error {
	errs := make([]error, len(c.Nodes))
	var wg sync.WaitGroup
	for i, n := range c.Nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := n.Stop(timeout); err != nil {
				errs[i] = fmt.Errorf("node %s: %w", c.IDs[i], err)
			}
		}()
	}
	wg.Wait()
	if err := c.Redis.Stop(timeout); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
