package reports

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
)

// Side is one side of a comparison: a run and the label to show for it.
type Side struct {
	// Label names the side in headers ("per-tab", "last week", a file name).
	Label string
	// Run is the measured run.
	Run *Run
	// Protocol names the wire protocol the run spoke (its scenario's
	// ProtocolName), or "" when unknown.
	Protocol string
}

// Better says which side of a comparison row is better.
type Better int

// Values of Better.
const (
	BetterNone Better = iota // equal, incomparable, or neither is better
	BetterA
	BetterB
)

// direction says which way is better for a metric.
type direction int

const (
	neutral direction = iota
	lowerBetter
	higherBetter
)

// unit says how a comparison value is formatted.
type unit int

const (
	unitCount unit = iota
	unitRatio
	unitMs
	unitBytes
	unitSeconds
)

// CompareRow is one metric of a comparison.
type CompareRow struct {
	// Name is the metric's label.
	Name string
	// A and B are the values; HasA and HasB say whether each side has one.
	A, B       float64
	HasA, HasB bool
	// Better marks the better side, if any.
	Better Better
	unit   unit
}

// Ratio returns B/A and whether it is defined.
func (r CompareRow) Ratio() (float64, bool) {
	if !r.HasA || !r.HasB || r.A == 0 {
		return 0, false
	}
	return r.B / r.A, true
}

// CompareSection is a titled group of rows.
type CompareSection struct {
	Title string
	Rows  []CompareRow
}

// Comparison is the side-by-side comparison of two runs (A and B, with the
// ratio B/A and the better side of each metric marked). Render it with Text
// or HTML.
type Comparison struct {
	// A and B are the sides' labels.
	A, B string
	// ProtocolA and ProtocolB name the sides' wire protocols ("" when
	// unknown).
	ProtocolA, ProtocolB string
	// Sections hold the rows, in display order.
	Sections []CompareSection
}

