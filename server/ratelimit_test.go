package server

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"imload/mux"
)

// pipelined is one command of a batch.
type pipelined struct {
	cmd  string
	body any
}

// batch sends cmds for session sid in WebSocket messages of up to 100
// frames and 32 KB, without waiting in between, and returns their replies
// in order.
func (c *client) batch(sid uint32, cmds []pipelined) []mux.Frame {
	c.t.Helper()
	first := c.seq + 1
	var msg []byte
	frames := 0
	for _, pc := range cmds {
		c.seq++
		var b []byte
		if pc.body != nil {
			b = mux.EncodeBody(pc.body)
		}
		msg = mux.AppendCmd(msg, sid, c.seq, pc.cmd, b)
		msg = append(msg, '\n')
		if frames++; frames == 100 || len(msg) > 32<<10 {
			c.sendRaw(string(msg))
			msg, frames = msg[:0], 0
		}
	}
	if frames > 0 {
		c.sendRaw(string(msg))
	}
	out := make([]mux.Frame, len(cmds))
	for i := range cmds {
		seq := first + uint64(i)
		out[i] = c.next(func(f mux.Frame) bool { return f.T == mux.TypeReply && f.SID == sid && f.Seq == seq })
	}
	return out
}

// tally counts replies by error name ("" for success).
func tally(replies []mux.Frame) map[string]int {
	n := make(map[string]int)
	for _, f := range replies {
		n[f.Err]++
	}
	return n
}

func repeat(n int, cmd string, body any) []pipelined {
	out := make([]pipelined, n)
	for i := range out {
		out[i] = pipelined{cmd, body}
	}
	return out
}

// One connection may not run more than conn_rate commands a second (after
// a burst of conn_burst), whatever the command and however many sessions
// it spreads them over; another connection is not affected.
func TestConnRateLimit(t *testing.T) {
	cfg := testConfig()
	cfg.ConnRate, cfg.ConnBurst = 20, 50
	ts := startServer(t, cfg)
	c := dial(t, ts, nil)
	if c.hello.ConnRate != 20 || c.hello.ConnBurst != 50 {
		t.Fatalf("hello %+v: want conn_rate 20, conn_burst 50", c.hello)
	}
	c.attach(1, "alice")
	c.attach(2, "alice")
	start := time.Now()
	var cmds []pipelined
	for i := range 100 {
		room := fmt.Sprintf("r%d", i%5)
		if i%2 == 0 {
			cmds = append(cmds, pipelined{mux.CmdJoin, mux.JoinReq{Room: room}})
		} else {
			cmds = append(cmds, pipelined{mux.CmdLeave, mux.LeaveReq{Room: room}})
		}
	}
	cmds = append(cmds, repeat(100, mux.CmdWho, mux.WhoReq{Room: "nowhere"})...)
	got := tally(append(c.batch(1, cmds), c.batch(2, repeat(100, mux.CmdNick, mux.NickReq{Name: "alice"}))...))
	elapsed := time.Since(start)
	allowed := 300 - got[mux.ErrConnRateLimited]
	if max := 50 + int(20*elapsed.Seconds()) + 1; allowed > max || got[mux.ErrConnRateLimited] == 0 {
		t.Fatalf("%d of 300 commands ran in %v (%v), want at most %d", allowed, elapsed, got, max)
	}
	other := dial(t, ts, nil)
	other.attach(1, "bob")
	other.join(1, "r0")
	if st := ts.srv.counters.connRateLimited.Load(); st != int64(got[mux.ErrConnRateLimited]) {
		t.Fatalf("conn_rate_limited counter %d, want %d", st, got[mux.ErrConnRateLimited])
	}
	// The bucket refills.
	eventually(t, 10*time.Second, "the bucket to refill", func() bool {
		return c.cmd(1, mux.CmdWho, mux.WhoReq{Room: "r0"}).Code == mux.CodeOK
	})
}

// An address may open at most max_conns_per_ip connections (a refused
// one gets HTTP 429 before the upgrade) and all of its connections
// together run at most ip_rate commands a second. Loopback is exempt by
// default (the test suite and the load generator live there), so this test
// turns the exemption off.
func TestIPLimits(t *testing.T) {
	cfg := testConfig()
	cfg.IPLimitExempt = nil
	cfg.MaxConnsPerIP = 3
	cfg.IPRate, cfg.IPBurst = 10, 30
	ts := startServer(t, cfg)
	var conns []*client
	for range 3 {
		conns = append(conns, dial(t, ts, nil))
	}
	if h := conns[0].hello; h.MaxConnsPerIP != 3 || h.IPRate != 10 || h.IPBurst != 30 {
		t.Fatalf("hello %+v", h)
	}
	_, resp, err := websocket.DefaultDialer.Dial(ts.url(), nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("4th connection from one address: err %v, response %+v; want HTTP 429", err, resp)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), mux.ErrIPConnLimited) {
		t.Fatalf("refusal body %q does not name %s", body, mux.ErrIPConnLimited)
	}
	if n := ts.srv.counters.ipConnsRefused.Load(); n != 1 {
		t.Fatalf("ip_conns_refused %d", n)
	}

	// Commands of the three connections share one bucket.
	start := time.Now()
	var replies []mux.Frame
	for i, c := range conns {
		replies = append(replies, c.batch(1, append([]pipelined{{mux.CmdAttach, mux.AttachReq{}}},
			repeat(20, mux.CmdWho, mux.WhoReq{Room: fmt.Sprint("x", i)})...))...)
	}
	elapsed := time.Since(start)
	got := tally(replies)
	allowed := 63 - got[mux.ErrIPRateLimited]
	if max := 30 + int(10*elapsed.Seconds()) + 1; allowed > max || got[mux.ErrIPRateLimited] == 0 {
		t.Fatalf("%d of 63 commands from one address ran in %v (%v), want at most %d", allowed, elapsed, got, max)
	}

	// A connection that goes makes room for another.
	conns[0].ws.Close()
	eventually(t, 5*time.Second, "a 4th connection after one closed", func() bool {
		ws, _, err := websocket.DefaultDialer.Dial(ts.url(), nil)
		if err != nil {
			return false
		}
		ws.Close()
		return true
	})
}

