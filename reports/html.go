package reports

import (
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"math"
	"strings"
)

//go:embed report.css
var reportCSS string

//go:embed report.html.tmpl
var reportTmpl string

// pageTemplate renders report.html and compare.html. It is parsed once; a
// parsed template is safe for concurrent use and never modified.
var pageTemplate = template.Must(template.New("page").Parse(reportTmpl))

// modeColor is the color of a mode in every chart.
func modeColor(mode string) string {
	switch mode {
	case ModeShared:
		return "#2563eb"
	case ModePerTab:
		return "#ea580c"
	}
	return "#16a34a"
}

// htmlCell is one cell of an HTML table. Title, if set, is its tooltip.
type htmlCell struct {
	Text  string
	Class string
	Title string
}

// htmlRow is a row of cells, or a section title when Section is set.
type htmlRow struct {
	Section string
	Cells   []htmlCell
}

// htmlTable is a table with a header row.
type htmlTable struct {
	Head []string
	Rows []htmlRow
}

// legendItem is one entry of a chart's legend.
type legendItem struct {
	Name  string
	Color string
	Dash  bool
}

// htmlChart is a chart with its caption and legend.
type htmlChart struct {
	Title  string
	Note   string
	Legend []legendItem
	SVG    template.HTML
}

// tile is one headline number at the top of the report.
type tile struct {
	Big   string
	Label string
	Small string
	Class string
}

// pageData feeds the page template.
type pageData struct {
	CSS        template.CSS
	Title      string
	Kind       string // "report" or "compare"
	Pass       bool
	Verdict    string
	Reason     string
	Subtitle   []string
	Tiles      []tile
	Headline   htmlTable
	Nodes      []namedTable // one per run with several nodes
	NodesNote  string
	Charts     []htmlChart
	Latency    []namedTable
	Compare    []namedTable
	Details    []namedTable
	Config     [][2]string
	Env        [][2]string
	MergedFrom []string
	Footer     string
}

// namedTable is a titled table.
type namedTable struct {
	Title string
	Note  string
	Table htmlTable
}

// HTML writes the report of r as one self-contained HTML page: no script, no
// external resource of any kind (styles and SVG charts are inline), readable
// on a phone. With a shared and a per-tab run it includes their comparison.
func HTML(w io.Writer, r *Result) error {
	d := pageData{
		CSS:      template.CSS(reportCSS),
		Title:    "imload report",
		Kind:     "report",
		Pass:     r.Verdict.Pass,
		Verdict:  r.Verdict.Word(),
		Reason:   r.Verdict.Why(),
		Subtitle: scenarioLines(r),
		Tiles:    tiles(r),
		Headline: toHTMLTable(headlineRows(r), classifyHeadline),
		Charts:   charts(r),
		Config:   configPairs(r),
		Env:      environmentPairs(r),
		Footer:   fmt.Sprintf("imload %s · result schema %d", r.Environment.ImloadVersion, r.Version),
	}
	for i := range r.Runs {
		run := &r.Runs[i]
		d.Latency = append(d.Latency, namedTable{Title: run.Mode, Table: toHTMLTable(latencyRows(run), nil)})
	}
	for i := range r.Runs {
		run := &r.Runs[i]
		if rows := nodeRows(run); rows != nil {
			d.Nodes = append(d.Nodes, namedTable{Title: run.Mode, Table: toHTMLTable(rows, nil)})
		}
	}
	if len(d.Nodes) > 0 {
		d.NodesNote = upperFirst(nodesNote) + "."
	}
	if c := CompareModes(r); c != nil {
		d.Compare = []namedTable{{Title: "per-tab (A) vs shared (B)", Note: "B/A is shared ÷ per-tab; the better side is highlighted.", Table: c.htmlTable()}}
	}
	if rows := faultRows(r); rows != nil {
		d.Details = append(d.Details, namedTable{Title: "Faults injected",
			Note: "Server stopped and restarted, or one node of several killed, during the run; links a fault cut count as reconnects, not errors.", Table: toHTMLTable(rows, nil)})
	}
	d.Details = append(d.Details, namedTable{Title: "Traffic", Table: toHTMLTable(trafficRows(r), nil)})
	if rows := mapRows(r, "reconnects", func(run *Run) map[string]int64 { return run.Counters.Reconnects }, reconnectSteps()); rows != nil {
		d.Details = append(d.Details, namedTable{Title: "Reconnects by ladder step", Table: toHTMLTable(rows, nil)})
	}
	if rows := mapRows(r, "errors", func(run *Run) map[string]int64 { return run.Counters.Errors }, nil); rows != nil {
		d.Details = append(d.Details, namedTable{Title: "Errors by kind", Table: toHTMLTable(rows, nil)})
	}
	if t, ok := notesHTMLTable(r); ok {
		d.Details = append(d.Details, namedTable{Title: "Notes (not errors)",
			Note: "Counts that explain the run without failing it; hover a label for its result.json key.", Table: t})
	}
	if rows := resourceRows(r); rows != nil {
		d.Details = append(d.Details, namedTable{Title: "CPU and memory", Table: toHTMLTable(rows, nil)})
	}
	for _, e := range r.MergedFrom {
		d.MergedFrom = append(d.MergedFrom, fmt.Sprintf("%s (%d CPUs, imload %s, %s – %s)",
			e.Hostname, e.NumCPU, e.ImloadVersion, fmtTime(e.Start), fmtTime(e.End)))
	}
	if err := pageTemplate.Execute(w, d); err != nil {
		return fmt.Errorf("render HTML report: %w", err)
	}
	return nil
}

