package loadgen

import (
	"context"
	"testing"
	"time"

	"imload/reports"
	"imload/server/servertest"
)

// After a server restart, the tabs of a browser resume each room with one
// join naming them all (sids): the restarted server sees one join per room
// per socket, for every tab, and nothing is lost or duplicated.
func TestRestartResumesOncePerSocket(t *testing.T) {
	dir := t.TempDir()
	ts := servertest.Start(t, testServerConfig(dir))
	addr := ts.Addr()
	sc := smallScenario(ts.WSURL(), 40, 3)
	sc.RoomsPerUser = 2
	sc.Duration = 5 * time.Second
	sc.Ladder = LadderConfig{RetrySame: 4, Base: 100 * time.Millisecond, Max: time.Second, Refetches: 5}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	type out struct {
		res *reports.Result
		err error
	}
	done := make(chan out, 1)
	go func() {
		r, err := Run(ctx, sc, WithModes(reports.ModeShared))
		done <- out{r, err}
	}()
	time.Sleep(2500 * time.Millisecond)
	ts.Close()
	time.Sleep(300 * time.Millisecond)
	ts = servertest.StartOn(t, testServerConfig(dir), addr)
	// Every socket comes back and resumes all its rooms (the run is still
	// going: nothing else joins).
	socks := int64(sc.Clients)
	want := socks * int64(sc.Tabs*sc.RoomsPerUser)
	deadline := time.Now().Add(30 * time.Second)
	for ts.Server.Stats().JoinSessions < want && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	st := ts.Server.Stats()
	o := <-done
	if o.err != nil {
		t.Fatal(o.err)
	}
	if st.JoinSessions != want || st.Joins != socks*int64(sc.RoomsPerUser) {
		t.Errorf("after the restart: %d joins for %d sessions, want %d joins (one per room per socket) for %d",
			st.Joins, st.JoinSessions, socks*int64(sc.RoomsPerUser), want)
	}
	run := &o.res.Runs[0]
	d := run.Delivery
	if d.Lost != 0 || d.Duplicated != 0 || d.Reordered != 0 || d.Mismatched != 0 || d.Expected == 0 || d.Delivered != d.Expected {
		t.Errorf("delivery %+v", d)
	}
	if run.Counters.TotalErrors() != 0 {
		t.Errorf("errors %v", run.Counters.Errors)
	}
	if n := run.Latency[reports.HistReconnect].Count; n < socks {
		t.Errorf("%d sockets resumed after the restart, want %d", n, socks)
	}
	t.Logf("joins %d for %d sessions; delivery %+v; notes %v", st.Joins, st.JoinSessions, d, run.Notes)
}
