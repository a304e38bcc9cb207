package workerjs_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"

	"imload/mux"
	"imload/server/servertest"
)

// The tests of issue 16: the browser side as a product. Each one failed on
// the code before the fix (the reply names how).

// sharedWorkers returns how many SharedWorkers the browser runs.
func (b *browser) sharedWorkers() int {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	ts, err := chromedp.Targets(ctx)
	if err != nil {
		b.t.Fatalf("targets: %v", err)
	}
	n := 0
	for _, t := range ts {
		if t.Type == "shared_worker" {
			n++
		}
	}
	return n
}

// waitWorkers waits until the browser runs n SharedWorkers.
func (b *browser) waitWorkers(n int, timeout time.Duration) {
	b.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := b.sharedWorkers()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("%d shared workers after %v, want %d", got, timeout, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// roomTexts returns the texts of room's messages as the server keeps them
// (a history command of another client), oldest first.
func roomTexts(t *testing.T, addr, room string) []string {
	t.Helper()
	wc := dialClient(t, addr, fmt.Sprintf("hist%d", time.Now().UnixNano()%1e6))
	defer wc.close()
	return wc.historyTexts(room)
}

func count(list []string, s string) int {
	n := 0
	for _, x := range list {
		if x == s {
			n++
		}
	}
	return n
}

// Finding 1: the socket closes within the grace after the last tab goes,
// and the SharedWorker ends; a reload within the grace keeps the socket.
// Before: the worker (extendedLifetime) kept the socket ~301 s, so the
// server still had 1 connection 8 s after the tab closed.
func TestSocketClosesAfterLastTab(t *testing.T) {
	ts := servertest.Start(t, serverConfig())
	b := newBrowser(t)
	p := b.open(ts.URL()+"/?name=leaver&room=lobby&grace=1500", "leaver")
	waitStats(t, ts, "1 connection", 10*time.Second, func(s mux.Stats) bool { return s.PhysicalConnections == 1 })
	opens := evalJS[int](p, `window.imloadApp.client.info().then(i => i.conn.opens)`)

	// a reload is shorter than the grace: the same socket stays
	p.run(20*time.Second, "reload", chromedp.Reload())
	p.waitJS(20*time.Second, "page ready", `document.body.dataset.ready === '1'`)
	if got := evalJS[int](p, `window.imloadApp.client.info().then(i => i.conn.opens)`); got != opens {
		t.Fatalf("the reload opened a new socket: opens %d -> %d", opens, got)
	}
	if st := ts.Server.Stats(); st.PhysicalConnections != 1 || st.LogicalSessions != 1 {
		t.Fatalf("after the reload: %d connections, %d sessions; want 1, 1", st.PhysicalConnections, st.LogicalSessions)
	}

	start := time.Now()
	p.close()
	waitStats(t, ts, "the socket closed after the grace", 8*time.Second, func(s mux.Stats) bool { return s.PhysicalConnections == 0 })
	took := time.Since(start)
	if took < time.Second {
		t.Fatalf("the socket closed after %v: before the grace (1.5 s)", took)
	}
	b.waitWorkers(0, 5*time.Second)
	t.Logf("socket closed %v after the last tab; the worker ended", took.Round(time.Millisecond))

	// a new tab starts a new worker and connects again
	p2 := b.open(ts.URL()+"/?name=leaver&room=lobby&grace=1500", "leaver again")
	p2.waitJS(10*time.Second, "connected", `document.getElementById('conn').dataset.state === 'open'`)
	waitStats(t, ts, "1 connection again", 10*time.Second, func(s mux.Stats) bool { return s.PhysicalConnections == 1 })
}

// Finding 2: after the fast ladder gives up the hub keeps trying at a long,
// jittered interval; the page reconnects by itself once the server is back.
// Before: the page stayed "offline — gave up" until "Retry now" was clicked.
func TestLadderRetriesAfterGivingUp(t *testing.T) {
	cfg := serverConfig()
	ts := servertest.Start(t, cfg)
	addr := ts.Addr()
	b := newBrowser(t)
	p := b.open(ts.URL()+"/?name=patient&room=lobby&tries=2&refetches=0&backoff=100&backoffmax=200&slow=1500", "patient")
	ts.Close()
	p.waitJS(10*time.Second, "gave up the fast ladder", `document.getElementById('conn').dataset.state === 'offline'`)
	time.Sleep(2 * time.Second) // an outage longer than the fast ladder
	ts2 := servertest.StartOn(t, cfg, addr)
	p.waitJS(10*time.Second, "back by itself", `document.getElementById('conn').dataset.state === 'open'`)
	waitStats(t, ts2, "the session back", 10*time.Second, func(s mux.Stats) bool { return s.LogicalSessions == 1 })
	p.say("after the outage")
	p.waitTexts("lobby", 10*time.Second, "after the outage")
}

// Finding 2: after giving up, a focus (or a tab becoming visible, or the
// browser coming online) retries at once, before the long interval.
// Before: nothing retried until "Retry now".
func TestLadderRetriesOnFocus(t *testing.T) {
	cfg := serverConfig()
	ts := servertest.Start(t, cfg)
	addr := ts.Addr()
	b := newBrowser(t)
	p := b.open(ts.URL()+"/?mode=direct&name=focused&room=lobby&tries=1&refetches=0&backoff=100&backoffmax=200&slow=120000", "focused")
	ts.Close()
	p.waitJS(10*time.Second, "gave up", `document.getElementById('conn').dataset.state === 'offline'`)
	servertest.StartOn(t, cfg, addr)
	time.Sleep(500 * time.Millisecond)
	if s := evalJS[string](p, `document.getElementById('conn').dataset.state`); s == "open" {
		t.Fatal("reconnected before the focus: the test would prove nothing")
	}
	p.run(5*time.Second, "focus", chromedp.Evaluate[chromedp.Void](`window.dispatchEvent(new Event('focus'))`))
	p.waitJS(5*time.Second, "reconnected at once on focus", `document.getElementById('conn').dataset.state === 'open'`)
}

// Finding 3: a message typed while the server is away is kept in the
// outbox, shown with its state, and published exactly once after the
// server is back: first with its tab open past the command timeout, then
// with every tab closed and the worker ended (the outbox is in IndexedDB)
// and a new tab opened once the server is back. Before: the command timed
// out, or went with its tab, and was never sent.
func TestOutboxPublishesOnceAfterResume(t *testing.T) {
	cfg := serverConfig()
	cfg.Memory = false
	cfg.DataDir = t.TempDir()
	ts := servertest.Start(t, cfg)
	addr := ts.Addr()
	b := newBrowser(t)
	url := ts.URL() + "/?name=writer&room=lobby&cmdtimeout=800&grace=500&backoff=200&backoffmax=1000"
	p := b.open(url, "writer")
	p.say("online first")
	p.waitTexts("lobby", 10*time.Second, "online first")

	// 1: the tab stays open
	ts.Close()
	p.waitJS(10*time.Second, "offline", `document.getElementById('conn').dataset.state !== 'open'`)
	p.say("typed offline")
	p.waitJS(5*time.Second, "a local echo, sending", `[...document.querySelectorAll('#messages .msg[data-state=sending] .bubble')].some(e => e.textContent === 'typed offline')`)
	time.Sleep(1500 * time.Millisecond) // longer than the command timeout
	ts2 := servertest.StartOn(t, cfg, addr)
	p.waitJS(20*time.Second, "sent", `[...document.querySelectorAll('#messages .msg[data-state=sent] .bubble')].some(e => e.textContent === 'typed offline')`)
	p.waitTexts("lobby", 5*time.Second, "online first", "typed offline")

	// 2: every tab closed while the message waits; the worker ends
	ts2.Close()
	p.waitJS(10*time.Second, "offline again", `document.getElementById('conn').dataset.state !== 'open'`)
	p.say("typed before closing")
	p.waitJS(5*time.Second, "a local echo, sending", `[...document.querySelectorAll('#messages .msg[data-state=sending] .bubble')].some(e => e.textContent === 'typed before closing')`)
	p.close()
	b.waitWorkers(0, 10*time.Second)
	servertest.StartOn(t, cfg, addr)
	p2 := b.open(url, "writer again")
	p2.waitJS(20*time.Second, "sent from the stored outbox", `[...document.querySelectorAll('#messages .msg[data-state=sent] .bubble')].some(e => e.textContent === 'typed before closing')`)

	time.Sleep(time.Second) // room for a second copy, if any
	got := roomTexts(t, addr, "lobby")
	for _, s := range []string{"online first", "typed offline", "typed before closing"} {
		if count(got, s) != 1 {
			t.Fatalf("the server's history: %q; want %q once", got, s)
		}
	}
	if n := evalJS[int](p2, `[...document.querySelectorAll('#messages .log[data-room=lobby] .msg .bubble')].filter(e => e.textContent === 'typed before closing').length`); n != 1 {
		t.Fatalf("the page shows the message %d times, want 1", n)
	}
}

// Finding 4: a paste beyond max_text (bytes, as the server counts) is
// refused with a clear message, and text over the limit is not sent (nor
// cut). Before: maxlength cut 5,000 characters to 4,096 and sent them.
func TestTooLongTextRefused(t *testing.T) {
	ts := servertest.Start(t, serverConfig())
	b := newBrowser(t)
	p := b.open(ts.URL()+"/?name=paster&room=lobby", "paster")
	long := strings.Repeat("x", 5000)
	// a paste: refused before it lands in the box
	p.run(5*time.Second, "paste", chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(() => {
		const dt = new DataTransfer(); dt.setData('text/plain', 'x'.repeat(%d));
		document.getElementById('input').dispatchEvent(new ClipboardEvent('paste', {clipboardData: dt, bubbles: true, cancelable: true}));
	})()`, len(long))))
	p.waitJS(5*time.Second, "paste refused with a message", `document.getElementById('composer-error').textContent.includes('4096')`)
	// text that gets in anyway (typed, dropped, an IME): refused on Enter,
	// kept whole in the box; the counter shows the bytes
	p.run(10*time.Second, "insert text", chromedp.Focus(chromedp.ID("input")), func(ctx context.Context, _ *chromedp.Target) (chromedp.Void, error) {
		_, err := chromedp.Call(ctx, input.InsertText, input.InsertTextParams{Text: strings.Repeat("€", 1400)}) // 4,200 bytes, 1,400 characters
		return chromedp.Void{}, err
	})
	p.waitJS(5*time.Second, "counter over the limit", `document.getElementById('counter').textContent.includes('4200') && !document.getElementById('counter').hidden`)
	p.run(5*time.Second, "enter", chromedp.SendKeys(chromedp.ID("input"), "\r"))
	p.waitJS(5*time.Second, "refused on send", `document.getElementById('composer-error').textContent.includes('4096')`)
	if n := evalJS[int](p, `document.getElementById('input').value.length`); n != 1400 {
		t.Fatalf("the box holds %d characters, want the 1400 typed", n)
	}
	p.say("short one")
	p.waitTexts("lobby", 10*time.Second, "short one")
	if got := roomTexts(t, ts.Addr(), "lobby"); len(got) != 1 {
		t.Fatalf("the server has %d messages (%d bytes first), want only the short one", len(got), len(got[0]))
	}
}

// Finding 5: two direct-mode tabs of one browser (no SharedWorker, no
// leader: a socket each) share one name, through the client library alone:
// the page's own token store is wiped before each tab takes the name, so
// only client.js can hand the token over. Before: the second tab got "The
// name twin is taken".
func TestDirectTabsShareName(t *testing.T) {
	ts := servertest.Start(t, serverConfig())
	b := newBrowser(t)
	a := b.open(ts.URL()+"/?mode=direct&room=lobby", "direct 1")
	c := b.open(ts.URL()+"/?mode=direct&room=lobby", "direct 2")
	for _, tb := range []*tab{a, c} {
		tb.run(10*time.Second, "pick a name",
			chromedp.Evaluate[chromedp.Void](`localStorage.removeItem('imload.tokens'); document.getElementById('name-input').value = 'twin'`),
			chromedp.Click(chromedp.CSS("#name-form button")))
		tb.waitJS(10*time.Second, "named twin", `document.getElementById('me-name').textContent === 'twin' || document.getElementById('name-error').textContent !== ''`)
		if s := evalJS[string](tb, `document.getElementById('name-error').textContent`); s != "" {
			t.Fatalf("%s: %q", tb.name, s)
		}
	}
	waitStats(t, ts, "2 direct sockets, one user", 10*time.Second, func(s mux.Stats) bool {
		return s.PhysicalByMode["direct"] == 2 && s.Users == 1 && s.LogicalSessions == 2
	})
	// a third direct tab opened with the name takes it too
	c.run(5*time.Second, "wipe the page's store", chromedp.Evaluate[chromedp.Void](`localStorage.removeItem('imload.tokens')`))
	d := b.open(ts.URL()+"/?mode=direct&name=twin&room=lobby", "direct 3")
	d.waitJS(10*time.Second, "third tab named", `document.getElementById('me-name').textContent === 'twin'`)
	c.say("from the second tab")
	d.waitTexts("lobby", 10*time.Second, "from the second tab")
}

// Finding 6: a DM gets a conversation with its peer, counted as unread,
// never mixed into a room, kept in the worker's cache (IndexedDB) across a
// reload and a new worker. Before: it landed in the room on screen and was
// gone after a reload.
func TestDMConversationSurvivesReload(t *testing.T) {
	ts := servertest.Start(t, serverConfig())
	b := newBrowser(t)
	p := b.open(ts.URL()+"/?name=alice&room=lobby&grace=500", "alice")
	bob := dialClient(t, ts.Addr(), "bob", "lobby")
	// the page is ready before its session is attached: a DM sent before
	// that would find alice offline (410)
	waitStats(t, ts, "alice attached", 10*time.Second, func(s mux.Stats) bool { return s.LogicalSessions == 2 })
	bob.cmd("dm", map[string]any{"to": "alice", "text": "psst 1", "cid": "b1"})
	p.waitJS(10*time.Second, "a conversation with bob, 1 unread", `(() => { const b = document.querySelector('#dm-list [data-peer=bob]'); return b && b.querySelector('.unread') && b.querySelector('.unread').textContent === '1'; })()`)
	if n := evalJS[int](p, `document.querySelectorAll('#messages .log[data-room=lobby] .msg').length`); n != 0 {
		t.Fatalf("the DM shows in the lobby (%d messages there)", n)
	}
	p.waitJS(5*time.Second, "unread in the title", `document.title.startsWith('(1)')`)
	p.run(5*time.Second, "open the conversation", chromedp.Click(chromedp.CSS(`#dm-list [data-peer=bob]`)))
	p.waitJS(5*time.Second, "shown in the conversation", `[...document.querySelectorAll('#messages .log[data-dm=bob] .msg .bubble')].some(e => e.textContent === 'psst 1')`)
	p.waitJS(5*time.Second, "read", `!document.querySelector('#dm-list [data-peer=bob] .unread') && !document.title.startsWith('(')`)
	p.say("hi bob")
	p.waitJS(5*time.Second, "own reply in the conversation", `[...document.querySelectorAll('#messages .log[data-dm=bob] .msg .bubble')].some(e => e.textContent === 'hi bob')`)
	p.run(5*time.Second, "back to the lobby", chromedp.Click(chromedp.CSS(`#room-list [data-room=lobby].room-name`)))
	bob.cmd("dm", map[string]any{"to": "alice", "text": "psst 2", "cid": "b2"})
	p.waitJS(10*time.Second, "1 unread again", `(() => { const u = document.querySelector('#dm-list [data-peer=bob] .unread'); return u && u.textContent === '1'; })()`)

	// every tab gone, the worker ended: a new one reads the DMs from IndexedDB
	p.close()
	waitStats(t, ts, "the browser's socket gone", 10*time.Second, func(s mux.Stats) bool { return s.PhysicalConnections == 1 })
	b.waitWorkers(0, 5*time.Second)
	p2 := b.open(ts.URL()+"/?name=alice&room=lobby", "alice again")
	p2.waitJS(10*time.Second, "the conversation after the reload, still 1 unread", `(() => { const u = document.querySelector('#dm-list [data-peer=bob] .unread'); return u && u.textContent === '1'; })()`)
	p2.run(5*time.Second, "open it", chromedp.Click(chromedp.CSS(`#dm-list [data-peer=bob]`)))
	p2.waitJS(5*time.Second, "the three messages in order", `[...document.querySelectorAll('#messages .log[data-dm=bob] .msg .bubble')].map(e => e.textContent).join('|') === 'psst 1|hi bob|psst 2'`)
}

// Finding 7: the panel shows this browser (mode, its sockets, its tabs)
// apart from the server's totals. Before: the server's totals sat under
// "This browser".
func TestPanelSeparatesBrowserAndServer(t *testing.T) {
	ts := servertest.Start(t, serverConfig())
	dialClient(t, ts.Addr(), "other", "lobby") // another browser: the server counts it, this browser does not
	b := newBrowser(t)
	p := b.open(ts.URL()+"/?name=panel&room=lobby", "panel 1")
	b.open(ts.URL()+"/?name=panel&room=lobby", "panel 2")
	p.waitJS(10*time.Second, "this browser: 1 socket, 2 tabs", `document.querySelector('#panel #b-sockets').textContent === '1' && document.querySelector('#panel #tab-count').textContent === '2'`)
	p.waitJS(10*time.Second, "server: 2 connections, 3 sessions", `document.querySelector('#server-panel #phys').textContent === '2' && document.querySelector('#server-panel #logi').textContent === '3'`)
	if n := evalJS[int](p, `document.querySelectorAll('#panel #phys, #panel #logi').length`); n != 0 {
		t.Fatal("server totals under This browser")
	}
	d := b.open(ts.URL()+"/?mode=direct&name=panel&room=lobby", "direct")
	d.waitJS(10*time.Second, "direct: this tab's own socket", `document.querySelector('#panel #b-sockets').textContent === '1' && document.getElementById('mode').textContent === 'direct'`)
}

// Finding 8: load older, an empty room, unread count in the title,
// presence marked stale while offline.
func TestChatGaps(t *testing.T) {
	cfg := serverConfig()
	cfg.RateBurst = 100
	ts := servertest.Start(t, cfg)
	ext := dialClient(t, ts.Addr(), "ext", "lobby", "side")
	for i := 1; i <= 70; i++ {
		ext.cmd("send", map[string]any{"room": "lobby", "text": fmt.Sprintf("old %d", i)})
	}
	b := newBrowser(t)
	p := b.open(ts.URL()+"/?name=reader&room=lobby,side", "reader")
	p.run(5*time.Second, "show lobby", chromedp.Click(chromedp.CSS(`#room-list [data-room=lobby].room-name`)))
	p.waitTexts("lobby", 10*time.Second, "old 21", "old 70")
	if n := len(p.texts("lobby")); n != 50 {
		t.Fatalf("lobby shows %d messages, want the last 50", n)
	}
	p.run(5*time.Second, "load older", chromedp.Click(chromedp.CSS(`#messages .log[data-room=lobby] .load-older`)))
	p.waitJS(10*time.Second, "70 in order", `[...document.querySelectorAll('#messages .log[data-room=lobby] .msg .bubble')].map(e => e.textContent).join() === Array.from({length: 70}, (_, i) => 'old ' + (i + 1)).join()`)
	p.waitJS(5*time.Second, "no more to load", `!document.querySelector('#messages .log[data-room=lobby] .load-older') || document.querySelector('#messages .log[data-room=lobby] .load-older').hidden`)

	// an empty room says so
	p.run(5*time.Second, "join an empty room", chromedp.Evaluate[chromedp.Void](`document.getElementById('room-input').value = 'quiet'`), chromedp.Click(chromedp.CSS("#room-form button")))
	p.waitJS(10*time.Second, "empty state", `(() => { const e = document.querySelector('#messages .log[data-room=quiet] .empty-room'); return e && !e.hidden && e.offsetParent !== null; })()`)
	p.say("first words")
	p.waitJS(5*time.Second, "empty state gone", `!document.querySelector('#messages .log[data-room=quiet] .empty-room') || document.querySelector('#messages .log[data-room=quiet] .empty-room').hidden`)

	// unread of other rooms in the title
	ext.cmd("send", map[string]any{"room": "side", "text": "over here"})
	ext.cmd("send", map[string]any{"room": "side", "text": "and here"})
	p.waitJS(10*time.Second, "title counts unread", `document.title.startsWith('(2) ')`)
	p.run(5*time.Second, "show side", chromedp.Click(chromedp.CSS(`#room-list [data-room=side].room-name`)))
	p.waitJS(5*time.Second, "title clear", `!document.title.startsWith('(')`)

	// the people list is marked stale while offline
	p.waitJS(10*time.Second, "people listed", `document.querySelectorAll('#people li').length >= 2`)
	ts.Close()
	p.waitJS(10*time.Second, "people stale", `document.getElementById('people').classList.contains('stale')`)
}

// Finding 8: a user whose socket drops and resumes within the grace does
// not make everyone's page say "X left" and "X joined". The observer is a
// page of the same browser in shared mode; the one who reconnects is a
// direct-mode tab (its own socket, dropped from the page).
func TestPresenceDoesNotFlapOnResume(t *testing.T) {
	ts := servertest.Start(t, serverConfig())
	b := newBrowser(t)
	obs := b.open(ts.URL()+"/?name=watcher&room=lobby", "watcher")
	hop := b.open(ts.URL()+"/?mode=direct&name=hopper&room=lobby", "hopper")
	obs.waitJS(10*time.Second, "hopper listed", `[...document.querySelectorAll('#people li')].some(e => e.textContent.startsWith('hopper'))`)
	obs.run(5*time.Second, "clear system lines", chromedp.Evaluate[chromedp.Void](`document.querySelectorAll('#messages .sys').forEach(e => e.remove())`))
	hop.run(5*time.Second, "drop hopper's socket", chromedp.Evaluate[chromedp.Void](`window.imloadApp.client.directHub.conn.ws.close()`))
	hop.waitJS(10*time.Second, "hopper back", `window.imloadApp.client.status.state === 'open' && window.imloadApp.client.directHub.stats.reconnects === 1`)
	time.Sleep(3 * time.Second) // longer than the server's presence interval and the page's hold
	if lines := evalJS[[]string](obs, `[...document.querySelectorAll('#messages .sys')].map(e => e.textContent)`); len(lines) != 0 {
		t.Fatalf("the observer shows %q for a resume", lines)
	}
	// a real departure is still told
	hop.close()
	obs.waitJS(15*time.Second, "hopper left", `[...document.querySelectorAll('#messages .sys')].some(e => e.textContent === 'hopper left')`)
}

// The server's side of the flap: a user whose only connection drops and
// comes back within the presence grace (--presence-grace) is not pushed as
// leave then join to the other members (it failed so before the server
// held such leaves for the grace).
func TestPresenceWireFlapOnReconnect(t *testing.T) {
	ts := servertest.Start(t, serverConfig())
	obs := dialClient(t, ts.Addr(), "watcher", "lobby")
	hop := dialClient(t, ts.Addr(), "hopper", "lobby")
	time.Sleep(500 * time.Millisecond)
	r := hop.cmd("who", map[string]any{"room": "lobby"})
	_ = r
	tok := hop.token
	drain(obs)
	hop.close()
	time.Sleep(300 * time.Millisecond) // the socket drops; the ladder's first retry
	dialClientToken(t, ts.Addr(), "hopper", tok, "lobby")
	time.Sleep(time.Second)
	if ev := drain(obs); len(ev) != 0 {
		t.Fatalf("the observer got %v for a reconnect within the grace", ev)
	}
}

// drain returns the presence pushes wc received so far.
func drain(wc *wsClient) []string {
	var out []string
	for {
		select {
		case f, ok := <-wc.rd:
			if !ok {
				return out
			}
			if f["t"] == "push" && (f["ev"] == "join" || f["ev"] == "leave") {
				body, _ := f["body"].(map[string]any)
				out = append(out, fmt.Sprintf("%v %v", f["ev"], body["user"]))
			}
		default:
			return out
		}
	}
}
