package wire

import (
	"fmt"
	"io"
	"strings"
)

// What the wires' tests share: a connection fed with the server's messages,
// and events as text.

// fakeConn is a Conn that returns the messages in, one per Read (then
// io.EOF), and records what is written.
type fakeConn struct {
	in  []string
	out []string
}

func (c *fakeConn) Read() ([]byte, error) {
	if len(c.in) == 0 {
		return nil, io.EOF
	}
	m := c.in[0]
	c.in = c.in[1:]
	return []byte(m), nil
}

func (c *fakeConn) Write(p []byte) error {
	c.out = append(c.out, string(p))
	return nil
}

// read decodes msg with r, the commands waiting being pending (id → kind),
// and returns the events as text (show) and the frame count.
func read(r Reader, msg string, pending map[uint64]CmdKind) ([]string, int) {
	var evs []string
	n := r.Read([]byte(msg), func(id uint64) (CmdKind, bool) {
		k, ok := pending[id]
		return k, ok
	}, func(ev *Event) { evs = append(evs, show(ev)) })
	return evs, n
}

var cmdNames = map[CmdKind]string{Attach: "attach", Join: "join", Send: "send", DM: "dm", Detach: "detach",
	History: "history", Ping: "ping", Pong: "pong", Refresh: "refresh"}

// show renders an event as text, with the fields its kind uses.
func show(ev *Event) string {
	sids := "all"
	if ev.Sids != nil {
		sids = fmt.Sprint(ev.Sids)
	}
	switch ev.Kind {
	case EvReply:
		s := fmt.Sprintf("reply %d %s %d", ev.ID, cmdNames[ev.Cmd], ev.Code)
		if ev.Err != "" {
			s += " " + ev.Err
		}
		if ev.Malformed {
			return s + " malformed"
		}
		if ev.Code != CodeOK {
			return s
		}
		switch ev.Cmd {
		case Join, History:
			p := &ev.Page
			s += fmt.Sprintf(" epoch=%s top=%d", p.Epoch, p.Top)
			if p.First > 0 {
				s += fmt.Sprintf(" first=%d", p.First)
			}
			if p.Reset {
				s += " reset"
			}
			if p.More {
				s += " more"
			}
			if p.Sids != nil {
				s += fmt.Sprintf(" sids=%v", p.Sids)
			}
			for i := range p.Messages {
				s += " [" + showMsg(&p.Messages[i]) + "]"
			}
		case Send:
			s += fmt.Sprintf(" epoch=%s offset=%d", ev.Send.Epoch, ev.Send.Offset)
		case DM:
			s += fmt.Sprintf(" sessions=%d counted=%v", ev.DM.Sessions, ev.DM.Counted)
		}
		return s
	case EvMessage:
		return "msg " + sids + " " + showMsg(&ev.Msg)
	case EvDM:
		return fmt.Sprintf("dm %s from=%s text=%s", sids, ev.Msg.From, ev.Msg.Text)
	case EvPong:
		return fmt.Sprintf("pong %d", ev.ID)
	case EvPing:
		return "ping"
	case EvGoAway:
		return fmt.Sprintf("goaway %s kicked=%v", ev.Retry, ev.Kicked)
	case EvError:
		return "error"
	case EvEnd:
		return "end"
	case EvBad:
		return "bad"
	case EvUnexpected:
		return "unexpected"
	case EvTokenExpiring:
		return "token_expiring " + sids
	case EvDetached:
		return fmt.Sprintf("detached %s %d %s", sids, ev.Code, ev.Err)
	}
	return fmt.Sprintf("kind %d", ev.Kind)
}

func showMsg(m *Msg) string {
	epoch := "-"
	if m.Epoch != nil {
		epoch = string(m.Epoch)
	}
	s := fmt.Sprintf("%s@%s/%d", m.Room, epoch, m.Offset)
	if m.From != nil || m.Cid != nil {
		s += fmt.Sprintf(" %s %s", m.From, m.Cid)
	}
	return s + " " + string(m.Text)
}

// same reports the difference between got and want, event by event.
func same(got, want []string) string {
	if strings.Join(got, "\n") == strings.Join(want, "\n") {
		return ""
	}
	return fmt.Sprintf("got\n\t%s\nwant\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
}