// HTML writes the comparison as a self-contained HTML page.
func (c *Comparison) HTML(w io.Writer) error {
	return ComparisonsHTML(w, []*Comparison{c})
}

// ComparisonsHTML writes several comparisons (one per mode, as returned by
// CompareResults) as one self-contained HTML page.
func ComparisonsHTML(w io.Writer, cs []*Comparison) error {
	d := pageData{
		CSS:    template.CSS(reportCSS),
		Title:  "imload comparison",
		Kind:   "compare",
		Footer: fmt.Sprintf("imload comparison · result schema %d", SchemaVersion),
	}
	for _, c := range cs {
		note := "B/A is B ÷ A; the better side of each row is highlighted."
		if l := c.protocolLine(); l != "" {
			note = upperFirst(l) + ". " + note
		}
		d.Compare = append(d.Compare, namedTable{
			Title: "A = " + c.A + ", B = " + c.B,
			Note:  note,
			Table: c.htmlTable(),
		})
	}
	if err := pageTemplate.Execute(w, d); err != nil {
		return fmt.Errorf("render HTML comparison: %w", err)
	}
	return nil
}

// htmlTable converts the comparison to a table, marking the better cells.
// When the sides spoke different protocols, each column head names its
// side's protocol after the label.
func (c *Comparison) htmlTable() htmlTable {
	t := htmlTable{Head: []string{"", c.A, c.B, "B/A"}}
	if c.protocolsDiffer() {
		t.Head[1] += " · " + c.ProtocolA
		t.Head[2] += " · " + c.ProtocolB
	}
	for _, s := range c.Sections {
		t.Rows = append(t.Rows, htmlRow{Section: s.Title})
		for _, r := range s.Rows {
			a, b, ratio := r.cells()
			ca, cb := htmlCell{Text: a}, htmlCell{Text: b}
			switch r.Better {
			case BetterA:
				ca.Class, ca.Text = "better", a+" ✓"
			case BetterB:
				cb.Class, cb.Text = "better", b+" ✓"
			}
			t.Rows = append(t.Rows, htmlRow{Cells: []htmlCell{{Text: r.Name}, ca, cb, {Text: ratio, Class: "ratio"}}})
		}
	}
	return t
}

// upperFirst returns s with its first letter in upper case (ASCII).
func upperFirst(s string) string {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}

// toHTMLTable converts text-table rows (header first; one-cell rows are
// section titles) to an HTML table. classify, if set, gives a cell's class.
func toHTMLTable(rows [][]string, classify func(label, cell string) string) htmlTable {
	var t htmlTable
	for i, row := range rows {
		if i == 0 {
			t.Head = row
			continue
		}
		if len(row) == 1 {
			t.Rows = append(t.Rows, htmlRow{Section: row[0]})
			continue
		}
		var cells []htmlCell
		for j, cell := range row {
			c := htmlCell{Text: strings.TrimSpace(cell)}
			if j > 0 && classify != nil {
				c.Class = classify(row[0], cell)
			}
			cells = append(cells, c)
		}
		t.Rows = append(t.Rows, htmlRow{Cells: cells})
	}
	return t
}

