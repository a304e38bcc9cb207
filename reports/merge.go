package reports

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"reflect"
	"slices"
	"strings"
	"time"
)

// MismatchError is returned by Merge when a result's scenario differs from
// the first result's: such runs did not test the same thing and cannot be
// merged into one report.
type MismatchError struct {
	// Field names what differs, by its JSON name ("rate",
	// "runs[per-tab].tabs", "modes", "protocol").
	Field string
	// Index is the position of the differing result in Merge's arguments
	// (it is compared with result 0).
	Index int
	// First and Other are the two values, formatted.
	First, Other string
}

// Error says which field differs between which results.
func (e *MismatchError) Error() string {
	return fmt.Sprintf("scenario differs: %s is %s in result 1 but %s in result %d; only runs of the same scenario can be merged",
		e.Field, e.First, e.Other, e.Index+1)
}

// Merge combines results taken at the same time on several load machines
// against the same target into one result, exactly:
//
//   - histograms are merged (percentiles are those of all values together;
//     values the merged histogram cannot hold are counted in above_range);
//   - counters, delivery counts (room messages and DMs, cross-node ones
//     included), notes, clients, connection and session peaks are summed (a
//     peak is the sum of each machine's peak), except the notes of the
//     target's /stats deltas ("server_*"), which every machine saw from the
//     same server: they take the largest value;
//   - nodes are merged by target (in the order first met): their counts
//     and peaks summed, their /stats the largest value of each number; when
//     a run has no nodes (a result written before they were reported), the
//     merged run has none either;
//   - the time series are aligned on wall-clock seconds and summed; a
//     second's p50 is the delivery-weighted mean of the machines' p50s and
//     its p99 the largest of their p99s (an upper bound; the exact
//     percentiles are in the merged histograms);
//   - the target's /stats and process figures, seen by every machine from
//     the same server, take the largest value of each number; the load
//     generators' CPU and memory are summed;
//   - the verdict is evaluated again on the merged numbers with the first
//     result's thresholds.
//
// Merge refuses results whose scenario differs (the wire protocol, checked
// first by name so that an imload result and a socket.io result are refused
// as such; any field but the seed and machine-local extra settings such as
// source_ips; the set of modes; a mode's tabs per browser), with a
// *MismatchError. The inputs are not modified.
func Merge(results ...*Result) (*Result, error) {
	if len(results) == 0 {
		return nil, errors.New("merge: no results")
	}
	for i, r := range results {
		if r == nil {
			return nil, fmt.Errorf("merge: result %d is nil", i+1)
		}
		if len(r.Runs) == 0 {
			return nil, fmt.Errorf("merge: result %d has no runs", i+1)
		}
	}
	first := results[0]
	for i, r := range results[1:] {
		if err := sameScenario(first, r, i+1); err != nil {
			return nil, err
		}
	}

	out := &Result{
		Version:    SchemaVersion,
		Scenario:   first.Scenario,
		Thresholds: first.Thresholds,
	}
	out.Scenario.Targets = slices.Clone(first.Scenario.Targets)
	out.Scenario.Extra = mergeExtra(results)
	out.Environment, out.MergedFrom = mergeEnvironments(results)

	for ri := range first.Runs {
		mode := first.Runs[ri].Mode
		runs := make([]*Run, len(results))
		for i, r := range results {
			runs[i] = r.RunByMode(mode)
		}
		run, err := mergeRuns(runs)
		if err != nil {
			return nil, fmt.Errorf("merge %s runs: %w", mode, err)
		}
		out.Runs = append(out.Runs, run)
	}
	out.Evaluate()
	return out, nil
}

// sameScenario compares the scenario and run shapes of r (at index idx) with
// first's.
func sameScenario(first, r *Result, idx int) error {
	// The protocol first, by name: it is both the numeric version and
	// extra.protocol, and a difference there is the one to report.
	if pa, pb := first.Scenario.ProtocolName(), r.Scenario.ProtocolName(); pa != pb {
		return &MismatchError{Field: "protocol", Index: idx, First: pa, Other: pb}
	}
	fa, fb := reflect.ValueOf(first.Scenario), reflect.ValueOf(r.Scenario)
	t := fa.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Name == "Seed" {
			continue
		}
		if f.Name == "Extra" {
			if err := sameExtra(first.Scenario.Extra, r.Scenario.Extra, idx); err != nil {
				return err
			}
			continue
		}
		va, vb := fa.Field(i).Interface(), fb.Field(i).Interface()
		if !scenarioValueEqual(va, vb) {
			return &MismatchError{Field: jsonName(f), Index: idx, First: fmt.Sprint(fmtScenarioValue(va)), Other: fmt.Sprint(fmtScenarioValue(vb))}
		}
	}
	if modeSet(first) != modeSet(r) {
		return &MismatchError{Field: "modes", Index: idx, First: modeSet(first), Other: modeSet(r)}
	}
	for _, ra := range first.Runs {
		rb := r.RunByMode(ra.Mode)
		if ra.Tabs != rb.Tabs {
			return &MismatchError{Field: "runs[" + ra.Mode + "].tabs", Index: idx, First: fmt.Sprint(ra.Tabs), Other: fmt.Sprint(rb.Tabs)}
		}
	}
	return nil
}

