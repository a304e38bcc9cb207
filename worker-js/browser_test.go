package workerjs_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"go.uber.org/goleak"

	"imload/mux"
	"imload/server/servertest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// chromedp's allocator may leave its process waiter for a moment
		goleak.IgnoreTopFunction("github.com/chromedp/chromedp.(*ExecAllocator).Allocate.func2"),
		goleak.IgnoreTopFunction("os/exec.(*Cmd).watchCtx"),
	)
}

// Issue 3, test 1: three tabs of one browser share one socket; a room
// message reaches the other tabs; a private message only its target.
func TestSharedWorkerThreeTabs(t *testing.T) {
	ts := servertest.Start(t, serverConfig())
	b := newBrowser(t)
	alice := b.open(ts.URL()+"/?name=alice&room=lobby", "alice")
	bob := b.open(ts.URL()+"/?name=bob&room=lobby", "bob")
	carol := b.open(ts.URL()+"/?name=carol&room=lobby", "carol")

	st := waitStats(t, ts, "1 connection, 3 sessions", 10*time.Second, func(s mux.Stats) bool {
		return s.PhysicalConnections == 1 && s.LogicalSessions == 3
	})
	if st.PhysicalByMode["shared_worker"] != 1 {
		t.Fatalf("by mode: %v, want shared_worker 1", st.PhysicalByMode)
	}
	for _, tb := range []*tab{alice, bob, carol} {
		tb.waitJS(10*time.Second, "mode shown", `document.getElementById('mode').textContent === 'shared worker'`)
		tb.waitJS(10*time.Second, "3 tabs listed", `document.getElementById('tab-count').textContent === '3'`)
	}
	alice.waitJS(10*time.Second, "panel counts", `document.getElementById('phys').textContent === '1' && document.getElementById('logi').textContent === '3'`)

	alice.say("hello from tab 1")
	for _, tb := range []*tab{alice, bob, carol} {
		tb.waitTexts("lobby", 10*time.Second, "hello from tab 1")
	}
	alice.say("@bob just for you")
	bob.waitJS(10*time.Second, "dm shown", `[...document.querySelectorAll('#messages .msg.dm .bubble')].some(e => e.textContent === 'just for you')`)
	alice.waitJS(10*time.Second, "dm echoed to sender", `[...document.querySelectorAll('#messages .msg.dm .bubble')].some(e => e.textContent === 'just for you')`)
	bob.say("back to all")
	carol.waitTexts("lobby", 10*time.Second, "hello from tab 1", "back to all")
	if n := evalJS[int](carol, `document.querySelectorAll('#messages .msg.dm').length`); n != 0 {
		t.Fatalf("carol sees %d private messages, want 0", n)
	}
	for _, tb := range []*tab{alice, bob, carol} {
		if got := tb.texts("lobby"); !slices.Equal(got, []string{"hello from tab 1", "back to all"}) {
			t.Fatalf("%s shows %q", tb.name, got)
		}
	}
	screenshot(t, alice, "shared-three-tabs-alice.png")
}

