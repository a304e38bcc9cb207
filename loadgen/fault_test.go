package loadgen

import (
	"context"
	"strings"
	"testing"
	"time"

	"imload/reports"
)

// Faults are checked against the scenario before anything starts.
func TestCheckFaults(t *testing.T) {
	sc := Scenario{Ramp: time.Second, Duration: 5 * time.Second, Protocol: ProtocolImload}
	var srv idleFaultServer
	for _, c := range []struct {
		f    Fault
		srv  FaultServer
		want string
	}{
		{Fault{Kind: reports.FaultCrash, At: 3 * time.Second}, srv, ""},
		{Fault{Kind: reports.FaultCrash, At: 6 * time.Second}, srv, "outside the run"},
		{Fault{Kind: "explode", At: time.Second}, srv, "unknown fault"},
		{Fault{Kind: reports.FaultRestart, At: time.Second, RestartDelay: -1}, srv, "negative"},
		{Fault{Kind: reports.FaultRestart, At: time.Second}, nil, "a server"},
	} {
		o := &options{faults: []Fault{c.f}}
		if c.srv != nil {
			o.faultSrv = c.srv
		}
		err := checkFaults(o, sc)
		if (c.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%+v: %v, want %q", c.f, err, c.want)
		}
	}
}

// idleFaultServer is a FaultServer that is never driven: checkFaults only
// looks at whether there is one.
type idleFaultServer struct{}

func (idleFaultServer) Kill()                         {}
func (idleFaultServer) Stop(time.Duration) error      { return nil }
func (idleFaultServer) Restart(context.Context) error { return nil }
