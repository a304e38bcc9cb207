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
	"sync"
	"time"
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

// fetchLBS reads the address list at base/lbs.
func fetchLBS(ctx context.Context, base string) ([]string, error) {
	var v struct {
		Addrs []string `json:"addrs"`
	}
	if err := getJSON(ctx, base+"/lbs", &v); err != nil {
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
	if err != nil {
		p.failures++
		return
	}
	if p.first == nil {
		p.first = m
	}
	p.last = m
	pc, ps := statNum(m, "physical_connections"), statNum(m, "logical_sessions")
	if p.peak == nil || pc > statNum(p.peak, "physical_connections") ||
		(pc == statNum(p.peak, "physical_connections") && ps > statNum(p.peak, "logical_sessions")) {
		p.peak = m
	}
}

func (p *statsPoller) get() (peak, first, last map[string]any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.peak, p.first, p.last
}
