package workerjs_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"

	"imload/mux"
	"imload/server"
	"imload/server/auth"
	"imload/server/servertest"
	workerjs "imload/worker-js"
)

// The browser side of --auth jwt (issue 15): a real server verifying real
// HS256 tokens, a real Chromium, and an app that mints the tokens the way
// a team's backend would (authApp's /mint), counting them per user.

var jwtSecret = []byte("the browser tests' secret, 32 bytes+")

// jwtPage is the app's page: connect with user and getToken (which asks
// the app's backend, /mint, for a token), join lobby, and record what the
// app sees: the getToken calls, detached and auth_error events, the
// session, the room's texts.
const jwtPage = `<!DOCTYPE html><meta charset="utf-8"><title>jwt app</title>
<script type="module">
import { connect } from './client.js';
const q = new URLSearchParams(location.search);
const user = q.get('user');
Object.assign(window, { calls: [], events: [], got: [], sessions: [] });
const c = await connect({
  mode: q.get('mode') || '', server: q.get('server'), workerName: 'jwt-app', user,
  config: { graceMs: 500, ...(q.get('ping') ? { tabPingMs: Number(q.get('ping')) } : {}) },
  getToken: async (req) => {
    window.calls.push(req.reason);
    const r = await fetch('/mint?sub=' + encodeURIComponent(req.user || user) + '&reason=' + req.reason);
    if (!r.ok) throw new Error('the backend said ' + r.status + ': ' + (await r.text()));
    return r.text();
  },
});
window.c = c;
c.on('detached', (e) => window.events.push({ k: 'detached', ...e }));
c.on('auth_error', (e) => window.events.push({ k: 'auth_error', ...e }));
c.on('session', (s) => { window.session = s; window.sessions.push(s); });
c.on('message', (m) => window.got.push(m.text));
c.on('history', (h) => { for (const m of h.messages) window.got.push(m.text); });
await c.join('lobby');
document.body.dataset.ready = '1';
</script>`

// authApp is "the team's app" on its own origin: the package's files, the
// page, and /mint, its backend signing tokens with the server's secret.
type authApp struct {
	*httptest.Server
	t  *testing.T
	mu sync.Mutex
	// calls are the reasons of each user's /mint requests, in order.
	calls map[string][]string
	// plan says, for a user's nth call (1-based), how long the token
	// lasts, or 0 to refuse it (HTTP 503: the page's getToken rejects),
	// and how long to wait before answering. nil: an hour, at once.
	plan func(user string, n int) (ttl, delay time.Duration)
	// hold, if not nil, holds the first /mint until release.
	hold    chan struct{}
	held    bool
	release func()
}

func newAuthApp(t *testing.T) *authApp {
	t.Helper()
	a := &authApp{t: t, calls: map[string][]string{}}
	files := http.FileServerFS(workerjs.FS())
	a.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/jwt.html":
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			_, _ = w.Write([]byte(jwtPage))
		case "/mint":
			a.mint(w, r)
		default:
			files.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(a.Close)
	return a
}

// holdFirst makes the first /mint wait until release (called at the end
// of the test at the latest).
func (a *authApp) holdFirst() {
	a.hold = make(chan struct{})
	var once sync.Once
	a.release = func() { once.Do(func() { close(a.hold) }) }
	a.t.Cleanup(a.release)
}

func (a *authApp) mint(w http.ResponseWriter, r *http.Request) {
	user := r.URL.Query().Get("sub")
	a.mu.Lock()
	a.calls[user] = append(a.calls[user], r.URL.Query().Get("reason"))
	n := len(a.calls[user])
	var hold chan struct{}
	if !a.held {
		hold, a.held = a.hold, true
	}
	plan := a.plan
	a.mu.Unlock()
	if hold != nil {
		<-hold
	}
	ttl, delay := time.Hour, time.Duration(0)
	if plan != nil {
		ttl, delay = plan(user, n)
	}
	time.Sleep(delay)
	if ttl <= 0 {
		http.Error(w, "no token for you this time", http.StatusServiceUnavailable)
		return
	}
	tok, err := auth.SignHS256(jwtSecret, auth.Token{Subject: user, TTL: ttl})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	_, _ = w.Write([]byte(tok))
}

