package enginetest

import (
	"encoding/json"
	"slices"
	"sync"
	"time"

	"imload/server/engine"
)

// Sink is an engine.Sink that records what the engine tells it.
type Sink struct {
	node string

	mu       sync.Mutex
	ready    map[string]int // Ready calls per room not yet waited for
	wake     chan struct{}  // a Ready came (capacity 1)
	dms      []engine.DMDelivery
	kicks    []Kick
	discs    []Disconnect
	presence []PresenceCall
	gone     []string
	conns    int64
}

// Kick is a recorded Sink.Kick.
type Kick struct {
	ID   uint64
	User string
}

// Disconnect is a recorded Sink.Disconnect.
type Disconnect struct {
	User, Reason string
}

// PresenceCall is a recorded Sink.Presence.
type PresenceCall struct {
	Room string
	P    engine.Present
	In   bool
}

var _ engine.Sink = (*Sink)(nil)

// NewSink returns a Sink for node.
func NewSink(node string) *Sink {
	return &Sink{node: node, ready: make(map[string]int), wake: make(chan struct{}, 1)}
}

// Ready records that room has something to take.
func (s *Sink) Ready(room string) {
	s.mu.Lock()
	s.ready[room]++
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// waitReady waits up to d for a Ready of room since the last one it
// returned for, and reports whether one came.
func (s *Sink) waitReady(room string, d time.Duration) bool {
	deadline := time.After(d)
	for {
		s.mu.Lock()
		n := s.ready[room]
		if n > 0 {
			s.ready[room] = 0
		}
		s.mu.Unlock()
		if n > 0 {
			return true
		}
		select {
		case <-s.wake:
		case <-deadline:
			return false
		}
	}
}

// Presence records a presence change.
func (s *Sink) Presence(room string, p engine.Present, in bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.presence = append(s.presence, PresenceCall{room, p, in})
}

// NodeGone records a node's death.
func (s *Sink) NodeGone(node string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gone = append(s.gone, node)
}

// DM records a delivery.
func (s *Sink) DM(d engine.DMDelivery) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dms = append(s.dms, d)
}

// Kick records a kick.
func (s *Sink) Kick(id uint64, user string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.kicks = append(s.kicks, Kick{id, user})
}

// Disconnect records a disconnect.
func (s *Sink) Disconnect(user, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.discs = append(s.discs, Disconnect{user, reason})
}

// Disconnects returns the disconnects recorded so far.
func (s *Sink) Disconnects() []Disconnect {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Disconnect(nil), s.discs...)
}

// Conns is the number of connections set with SetConns.
func (s *Sink) Conns() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns
}

// SetConns sets what Conns returns.
func (s *Sink) SetConns(n int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.conns = n
}

// DMs returns the deliveries recorded so far.
func (s *Sink) DMs() []engine.DMDelivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]engine.DMDelivery(nil), s.dms...)
}

// waitDeliveries waits up to d until the private messages of want (by
// DM id) were delivered to exactly the users listed (by mux.NameKey), in
// one delivery or several, and returns each one's deliveries and whether
// they are as wanted (not if d is over first, or a user got one twice).
func (s *Sink) waitDeliveries(want map[uint64][]string, d time.Duration) (map[uint64][]engine.DMDelivery, bool) {
	deadline := time.Now().Add(d)
	for {
		got := make(map[uint64][]engine.DMDelivery)
		users := make(map[uint64][]string)
		for _, dd := range s.DMs() {
			var m struct{ ID uint64 }
			if json.Unmarshal(dd.Body, &m) != nil {
				continue
			}
			got[m.ID] = append(got[m.ID], dd)
			users[m.ID] = append(users[m.ID], dd.Users...)
		}
		done := true
		for id, us := range want {
			have := slices.Sorted(slices.Values(users[id]))
			exp := slices.Sorted(slices.Values(us))
			if len(have) > len(exp) {
				return got, false // delivered to a user twice
			}
			done = done && slices.Equal(have, exp)
		}
		if done || time.Now().After(deadline) {
			return got, done
		}
		time.Sleep(time.Millisecond)
	}
}

// PresenceCalls returns the presence changes recorded so far.
func (s *Sink) PresenceCalls() []PresenceCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]PresenceCall(nil), s.presence...)
}

// Kicks returns the kicks recorded so far.
func (s *Sink) Kicks() []Kick {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Kick(nil), s.kicks...)
}

// Gone returns the nodes reported dead so far.
func (s *Sink) Gone() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.gone...)
}
