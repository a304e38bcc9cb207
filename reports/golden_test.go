package reports

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files and sample results under testdata/")

// checkGolden compares got with testdata/name, or rewrites it with -update.
func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./reports -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		out := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(out, got, 0o644); err != nil {
			out = fmt.Sprintf("nowhere (%v)", err)
		}
		t.Errorf("%s differs from the golden file; got written to %s\n(diff them, and run go test ./reports -update if the change is intended)\n--- got:\n%s", path, out, got)
	}
}

func TestGoldenSummary(t *testing.T) {
	r, _ := makeResult(t, fixture{seed: 1})
	var b bytes.Buffer
	if err := Text(&b, r); err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "summary.golden", b.Bytes())
}

func TestGoldenSummaryFail(t *testing.T) {
	r, _ := makeResult(t, fixture{seed: 2, lost: 17, modes: []string{ModePerTab}, faulty: true})
	r.Runs[0].Latency[HistDelivery] = Latency{Count: 0, AboveRange: 2} // nothing but timeouts
	r.Thresholds.MaxP99Ms = 100
	r.Evaluate()
	var b bytes.Buffer
	if err := Text(&b, r); err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "summary-fail.golden", b.Bytes())
}

func TestGoldenCompare(t *testing.T) {
	r, _ := makeResult(t, fixture{seed: 1})
	var b bytes.Buffer
	if err := CompareModes(r).Text(&b); err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "compare.golden", b.Bytes())
}

func TestGoldenCompareResults(t *testing.T) {
	a, _ := makeResult(t, fixture{seed: 1})
	b, _ := makeResult(t, fixture{seed: 5, host: "load-2"})
	b.Runs[0].Counters.BytesIn /= 2 // pretend last week's protocol was leaner
	b.Runs[0].ServerStatsPeak = nil
	b.Runs[0].ServerProcess = nil
	cs, err := CompareResults(a, b, "this-week", "last-week")
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 2 {
		t.Fatalf("%d comparisons, want one per mode", len(cs))
	}
	var buf bytes.Buffer
	for _, c := range cs {
		if err := c.Text(&buf); err != nil {
			t.Fatal(err)
		}
		buf.WriteString("\n")
	}
	checkGolden(t, "compare-results.golden", buf.Bytes())
}

func TestGoldenMergedSummary(t *testing.T) {
	a, _ := makeResult(t, fixture{seed: 1, host: "load-1"})
	b, _ := makeResult(t, fixture{seed: 2, host: "load-2", start: fixtureStart.Add(400 * time.Millisecond)})
	m, err := Merge(a, b)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := Text(&buf, m); err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "merged-summary.golden", buf.Bytes())
}

// TestSampleResults keeps testdata/result-a.json and result-b.json (two load
// machines of one test) loadable; the cmd/imload tests use them. -update
// rewrites them.
func TestSampleResults(t *testing.T) {
	for i, f := range []fixture{{seed: 1, host: "load-1"}, {seed: 2, host: "load-2", start: fixtureStart.Add(400 * time.Millisecond)}} {
		path := filepath.Join("testdata", "result-"+string(rune('a'+i))+".json")
		if *update {
			r, _ := makeResult(t, f)
			if err := r.Save(path); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := Load(path); err != nil {
			t.Fatal(err)
		}
	}
}

// TestGoldenSummarySocketIO is the summary of a socket.io run: the protocol
// by name (not "protocol 0") and its notes.
func TestGoldenSummarySocketIO(t *testing.T) {
	r, _ := makeResult(t, fixture{seed: 3, modes: []string{ModePerTab}, protocol: ProtocolSocketIO})
	var b bytes.Buffer
	if err := Text(&b, r); err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "summary-socketio.golden", b.Bytes())
}

// TestGoldenCompareProtocols compares an imload result with a socket.io
// result, as `imload report compare` does: each side names its protocol.
func TestGoldenCompareProtocols(t *testing.T) {
	a, _ := makeResult(t, fixture{seed: 1})
	b, _ := makeResult(t, fixture{seed: 3, modes: []string{ModePerTab}, protocol: ProtocolSocketIO})
	cs, err := CompareResults(a, b, "imload", "socketio")
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 1 {
		t.Fatalf("%d comparisons, want 1 (per-tab with per-tab)", len(cs))
	}
	if cs[0].ProtocolA != "imload v1" || cs[0].ProtocolB != "socket.io (Engine.IO v4)" {
		t.Fatalf("protocols %q / %q", cs[0].ProtocolA, cs[0].ProtocolB)
	}
	var buf bytes.Buffer
	if err := cs[0].Text(&buf); err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "compare-protocols.golden", buf.Bytes())
}

// TestGoldenSummaryNodes is the summary of a run spread over 3 nodes: the
// nodes and cross-node rows in the headline table, and a table of nodes per
// run.
func TestGoldenSummaryNodes(t *testing.T) {
	r, _ := makeResult(t, fixture{seed: 1, nodes: 3})
	var b bytes.Buffer
	if err := Text(&b, r); err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "summary-nodes.golden", b.Bytes())
}

// TestGoldenCompareNodes compares a 3-node result with an older one-node
// result that has no nodes: the nodes and cross-node rows, "-" on the side
// that did not measure them.
func TestGoldenCompareNodes(t *testing.T) {
	a, _ := makeResult(t, fixture{seed: 1, nodes: 3})
	b, _ := makeResult(t, fixture{seed: 5, host: "load-2", noNodes: true})
	cs, err := CompareResults(a, b, "three-nodes", "older")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	for _, c := range cs {
		if err := c.Text(&buf); err != nil {
			t.Fatal(err)
		}
		buf.WriteString("\n")
	}
	checkGolden(t, "compare-nodes.golden", buf.Bytes())
}

// TestOneNodeReadsAsBefore: a one-node result (nodes: one entry) renders
// exactly as a result written before nodes were reported: summary, HTML
// report, comparison and merge.
func TestOneNodeReadsAsBefore(t *testing.T) {
	withNode, _ := makeResult(t, fixture{seed: 1})
	without, _ := makeResult(t, fixture{seed: 1, noNodes: true})
	if len(withNode.Runs[0].Nodes) != 1 || len(without.Runs[0].Nodes) != 0 {
		t.Fatalf("fixture: %d and %d nodes", len(withNode.Runs[0].Nodes), len(without.Runs[0].Nodes))
	}
	render := func(r *Result) map[string]string {
		out := map[string]string{}
		var b bytes.Buffer
		if err := Text(&b, r); err != nil {
			t.Fatal(err)
		}
		out["summary"] = b.String()
		b.Reset()
		if err := HTML(&b, r); err != nil {
			t.Fatal(err)
		}
		out["report.html"] = b.String()
		b.Reset()
		if err := CompareModes(r).Text(&b); err != nil {
			t.Fatal(err)
		}
		out["compare"] = b.String()
		b.Reset()
		m, err := Merge(r, r)
		if err != nil {
			t.Fatal(err)
		}
		if err := Text(&b, m); err != nil {
			t.Fatal(err)
		}
		out["merged summary"] = b.String()
		return out
	}
	got, want := render(withNode), render(without)
	for k := range want {
		if got[k] != want[k] {
			t.Errorf("%s of a one-node result differs from an older result's:\n%s\n---\n%s", k, got[k], want[k])
		}
	}
	for _, bad := range []string{"cross-node", "<h2>Nodes</h2>"} {
		if strings.Contains(got["report.html"]+got["summary"], bad) {
			t.Errorf("one-node report shows %q", bad)
		}
	}
}
