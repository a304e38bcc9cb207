package reports

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestSaveLoadRoundTrip(t *testing.T) {
	r, _ := makeResult(t, fixture{seed: 7})
	path := filepath.Join(t.TempDir(), "result.json")
	if err := r.Save(path); err != nil {
		t.Fatal(err)
	}
	got, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	a, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	if string(a) != string(b) {
		t.Fatalf("round trip changed the result:\n%s\n%s", a, b)
	}
	if got.Scenario.Duration != Duration(60*time.Second) {
		t.Errorf("duration = %v", got.Scenario.Duration)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"version": 1`, `"duration": "1m0s"`, `"physical_connections_peak"`, `"p999_ms"`, `"above_range"`, `"hdr"`} {
		if !strings.Contains(string(data), want) {
			t.Errorf("result.json lacks %s", want)
		}
	}
}

func TestLatencyHistogramRoundTrip(t *testing.T) {
	h := NewHistogram()
	for v := int64(1); v <= 100_000; v += 7 {
		if err := h.RecordValue(v); err != nil {
			t.Fatal(err)
		}
	}
	l := NewLatency(h, 3)
	if l.Count != h.TotalCount() || l.AboveRange != 3 {
		t.Fatalf("count %d above %d", l.Count, l.AboveRange)
	}
	if want := float64(h.ValueAtQuantile(99)) / 1000; l.P99Ms != want {
		t.Errorf("p99 %v, want %v", l.P99Ms, want)
	}
	back, err := l.Histogram()
	if err != nil {
		t.Fatal(err)
	}
	if !back.Equals(h) {
		t.Error("decoded histogram differs from the original")
	}
	empty := NewLatency(nil, 0)
	if empty.Count != 0 || empty.HDR == "" {
		t.Errorf("empty latency: %+v", empty)
	}
	if h, err := (Latency{}).Histogram(); err != nil || h.TotalCount() != 0 {
		t.Errorf("zero Latency: %v %v", h, err)
	}
}

func TestDurationJSON(t *testing.T) {
	var d Duration
	if err := json.Unmarshal([]byte(`"1m30s"`), &d); err != nil || time.Duration(d) != 90*time.Second {
		t.Errorf("string: %v %v", d, err)
	}
	if err := json.Unmarshal([]byte(`5000000`), &d); err != nil || time.Duration(d) != 5*time.Millisecond {
		t.Errorf("number: %v %v", d, err)
	}
	if err := json.Unmarshal([]byte(`"soon"`), &d); err == nil {
		t.Error("bad duration accepted")
	}
}

// TestLoadErrors checks that bad, truncated and future files give an error
// that names the file and says what is wrong.
func TestLoadErrors(t *testing.T) {
	r, _ := makeResult(t, fixture{seed: 3})
	good, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	newer := strings.Replace(string(good), `"version": 1`, `"version": 99`, 1)
	noVersion := strings.Replace(string(good), `"version": 1,`, ``, 1)
	badMode := strings.Replace(string(good), `"mode": "shared"`, `"mode": "sharde"`, 1)
	badHDR := strings.Replace(string(good), `"hdr": "`, `"hdr": "!!`, 1)
	badType := strings.Replace(string(good), `"clients": 100`, `"clients": "many"`, 1)
	cases := []struct {
		name, content string
		want          []string
		is            error
	}{
		{"empty.json", "", []string{"empty file"}, nil},
		{"html.json", "<html>oops</html>", []string{"not valid JSON at line 1, column 1"}, nil},
		{"truncated.json", string(good[:len(good)/2]), []string{"truncated JSON", "ends after"}, nil},
		{"newer.json", newer, []string{"schema version 99 is newer than this imload supports (1)"}, ErrUnsupportedVersion},
		{"noversion.json", noVersion, []string{`no "version" field`}, nil},
		{"array.json", `[1,2,3]`, []string{"JSON array"}, nil},
		{"badmode.json", badMode, []string{`unknown mode "sharde"`}, nil},
		{"badhdr.json", badHDR, []string{`latency "`, "decode hdr histogram"}, nil},
		{"badtype.json", badType, []string{`field "runs.clients"`, "JSON string"}, nil},
		{"noruns.json", `{"version": 1}`, []string{`no "runs" field`}, nil},
	}
	dir := t.TempDir()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, c.name)
			if err := os.WriteFile(path, []byte(c.content), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := Load(path)
			if err == nil {
				t.Fatal("Load accepted a bad file")
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, path+": ") {
				t.Errorf("error does not start with the file name: %s", msg)
			}
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not contain %q", msg, w)
				}
			}
			if c.is != nil && !errors.Is(err, c.is) {
				t.Errorf("error %v is not %v", err, c.is)
			}
		})
	}
	_, err = Load(filepath.Join(dir, "missing.json"))
	if err == nil || !strings.Contains(err.Error(), "missing.json") || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestEvaluate(t *testing.T) {
	r, _ := makeResult(t, fixture{seed: 1})
	if !r.Verdict.Pass || r.Verdict.Reason != "ok" {
		t.Fatalf("clean run verdict: %+v", r.Verdict)
	}
	r.Runs[1].Delivery.Lost = 5
	r.Thresholds.MaxP99Ms = 1
	r.Evaluate()
	if r.Verdict.Pass || r.Runs[0].Verdict.Pass || r.Runs[1].Verdict.Pass {
		t.Fatalf("verdicts: %+v", r.Verdict)
	}
	for _, w := range []string{"per-tab: 5 lost (max 0)", "delivery p99", "> 1.00 ms"} {
		if !strings.Contains(r.Verdict.Reason, w) {
			t.Errorf("reason %q lacks %q", r.Verdict.Reason, w)
		}
	}
	r.Thresholds = Thresholds{MaxP99Ms: 0, MaxLost: -1, MaxErrors: -1}
	r.Evaluate()
	if !r.Verdict.Pass {
		t.Errorf("disabled thresholds still fail: %+v", r.Verdict)
	}
	// A content mismatch and a kick fail a run by default.
	r.Runs[0].Delivery.Mismatched = 1
	r.Runs[1].Counters.Kicks = 3
	r.Evaluate()
	for _, w := range []string{"shared: 1 mismatched (max 0)", "per-tab: 3 kicks (max 0)", "too_many_connections"} {
		if !strings.Contains(r.Verdict.Reason, w) {
			t.Errorf("reason %q lacks %q", r.Verdict.Reason, w)
		}
	}
	r.Thresholds.MaxMismatched, r.Thresholds.MaxKicks = -1, -1
	r.Evaluate()
	if !r.Verdict.Pass {
		t.Errorf("disabled mismatch and kick thresholds still fail: %+v", r.Verdict)
	}
}

