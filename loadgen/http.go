package loadgen

// The target's HTTP endpoints: /lbs (the address list) and /stats (sampled
// every second during a run).

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"imload/reports"
)

var httpClient = &http.Client{Transport: &http.Transport{
	Proxy:               nil,
	MaxIdleConnsPerHost: 2,
	IdleConnTimeout:     5 * time.Second,
}}

// httpBase returns http://host:port for a ws:// (or wss://) URL.
func httpBase(wsURL string) (string, error) {
	u, err := url.Parse(wsURL)
	if err != nil {
		return "", err
	}
	scheme := "http"
	if u.Scheme == "wss" {
		scheme = "https"
	}
	return scheme + "://" + u.Host, nil
}

func getJSON(ctx context.Context, u string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return json.NewDecoder(io.LimitReader(resp.Body, 4<<20)).Decode(v)
}

// fetchLBS reads the address list at u (http://host:port/lbs): the nodes'
// ws:// addresses, best first (the server's handleLBS).
func fetchLBS(ctx context.Context, u string) ([]string, error) {
	var v struct {
		Addrs []string `json:"addrs"`
	}
	if err := getJSON(ctx, u, &v); err != nil {
		return nil, err
	}
	var out []string
	for _, a := range v.Addrs {
		if _, err := url.Parse(a); err == nil && a != "" {
			out = append(out, a)
		}
	}
	return out, nil
}

// fetchStats reads base/stats as a generic JSON object.
func fetchStats(ctx context.Context, base string) (map[string]any, error) {
	var m map[string]any
	if err := getJSON(ctx, base+"/stats", &m); err != nil {
		return nil, err
	}
	return m, nil
}

func statNum(m map[string]any, k string) float64 {
	if m == nil {
		return 0
	}
	if v, ok := m[k].(float64); ok {
		return v
	}
	return 0
}

// statsPoller samples the target's /stats every second and keeps the sample
// with the most physical connections (ties: the most sessions), plus the
// first and the last sample.
type statsPoller struct {
	mu          sync.Mutex
	peak        map[string]any
	first, last map[string]any
	failures    int
	lastFailed  bool // the latest sample failed: last is older than it
}

func (p *statsPoller) run(ctx context.Context, base string, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		p.sample(ctx, base)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (p *statsPoller) sample(ctx context.Context, base string) {
	c, cancel := context.WithTimeout(ctx, 900*time.Millisecond)
	m, err := fetchStats(c, base)
	cancel()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lastFailed = err != nil
	if err != nil {
		p.failures++
		return
	}
	if p.first == nil {
		p.first = m
	}
	p.last = m
	pc, ps := statNum(m, reports.StatPhysicalConnections), statNum(m, reports.StatLogicalSessions)
	if p.peak == nil || pc > statNum(p.peak, reports.StatPhysicalConnections) ||
		(pc == statNum(p.peak, reports.StatPhysicalConnections) && ps > statNum(p.peak, reports.StatLogicalSessions)) {
		p.peak = m
	}
}

func (p *statsPoller) get() (peak, first, last map[string]any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.peak, p.first, p.last
}

// statsPolls samples the /stats of the run's server (the first target,
// whose peak is the run's server_stats_peak) and, when the run has several
// nodes, of each node of the initial list: one poller per distinct
// http://host:port, each on a goroutine of its own.
type statsPolls struct {
	bases []string // distinct, the run's first
	by    map[string]*statsPoller
	nodes []*statsPoller // the poller of each initial node (nil: one node)
	wg    sync.WaitGroup
}

// newStatsPolls returns the pollers for the run's server base and the
// nodes at addrs; statsURLs, if any, replace the bases of the nodes in
// their order (Scenario.StatsURLs), the first the run's server's.
func newStatsPolls(base string, addrs, statsURLs []string) *statsPolls {
	statsAt := func(i int, def string) string {
		if i < len(statsURLs) {
			return strings.TrimSuffix(strings.TrimRight(statsURLs[i], "/"), "/stats")
		}
		return def
	}
	base = statsAt(0, base)
	p := &statsPolls{by: map[string]*statsPoller{}}
	add := func(b string) *statsPoller {
		if sp, ok := p.by[b]; ok {
			return sp
		}
		sp := &statsPoller{}
		p.by[b] = sp
		p.bases = append(p.bases, b)
		return sp
	}
	add(base)
	if len(addrs) > 1 {
		for i, a := range addrs {
			b, err := httpBase(a)
			if err != nil && i >= len(statsURLs) {
				p.nodes = append(p.nodes, nil)
				continue
			}
			p.nodes = append(p.nodes, add(statsAt(i, b)))
		}
	}
	return p
}

// start samples every server once (the baseline before any connection),
// then every second until ctx ends (wait waits for them).
func (p *statsPolls) start(ctx context.Context) {
	p.sample(ctx)
	for _, b := range p.bases {
		sp := p.by[b]
		p.wg.Add(1)
		go func() { defer p.wg.Done(); sp.run(ctx, b, time.Second) }()
	}
}

// sample samples every server once, one after the other.
func (p *statsPolls) sample(ctx context.Context) {
	for _, b := range p.bases {
		p.by[b].sample(ctx, b)
	}
}

func (p *statsPolls) wait() { p.wg.Wait() }

// run is the poller of the run's server.
func (p *statsPolls) run() *statsPoller { return p.by[p.bases[0]] }

// nodePeak is node i's /stats at its peak (nil with one node, or when it
// never answered).
func (p *statsPolls) nodePeak(i int) map[string]any {
	if i >= len(p.nodes) || p.nodes[i] == nil {
		return nil
	}
	peak, _, _ := p.nodes[i].get()
	return peak
}

// deltas returns how much the /stats counters keys grew over the run: the
// run's server's, or with several nodes the sum over the nodes' (each
// counts what went through it). ok is false when a server did not answer
// at the start or to the last sample (after the drain: a node that died
// would count only up to its last answer), or restarted meanwhile (its
// counters started again from zero).
func (p *statsPolls) deltas(keys []string) (map[string]int64, bool) {
	pollers := []*statsPoller{p.run()}
	if len(p.nodes) > 0 {
		pollers = nil
		seen := map[*statsPoller]bool{}
		for _, sp := range p.nodes {
			if sp == nil {
				return nil, false
			}
			if !seen[sp] {
				seen[sp] = true
				pollers = append(pollers, sp)
			}
		}
	}
	out := map[string]int64{}
	for _, sp := range pollers {
		sp.mu.Lock()
		first, last, failed := sp.first, sp.last, sp.lastFailed
		sp.mu.Unlock()
		if first == nil || last == nil || failed || statNum(last, "uptime_seconds") < statNum(first, "uptime_seconds") {
			return nil, false
		}
		for _, k := range keys {
			out[k] += int64(statNum(last, k) - statNum(first, k))
		}
	}
	return out, true
}
