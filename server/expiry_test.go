package server

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"imload/mux"
)

// The expiry heap holds one entry per session whatever its refreshes, and
// gives the due ones in time order.
func TestExpiriesHeap(t *testing.T) {
	var e expiries
	ss := make([]*session, 200)
	for i := range ss {
		ss[i] = &session{sid: uint32(i + 1), tok: &sessionToken{idx: -1}}
		e.schedule(ss[i], int64(rand.IntN(1000)))
	}
	for range 1000 { // refreshes move entries, never add any
		e.schedule(ss[rand.IntN(len(ss))], int64(rand.IntN(1000)))
	}
	if e.size() != len(ss) {
		t.Fatalf("%d entries for %d sessions", e.size(), len(ss))
	}
	for _, s := range ss[:50] { // detached
		e.remove(s)
		e.remove(s)
	}
	var got []int64
	for now := int64(0); now <= 1000; now += 100 {
		for _, s := range e.popDue(now) {
			if s.tok.due > now || s.tok.idx != -1 || slices.Contains(ss[:50], s) {
				t.Fatalf("popped %+v at %d", s.tok, now)
			}
			got = append(got, s.tok.due)
		}
	}
	if len(got) != 150 || !slices.IsSorted(got) || e.size() != 0 {
		t.Fatalf("%d popped (sorted %v), %d left", len(got), slices.IsSorted(got), e.size())
	}
}

// Many refreshes of one session keep one entry in the heap.
func TestJWTRefreshesKeepOneEntry(t *testing.T) {
	ts := startServer(t, jwtConfig())
	c := dial(t, ts, nil)
	c.attachJWT(1, hs256(t, "alice", time.Hour))
	for i := range 20 {
		c.ok(1, mux.CmdRefresh, mux.RefreshReq{JWT: hs256(t, "alice", time.Hour+time.Duration(i)*time.Second)}, nil)
	}
	if n := ts.srv.expiries.size(); n != 1 {
		t.Fatalf("%d entries after 20 refreshes of one session", n)
	}
	c.ok(1, mux.CmdDetach, nil, nil)
	eventually(t, 2*time.Second, "the entry gone with the session", func() bool { return ts.srv.expiries.size() == 0 })
}

func TestAuthConfigChecks(t *testing.T) {
	for name, tune := range map[string]func(*Config){
		"jwt without a key":       func(c *Config) { c.Auth = AuthJWT },
		"a key without jwt":       func(c *Config) { c.JWTHMACSecret = testSecret },
		"an audience without jwt": func(c *Config) { c.JWTAudience = "chat" },
		"a short secret":          func(c *Config) { c.Auth, c.JWTHMACSecret = AuthJWT, []byte("short") },
		"an unknown auth":         func(c *Config) { c.Auth = "basic" },
		"an API without a key":    func(c *Config) { c.APIAddr = "127.0.0.1:0" },
		"a short API key":         func(c *Config) { c.APIAddr, c.APIKey = "127.0.0.1:0", []byte("short") },
	} {
		cfg := testConfig()
		tune(&cfg)
		if s, err := New(cfg); err == nil {
			s.Close()
			t.Errorf("%s: accepted", name)
		}
	}
}
