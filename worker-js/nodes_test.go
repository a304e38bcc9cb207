package workerjs_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"imload/loadgen/localserver"
)

// buildImload builds the imload binary for the tests that run it as
// separate processes (a node must die as a process does: kill -9).
func buildImload(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "imload")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/imload")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// startCluster starts redis-server and n imload serve --redis nodes as
// child processes, stopped at the end of the test. Without redis-server
// the test is skipped, or fails under IMLOAD_REQUIRE_REDIS=1.
func startCluster(t *testing.T, n int) *localserver.Cluster {
	t.Helper()
	bin := buildImload(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	logs := t.TempDir()
	c, err := localserver.StartCluster(ctx, localserver.ClusterConfig{
		Nodes: n, Exe: bin,
		Log: func(name string) io.Writer {
			f, err := os.Create(filepath.Join(logs, name+".log"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { f.Close() })
			return f
		},
	})
	if errors.Is(err, localserver.ErrNoRedis) && os.Getenv("IMLOAD_REQUIRE_REDIS") != "1" {
		t.Skipf("no redis-server: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Stop(10 * time.Second); err != nil {
			t.Logf("stopping the cluster: %v", err)
		}
		if t.Failed() {
			for _, name := range []string{"n0", "n1", "redis-server"} {
				if b, err := os.ReadFile(filepath.Join(logs, name+".log")); err == nil {
					t.Logf("%s log:\n%s", name, b)
				}
			}
		}
	})
	return c
}

// Several nodes over Redis, and the node a browser's SharedWorker is on
// dies (kill -9) — the node its page came from, the hardest case: the
// worker asks the other node for the address list (the page's server no
// longer answers), switches to it, and resumes by offset: every message
// sent meanwhile on the other node, and the one typed during the outage,
// shows once, in order, in both tabs, resumed with one join for both.
func TestNodeDeathMovesBrowsers(t *testing.T) {
	c := startCluster(t, 2)
	page, other := c.Nodes[0], c.Nodes[1]
	hostOf := func(s *localserver.Server) string { return strings.TrimPrefix(s.URL, "http://") }
	// A client on the other node first: the page's node has fewer
	// connections, so the address list puts it first and the worker
	// connects there.
	ext := dialClient(t, hostOf(other), "ext", "lobby")
	b := newBrowser(t)
	alice := b.open(page.URL+"/?name=alice&room=lobby", "alice")
	bob := b.open(page.URL+"/?name=bob&room=lobby", "bob")
	alice.say("one")
	// "one" published before "two" is sent: their order in the room is
	// then fixed (alice's page shows "one" first in any case, her echo)
	bob.waitTexts("lobby", 20*time.Second, "one")
	ext.cmd("send", map[string]any{"room": "lobby", "text": "two"})
	bob.waitTexts("lobby", 20*time.Second, "one", "two")
	if got := alice.info(); got.Conn.Addr != page.WS {
		t.Fatalf("the worker is on %s, want the page's node %s", got.Conn.Addr, page.WS)
	}

	if err := c.KillNode(page.WS); err != nil {
		t.Fatal(err)
	}
	alice.waitJS(10*time.Second, "the page sees its node go", `window.imloadApp.client.status.state !== 'open'`)
	alice.say("typed while away") // in the outbox, sent once after the resume
	for i := 1; i <= 3; i++ {
		ext.cmd("send", map[string]any{"room": "lobby", "text": fmt.Sprintf("missed %d", i)})
	}
	all := []string{"one", "two", "missed 1", "missed 2", "missed 3"}
	for _, tb := range []*tab{alice, bob} {
		tb.waitTexts("lobby", 30*time.Second, all...)
		// alice's page shows what she typed where she typed it (its local
		// echo), bob's where the server put it: after the missed ones
		tb.waitTexts("lobby", 10*time.Second, "typed while away")
		tb.waitJS(10*time.Second, "connected again", `document.getElementById('conn').dataset.state === 'open'`)
		assertOnceBy(t, tb, "lobby", append(all, "typed while away"), func(s string) bool { return s == "two" || strings.HasPrefix(s, "missed") })
	}
	bob.waitTexts("lobby", time.Second, append(all, "typed while away")...)
	got := bob.info()
	if got.Conn.Addr != other.WS {
		t.Fatalf("the worker is on %s after the death, want %s", got.Conn.Addr, other.WS)
	}
	if got.Stats.Reconnects < 1 || got.Stats.Resumed < 3 {
		t.Fatalf("want a reconnect that resumed the missed messages by offset; stats %+v", got.Stats)
	}
	// The message typed during the outage was published once: the room's
	// history on the surviving node has it once.
	h := ext.cmd("history", map[string]any{"room": "lobby", "limit": 50})
	body, _ := h["body"].(map[string]any)
	msgs, _ := body["messages"].([]any)
	n := 0
	for _, m := range msgs {
		if mm, _ := m.(map[string]any); mm["text"] == "typed while away" {
			n++
		}
	}
	if n != 1 || len(msgs) != len(all)+1 {
		t.Fatalf("history holds %d messages, %d of them the one typed away; want %d and 1", len(msgs), n, len(all))
	}
}
