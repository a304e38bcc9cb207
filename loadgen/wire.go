package loadgen

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
	// send queues a room message or a private message (p.kind cSend or
	// cDM) and registers its pending reply. b.mu is held.
	send(s *sock, p pending)
	// read handles one WebSocket message from the server (b.mu not held).
	read(r *reader, msg []byte)
	// clientPings says whether the client sends heartbeats (imload) or
	// answers the server's (socket.io).
	clientPings() bool
}

// imloadWire is imload's own protocol (docs/protocol.md).
type imloadWire struct{}

func (imloadWire) greet(s *sock, l *wsLink) error { return s.readHello(l) }
func (imloadWire) attach(s *sock, t *tab)         { s.attachTab(t) }
func (imloadWire) send(s *sock, p pending)        { s.sendMsg(p) }
func (imloadWire) read(r *reader, msg []byte)     { r.message(msg) }
func (imloadWire) clientPings() bool              { return true }