// Compare builds the comparison of two runs: connections, the server's
// /stats counts, bytes and frames per delivered message, delivery counts,
// latency percentiles, reconnects and errors, CPU and memory where known;
// the number of nodes and the cross-node deliveries when a side had several
// nodes.
func Compare(a, b Side) *Comparison {
	c := &Comparison{A: a.Label, B: b.Label, ProtocolA: a.Protocol, ProtocolB: b.Protocol}
	ra, rb := a.Run, b.Run
	both := func(f func(*Run) (float64, bool)) (float64, bool, float64, bool) {
		va, oka := f(ra)
		vb, okb := f(rb)
		return va, oka, vb, okb
	}
	type metric struct {
		name string
		u    unit
		dir  direction
		f    func(*Run) (float64, bool)
	}
	always := func(f func(*Run) float64) func(*Run) (float64, bool) {
		return func(r *Run) (float64, bool) { return f(r), true }
	}
	section := func(title string, ms []metric) {
		s := CompareSection{Title: title}
		for _, m := range ms {
			va, oka, vb, okb := both(m.f)
			if !oka && !okb {
				continue
			}
			s.Rows = append(s.Rows, newRow(m.name, m.u, m.dir, va, oka, vb, okb))
		}
		if len(s.Rows) > 0 {
			c.Sections = append(c.Sections, s)
		}
	}

	// Nodes and cross-node deliveries only when a side had several nodes
	// (a side without nodes, an older result, has no value).
	multi := ra.MultiNode() || rb.MultiNode()
	withNodes := func(f func(*Run) float64) func(*Run) (float64, bool) {
		return func(r *Run) (float64, bool) { return f(r), len(r.Nodes) > 0 }
	}
	var nodeMetrics, crossMetrics []metric
	if multi {
		nodeMetrics = []metric{{"nodes", unitCount, neutral, withNodes(func(r *Run) float64 { return float64(len(r.Nodes)) })}}
		crossMetrics = []metric{
			{"cross-node deliveries", unitCount, neutral, withNodes(func(r *Run) float64 { return float64(r.Delivery.CrossNode) })},
			{"DM copies cross-node", unitCount, neutral, func(r *Run) (float64, bool) {
				if r.DMDelivery == nil || len(r.Nodes) == 0 {
					return 0, false
				}
				return float64(r.DMDelivery.CrossNode), true
			}},
		}
	}

	section("connections", append([]metric{
		{"browsers", unitCount, neutral, always(func(r *Run) float64 { return float64(r.Clients) })},
		{"tabs per browser", unitCount, neutral, always(func(r *Run) float64 { return float64(r.Tabs) })},
		{"physical connections (peak)", unitCount, lowerBetter, always(func(r *Run) float64 { return float64(r.PhysicalConnectionsPeak) })},
		{"sessions (peak)", unitCount, neutral, always(func(r *Run) float64 { return float64(r.SessionsPeak) })},
		{"sessions per connection", unitRatio, higherBetter, func(r *Run) (float64, bool) {
			return div(float64(r.SessionsPeak), float64(r.PhysicalConnectionsPeak)), r.PhysicalConnectionsPeak > 0
		}},
	}, nodeMetrics...))

	statsA, statsB := flattenStats(ra.ServerStatsPeak), flattenStats(rb.ServerStatsPeak)
	var statMetrics []metric
	for _, k := range sortedKeys(unionKeys(statsA, statsB)) {
		u := unitCount
		if strings.Contains(strings.ToLower(k), "bytes") {
			u = unitBytes
		}
		statMetrics = append(statMetrics, metric{k, u, statDirection(k), func(r *Run) (float64, bool) {
			m := statsA
			if r == rb {
				m = statsB
			}
			v, ok := m[k]
			return v, ok
		}})
	}
	section("server /stats at peak", statMetrics)

	perDelivered := func(f func(*Run) int64) func(*Run) (float64, bool) {
		return func(r *Run) (float64, bool) {
			d := float64(r.Delivery.Delivered)
			return div(float64(f(r)), d), d > 0 && f(r) > 0
		}
	}
	perSent := func(f func(*Run) int64) func(*Run) (float64, bool) {
		return func(r *Run) (float64, bool) {
			s := float64(r.Counters.MessagesSent + r.Counters.DMsSent)
			return div(float64(f(r)), s), s > 0 && f(r) > 0
		}
	}
	section("cost per message", []metric{
		{"bytes in per delivered message", unitBytes, lowerBetter, perDelivered(func(r *Run) int64 { return r.Counters.BytesIn })},
		{"frames in per delivered message", unitRatio, lowerBetter, perDelivered(func(r *Run) int64 { return r.Counters.FramesIn })},
		{"WebSocket messages in per delivered message", unitRatio, lowerBetter, perDelivered(func(r *Run) int64 { return r.Counters.WSMessagesIn })},
		{"bytes out per sent message", unitBytes, lowerBetter, perSent(func(r *Run) int64 { return r.Counters.BytesOut })},
		{"frames out per sent message", unitRatio, lowerBetter, perSent(func(r *Run) int64 { return r.Counters.FramesOut })},
	})

	section("delivery", append([]metric{
		{"messages sent", unitCount, neutral, always(func(r *Run) float64 { return float64(r.Counters.MessagesSent + r.Counters.DMsSent) })},
		{"delivered", unitCount, neutral, always(func(r *Run) float64 { return float64(r.Delivery.Delivered) })},
		{"lost", unitCount, lowerBetter, always(func(r *Run) float64 { return float64(r.Delivery.Lost) })},
		{"duplicated", unitCount, lowerBetter, always(func(r *Run) float64 { return float64(r.Delivery.Duplicated) })},
		{"reordered", unitCount, lowerBetter, always(func(r *Run) float64 { return float64(r.Delivery.Reordered) })},
		{"mismatched", unitCount, lowerBetter, always(func(r *Run) float64 { return float64(r.Delivery.Mismatched) })},
		{"DM copies delivered", unitCount, neutral, dmMetric(func(d *Delivery) int64 { return d.Delivered })},
		{"DM copies lost", unitCount, lowerBetter, dmMetric(func(d *Delivery) int64 { return d.Lost })},
		{"DM copies duplicated", unitCount, lowerBetter, dmMetric(func(d *Delivery) int64 { return d.Duplicated })},
	}, crossMetrics...))

	var latMetrics []metric
	for _, name := range unionHistNames(ra, rb) {
		pcts := []struct {
			label string
			f     func(Latency) float64
		}{
			{"p50", func(l Latency) float64 { return l.P50Ms }},
			{"p90", func(l Latency) float64 { return l.P90Ms }},
			{"p99", func(l Latency) float64 { return l.P99Ms }},
			{"p99.9", func(l Latency) float64 { return l.P999Ms }},
			{"max", func(l Latency) float64 { return l.MaxMs }},
		}
		if name != HistDelivery {
			pcts = []struct {
				label string
				f     func(Latency) float64
			}{pcts[0], pcts[2], pcts[4]}
		}
		for _, p := range pcts {
			latMetrics = append(latMetrics, metric{name + " " + p.label, unitMs, lowerBetter, func(r *Run) (float64, bool) {
				l, ok := r.Latency[name]
				return p.f(l), ok && l.Count > 0
			}})
		}
	}
	section("latency", latMetrics)

	section("reliability", []metric{
		{"reconnects", unitCount, lowerBetter, always(func(r *Run) float64 { return float64(r.Counters.TotalReconnects()) })},
		{"gave up", unitCount, lowerBetter, always(func(r *Run) float64 { return float64(r.Counters.Reconnects[StepGiveUp]) })},
		{"kicks", unitCount, lowerBetter, always(func(r *Run) float64 { return float64(r.Counters.Kicks) })},
		{"resumes answered with reset", unitCount, lowerBetter, always(func(r *Run) float64 { return float64(r.Counters.Resets) })},
		{"errors", unitCount, lowerBetter, always(func(r *Run) float64 { return float64(r.Counters.TotalErrors()) })},
	})

	proc := func(get func(*Run) *Process, f func(*Process) float64) func(*Run) (float64, bool) {
		return func(r *Run) (float64, bool) {
			p := get(r)
			if p == nil {
				return 0, false
			}
			return f(p), true
		}
	}
	server := func(r *Run) *Process { return r.ServerProcess }
	load := func(r *Run) *Process { return r.LoadProcess }
	section("resources", []metric{
		{"server CPU", unitSeconds, lowerBetter, proc(server, func(p *Process) float64 { return p.CPUSeconds })},
		{"server RSS peak", unitBytes, lowerBetter, proc(server, func(p *Process) float64 { return float64(p.RSSPeakBytes) })},
		{"server CPU per 1000 delivered", unitSeconds, lowerBetter, func(r *Run) (float64, bool) {
			if r.ServerProcess == nil || r.Delivery.Delivered == 0 {
				return 0, false
			}
			return r.ServerProcess.CPUSeconds * 1000 / float64(r.Delivery.Delivered), true
		}},
		{"load generator CPU", unitSeconds, lowerBetter, proc(load, func(p *Process) float64 { return p.CPUSeconds })},
		{"load generator RSS peak", unitBytes, lowerBetter, proc(load, func(p *Process) float64 { return float64(p.RSSPeakBytes) })},
	})
	return c
}

