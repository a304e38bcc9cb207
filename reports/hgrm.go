package reports

import (
	"fmt"
	"io"
)

// WriteHgrm writes the histogram of l in HdrHistogram's percentile
// distribution format (PercentilesPrint, 5 ticks per half distance), with
// values in milliseconds, so that the file loads in the HdrHistogram plotter.
func WriteHgrm(w io.Writer, l Latency) error {
	h, err := l.Histogram()
	if err != nil {
		return fmt.Errorf("write hgrm: %w", err)
	}
	if _, err := h.PercentilesPrint(w, 5, 1000); err != nil {
		return fmt.Errorf("write hgrm: %w", err)
	}
	return nil
}
