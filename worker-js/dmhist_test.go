package workerjs_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/storage"
	"github.com/chromedp/chromedp"

	"imload/mux"
	"imload/server/servertest"
)

// dmTexts is the JS of the texts shown in the conversation with peer, in
// page order.
func dmTexts(peer string) string {
	return fmt.Sprintf(`[...document.querySelectorAll('#messages .log[data-dm=%q] .msg .bubble')].map(e => e.textContent).join('|')`, peer)
}

// openDM clicks the conversation with peer in the list and waits until it
// shows want (its texts, in order).
func (tb *tab) openDM(peer string, want ...string) {
	tb.t.Helper()
	tb.waitJS(15*time.Second, "the conversation with "+peer+" listed", fmt.Sprintf(`document.querySelector('#dm-list [data-peer=%q]')`, peer))
	tb.run(5*time.Second, "open the conversation with "+peer, chromedp.Click(chromedp.CSS(fmt.Sprintf(`#dm-list [data-peer=%q]`, peer))))
	tb.waitJS(15*time.Second, fmt.Sprintf("the conversation shows %v", want), dmTexts(peer)+` === `+fmt.Sprintf("%q", strings.Join(want, "|")))
}

// Issue 16, finding 6 (the server side): the server keeps the private
// messages, so a conversation survives a reload with the worker's cache
// (IndexedDB) cleared, and shows in a second browser (a profile of its
// own) of the same user, learnt from the server's list, in order, with
// what comes live afterwards. Before: the conversation lived in one
// browser's IndexedDB only; with the cache gone it was gone, and another
// browser never saw it.
func TestDMHistoryInEveryBrowser(t *testing.T) {
	ts := servertest.Start(t, serverConfig())
	b := newBrowser(t)
	p := b.open(ts.URL()+"/?name=alice&room=lobby&grace=300", "alice")
	bob := dialClient(t, ts.Addr(), "bob", "lobby")
	bob.cmd("dm", map[string]any{"to": "alice", "text": "psst 1", "cid": "b1"})
	p.openDM("bob", "psst 1")
	p.say("hi bob")
	p.waitJS(10*time.Second, "own reply shown", dmTexts("bob")+` === 'psst 1|hi bob'`)
	bob.cmd("dm", map[string]any{"to": "alice", "text": "psst 2", "cid": "b2"})
	p.waitJS(10*time.Second, "the second DM shown", dmTexts("bob")+` === 'psst 1|hi bob|psst 2'`)
	token := evalJS[string](p, `JSON.parse(localStorage.getItem('imload.tokens') || '{}').alice || ''`)
	if token == "" {
		t.Fatal("no token for alice in localStorage")
	}

	// Every tab gone, the worker ended, its IndexedDB cleared: the new
	// worker has nothing but what the server keeps.
	p.close()
	waitStats(t, ts, "the browser's socket gone", 10*time.Second, func(s mux.Stats) bool { return s.PhysicalConnections == 1 })
	b.waitWorkers(0, 5*time.Second)
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	if _, err := chromedp.Call(ctx, storage.ClearDataForOrigin, storage.ClearDataForOriginParams{Origin: ts.URL(), StorageTypes: "indexeddb"}); err != nil {
		t.Fatalf("clear IndexedDB: %v", err)
	}
	p2 := b.open(ts.URL()+"/?name=alice&room=lobby", "alice after the reload")
	if n := evalJS[int](p2, `indexedDB.databases().then(ds => ds.length)`); n > 1 {
		t.Logf("%d IndexedDB databases after the clear (the new worker's)", n)
	}
	p2.openDM("bob", "psst 1", "hi bob", "psst 2")
	p2.waitJS(5*time.Second, "nothing unread: it was read in the first browser's time", `!document.querySelector('#dm-list [data-peer=bob] .unread')`)

	// A second browser of alice: a profile of its own, alice's token.
	b2 := newBrowser(t)
	q := b2.open(ts.URL()+"/?room=lobby", "second browser, anonymous")
	evalJS[bool](q, fmt.Sprintf(`(localStorage.setItem('imload.tokens', JSON.stringify({alice: %q})), true)`, token))
	q.run(20*time.Second, "as alice", chromedp.Navigate(ts.URL()+"/?name=alice&room=lobby"))
	q.waitJS(20*time.Second, "page ready", `document.body.dataset.ready === '1'`)
	q.waitJS(10*time.Second, "attached as alice", `window.imloadApp.me.user === 'alice'`)
	q.openDM("bob", "psst 1", "hi bob", "psst 2")

	// What comes next reaches both browsers, once each.
	bob.cmd("dm", map[string]any{"to": "alice", "text": "psst 3", "cid": "b3"})
	for _, tb := range []*tab{p2, q} {
		tb.waitJS(10*time.Second, "the live DM", dmTexts("bob")+` === 'psst 1|hi bob|psst 2|psst 3'`)
	}
	q.say("from the second browser")
	p2.waitJS(10*time.Second, "the second browser's DM in the first", dmTexts("bob")+` === 'psst 1|hi bob|psst 2|psst 3|from the second browser'`)
}
