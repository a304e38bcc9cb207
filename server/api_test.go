package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"testing"
	"time"

	"imload/mux"
)

// The server API (docs/api.md) against real servers.

const testAPIKey = "the test API key, long enough"

// apiConfig is cfg with the server API on a free port.
func apiConfig(cfg Config) Config {
	cfg.APIAddr, cfg.APIKey = "127.0.0.1:0", []byte(testAPIKey)
	return cfg
}

// apiCall posts body to the API endpoint path of ts with key and returns
// the status and the decoded answer (into out, if not nil).
func apiCall(t *testing.T, ts *testServer, key, path string, body, out any) (int, apiErr) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, "http://"+ts.srv.APIAddr()+path, bytes.NewReader(b))
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var e apiErr
	if resp.StatusCode != http.StatusOK {
		if err := json.Unmarshal(data, &e); err != nil || e.Code != resp.StatusCode {
			t.Fatalf("%s: status %d, body %q: not an error of the protocol", path, resp.StatusCode, data)
		}
		return resp.StatusCode, e
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s: %q: %v", path, data, err)
		}
	}
	return resp.StatusCode, e
}

type apiErr struct {
	Code  int    `json:"code"`
	Error string `json:"error"`
	Msg   string `json:"msg"`
}

// apiOK calls the API and fails the test unless it answers 200.
func apiOK(t *testing.T, ts *testServer, path string, body, out any) {
	t.Helper()
	if code, e := apiCall(t, ts, testAPIKey, path, body, out); code != http.StatusOK {
		t.Fatalf("%s: %d %s %s", path, code, e.Error, e.Msg)
	}
}

func TestAPIKey(t *testing.T) {
	ts := startServer(t, apiConfig(testConfig()))
	for _, key := range []string{"", "wrong", testAPIKey + "x", testAPIKey[:10]} {
		if code, e := apiCall(t, ts, key, "/api/presence", mux.WhoReq{Room: "r"}, nil); code != 401 || e.Error != mux.ErrUnauthorized {
			t.Fatalf("key %q: %d %+v, want 401 unauthorized", key, code, e)
		}
	}
	if code, e := apiCall(t, ts, testAPIKey, "/api/nothing", struct{}{}, nil); code != 404 || e.Error != mux.ErrUnknownCommand {
		t.Fatalf("unknown endpoint: %d %+v", code, e)
	}
	if code, e := apiCall(t, ts, testAPIKey, "/api/publish", struct{ Room int }{1}, nil); code != 400 || e.Error != mux.ErrBadRequest {
		t.Fatalf("a body of the wrong shape: %d %+v", code, e)
	}
	if code, e := apiCall(t, ts, testAPIKey, "/api/publish", map[string]string{"room": "r", "text": string(make([]byte, 70000))}, nil); code != 413 || e.Error != mux.ErrTooLarge {
		t.Fatalf("a body over --max-message: %d %+v", code, e)
	}
	// The API is on its own listener only.
	if code, _ := getBody(t, "http://"+ts.addr+"/api/publish"); code == http.StatusOK {
		t.Fatal("the public listener serves the API")
	}
	if n := ts.srv.counters.apiUnauthorized.Load(); n != 4 {
		t.Fatalf("api_unauthorized %d", n)
	}
}

// TestAPIPublish: a publish reaches every member once, in order, with the
// offset its reply gave, through the room's log like a send (cid dedup).
func TestAPIPublish(t *testing.T) {
	ts := startServer(t, apiConfig(testConfig()))
	a, b := dial(t, ts, nil), dial(t, ts, nil)
	a.attach(1, "alice")
	a.attach(2, "alice")
	b.attach(1, "bob")
	a.join(1, "r")
	a.join(2, "r")
	b.join(1, "r")
	const n = 20
	offsets := make([]uint64, n)
	for i := range n {
		var r mux.SendResp
		body := map[string]string{"room": "r", "text": fmt.Sprint("m", i), "cid": fmt.Sprint("c", i)}
		if i%2 == 1 {
			body["user"] = "carol"
		}
		apiOK(t, ts, "/api/publish", body, &r)
		if r.Room != "r" || r.Epoch == "" || r.Dup {
			t.Fatalf("publish %d: %+v", i, r)
		}
		offsets[i] = r.Offset
	}
	var dup mux.SendResp
	apiOK(t, ts, "/api/publish", map[string]string{"room": "r", "text": "m0", "cid": "c0"}, &dup)
	if !dup.Dup || dup.Offset != offsets[0] {
		t.Fatalf("a repeated cid: %+v, want dup of offset %d", dup, offsets[0])
	}
	for _, c := range []*client{a, b} {
		var got []uint64
		for range n {
			var m mux.Message
			f := c.push(mux.EvMsg, &m)
			want := SystemSender
			if (m.Offset-offsets[0])%2 == 1 {
				want = "carol"
			}
			if m.From != want || (c == a && !slices.Equal(f.SIDs, []uint32{1, 2})) {
				t.Fatalf("push %v %+v, want from %s", f.SIDs, m, want)
			}
			got = append(got, m.Offset)
		}
		if !slices.Equal(got, offsets) {
			t.Fatalf("offsets pushed %v, replied %v", got, offsets)
		}
	}
	time.Sleep(50 * time.Millisecond)
	for _, c := range []*client{a, b} {
		for _, f := range c.buf {
			if f.T == mux.TypePush && f.Ev == mux.EvMsg {
				t.Fatalf("a message pushed twice: %+v", f)
			}
		}
	}
	var h mux.HistoryResp
	apiOK(t, ts, "/api/history", mux.HistoryReq{Room: "r", Limit: 5}, &h)
	if len(h.Messages) != 5 || h.Messages[4].Offset != offsets[n-1] || !h.More {
		t.Fatalf("history %+v", h)
	}
	var who mux.WhoResp
	apiOK(t, ts, "/api/presence", mux.WhoReq{Room: "r"}, &who)
	if len(who.Users) != 2 || who.Users[0].Name != "alice" || who.Users[1].Name != "bob" {
		t.Fatalf("presence %+v", who)
	}
	if code, e := apiCall(t, ts, testAPIKey, "/api/history", mux.HistoryReq{Room: "nowhere"}, nil); code != 404 || e.Error != mux.ErrUnknownRoom {
		t.Fatalf("history of no room: %d %+v", code, e)
	}
	if code, e := apiCall(t, ts, testAPIKey, "/api/publish", map[string]string{"room": "r", "text": "x", "user": "a b"}, nil); code != 400 || e.Error != mux.ErrBadRequest {
		t.Fatalf("on behalf of no valid name: %d %+v", code, e)
	}
	if got := ts.srv.Stats().MessagesIn; got != n {
		t.Fatalf("messages_in %d, want %d", got, n)
	}
}

