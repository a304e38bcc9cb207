package loadgen

// Latency histograms: one set per shard, recorded under the shard's lock,
// merged at the end.

import (
	"sync"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"imload/reports"
)

// Histogram indexes.
const (
	hDelivery = iota
	hDM
	hReply
	hConnect
	hAttach
	hHeartbeat
	hReconnect
	hResume
	nHist
)

var histNames = [nHist]string{
	reports.HistDelivery, reports.HistDM, reports.HistReply, reports.HistConnect,
	reports.HistAttach, reports.HistHeartbeat, reports.HistReconnect, reports.HistResume,
}

// hists is one shard's set of latency histograms (values in µs, 1 µs..60 s,
// 3 significant digits). HdrHistograms are not safe for concurrent use: each
// shard's set is guarded by its mutex and merged at the end; nothing records
// into a shared histogram.
type hists struct {
	mu    sync.Mutex
	h     [nHist]*hdrhistogram.Histogram
	above [nHist]int64
	// sec holds the deliveries of the current second, for the time series;
	// the series collector swaps it out every second.
	sec *hdrhistogram.Histogram
}

func newHists() *hists {
	var s hists
	for i := range s.h {
		s.h[i] = reports.NewHistogram()
	}
	s.sec = reports.NewHistogram()
	return &s
}

// record adds one value (µs) to histogram k. The caller holds s.mu.
func (s *hists) record(k int, us int64) {
	if us < reports.HistLowestUs {
		us = reports.HistLowestUs
	}
	if us > reports.HistHighestUs {
		// Count it, do not drop it: above_range in the result, and the
		// maximum trackable value in the histogram so percentiles see it.
		s.above[k]++
		us = reports.HistHighestUs
	}
	_ = s.h[k].RecordValue(us)
	if k == hDelivery {
		_ = s.sec.RecordValue(us)
	}
}

// recordOne locks and records a single value.
func (s *hists) recordOne(k int, us int64) {
	s.mu.Lock()
	s.record(k, us)
	s.mu.Unlock()
}

// mergeHists merges the shards' histograms into one set.
func mergeHists(all []*hists) (out [nHist]*hdrhistogram.Histogram, above [nHist]int64) {
	for i := range out {
		out[i] = reports.NewHistogram()
	}
	for _, s := range all {
		s.mu.Lock()
		for i := range out {
			out[i].Merge(s.h[i])
			above[i] += s.above[i]
		}
		s.mu.Unlock()
	}
	return out, above
}
