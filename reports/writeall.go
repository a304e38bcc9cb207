package reports

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Names of the files WriteAll writes.
const (
	FileResult      = "result.json"
	FileReportHTML  = "report.html"
	FileSummary     = "summary.txt"
	FileCompareText = "compare.txt"
	FileCompareHTML = "compare.html"
)

// HgrmName returns the file name of a histogram's percentile file:
// "<mode>-<histogram>.hgrm".
func HgrmName(mode, hist string) string { return mode + "-" + hist + ".hgrm" }

// WriteAll writes the reports of r into dir (created if missing), next to
// the result.json that the caller saves with r.Save:
//
//   - report.html: the self-contained HTML report;
//   - summary.txt: the text summary (as `imload report show` prints it);
//   - <mode>-<histogram>.hgrm for every non-empty histogram of every run;
//   - compare.txt and compare.html when r has a shared and a per-tab run.
//
// Every file is written atomically. It writes as many files as it can and
// returns the errors joined.
func WriteAll(dir string, r *Result) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write reports: %w", err)
	}
	var errs []error
	write := func(name string, render func(*bytes.Buffer) error) {
		var buf bytes.Buffer
		if err := render(&buf); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
			return
		}
		if err := writeFileAtomic(filepath.Join(dir, name), buf.Bytes()); err != nil {
			errs = append(errs, err)
		}
	}
	write(FileReportHTML, func(b *bytes.Buffer) error { return HTML(b, r) })
	write(FileSummary, func(b *bytes.Buffer) error { return Text(b, r) })
	for i := range r.Runs {
		run := &r.Runs[i]
		for _, name := range histNames(run) {
			l := run.Latency[name]
			if l.Count == 0 {
				continue
			}
			write(HgrmName(run.Mode, name), func(b *bytes.Buffer) error { return WriteHgrm(b, l) })
		}
	}
	if c := CompareModes(r); c != nil {
		write(FileCompareText, func(b *bytes.Buffer) error { return c.Text(b) })
		write(FileCompareHTML, func(b *bytes.Buffer) error { return c.HTML(b) })
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("write reports to %s: %w", dir, err)
	}
	return nil
}