// reasons returns the reasons of user's /mint calls so far.
func (a *authApp) reasons(user string) []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.calls[user]...)
}

// page is the URL of the app's page for user in mode, talking to ts.
func (a *authApp) page(ts *servertest.Server, user, mode string) string {
	return a.URL + "/jwt.html?" + url.Values{"user": {user}, "mode": {mode}, "server": {ts.URL() + "/"}}.Encode()
}

// pagePing is page with the hub's tabPingMs set (a tab notices a hub
// that went within three of them).
func (a *authApp) pagePing(ts *servertest.Server, user, mode string, ping time.Duration) string {
	return a.page(ts, user, mode) + "&ping=" + strconv.Itoa(int(ping.Milliseconds()))
}

// jwtConfig is the browser tests' server with --auth jwt and the
// secret, token_expiring a second ahead, the app's origin allowed.
func jwtConfig(appURL string) server.Config {
	cfg := serverConfig()
	cfg.Auth = server.AuthJWT
	cfg.JWTHMACSecret = jwtSecret
	cfg.TokenExpiringAhead = time.Second
	cfg.Origins = []string{appURL}
	return cfg
}

// metric reads a counter of the server's /metrics (imload_ + name).
func metric(t *testing.T, ts *servertest.Server, name string) int {
	t.Helper()
	resp, err := http.Get(ts.URL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "imload_"+name+" "); ok {
			n, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric %s: %q", name, v)
			}
			return int(n)
		}
	}
	t.Fatalf("no metric imload_%s", name)
	return 0
}

