package reports

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// findBrowser returns the path of a Chromium-like browser, or "".
func findBrowser() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	for _, p := range []string{"/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// requireBrowser returns the browser path, or skips the test loudly; with
// IMLOAD_REQUIRE_BROWSER=1 a missing browser fails the test instead.
func requireBrowser(t *testing.T) string {
	t.Helper()
	if p := findBrowser(); p != "" {
		return p
	}
	msg := "no Chromium found (looked for chromium, chromium-browser, google-chrome on PATH and /usr/bin/chromium): install it with `apt-get install -y chromium`"
	if os.Getenv("IMLOAD_REQUIRE_BROWSER") == "1" {
		t.Fatal("IMLOAD_REQUIRE_BROWSER=1 but " + msg)
	}
	banner := strings.Repeat("!", 78)
	fmt.Fprintf(os.Stderr, "\n%s\n!!! SKIPPING the browser test of report.html: %s\n%s\n\n", banner, msg, banner)
	t.Skip(msg)
	return ""
}

// newBrowser starts headless Chromium for the test (or skips, see
// requireBrowser) and returns its allocator context.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	browser := requireBrowser(t)
	if testing.Short() {
		t.Skip("browser test skipped in -short mode")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(browser),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
	}
	ctx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	return ctx
}

// pageVisit is what a browser saw while it showed a page.
type pageVisit struct {
	requests []string // requests to anything but file://
	problems []string // console errors and warnings, exceptions, error logs
}

