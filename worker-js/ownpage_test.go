package workerjs_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"imload/mux"
	"imload/server/servertest"
	workerjs "imload/worker-js"
)

// ownPage is a page of "your own app": another origin than the chat
// server's, serving the package's files itself (client.js, worker.js,
// core/), with its own worker name, pointed at the server by `server`.
const ownPage = `<!DOCTYPE html><meta charset="utf-8"><title>my app</title>
<ul id="log"></ul>
<script type="module">
import { connect, ERR } from './client.js';
const server = new URLSearchParams(location.search).get('server');
const c = await connect({ name: 'integrator', server, workerName: 'my-app-chat' });
c.on('message', (m) => { const li = document.createElement('li'); li.textContent = m.text; document.getElementById('log').appendChild(li); });
await c.join('lobby');
window.sent = await c.send('lobby', 'from my own page');
window.tooLong = c.checkText('x'.repeat(c.limits.maxText + 1)).error === ERR.tooLarge;
window.mode = c.modeInfo().mode;
document.body.dataset.ready = '1';
</script>`

// TestOwnPageOtherOrigin: the integration guide of docs/browser.md, as a
// team would do it: its page on its origin, the package's files served by
// it, the chat server elsewhere (--origins allowing the page).
func TestOwnPageOtherOrigin(t *testing.T) {
	files := http.FileServerFS(workerjs.FS())
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/my.html" {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			_, _ = w.Write([]byte(ownPage))
			return
		}
		files.ServeHTTP(w, r)
	}))
	t.Cleanup(app.Close)
	cfg := serverConfig()
	cfg.Origins = []string{app.URL}
	ts := servertest.Start(t, cfg)

	b := newBrowser(t)
	p := b.open(app.URL+"/my.html?server="+ts.URL()+"/", "my app")
	p.waitJS(10*time.Second, "own page shows its message", `[...document.querySelectorAll('#log li')].some(e => e.textContent === 'from my own page')`)
	if !evalJS[bool](p, `window.tooLong && window.mode === 'shared_worker' && window.sent.offset === 1`) {
		t.Fatalf("own page: %v", evalJS[any](p, `({tooLong: window.tooLong, mode: window.mode, sent: window.sent})`))
	}
	waitStats(t, ts, "one shared socket from the other origin", 10*time.Second, func(s mux.Stats) bool {
		return s.PhysicalByMode["shared_worker"] == 1 && s.LogicalSessions == 1
	})
	if got := roomTexts(t, ts.Addr(), "lobby"); len(got) != 1 || got[0] != "from my own page" {
		t.Fatalf("the server has %q", got)
	}
}
