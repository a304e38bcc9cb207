package workerjs_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/gorilla/websocket"

	"imload/mux"
	"imload/server"
	"imload/server/servertest"
)

// findBrowser returns the Chromium to drive. Without one the browser tests
// skip loudly, or fail when IMLOAD_REQUIRE_BROWSER=1 (as .ci/run sets).
func findBrowser(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if _, err := os.Stat("/usr/bin/chromium"); err == nil {
		return "/usr/bin/chromium"
	}
	msg := "NO BROWSER: install Chromium (apt-get install -y chromium) to run the real-browser tests of worker-js"
	if os.Getenv("IMLOAD_REQUIRE_BROWSER") == "1" {
		t.Fatal(msg + " (IMLOAD_REQUIRE_BROWSER=1)")
	}
	fmt.Fprintln(os.Stderr, "\n!!!!!!!! "+msg+" !!!!!!!!")
	t.Skip(msg)
	return ""
}

// serverConfig is the configuration of the servers these tests run:
// servertest.Config (the memory store, the reader IMLOAD_TEST_READER
// names), with goaway retry hints of 300-600 ms and 5 s to shut down.
func serverConfig() server.Config {
	cfg := servertest.Config()
	cfg.GoAwayRetryMin = 300 * time.Millisecond
	cfg.GoAwayRetryMax = 600 * time.Millisecond
	cfg.ShutdownTimeout = 5 * time.Second
	return cfg
}

// waitStats polls the server's counters until ok says yes.
func waitStats(t *testing.T, ts *servertest.Server, what string, timeout time.Duration, ok func(mux.Stats) bool) mux.Stats {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st := ts.Server.Stats()
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached in %v; stats: physical=%d logical=%d by_mode=%v", what, timeout, st.PhysicalConnections, st.LogicalSessions, st.PhysicalByMode)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// browser is one headless Chromium with one browser context: its tabs
// share SharedWorkers, Web Locks, BroadcastChannels and IndexedDB.
type browser struct {
	t     *testing.T
	ctx   context.Context // the first tab; new tabs are made from it
	close func()
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	exe := findBrowser(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1280, 820),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(allocCtx)
	if err := chromedp.Do(ctx); err != nil { // start the browser
		cancelCtx()
		cancelAlloc()
		t.Fatalf("start %s: %v", exe, err)
	}
	b := &browser{t: t, ctx: ctx}
	var once sync.Once
	b.close = func() {
		once.Do(func() {
			cancelCtx()
			cancelAlloc()
		})
	}
	t.Cleanup(b.close)
	return b
}

// tab is one page of the browser.
type tab struct {
	t      *testing.T
	ctx    context.Context
	cancel context.CancelFunc
	name   string
	mu     sync.Mutex
	logs   []string
	dialog bool
}

// open makes a new tab showing url and waits until the page is ready (it
// has its session and joined the rooms of its URL).
func (b *browser) open(url, name string) *tab {
	b.t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx)
	tb := &tab{t: b.t, ctx: ctx, cancel: cancel, name: name}
	if err := chromedp.Do(ctx); err != nil { // open the tab
		b.t.Fatalf("new tab: %v", err)
	}
	err := chromedp.Listen(ctx, func(ev any) {
		switch e := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			var parts []string
			for _, a := range e.Args {
				if len(a.Value) > 0 {
					parts = append(parts, strings.Trim(string(a.Value), `"`))
				} else {
					parts = append(parts, a.Description)
				}
			}
			tb.log(string(e.Type) + ": " + strings.Join(parts, " "))
		case *runtime.EventExceptionThrown:
			tb.log("exception: " + e.ExceptionDetails.Text + " " + exceptionText(e.ExceptionDetails))
		case *page.EventJavascriptDialogOpening:
			tb.mu.Lock()
			tb.dialog = true
			tb.mu.Unlock()
			go chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
		}
	})
	if err != nil {
		b.t.Fatalf("listen: %v", err)
	}
	b.t.Cleanup(cancel)
	tb.run(20*time.Second, "open "+url, chromedp.Navigate(url))
	tb.waitJS(20*time.Second, "page ready", `document.body.dataset.ready === '1'`)
	return tb
}

