package reports

import (
	"fmt"
	"html"
	"html/template"
	"math"
	"strconv"
	"strings"
)

// Charts are inline SVG written here, with no dependency: they scale to the
// width of the page (viewBox), stay crisp on a phone and weigh a few KB.

// Chart geometry, in viewBox units.
const (
	chartW = 480.0
	chartH = 260.0
	padL   = 54.0
	padR   = 34.0
	padT   = 12.0
	padB   = 42.0
)

// xy is one point of a series.
type xy struct{ X, Y float64 }

// chartSeries is one line of a line chart.
type chartSeries struct {
	Name  string
	Color string
	Dash  bool
	Pts   []xy
}

// tick is a labelled position on an axis.
type tick struct {
	V     float64
	Label string
}

// axis maps data values to pixels.
type axis struct {
	Lo, Hi float64
	Log    bool // values are plotted by log10
	Ticks  []tick
}

func (a axis) frac(v float64) float64 {
	lo, hi := a.Lo, a.Hi
	if a.Log {
		v, lo, hi = math.Log10(math.Max(v, a.Lo)), math.Log10(lo), math.Log10(hi)
	}
	if hi == lo {
		return 0
	}
	return (v - lo) / (hi - lo)
}

// lineChart is a chart of lines over a shared x axis.
type lineChart struct {
	Label  string // accessible name
	XLabel string
	YLabel string
	X, Y   axis
	Series []chartSeries
}

// px and py convert data coordinates to viewBox coordinates.
func (c *lineChart) px(x float64) float64 { return padL + c.X.frac(x)*(chartW-padL-padR) }
func (c *lineChart) py(y float64) float64 {
	return chartH - padB - c.Y.frac(y)*(chartH-padT-padB)
}

// svgOpen starts an svg element with the chart's viewBox and label.
func svgOpen(b *strings.Builder, label string) {
	fmt.Fprintf(b, `<svg class="chart" viewBox="0 0 %g %g" role="img" aria-label="%s">`,
		chartW, chartH, html.EscapeString(label))
}

// frame draws the grid, tick labels and axis labels.
func frame(b *strings.Builder, xLabel, yLabel string, xt []tick, px func(float64) float64, yt []tick, py func(float64) float64) {
	b.WriteString(`<g class="grid">`)
	for _, t := range yt {
		y := py(t.V)
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/>`, padL, y, chartW-padR, y)
	}
	for _, t := range xt {
		x := px(t.V)
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/>`, x, padT, x, chartH-padB)
	}
	b.WriteString(`</g><g class="ticks">`)
	for _, t := range yt {
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="end" dominant-baseline="middle">%s</text>`, padL-6, py(t.V), html.EscapeString(t.Label))
	}
	for _, t := range xt {
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`, px(t.V), chartH-padB+17, html.EscapeString(t.Label))
	}
	b.WriteString(`</g>`)
	fmt.Fprintf(b, `<line class="axis" x1="%g" y1="%g" x2="%g" y2="%g"/>`, padL, chartH-padB, chartW-padR, chartH-padB)
	fmt.Fprintf(b, `<text class="axislabel" x="%.1f" y="%g" text-anchor="middle">%s</text>`, padL+(chartW-padL-padR)/2, chartH-6, html.EscapeString(xLabel))
	fmt.Fprintf(b, `<text class="axislabel" transform="translate(13 %.1f) rotate(-90)" text-anchor="middle">%s</text>`, padT+(chartH-padT-padB)/2, html.EscapeString(yLabel))
}

