package loadgen

import (
	"context"
	"strings"
	"testing"
	"time"

	"imload/reports"
	"imload/server/servertest"
)

// TestRunKicksSettle: with more tabs per user than the server's per-user
// connection cap, in per-tab mode each browser's last socket makes the
// server kick its oldest one (goaway too_many_connections, close 4003). The
// kicked socket must not reconnect (that would kick the next oldest, for
// ever): exactly one kick per browser, counted, and a failed verdict that
// says so.
func TestRunKicksSettle(t *testing.T) {
	cfg := testServerConfig("")
	cfg.MaxConnsPerUser = 4
	ts := servertest.Start(t, cfg)
	const clients = 6
	sc := smallScenario(ts.WSURL(), clients, 5)
	sc.Duration = 3 * time.Second
	sc.DMRatio = 0
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := Run(ctx, sc, WithModes(reports.ModePerTab), WithLogf(t.Logf))
	if err != nil {
		t.Fatal(err)
	}
	run := res.Runs[0]
	t.Logf("kicks %d, reconnects %v, errors %v, delivery %+v, server kicked %v", run.Counters.Kicks,
		run.Counters.Reconnects, run.Counters.Errors, run.Delivery, run.ServerStatsPeak["kicked"])
	if run.Counters.Kicks != clients {
		t.Errorf("%d kicks, want %d (one per browser, never reconnected)", run.Counters.Kicks, clients)
	}
	if n := run.Counters.TotalReconnects(); n != 0 {
		t.Errorf("%d reconnects after kicks, want none: %v", n, run.Counters.Reconnects)
	}
	if d := run.Delivery; d.Lost != 0 || d.Duplicated != 0 || d.Mismatched != 0 {
		t.Errorf("delivery %+v", d)
	}
	if res.Verdict.Pass || !strings.Contains(res.Verdict.Reason, "kicks") {
		t.Errorf("verdict %+v, want a failure naming the kicks", res.Verdict)
	}
}
