package loadgen

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"imload/reports"
	"imload/server/servertest"
)

// tamperRelay is a WebSocket relay in front of a real imload server: it
// passes every message both ways, and on every second connection it
// rewrites the text of the room message at offset 3 of every room. Receivers
// on the other connections get the real message: two receivers, two
// contents under one (room, epoch, offset), the server's numbering intact.
type tamperRelay struct {
	t        *testing.T
	target   string
	ln       net.Listener
	srv      *http.Server
	n        atomic.Int64
	tampered atomic.Int64
	mu       sync.Mutex
	conns    []*websocket.Conn
	wg       sync.WaitGroup
	served   chan error // what Serve returned
}

func startTamperRelay(t *testing.T, target string) *tamperRelay {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &tamperRelay{t: t, target: target, ln: ln, served: make(chan error, 1)}
	r.srv = &http.Server{Handler: http.HandlerFunc(r.serve), ReadHeaderTimeout: 5 * time.Second}
	r.wg.Add(1)
	go func() { defer r.wg.Done(); r.served <- r.srv.Serve(ln) }()
	t.Cleanup(r.close)
	return r
}

func (r *tamperRelay) url() string { return "ws://" + r.ln.Addr().String() + "/ws" }

func (r *tamperRelay) track(c *websocket.Conn) {
	r.mu.Lock()
	r.conns = append(r.conns, c)
	r.mu.Unlock()
}

// close stops the relay and its pumps; it fails the test if the relay's
// Serve failed (anything but being closed).
func (r *tamperRelay) close() {
	_ = r.srv.Close()
	r.mu.Lock()
	for _, c := range r.conns {
		c.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
	if err := <-r.served; !errors.Is(err, http.ErrServerClosed) {
		r.t.Errorf("relay: Serve: %v", err)
	}
}

func (r *tamperRelay) serve(w http.ResponseWriter, req *http.Request) {
	if req.URL.Path != "/ws" {
		http.NotFound(w, req)
		return
	}
	up, _, err := websocket.DefaultDialer.Dial(r.target, nil)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	r.track(up)
	u := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	down, err := u.Upgrade(w, req, nil)
	if err != nil {
		up.Close()
		return
	}
	r.track(down)
	tamper := r.n.Add(1)%2 == 0
	pump := func(from, to *websocket.Conn, rewrite bool) {
		defer r.wg.Done()
		defer from.Close()
		defer to.Close()
		for {
			typ, msg, err := from.ReadMessage()
			if err != nil {
				return
			}
			if rewrite {
				msg = r.rewrite(msg)
			}
			if to.WriteMessage(typ, msg) != nil {
				return
			}
		}
	}
	r.wg.Add(2)
	go pump(down, up, false)
	go pump(up, down, tamper)
}

// rewrite changes the first padding byte of the text of every room message
// at offset 3 (the header, and so the latency, stays intact).
func (r *tamperRelay) rewrite(msg []byte) []byte {
	lines := bytes.Split(msg, []byte("\n"))
	for i, l := range lines {
		if bytes.Contains(l, []byte(`"ev":"msg"`)) && bytes.Contains(l, []byte(`"offset":3,`)) {
			if j := bytes.Index(l, []byte("|.")); j >= 0 {
				l = bytes.Clone(l)
				l[j+1] = 'X'
				lines[i] = l
				r.tampered.Add(1)
			}
		}
	}
	return bytes.Join(lines, []byte("\n"))
}

// TestRunContentMismatch: through a relay that gives half the receivers
// another text under offset 3 of each room (the server's offsets all
// intact), every offset arrives exactly once, and the run still fails: its
// deliveries are mismatched.
func TestRunContentMismatch(t *testing.T) {
	ts := servertest.Start(t, testServerConfig(""))
	relay := startTamperRelay(t, ts.WSURL())
	sc := smallScenario(relay.url(), 40, 2)
	sc.DMRatio = 0
	sc.History = 0
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := Run(ctx, sc, WithModes(reports.ModePerTab), WithoutStats(), WithLogf(t.Logf))
	if err != nil {
		t.Fatal(err)
	}
	run := res.Runs[0]
	d := run.Delivery
	t.Logf("delivery %+v, %d frames tampered", d, relay.tampered.Load())
	if relay.tampered.Load() == 0 {
		t.Fatal("the relay tampered with nothing: no room reached offset 3")
	}
	if d.Lost != 0 || d.Duplicated != 0 || d.Reordered != 0 || d.Delivered != d.Expected {
		t.Errorf("offsets: %+v, want every offset exactly once", d)
	}
	if d.Mismatched == 0 {
		t.Error("no mismatch counted, yet half the receivers got another text under offset 3")
	}
	if res.Verdict.Pass || !strings.Contains(res.Verdict.Reason, "mismatched") {
		t.Errorf("verdict %+v, want a failure that names the mismatches", res.Verdict)
	}
}