// visit opens a browser tab, lets fn drive it, and returns the non-file
// requests and console problems seen meanwhile.
func visit(t *testing.T, allocCtx context.Context, fn func(ctx context.Context)) pageVisit {
	t.Helper()
	ctx, cancel := chromedp.NewContext(allocCtx)
	defer cancel()
	var mu sync.Mutex
	var v pageVisit
	if err := chromedp.Listen(ctx, func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch ev := ev.(type) {
		case *network.EventRequestWillBeSent:
			if !strings.HasPrefix(ev.Request.URL, "file://") {
				v.requests = append(v.requests, ev.Request.URL)
			}
		case *runtime.EventConsoleAPICalled:
			switch ev.Type {
			case runtime.ConsoleAPICalledTypeError, runtime.ConsoleAPICalledTypeWarning, runtime.ConsoleAPICalledTypeAssert:
				v.problems = append(v.problems, fmt.Sprintf("console.%s", ev.Type))
			}
		case *runtime.EventExceptionThrown:
			v.problems = append(v.problems, "exception: "+ev.ExceptionDetails.Text)
		case *log.EventEntryAdded:
			if ev.Entry.Level == log.EntryLevelError || ev.Entry.Level == log.EntryLevelWarning {
				v.problems = append(v.problems, fmt.Sprintf("log %s (%s): %s %s", ev.Entry.Level, ev.Entry.Source, ev.Entry.Text, ev.Entry.URL))
			}
		}
	}); err != nil {
		t.Fatalf("start browser: %v", err)
	}
	tctx, tcancel := context.WithTimeout(ctx, 60*time.Second)
	defer tcancel()
	fn(tctx)
	// Let late events (a favicon, a failed load) arrive before judging.
	if err := chromedp.Do(tctx, chromedp.Sleep(300*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	return pageVisit{requests: slices.Clone(v.requests), problems: slices.Clone(v.problems)}
}

// TestReportInBrowser opens report.html from disk in headless Chromium and
// checks that it renders with no network request and no console error, that
// it fits a phone's width, and saves screenshots under testdata/artifacts/.
func TestReportInBrowser(t *testing.T) {
	allocCtx := newBrowser(t)
	artifacts, err := filepath.Abs(filepath.Join("testdata", "artifacts"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(artifacts, 0o755); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		make  func(t *testing.T) *Result
		badge string // the verdict the page must show
	}{
		{"report", func(t *testing.T) *Result { r, _ := makeResult(t, fixture{seed: 1}); return r }, "PASS"},
		{"report-fail", func(t *testing.T) *Result {
			r, _ := makeResult(t, fixture{seed: 2, lost: 12, modes: []string{ModePerTab}})
			return r
		}, "FAIL"},
		{"report-nodes", func(t *testing.T) *Result { r, _ := makeResult(t, fixture{seed: 1, nodes: 3}); return r }, "PASS"},
		{"report-socketio", func(t *testing.T) *Result {
			r, _ := makeResult(t, fixture{seed: 3, modes: []string{ModePerTab}, protocol: ProtocolSocketIO})
			return r
		}, "PASS"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			r := c.make(t)
			if err := r.Save(filepath.Join(dir, FileResult)); err != nil {
				t.Fatal(err)
			}
			if err := WriteAll(dir, r); err != nil {
				t.Fatal(err)
			}
			url := "file://" + filepath.Join(dir, FileReportHTML)
			wantBadge := c.badge

			v := visit(t, allocCtx, func(ctx context.Context) {
				for _, view := range []struct {
					width  int64
					mobile bool
					file   string
				}{{1200, false, c.name + "-desktop.png"}, {390, true, c.name + "-phone.png"}} {
					vopts := []chromedp.EmulateViewportOption{}
					if view.mobile {
						vopts = append(vopts, chromedp.EmulateScale(2), chromedp.EmulateMobile, chromedp.EmulatePortrait)
					}
					if err := chromedp.Do(ctx,
						chromedp.EmulateViewport(view.width, 900, vopts...),
						chromedp.Navigate(url),
						chromedp.WaitVisible(chromedp.CSS("svg.chart")),
					); err != nil {
						t.Fatalf("load %s: %v", url, err)
					}
					png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
					if err != nil {
						t.Fatalf("screenshot: %v", err)
					}
					path := filepath.Join(artifacts, view.file)
					if err := os.WriteFile(path, png, 0o644); err != nil {
						t.Fatal(err)
					}
					t.Logf("screenshot: %s", path)

					// Nothing may overflow the width of the screen (wide
					// tables scroll inside their own box).
					overflow, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.documentElement.scrollWidth - window.innerWidth`))
					if err != nil {
						t.Fatal(err)
					}
					if overflow > 0 {
						t.Errorf("at %d px wide the page is %d px too wide", view.width, overflow)
					}
				}

				type page struct {
					Badge  string `json:"badge"`
					Charts int    `json:"charts"`
					Tables int    `json:"tables"`
					Title  string `json:"title"`
				}
				got, err := chromedp.Run(ctx, chromedp.Evaluate[page](`({
					badge: document.querySelector('.badge').textContent,
					charts: document.querySelectorAll('svg.chart').length,
					tables: document.querySelectorAll('table').length,
					title: document.title,
				})`))
				if err != nil {
					t.Fatal(err)
				}
				if got.Badge != wantBadge || got.Charts < 5 || got.Tables < 4 || !strings.Contains(got.Title, wantBadge) {
					t.Errorf("rendered page: %+v (want badge %s, 5+ charts, 4+ tables)", got, wantBadge)
				}
			})
			if len(v.requests) > 0 {
				t.Errorf("report.html made %d network requests; it must be self-contained: %v", len(v.requests), v.requests)
			}
			if len(v.problems) > 0 {
				t.Errorf("console errors: %v", v.problems)
			}
		})
	}
}

// TestBrowserCheckDetects makes sure the checks above would see a network
// request and a console error: a page that has both must be caught.
func TestBrowserCheckDetects(t *testing.T) {
	allocCtx := newBrowser(t)
	path := filepath.Join(t.TempDir(), "bad.html")
	bad := `<!DOCTYPE html><html><head><link rel="icon" href="data:,"></head><body>` +
		`<img src="http://127.0.0.1:1/pixel.png"><script>console.error("boom")</script></body></html>`
	if err := os.WriteFile(path, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	v := visit(t, allocCtx, func(ctx context.Context) {
		if err := chromedp.Do(ctx, chromedp.Navigate("file://"+path)); err != nil {
			t.Fatal(err)
		}
	})
	if len(v.requests) == 0 {
		t.Error("the http request of the bad page was not seen")
	}
	if !slices.Contains(v.problems, "console.error") {
		t.Errorf("console.error not seen: %v", v.problems)
	}
}
