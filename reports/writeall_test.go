package reports

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestWriteAll(t *testing.T) {
	r, _ := makeResult(t, fixture{seed: 1})
	dir := filepath.Join(t.TempDir(), "out")
	if err := WriteAll(dir, r); err != nil {
		t.Fatal(err)
	}
	want := []string{FileReportHTML, FileSummary, FileCompareText, FileCompareHTML}
	for _, mode := range []string{ModeShared, ModePerTab} {
		for _, h := range histogramNames() {
			want = append(want, HgrmName(mode, h))
		}
	}
	for _, name := range want {
		if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.Size() == 0 {
			t.Errorf("%s: %v", name, err)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(want) {
		t.Errorf("%d files written, want %d (no temporary files left)", len(entries), len(want))
	}
	summary, err := os.ReadFile(filepath.Join(dir, FileSummary))
	if err != nil {
		t.Fatal(err)
	}
	var text bytes.Buffer
	if err := Text(&text, r); err != nil {
		t.Fatal(err)
	}
	if text.Len() == 0 || !bytes.Equal(summary, text.Bytes()) {
		t.Errorf("summary.txt (%d bytes) differs from Text (%d bytes)", len(summary), text.Len())
	}

	// A single-mode result has no comparison, and skips empty histograms.
	one, _ := makeResult(t, fixture{seed: 1, modes: []string{ModeShared}})
	one.Runs[0].Latency[HistReconnect] = NewLatency(nil, 0)
	dir1 := t.TempDir()
	if err := WriteAll(dir1, one); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{FileCompareText, FileCompareHTML, HgrmName(ModeShared, HistReconnect)} {
		if _, err := os.Stat(filepath.Join(dir1, name)); err == nil {
			t.Errorf("%s written for a single-mode result", name)
		}
	}
}

// TestHgrmFormat checks the .hgrm file: HdrHistogram's percentile
// distribution with values in milliseconds, as the plotter expects.
func TestHgrmFormat(t *testing.T) {
	r, _ := makeResult(t, fixture{seed: 1})
	l := r.Runs[0].Latency[HistDelivery]
	var b bytes.Buffer
	if err := WriteHgrm(&b, l); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(&b)
	sc.Scan()
	if got := sc.Text(); got != " Value\tPercentile\tTotalCount\t1/(1-Percentile)" {
		t.Fatalf("header %q", got)
	}
	var lastValue float64
	var lastCount int64
	rows := 0
	var footer []string
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		if strings.HasPrefix(line, "#") {
			footer = append(footer, line)
			continue
		}
		f := strings.Fields(line)
		if len(f) != 4 {
			t.Fatalf("row %q", line)
		}
		v, err1 := strconv.ParseFloat(f[0], 64)
		n, err2 := strconv.ParseInt(f[2], 10, 64)
		if err1 != nil || err2 != nil || v < lastValue || n < lastCount {
			t.Fatalf("row %q after value %v count %d", line, lastValue, lastCount)
		}
		lastValue, lastCount = v, n
		rows++
	}
	if rows < 50 || lastCount != l.Count {
		t.Errorf("%d rows ending at count %d, want many rows ending at %d", rows, lastCount, l.Count)
	}
	if lastValue < l.P99Ms || lastValue > l.MaxMs*1.01 {
		t.Errorf("last value %v ms, want the max %v ms (milliseconds, not µs)", lastValue, l.MaxMs)
	}
	if len(footer) != 3 || !strings.Contains(footer[1], "Total count") {
		t.Errorf("footer %q", footer)
	}
}

// TestHTMLSelfContained checks statically what the browser test checks
// live: no script, no external reference of any kind.
func TestHTMLSelfContained(t *testing.T) {
	r, _ := makeResult(t, fixture{seed: 1})
	var pages []string
	var b bytes.Buffer
	if err := HTML(&b, r); err != nil {
		t.Fatal(err)
	}
	pages = append(pages, b.String())
	b.Reset()
	if err := CompareModes(r).HTML(&b); err != nil {
		t.Fatal(err)
	}
	pages = append(pages, b.String())
	for i, page := range pages {
		low := strings.ToLower(page)
		for _, bad := range []string{"http://", "https://", "<script", "@import", "url(", " src=", "@font-face", "//cdn"} {
			if strings.Contains(low, bad) {
				t.Errorf("page %d contains %q", i, bad)
			}
		}
		for _, want := range []string{"<!DOCTYPE html>", `name="viewport"`, "<style>", "</html>"} {
			if !strings.Contains(page, want) {
				t.Errorf("page %d lacks %q", i, want)
			}
		}
	}
	for _, want := range []string{"PASS", "3.00×", "fewer connections with shared", "Delivery latency by percentile",
		"99.99%", "Connections over time", "Send and delivery rate", "Delivery latency over time",
		"Reconnects by ladder step", "per-tab (A) vs shared (B)", "go1.26.8", "load-1", "ws://127.0.0.1:8080/ws",
		"protocol imload v1", "<dt>protocol</dt><dd>imload v1</dd>", "Notes (not errors)",
		`<td title="resume_reset_offsets">offsets gone at a reset (not lost)</td>`, "server /stats over the run (Δ)",
		"DM copies delivered", "DM lost / duplicated"} {
		if !strings.Contains(pages[0], want) {
			t.Errorf("report lacks %q", want)
		}
	}
}

// TestHTMLProtocols checks that a socket.io result's report names its
// protocol (never "protocol 0"), and that a comparison of an imload result
// with a socket.io result labels each side with its protocol.
func TestHTMLProtocols(t *testing.T) {
	sio, _ := makeResult(t, fixture{seed: 3, modes: []string{ModePerTab}, protocol: ProtocolSocketIO})
	var b bytes.Buffer
	if err := HTML(&b, sio); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	for _, want := range []string{"protocol socket.io (Engine.IO v4)", "<dt>protocol</dt><dd>socket.io (Engine.IO v4)</dd>",
		"sends never acknowledged (not re-sent)"} {
		if !strings.Contains(page, want) {
			t.Errorf("socket.io report lacks %q", want)
		}
	}
	for _, bad := range []string{"<dd>0</dd>", "<dt>protocol</dt><dd>0</dd>"} {
		if strings.Contains(page, bad) {
			t.Errorf("socket.io report shows %q", bad)
		}
	}

	imload, _ := makeResult(t, fixture{seed: 1})
	cs, err := CompareResults(imload, sio, "imload-run", "socketio-run")
	if err != nil {
		t.Fatal(err)
	}
	b.Reset()
	if err := ComparisonsHTML(&b, cs); err != nil {
		t.Fatal(err)
	}
	page = b.String()
	for _, want := range []string{"<th>imload-run (per-tab) · imload v1</th>", "<th>socketio-run (per-tab) · socket.io (Engine.IO v4)</th>",
		"Protocols differ: A = imload v1, B = socket.io (Engine.IO v4)"} {
		if !strings.Contains(page, want) {
			t.Errorf("comparison page lacks %q", want)
		}
	}
}

// TestHTMLNodes: a report of a run over several nodes has a table of nodes
// per run and the cross-node deliveries next to the delivery figures (the
// headline table and the "messages lost" tile); a one-node report has
// neither.
func TestHTMLNodes(t *testing.T) {
	r, _ := makeResult(t, fixture{seed: 1, nodes: 3})
	var b bytes.Buffer
	if err := HTML(&b, r); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	for _, want := range []string{"<h2>Nodes</h2>", "<h3>shared</h3>", "<h3>per-tab</h3>", "<th>cross-node</th>", "<th>server conns</th>",
		"<td>ws://127.0.0.1:8083/ws</td>", "of them cross-node (sender on another node)", "<td>7,068 (66.7%)</td>",
		"21,259 delivered (14,171 cross-node)"} {
		if !strings.Contains(page, want) {
			t.Errorf("3-node report lacks %q", want)
		}
	}
	one, _ := makeResult(t, fixture{seed: 1})
	b.Reset()
	if err := HTML(&b, one); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"<h2>Nodes</h2>", "cross-node"} {
		if strings.Contains(b.String(), bad) {
			t.Errorf("one-node report shows %q", bad)
		}
	}
}
