package reports

import (
	"cmp"
	"maps"
	"slices"
	"strconv"
)

// sortedKeys returns the keys of m in ascending order.
func sortedKeys[K cmp.Ordered, V any](m map[K]V) []K {
	return slices.Sorted(maps.Keys(m))
}

// histNames returns the histogram names present in run, the known ones in
// display order first, then any others sorted.
func histNames(run *Run) []string {
	known := histogramNames()
	var names []string
	for _, n := range known {
		if _, ok := run.Latency[n]; ok {
			names = append(names, n)
		}
	}
	for _, n := range sortedKeys(run.Latency) {
		if !slices.Contains(known, n) {
			names = append(names, n)
		}
	}
	return names
}

// fmtMs formats a millisecond value with precision that suits its size.
func fmtMs(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v < 1:
		return strconv.FormatFloat(v, 'f', 3, 64)
	case v < 10:
		return strconv.FormatFloat(v, 'f', 2, 64)
	case v < 100:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
}

// fmtInt formats n with thousands separators: 1234567 → "1,234,567".
func fmtInt(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := false
	if n < 0 {
		neg, s = true, s[1:]
	}
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}

// fmtFloat formats v with about three significant digits (no exponent).
func fmtFloat(v float64) string {
	a := v
	if a < 0 {
		a = -a
	}
	switch {
	case v == 0:
		return "0"
	case a >= 1000:
		return fmtInt(int64(v + 0.5*sign(v)))
	case a >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case a >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	default:
		return strconv.FormatFloat(v, 'f', 3, 64)
	}
}

func sign(v float64) float64 {
	if v < 0 {
		return -1
	}
	return 1
}

// fmtBytes formats a byte count with binary units: 1536 → "1.5 KiB".
func fmtBytes(n float64) string {
	const unit = 1024
	if n < unit {
		return fmtFloat(n) + " B"
	}
	units := []string{"KiB", "MiB", "GiB", "TiB", "PiB"}
	i := -1
	for n >= unit && i < len(units)-1 {
		n /= unit
		i++
	}
	return fmtFloat(n) + " " + units[i]
}

// fmtRatio formats a ratio as "4.00×".
func fmtRatio(v float64) string {
	return strconv.FormatFloat(v, 'f', 2, 64) + "×"
}

// fmtPct formats a fraction as a percentage: 0.1 → "10%".
func fmtPct(v float64) string {
	return strconv.FormatFloat(v*100, 'f', -1, 64) + "%"
}

// div returns a/b, or 0 when b is 0.
func div(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// fmtNum formats a configuration value with as few digits as it needs.
func fmtNum(v float64) string {
	return strconv.FormatFloat(v, 'f', -1, 64)
}