// machineLocalExtra lists the Scenario.Extra keys that describe one load
// machine rather than the scenario: they may differ between merged results.
func machineLocalExtra(key string) bool {
	return key == "source_ips"
}

// sameExtra compares the Extra settings of two scenarios, except the
// machine-local ones.
func sameExtra(a, b map[string]string, idx int) error {
	keys := map[string]bool{}
	for k := range a {
		keys[k] = true
	}
	for k := range b {
		keys[k] = true
	}
	for _, k := range sortedKeys(keys) {
		if machineLocalExtra(k) || k == "protocol" { // protocol: compared by name
			continue
		}
		va, oka := a[k]
		vb, okb := b[k]
		if va != vb || oka != okb {
			show := func(v string, ok bool) string {
				if !ok {
					return "(not set)"
				}
				return fmt.Sprintf("%q", v)
			}
			return &MismatchError{Field: "extra." + k, Index: idx, First: show(va, oka), Other: show(vb, okb)}
		}
	}
	return nil
}

// mergeExtra returns the first result's Extra settings, with the values of
// every machine for the machine-local keys (joined by " | ").
func mergeExtra(results []*Result) map[string]string {
	out := maps.Clone(results[0].Scenario.Extra)
	for k := range out {
		if !machineLocalExtra(k) {
			continue
		}
		var vals []string
		for _, r := range results {
			if v, ok := r.Scenario.Extra[k]; ok {
				vals = append(vals, v)
			}
		}
		out[k] = strings.Join(uniqueStrings(vals), " | ")
	}
	return out
}

// scenarioValueEqual compares two scenario field values, treating nil and
// empty slices and maps as equal.
func scenarioValueEqual(a, b any) bool {
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	if (va.Kind() == reflect.Slice || va.Kind() == reflect.Map) && va.Len() == 0 && vb.Len() == 0 {
		return true
	}
	return reflect.DeepEqual(a, b)
}

func fmtScenarioValue(v any) string {
	switch v := v.(type) {
	case []string:
		return "[" + strings.Join(v, " ") + "]"
	case Duration:
		return v.String()
	case string:
		return fmt.Sprintf("%q", v)
	}
	return fmt.Sprint(v)
}

// jsonName returns the JSON name of a struct field.
func jsonName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	if name == "" {
		return f.Name
	}
	return name
}

// mergeEnvironments returns the environment of the merged result and the list
// of the machines' environments (flattening results that were merges).
func mergeEnvironments(results []*Result) (Environment, []Environment) {
	var from []Environment
	for _, r := range results {
		if len(r.MergedFrom) > 0 {
			from = append(from, r.MergedFrom...)
		} else {
			from = append(from, r.Environment)
		}
	}
	env := results[0].Environment
	var hosts, versions, goVersions, servers []string
	env.NumCPU = 0
	for _, e := range from {
		hosts = append(hosts, e.Hostname)
		versions = append(versions, e.ImloadVersion)
		goVersions = append(goVersions, e.GoVersion)
		if e.ServerVersion != "" {
			servers = append(servers, e.ServerVersion)
		}
		env.NumCPU += e.NumCPU
	}
	for _, r := range results {
		e := r.Environment
		env.Start = minTime(env.Start, e.Start)
		env.End = maxTime(env.End, e.End)
	}
	env.Hostname = strings.Join(uniqueStrings(hosts), ", ")
	env.ImloadVersion = strings.Join(uniqueStrings(versions), ", ")
	env.GoVersion = strings.Join(uniqueStrings(goVersions), ", ")
	env.ServerVersion = strings.Join(uniqueStrings(servers), ", ")
	env.GOMAXPROCS = 0
	return env, from
}