// classifyHeadline flags bad values of the headline table.
func classifyHeadline(label, cell string) string {
	switch label {
	case "verdict":
		if cell == verdictFail {
			return "bad"
		}
		return "good"
	case "lost / duplicated / reordered":
		if cell != "0 / 0 / 0" {
			return "bad"
		}
	case "DM lost / duplicated":
		if cell != "0 / 0" && cell != "-" {
			return "bad"
		}
	case "gave up", "errors":
		if cell != "0" {
			return "warn"
		}
	}
	return ""
}

// tiles are the few numbers at the top of the report.
func tiles(r *Result) []tile {
	var ts []tile
	if ratio, ok := connectionRatio(r); ok {
		sh, pt := r.RunByMode(ModeShared), r.RunByMode(ModePerTab)
		ts = append(ts, tile{
			Big:   fmtRatio(ratio),
			Label: "fewer connections with shared",
			Small: fmt.Sprintf("%s per-tab → %s shared, %s tabs", fmtInt(pt.PhysicalConnectionsPeak), fmtInt(sh.PhysicalConnectionsPeak), fmtInt(sh.SessionsPeak)),
			Class: "good",
		})
	} else {
		for _, run := range r.Runs {
			ts = append(ts, tile{
				Big:   fmtInt(run.PhysicalConnectionsPeak),
				Label: run.Mode + " connections (peak)",
				Small: fmtInt(run.SessionsPeak) + " sessions",
			})
		}
	}
	var p99s, labels []string
	over := false
	for _, run := range r.Runs {
		if l, ok := run.Latency[HistDelivery]; ok && l.Count > 0 {
			p99s = append(p99s, fmtMs(l.P99Ms))
			labels = append(labels, run.Mode)
			over = over || (r.Thresholds.MaxP99Ms > 0 && l.P99Ms > r.Thresholds.MaxP99Ms)
		}
	}
	if len(p99s) > 0 {
		t := tile{Big: strings.Join(p99s, " · ") + " ms", Label: "delivery p99 (" + strings.Join(labels, " · ") + ")"}
		if r.Thresholds.MaxP99Ms > 0 {
			t.Small = "limit " + fmtMs(r.Thresholds.MaxP99Ms) + " ms"
			t.Class = "good"
			if over {
				t.Class = "bad"
			}
		}
		ts = append(ts, t)
	}
	var lost, dup, reord, mism, delivered, cross, reconnects, gaveUp, errs, kicks int64
	for _, run := range r.Runs {
		mism += run.Delivery.Mismatched
		cross += run.Delivery.CrossNode
		kicks += run.Counters.Kicks
		lost += run.Delivery.Lost
		dup += run.Delivery.Duplicated
		reord += run.Delivery.Reordered
		delivered += run.Delivery.Delivered
		reconnects += run.Counters.TotalReconnects()
		gaveUp += run.Counters.Reconnects[StepGiveUp]
		errs += run.Counters.TotalErrors()
	}
	lt := tile{Big: fmtInt(lost), Label: "messages lost", Small: fmt.Sprintf("%s duplicated · %s reordered · %s mismatched · %s delivered",
		fmtInt(dup), fmtInt(reord), fmtInt(mism), fmtInt(delivered)), Class: "good"}
	if anyMultiNode(r) {
		lt.Small += " (" + fmtInt(cross) + " cross-node)"
	}
	if lost+mism > 0 {
		lt.Class = "bad"
	} else if dup+reord > 0 {
		lt.Class = "warn"
	}
	ts = append(ts, lt)
	rt := tile{Big: fmtInt(reconnects), Label: "reconnects", Small: fmtInt(gaveUp) + " gave up"}
	if kicks > 0 {
		rt.Small += " · " + fmtInt(kicks) + " kicked (too_many_connections)"
		rt.Class = "bad"
	} else if gaveUp > 0 {
		rt.Class = "warn"
	}
	ts = append(ts, rt)
	et := tile{Big: fmtInt(errs), Label: "errors", Small: topErrors(r)}
	if errs > 0 {
		et.Class = "warn"
	}
	ts = append(ts, et)
	return ts
}

