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
	var names []string
	for _, n := range HistogramNames {
		if _, ok := run.Latency[n]; ok {
			names = append(names, n)
		}
	}
	for _, n := range sortedKeys(run.Latency) {
		if !slices.Contains(HistogramNames, n) {
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
