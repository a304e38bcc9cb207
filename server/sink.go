package server

import (
	"slices"

	"imload/mux"
	"imload/server/engine"
)

// nodeSink is the node as its engine sees it (engine.Sink).
type nodeSink struct{ s *Server }

var _ engine.Sink = nodeSink{}

// Ready has a worker take the room's log (release.go).
func (k nodeSink) Ready(room string) { k.s.ready(room) }

// Presence records a presence change of another node in the room, if it
// is open here, and tells its members when the user's presence changes.
func (k nodeSink) Presence(room string, p engine.Present, in bool) {
	s := k.s
	r := s.hub.room(room)
	if r == nil {
		return // opened later, Opened.Present tells
	}
	var out outbox
	r.mu.Lock()
	r.remoteChanged(s, &out, p, in)
	r.mu.Unlock()
	s.sinkWrote(out.conns)
}

// NodeGone forgets the presence of a dead node in every room. A user
// present only there lingers for the presence grace: its browsers are
// on their way to another node.
func (k nodeSink) NodeGone(node string) {
	s := k.s
	s.hub.roomsMu.RLock()
	rooms := make([]*room, 0, len(s.hub.rooms))
	for _, r := range s.hub.rooms {
		rooms = append(rooms, r)
	}
	s.hub.roomsMu.RUnlock()
	var out outbox
	for _, r := range rooms {
		r.mu.Lock()
		for _, ru := range r.remote {
			if slices.Contains(ru.nodes, node) {
				r.lingerRemote(s, &out, ru, node) // its browsers come back elsewhere
			}
		}
		r.mu.Unlock()
	}
	s.sinkWrote(out.conns)
}

// DM pushes a private message to this node's sessions of d.Users, but
// the sending session.
func (k nodeSink) DM(d engine.DMDelivery) {
	s := k.s
	except := d.Except.Conn.Node == s.node
	targets := make(map[*conn][]uint32)
	s.hub.usersMu.Lock()
	for _, key := range d.Users {
		u := s.hub.users[key]
		if u == nil {
			continue
		}
		for _, ss := range u.sessions {
			if except && ss.sid == d.Except.SID && ss.c.id == d.Except.Conn.ID {
				continue
			}
			targets[ss.c] = append(targets[ss.c], ss.sid)
		}
	}
	s.hub.usersMu.Unlock()
	var write []*conn
	n := 0
	for c, sids := range targets {
		slices.Sort(sids)
		sids = slices.Compact(sids)
		if c.queueItem(outItem{head: pushDM, sids: mux.AppendSIDs(nil, sids), body: d.Body}) {
			write = append(write, c)
		}
		n += len(sids)
	}
	s.counters.dmsOut.Add(int64(n))
	s.sinkWrote(write)
}

// Kick tells this node's connection id to go away: its user holds too
// many connections.
func (k nodeSink) Kick(id uint64, user string) {
	if c := k.s.hub.userConn(user, id); c != nil {
		k.s.kick(c, user)
	}
}

// Conns is the number of open connections.
func (k nodeSink) Conns() int64 { return k.s.counters.physical.Load() }