// topErrors names the most frequent error kinds over all runs.
func topErrors(r *Result) string {
	all := map[string]int64{}
	for _, run := range r.Runs {
		for k, v := range run.Counters.Errors {
			all[k] += v
		}
	}
	keys := sortedKeys(all)
	// Most frequent first, then by name.
	for i := 1; i < len(keys); i++ {
		for j := i; j > 0 && all[keys[j]] > all[keys[j-1]]; j-- {
			keys[j], keys[j-1] = keys[j-1], keys[j]
		}
	}
	var parts []string
	for i, k := range keys {
		if i == 3 || all[k] == 0 {
			break
		}
		parts = append(parts, fmt.Sprintf("%s %s", fmtInt(all[k]), k))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, " · ")
}

// configPairs lists the scenario for the configuration section.
func configPairs(r *Result) [][2]string {
	s := r.Scenario
	pairs := [][2]string{
		{"target", strings.Join(s.Targets, ", ")},
		{"protocol", s.ProtocolName()},
	}
	for _, run := range r.Runs {
		pairs = append(pairs, [2]string{run.Mode, fmt.Sprintf("%s browsers × %d tabs", fmtInt(int64(run.Clients)), run.Tabs)})
	}
	pairs = append(pairs,
		[2]string{"rooms", fmt.Sprintf("%d (%d per user)", s.Rooms, s.RoomsPerUser)},
		[2]string{"rate", fmtNum(s.Rate) + " msg/s per tab"},
		[2]string{"duration", fmt.Sprintf("%s after a %s ramp", s.Duration, s.Ramp)},
		[2]string{"message size", fmt.Sprintf("%d B", s.MsgSize)},
		[2]string{"private messages", fmtPct(s.DMRatio)},
		[2]string{"tab churn", fmtNum(s.TabChurn)},
		[2]string{"connection kill", fmtNum(s.ConnKill)},
		[2]string{"flush", fmt.Sprintf("every %s or %d bytes", s.FlushInterval, s.FlushMax)},
	)
	return pairs
}

// charts builds the report's charts.
func charts(r *Result) []htmlChart {
	var out []htmlChart
	if c, ok := percentileChart(r); ok {
		out = append(out, c)
	}
	type seriesSpec struct {
		suffix string
		dash   bool
		get    func(Point) float64
		skip0  bool
	}
	timeChart := func(title, note, yLabel string, logY bool, specs []seriesSpec) (htmlChart, bool) {
		c := &lineChart{Label: title, XLabel: "seconds since start", YLabel: yLabel}
		var legend []legendItem
		xHi, yLo, yHi := 0.0, math.Inf(1), 0.0
		for i := range r.Runs {
			run := &r.Runs[i]
			if len(run.Series) == 0 {
				continue
			}
			t0 := run.Start.UnixMilli()
			if run.Start.IsZero() {
				t0 = run.Series[0].T - 1000
			}
			for _, sp := range specs {
				s := chartSeries{Name: run.Mode + " " + sp.suffix, Color: modeColor(run.Mode), Dash: sp.dash}
				for _, p := range run.Series {
					v := sp.get(p)
					if sp.skip0 && v == 0 {
						continue
					}
					x := float64(p.T-t0) / 1000
					s.Pts = append(s.Pts, xy{x, v})
					xHi = math.Max(xHi, x)
					yHi = math.Max(yHi, v)
					if v > 0 {
						yLo = math.Min(yLo, v)
					}
				}
				c.Series = append(c.Series, s)
				legend = append(legend, legendItem{Name: s.Name, Color: s.Color, Dash: s.Dash})
			}
		}
		if xHi == 0 || yHi == 0 {
			return htmlChart{}, false
		}
		c.X = linearAxis(0, xHi, 6, trimZeros)
		if logY {
			c.Y = logAxis(yLo, yHi, fmtCompact)
		} else {
			c.Y = linearAxis(0, yHi, 4, fmtCompact)
		}
		return htmlChart{Title: title, Note: note, Legend: legend, SVG: c.SVG()}, true
	}
	if c, ok := timeChart("Connections over time", "physical WebSockets (solid) and attached tab sessions (dashed)", "count", false, []seriesSpec{
		{"connections", false, func(p Point) float64 { return float64(p.Connections) }, false},
		{"sessions", true, func(p Point) float64 { return float64(p.Sessions) }, false},
	}); ok {
		out = append(out, c)
	}
	if c, ok := timeChart("Send and delivery rate", "messages per second: delivered to tabs (solid), sent (dashed); log scale", "per second", true, []seriesSpec{
		{"delivered/s", false, func(p Point) float64 { return p.Delivered }, false},
		{"sent/s", true, func(p Point) float64 { return p.Sent }, false},
	}); ok {
		out = append(out, c)
	}
	if c, ok := timeChart("Delivery latency over time", "p99 (solid) and p50 (dashed) of each second's deliveries", "ms", false, []seriesSpec{
		{"p99", false, func(p Point) float64 { return p.P99Ms }, true},
		{"p50", true, func(p Point) float64 { return p.P50Ms }, true},
	}); ok {
		out = append(out, c)
	}
	if c, ok := reconnectChart(r); ok {
		out = append(out, c)
	}
	return out
}

