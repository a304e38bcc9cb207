package workerjs_test

import (
	"bytes"
	"context"
	"image/png"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"imload/server/servertest"
)

// TestDocScreenshots takes the screenshots of docs/browser.md at 1280×800:
// the connection panel (this browser apart from the server) and a private
// conversation. They go to testdata/artifacts, and to docs/ with
// IMLOAD_UPDATE_DOCS=1 (go test -run TestDocScreenshots ./worker-js/).
func TestDocScreenshots(t *testing.T) {
	ts := servertest.Start(t, serverConfig())
	carol := dialClient(t, ts.Addr(), "carol", "lobby", "Jay")
	b := newBrowser(t)
	alice := b.open(ts.URL()+"/?name=alice&room=lobby,Jay", "alice")
	bob := b.open(ts.URL()+"/?name=bob&room=lobby", "bob")
	for _, tb := range []*tab{alice, bob} {
		tb.run(10*time.Second, "1280x800", chromedp.EmulateViewport(1280, 800))
	}
	alice.run(5*time.Second, "show lobby", chromedp.Click(chromedp.CSS(`#room-list [data-room=lobby].room-name`)))
	alice.say("Morning! Both my tabs share one WebSocket through the SharedWorker.")
	carol.cmd("send", map[string]any{"room": "lobby", "text": "I'm on another browser: the server counts my socket, this browser does not."})
	bob.say("The panel shows this browser apart from the server's totals.")
	carol.cmd("send", map[string]any{"room": "Jay", "text": "anyone in Jay?"})
	alice.waitTexts("lobby", 10*time.Second, "The panel shows this browser apart from the server's totals.")
	alice.waitJS(10*time.Second, "panel counts", `document.getElementById('phys').textContent === '2' && document.getElementById('b-sockets').textContent === '1' && document.getElementById('tab-count').textContent === '2'`)
	alice.waitJS(10*time.Second, "people listed", `document.querySelectorAll('#people li').length === 3`)
	alice.run(5*time.Second, "panel in view", chromedp.Evaluate[chromedp.Void](`document.querySelector('.side').scrollTop = 1e6`))
	shot(t, alice, "browser-panel.png")

	carol.cmd("dm", map[string]any{"to": "alice", "text": "Hi Alice, can we talk about the release?", "cid": "c1"})
	alice.waitJS(10*time.Second, "conversation listed", `!!document.querySelector('#dm-list [data-peer=carol] .unread')`)
	alice.run(5*time.Second, "open it", chromedp.Click(chromedp.CSS(`#dm-list [data-peer=carol]`)))
	alice.say("Sure. It stays in this conversation, and in IndexedDB after a reload.")
	carol.cmd("dm", map[string]any{"to": "alice", "text": "Great, <b>thanks</b>!", "cid": "c2"})
	alice.waitJS(10*time.Second, "three in the conversation", `document.querySelectorAll('#messages .log[data-dm=carol] .msg').length === 3`)
	alice.run(5*time.Second, "side to the top", chromedp.Evaluate[chromedp.Void](`document.querySelector('.side').scrollTop = 0`))
	shot(t, alice, "browser-dm.png")
}

// shot saves the viewport of tb (1280×800) as file, in testdata/artifacts
// and, with IMLOAD_UPDATE_DOCS=1, in docs/.
func shot(t *testing.T, tb *tab, file string) {
	t.Helper()
	time.Sleep(300 * time.Millisecond) // the last repaint
	ctx, cancel := context.WithTimeout(tb.ctx, 15*time.Second)
	defer cancel()
	buf, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	cfg, err := png.DecodeConfig(bytes.NewReader(buf))
	if err != nil || cfg.Width != 1280 || cfg.Height != 800 {
		t.Fatalf("screenshot %s: %dx%d (%v), want 1280x800", file, cfg.Width, cfg.Height, err)
	}
	dirs := []string{artifactsDir(t)}
	if os.Getenv("IMLOAD_UPDATE_DOCS") == "1" {
		dirs = append(dirs, filepath.Join("..", "docs"))
	}
	for _, d := range dirs {
		if err := os.WriteFile(filepath.Join(d, file), buf, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s", filepath.Join(d, file))
	}
}