// dmMetric reads a private-message delivery count, absent when the run has
// no DMDelivery.
func dmMetric(f func(*Delivery) int64) func(*Run) (float64, bool) {
	return func(r *Run) (float64, bool) {
		if r.DMDelivery == nil {
			return 0, false
		}
		return float64(f(r.DMDelivery)), true
	}
}

// newRow builds a row and decides the better side: the values must differ by
// more than 2% (of the larger) to call one better, so that noise is not
// marked.
func newRow(name string, u unit, dir direction, a float64, hasA bool, b float64, hasB bool) CompareRow {
	row := CompareRow{Name: name, A: a, B: b, HasA: hasA, HasB: hasB, unit: u}
	if !hasA || !hasB || dir == neutral {
		return row
	}
	if math.Abs(a-b) <= 0.02*math.Max(math.Abs(a), math.Abs(b)) {
		return row
	}
	if (a < b) == (dir == lowerBetter) {
		row.Better = BetterA
	} else {
		row.Better = BetterB
	}
	return row
}

// CompareModes compares the per-tab run (A) with the shared run (B) of a
// result measured with --mode both, or returns nil if r lacks either.
func CompareModes(r *Result) *Comparison {
	pt, sh := r.RunByMode(ModePerTab), r.RunByMode(ModeShared)
	if pt == nil || sh == nil {
		return nil
	}
	p := r.Scenario.ProtocolName()
	return Compare(Side{Label: ModePerTab, Run: pt, Protocol: p}, Side{Label: ModeShared, Run: sh, Protocol: p})
}

// CompareResults compares two results, labelled nameA and nameB: run by run
// for each mode both have, or their single runs when each has exactly one. It
// fails when the results share no mode. Each side carries its result's wire
// protocol (Scenario.ProtocolName): results of different protocols, such as
// an imload run and a socket.io run, compare fine and say so.
func CompareResults(a, b *Result, nameA, nameB string) ([]*Comparison, error) {
	pa, pb := a.Scenario.ProtocolName(), b.Scenario.ProtocolName()
	if len(a.Runs) == 1 && len(b.Runs) == 1 {
		ra, rb := &a.Runs[0], &b.Runs[0]
		la, lb := nameA, nameB
		if ra.Mode != rb.Mode {
			la, lb = nameA+" ("+ra.Mode+")", nameB+" ("+rb.Mode+")"
		}
		return []*Comparison{Compare(Side{la, ra, pa}, Side{lb, rb, pb})}, nil
	}
	var out []*Comparison
	for i := range a.Runs {
		ra := &a.Runs[i]
		rb := b.RunByMode(ra.Mode)
		if rb == nil {
			continue
		}
		out = append(out, Compare(
			Side{Label: nameA + " (" + ra.Mode + ")", Run: ra, Protocol: pa},
			Side{Label: nameB + " (" + rb.Mode + ")", Run: rb, Protocol: pb}))
	}
	if len(out) == 0 {
		return nil, errors.New("the results have no mode in common: " + nameA + " has " + modeList(a) + ", " + nameB + " has " + modeList(b))
	}
	return out, nil
}

