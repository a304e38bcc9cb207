package loadgen

import (
	"context"
	"testing"
	"time"

	"imload/reports"
	"imload/server"
	"imload/server/servertest"
)

// TestRunWithTokens: a run against a server with --auth jwt, every user
// attaching with a token signed with the server's secret; tokens that last
// 3 s make every tab refresh its token several times under load, and
// nothing is lost, no session is detached. The server has --admin-addr:
// its /stats is read there.
func TestRunWithTokens(t *testing.T) {
	secret := []byte("the load test's secret, 32 bytes!")
	cfg := testServerConfig("")
	cfg.Auth, cfg.JWTHMACSecret, cfg.TokenExpiringAhead = server.AuthJWT, secret, time.Second
	cfg.AdminAddr = "127.0.0.1:0"
	ts := servertest.Start(t, cfg)
	sc := smallScenario(ts.WSURL(), 100, 3)
	sc.Duration = 5 * time.Second
	sc.JWTSecret, sc.JWTTTL = secret, 3*time.Second
	sc.StatsURLs = []string{"http://" + ts.Server.AdminAddr()}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	res, err := Run(ctx, sc, WithSettle(500*time.Millisecond), WithLogf(t.Logf))
	if err != nil {
		t.Fatal(err)
	}
	for i := range res.Runs {
		run := &res.Runs[i]
		checkRun(t, run, 100, 3)
		n := run.Notes
		t.Logf("%s: tokens %d minted, %d token_expiring, %d refreshed; errors %v", run.Mode,
			n[reports.NoteTokensMinted], n[reports.NoteTokenExpiring], n[reports.NoteTokenRefreshes], run.Counters.Errors)
		if n[reports.NoteTokenRefreshes] < 300 || n[reports.NoteTokenExpiring] < 300 || n[reports.NoteTokensMinted] < 200 {
			t.Errorf("%s: notes %v, want every tab to have refreshed", run.Mode, n)
		}
		if res.Scenario.Extra["jwt_ttl"] != "3s" {
			t.Errorf("scenario extra %v", res.Scenario.Extra)
		}
	}
	if !res.Verdict.Pass {
		t.Errorf("verdict: %+v", res.Verdict)
	}
}