// SVG renders the chart.
func (c *lineChart) SVG() template.HTML {
	var b strings.Builder
	svgOpen(&b, c.Label)
	frame(&b, c.XLabel, c.YLabel, c.X.Ticks, c.px, c.Y.Ticks, c.py)
	for _, s := range c.Series {
		if len(s.Pts) == 0 {
			continue
		}
		dash := ""
		if s.Dash {
			dash = ` stroke-dasharray="6 4"`
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2.2" stroke-linejoin="round"%s points="`, s.Color, dash)
		for i, p := range s.Pts {
			if i > 0 {
				b.WriteByte(' ')
			}
			fmt.Fprintf(&b, "%.1f,%.1f", c.px(p.X), c.py(p.Y))
		}
		fmt.Fprintf(&b, `"><title>%s</title></polyline>`, html.EscapeString(s.Name))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) // #nosec: every text is escaped above
}

// barGroup is one category of a grouped bar chart.
type barGroup struct {
	Label  string
	Values []float64 // one per bar series
}

// barChart is a grouped bar chart.
type barChart struct {
	Label  string
	YLabel string
	Names  []string // bar series names
	Colors []string
	Groups []barGroup
}

// SVG renders the chart, each bar labelled with its value.
func (c *barChart) SVG() template.HTML {
	var b strings.Builder
	svgOpen(&b, c.Label)
	hi := 0.0
	for _, g := range c.Groups {
		for _, v := range g.Values {
			hi = math.Max(hi, v)
		}
	}
	y := linearAxis(0, hi, 4, fmtCompact)
	plotW := chartW - padL - padR
	py := func(v float64) float64 { return chartH - padB - y.frac(v)*(chartH-padT-padB) }
	groupW := plotW / float64(max(1, len(c.Groups)))
	var xt []tick
	for i, g := range c.Groups {
		xt = append(xt, tick{V: float64(i), Label: g.Label})
	}
	px := func(i float64) float64 { return padL + (i+0.5)*groupW }
	frame(&b, "", c.YLabel, nil, px, y.Ticks, py)
	b.WriteString(`<g class="ticks">`)
	for _, t := range xt {
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`, px(t.V), chartH-padB+17, html.EscapeString(t.Label))
	}
	b.WriteString(`</g>`)
	n := max(1, len(c.Names))
	barW := math.Min(36, groupW*0.8/float64(n))
	for gi, g := range c.Groups {
		left := px(float64(gi)) - barW*float64(n)/2
		for si, v := range g.Values {
			x := left + float64(si)*barW
			top := py(v)
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s %s: %s</title></rect>`,
				x+1, top, barW-2, chartH-padB-top, c.Colors[si%len(c.Colors)],
				html.EscapeString(c.Names[si]), html.EscapeString(g.Label), fmtCompact(v))
			fmt.Fprintf(&b, `<text class="barval" x="%.1f" y="%.1f" text-anchor="middle">%s</text>`, x+barW/2, top-4, fmtCompact(v))
		}
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) // #nosec: every text is escaped above
}

// linearAxis returns an axis from lo (or the tick below it) to the first nice
// tick at or above hi, with about n intervals.
func linearAxis(lo, hi float64, n int, format func(float64) string) axis {
	if hi <= lo {
		hi = lo + 1
	}
	step := niceNum((hi - lo) / float64(n))
	start := math.Floor(lo/step) * step
	end := math.Ceil(hi/step-1e-9) * step
	a := axis{Lo: start, Hi: end}
	for i := 0; ; i++ {
		v := start + float64(i)*step
		if v > end+step*1e-6 {
			break
		}
		v = math.Round(v/step) * step
		a.Ticks = append(a.Ticks, tick{V: v, Label: format(v)})
	}
	return a
}

// niceNum rounds x up to 1, 2 or 5 times a power of ten.
func niceNum(x float64) float64 {
	if x <= 0 {
		return 1
	}
	exp := math.Floor(math.Log10(x))
	f := x / math.Pow(10, exp)
	var nf float64
	switch {
	case f <= 1:
		nf = 1
	case f <= 2:
		nf = 2
	case f <= 5:
		nf = 5
	default:
		nf = 10
	}
	return nf * math.Pow(10, exp)
}

// logAxis returns a log10 axis covering [lo, hi] in whole decades, with a
// tick at each decade (and at 2 and 5 when it spans two decades or fewer).
func logAxis(lo, hi float64, format func(float64) string) axis {
	if lo <= 0 {
		lo = hi / 1000
	}
	if lo <= 0 {
		lo, hi = 0.001, 1
	}
	l := math.Floor(math.Log10(lo))
	h := math.Ceil(math.Log10(hi))
	if h <= l {
		h = l + 1
	}
	a := axis{Lo: math.Pow(10, l), Hi: math.Pow(10, h), Log: true}
	for e := l; e <= h; e++ {
		v := math.Pow(10, e)
		a.Ticks = append(a.Ticks, tick{V: v, Label: format(v)})
		if h-l <= 2 && e < h {
			a.Ticks = append(a.Ticks, tick{V: 2 * v, Label: format(2 * v)}, tick{V: 5 * v, Label: format(5 * v)})
		}
	}
	return a
}

// fmtCompact formats a number in few characters: 1500 → "1.5k".
func fmtCompact(v float64) string {
	a := math.Abs(v)
	switch {
	case a >= 1e9:
		return trimZeros(v/1e9) + "G"
	case a >= 1e6:
		return trimZeros(v/1e6) + "M"
	case a >= 1e3:
		return trimZeros(v/1e3) + "k"
	}
	return trimZeros(v)
}

// trimZeros formats v with up to two decimals and no trailing zeros.
func trimZeros(v float64) string {
	if math.Abs(v) >= 100 {
		return strconv.FormatFloat(math.Round(v), 'f', -1, 64)
	}
	if math.Abs(v) >= 10 {
		return strconv.FormatFloat(math.Round(v*10)/10, 'f', -1, 64)
	}
	return strconv.FormatFloat(math.Round(v*100)/100, 'f', -1, 64)
}