func TestProtocolName(t *testing.T) {
	for _, c := range []struct {
		version int
		extra   map[string]string
		want    string
	}{
		{1, nil, "imload v1"},
		{2, map[string]string{"history": "true"}, "imload v2"},
		{1, map[string]string{"protocol": ProtocolImload}, "imload v1"},
		{0, nil, "imload"},
		{0, map[string]string{"protocol": ProtocolSocketIO}, "socket.io (Engine.IO v4)"},
		{0, map[string]string{"protocol": ProtocolCentrifugo}, "Centrifugo (client protocol v2, JSON)"},
		{0, map[string]string{"protocol": "mqtt"}, "mqtt"},
	} {
		s := Scenario{Protocol: c.version, Extra: c.extra}
		if got := s.ProtocolName(); got != c.want {
			t.Errorf("protocol %d extra %v: %q, want %q", c.version, c.extra, got, c.want)
		}
	}
}

func TestNoteLabel(t *testing.T) {
	for key, want := range map[string]string{
		"resume_reset_offsets": "offsets gone at a reset (not lost)",
		"dm_extra":             "DM copies to attaching tabs (extra)",
		"sends_unconfirmed":    "sends never acknowledged (not re-sent)",
		"server_dms_out":       "server /stats Δ dms_out",
		"something_new":        "something_new",
		"server_":              "server_",
	} {
		if got := NoteLabel(key); got != want {
			t.Errorf("NoteLabel(%q) = %q, want %q", key, got, want)
		}
	}
	// Every key loadgen writes (docs/loadgen.md) has a label.
	for _, key := range []string{"deliveries_by_push", "deliveries_by_resume", "dm_expected", "dm_delivered",
		"dm_unconfirmed", "dm_lost_excused", "dm_extra", "dm_count_mismatch_excused", "dm_not_sent_offline",
		"dm_target_offline", "goaways", "sockets_killed", "tabs_closed", "dial_failures", "lbs_refetches",
		"epoch_resets", "resume_resets", "resume_reset_offsets", "tracks_excused", "browsers_gave_up",
		"sends_refused_shutting_down", "sends_unconfirmed"} {
		if NoteLabel(key) == key {
			t.Errorf("note %q has no label", key)
		}
	}

	// Unknown keys are shown under "other", by name; a run without notes
	// shows "-", a run with notes but not this one 0.
	r, _ := makeResult(t, fixture{seed: 1})
	r.Runs[0].Notes = nil
	r.Runs[1].Notes = map[string]int64{"something_new": 7, "server_dms_out": 3}
	rows := notesRows(r)
	var b strings.Builder
	writeTable(&b, rows)
	var lines []string
	for _, l := range strings.Split(b.String(), "\n") {
		lines = append(lines, strings.Join(strings.Fields(l), " "))
	}
	for _, want := range []string{"server /stats over the run (Δ) shared per-tab", "dms_out - 3", "other", "something_new - 7"} {
		if !slices.Contains(lines, want) {
			t.Errorf("notes table lacks the row %q:\n%s", want, b.String())
		}
	}
	for i := range r.Runs {
		r.Runs[i].Notes = nil
	}
	if rows := notesRows(r); rows != nil {
		t.Errorf("notes table without notes: %v", rows)
	}
}