func minTime(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// mergeRuns merges the runs of one mode.
func mergeRuns(runs []*Run) (Run, error) {
	out := Run{
		Mode:     runs[0].Mode,
		Tabs:     runs[0].Tabs,
		Latency:  map[string]Latency{},
		Counters: Counters{Errors: map[string]int64{}, Reconnects: map[string]int64{}},
	}
	var stats []map[string]any
	for _, r := range runs {
		out.Clients += r.Clients
		out.Start = minTime(out.Start, r.Start)
		out.End = maxTime(out.End, r.End)
		out.PhysicalConnectionsPeak += r.PhysicalConnectionsPeak
		out.SessionsPeak += r.SessionsPeak
		if r.ServerStatsPeak != nil {
			stats = append(stats, r.ServerStatsPeak)
		}
		out.ServerProcess = mergeProcess(out.ServerProcess, r.ServerProcess, math.Max, func(a, b int64) int64 { return max(a, b) })
		out.LoadProcess = mergeProcess(out.LoadProcess, r.LoadProcess,
			func(a, b float64) float64 { return a + b }, func(a, b int64) int64 { return a + b })

		addDelivery(&out.Delivery, r.Delivery)
		if r.DMDelivery != nil {
			if out.DMDelivery == nil {
				out.DMDelivery = &Delivery{}
			}
			addDelivery(out.DMDelivery, *r.DMDelivery)
		}
		for k, v := range r.Notes {
			if out.Notes == nil {
				out.Notes = map[string]int64{}
			}
			if strings.HasPrefix(k, NoteServerPrefix) {
				if prev, ok := out.Notes[k]; !ok || v > prev {
					out.Notes[k] = v
				}
				continue
			}
			out.Notes[k] += v
		}

		c := &out.Counters
		c.MessagesSent += r.Counters.MessagesSent
		c.DMsSent += r.Counters.DMsSent
		c.FramesOut += r.Counters.FramesOut
		c.FramesIn += r.Counters.FramesIn
		c.WSMessagesOut += r.Counters.WSMessagesOut
		c.WSMessagesIn += r.Counters.WSMessagesIn
		c.BytesOut += r.Counters.BytesOut
		c.BytesIn += r.Counters.BytesIn
		for k, v := range r.Counters.Errors {
			c.Errors[k] += v
		}
		for k, v := range r.Counters.Reconnects {
			c.Reconnects[k] += v
		}
		c.Kicks += r.Counters.Kicks
		c.Resets += r.Counters.Resets
		out.Faults = append(out.Faults, r.Faults...)
	}
	if len(stats) > 0 {
		out.ServerStatsPeak = mergeStats(stats)
	}
	out.Nodes = mergeNodes(runs)

	names := map[string]bool{}
	for _, r := range runs {
		for n := range r.Latency {
			names[n] = true
		}
	}
	for _, name := range sortedKeys(names) {
		merged := NewHistogram()
		var above int64
		for i, r := range runs {
			l, ok := r.Latency[name]
			if !ok {
				continue
			}
			h, err := l.Histogram()
			if err != nil {
				return Run{}, fmt.Errorf("result %d: latency %q: %w", i+1, name, err)
			}
			above += l.AboveRange + merged.Merge(h)
		}
		out.Latency[name] = NewLatency(merged, above)
	}
	out.Series = mergeSeries(runs)
	return out, nil
}

// addDelivery adds the counts of b to d.
func addDelivery(d *Delivery, b Delivery) {
	d.Expected += b.Expected
	d.Delivered += b.Delivered
	d.Lost += b.Lost
	d.LostTail += b.LostTail
	d.Duplicated += b.Duplicated
	d.Reordered += b.Reordered
	d.Mismatched += b.Mismatched
	d.CrossNode += b.CrossNode
}

// mergeNodes merges the runs' nodes by target, in the order first met, or
// returns nil when a run has none (nothing says where its connections were).
func mergeNodes(runs []*Run) []Node {
	var out []Node
	at := map[string]int{}
	for _, r := range runs {
		if len(r.Nodes) == 0 {
			return nil
		}
		for _, n := range r.Nodes {
			i, ok := at[n.Target]
			if !ok {
				i = len(out)
				at[n.Target] = i
				out = append(out, Node{Target: n.Target})
			}
			m := &out[i]
			m.PhysicalConnectionsPeak += n.PhysicalConnectionsPeak
			m.SessionsPeak += n.SessionsPeak
			m.MessagesSent += n.MessagesSent
			m.DMsSent += n.DMsSent
			m.Delivered += n.Delivered
			m.CrossNode += n.CrossNode
			m.Reconnects += n.Reconnects
			m.SwitchedIn += n.SwitchedIn
			if n.ServerStatsPeak != nil {
				if m.ServerStatsPeak == nil {
					m.ServerStatsPeak = mergeStats([]map[string]any{n.ServerStatsPeak})
				} else {
					m.ServerStatsPeak = mergeStats([]map[string]any{m.ServerStatsPeak, n.ServerStatsPeak})
				}
			}
		}
	}
	return out
}

// mergeProcess combines two optional process figures field by field.
func mergeProcess(a, b *Process, f func(x, y float64) float64, g func(x, y int64) int64) *Process {
	switch {
	case b == nil:
		return a
	case a == nil:
		c := *b
		return &c
	}
	out := &Process{CPUSeconds: f(a.CPUSeconds, b.CPUSeconds), RSSPeakBytes: g(a.RSSPeakBytes, b.RSSPeakBytes)}
	// The parts of a server made of several processes, by name.
	at := map[string]int{}
	for _, ps := range [][]ProcessPart{a.Processes, b.Processes} {
		for _, p := range ps {
			i, ok := at[p.Name]
			if !ok {
				at[p.Name] = len(out.Processes)
				out.Processes = append(out.Processes, p)
				continue
			}
			q := &out.Processes[i]
			q.CPUSeconds, q.RSSPeakBytes = f(q.CPUSeconds, p.CPUSeconds), g(q.RSSPeakBytes, p.RSSPeakBytes)
			q.Killed = q.Killed || p.Killed
		}
	}
	return out
}

// mergeStats merges /stats objects: the largest value of each number, the
// first value of anything else, recursively through nested objects.
func mergeStats(ms []map[string]any) map[string]any {
	out := map[string]any{}
	for _, m := range ms {
		for k, v := range m {
			prev, ok := out[k]
			if !ok {
				if sub, isMap := v.(map[string]any); isMap {
					v = mergeStats([]map[string]any{sub})
				}
				out[k] = v
				continue
			}
			switch p := prev.(type) {
			case float64:
				if x, isNum := v.(float64); isNum && x > p {
					out[k] = x
				}
			case map[string]any:
				if x, isMap := v.(map[string]any); isMap {
					out[k] = mergeStats([]map[string]any{p, x})
				}
			}
		}
	}
	return out
}

// mergeSeries aligns the runs' series on wall-clock seconds and sums them.
func mergeSeries(runs []*Run) []Point {
	type acc struct {
		p        Point
		p50w     float64 // sum of p50 × delivered
		weight   float64
		p50plain []float64
	}
	bySec := map[int64]*acc{}
	for _, r := range runs {
		for _, pt := range r.Series {
			sec := int64(math.Round(float64(pt.T) / 1000))
			a := bySec[sec]
			if a == nil {
				a = &acc{p: Point{T: sec * 1000}}
				bySec[sec] = a
			}
			a.p.Connections += pt.Connections
			a.p.Sessions += pt.Sessions
			a.p.Sent += pt.Sent
			a.p.Delivered += pt.Delivered
			a.p.Errors += pt.Errors
			a.p.Reconnects += pt.Reconnects
			a.p.P99Ms = math.Max(a.p.P99Ms, pt.P99Ms)
			if pt.P50Ms > 0 {
				a.p50w += pt.P50Ms * pt.Delivered
				a.weight += pt.Delivered
				a.p50plain = append(a.p50plain, pt.P50Ms)
			}
		}
	}
	if len(bySec) == 0 {
		return nil
	}
	out := make([]Point, 0, len(bySec))
	for _, sec := range sortedKeys(bySec) {
		a := bySec[sec]
		switch {
		case a.weight > 0:
			a.p.P50Ms = math.Round(a.p50w/a.weight*1000) / 1000
		case len(a.p50plain) > 0:
			var s float64
			for _, v := range a.p50plain {
				s += v
			}
			a.p.P50Ms = math.Round(s/float64(len(a.p50plain))*1000) / 1000
		}
		out = append(out, a.p)
	}
	return out
}

// modeSet returns the sorted modes of r, for comparison.
func modeSet(r *Result) string {
	var m []string
	for _, run := range r.Runs {
		m = append(m, run.Mode)
	}
	slices.Sort(m)
	return "[" + strings.Join(m, " ") + "]"
}
