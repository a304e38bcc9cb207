package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"imload/mux"
)

// buildImload builds the imload binary into a temporary directory.
func buildImload(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "imload")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// serveProc is an `imload serve` child process.
type serveProc struct {
	cmd    *exec.Cmd
	addr   string // host:port
	exited chan error
	stderr *strings.Builder
}

// startServe starts `imload serve` with args and waits for its first line.
func startServe(t *testing.T, bin string, args ...string) *serveProc {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"serve"}, args...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &serveProc{cmd: cmd, exited: make(chan error, 1), stderr: &strings.Builder{}}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exited <- cmd.Wait() }()
	t.Cleanup(func() { p.kill() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "listening on http://") {
		p.kill()
		t.Fatalf("first line %q, %v; stderr: %s", line, err, p.stderr.String())
	}
	p.addr = strings.TrimSpace(strings.TrimPrefix(line, "listening on http://"))
	return p
}

// kill sends SIGKILL and waits for the process to end (idempotent).
func (p *serveProc) kill() {
	if p.cmd.ProcessState != nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
	p.exited <- nil
}

// crashClient is a minimal protocol client over one WebSocket: one
// session, commands sent one at a time.
type crashClient struct {
	ws  *websocket.Conn
	seq uint64
	// pushes of room messages seen, by "room/epoch/offset"
	pushes map[string]string
}

func dialCrash(addr, name string) (*crashClient, error) {
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/ws", nil)
	if err != nil {
		return nil, err
	}
	c := &crashClient{ws: ws, pushes: make(map[string]string)}
	if _, err := c.cmd(mux.CmdAttach, mux.AttachReq{Name: name, Mode: mux.ModeLoadgen}); err != nil {
		ws.Close()
		return nil, err
	}
	return c, nil
}

// cmd sends a command of session 1 and returns its reply, noting every
// room message pushed meanwhile.
func (c *crashClient) cmd(name string, body any) (mux.Frame, error) {
	c.seq++
	seq := c.seq
	if err := c.ws.WriteMessage(websocket.TextMessage, mux.AppendCmd(nil, 1, seq, name, mux.EncodeBody(body))); err != nil {
		return mux.Frame{}, err
	}
	_ = c.ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, msg, err := c.ws.ReadMessage()
		if err != nil {
			return mux.Frame{}, err
		}
		var reply *mux.Frame
		err = mux.SplitMessage(msg, mux.Limits{}, func(b []byte) error {
			f, err := mux.DecodeServerFrame(b)
			if err != nil {
				return err
			}
			switch {
			case f.T == mux.TypePush && f.Ev == mux.EvMsg:
				var m mux.Message
				if err := json.Unmarshal(f.Body, &m); err != nil {
					return err
				}
				c.pushes[fmt.Sprintf("%s/%s/%d", m.Room, m.Epoch, m.Offset)] = m.From + ":" + m.Text
			case f.T == mux.TypeReply && f.Seq == seq:
				reply = &f
			}
			return nil
		})
		if err != nil {
			return mux.Frame{}, err
		}
		if reply != nil {
			if reply.Code != mux.CodeOK {
				return *reply, fmt.Errorf("%s: %d %s %s", name, reply.Code, reply.Err, reply.Msg)
			}
			return *reply, nil
		}
	}
}

// TestServeCrashKeepsAcknowledged sends from several connections as fast as
// replies come back, kills the server with SIGKILL mid-stream, restarts it
// on the same address and data directory, and checks the promise of the
// durable mode: every acknowledged message and every message pushed to
// anyone before the crash is in the history afterwards, in the same epoch,
// at the same offset, with the same text; and new messages after the
// restart never reuse an offset someone has seen.
func TestServeCrashKeepsAcknowledged(t *testing.T) {
	bin := buildImload(t)
	t.Run("durable", func(t *testing.T) { crashRun(t, bin, "durable") })
	t.Run("process", func(t *testing.T) { crashRun(t, bin, "process") }) // the same machine: nothing lost
	t.Run("relaxed", func(t *testing.T) { crashRun(t, bin, "relaxed") })
}

