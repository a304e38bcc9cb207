package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"imload/mux"
	"imload/reports"
)

// TestAuthCommands runs the binary: imload token mints a token that
// imload serve --auth jwt accepts; --admin-addr and --api-addr serve their
// endpoints; imload run --jwt-hmac-secret-file drives a local server with
// --auth jwt and refreshes tokens under load.
func TestAuthCommands(t *testing.T) {
	bin := buildImload(t)
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret.txt")
	apiKey := filepath.Join(dir, "api-key.txt")
	if err := os.WriteFile(secret, []byte("a secret of more than thirty-two bytes\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(apiKey, []byte("an API key for the test\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Run("token and serve", func(t *testing.T) {
		out, err := exec.Command(bin, "token", "--secret-file", secret, "--sub", "alice", "--ttl", "10m", "--rooms", "lobby,team-*").Output()
		if err != nil {
			t.Fatalf("imload token: %v", err)
		}
		token := strings.TrimSpace(string(out))
		if strings.Count(token, ".") != 2 {
			t.Fatalf("token %q", token)
		}
		if err := exec.Command(bin, "token", "--secret-file", secret, "--sub", "a b").Run(); err == nil {
			t.Fatal("imload token accepted an invalid --sub")
		}
		cmd := exec.Command(bin, "serve", "--memory", "--addr", "127.0.0.1:0", "--auth", "jwt", "--jwt-hmac-secret-file", secret,
			"--admin-addr", "127.0.0.1:0", "--api-addr", "127.0.0.1:0", "--api-key-file", apiKey)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { cmd.Process.Kill(); cmd.Wait() }()
		br := bufio.NewReader(stdout)
		addrs := map[string]string{}
		for range 3 {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("%v; stderr: %s", err, stderr.String())
			}
			what, url, _ := strings.Cut(strings.TrimSpace(line), " on ")
			addrs[what] = url
		}
		pub, adm, api := addrs["listening"], addrs["admin"], addrs["api"]
		if pub == "" || adm == "" || api == "" {
			t.Fatalf("addresses %v", addrs)
		}
		ws, _, err := websocket.DefaultDialer.Dial(strings.Replace(pub, "http", "ws", 1)+"/ws", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer ws.Close()
		ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		ws.ReadMessage() // hello
		reply := func(seq uint64, cmd string, body any) mux.Frame {
			t.Helper()
			ws.WriteMessage(websocket.TextMessage, mux.AppendCmd(nil, 1, seq, cmd, mux.EncodeBody(body)))
			for {
				_, msg, err := ws.ReadMessage()
				if err != nil {
					t.Fatal(err)
				}
				f, err := mux.DecodeServerFrame(bytes.TrimSpace(msg))
				if err == nil && f.T == mux.TypeReply && f.Seq == seq {
					return f
				}
			}
		}
		if f := reply(1, mux.CmdAttach, mux.AttachReq{JWT: token}); f.Code != 200 || !strings.Contains(string(f.Body), `"user":"alice"`) {
			t.Fatalf("attach with imload token's token: %d %s %s", f.Code, f.Err, f.Body)
		}
		if f := reply(2, mux.CmdJoin, mux.JoinReq{Room: "kitchen"}); f.Code != 403 || f.Err != mux.ErrForbidden {
			t.Fatalf("join outside --rooms: %d %s", f.Code, f.Err)
		}
		if f := reply(3, mux.CmdJoin, mux.JoinReq{Room: "team-a"}); f.Code != 200 {
			t.Fatalf("join team-a: %d %s", f.Code, f.Err)
		}
		for url, want := range map[string]int{pub + "/metrics": 404, pub + "/stats": 404, adm + "/metrics": 200, adm + "/stats": 200, pub + "/healthz": 200} {
			resp, err := http.Get(url)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != want {
				t.Errorf("GET %s: %d, want %d", url, resp.StatusCode, want)
			}
		}
		key, _ := os.ReadFile(apiKey)
		req, _ := http.NewRequest(http.MethodPost, api+"/api/publish", strings.NewReader(`{"room":"team-a","text":"from the backend"}`))
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(key)))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var pr mux.SendResp
		json.NewDecoder(resp.Body).Decode(&pr)
		resp.Body.Close()
		if resp.StatusCode != 200 || pr.Offset != 1 {
			t.Fatalf("API publish: %d %+v", resp.StatusCode, pr)
		}
	})
	t.Run("run", func(t *testing.T) {
		out := filepath.Join(dir, "out")
		cmd := exec.Command(bin, "run", "--clients", "30", "--tabs", "2", "--rooms", "3", "--rate", "2", "--mode", "shared",
			"--duration", "4s", "--ramp", "500ms", "--drain", "5s", "--out", out, "--no-progress",
			"--jwt-hmac-secret-file", secret, "--jwt-ttl", "3s")
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("imload run: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
		}
		res, err := reports.Load(filepath.Join(out, reports.FileResult))
		if err != nil {
			t.Fatal(err)
		}
		n := res.Runs[0].Notes
		if !res.Verdict.Pass || n[reports.NoteTokenRefreshes] < 60 || res.Runs[0].Counters.Errors[reports.ErrorDetached] != 0 {
			t.Fatalf("verdict %v, notes %v, errors %v", res.Verdict, n, res.Runs[0].Counters.Errors)
		}
	})
}
