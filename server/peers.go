package server

import (
	"net/url"
	"strings"
	"sync"
	"time"

	"imload/server/engine"
)

// Pages served by other nodes. With several nodes each serves the demo
// page at its own address, and a browser's worker may connect to any node
// of the list (/lbs): a WebSocket from a page of another node of the
// cluster is from a peer, not from a stranger. peerHosts remembers the
// hosts (host:port) of the nodes this one has seen in its node list, for
// peerTTL after it last saw each — a page whose node died is exactly the
// one whose browser must move to another node.

// peerTTL is how long a node that left the list stays a peer.
const peerTTL = 24 * time.Hour

// maxPeers bounds the hosts remembered; beyond it the oldest go.
const maxPeers = 1024

type peerHosts struct {
	mu   sync.Mutex
	seen map[string]time.Time // host:port (lower case) → when last listed
	at   time.Time            // last refresh from the node list
}

// isPeer reports whether host (an Origin's host:port) is a node's of the
// cluster: one listed now, or within peerTTL (notePeers, every second).
func (s *Server) isPeer(host string) bool {
	s.notePeers(time.Now())
	p := &s.peers
	p.mu.Lock()
	defer p.mu.Unlock()
	t, ok := p.seen[strings.ToLower(host)]
	return ok && time.Since(t) < peerTTL
}

// notePeers records the hosts of the nodes the engine lists now, at most
// once a second (the janitor calls it every second, so that a node that
// dies was seen while it lived).
func (s *Server) notePeers(now time.Time) {
	p := &s.peers
	p.mu.Lock()
	refresh := now.Sub(p.at) >= time.Second
	if refresh {
		p.at = now
	}
	p.mu.Unlock()
	if refresh {
		// Both engines answer from what they hold, before Nodes returns.
		s.engine.Nodes(func(nodes []engine.Node, err error) {
			if err == nil {
				p.note(nodes, now)
			}
		})
	}
}

// note records the hosts of nodes as seen at now.
func (p *peerHosts) note(nodes []engine.Node, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.seen == nil {
		p.seen = make(map[string]time.Time)
	}
	for _, n := range nodes {
		u, err := url.Parse(n.Advertise)
		if err != nil || u.Host == "" {
			continue
		}
		p.seen[strings.ToLower(u.Host)] = now
	}
	for len(p.seen) > maxPeers {
		var oldest string
		var ot time.Time
		for h, t := range p.seen {
			if oldest == "" || t.Before(ot) {
				oldest, ot = h, t
			}
		}
		delete(p.seen, oldest)
	}
}
