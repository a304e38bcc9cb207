package reports

// The verdict: a run checked against its thresholds.

import (
	"fmt"
	"strings"
)

// Thresholds are the limits a run must meet to pass (see Result.Evaluate).
type Thresholds struct {
	// MaxP99Ms fails a run whose delivery p99 exceeds it; 0 disables.
	MaxP99Ms float64 `json:"max_p99_ms"`
	// MaxLost, MaxDuplicated and MaxReordered fail a run with more lost,
	// duplicated or reordered messages. 0 (the default) tolerates none; a
	// negative value disables the check.
	MaxLost       int64 `json:"max_lost"`
	MaxDuplicated int64 `json:"max_duplicated"`
	MaxReordered  int64 `json:"max_reordered"`
	// MaxMismatched fails a run with more deliveries whose content differs
	// from what another receiver (or the sender) had under the same room,
	// epoch and offset; MaxKicks one with more connections the server closed
	// with too_many_connections. 0 tolerates none; negative disables.
	MaxMismatched int64 `json:"max_mismatched"`
	MaxKicks      int64 `json:"max_kicks"`
	// MaxErrors fails a run with more errors (all kinds); negative disables.
	// 0 tolerates none.
	MaxErrors int64 `json:"max_errors"`
}

// Evaluate sets every run's verdict and the overall verdict from
// r.Thresholds: a run fails when any delivery count or the error total is
// above its limit, or its delivery p99 is above MaxP99Ms, or a delivery value
// was above the histogram's range while MaxP99Ms is set.
func (r *Result) Evaluate() {
	overall := Verdict{Pass: true, Reason: "ok"}
	var failed []string
	for i := range r.Runs {
		run := &r.Runs[i]
		run.Verdict = r.Thresholds.check(run)
		if !run.Verdict.Pass {
			failed = append(failed, run.Mode+": "+run.Verdict.Reason)
		}
	}
	if len(failed) > 0 {
		overall = Verdict{Pass: false, Reason: strings.Join(failed, "; ")}
	}
	r.Verdict = overall
}

func (t Thresholds) check(run *Run) Verdict {
	var why []string
	limit := func(name string, got, max int64) {
		if max >= 0 && got > max {
			why = append(why, fmt.Sprintf("%d %s (max %d)", got, name, max))
		}
	}
	limit("lost", run.Delivery.Lost, t.MaxLost)
	limit("duplicated", run.Delivery.Duplicated, t.MaxDuplicated)
	limit("reordered", run.Delivery.Reordered, t.MaxReordered)
	limit("mismatched", run.Delivery.Mismatched, t.MaxMismatched)
	if t.MaxKicks >= 0 && run.Counters.Kicks > t.MaxKicks {
		why = append(why, fmt.Sprintf("%d kicks (max %d): the server closed connections for too_many_connections (its per-user cap, --max-conns-per-user; lower --tabs)",
			run.Counters.Kicks, t.MaxKicks))
	}
	limit("errors", run.Counters.TotalErrors(), t.MaxErrors)
	if t.MaxP99Ms > 0 {
		d := run.Latency[HistDelivery]
		if d.P99Ms > t.MaxP99Ms {
			why = append(why, fmt.Sprintf("delivery p99 %s ms > %s ms", fmtMs(d.P99Ms), fmtMs(t.MaxP99Ms)))
		} else if d.AboveRange > 0 && float64(d.AboveRange) >= 0.01*float64(d.Count+d.AboveRange) {
			why = append(why, fmt.Sprintf("delivery p99 above 60 s (%d values off the scale)", d.AboveRange))
		}
	}
	if len(why) == 0 {
		return Verdict{Pass: true, Reason: "ok"}
	}
	return Verdict{Pass: false, Reason: strings.Join(why, ", ")}
}

// FaultLinkLosses returns the links cut by the run's injected faults.
func (run *Run) FaultLinkLosses() int64 {
	var n int64
	for _, f := range run.Faults {
		n += f.LinkLosses
	}
	return n
}

// TotalErrors returns the sum of the error counts of every kind.
func (c Counters) TotalErrors() int64 { return sumValues(c.Errors) }

// TotalReconnects returns the number of reconnect attempts (every ladder step
// except give_up).
func (c Counters) TotalReconnects() int64 {
	var n int64
	for k, v := range c.Reconnects {
		if k != StepGiveUp {
			n += v
		}
	}
	return n
}

func sumValues(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}