// TestLoadNodes: a result's nodes survive a round trip, a result written
// before nodes were reported (no nodes, no cross_node) loads with none, and
// a node without a target or named twice is refused.
func TestLoadNodes(t *testing.T) {
	r, _ := makeResult(t, fixture{seed: 1, nodes: 3})
	data, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"nodes":[{"target":"ws://127.0.0.1:8081/ws","physical_connections_peak":34`, `"cross_node":`, `"switched_in":`} {
		if !strings.Contains(string(data), want) {
			t.Errorf("result.json lacks %s", want)
		}
	}
	got, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Runs[0].Nodes) != 3 || got.Runs[0].Delivery.CrossNode == 0 || !got.Runs[0].MultiNode() {
		t.Errorf("nodes %+v, cross-node %d", got.Runs[0].Nodes, got.Runs[0].Delivery.CrossNode)
	}

	// An older result: no nodes, no cross_node.
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	for _, run := range m["runs"].([]any) {
		run := run.(map[string]any)
		delete(run, "nodes")
		delete(run["delivery"].(map[string]any), "cross_node")
	}
	old, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	got, err = Parse(old)
	if err != nil {
		t.Fatalf("older result without nodes: %v", err)
	}
	if got.Runs[0].Nodes != nil || got.Runs[0].Delivery.CrossNode != 0 || got.Runs[0].MultiNode() {
		t.Errorf("older result: nodes %+v, cross-node %d", got.Runs[0].Nodes, got.Runs[0].Delivery.CrossNode)
	}

	for _, tc := range []struct {
		name string
		edit func(*Run)
		want string
	}{
		{"no target", func(run *Run) { run.Nodes[1].Target = "" }, "node 1 has no target"},
		{"twice", func(run *Run) { run.Nodes[2].Target = run.Nodes[0].Target }, `node "ws://127.0.0.1:8081/ws" appears twice`},
	} {
		bad, _ := makeResult(t, fixture{seed: 1, nodes: 3})
		tc.edit(&bad.Runs[0])
		data, err := json.Marshal(bad)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Parse(data); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
}
