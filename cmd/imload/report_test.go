package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"imload/reports"
)

// sample results of two load machines of one test, kept by the reports tests.
var (
	sampleA = filepath.Join("..", "..", "reports", "testdata", "result-a.json")
	sampleB = filepath.Join("..", "..", "reports", "testdata", "result-b.json")
)

// runCLI runs imload with args and returns stdout, stderr and the error.
func runCLI(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	cmd := newRootCmd()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), errOut.String(), err
}

func TestReportShow(t *testing.T) {
	out, _, err := runCLI(t, "report", "show", sampleA)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"imload run: PASS", "connection ratio per-tab / shared: 3.00×", "latency, shared (ms)"} {
		if !strings.Contains(out, want) {
			t.Errorf("show output lacks %q:\n%s", want, out)
		}
	}
	out, _, err = runCLI(t, "report", "show", "--compare", sampleA)
	if err != nil || !strings.Contains(out, "comparison: A = per-tab, B = shared") {
		t.Errorf("show --compare: %v\n%s", err, out)
	}

	// A directory holding result.json works too; --check fails a FAIL verdict.
	dir := t.TempDir()
	r, err := reports.Load(sampleA)
	if err != nil {
		t.Fatal(err)
	}
	r.Runs[0].Delivery.Lost = 2
	r.Evaluate()
	if err := r.Save(filepath.Join(dir, reports.FileResult)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runCLI(t, "report", "show", dir); err != nil {
		t.Errorf("show of a FAIL result without --check: %v", err)
	}
	_, _, err = runCLI(t, "report", "show", "--check", dir)
	if err == nil || exitCode(err) != 1 || !strings.Contains(err.Error(), "2 lost") {
		t.Errorf("show --check of a FAIL result: %v", err)
	}
}

func TestReportBadFiles(t *testing.T) {
	dir := t.TempDir()
	data, err := os.ReadFile(sampleA)
	if err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(dir, "truncated.json")
	newer := filepath.Join(dir, "newer.json")
	if err := os.WriteFile(truncated, data[:len(data)/3], 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(newer, bytes.Replace(data, []byte(`"version": 1`), []byte(`"version": 2`), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ file, want string }{
		{truncated, "truncated JSON"},
		{newer, "schema version 2 is newer"},
		{filepath.Join(dir, "nope.json"), "no such file"},
	} {
		for _, sub := range [][]string{{"show", c.file}, {"html", c.file}, {"compare", sampleA, c.file}, {"merge", sampleA, c.file, "-o", filepath.Join(dir, "m")}} {
			_, _, err := runCLI(t, append([]string{"report"}, sub...)...)
			if err == nil || !strings.Contains(err.Error(), c.file) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("report %v: error %v, want one naming the file and %q", sub, err, c.want)
			}
		}
	}
}

func TestReportHTML(t *testing.T) {
	dir := t.TempDir()
	data, err := os.ReadFile(sampleA)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "result.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runCLI(t, "report", "html", dir); err != nil {
		t.Fatal(err)
	}
	page, err := os.ReadFile(filepath.Join(dir, "report.html"))
	if err != nil || !bytes.Contains(page, []byte("<svg")) {
		t.Fatalf("report.html: %v", err)
	}
	out, _, err := runCLI(t, "report", "html", "-o", "-", sampleA)
	if err != nil || !strings.HasPrefix(out, "<!DOCTYPE html>") {
		t.Errorf("html -o -: %v", err)
	}
}

func TestReportCompare(t *testing.T) {
	htmlOut := filepath.Join(t.TempDir(), "cmp.html")
	out, _, err := runCLI(t, "report", "compare", "--html", htmlOut, sampleA, sampleB)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"A = result-a (shared), B = result-b (shared)", "A = result-a (per-tab), B = result-b (per-tab)", "delivery p99", "B/A"} {
		if !strings.Contains(out, want) {
			t.Errorf("compare output lacks %q:\n%s", want, out)
		}
	}
	if page, err := os.ReadFile(htmlOut); err != nil || !bytes.Contains(page, []byte("result-b (per-tab)")) {
		t.Errorf("compare --html: %v", err)
	}
}

func TestReportMerge(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "merged")
	_, errOut, err := runCLI(t, "report", "merge", sampleA, sampleB, "-o", dir)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(errOut, "merged 2 results") {
		t.Errorf("stderr: %s", errOut)
	}
	m, err := reports.Load(filepath.Join(dir, "result.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(m.MergedFrom) != 2 || m.RunByMode(reports.ModeShared).Clients != 200 {
		t.Errorf("merged: %d machines, %d clients", len(m.MergedFrom), m.RunByMode(reports.ModeShared).Clients)
	}
	for _, f := range []string{"report.html", "summary.txt", "compare.txt", "shared-delivery.hgrm"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}

	// A .json output gets the result only.
	jsonOut := filepath.Join(t.TempDir(), "m.json")
	if _, _, err := runCLI(t, "report", "merge", sampleA, sampleB, "-o", jsonOut); err != nil {
		t.Fatal(err)
	}
	if _, err := reports.Load(jsonOut); err != nil {
		t.Error(err)
	}

	// A different scenario is refused, naming both files and the field.
	other := filepath.Join(t.TempDir(), "other.json")
	r, err := reports.Load(sampleB)
	if err != nil {
		t.Fatal(err)
	}
	r.Scenario.MsgSize = 1024
	if err := r.Save(other); err != nil {
		t.Fatal(err)
	}
	_, _, err = runCLI(t, "report", "merge", sampleA, other, "-o", t.TempDir())
	if err == nil || !strings.Contains(err.Error(), `"msg_size" differs (200 vs 1024)`) ||
		!strings.Contains(err.Error(), sampleA) || !strings.Contains(err.Error(), other) {
		t.Errorf("merge of different scenarios: %v", err)
	}
	if _, _, err := runCLI(t, "report", "merge", sampleA, sampleB); err == nil || !strings.Contains(err.Error(), "-o") {
		t.Errorf("merge without -o: %v", err)
	}
}
