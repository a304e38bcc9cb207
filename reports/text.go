package reports

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Text writes the plain-text summary of r (summary.txt, `imload report
// show`): the verdict, the scenario, a table with one column per run of the
// headline numbers, a table per run of its nodes (when it had several),
// latency percentiles, traffic, reconnects, errors, notes
// (counts that explain the run without being errors), resources and the
// environment.
func Text(w io.Writer, r *Result) error {
	bw := bufio.NewWriter(w)
	p := func(format string, args ...any) { fmt.Fprintf(bw, format, args...) }

	p("imload run: %s\n", r.Verdict)
	for _, l := range scenarioLines(r) {
		p("%s\n", l)
	}
	p("\n")

	writeTable(bw, headlineRows(r))
	if ratio, ok := connectionRatio(r); ok {
		p("\nconnection ratio per-tab / shared: %s (%s vs %s physical connections for the same %s tabs)\n",
			fmtRatio(ratio),
			fmtInt(r.RunByMode(ModePerTab).PhysicalConnectionsPeak),
			fmtInt(r.RunByMode(ModeShared).PhysicalConnectionsPeak),
			fmtInt(r.RunByMode(ModeShared).SessionsPeak))
	}

	for i := range r.Runs {
		run := &r.Runs[i]
		if rows := nodeRows(run); rows != nil {
			p("\nnodes, %s\n", run.Mode)
			writeTable(bw, rows)
		}
	}

	for i := range r.Runs {
		run := &r.Runs[i]
		p("\nlatency, %s (ms)\n", run.Mode)
		writeTable(bw, latencyRows(run))
	}

	if rows := faultRows(r); rows != nil {
		p("\nfaults injected\n")
		writeTable(bw, rows)
	}

	p("\ntraffic\n")
	writeTable(bw, trafficRows(r))
	if rows := mapRows(r, "reconnects", func(run *Run) map[string]int64 { return run.Counters.Reconnects }, reconnectSteps()); rows != nil {
		p("\n")
		writeTable(bw, rows)
	}
	if rows := mapRows(r, "errors", func(run *Run) map[string]int64 { return run.Counters.Errors }, nil); rows != nil {
		p("\n")
		writeTable(bw, rows)
	}
	if rows := notesRows(r); rows != nil {
		p("\nnotes (not errors)\n")
		writeTable(bw, rows)
	}
	if rows := resourceRows(r); rows != nil {
		p("\nresources\n")
		writeTable(bw, rows)
	}

	p("\nenvironment\n")
	for _, kv := range environmentPairs(r) {
		p("  %-16s %s\n", kv[0], kv[1])
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write text summary: %w", err)
	}
	return nil
}

// scenarioLines describes the scenario in a few short lines; the first names
// the target and the wire protocol.
func scenarioLines(r *Result) []string {
	s := r.Scenario
	var lines []string
	target := strings.Join(s.Targets, ", ")
	if target == "" {
		target = "(no target)"
	}
	lines = append(lines, fmt.Sprintf("target %s, protocol %s, started %s, %s measured after a %s ramp",
		target, s.ProtocolName(), fmtTime(r.Environment.Start), s.Duration, s.Ramp))
	var who []string
	for _, run := range r.Runs {
		who = append(who, fmt.Sprintf("%s browsers × %d tabs (%s)", fmtInt(int64(run.Clients)), run.Tabs, run.Mode))
	}
	if len(who) > 0 {
		lines = append(lines, strings.Join(uniqueStrings(who), "; "))
	}
	lines = append(lines, fmt.Sprintf("%d rooms, %d per user, %s msg/s per tab, %d B messages, %s private; churn %s, conn kill %s, flush %s/%d bytes",
		s.Rooms, s.RoomsPerUser, fmtNum(s.Rate), s.MsgSize, fmtPct(s.DMRatio), fmtNum(s.TabChurn), fmtNum(s.ConnKill), s.FlushInterval, s.FlushMax))
	if n := len(r.MergedFrom); n > 0 {
		var hosts []string
		for _, e := range r.MergedFrom {
			hosts = append(hosts, e.Hostname)
		}
		lines = append(lines, fmt.Sprintf("merged from %d load machines: %s", n, strings.Join(hosts, ", ")))
	}
	return lines
}

