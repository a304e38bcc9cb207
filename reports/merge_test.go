package reports

import (
	"encoding/json"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestMergeExactPercentiles merges two machines' results and checks every
// merged histogram against one built from all the values of both.
func TestMergeExactPercentiles(t *testing.T) {
	a, va := makeResult(t, fixture{seed: 1, host: "load-1"})
	b, vb := makeResult(t, fixture{seed: 2, host: "load-2", start: fixtureStart.Add(300 * time.Millisecond)})
	before, err := json.Marshal([]*Result{a, b})
	if err != nil {
		t.Fatal(err)
	}

	m, err := Merge(a, b)
	if err != nil {
		t.Fatal(err)
	}
	after, err := json.Marshal([]*Result{a, b})
	if err != nil {
		t.Fatal(err)
	}
	if string(before) != string(after) {
		t.Error("Merge modified its inputs")
	}

	for _, mode := range []string{ModeShared, ModePerTab} {
		run := m.RunByMode(mode)
		if run == nil {
			t.Fatalf("merged result lacks the %s run", mode)
		}
		for _, name := range histogramNames() {
			ref := NewHistogram()
			for _, v := range append(append([]int64(nil), va[mode][name]...), vb[mode][name]...) {
				if err := ref.RecordValue(v); err != nil {
					t.Fatal(err)
				}
			}
			want := NewLatency(ref, 0)
			got := run.Latency[name]
			if got.Count != want.Count || got.P50Ms != want.P50Ms || got.P90Ms != want.P90Ms ||
				got.P99Ms != want.P99Ms || got.P999Ms != want.P999Ms || got.MaxMs != want.MaxMs {
				t.Errorf("%s %s: merged %+v\nwant %+v", mode, name, summary(got), summary(want))
			}
			h, err := got.Histogram()
			if err != nil {
				t.Fatal(err)
			}
			if !h.Equals(ref) {
				t.Errorf("%s %s: merged histogram differs from the histogram of all values", mode, name)
			}
		}

		ra, rb := a.RunByMode(mode), b.RunByMode(mode)
		if run.Clients != ra.Clients+rb.Clients || run.Tabs != ra.Tabs {
			t.Errorf("%s clients %d tabs %d", mode, run.Clients, run.Tabs)
		}
		if run.PhysicalConnectionsPeak != ra.PhysicalConnectionsPeak+rb.PhysicalConnectionsPeak {
			t.Errorf("%s connections peak %d", mode, run.PhysicalConnectionsPeak)
		}
		if run.Delivery.Delivered != ra.Delivery.Delivered+rb.Delivery.Delivered {
			t.Errorf("%s delivered %d", mode, run.Delivery.Delivered)
		}
		if run.Counters.BytesIn != ra.Counters.BytesIn+rb.Counters.BytesIn ||
			run.Counters.Errors["timeout"] != ra.Counters.Errors["timeout"]+rb.Counters.Errors["timeout"] ||
			run.Counters.Reconnects[StepRetry] != ra.Counters.Reconnects[StepRetry]+rb.Counters.Reconnects[StepRetry] {
			t.Errorf("%s counters not summed: %+v", mode, run.Counters)
		}
		if run.LoadProcess.CPUSeconds != ra.LoadProcess.CPUSeconds+rb.LoadProcess.CPUSeconds {
			t.Errorf("%s load CPU %v", mode, run.LoadProcess.CPUSeconds)
		}
		if run.ServerProcess.RSSPeakBytes != max(ra.ServerProcess.RSSPeakBytes, rb.ServerProcess.RSSPeakBytes) {
			t.Errorf("%s server RSS %v", mode, run.ServerProcess.RSSPeakBytes)
		}
		if got := run.ServerStatsPeak["goroutines"]; got != ra.ServerStatsPeak["goroutines"] {
			t.Errorf("%s /stats goroutines %v", mode, got)
		}

		// The series are 300 ms apart: aligned on whole seconds they sum.
		if len(run.Series) == 0 || len(run.Series) != len(ra.Series) {
			t.Fatalf("%s merged series has %d points, want %d", mode, len(run.Series), len(ra.Series))
		}
		for i, p := range run.Series {
			pa, pb := ra.Series[i], rb.Series[i]
			if p.Connections != pa.Connections+pb.Connections || p.Delivered != pa.Delivered+pb.Delivered {
				t.Fatalf("%s point %d: %+v from %+v and %+v", mode, i, p, pa, pb)
			}
			if p.T%1000 != 0 || p.P99Ms != max(pa.P99Ms, pb.P99Ms) {
				t.Fatalf("%s point %d: %+v", mode, i, p)
			}
		}
	}
	if len(m.MergedFrom) != 2 || m.Environment.Hostname != "load-1, load-2" || m.Environment.NumCPU != 4 {
		t.Errorf("environment %+v from %d", m.Environment, len(m.MergedFrom))
	}
	if !m.Verdict.Pass {
		t.Errorf("verdict %+v", m.Verdict)
	}

	// A merge of a merge lists every machine once.
	c, _ := makeResult(t, fixture{seed: 3, host: "load-3"})
	m2, err := Merge(m, c)
	if err != nil {
		t.Fatal(err)
	}
	if len(m2.MergedFrom) != 3 || m2.RunByMode(ModeShared).Clients != 300 {
		t.Errorf("merge of merge: %d machines, %d clients", len(m2.MergedFrom), m2.RunByMode(ModeShared).Clients)
	}
}

func summary(l Latency) Latency { l.HDR = ""; return l }

func TestMergeRecomputesVerdict(t *testing.T) {
	a, _ := makeResult(t, fixture{seed: 1})
	b, _ := makeResult(t, fixture{seed: 2, lost: 4})
	m, err := Merge(a, b)
	if err != nil {
		t.Fatal(err)
	}
	if m.Verdict.Pass || !strings.Contains(m.Verdict.Reason, "per-tab: 4 lost") {
		t.Errorf("verdict %+v", m.Verdict)
	}
}

func TestMergeRefusesDifferentScenarios(t *testing.T) {
	cases := []struct {
		field  string
		change func(*Result)
		want   []string
	}{
		{"rate", func(r *Result) { r.Scenario.Rate = 0.5 }, []string{"rate is 0.2 in result 1 but 0.5 in result 2"}},
		{"targets", func(r *Result) { r.Scenario.Targets = []string{"ws://127.0.0.2:8080/ws"} }, []string{"targets"}},
		{"duration", func(r *Result) { r.Scenario.Duration = Duration(time.Minute * 2) }, []string{"duration is 1m0s", "2m0s"}},
		{"runs[per-tab].tabs", func(r *Result) { r.RunByMode(ModePerTab).Tabs = 5 }, []string{"runs[per-tab].tabs is 3"}},
		{"modes", func(r *Result) { r.Runs = r.Runs[:1] }, []string{"modes is [per-tab shared]", "[shared]"}},
		{"extra.history", func(r *Result) { r.Scenario.Extra["history"] = "false" }, []string{`extra.history is "true" in result 1 but "false" in result 2`}},
		// A socket.io result, as loadgen records it: version 0 and
		// extra.protocol. Refused by protocol name, not as "0" vs "1".
		{"protocol", func(r *Result) {
			r.Scenario.Protocol = 0
			r.Scenario.Extra["protocol"] = ProtocolSocketIO
		}, []string{"protocol is imload v1 in result 1 but socket.io (Engine.IO v4) in result 2"}},
		{"protocol", func(r *Result) { r.Scenario.Protocol = 2 }, []string{"protocol is imload v1 in result 1 but imload v2 in result 2"}},
		{"protocol", func(r *Result) { r.Scenario.Extra["protocol"] = "mqtt" }, []string{"protocol is imload v1 in result 1 but mqtt in result 2"}},
	}
	for _, c := range cases {
		t.Run(c.field, func(t *testing.T) {
			a, _ := makeResult(t, fixture{seed: 1})
			b, _ := makeResult(t, fixture{seed: 2})
			c.change(b)
			_, err := Merge(a, b)
			var me *MismatchError
			if !errors.As(err, &me) {
				t.Fatalf("Merge did not refuse: %v", err)
			}
			if me.Field != c.field || me.Index != 1 {
				t.Errorf("field %q index %d", me.Field, me.Index)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
	// Seeds and source addresses may differ: they are the machine's own.
	a, _ := makeResult(t, fixture{seed: 1})
	b, _ := makeResult(t, fixture{seed: 9})
	a.Scenario.Extra["source_ips"] = "127.0.0.2,127.0.0.3"
	b.Scenario.Extra["source_ips"] = "127.0.0.4"
	m, err := Merge(a, b)
	if err != nil {
		t.Fatalf("different seeds or source addresses refused: %v", err)
	}
	if got := m.Scenario.Extra["source_ips"]; got != "127.0.0.2,127.0.0.3 | 127.0.0.4" {
		t.Errorf("merged source_ips %q", got)
	}
	if _, err := Merge(); err == nil {
		t.Error("Merge() of nothing succeeded")
	}

	// Two socket.io results merge, and stay socket.io.
	sa, _ := makeResult(t, fixture{seed: 1, modes: []string{ModePerTab}, protocol: ProtocolSocketIO})
	sb, _ := makeResult(t, fixture{seed: 2, modes: []string{ModePerTab}, protocol: ProtocolSocketIO})
	sm, err := Merge(sa, sb)
	if err != nil {
		t.Fatalf("two socket.io results refused: %v", err)
	}
	if got := sm.Scenario.ProtocolName(); got != "socket.io (Engine.IO v4)" {
		t.Errorf("merged protocol %q", got)
	}
	// Either order of imload and socket.io is refused.
	if _, err := Merge(sa, a); err == nil || !strings.Contains(err.Error(), "protocol is socket.io (Engine.IO v4) in result 1 but imload v1 in result 2") {
		t.Errorf("socket.io + imload: %v", err)
	}
}

// TestMergeNotesAndDMDelivery checks that notes and the DM delivery outcome
// survive a merge: counts summed, the server's /stats deltas (one server
// seen by every machine) the largest.
func TestMergeNotesAndDMDelivery(t *testing.T) {
	a, _ := makeResult(t, fixture{seed: 1, host: "load-1"})
	b, _ := makeResult(t, fixture{seed: 2, host: "load-2"})
	ra, rb := a.RunByMode(ModePerTab), b.RunByMode(ModePerTab)
	ra.Notes["only_a"] = 5
	rb.Notes["server_messages_out"] = ra.Notes["server_messages_out"] + 10
	rb.DMDelivery.Lost = 3
	m, err := Merge(a, b)
	if err != nil {
		t.Fatal(err)
	}
	run := m.RunByMode(ModePerTab)
	for _, k := range []string{"deliveries_by_push", "deliveries_by_resume", "dm_extra", "goaways", "resume_reset_offsets"} {
		if got, want := run.Notes[k], ra.Notes[k]+rb.Notes[k]; got != want {
			t.Errorf("note %s = %d, want the sum %d", k, got, want)
		}
	}
	if got := run.Notes["only_a"]; got != 5 {
		t.Errorf("note only_a = %d, want 5", got)
	}
	if got, want := run.Notes["server_messages_out"], max(ra.Notes["server_messages_out"], rb.Notes["server_messages_out"]); got != want {
		t.Errorf("note server_messages_out = %d, want the largest %d", got, want)
	}
	if run.DMDelivery == nil || run.DMDelivery.Delivered != ra.DMDelivery.Delivered+rb.DMDelivery.Delivered || run.DMDelivery.Lost != 3 {
		t.Errorf("DM delivery %+v", run.DMDelivery)
	}

	// Runs without notes or DMs (older results) merge into none.
	for _, r := range []*Result{a, b} {
		for i := range r.Runs {
			r.Runs[i].Notes, r.Runs[i].DMDelivery = nil, nil
		}
	}
	m, err = Merge(a, b)
	if err != nil {
		t.Fatal(err)
	}
	if run := m.RunByMode(ModeShared); run.Notes != nil || run.DMDelivery != nil {
		t.Errorf("notes %v, DM delivery %+v from runs without", run.Notes, run.DMDelivery)
	}
}

// TestMergeFaultsKicksMismatches: content mismatches, kicks and resets add
// up, every machine's faults are listed, and the merged verdict fails on
// them.
func TestMergeFaultsKicksMismatches(t *testing.T) {
	a, _ := makeResult(t, fixture{seed: 1, host: "load-1", faulty: true})
	b, _ := makeResult(t, fixture{seed: 2, host: "load-2", start: fixtureStart.Add(300 * time.Millisecond)})
	m, err := Merge(a, b)
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{ModeShared, ModePerTab} {
		run := m.RunByMode(mode)
		ra, rb := a.RunByMode(mode), b.RunByMode(mode)
		if run.Delivery.Mismatched != ra.Delivery.Mismatched+rb.Delivery.Mismatched || run.Delivery.Mismatched == 0 {
			t.Errorf("%s: mismatched %d", mode, run.Delivery.Mismatched)
		}
		if run.Counters.Kicks != 2 || run.Counters.Resets != 4 {
			t.Errorf("%s: kicks %d resets %d", mode, run.Counters.Kicks, run.Counters.Resets)
		}
		if len(run.Faults) != 1 || run.FaultLinkLosses() != ra.PhysicalConnectionsPeak {
			t.Errorf("%s: faults %+v", mode, run.Faults)
		}
	}
	if m.Verdict.Pass || !strings.Contains(m.Verdict.Reason, "mismatched") || !strings.Contains(m.Verdict.Reason, "kicks") {
		t.Errorf("merged verdict %+v", m.Verdict)
	}
}

// TestMergeNodes: nodes are merged by target whatever their order on each
// machine (counts and peaks summed, /stats the largest), cross-node
// deliveries add up, and a run without nodes (an older result) leaves the
// merged run without them.
func TestMergeNodes(t *testing.T) {
	a, _ := makeResult(t, fixture{seed: 1, host: "load-1", nodes: 3})
	b, _ := makeResult(t, fixture{seed: 2, host: "load-2", nodes: 3})
	rb := b.RunByMode(ModeShared)
	slices.Reverse(rb.Nodes) // another machine may have met them in another order
	rb.Nodes[0].ServerStatsPeak["physical_connections"] = float64(1000)
	m, err := Merge(a, b)
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{ModeShared, ModePerTab} {
		run, ra, rb := m.RunByMode(mode), a.RunByMode(mode), b.RunByMode(mode)
		if len(run.Nodes) != 3 {
			t.Fatalf("%s: %d nodes, want 3", mode, len(run.Nodes))
		}
		if got, want := run.Delivery.CrossNode, ra.Delivery.CrossNode+rb.Delivery.CrossNode; got != want || got == 0 {
			t.Errorf("%s: cross-node %d, want %d", mode, got, want)
		}
		if got, want := run.DMDelivery.CrossNode, ra.DMDelivery.CrossNode+rb.DMDelivery.CrossNode; got != want || got == 0 {
			t.Errorf("%s: DM cross-node %d, want %d", mode, got, want)
		}
		for i, n := range run.Nodes {
			if n.Target != ra.Nodes[i].Target {
				t.Errorf("%s: node %d is %s, want %s (the first result's order)", mode, i, n.Target, ra.Nodes[i].Target)
			}
			nb := rb.Nodes[slices.IndexFunc(rb.Nodes, func(x Node) bool { return x.Target == n.Target })]
			na := ra.Nodes[i]
			if n.PhysicalConnectionsPeak != na.PhysicalConnectionsPeak+nb.PhysicalConnectionsPeak ||
				n.SessionsPeak != na.SessionsPeak+nb.SessionsPeak || n.MessagesSent != na.MessagesSent+nb.MessagesSent ||
				n.DMsSent != na.DMsSent+nb.DMsSent || n.Delivered != na.Delivered+nb.Delivered ||
				n.CrossNode != na.CrossNode+nb.CrossNode || n.Reconnects != na.Reconnects+nb.Reconnects ||
				n.SwitchedIn != na.SwitchedIn+nb.SwitchedIn {
				t.Errorf("%s: merged node %+v from %+v and %+v", mode, n, na, nb)
			}
			want := max(na.ServerStatsPeak["physical_connections"].(float64), nb.ServerStatsPeak["physical_connections"].(float64))
			if got := n.ServerStatsPeak["physical_connections"]; got != want {
				t.Errorf("%s: node %s /stats connections %v, want the largest %v", mode, n.Target, got, want)
			}
		}
	}

	old, _ := makeResult(t, fixture{seed: 2, host: "load-2", nodes: 3, noNodes: true})
	m, err = Merge(a, old)
	if err != nil {
		t.Fatal(err)
	}
	for _, run := range m.Runs {
		if run.Nodes != nil {
			t.Errorf("%s: nodes %+v merged with a run that has none", run.Mode, run.Nodes)
		}
	}
}

// The processes of a server made of several (imload run --nodes) merge by
// name, as the whole does: each load machine saw the same server, so the
// largest figures.
func TestMergeServerProcesses(t *testing.T) {
	a := &Process{CPUSeconds: 3, RSSPeakBytes: 30, Processes: []ProcessPart{
		{Name: "n0", Target: "ws://a/ws", CPUSeconds: 1, RSSPeakBytes: 10},
		{Name: "redis-server", CPUSeconds: 2, RSSPeakBytes: 20},
	}}
	b := &Process{CPUSeconds: 4, RSSPeakBytes: 25, Processes: []ProcessPart{
		{Name: "redis-server", CPUSeconds: 1, RSSPeakBytes: 22},
		{Name: "n1", Target: "ws://b/ws", CPUSeconds: 3, RSSPeakBytes: 3, Killed: true},
	}}
	m := mergeProcess(a, b, math.Max, func(x, y int64) int64 { return max(x, y) })
	want := []ProcessPart{
		{Name: "n0", Target: "ws://a/ws", CPUSeconds: 1, RSSPeakBytes: 10},
		{Name: "redis-server", CPUSeconds: 2, RSSPeakBytes: 22},
		{Name: "n1", Target: "ws://b/ws", CPUSeconds: 3, RSSPeakBytes: 3, Killed: true},
	}
	if m.CPUSeconds != 4 || m.RSSPeakBytes != 30 || !slices.Equal(m.Processes, want) {
		t.Errorf("merged %+v", m)
	}
	if len(a.Processes) != 2 || a.Processes[1].RSSPeakBytes != 20 {
		t.Errorf("the first side changed: %+v", a)
	}
}