// crashRun is TestServeCrashKeepsAcknowledged with one --durability. A
// relaxed server may lose its newest messages, so the restart must give
// every room a new epoch instead.
func crashRun(t *testing.T, bin, durability string) {
	data := t.TempDir()
	args := []string{"--data", data, "--durability", durability, "--rate-limit", "100000", "--rate-burst", "100000", "--conn-rate", "100000", "--conn-burst", "100000", "--history-max", "100000"}
	srv := startServe(t, bin, append([]string{"--addr", "127.0.0.1:0"}, args...)...)
	addr := srv.addr

	const senders, rooms = 8, 4
	type acked struct {
		room, epoch, text string
		offset            uint64
	}
	var (
		mu     sync.Mutex
		acks   []acked
		pushed = make(map[string]string)
		wg     sync.WaitGroup
	)
	for i := range senders {
		c, err := dialCrash(addr, fmt.Sprint("sender", i))
		if err != nil {
			t.Fatal(err)
		}
		room := fmt.Sprint("crash", i%rooms)
		if _, err := c.cmd(mux.CmdJoin, mux.JoinReq{Room: room}); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.ws.Close()
			for n := 0; ; n++ {
				text := fmt.Sprintf("sender%d-%d", i, n)
				f, err := c.cmd(mux.CmdSend, mux.SendReq{Room: room, Text: text, CID: text})
				if err != nil {
					break // the server is gone
				}
				var r mux.SendResp
				if err := json.Unmarshal(f.Body, &r); err != nil || r.Epoch == "" || r.Offset == 0 {
					t.Errorf("send reply %s: %+v %v", f.Body, r, err)
					break
				}
				mu.Lock()
				acks = append(acks, acked{room, r.Epoch, fmt.Sprintf("sender%d:%s", i, text), r.Offset})
				mu.Unlock()
			}
			mu.Lock()
			for k, v := range c.pushes {
				pushed[k] = v
			}
			mu.Unlock()
		}()
	}
	time.Sleep(1500 * time.Millisecond)
	srv.kill()
	wg.Wait()
	if len(acks) < 100 {
		t.Fatalf("only %d sends acknowledged before the crash; stderr: %s", len(acks), srv.stderr.String())
	}

	srv2 := startServe(t, bin, append([]string{"--addr", addr}, args...)...)
	c, err := dialCrash(srv2.addr, "checker")
	if err != nil {
		t.Fatal(err)
	}
	defer c.ws.Close()
	// The history of every room after the restart, by "room/epoch/offset".
	stored := make(map[string]string)
	epochs := make(map[string]string)
	tops := make(map[string]uint64)
	for r := range rooms {
		room := fmt.Sprint("crash", r)
		var after uint64
		for {
			f, err := c.cmd(mux.CmdHistory, mux.HistoryReq{Room: room, After: after, Epoch: epochs[room], Limit: 500})
			if err != nil {
				t.Fatal(err)
			}
			var h mux.HistoryResp
			if err := json.Unmarshal(f.Body, &h); err != nil {
				t.Fatal(err)
			}
			if after == 0 && epochs[room] == "" {
				// First page: ask again from the start in the room's epoch.
				epochs[room], tops[room] = h.Epoch, h.Top
				if h.First > 1 {
					after = h.First - 1
				}
				continue
			}
			for _, m := range h.Messages {
				stored[fmt.Sprintf("%s/%s/%d", room, h.Epoch, m.Offset)] = m.From + ":" + m.Text
				after = m.Offset
			}
			if !h.More || len(h.Messages) == 0 {
				break
			}
		}
	}
	if durability == "relaxed" {
		for _, a := range acks {
			if epochs[a.room] == a.epoch {
				t.Fatalf("room %s kept its epoch %s through an unclean stop of a relaxed server", a.room, a.epoch)
			}
		}
		t.Logf("%d acknowledged before the crash; every room has a new epoch after it", len(acks))
		return
	}
	if len(pushed) == 0 {
		t.Fatal("no push seen before the crash: the pushed messages are not checked")
	}
	lost := 0
	for _, a := range acks {
		key := fmt.Sprintf("%s/%s/%d", a.room, a.epoch, a.offset)
		if epochs[a.room] != a.epoch {
			t.Errorf("room %s: epoch %s after the restart, %s before: a durable server keeps it", a.room, epochs[a.room], a.epoch)
			continue
		}
		if got, ok := stored[key]; !ok || got != a.text {
			lost++
			if lost <= 5 {
				t.Errorf("acknowledged %s = %q, after the restart %q (present %v)", key, a.text, got, ok)
			}
		}
	}
	for key, text := range pushed {
		if got, ok := stored[key]; !ok || got != text {
			t.Errorf("pushed before the crash %s = %q, after the restart %q (present %v)", key, text, got, ok)
		}
	}
	if lost > 0 {
		t.Errorf("%d of %d acknowledged messages lost or changed", lost, len(acks))
	}
	// New messages take offsets nobody has seen under the same epoch.
	for r := range rooms {
		room := fmt.Sprint("crash", r)
		if _, err := c.cmd(mux.CmdJoin, mux.JoinReq{Room: room}); err != nil {
			t.Fatal(err)
		}
		f, err := c.cmd(mux.CmdSend, mux.SendReq{Room: room, Text: "after the crash"})
		if err != nil {
			t.Fatal(err)
		}
		var s mux.SendResp
		if err := json.Unmarshal(f.Body, &s); err != nil || s.Epoch == "" || s.Offset == 0 {
			t.Fatalf("send after the restart: reply %s: %+v %v", f.Body, s, err)
		}
		key := fmt.Sprintf("%s/%s/%d", room, s.Epoch, s.Offset)
		if text, seen := pushed[key]; seen {
			t.Errorf("offset %s, seen before the crash as %q, given to a new message", key, text)
		}
		for _, a := range acks {
			if a.room == room && a.epoch == s.Epoch && a.offset == s.Offset {
				t.Errorf("offset %s, acknowledged before the crash as %q, given to a new message", key, a.text)
			}
		}
	}
	t.Logf("%d acknowledged, %d pushed before the crash; tops after the restart %v", len(acks), len(pushed), tops)
}