// percentileChart plots the delivery latency distribution of every run on
// the HdrHistogram "1/(1-p)" log axis.
func percentileChart(r *Result) (htmlChart, bool) {
	c := &lineChart{Label: "Delivery latency by percentile", XLabel: "percentile", YLabel: "ms (log scale)"}
	var legend []legendItem
	var maxCount int64
	yLo, yHi := math.Inf(1), 0.0
	type curve struct {
		s     chartSeries
		count int64
	}
	var curves []curve
	for i := range r.Runs {
		run := &r.Runs[i]
		l, ok := run.Latency[HistDelivery]
		if !ok || l.Count == 0 {
			continue
		}
		h, err := l.Histogram()
		if err != nil {
			continue
		}
		s := chartSeries{Name: run.Mode, Color: modeColor(run.Mode)}
		for _, b := range h.CumulativeDistributionWithTicks(5) {
			if b.Quantile >= 100 {
				continue
			}
			y := float64(b.ValueAt) / 1000
			s.Pts = append(s.Pts, xy{1 / (1 - b.Quantile/100), y})
			yLo, yHi = math.Min(yLo, y), math.Max(yHi, y)
		}
		maxMs := float64(h.Max()) / 1000
		s.Pts = append(s.Pts, xy{float64(h.TotalCount()), maxMs})
		yLo, yHi = math.Min(yLo, maxMs), math.Max(yHi, maxMs)
		maxCount = max(maxCount, h.TotalCount())
		curves = append(curves, curve{s, h.TotalCount()})
		legend = append(legend, legendItem{Name: run.Mode, Color: s.Color})
	}
	if len(curves) == 0 {
		return htmlChart{}, false
	}
	decades := int(math.Round(math.Log10(float64(maxCount))))
	decades = min(max(decades, 2), 5)
	hi := math.Pow(10, float64(decades))
	c.X = axis{Lo: 1, Hi: hi, Log: true}
	labels := []string{"0%", "90%", "99%", "99.9%", "99.99%", "99.999%"}
	for d := 0; d <= decades; d++ {
		c.X.Ticks = append(c.X.Ticks, tick{V: math.Pow(10, float64(d)), Label: labels[d]})
	}
	for _, cv := range curves {
		var pts []xy
		for _, p := range cv.s.Pts {
			if p.X > hi {
				p.X = hi
			}
			pts = append(pts, p)
		}
		cv.s.Pts = pts
		c.Series = append(c.Series, cv.s)
	}
	c.Y = logAxis(yLo, yHi, trimZeros)
	return htmlChart{
		Title:  "Delivery latency by percentile",
		Note:   "every delivery, sender's intended send time → receiving tab; the right end is the maximum",
		Legend: legend,
		SVG:    c.SVG(),
	}, true
}

// reconnectChart shows reconnects by ladder step, one bar per mode.
func reconnectChart(r *Result) (htmlChart, bool) {
	c := &barChart{Label: "Reconnects by ladder step", YLabel: "count"}
	total := int64(0)
	for _, run := range r.Runs {
		c.Names = append(c.Names, run.Mode)
		c.Colors = append(c.Colors, modeColor(run.Mode))
		total += sumValues(run.Counters.Reconnects)
	}
	if total == 0 {
		return htmlChart{}, false
	}
	var legend []legendItem
	for i, n := range c.Names {
		legend = append(legend, legendItem{Name: n, Color: c.Colors[i]})
	}
	for _, step := range reconnectSteps() {
		g := barGroup{Label: step}
		for _, run := range r.Runs {
			g.Values = append(g.Values, float64(run.Counters.Reconnects[step]))
		}
		c.Groups = append(c.Groups, g)
	}
	return htmlChart{
		Title:  "Reconnects by ladder step",
		Note:   "retry the same address → switch address → refetch the list → give up",
		Legend: legend,
		SVG:    c.SVG(),
	}, true
}