// waitMetric polls a counter until it is want.
func waitMetric(t *testing.T, ts *servertest.Server, name string, want int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		n := metric(t, ts, name)
		if n == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("imload_%s is %d, want %d within %v", name, n, want, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// noAuthEvents fails the test if the app saw a detached or auth_error.
func noAuthEvents(t *testing.T, tabs ...*tab) {
	t.Helper()
	for _, tb := range tabs {
		if ev := evalJS[[]map[string]any](tb, `window.events`); len(ev) != 0 {
			t.Fatalf("%s: the app saw %v", tb.name, ev)
		}
	}
}

// physicalFor is how many sockets n tabs of one browser hold in mode.
func physicalFor(mode string, n int64) (string, int64) {
	switch mode {
	case "direct":
		return "direct", n
	case "leader":
		return "leader_tab", 1
	}
	return "shared_worker", 1
}

// TestJWTTabsShareOneToken: two tabs of one user get one token, fetched
// once for both attaches (the second tab comes while the first waits for
// it), and refreshed once when the server says token_expiring: both
// sessions are refreshed with the new token, live past the first token's
// expiry, and the app sees no detached. In each sharing mode.
func TestJWTTabsShareOneToken(t *testing.T) {
	for _, mode := range []string{"shared", "leader", "direct"} {
		t.Run(mode, func(t *testing.T) {
			app := newAuthApp(t)
			app.holdFirst()
			app.plan = func(_ string, n int) (time.Duration, time.Duration) {
				if n == 1 {
					return 3 * time.Second, 0
				}
				return time.Hour, 0
			}
			ts := servertest.Start(t, jwtConfig(app.URL))
			b := newBrowser(t)
			a1 := b.open(app.page(ts, "alice", mode), "alice 1")
			a2 := b.open(app.page(ts, "alice", mode), "alice 2")
			// both tabs wait for the one token
			if got := app.reasons("alice"); len(got) != 1 {
				t.Fatalf("getToken before the token came: %v, want one call", got)
			}
			app.release()
			minted := time.Now()
			for _, tb := range []*tab{a1, a2} {
				tb.waitJS(10*time.Second, "attached as alice", `window.session && window.session.user === 'alice'`)
			}
			key, phys := physicalFor(mode, 2)
			waitStats(t, ts, "two sessions of alice", 10*time.Second, func(s mux.Stats) bool {
				return s.LogicalSessions == 2 && s.PhysicalByMode[key] == phys && s.Users == 1
			})
			if got := app.reasons("alice"); len(got) != 1 || got[0] != "attach" {
				t.Fatalf("getToken for two tabs' attaches: %v, want one attach", got)
			}
			// token_expiring comes a second before the expiry: one refresh
			waitMetric(t, ts, "refreshes_total", 2, 10*time.Second)
			time.Sleep(time.Until(minted.Add(3*time.Second + 700*time.Millisecond)))
			if got := app.reasons("alice"); len(got) != 2 || got[1] != "refresh" {
				t.Fatalf("getToken after the first token's expiry: %v, want attach, refresh", got)
			}
			if n := metric(t, ts, "sessions_expired_total"); n != 0 {
				t.Fatalf("%d sessions expired", n)
			}
			calls := evalJS[int](a1, `window.calls.length`) + evalJS[int](a2, `window.calls.length`)
			if calls != 2 {
				t.Fatalf("the tabs' getToken ran %d times, want 2", calls)
			}
			// the sessions live on with the new token
			if _, err := evalJSErr[any](a1, `window.c.send('lobby', 'after the first expiry')`); err != nil {
				t.Fatal(err)
			}
			a2.waitJS(10*time.Second, "message after the expiry", `window.got.includes('after the first expiry')`)
			waitStats(t, ts, "still two sessions", 5*time.Second, func(s mux.Stats) bool { return s.LogicalSessions == 2 })
			noAuthEvents(t, a1, a2)
		})
	}
}

// evalJSErr evaluates a JS expression, returning its error instead of
// failing the test.
func evalJSErr[T any](tb *tab, expr string) (T, error) {
	ctx, cancel := context.WithTimeout(tb.ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		return v, fmt.Errorf("%s: %s: %w\nconsole:\n%s", tb.name, expr, err, tb.dumpLogs())
	}
	return v, nil
}

// TestJWTTwoUsersOneBrowser: tabs of two users in one browser attach each
// with its own token and name, asked once per user, and talk.
func TestJWTTwoUsersOneBrowser(t *testing.T) {
	for _, mode := range []string{"shared", "direct"} {
		t.Run(mode, func(t *testing.T) {
			app := newAuthApp(t)
			ts := servertest.Start(t, jwtConfig(app.URL))
			b := newBrowser(t)
			alice := b.open(app.page(ts, "alice", mode), "alice")
			bob := b.open(app.page(ts, "bob", mode), "bob")
			alice2 := b.open(app.page(ts, "alice", mode), "alice 2")
			for tb, user := range map[*tab]string{alice: "alice", bob: "bob", alice2: "alice"} {
				tb.waitJS(10*time.Second, "attached as "+user, fmt.Sprintf(`window.session && window.session.user === %q`, user))
			}
			key, phys := physicalFor(mode, 3)
			waitStats(t, ts, "two users, three sessions", 10*time.Second, func(s mux.Stats) bool {
				return s.LogicalSessions == 3 && s.Users == 2 && s.PhysicalByMode[key] == phys
			})
			if a, b := app.reasons("alice"), app.reasons("bob"); len(a) != 1 || len(b) != 1 {
				t.Fatalf("getToken: alice %v, bob %v: want one each", a, b)
			}
			if _, err := evalJSErr[any](alice, `window.c.send('lobby', 'hi bob')`); err != nil {
				t.Fatal(err)
			}
			bob.waitJS(10*time.Second, "bob gets alice's message", `window.got.includes('hi bob')`)
			alice2.waitJS(10*time.Second, "alice's other tab too", `window.got.includes('hi bob')`)
			noAuthEvents(t, alice, bob, alice2)
		})
	}
}

// TestJWTExpiredAttachesAgain: the backend refuses the refresh once, so
// the session's token expires and the server detaches it (token_expired);
// the hub gets a new token and attaches it again without the app seeing
// anything but a resumed session: a message sent while it was detached
// comes once, through the resume.
func TestJWTExpiredAttachesAgain(t *testing.T) {
	for _, mode := range []string{"shared", "leader", "direct"} {
		t.Run(mode, func(t *testing.T) {
			app := newAuthApp(t)
			app.plan = func(user string, n int) (time.Duration, time.Duration) {
				switch {
				case user != "alice":
					return time.Hour, 0
				case n == 1:
					return 3 * time.Second, 0
				case n == 2:
					return 0, 0 // the refresh: refused
				}
				return time.Hour, 1500 * time.Millisecond // slow: bob talks meanwhile
			}
			ts := servertest.Start(t, jwtConfig(app.URL))
			bobTok, err := auth.SignHS256(jwtSecret, auth.Token{Subject: "bob", TTL: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			bob := dialAttach(t, ts.Addr(), map[string]any{"jwt": bobTok, "mode": "loadgen"}, "lobby")
			b := newBrowser(t)
			alice := b.open(app.page(ts, "alice", mode), "alice")
			alice.waitJS(10*time.Second, "attached", `window.session && window.session.user === 'alice'`)
			bob.cmd("send", map[string]any{"room": "lobby", "text": "before", "cid": "b1"})
			alice.waitJS(10*time.Second, "before", `window.got.includes('before')`)

			waitMetric(t, ts, "sessions_expired_total", 1, 10*time.Second)
			bob.cmd("send", map[string]any{"room": "lobby", "text": "while alice was away", "cid": "b2"})
			alice.waitJS(10*time.Second, "attached again", `window.sessions.length === 2 && window.sessions[1].resumed === true`)
			alice.waitJS(10*time.Second, "the message she missed", `window.got.includes('while alice was away')`)
			if got := app.reasons("alice"); strings.Join(got, ",") != "attach,refresh,expired" {
				t.Fatalf("getToken reasons %v, want attach, refresh (refused), expired", got)
			}
			if n := evalJS[int](alice, `window.got.filter((x) => x === 'while alice was away').length`); n != 1 {
				t.Fatalf("the missed message shown %d times", n)
			}
			if n := evalJS[int](alice, `(async () => (await window.c.info()).auth.reattached)()`); n != 1 {
				t.Fatalf("hub reattached %d sessions, want 1", n)
			}
			if _, err := evalJSErr[any](alice, `window.c.send('lobby', 'back')`); err != nil {
				t.Fatal(err)
			}
			if got := roomTextsJWT(t, ts, "lobby"); strings.Join(got, "|") != "before|while alice was away|back" {
				t.Fatalf("the room has %q", got)
			}
			noAuthEvents(t, alice)
		})
	}
}

// roomTextsJWT is roomTexts on a server with --auth jwt.
func roomTextsJWT(t *testing.T, ts *servertest.Server, room string) []string {
	t.Helper()
	tok, err := auth.SignHS256(jwtSecret, auth.Token{Subject: "reader", TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	wc := dialAttach(t, ts.Addr(), map[string]any{"jwt": tok, "mode": "loadgen"})
	defer wc.close()
	return wc.historyTexts(room)
}

const apiKey = "the browser tests' API key"

// apiPost calls the server API.
func apiPost(t *testing.T, ts *servertest.Server, path string, body any) map[string]any {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, "http://"+ts.Server.APIAddr()+path, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+apiKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: %d %v", path, resp.StatusCode, out)
	}
	return out
}

// TestJWTDisconnectedStaysDetached: the server API disconnects alice:
// both her tabs are told (detached, disconnected, the reason), nothing
// attaches her again by itself (no getToken call, no session), her
// commands fail with the reason, bob's tab goes on; retryAuth attaches one
// tab again.
func TestJWTDisconnectedStaysDetached(t *testing.T) {
	for _, mode := range []string{"shared", "direct"} {
		t.Run(mode, func(t *testing.T) {
			app := newAuthApp(t)
			cfg := jwtConfig(app.URL)
			cfg.APIAddr, cfg.APIKey = "127.0.0.1:0", []byte(apiKey)
			ts := servertest.Start(t, cfg)
			b := newBrowser(t)
			a1 := b.open(app.page(ts, "alice", mode), "alice 1")
			a2 := b.open(app.page(ts, "alice", mode), "alice 2")
			bob := b.open(app.page(ts, "bob", mode), "bob")
			for tb, user := range map[*tab]string{a1: "alice", a2: "alice", bob: "bob"} {
				tb.waitJS(10*time.Second, "attached", fmt.Sprintf(`window.session && window.session.user === %q`, user))
			}
			waitStats(t, ts, "three sessions", 10*time.Second, func(s mux.Stats) bool { return s.LogicalSessions == 3 })

			if r := apiPost(t, ts, "/api/disconnect", map[string]any{"user": "alice", "reason": "banned"}); r["sessions"] != float64(2) {
				t.Fatalf("disconnect: %v", r)
			}
			for _, tb := range []*tab{a1, a2} {
				tb.waitJS(10*time.Second, "told", `window.events.some((e) => e.k === 'detached' && e.error === 'disconnected' && e.reason === 'banned' && e.code === 403)`)
			}
			time.Sleep(1500 * time.Millisecond) // long enough for a wrongful attach to show
			if s := ts.Server.Stats(); s.LogicalSessions != 1 {
				t.Fatalf("%d sessions after the disconnect, want bob's only", s.LogicalSessions)
			}
			if got := app.reasons("alice"); len(got) != 1 {
				t.Fatalf("getToken for alice: %v: the hub asked again by itself", got)
			}
			if msg, err := evalJSErr[string](a1, `window.c.who('lobby').then(() => 'ok', (e) => e.error)`); err != nil || msg != "disconnected" {
				t.Fatalf("who after the disconnect: %q %v, want the disconnected error", msg, err)
			}
			if _, err := evalJSErr[any](bob, `window.c.send('lobby', 'bob goes on')`); err != nil {
				t.Fatal(err)
			}
			// the app decides to sign alice in again, in one tab
			if _, err := evalJSErr[any](a1, `window.c.retryAuth()`); err != nil {
				t.Fatal(err)
			}
			a1.waitJS(10*time.Second, "attached again", `window.sessions.length === 2`)
			waitStats(t, ts, "alice back in one tab", 10*time.Second, func(s mux.Stats) bool { return s.LogicalSessions == 2 })
			if got := app.reasons("alice"); len(got) != 2 {
				t.Fatalf("getToken for alice: %v, want one more for the retry", got)
			}
		})
	}
}

// TestJWTDemoPage: the demo page on a server with --auth jwt: no name
// form, a token form; the pasted token (imload token's) signs the tab in,
// a room outside the token's rooms is refused with a clear message, and a
// second tab of the same user (?name=) signs in with the first tab's token.
func TestJWTDemoPage(t *testing.T) {
	cfg := serverConfig()
	cfg.Auth = server.AuthJWT
	cfg.JWTHMACSecret = jwtSecret
	ts := servertest.Start(t, cfg)
	tok, err := auth.SignHS256(jwtSecret, auth.Token{Subject: "alice", TTL: 10 * time.Minute, Rooms: []string{"lobby"}})
	if err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t)
	p := b.open(ts.URL()+"/?room=lobby", "demo")
	p.waitJS(10*time.Second, "token form", `!document.getElementById('token-form').hidden && document.body.dataset.auth === 'jwt'`)
	if evalJS[bool](p, `getComputedStyle(document.getElementById('name-form')).display !== 'none'`) {
		t.Fatal("the name form shows on a server with --auth jwt")
	}
	screenshot(t, p, "jwt-token-form.png")
	p.run(10*time.Second, "paste something else than a token", chromedp.SetValue(chromedp.ID("token-input"), "not a token"), chromedp.Click(chromedp.CSS("#token-form button")))
	p.waitJS(5*time.Second, "refused", `document.getElementById('token-error').textContent.includes('not a token')`)
	p.run(10*time.Second, "paste the token", chromedp.SetValue(chromedp.ID("token-input"), tok), chromedp.Click(chromedp.CSS("#token-form button")))
	p.waitJS(10*time.Second, "signed in", `document.getElementById('me-name').textContent === 'alice' && document.getElementById('token-form').hidden`)
	p.waitJS(5*time.Second, "until when", `document.getElementById('token-note').textContent.startsWith('Signed in with a token until')`)
	p.waitJS(10*time.Second, "lobby joined", `window.imloadApp.rooms.get('lobby') && window.imloadApp.rooms.get('lobby').joined`)
	p.say("hello with a token")
	p.waitTexts("lobby", 10*time.Second, "hello with a token")
	p.run(10*time.Second, "join Jay", chromedp.Click(chromedp.CSS(`button[data-action="join"][data-room="Jay"]`)))
	p.waitJS(10*time.Second, "refused with a reason", `[...document.querySelectorAll('#messages .log[data-room="Jay"] .sys')].some((e) => e.textContent.includes('your token does not allow this'))`)
	screenshot(t, p, "jwt-signed-in.png")

	// a second tab of alice: the hub has her token, nobody pastes
	p2 := b.open(ts.URL()+"/?name=alice&room=lobby", "demo 2")
	p2.waitJS(10*time.Second, "signed in by itself", `document.getElementById('me-name').textContent === 'alice'`)
	if evalJS[bool](p2, `!document.getElementById('token-form').hidden`) {
		t.Fatal("the second tab asked for a token")
	}
	p2.waitTexts("lobby", 10*time.Second, "hello with a token")
	waitStats(t, ts, "two sessions of alice on one socket", 10*time.Second, func(s mux.Stats) bool {
		return s.LogicalSessions == 2 && s.PhysicalConnections == 1 && s.Users == 1
	})
}

// TestJWTDisplayNames: two users whose tokens carry a name claim ("Alice
// Smith" for alice, "Bob B" for bob), each signed in on the demo page of
// a browser of their own, see each other as "Display Name (user)": the
// You box, a presence line, the member list, a room message and a private
// message (the item and the conversation list), while everything that
// says who is who stays on the user name (data-user, data-peer, the title).
func TestJWTDisplayNames(t *testing.T) {
	cfg := serverConfig()
	cfg.Auth = server.AuthJWT
	cfg.JWTHMACSecret = jwtSecret
	ts := servertest.Start(t, cfg)
	signIn := func(user, display string) *tab {
		t.Helper()
		tok, err := auth.SignHS256(jwtSecret, auth.Token{Subject: user, Name: display, TTL: 10 * time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		p := newBrowser(t).open(ts.URL()+"/?room=lobby&name="+user, user)
		p.waitJS(10*time.Second, "token form", `!document.getElementById('token-form').hidden`)
		p.run(10*time.Second, "paste the token", chromedp.SetValue(chromedp.ID("token-input"), tok), chromedp.Click(chromedp.CSS("#token-form button")))
		want := display + " (" + user + ")"
		p.waitJS(10*time.Second, "signed in as "+want, fmt.Sprintf(`document.getElementById('me-name').textContent === %q && document.getElementById('me-name').title === %q`, want, user))
		p.waitJS(10*time.Second, "lobby joined", `window.imloadApp.client.session && window.imloadApp.rooms.get('lobby') && window.imloadApp.rooms.get('lobby').joined`)
		return p
	}
	alice := signIn("alice", "Alice Smith")
	waitStats(t, ts, "alice in", 10*time.Second, func(s mux.Stats) bool { return s.LogicalSessions == 1 })
	// alice is in the lobby before bob comes: she sees him join
	if _, err := evalJSErr[any](alice, `window.imloadApp.client.who('lobby')`); err != nil {
		t.Fatal(err)
	}
	bob := signIn("bob", "Bob B")

	// presence, and the member list (who)
	alice.waitJS(15*time.Second, "presence line", `[...document.querySelectorAll('#messages .log[data-room="lobby"] .sys')].some((e) => e.textContent === 'Bob B (bob) joined')`)
	alice.waitJS(15*time.Second, "bob listed", `[...document.querySelectorAll('#people button')].some((b) => b.textContent === 'Bob B (bob)' && b.dataset.user === 'bob')`)
	bob.waitJS(15*time.Second, "alice listed", `[...document.querySelectorAll('#people button')].some((b) => b.textContent === 'Alice Smith (alice)' && b.dataset.user === 'alice')`)

	// a room message: the author by display name, the user name beside it
	bob.say("hello from bob")
	alice.waitTexts("lobby", 10*time.Second, "hello from bob")
	authorOf := func(p *tab, sel string) map[string]string {
		t.Helper()
		return evalJS[map[string]string](p, fmt.Sprintf(`(() => {
			const li = [...document.querySelectorAll(%q)].at(-1);
			const u = li && li.querySelector('.user');
			return u ? { text: u.textContent, display: u.querySelector('.display')?.textContent || '', user: u.dataset.user, title: u.title, from: li.dataset.from, mine: String(li.classList.contains('mine')) } : {};
		})()`, sel))
	}
	want := map[string]string{"text": "Bob B (bob)", "display": "Bob B", "user": "bob", "title": "bob", "from": "bob", "mine": "false"}
	if got := authorOf(alice, `#messages .log[data-room="lobby"] .msg:not(.dm)`); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("alice sees bob's message as %v, want %v", got, want)
	}
	bob.waitTexts("lobby", 10*time.Second, "hello from bob")
	want["mine"] = "true"
	bob.waitJS(10*time.Second, "published", `!document.querySelector('#messages .log[data-room="lobby"] .msg.echo')`)
	if got := authorOf(bob, `#messages .log[data-room="lobby"] .msg:not(.dm)`); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("bob sees his own message as %v, want %v", got, want)
	}

	// a private message each way: the item and the conversation list
	alice.say("@bob psst, bob")
	bob.waitJS(10*time.Second, "alice's DM", `[...document.querySelectorAll('#messages .msg.dm .bubble')].some((e) => e.textContent === 'psst, bob')`)
	want = map[string]string{"text": "Alice Smith (alice)", "display": "Alice Smith", "user": "alice", "title": "alice", "from": "alice", "mine": "false"}
	if got := authorOf(bob, `#messages .msg.dm`); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("bob sees alice's DM as %v, want %v", got, want)
	}
	bob.waitJS(10*time.Second, "the conversation listed", `[...document.querySelectorAll('#dm-list .dm-peer')].some((b) => b.dataset.peer === 'alice' && b.querySelector('.dm-name').textContent === 'Alice Smith (alice)')`)
	bob.run(10*time.Second, "open the conversation", chromedp.Click(chromedp.CSS(`#dm-list .dm-peer[data-peer="alice"]`)))
	bob.waitJS(10*time.Second, "the conversation's header", `document.getElementById('room-title').textContent === '@alice' && document.getElementById('room-meta').textContent.includes('Alice Smith (alice)')`)
	bob.say("hi alice")
	alice.waitJS(10*time.Second, "bob's DM", `[...document.querySelectorAll('#messages .msg.dm .bubble')].some((e) => e.textContent === 'hi alice')`)
	want = map[string]string{"text": "Bob B (bob)", "display": "Bob B", "user": "bob", "title": "bob", "from": "bob", "mine": "false"}
	if got := authorOf(alice, `#messages .log[data-dm] .msg.dm`); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("alice sees bob's DM as %v, want %v", got, want)
	}
	alice.waitJS(10*time.Second, "the conversation listed", `[...document.querySelectorAll('#dm-list .dm-peer')].some((b) => b.dataset.peer === 'bob' && b.querySelector('.dm-name').textContent === 'Bob B (bob)')`)
	// her own DM shows her display name; the conversation is keyed by bob's user name
	if got := evalJS[[]string](alice, `[...document.querySelectorAll('#messages .log[data-dm="bob"] .msg.dm.mine .user')].map((u) => u.textContent + '|' + u.dataset.user)`); len(got) != 1 || got[0] != "Alice Smith (alice)|alice" {
		t.Fatalf("alice's own DM in the conversation with bob: %q", got)
	}
	screenshot(t, alice, "jwt-display-names.png")
}

// TestJWTTokenTimeout: a getToken that does not answer in time (the demo
// page's, waiting for a paste, with ?tokentimeout=1500) fails the attach
// with no_token and says why; the token pasted later signs the tab in
// (the hub asks again). In each sharing mode.
func TestJWTTokenTimeout(t *testing.T) {
	for _, mode := range []string{"shared", "leader", "direct"} {
		t.Run(mode, func(t *testing.T) {
			cfg := serverConfig()
			cfg.Auth = server.AuthJWT
			cfg.JWTHMACSecret = jwtSecret
			ts := servertest.Start(t, cfg)
			tok, err := auth.SignHS256(jwtSecret, auth.Token{Subject: "alice", TTL: 10 * time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			p := newBrowser(t).open(ts.URL()+"/?room=lobby&tokentimeout=1500&mode="+mode, "demo")
			p.waitJS(10*time.Second, "token form", `!document.getElementById('token-form').hidden`)
			p.waitJS(10*time.Second, "timed out", `document.getElementById('token-error').textContent.includes('getToken did not answer within 1500 ms') && document.getElementById('token-why').textContent.startsWith('This tab got no token')`)
			if n := evalJS[int](p, `(async () => (await window.imloadApp.client.info()).auth.tokenTimeouts)()`); n != 1 {
				t.Fatalf("the hub counted %d getToken timeouts, want 1", n)
			}
			p.run(10*time.Second, "paste the token", chromedp.SetValue(chromedp.ID("token-input"), tok), chromedp.Click(chromedp.CSS("#token-form button")))
			p.waitJS(10*time.Second, "signed in", `document.getElementById('me-name').textContent === 'alice' && document.getElementById('token-form').hidden`)
			p.say("after the timeout")
			p.waitTexts("lobby", 10*time.Second, "after the timeout")
		})
	}
}

// TestJWTNewHubUsesTabsToken: a new hub starts with no tokens, but the
// tabs remember theirs (the one their getToken gave, or the one the hub
// told them) and say it in their hello, so the new hub attaches them
// without calling getToken again. Leader mode: the leader tab closes and
// the other tab leads. Shared mode: the SharedWorker is terminated
// (Target.closeTarget) and the tabs start a new one.
func TestJWTNewHubUsesTabsToken(t *testing.T) {
	for _, mode := range []string{"leader", "shared"} {
		t.Run(mode, func(t *testing.T) {
			app := newAuthApp(t)
			ts := servertest.Start(t, jwtConfig(app.URL))
			b := newBrowser(t)
			a1 := b.open(app.pagePing(ts, "alice", mode, time.Second), "alice 1")
			a2 := b.open(app.pagePing(ts, "alice", mode, time.Second), "alice 2")
			for _, tb := range []*tab{a1, a2} {
				tb.waitJS(10*time.Second, "attached as alice", `window.session && window.session.user === 'alice'`)
			}
			key, _ := physicalFor(mode, 2)
			waitStats(t, ts, "two sessions of alice", 10*time.Second, func(s mux.Stats) bool {
				return s.LogicalSessions == 2 && s.PhysicalByMode[key] == 1
			})
			if got := app.reasons("alice"); len(got) != 1 || got[0] != "attach" {
				t.Fatalf("getToken for two tabs: %v, want one attach", got)
			}
			survivor := a2
			hub := evalJS[string](survivor, `window.c.hubId`)
			switch mode {
			case "leader":
				if !evalJS[bool](a1, `window.c.modeInfo().leader`) {
					t.Fatal("the first tab should lead")
				}
				a1.close()
			case "shared":
				killSharedWorkers(t, b)
				// a tab of the browser stays open: both tabs survive
				survivor = a1
			}
			survivor.waitJS(20*time.Second, "a new hub", fmt.Sprintf(`window.c.hubId && window.c.hubId !== %q`, hub))
			survivor.waitJS(20*time.Second, "attached again", `window.sessions.length >= 2 && window.session.user === 'alice'`)
			want := int64(1)
			if mode == "shared" {
				want = 2
				a2.waitJS(20*time.Second, "the other tab attached again", `window.sessions.length >= 2 && window.session.user === 'alice'`)
			}
			waitStats(t, ts, "alice on the new hub", 10*time.Second, func(s mux.Stats) bool {
				return s.LogicalSessions == want && s.PhysicalByMode[key] == 1
			})
			if got := app.reasons("alice"); len(got) != 1 {
				t.Fatalf("getToken calls: %v, want the first one only (the new hub used the tabs' token)", got)
			}
			if _, err := evalJSErr[any](survivor, `window.c.send('lobby', 'on the new hub')`); err != nil {
				t.Fatal(err)
			}
			survivor.waitJS(10*time.Second, "own message", `window.got.includes('on the new hub')`)
			if mode == "shared" {
				a2.waitJS(10*time.Second, "message on the new hub", `window.got.includes('on the new hub')`)
				noAuthEvents(t, a1, a2)
			} else {
				noAuthEvents(t, a2)
			}
		})
	}
}

// killSharedWorkers terminates the browser's SharedWorkers (as the
// browser may, or a crash) and waits until none runs.
func killSharedWorkers(t *testing.T, b *browser) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	infos, err := chromedp.Targets(ctx)
	if err != nil {
		t.Fatalf("targets: %v", err)
	}
	n := 0
	for _, info := range infos {
		if info.Type != "shared_worker" {
			continue
		}
		n++
		if _, err := cdp.Call(ctx, chromedp.FromContext(b.ctx).Browser, target.CloseTarget, target.CloseTargetParams{TargetID: info.TargetID}); err != nil {
			t.Fatalf("close the shared worker: %v", err)
		}
	}
	if n == 0 {
		t.Fatal("no shared worker to terminate")
	}
	b.waitWorkers(0, 10*time.Second)
}
