package loadgen

import (
	"fmt"
	"time"

	"github.com/gorilla/websocket"

	"imload/reports"
)

// Protocols the generator speaks (Scenario.Protocol), named as in the
// result (reports.ProtocolImload, …).
const (
	ProtocolImload     = reports.ProtocolImload     // docs/protocol.md (default)
	ProtocolSocketIO   = reports.ProtocolSocketIO   // socket.io v4 over WebSocket
	ProtocolCentrifugo = reports.ProtocolCentrifugo // Centrifugo v6: client protocol v2, JSON, over WebSocket
)

// wire is the seam between the engine and the protocol it speaks: what
// happens right after the WebSocket opens, what makes a tab a member of its
// rooms on a fresh link, how a room message or a private message is sent,
// and how the server's messages are read. Everything else (the scenario,
// the shards and their timers, pacing, churn, the reconnect ladder,
// histograms, verification and the result) is the same for every protocol.
type wire interface {
	// greet runs on the socket's goroutine right after the dial, before
	// the socket is up: it reads the server's greeting (and answers it) and
	// sets the socket's heartbeat, dead-link and output limits.
	greet(s *sock, l *wsLink) error
	// attach queues what makes t (open, on the socket s that just came up)
	// a member of its rooms: a new incarnation or a resume. b.mu is held.
	attach(s *sock, t *tab)
	// attachUp does what attach does for every open tab of s, a socket
	// whose link just came up (a connect or a reconnect). b.mu is held.
	attachUp(s *sock)
	// send queues a room message or a private message (p.kind cSend or
	// cDM) and registers its pending reply. b.mu is held.
	send(s *sock, p pending)
	// read handles one WebSocket message from the server (b.mu not held).
	read(r *reader, msg []byte)
	// clientPings says whether the client sends heartbeats (imload) or
	// answers the server's (socket.io, Centrifugo).
	clientPings() bool
	// batches says whether several frames may share one WebSocket message,
	// newline-separated (imload, Centrifugo), or each must be a message of
	// its own (socket.io).
	batches() bool
	// resumes says whether a socket that lost its link resumes its tabs'
	// rooms from their last offsets and re-sends the sends that were in
	// flight (imload). Otherwise (socket.io, Centrifugo) the tabs start
	// over: their tracks are closed at what they received (excused, see
	// engine.linkLost), the rooms are joined again as a new incarnation, and
	// a send in flight is unconfirmed, never re-sent (at most once).
	resumes() bool
}

// imloadWire is imload's own protocol (docs/protocol.md).
type imloadWire struct{}

func (imloadWire) greet(s *sock, l *wsLink) error { return s.readHello(l) }
func (imloadWire) attach(s *sock, t *tab)         { s.attachTab(t) }
func (imloadWire) attachUp(s *sock)               { s.attachTabs() }
func (imloadWire) send(s *sock, p pending)        { s.sendMsg(p) }
func (imloadWire) read(r *reader, msg []byte)     { r.message(msg) }
func (imloadWire) clientPings() bool              { return true }
func (imloadWire) batches() bool                  { return true }
func (imloadWire) resumes() bool                  { return true }

// ---- shared by the wires ----

// attachEach attaches the open tabs of s one by one (wire.attachUp of the
// wires that have nothing to share between tabs).
func attachEach(w wire, s *sock) {
	for _, t := range s.tabs {
		if t.open {
			w.attach(s, t)
		}
	}
}

// greeting is the blocking exchange of a greet, before the socket is up and
// handed to its reader: whole messages read and written with deadlines, and
// counted like any other.
type greeting struct {
	e *engine
	l *wsLink
}

// newGreeting starts a greeting on l: reads time out after 10 s until done.
func newGreeting(e *engine, l *wsLink) greeting {
	_ = l.tcp.SetReadDeadline(time.Now().Add(10 * time.Second))
	return greeting{e: e, l: l}
}

// done clears the read deadline.
func (g greeting) done() { _ = g.l.tcp.SetReadDeadline(time.Time{}) }

// read returns the next message from the server.
func (g greeting) read() ([]byte, error) {
	data, err := g.l.readBlocking()
	if err == nil {
		g.e.cnt.wsIn.Add(1)
		g.e.cnt.framesIn.Add(1)
		g.e.cnt.bytesIn.Add(int64(len(data)))
	}
	return data, err
}

// write sends p as one text message.
func (g greeting) write(p string) error {
	conn := g.l.ws
	_ = conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if err := conn.WriteMessage(websocket.TextMessage, []byte(p)); err != nil {
		return err
	}
	g.e.cnt.wsOut.Add(1)
	g.e.cnt.framesOut.Add(1)
	g.e.cnt.bytesOut.Add(int64(len(p)))
	return nil
}

// ---- helpers for Run ----

// protocolTargets rewrites the targets into the URLs of the protocol
// (socket.io or Centrifugo).
func protocolTargets(protocol string, targets []string) ([]string, error) {
	rewrite := SocketIOURL
	if protocol == ProtocolCentrifugo {
		rewrite = CentrifugoURL
	}
	out := make([]string, len(targets))
	for i, t := range targets {
		u, err := rewrite(t)
		if err != nil {
			return nil, fmt.Errorf("target %q: %w", t, err)
		}
		out[i] = u
	}
	return out, nil
}