// What one user receives is bounded: private messages into one user, from
// any number of senders, beyond dm_in_rate (after dm_in_burst) are refused
// to the sender with 429 recipient_busy.
func TestDMIntoOneUserBounded(t *testing.T) {
	cfg := testConfig()
	cfg.DMInRate, cfg.DMInBurst = 10, 20
	ts := startServer(t, cfg)
	victim := dial(t, ts, nil)
	victim.attach(1, "victim")
	if victim.hello.DMInRate != 10 || victim.hello.DMInBurst != 20 {
		t.Fatalf("hello %+v", victim.hello)
	}
	bystander := dial(t, ts, nil)
	bystander.attach(1, "bystander")
	start := time.Now()
	got := map[string]int{}
	var last *client
	for i := range 4 {
		s := dial(t, ts, nil)
		s.attach(1, fmt.Sprint("sender", i))
		for k, v := range tally(s.batch(1, repeat(30, mux.CmdDM, mux.DMReq{To: "victim", Text: strings.Repeat("x", 4000)}))) {
			got[k] += v
		}
		last = s
	}
	elapsed := time.Since(start)
	delivered := got[""]
	if max := 20 + int(10*elapsed.Seconds()) + 1; delivered > max || got[mux.ErrRecipientBusy] == 0 {
		t.Fatalf("%d of 120 dms into one user went through in %v (%v), want at most %d", delivered, elapsed, got, max)
	}
	if n := ts.srv.counters.recipientBusy.Load(); n != int64(got[mux.ErrRecipientBusy]) {
		t.Fatalf("recipient_busy counter %d, want %d", n, got[mux.ErrRecipientBusy])
	}
	// Other users are not affected.
	last.ok(1, mux.CmdDM, mux.DMReq{To: "bystander", Text: "hi"}, nil)
	bystander.push(mux.EvDM, nil)
	eventually(t, 5*time.Second, "the victim to get every accepted dm", func() bool {
		n := 0
		for _, f := range victim.buf {
			if f.Ev == mux.EvDM {
				n++
			}
		}
		for {
			select {
			case f := <-victim.frames:
				victim.buf = append(victim.buf, f)
				if f.Ev == mux.EvDM {
					n++
				}
				continue
			default:
			}
			break
		}
		return n == delivered
	})
}

// The address table is bounded: an address without connections is dropped
// once its bucket is full again (here at once: a burst of 1), and idle
// addresses beyond maxIdleIPs are dropped in any case. IPv6 addresses
// count per /64.
func TestIPTableBounded(t *testing.T) {
	cfg := testConfig()
	cfg.IPLimitExempt = []string{"10.9.0.0/16"}
	cfg.MaxConnsPerIP = 2
	cfg.IPRate, cfg.IPBurst = 1e-3, 5 // a drained bucket stays drained
	tab := newIPTable(&cfg)
	req := func(addr string) *http.Request { return &http.Request{RemoteAddr: addr} }
	var held []*ipEntry
	for i := range maxIdleIPs + 100 {
		e, err := tab.admit(req(fmt.Sprintf("10.%d.%d.%d:4000", i>>16, (i>>8)&255, i&255)))
		if err != nil || e == nil {
			t.Fatalf("admit %d: %v", i, err)
		}
		e.lim.Allow() // not full: kept while idle
		held = append(held, e)
	}
	for _, e := range held {
		tab.release(e)
	}
	tab.mu.Lock()
	tab.sweep(time.Now())
	tab.mu.Unlock()
	if n := tab.size(); n != maxIdleIPs {
		t.Fatalf("%d idle addresses kept, want %d", n, maxIdleIPs)
	}
	if e, _ := tab.admit(req("10.9.1.1:1")); e != nil {
		t.Fatal("an exempt address was counted")
	}
	// Two addresses of one IPv6 /64 share the cap of 2.
	for _, a := range []string{"[2001:db8::1]:1", "[2001:db8::2]:1"} {
		if _, err := tab.admit(req(a)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tab.admit(req("[2001:db8::3]:1")); err == nil || !strings.Contains(err.Error(), mux.ErrIPConnLimited) {
		t.Fatalf("third connection of one /64: %v", err)
	}
	if _, err := tab.admit(req("[2001:db8:0:1::1]:1")); err != nil {
		t.Fatalf("another /64: %v", err)
	}
	// Entries whose bucket is full again go at the next sweep.
	cfg.IPBurst = 1
	tab2 := newIPTable(&cfg)
	e, _ := tab2.admit(req("10.1.1.1:1"))
	tab2.release(e)
	tab2.mu.Lock()
	tab2.sweep(time.Now())
	tab2.mu.Unlock()
	if n := tab2.size(); n != 0 {
		t.Fatalf("%d entries after the sweep, want 0", n)
	}
}