func (tb *tab) dumpLogs() string {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return strings.Join(tb.logs, "\n")
}

func (tb *tab) log(line string) {
	tb.mu.Lock()
	tb.logs = append(tb.logs, line)
	tb.mu.Unlock()
}

func exceptionText(d *runtime.ExceptionDetails) string {
	if d != nil && d.Exception != nil {
		return d.Exception.Description
	}
	return ""
}

// run runs actions with a timeout; it fails the test on error.
func (tb *tab) run(timeout time.Duration, what string, actions ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, timeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		tb.t.Fatalf("%s: %s: %v\nconsole:\n%s", tb.name, what, err, tb.dumpLogs())
	}
}

// evalJS evaluates a JS expression (awaiting promises) into a T.
func evalJS[T any](tb *tab, expr string) T {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		tb.t.Fatalf("%s: eval %s: %v\nconsole:\n%s", tb.name, expr, err, tb.dumpLogs())
	}
	return v
}

// waitJS polls a JS condition until it is true.
func (tb *tab) waitJS(timeout time.Duration, what, cond string) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, timeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`!!(`+cond+`)`))
		if err == nil && ok {
			return
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			tb.t.Fatalf("%s: %s: not true within %v (%s; last error %v)\nconsole:\n%s", tb.name, what, timeout, cond, last, tb.dumpLogs())
		case <-tick.C:
		}
	}
}

// say types text into the composer and presses Enter.
func (tb *tab) say(text string) {
	tb.t.Helper()
	tb.run(10*time.Second, "type "+text,
		chromedp.WaitVisible(chromedp.ID("input")),
		chromedp.Evaluate[chromedp.Void](`document.getElementById('input').value = ''`),
		chromedp.SendKeys(chromedp.ID("input"), text+"\r"),
	)
}

// texts returns the texts of the messages shown for room, in page order.
func (tb *tab) texts(room string) []string {
	tb.t.Helper()
	return evalJS[[]string](tb, fmt.Sprintf(`[...document.querySelectorAll('#messages .log[data-room=%q] .msg:not(.dm) .bubble')].map(e => e.textContent)`, room))
}

// waitTexts waits until room shows want (in order) somewhere in its list.
func (tb *tab) waitTexts(room string, timeout time.Duration, want ...string) {
	tb.t.Helper()
	js, _ := json.Marshal(want)
	tb.waitJS(timeout, fmt.Sprintf("shows %v in %s", want, room), fmt.Sprintf(`(() => {
		const got = [...document.querySelectorAll('#messages .log[data-room=%q] .msg:not(.dm) .bubble')].map(e => e.textContent);
		const want = %s; let i = 0;
		for (const g of got) if (g === want[i]) i++;
		return i === want.length;
	})()`, room, js))
}

func (tb *tab) close() {
	tb.cancel()
}

// hubInfo returns the counters of the hub this tab talks to.
type hubInfo struct {
	Hub  string `json:"hub"`
	Mode string `json:"mode"`
	Conn struct {
		Addr string `json:"addr"` // the address of its socket's server
	} `json:"conn"`
	Stats struct {
		MsgsFromServer  int `json:"msgsFromServer"`
		MsgsFromCache   int `json:"msgsFromCache"`
		Reconnects      int `json:"reconnects"`
		Reattaches      int `json:"reattaches"`
		Resumed         int `json:"resumed"`
		LastJoinFetched int `json:"lastJoinFetched"`
		LastJoinCached  int `json:"lastJoinCached"`
	} `json:"stats"`
	Tabs []struct {
		Sid  int    `json:"sid"`
		User string `json:"user"`
	} `json:"tabs"`
}

func (tb *tab) info() hubInfo {
	tb.t.Helper()
	return evalJS[hubInfo](tb, `window.imloadApp.client.info()`)
}

// wsClient is a plain protocol client (not a browser): another user.
type wsClient struct {
	t    *testing.T
	conn *websocket.Conn
	mu   sync.Mutex
	seq  uint64
	rd   chan map[string]any
	// token is the name's token from the attach reply
	token string
}

