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
	if better(m, p.peak) {
		p.peak = m
	}
}

func (p *statsPoller) get() (peak, first, last map[string]any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.peak, p.first, p.last
}

// statsPolls samples the /stats of the run's server (the first target)
// and, when the run has several nodes, of each node of the initial list:
// one poller per distinct http://host:port, all sampled together every
// second (one request each, at the same time). With several nodes the
// run's server_stats_peak is their aggregate: each second's samples
// summed (aggregateStats), the one with the most connections kept.
type statsPolls struct {
	bases []string // distinct, the run's first
	by    map[string]*statsPoller
	nodes []*statsPoller // the poller of each initial node (nil: one node)
	wg    sync.WaitGroup

	aggMu sync.Mutex
	agg   map[string]any // the aggregate at its peak (several nodes)
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
// then every second until ctx ends (wait waits for it).
func (p *statsPolls) start(ctx context.Context) {
	p.sample(ctx)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				p.sample(ctx)
			}
		}
	}()
}

// sample samples every server once, all at the same time (one goroutine
// each, which ends with its request: at most 900 ms), then aggregates the
// nodes' samples.
func (p *statsPolls) sample(ctx context.Context) {
	if len(p.bases) == 1 {
		p.by[p.bases[0]].sample(ctx, p.bases[0])
		return
	}
	var wg sync.WaitGroup
	for _, b := range p.bases {
		sp := p.by[b]
		wg.Add(1)
		go func() { defer wg.Done(); sp.sample(ctx, b) }()
	}
	wg.Wait()
	if len(p.nodes) > 0 {
		p.aggregate()
	}
}

// aggregate sums the nodes' latest samples, when they are from this second
// (a node whose sample failed is left out), and keeps the sum with the most
// physical connections (then sessions).
func (p *statsPolls) aggregate() {
	var ms []map[string]any
	seen := map[*statsPoller]bool{}
	for _, sp := range p.nodes {
		if sp == nil || seen[sp] {
			continue
		}
		seen[sp] = true
		sp.mu.Lock()
		if !sp.lastFailed && sp.last != nil {
			ms = append(ms, sp.last)
		}
		sp.mu.Unlock()
	}
	if len(ms) == 0 {
		return
	}
	m := aggregateStats(ms)
	p.aggMu.Lock()
	defer p.aggMu.Unlock()
	if better(m, p.agg) {
		p.agg = m
	}
}

// better says whether /stats sample m has more physical connections than
// peak (ties: more sessions), or peak is nil.
func better(m, peak map[string]any) bool {
	if peak == nil {
		return true
	}
	pc, ps := statNum(m, reports.StatPhysicalConnections), statNum(m, reports.StatLogicalSessions)
	return pc > statNum(peak, reports.StatPhysicalConnections) ||
		(pc == statNum(peak, reports.StatPhysicalConnections) && ps > statNum(peak, reports.StatLogicalSessions))
}

// aggregateStats sums /stats samples of several nodes taken in the same
// second: every number summed (recursively through nested objects, such
// as physical_by_mode), uptime_seconds the largest, anything else the
// first sample's; reports.StatNodes says how many were summed.
func aggregateStats(ms []map[string]any) map[string]any {
	out := sumStats(ms)
	var up float64
	for _, m := range ms {
		up = max(up, statNum(m, reports.StatUptimeSeconds))
	}
	if _, ok := out[reports.StatUptimeSeconds]; ok {
		out[reports.StatUptimeSeconds] = up
	}
	out[reports.StatNodes] = float64(len(ms))
	return out
}

func sumStats(ms []map[string]any) map[string]any {
	out := map[string]any{}
	for _, m := range ms {
		for k, v := range m {
			switch x := v.(type) {
			case float64:
				if prev, ok := out[k].(float64); ok {
					out[k] = prev + x
				} else if _, taken := out[k]; !taken {
					out[k] = x
				}
			case map[string]any:
				if prev, ok := out[k].(map[string]any); ok {
					out[k] = sumStats([]map[string]any{prev, x})
				} else if _, taken := out[k]; !taken {
					out[k] = sumStats([]map[string]any{x})
				}
			default:
				if _, taken := out[k]; !taken {
					out[k] = v
				}
			}
		}
	}
	return out
}

// runPeak is the run's server_stats_peak: the run's server's /stats at its
// peak, or with several nodes their aggregate at its peak.
func (p *statsPolls) runPeak() map[string]any {
	if len(p.nodes) > 0 {
		p.aggMu.Lock()
		defer p.aggMu.Unlock()
		return p.agg
	}
	peak, _, _ := p.run().get()
	return peak
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
		if first == nil || last == nil || failed || statNum(last, reports.StatUptimeSeconds) < statNum(first, reports.StatUptimeSeconds) {
			return nil, false
		}
		for _, k := range keys {
			out[k] += int64(statNum(last, k) - statNum(first, k))
		}
	}
	return out, true
}