func uniqueStrings(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "(unknown time)"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

// connectionRatio returns per-tab physical connections / shared ones when the
// result has both modes.
func connectionRatio(r *Result) (float64, bool) {
	sh, pt := r.RunByMode(ModeShared), r.RunByMode(ModePerTab)
	if sh == nil || pt == nil || sh.PhysicalConnectionsPeak == 0 {
		return 0, false
	}
	return float64(pt.PhysicalConnectionsPeak) / float64(sh.PhysicalConnectionsPeak), true
}

// headerRow returns the header of a table with one column per run.
func headerRow(r *Result, first string) []string {
	row := []string{first}
	for _, run := range r.Runs {
		row = append(row, run.Mode)
	}
	return row
}

// perRun builds a row with one cell per run.
func perRun(r *Result, label string, cell func(run *Run) string) []string {
	row := []string{label}
	for i := range r.Runs {
		row = append(row, cell(&r.Runs[i]))
	}
	return row
}

// anyRun reports whether some run of r satisfies f.
func anyRun(r *Result, f func(run *Run) bool) bool {
	for i := range r.Runs {
		if f(&r.Runs[i]) {
			return true
		}
	}
	return false
}

// headlineRows are the numbers a reader needs first.
func headlineRows(r *Result) [][]string {
	lat := func(f func(Latency) float64) func(run *Run) string {
		return func(run *Run) string {
			l, ok := run.Latency[HistDelivery]
			if !ok || l.Count == 0 {
				return "-"
			}
			return fmtMs(f(l))
		}
	}
	rows := [][]string{
		headerRow(r, ""),
		perRun(r, "verdict", func(run *Run) string { return run.Verdict.Mark() }),
		perRun(r, "physical connections (peak)", func(run *Run) string { return fmtInt(run.PhysicalConnectionsPeak) }),
		perRun(r, "sessions (peak)", func(run *Run) string { return fmtInt(run.SessionsPeak) }),
		perRun(r, "sessions per connection", func(run *Run) string {
			return fmtFloat(div(float64(run.SessionsPeak), float64(run.PhysicalConnectionsPeak)))
		}),
	}
	nodes, cross, dmCross := nodeHeadlineRows(r)
	rows = append(rows, nodes...)
	rows = append(rows, perRun(r, "delivered", func(run *Run) string { return fmtInt(run.Delivery.Delivered) }))
	rows = append(rows, cross...)
	rows = append(rows,
		perRun(r, "lost / duplicated / reordered", func(run *Run) string {
			d := run.Delivery
			return fmt.Sprintf("%s / %s / %s", fmtInt(d.Lost), fmtInt(d.Duplicated), fmtInt(d.Reordered))
		}),
	)
	rows = append(rows, perRun(r, "mismatched (one offset, two contents)", func(run *Run) string { return fmtInt(run.Delivery.Mismatched) }))
	if anyRun(r, func(run *Run) bool { return run.Delivery.LostTail > 0 }) {
		rows = append(rows, perRun(r, "  lost at the end / gaps", func(run *Run) string {
			d := run.Delivery
			return fmt.Sprintf("%s / %s", fmtInt(d.LostTail), fmtInt(d.Lost-d.LostTail))
		}))
	}
	if dm := dmRows(r); dm != nil {
		rows = append(rows, dm[0]) // DM copies delivered
		rows = append(rows, dmCross...)
		rows = append(rows, dm[1:]...)
	}
	rows = append(rows, [][]string{
		perRun(r, "delivery p50 ms", lat(func(l Latency) float64 { return l.P50Ms })),
		perRun(r, "delivery p99 ms", lat(func(l Latency) float64 { return l.P99Ms })),
		perRun(r, "delivery p99.9 ms", lat(func(l Latency) float64 { return l.P999Ms })),
		perRun(r, "delivery max ms", func(run *Run) string {
			l, ok := run.Latency[HistDelivery]
			if !ok || (l.Count == 0 && l.AboveRange == 0) {
				return "-"
			}
			return maxCell(l)
		}),
		perRun(r, "reconnects", func(run *Run) string { return fmtInt(run.Counters.TotalReconnects()) }),
		perRun(r, "gave up", func(run *Run) string { return fmtInt(run.Counters.Reconnects[StepGiveUp]) }),
		perRun(r, "errors", func(run *Run) string { return fmtInt(run.Counters.TotalErrors()) }),
	}...)
	if anyRun(r, func(run *Run) bool { return run.Counters.Kicks > 0 }) {
		rows = append(rows, perRun(r, "kicks (too_many_connections)", func(run *Run) string { return fmtInt(run.Counters.Kicks) }))
	}
	if anyRun(r, func(run *Run) bool { return run.Counters.Resets > 0 || len(run.Faults) > 0 }) {
		rows = append(rows, perRun(r, "resumes answered with reset", func(run *Run) string { return fmtInt(run.Counters.Resets) }))
	}
	return rows
}

// faultRows describes the faults injected into the server and how the
// browsers came back, or nil when no run had any.
func faultRows(r *Result) [][]string {
	if !anyRun(r, func(run *Run) bool { return len(run.Faults) > 0 }) {
		return nil
	}
	resume := func(f func(Latency) float64) func(run *Run) string {
		return func(run *Run) string {
			l, ok := run.Latency[HistResume]
			if !ok || l.Count == 0 {
				return "-"
			}
			return fmtMs(f(l))
		}
	}
	rows := [][]string{
		headerRow(r, ""),
		perRun(r, "injected", func(run *Run) string {
			var parts []string
			for _, f := range run.Faults {
				parts = append(parts, f.describe())
			}
			if len(parts) == 0 {
				return "-"
			}
			return strings.Join(parts, "; ")
		}),
	}
	rows = append(rows, killRows(r)...)
	return append(rows,
		perRun(r, "links lost to the fault (reconnects)", func(run *Run) string { return fmtInt(run.FaultLinkLosses()) }),
		perRun(r, "resumes answered with reset", func(run *Run) string { return fmtInt(run.Counters.Resets) }),
		perRun(r, "browsers resumed", func(run *Run) string { return fmtInt(run.Latency[HistResume].Count) }),
		perRun(r, "link lost → resumed p50 ms", resume(func(l Latency) float64 { return l.P50Ms })),
		perRun(r, "link lost → resumed p99 ms", resume(func(l Latency) float64 { return l.P99Ms })),
		perRun(r, "link lost → resumed max ms", resume(func(l Latency) float64 { return l.MaxMs })),
	)
}

// describe says what the fault did, in a few words: "crash at 20 s, down
// 1.2 s", "kill_node at 15 s" (the node killed has rows of its own:
// killRows).
func (f Fault) describe() string {
	at := fmtFloat(float64(f.AtMs)/1000) + " s"
	if f.Kind == FaultKillNode {
		s := f.Kind + " at " + at
		if f.Error != "" {
			s += " (FAILED: " + f.Error + ")"
		}
		return s
	}
	s := fmt.Sprintf("%s at %s, down %s s", f.Kind, at, fmtFloat(float64(f.DownMs)/1000))
	if f.Error != "" {
		s += " (restart FAILED: " + f.Error + ")"
	}
	return s
}

// killRows are the rows about the nodes killed (FaultKillNode), or nil
// when no run killed one: which node (with the connections it had, the
// most of any node), and how long until the address list dropped it.
func killRows(r *Result) [][]string {
	if !anyRun(r, func(run *Run) bool {
		return slices.ContainsFunc(run.Faults, func(f Fault) bool { return f.Kind == FaultKillNode })
	}) {
		return nil
	}
	each := func(f func(Fault) string) func(run *Run) string {
		return func(run *Run) string {
			var parts []string
			for _, ft := range run.Faults {
				if ft.Kind == FaultKillNode {
					parts = append(parts, f(ft))
				}
			}
			if len(parts) == 0 {
				return "-"
			}
			return strings.Join(parts, "; ")
		}
	}
	return [][]string{
		perRun(r, "node killed (most connections)", each(func(f Fault) string {
			return fmt.Sprintf("%s (%s conns)", f.Node, fmtInt(f.NodeConnections))
		})),
		perRun(r, "killed node gone from /lbs after", each(func(f Fault) string {
			switch {
			case f.GoneFromListMs > 0:
				return fmtFloat(float64(f.GoneFromListMs)/1000) + " s"
			case f.GoneFromListMs < 0:
				return "STILL LISTED after 10 s"
			}
			return "-"
		})),
	}
}

// maxCell formats the maximum of l, flagging values beyond the 60 s range.
func maxCell(l Latency) string {
	if l.AboveRange > 0 {
		return ">" + fmtMs(float64(HistHighestUs)/1000)
	}
	return fmtMs(l.MaxMs)
}

// latencyRows is the percentile table of one run's histograms.
func latencyRows(run *Run) [][]string {
	rows := [][]string{{"", "count", "p50", "p90", "p99", "p99.9", "max", ">60s"}}
	for _, name := range histNames(run) {
		l := run.Latency[name]
		if l.Count == 0 {
			maxS := "-"
			if l.AboveRange > 0 {
				maxS = maxCell(l)
			}
			rows = append(rows, []string{name, "0", "-", "-", "-", "-", maxS, fmtInt(l.AboveRange)})
			continue
		}
		rows = append(rows, []string{name, fmtInt(l.Count), fmtMs(l.P50Ms), fmtMs(l.P90Ms), fmtMs(l.P99Ms),
			fmtMs(l.P999Ms), maxCell(l), fmtInt(l.AboveRange)})
	}
	return rows
}

// trafficRows are message, frame and byte counts, and the cost of one
// delivered message.
func trafficRows(r *Result) [][]string {
	c := func(f func(Counters) int64) func(run *Run) string {
		return func(run *Run) string { return fmtInt(f(run.Counters)) }
	}
	per := func(f func(run *Run) (float64, float64), bytes bool) func(run *Run) string {
		return func(run *Run) string {
			a, b := f(run)
			if b == 0 {
				return "-"
			}
			if bytes {
				return fmtBytes(a / b)
			}
			return fmtFloat(a / b)
		}
	}
	return [][]string{
		headerRow(r, ""),
		perRun(r, "room messages sent", c(func(c Counters) int64 { return c.MessagesSent })),
		perRun(r, "private messages sent", c(func(c Counters) int64 { return c.DMsSent })),
		perRun(r, "frames in / out", func(run *Run) string {
			return fmtInt(run.Counters.FramesIn) + " / " + fmtInt(run.Counters.FramesOut)
		}),
		perRun(r, "bytes in / out", func(run *Run) string {
			return fmtBytes(float64(run.Counters.BytesIn)) + " / " + fmtBytes(float64(run.Counters.BytesOut))
		}),
		perRun(r, "frames in per delivered msg", per(func(run *Run) (float64, float64) {
			return float64(run.Counters.FramesIn), float64(run.Delivery.Delivered)
		}, false)),
		perRun(r, "bytes in per delivered msg", per(func(run *Run) (float64, float64) {
			return float64(run.Counters.BytesIn), float64(run.Delivery.Delivered)
		}, true)),
		perRun(r, "frames per WebSocket msg in", per(func(run *Run) (float64, float64) {
			return float64(run.Counters.FramesIn), float64(run.Counters.WSMessagesIn)
		}, false)),
	}
}

// mapRows is a table of a counter map (reconnects by step, errors by kind)
// with one column per run, or nil when every run's map is empty. order lists
// keys to show first (and always); other keys follow sorted.
func mapRows(r *Result, title string, get func(*Run) map[string]int64, order []string) [][]string {
	keys := append([]string(nil), order...)
	seen := map[string]bool{}
	for _, k := range order {
		seen[k] = true
	}
	total := int64(0)
	for i := range r.Runs {
		m := get(&r.Runs[i])
		total += sumValues(m)
		for _, k := range sortedKeys(m) {
			if !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
		}
	}
	if total == 0 && order == nil {
		return nil
	}
	rows := [][]string{headerRow(r, title)}
	for _, k := range keys {
		rows = append(rows, perRun(r, "  "+k, func(run *Run) string { return fmtInt(get(run)[k]) }))
	}
	return rows
}

// resourceRows shows CPU and memory of the server and the load generator,
// or nil when none is known.
func resourceRows(r *Result) [][]string {
	known := false
	for _, run := range r.Runs {
		if run.ServerProcess != nil || run.LoadProcess != nil {
			known = true
		}
	}
	if !known {
		return nil
	}
	proc := func(get func(*Run) *Process, f func(*Process) string) func(*Run) string {
		return func(run *Run) string {
			p := get(run)
			if p == nil {
				return "-"
			}
			return f(p)
		}
	}
	server := func(run *Run) *Process { return run.ServerProcess }
	load := func(run *Run) *Process { return run.LoadProcess }
	cpu := func(p *Process) string { return fmtFloat(p.CPUSeconds) + " s" }
	rss := func(p *Process) string { return fmtBytes(float64(p.RSSPeakBytes)) }
	cpuLabel, rssLabel := "server CPU", "server RSS peak"
	parts := serverParts(r)
	if parts != nil {
		cpuLabel, rssLabel = "server CPU (all processes)", "server RSS peak (all processes)"
	}
	rows := [][]string{
		headerRow(r, ""),
		perRun(r, cpuLabel, proc(server, cpu)),
		perRun(r, rssLabel, proc(server, rss)),
		perRun(r, "server RSS per connection", func(run *Run) string {
			if run.ServerProcess == nil || run.PhysicalConnectionsPeak == 0 {
				return "-"
			}
			return fmtBytes(float64(run.ServerProcess.RSSPeakBytes) / float64(run.PhysicalConnectionsPeak))
		}),
	}
	for _, name := range parts {
		rows = append(rows, perRun(r, "  "+name+" CPU, RSS peak", func(run *Run) string {
			if run.ServerProcess == nil {
				return "-"
			}
			for _, p := range run.ServerProcess.Processes {
				if p.Name == name {
					s := fmtFloat(p.CPUSeconds) + " s, " + fmtBytes(float64(p.RSSPeakBytes))
					if p.Killed {
						s += " (killed)"
					}
					return s
				}
			}
			return "-"
		}))
	}
	return append(rows,
		perRun(r, "load generator CPU", proc(load, cpu)),
		perRun(r, "load generator RSS peak", proc(load, rss)),
	)
}

// serverParts lists the names of the processes the server was made of
// (Process.Processes: the nodes and redis-server of imload run --nodes),
// in the order first met over the runs, or nil when no run's server was
// several processes.
func serverParts(r *Result) []string {
	var names []string
	seen := map[string]bool{}
	for _, run := range r.Runs {
		if run.ServerProcess == nil {
			continue
		}
		for _, p := range run.ServerProcess.Processes {
			if !seen[p.Name] {
				seen[p.Name] = true
				names = append(names, p.Name)
			}
		}
	}
	return names
}

// environmentPairs lists the environment as label/value pairs.
func environmentPairs(r *Result) [][2]string {
	e := r.Environment
	pairs := [][2]string{
		{"imload", fmt.Sprintf("%s (built for imload protocol v%d)", e.ImloadVersion, e.ProtocolVersion)},
		{"go", fmt.Sprintf("%s %s/%s", e.GoVersion, e.GOOS, e.GOARCH)},
		{"load machine", fmt.Sprintf("%s, %d CPUs", e.Hostname, e.NumCPU)},
	}
	if e.ServerVersion != "" {
		pairs = append(pairs, [2]string{"server", e.ServerVersion})
	}
	pairs = append(pairs,
		[2]string{"start", fmtTime(e.Start)},
		[2]string{"end", fmtTime(e.End)},
		[2]string{"seed", fmt.Sprint(r.Scenario.Seed)},
	)
	t := r.Thresholds
	pairs = append(pairs, [2]string{"thresholds", fmt.Sprintf("p99 ≤ %s, lost ≤ %s, duplicated ≤ %s, reordered ≤ %s, mismatched ≤ %s, errors ≤ %s, kicks ≤ %s",
		limitMs(t.MaxP99Ms), limitInt(t.MaxLost), limitInt(t.MaxDuplicated), limitInt(t.MaxReordered), limitInt(t.MaxMismatched),
		limitInt(t.MaxErrors), limitInt(t.MaxKicks))})
	for _, k := range sortedKeys(r.Scenario.Extra) {
		pairs = append(pairs, [2]string{k, r.Scenario.Extra[k]})
	}
	return pairs
}

func limitMs(v float64) string {
	if v <= 0 {
		return "any"
	}
	return fmtMs(v) + " ms"
}

func limitInt(v int64) string {
	if v < 0 {
		return "any"
	}
	return fmtInt(v)
}

// writeTable writes rows as aligned columns: the first column left-aligned,
// the others right-aligned, each row indented by two spaces. A row of one
// cell is a section title: it is preceded by a blank line (unless first) and
// does not take part in the alignment.
func writeTable(w io.Writer, rows [][]string) {
	var widths []int
	for _, row := range rows {
		if len(row) == 1 {
			continue
		}
		for i, cell := range row {
			if i >= len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], utf8.RuneCountInString(cell))
		}
	}
	for n, row := range rows {
		if len(row) == 1 {
			if n > 0 {
				fmt.Fprintln(w)
			}
			fmt.Fprintln(w, "  "+row[0])
			continue
		}
		var b strings.Builder
		b.WriteString("  ")
		for i, cell := range row {
			pad := strings.Repeat(" ", widths[i]-utf8.RuneCountInString(cell))
			if i == 0 {
				b.WriteString(cell + pad)
			} else {
				b.WriteString("  " + pad + cell)
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
}