// TestAPIUsers: a DM from the API, a user's connections, and a disconnect
// that ends every session of the user (a detached push, 403
// disconnected, with the reason) and no one else's.
func TestAPIUsers(t *testing.T) {
	ts := startServer(t, apiConfig(testConfig()))
	a1, a2, b := dial(t, ts, nil), dial(t, ts, nil), dial(t, ts, nil)
	tok := a1.attach(1, "alice").Token
	a1.attach(2, "alice")
	a1.attach(3, "bob") // another user's tab on the same connection
	var r mux.AttachResp
	a2.ok(1, mux.CmdAttach, mux.AttachReq{Name: "alice", Token: tok}, &r)
	b.attach(1, "dave")
	var dm mux.DMResp
	apiOK(t, ts, "/api/dm", map[string]string{"to": "alice", "text": "from the backend"}, &dm)
	if dm.Sessions != 3 {
		t.Fatalf("dm: %+v, want 3 sessions", dm)
	}
	var m mux.DM
	if f := a1.push(mux.EvDM, &m); m.From != SystemSender || !slices.Equal(f.SIDs, []uint32{1, 2}) {
		t.Fatalf("dm push %v %+v", f.SIDs, m)
	}
	var conns struct {
		User        string    `json:"user"`
		Connections []apiConn `json:"connections"`
	}
	apiOK(t, ts, "/api/connections", map[string]string{"user": "ALICE"}, &conns)
	if len(conns.Connections) != 2 || conns.Connections[0].Sessions != 2 || !slices.Equal(conns.Connections[0].SIDs, []uint32{1, 2}) ||
		conns.Connections[1].Sessions != 1 || conns.Connections[0].Since == 0 {
		t.Fatalf("connections %+v", conns)
	}
	var disc struct{ Sessions int }
	apiOK(t, ts, "/api/disconnect", map[string]string{"user": "alice", "reason": "banned"}, &disc)
	if disc.Sessions != 3 {
		t.Fatalf("disconnect: %+v, want 3 sessions", disc)
	}
	for _, c := range []*client{a1, a2} {
		var d mux.Detached
		f := c.push(mux.EvDetached, &d)
		want := []uint32{1}
		if c == a1 {
			want = []uint32{1, 2}
		}
		if !slices.Equal(f.SIDs, want) || d.Code != 403 || d.Error != mux.ErrDisconnected || d.Reason != "banned" {
			t.Fatalf("detached %v %+v", f.SIDs, d)
		}
	}
	a1.fails(1, mux.CmdJoin, mux.JoinReq{Room: "r"}, mux.CodeNotAttached, mux.ErrNotAttached)
	a1.join(3, "r") // bob's tab stays
	b.join(1, "r")
	apiOK(t, ts, "/api/connections", map[string]string{"user": "alice"}, &conns)
	if len(conns.Connections) != 0 {
		t.Fatalf("alice's connections after the disconnect: %+v", conns)
	}
	if code, e := apiCall(t, ts, testAPIKey, "/api/dm", map[string]string{"to": "alice", "text": "x"}, nil); code != 410 || e.Error != mux.ErrUserOffline {
		t.Fatalf("dm to a disconnected user: %d %+v", code, e)
	}
	if ts.srv.counters.sessionsDisconnected.Load() != 3 {
		t.Fatalf("sessions_disconnected %d", ts.srv.counters.sessionsDisconnected.Load())
	}
}

