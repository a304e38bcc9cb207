package redis

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"imload/server/engine"
	"imload/server/engine/enginetest"
	"imload/server/redistest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(redistest.WithShared(m)) }

// testLogger logs to the test with -v.
func testLogger(t testing.TB) *slog.Logger {
	if !testing.Verbose() {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// newTestEngine makes an engine for node on db, not started.
func newTestEngine(t testing.TB, url, prefix, node string, tune func(*Options)) *Engine {
	t.Helper()
	opts := Options{URL: url, Prefix: prefix, Node: node, Logger: testLogger(t)}
	if tune != nil {
		tune(&opts)
	}
	e, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// The engine contract, on a database of the package's redis-server.
func TestConformance(t *testing.T) {
	enginetest.Run(t, enginetest.Traits{}, func(t *testing.T, cfg enginetest.Config) engine.Engine {
		db := redistest.Shared(t).DB(t)
		return newTestEngine(t, db.URL, db.Prefix, "node-a", func(o *Options) {
			o.HistoryMax = cfg.HistoryMax
			o.NameGrace = cfg.NameGrace
			o.MaxReservedNames = cfg.MaxReservedNames
			o.DMInRate = cfg.DMInRate
			o.DMInBurst = cfg.DMInBurst
			o.DMHistoryMax = cfg.DMHistoryMax
			o.DMHistoryAge = cfg.DMHistoryAge
			o.DMMaxConversations = cfg.DMMaxConversations
		})
	})
}

// startEngine starts e with sink and closes it when the test ends.
func startEngine(t testing.TB, e *Engine, sink engine.Sink) {
	t.Helper()
	if err := e.Start(context.Background(), sink); err != nil {
		e.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
}

var _ = time.Second

// Every script loads with its includes in place: no include line is left,
// and the shared code is in each script that names it.
func TestScriptsIncludes(t *testing.T) {
	s, err := loadScripts()
	if err != nil {
		t.Fatal(err)
	}
	for _, sc := range s.all {
		if strings.Contains(sc.src, "-- include:") {
			t.Errorf("%s: an include line is left", sc.name)
		}
	}
	for _, sc := range []*script{s.dmDeliver, s.dmS} {
		if !strings.Contains(sc.src, "local function put(") {
			t.Errorf("%s: conv_list not included", sc.name)
		}
	}
	for _, sc := range []*script{s.dm, s.dmCheck} {
		if !strings.Contains(sc.src, "local function gate(") {
			t.Errorf("%s: dm_gate not included", sc.name)
		}
	}
	for _, sc := range []*script{s.dmAppend, s.dmRead} {
		if !strings.Contains(sc.src, "local function expire(") {
			t.Errorf("%s: dm_expire not included", sc.name)
		}
	}
	if _, err := readScript("no_such_script"); err == nil {
		t.Error("a missing script read without an error")
	}
}