// Issue 3, test 2: without SharedWorker the tabs elect a leader: still one
// socket; closing the leader hands it to another tab without losing messages.
func TestLeaderTabFallback(t *testing.T) {
	ts := servertest.Start(t, serverConfig())
	b := newBrowser(t)
	t1 := b.open(ts.URL()+"/?mode=leader&name=ann&room=lobby", "ann")
	t2 := b.open(ts.URL()+"/?mode=leader&name=ben&room=lobby", "ben")
	t3 := b.open(ts.URL()+"/?mode=leader&name=cid&room=lobby", "cid")
	st := waitStats(t, ts, "1 connection, 3 sessions", 10*time.Second, func(s mux.Stats) bool {
		return s.PhysicalConnections == 1 && s.LogicalSessions == 3
	})
	if st.PhysicalByMode["leader_tab"] != 1 {
		t.Fatalf("by mode: %v, want leader_tab 1", st.PhysicalByMode)
	}
	if !evalJS[bool](t1, `window.imloadApp.client.modeInfo().leader`) {
		t.Fatal("the first tab should lead")
	}
	t3.waitJS(10*time.Second, "mode shown", `document.getElementById('mode').textContent === 'leader tab'`)
	t1.say("before handover")
	t3.waitTexts("lobby", 10*time.Second, "before handover")

	// another user keeps talking while the leader tab closes
	ext := dialClient(t, ts.Addr(), "ext", "lobby")
	var want []string
	for i := 1; i <= 12; i++ {
		want = append(want, fmt.Sprintf("ext %d", i))
	}
	done := make(chan error, 1)
	go func() {
		for i, text := range want {
			if _, err := ext.do("send", map[string]any{"room": "lobby", "text": text, "cid": fmt.Sprintf("e%d", i)}); err != nil {
				done <- err
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		done <- nil
	}()
	time.Sleep(250 * time.Millisecond)
	t1.close()
	t2.say("from ben after handover")
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	t3.waitTexts("lobby", 15*time.Second, append([]string{"before handover"}, want...)...)
	t3.waitTexts("lobby", 15*time.Second, "from ben after handover")
	t2.waitTexts("lobby", 15*time.Second, want...)
	for _, tb := range []*tab{t2, t3} {
		got := tb.texts("lobby")
		seen := map[string]int{}
		for _, g := range got {
			seen[g]++
			if seen[g] > 1 {
				t.Fatalf("%s shows %q twice: %q", tb.name, g, got)
			}
		}
	}
	waitStats(t, ts, "one leader socket again, 2 tab sessions + ext", 10*time.Second, func(s mux.Stats) bool {
		return s.PhysicalByMode["leader_tab"] == 1 && s.LogicalSessions == 3
	})
	lead2 := evalJS[bool](t2, `window.imloadApp.client.modeInfo().leader`)
	lead3 := evalJS[bool](t3, `window.imloadApp.client.modeInfo().leader`)
	if lead2 == lead3 {
		t.Fatalf("exactly one tab should lead now: ben=%v cid=%v", lead2, lead3)
	}
}

// Issue 3, test 3: forced direct mode opens one socket per tab.
func TestDirectMode(t *testing.T) {
	ts := servertest.Start(t, serverConfig())
	b := newBrowser(t)
	tabs := []*tab{
		b.open(ts.URL()+"/?mode=direct&name=d1&room=lobby", "d1"),
		b.open(ts.URL()+"/?mode=direct&name=d2&room=lobby", "d2"),
		b.open(ts.URL()+"/?mode=direct&name=d3&room=lobby", "d3"),
	}
	waitStats(t, ts, "3 direct connections", 10*time.Second, func(s mux.Stats) bool {
		return s.PhysicalConnections == 3 && s.LogicalSessions == 3 && s.PhysicalByMode["direct"] == 3
	})
	tabs[0].say("direct hello")
	for _, tb := range tabs {
		tb.waitTexts("lobby", 10*time.Second, "direct hello")
		tb.waitJS(10*time.Second, "mode shown", `document.getElementById('mode').textContent === 'direct'`)
	}
}

// Issue 3, test 4: a tab that closes, or crashes, loses its session within
// a few seconds.
func TestTabCloseDetaches(t *testing.T) {
	ts := servertest.Start(t, serverConfig())
	b := newBrowser(t)
	keep := b.open(ts.URL()+"/?name=keeper&room=lobby", "keeper")
	closing := b.open(ts.URL()+"/?name=closer&room=lobby", "closer")
	crashing := b.open(ts.URL()+"/?name=crasher&room=lobby", "crasher")
	waitStats(t, ts, "3 sessions", 10*time.Second, func(s mux.Stats) bool { return s.LogicalSessions == 3 })

	start := time.Now()
	closing.close()
	waitStats(t, ts, "closed tab detached", 5*time.Second, func(s mux.Stats) bool { return s.LogicalSessions == 2 })
	t.Logf("closed tab detached after %v", time.Since(start).Round(time.Millisecond))

	start = time.Now()
	cctx, ccancel := context.WithTimeout(crashing.ctx, time.Second)
	_, _ = chromedp.Call(cctx, page.Crash, cdp.Empty{}) // the renderer dies: no pagehide, only the Web Lock tells
	ccancel()
	waitStats(t, ts, "crashed tab detached", 5*time.Second, func(s mux.Stats) bool { return s.LogicalSessions == 1 })
	t.Logf("crashed tab detached after %v", time.Since(start).Round(time.Millisecond))
	if st := ts.Server.Stats(); st.PhysicalConnections != 1 {
		t.Fatalf("physical connections %d, want 1", st.PhysicalConnections)
	}
	keep.waitJS(10*time.Second, "tab list updated", `document.getElementById('tab-count').textContent === '1'`)
	keep.say("still here")
	keep.waitTexts("lobby", 10*time.Second, "still here")
}

// Issue 3, test 6: user text is shown as text, never as HTML.
func TestMessagesAreText(t *testing.T) {
	ts := servertest.Start(t, serverConfig())
	b := newBrowser(t)
	a := b.open(ts.URL()+"/?name=mallory&room=lobby", "mallory")
	v := b.open(ts.URL()+"/?name=victim&room=lobby", "victim")
	const evil = `<img src=x onerror=alert(1)>`
	a.say(evil)
	a.say(`@victim <b>bold?</b><script>alert(2)</script>`)
	v.waitTexts("lobby", 10*time.Second, evil)
	v.waitJS(10*time.Second, "dm shown as text", `[...document.querySelectorAll('#messages .msg.dm .bubble')].some(e => e.textContent === '<b>bold?</b><script>alert(2)</script>')`)
	for _, tb := range []*tab{a, v} {
		if n := evalJS[int](tb, `document.querySelectorAll('#messages img, #messages script, #messages b').length`); n != 0 {
			t.Fatalf("%s: %d elements made from message text", tb.name, n)
		}
		tb.mu.Lock()
		d := tb.dialog
		tb.mu.Unlock()
		if d {
			t.Fatalf("%s: a JavaScript dialog opened", tb.name)
		}
	}
}

// Issue 3, test 5: the server restarts mid-chat. The page reconnects by
// itself; what was sent meanwhile appears once, in order, resumed by
// offset; a reload, and a fresh worker, show the room from IndexedDB and
// fetch nothing they already have.
func TestServerRestartResumes(t *testing.T) {
	cfg := serverConfig()
	cfg.Memory = false
	cfg.DataDir = t.TempDir()
	cfg.GoAwayRetryMin = 1500 * time.Millisecond
	cfg.GoAwayRetryMax = 2000 * time.Millisecond
	ts := servertest.Start(t, cfg)
	addr := ts.Addr()
	b := newBrowser(t)
	alice := b.open(ts.URL()+"/?name=alice&room=lobby", "alice")
	bob := b.open(ts.URL()+"/?name=bob&room=lobby", "bob")
	alice.say("one")
	alice.say("two")
	bob.waitTexts("lobby", 10*time.Second, "one", "two")
	before := bob.info()

	ts.Close()
	alice.waitJS(10*time.Second, "the page sees the server go", `window.imloadApp.client.status.state !== 'open'`)
	alice.waitJS(10*time.Second, "the page says so", `document.getElementById('conn').dataset.state !== 'open'`)
	alice.say("typed while away") // waits in the worker, sent once after the reconnect (cid)

	ts2 := servertest.StartOn(t, cfg, addr)
	ext := dialClient(t, addr, "ext", "lobby")
	for i := 1; i <= 3; i++ {
		ext.cmd("send", map[string]any{"room": "lobby", "text": fmt.Sprintf("missed %d", i)})
	}
	all := []string{"one", "two", "missed 1", "missed 2", "missed 3"}
	for _, tb := range []*tab{alice, bob} {
		tb.waitTexts("lobby", 20*time.Second, all...)
		tb.waitTexts("lobby", 10*time.Second, "typed while away")
		tb.waitJS(10*time.Second, "connected again", `document.getElementById('conn').dataset.state === 'open'`)
		assertOnce(t, tb, "lobby", append(all, "typed while away"))
	}
	// The two tabs resumed lobby from the same offset: one join for both
	// (sids), besides ext's.
	if st := ts2.Server.Stats(); st.Joins != 2 || st.JoinSessions != 3 {
		t.Fatalf("after the restart: %d joins for %d sessions, want 2 for 3 (ext's, and one for both tabs)", st.Joins, st.JoinSessions)
	}
	after := bob.info()
	if after.Stats.Reconnects < 1 || after.Stats.Resumed < 3 {
		t.Fatalf("want a reconnect that resumed the missed messages by offset; stats %+v", after.Stats)
	}
	t.Logf("reconnects=%d resumed=%d (before: %+v)", after.Stats.Reconnects, after.Stats.Resumed, before.Stats)

	// reload: the room comes from the cache, the server sends nothing old
	out0 := ts2.Server.Stats().BytesOut
	bob.run(20*time.Second, "reload", chromedp.Reload())
	bob.waitJS(20*time.Second, "page ready", `document.body.dataset.ready === '1'`)
	bob.waitTexts("lobby", 10*time.Second, all...)
	assertOnce(t, bob, "lobby", append(all, "typed while away"))
	hi := bob.info()
	if hi.Stats.LastJoinFetched != 0 || hi.Stats.LastJoinCached < 6 {
		t.Fatalf("reload: join fetched %d and took %d from the cache; want 0 and >= 6", hi.Stats.LastJoinFetched, hi.Stats.LastJoinCached)
	}
	t.Logf("reload: %d messages from the cache, %d fetched, %d bytes from the server", hi.Stats.LastJoinCached, hi.Stats.LastJoinFetched, ts2.Server.Stats().BytesOut-out0)

	// every tab gone: a new tab with a brand-new hub (direct mode: in the
	// page, nothing in memory) reads the room from IndexedDB
	oldHub := hi.Hub
	alice.close()
	bob.close()
	waitStats(t, ts2, "the browser's sessions gone", 10*time.Second, func(s mux.Stats) bool { return s.LogicalSessions == 1 })
	carol := b.open(ts2.URL()+"/?mode=direct&name=carol&room=lobby", "carol")
	carol.waitTexts("lobby", 10*time.Second, all...)
	hi = carol.info()
	if hi.Stats.LastJoinFetched != 0 || hi.Stats.LastJoinCached < 6 {
		t.Fatalf("new tab: join fetched %d and took %d from the cache; want 0 and >= 6", hi.Stats.LastJoinFetched, hi.Stats.LastJoinCached)
	}
	if hi.Hub == oldHub || hi.Mode != "direct" {
		t.Fatalf("want a fresh direct hub, got %s (%s)", hi.Hub, hi.Mode)
	}
	t.Logf("new tab, fresh hub: %d from IndexedDB, %d fetched", hi.Stats.LastJoinCached, hi.Stats.LastJoinFetched)
}

// assertOnce checks that room shows exactly want, each once; the messages
// of one sender (ext sent the "missed …" ones, alice the others) keep the
// order they have in want.
func assertOnce(t *testing.T, tb *tab, room string, want []string) {
	t.Helper()
	assertOnceBy(t, tb, room, want, func(s string) bool { return strings.HasPrefix(s, "missed") })
}

// assertOnceBy is assertOnce where byOther tells the messages of the
// second sender.
func assertOnceBy(t *testing.T, tb *tab, room string, want []string, byOther func(string) bool) {
	t.Helper()
	got := tb.texts(room)
	a, w := slices.Clone(got), slices.Clone(want)
	slices.Sort(a)
	slices.Sort(w)
	if !slices.Equal(a, w) {
		t.Fatalf("%s shows %q, want each of %q once", tb.name, got, want)
	}
	for _, ext := range []bool{false, true} {
		last := -1
		for _, s := range want {
			if byOther(s) != ext {
				continue
			}
			i := slices.Index(got, s)
			if i < last {
				t.Fatalf("%s shows %q: %q out of its sender's order %q", tb.name, got, s, want)
			}
			last = i
		}
	}
}

// The demo page with two tabs chatting, saved for people to look at (on a
// laptop and on a phone) under testdata/artifacts.
func TestScreenshotTwoTabs(t *testing.T) {
	ts := servertest.Start(t, serverConfig())
	b := newBrowser(t)
	alice := b.open(ts.URL()+"/?name=alice&room=lobby", "alice")
	bob := b.open(ts.URL()+"/?name=bob&room=lobby", "bob")
	lines := []struct {
		who  *tab
		text string
	}{
		{alice, "Hi Bob! Both of our tabs share one WebSocket through the SharedWorker."},
		{bob, "Nice. The panel says 1 physical connection and 2 logical sessions."},
		{alice, "Try <b>this</b>: it stays text, never HTML."},
		{bob, "@alice and this one is private"},
		{alice, "Got it, thanks!"},
	}
	for _, l := range lines {
		l.who.say(l.text)
	}
	alice.waitTexts("lobby", 10*time.Second, lines[0].text, lines[1].text, lines[2].text, lines[4].text)
	bob.waitTexts("lobby", 10*time.Second, lines[4].text)
	alice.waitJS(10*time.Second, "dm shown", `document.querySelectorAll('#messages .msg.dm').length === 1`)
	for _, tb := range []*tab{alice, bob} {
		tb.waitJS(10*time.Second, "panel counts", `document.getElementById('phys').textContent === '1' && document.getElementById('logi').textContent === '2'`)
		tb.waitJS(10*time.Second, "people listed", `document.querySelectorAll('#people li').length === 2`)
	}
	screenshot(t, alice, "chat-two-tabs-alice.png")
	screenshot(t, bob, "chat-two-tabs-bob.png")
	bob.run(10*time.Second, "phone size", chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile))
	screenshot(t, bob, "chat-two-tabs-bob-phone.png")
}

// A name that someone else holds is refused with a message; the page stays
// connected without a name and can pick another one.
func TestNameTaken(t *testing.T) {
	ts := servertest.Start(t, serverConfig())
	dialClient(t, ts.Addr(), "zoe", "lobby")
	b := newBrowser(t)
	p := b.open(ts.URL()+"/?name=zoe&room=lobby", "page")
	p.waitJS(10*time.Second, "refusal shown", `document.getElementById('name-error').textContent.includes('taken')`)
	p.run(10*time.Second, "pick zoe again",
		chromedp.Evaluate[chromedp.Void](`document.getElementById('name-input').value = 'zoe'`),
		chromedp.Click(chromedp.CSS("#name-form button")))
	p.waitJS(10*time.Second, "refused again", `document.getElementById('name-error').textContent.includes('taken')`)
	p.run(10*time.Second, "pick another",
		chromedp.Evaluate[chromedp.Void](`document.getElementById('name-input').value = 'zed'`),
		chromedp.Click(chromedp.CSS("#name-form button")))
	p.waitJS(10*time.Second, "named", `document.getElementById('me-name').textContent === 'zed'`)
	p.say("zed here")
	p.waitTexts("lobby", 10*time.Second, "zed here")
}
