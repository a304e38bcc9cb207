package loadgen

import (
	"context"
	"strings"
	"testing"
	"time"

	"imload/reports"
)

// Tests shared by the protocols of other servers (socket.io, Centrifugo):
// one socket per tab, no multi-tab sharing, no resume.

// checkChurnAndKills runs sc per tab with tabs closing and sockets cut: a
// socket that comes back joins again (no recovery); what it missed while
// away is excused, nothing else may be lost.
func checkChurnAndKills(t *testing.T, sc Scenario) {
	t.Helper()
	sc.Duration = 4 * time.Second
	sc.TabChurn = 5
	sc.ConnKill = 5
	sc.Ladder = LadderConfig{Base: 50 * time.Millisecond, Max: 500 * time.Millisecond}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := Run(ctx, sc, WithModes(reports.ModePerTab))
	if err != nil {
		t.Fatal(err)
	}
	run := &res.Runs[0]
	t.Logf("delivery %+v dm %+v reconnects %v notes %v", run.Delivery, run.DMDelivery, run.Counters.Reconnects, run.Notes)
	d := run.Delivery
	if d.Expected == 0 || d.Lost != 0 || d.Duplicated != 0 || d.Reordered != 0 {
		t.Errorf("delivery %+v", d)
	}
	if run.Counters.TotalErrors() != 0 {
		t.Errorf("errors %v", run.Counters.Errors)
	}
	if run.Notes["tabs_closed"] == 0 || run.Notes["sockets_killed"] == 0 || run.Latency[reports.HistReconnect].Count == 0 {
		t.Errorf("no churn or no reconnect: %v, %d reconnects", run.Notes, run.Latency[reports.HistReconnect].Count)
	}
	if run.DMDelivery != nil && run.DMDelivery.Lost != 0 {
		t.Errorf("dm %+v", run.DMDelivery)
	}
}

// checkPerTabOnly: asking for shared mode with a protocol that has no
// sharing is refused before anything is dialled.
func checkPerTabOnly(t *testing.T, sc Scenario) {
	t.Helper()
	_, err := Run(context.Background(), sc, WithModes(reports.ModeShared, reports.ModePerTab))
	if err == nil || !strings.Contains(err.Error(), "per-tab only") {
		t.Fatalf("err %v", err)
	}
}
