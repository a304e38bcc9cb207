package reports

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
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
	a, _ := json.Marshal(r)
	b, _ := json.Marshal(got)
	if string(a) != string(b) {
		t.Fatalf("round trip changed the result:\n%s\n%s", a, b)
	}
	if got.Scenario.Duration != Duration(60*time.Second) {
		t.Errorf("duration = %v", got.Scenario.Duration)
	}
	data, _ := os.ReadFile(path)
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
}