func dialClient(t *testing.T, addr, name string, rooms ...string) *wsClient {
	t.Helper()
	return dialClientToken(t, addr, name, "", rooms...)
}

// dialClientToken is dialClient with the name's token (to take back a name
// reserved to it); wc.token is the token the server gave.
func dialClientToken(t *testing.T, addr, name, token string, rooms ...string) *wsClient {
	t.Helper()
	att := map[string]any{"name": name, "mode": "loadgen"}
	if token != "" {
		att["token"] = token
	}
	return dialAttach(t, addr, att, rooms...)
}

// dialAttach is a plain client whose session 1 attaches with body (a
// name, or a jwt with --auth jwt) and joins rooms.
func dialAttach(t *testing.T, addr string, body map[string]any, rooms ...string) *wsClient {
	t.Helper()
	c, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	wc := &wsClient{t: t, conn: c, rd: make(chan map[string]any, 1024)}
	go func() {
		defer close(wc.rd)
		for {
			_, data, err := c.ReadMessage()
			if err != nil {
				return
			}
			sc := bufio.NewScanner(strings.NewReader(string(data)))
			sc.Buffer(make([]byte, 0, 1<<16), 1<<20)
			for sc.Scan() {
				var f map[string]any
				if json.Unmarshal(sc.Bytes(), &f) == nil {
					select {
					case wc.rd <- f:
					default:
					}
				}
			}
		}
	}()
	t.Cleanup(wc.close)
	r := wc.cmd("attach", body)
	if body, ok := r["body"].(map[string]any); ok {
		wc.token, _ = body["token"].(string)
	}
	for _, r := range rooms {
		wc.cmd("join", map[string]any{"room": r})
	}
	return wc
}

// cmd sends a command of session 1 and waits for its reply; it fails the
// test on error (call it from the test goroutine only).
func (wc *wsClient) cmd(name string, body any) map[string]any {
	wc.t.Helper()
	r, err := wc.do(name, body)
	if err != nil {
		wc.t.Fatal(err)
	}
	return r
}

// do sends a command of session 1 and waits for its reply (any goroutine).
func (wc *wsClient) do(name string, body any) (map[string]any, error) {
	wc.mu.Lock()
	wc.seq++
	seq := wc.seq
	b, _ := json.Marshal(map[string]any{"t": "cmd", "sid": 1, "seq": seq, "cmd": name, "body": body})
	err := wc.conn.WriteMessage(websocket.TextMessage, b)
	wc.mu.Unlock()
	if err != nil {
		return nil, err
	}
	timeout := time.After(5 * time.Second)
	for {
		select {
		case f, ok := <-wc.rd:
			if !ok {
				return nil, fmt.Errorf("%s: connection closed", name)
			}
			if f["t"] == "reply" && f["seq"] == float64(seq) {
				if f["code"] != float64(200) {
					return nil, fmt.Errorf("%s: %v", name, f)
				}
				return f, nil
			}
		case <-timeout:
			return nil, fmt.Errorf("%s: no reply", name)
		}
	}
}

func (wc *wsClient) close() { wc.conn.Close() }

// historyTexts reads the texts of room's retained messages (at most 500),
// oldest first, with a history command of session 1.
func (wc *wsClient) historyTexts(room string) []string {
	r := wc.cmd("history", map[string]any{"room": room, "limit": 500})
	body, _ := r["body"].(map[string]any)
	msgs, _ := body["messages"].([]any)
	var out []string
	for _, m := range msgs {
		if mm, ok := m.(map[string]any); ok {
			s, _ := mm["text"].(string)
			out = append(out, s)
		}
	}
	return out
}

func artifactsDir(t *testing.T) string {
	dir := filepath.Join("testdata", "artifacts")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func screenshot(t *testing.T, tb *tab, file string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 15*time.Second)
	defer cancel()
	buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	path := filepath.Join(artifactsDir(t), file)
	if err = os.WriteFile(path, buf, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}