// TestAPIAcrossNodes: on the Redis engine, the API of any node reaches
// every node: a publish through one reaches the members on the others, a
// disconnect through one ends the user's sessions on all.
func TestAPIAcrossNodes(t *testing.T) {
	nodes := startNodes(t, 2, func(cfg *Config) { *cfg = apiConfig(*cfg) })
	c1, c2 := dial(t, nodes[0], nil), dial(t, nodes[1], nil)
	tok := c1.attach(1, "alice").Token
	var r mux.AttachResp
	c2.ok(1, mux.CmdAttach, mux.AttachReq{Name: "alice", Token: tok}, &r)
	c2.attach(2, "bob")
	c1.join(1, "r")
	c2.join(2, "r")
	var pr mux.SendResp
	apiOK(t, nodes[1], "/api/publish", map[string]string{"room": "r", "text": "hello from the backend"}, &pr)
	for _, c := range []*client{c1, c2} {
		var m mux.Message
		c.push(mux.EvMsg, &m)
		if m.Offset != pr.Offset || m.Text != "hello from the backend" {
			t.Fatalf("push %+v, want offset %d", m, pr.Offset)
		}
	}
	var conns struct{ Connections []apiConn }
	apiOK(t, nodes[0], "/api/connections", map[string]string{"user": "alice"}, &conns)
	if len(conns.Connections) != 2 || conns.Connections[0].Node == conns.Connections[1].Node {
		t.Fatalf("alice's connections %+v, want one on each node", conns)
	}
	var disc struct{ Sessions int }
	apiOK(t, nodes[0], "/api/disconnect", map[string]string{"user": "alice", "reason": "bye"}, &disc)
	if disc.Sessions != 2 {
		t.Fatalf("disconnect %+v, want 2 sessions", disc)
	}
	for _, c := range []*client{c1, c2} {
		var d mux.Detached
		if f := c.push(mux.EvDetached, &d); !slices.Equal(f.SIDs, []uint32{1}) || d.Reason != "bye" {
			t.Fatalf("detached %v %+v", f.SIDs, d)
		}
	}
	c2.send(2, "r", "bob stays")
}

// TestAdminAddr: with --admin-addr the operator's endpoints leave the
// public listener.
func TestAdminAddr(t *testing.T) {
	cfg := testConfig()
	cfg.AdminAddr, cfg.Pprof = "127.0.0.1:0", true
	ts := startServer(t, cfg)
	pub, adm := "http://"+ts.addr, "http://"+ts.srv.AdminAddr()
	for path, want := range map[string]int{"/metrics": 404, "/stats": 404, "/debug/pprof/": 404, "/healthz": 200, "/lbs": 200, "/": 200} {
		if code, _ := getBody(t, pub+path); code != want {
			t.Errorf("public %s: %d, want %d", path, code, want)
		}
	}
	for _, path := range []string{"/metrics", "/stats", "/debug/pprof/", "/healthz"} {
		if code, _ := getBody(t, adm+path); code != 200 {
			t.Errorf("admin %s: %d", path, code)
		}
	}
	if code, _ := getBody(t, adm+"/ws"); code != 404 {
		t.Errorf("admin /ws: %d", code)
	}
	plain := startServer(t, testConfig())
	if code, _ := getBody(t, "http://"+plain.addr+"/metrics"); code != 200 {
		t.Errorf("without --admin-addr, public /metrics: %d", code)
	}
}

// TestAPIPublishDurable: on a durable server the API's publish is answered
// at the message's release, after its commit, as a session's send.
func TestAPIPublishDurable(t *testing.T) {
	skipOnRedis(t, "the SQLite store's durability (the Redis engine has no store)")
	dir := t.TempDir()
	ts := startServer(t, apiConfig(durableConfig(dir)))
	b := dial(t, ts, nil)
	b.attach(1, "bob")
	b.join(1, "r")
	lock := lockStore(t, dir)
	done := make(chan mux.SendResp, 1)
	go func() {
		var r mux.SendResp
		b, _ := json.Marshal(map[string]string{"room": "r", "text": "durable"})
		req, _ := http.NewRequest(http.MethodPost, "http://"+ts.srv.APIAddr()+"/api/publish", bytes.NewReader(b))
		req.Header.Set("Authorization", "Bearer "+testAPIKey)
		client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
		if resp, err := client.Do(req); err == nil {
			json.NewDecoder(resp.Body).Decode(&r)
			resp.Body.Close()
		}
		done <- r
	}()
	select {
	case r := <-done:
		t.Fatalf("publish answered before the commit: %+v", r)
	case <-time.After(300 * time.Millisecond):
	}
	b.none(0, "push before the commit", isPush(mux.EvMsg))
	lock.unlock()
	r := <-done
	var m mux.Message
	b.push(mux.EvMsg, &m)
	if r.Offset != 1 || m.Offset != 1 || m.From != SystemSender {
		t.Fatalf("after the commit: reply %+v, push %+v", r, m)
	}
}
