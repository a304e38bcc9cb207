package reports

// Latency: a histogram of microseconds summarised in milliseconds, and the
// JSON form of durations.

import (
	"encoding/json"
	"fmt"
	"math"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// NewHistogram returns an empty histogram with the geometry every imload
// latency histogram uses (1 µs .. 60 s, 3 significant digits, values in µs).
func NewHistogram() *hdrhistogram.Histogram {
	return hdrhistogram.New(HistLowestUs, HistHighestUs, HistSigFigs)
}

// Latency summarises one HdrHistogram whose values were recorded in
// microseconds (1 µs .. 60 s, 3 significant digits; see NewHistogram).
// Percentiles are in milliseconds. Count does not include AboveRange, the
// values that were larger than the histogram's 60 s maximum and could not be
// recorded. HDR is the full histogram in HdrHistogram's portable compressed
// base64 form (V2 compressed encoding), which Merge uses to merge exactly.
type Latency struct {
	Count      int64   `json:"count"`
	P50Ms      float64 `json:"p50_ms"`
	P90Ms      float64 `json:"p90_ms"`
	P99Ms      float64 `json:"p99_ms"`
	P999Ms     float64 `json:"p999_ms"`
	MaxMs      float64 `json:"max_ms"`
	MeanMs     float64 `json:"mean_ms"`
	AboveRange int64   `json:"above_range"`
	HDR        string  `json:"hdr"`
}

// Duration is a time.Duration that reads and writes JSON as a Go duration
// string ("30s"); it also reads a number of nanoseconds.
type Duration time.Duration

// MarshalJSON writes d as a duration string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads a duration string or a number of nanoseconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("bad duration %q: %w", s, err)
		}
		*d = Duration(v)
		return nil
	}
	var n int64
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("duration must be a string like \"30s\" or nanoseconds: %w", err)
	}
	*d = Duration(n)
	return nil
}

// String returns the duration as time.Duration formats it.
func (d Duration) String() string { return time.Duration(d).String() }

// NewLatency summarises h, a histogram of microsecond values (see
// NewHistogram), into a Latency with percentiles in milliseconds and the
// encoded histogram. aboveRange is the number of values that were too large to
// record. A nil h gives an empty Latency.
func NewLatency(h *hdrhistogram.Histogram, aboveRange int64) Latency {
	l := Latency{AboveRange: aboveRange}
	if h == nil {
		h = NewHistogram()
	}
	l.fill(h)
	return l
}

// fill sets every field of l except AboveRange from h.
func (l *Latency) fill(h *hdrhistogram.Histogram) {
	l.Count = h.TotalCount()
	if l.Count > 0 {
		l.P50Ms = usToMs(h.ValueAtQuantile(50))
		l.P90Ms = usToMs(h.ValueAtQuantile(90))
		l.P99Ms = usToMs(h.ValueAtQuantile(99))
		l.P999Ms = usToMs(h.ValueAtQuantile(99.9))
		l.MaxMs = usToMs(h.Max())
		l.MeanMs = math.Round(h.Mean()) / 1000
	} else {
		l.P50Ms, l.P90Ms, l.P99Ms, l.P999Ms, l.MaxMs, l.MeanMs = 0, 0, 0, 0, 0, 0
	}
	enc, err := h.Encode(hdrhistogram.V2CompressedEncodingCookieBase)
	if err != nil {
		// Encoding a valid in-memory histogram cannot fail; keep the summary.
		l.HDR = ""
		return
	}
	l.HDR = string(enc)
}

func usToMs(us int64) float64 { return float64(us) / 1000 }

// Histogram decodes the histogram stored in l. An empty HDR gives an empty
// histogram of the standard geometry.
func (l Latency) Histogram() (*hdrhistogram.Histogram, error) {
	if l.HDR == "" {
		if l.Count > 0 {
			return nil, fmt.Errorf("histogram of %d values has no hdr data", l.Count)
		}
		return NewHistogram(), nil
	}
	h, err := hdrhistogram.Decode([]byte(l.HDR))
	if err != nil {
		return nil, fmt.Errorf("decode hdr histogram: %w", err)
	}
	return h, nil
}