func modeList(r *Result) string {
	var m []string
	for _, run := range r.Runs {
		m = append(m, run.Mode)
	}
	return strings.Join(m, " and ")
}

// unionHistNames lists the histograms present in either run, in display order.
func unionHistNames(a, b *Run) []string {
	names := histNames(a)
	for _, n := range histNames(b) {
		if _, ok := a.Latency[n]; !ok {
			names = append(names, n)
		}
	}
	return names
}

func unionKeys(a, b map[string]float64) map[string]bool {
	u := map[string]bool{}
	for k := range a {
		u[k] = true
	}
	for k := range b {
		u[k] = true
	}
	return u
}

// flattenStats returns the numeric leaves of a /stats object keyed by their
// dotted path ("hub.rooms").
func flattenStats(m map[string]any) map[string]float64 {
	out := map[string]float64{}
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		switch v := v.(type) {
		case float64:
			out[prefix] = v
		case int:
			out[prefix] = float64(v)
		case int64:
			out[prefix] = float64(v)
		case map[string]any:
			for k, x := range v {
				p := k
				if prefix != "" {
					p = prefix + "." + k
				}
				walk(p, x)
			}
		}
	}
	walk("", m)
	return out
}

// statDirection guesses whether a /stats counter is better low: resource and
// trouble counters (connections, goroutines, memory, drops, errors) are; any
// other is neutral.
func statDirection(key string) direction {
	k := strings.ToLower(key)
	if strings.Contains(k, "session") {
		return neutral
	}
	for _, s := range []string{"conn", "goroutine", "heap", "mem", "rss", "alloc", "bytes", "drop", "error", "slow", "gc", "cpu", "frames", "timeout"} {
		if strings.Contains(k, s) {
			return lowerBetter
		}
	}
	return neutral
}

// format formats a value of the row's unit.
func (r CompareRow) format(v float64, has bool) string {
	if !has {
		return "-"
	}
	switch r.unit {
	case unitMs:
		return fmtMs(v)
	case unitBytes:
		return fmtBytes(v)
	case unitSeconds:
		return fmtFloat(v) + " s"
	case unitRatio:
		return fmtFloat(v)
	}
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		return fmtInt(int64(v))
	}
	return fmtFloat(v)
}

// cells returns the row's A, B and ratio cells.
func (r CompareRow) cells() (a, b, ratio string) {
	a, b = r.format(r.A, r.HasA), r.format(r.B, r.HasB)
	ratio = "-"
	if v, ok := r.Ratio(); ok {
		ratio = fmtRatio(v)
	}
	return a, b, ratio
}

// protocolLine says which wire protocol each side spoke, or "" when neither
// is known.
func (c *Comparison) protocolLine() string {
	pa, pb := c.ProtocolA, c.ProtocolB
	unknown := func(p string) string {
		if p == "" {
			return "(unknown)"
		}
		return p
	}
	switch {
	case pa == "" && pb == "":
		return ""
	case pa == pb:
		return "protocol: " + pa + " on both sides"
	case c.protocolsDiffer():
		return "protocols differ: A = " + pa + ", B = " + pb + " (frames and bytes count each protocol's own framing)"
	}
	return "protocols: A = " + unknown(pa) + ", B = " + unknown(pb)
}

// protocolsDiffer says whether the sides spoke different wire protocols
// (both known and not equal).
func (c *Comparison) protocolsDiffer() bool {
	return c.ProtocolA != "" && c.ProtocolB != "" && c.ProtocolA != c.ProtocolB
}

// Text writes the comparison as an aligned table: metric, A, B, B/A, with a
// star after the better value. A line under the title names each side's
// wire protocol.
func (c *Comparison) Text(w io.Writer) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "comparison: A = %s, B = %s (* marks the better side)\n", c.A, c.B)
	if l := c.protocolLine(); l != "" {
		fmt.Fprintf(bw, "%s\n", l)
	}
	fmt.Fprintln(bw)
	rows := [][]string{{"", "A", "B", "B/A"}}
	for _, s := range c.Sections {
		rows = append(rows, []string{s.Title})
		for _, r := range s.Rows {
			a, b, ratio := r.cells()
			switch r.Better {
			case BetterA:
				a += " *"
				b += "  "
			case BetterB:
				b += " *"
				a += "  "
			default:
				a += "  "
				b += "  "
			}
			rows = append(rows, []string{"  " + r.Name, a, b, ratio})
		}
	}
	writeTable(bw, rows)
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write comparison: %w", err)
	}
	return nil
}
