package loadgen

// The engine's side of the wire seam (package wire holds the contract and
// the protocols): the protocols a scenario may speak, the connections the
// engine lends a wire for a greeting or a probe, and the link parameters
// it sets, once for every protocol, from what the greeting taught and the
// scenario's overrides.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/gorilla/websocket"

	"imload/loadgen/wire"
	"imload/reports"
)

// Protocols the generator speaks (Scenario.Protocol), named as in the
// result (reports.ProtocolImload, …).
const (
	ProtocolImload     = reports.ProtocolImload     // docs/protocol.md (default)
	ProtocolSocketIO   = reports.ProtocolSocketIO   // socket.io v4 over WebSocket
	ProtocolCentrifugo = reports.ProtocolCentrifugo // Centrifugo v6: client protocol v2, JSON, over WebSocket
)

// Link parameters the engine sets when neither the greeting nor the
// scenario does.
const (
	defaultHeartbeat  = 15 * time.Second
	defaultMaxHistory = 500 // messages asked per history page
)

// greetTimeout bounds the server's part of a greeting, and each write.
const greetTimeout = 10 * time.Second

// linkConn is a link lent to the wire for its greeting, before the socket
// is up and handed to its reader: whole messages read and written with
// deadlines, and counted like any other.
type linkConn struct {
	e *engine
	l *wsLink
}

func (c linkConn) Read() ([]byte, error) {
	data, err := c.l.readBlocking()
	if err == nil {
		c.e.cnt.wsIn.Add(1)
		c.e.cnt.framesIn.Add(1)
		c.e.cnt.bytesIn.Add(int64(len(data)))
	}
	return data, err
}

func (c linkConn) Write(p []byte) error {
	ws := c.l.ws
	_ = ws.SetWriteDeadline(time.Now().Add(greetTimeout))
	if err := ws.WriteMessage(websocket.TextMessage, p); err != nil {
		return err
	}
	c.e.cnt.wsOut.Add(1)
	c.e.cnt.framesOut.Add(1)
	c.e.cnt.bytesOut.Add(int64(len(p)))
	return nil
}

// greet runs the wire's greeting on l, a link of s that just opened (the
// server has greetTimeout for its part), and sets the link's parameters.
func (s *sock) greet(l *wsLink) error {
	e := s.b.e
	_ = l.tcp.SetReadDeadline(time.Now().Add(greetTimeout))
	lk, err := e.wire.Greet(linkConn{e: e, l: l})
	_ = l.tcp.SetReadDeadline(time.Time{})
	if err != nil {
		return err
	}
	if lk.Attach > 0 {
		e.shardHists(s.b.sh).recordOne(hAttach, lk.Attach.Microseconds())
	}
	s.b.mu.Lock()
	s.setLink(lk)
	s.b.mu.Unlock()
	return nil
}

// setLink sets the parameters of the socket's new link from what its
// greeting taught, the scenario's overrides and the defaults (b.mu held).
func (s *sock) setLink(lk wire.Link) {
	e := s.b.e
	sc := &e.sc
	s.hb = lk.Heartbeat
	if e.traits.ClientPings && sc.Heartbeat > 0 {
		s.hb = sc.Heartbeat // the client's pings only: a server pings at its own pace
	}
	if s.hb <= 0 {
		s.hb = defaultHeartbeat
	}
	s.dead2 = lk.DeadAfter
	if sc.DeadAfter > 0 {
		s.dead2 = sc.DeadAfter
	}
	if s.dead2 <= 0 {
		s.dead2 = 3 * s.hb
	}
	s.maxFrames = lk.MaxFrames
	s.maxBytes = sc.FlushMax
	if lk.MaxBytes > 0 && lk.MaxBytes < s.maxBytes {
		s.maxBytes = lk.MaxBytes
	}
	s.maxHistory = lk.MaxHistory
	if s.maxHistory <= 0 {
		s.maxHistory = defaultMaxHistory
	}
	s.answerPings = lk.AnswerPings
	s.greetAttach = lk.Attach > 0
	s.omu.Lock()
	s.batch, s.spare = nil, nil // new limits
	s.omu.Unlock()
}

// probeConn is a probe's WebSocket lent to the wire.
type probeConn struct{ c *websocket.Conn }

func (p probeConn) Read() ([]byte, error) {
	_, data, err := p.c.ReadMessage()
	return data, err
}

func (p probeConn) Write(b []byte) error { return p.c.WriteMessage(websocket.TextMessage, b) }

// probeTarget opens one WebSocket to addr before the run (5 s to connect,
// 5 s for the server's answers), runs the wire's probe on it and returns
// the server's name.
func probeTarget(ctx context.Context, w wire.Wire, addr string) (string, error) {
	c, err := dialProbe(ctx, addr)
	if err != nil {
		return "", err
	}
	defer func() {
		_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
		c.Close()
	}()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	return w.Probe(probeConn{c})
}

// probeNodes probes every node of addrs, in order, and returns the first
// one's server name; its error names the node that did not answer.
func probeNodes(ctx context.Context, w wire.Wire, addrs []string) (string, error) {
	var name string
	for i, a := range addrs {
		n, err := probeTarget(ctx, w, a)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				err = fmt.Errorf("no WebSocket answer within 5s (is it %s?): %w", w.Traits().Hint, err)
			}
			if len(addrs) > 1 {
				return "", fmt.Errorf("cannot reach node %s (%d of %d): %w", a, i+1, len(addrs), err)
			}
			return "", fmt.Errorf("cannot reach target %s: %w", a, err)
		}
		if i == 0 {
			name = n
		}
	}
	return name, nil
}

// dialProbe opens one WebSocket to addr for a probe before the run (5 s to
// connect).
func dialProbe(ctx context.Context, addr string) (*websocket.Conn, error) {
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second, ReadBufferSize: 1024, WriteBufferSize: 1024}
	c, resp, err := d.DialContext(pctx, addr, nil)
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	return c, err
}
