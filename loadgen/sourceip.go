package loadgen

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/url"
	"strings"
)

// SocketsPerSourceIP is about how many sockets one local address can open
// to one server address: the default ephemeral port range (32768–60999)
// holds 28,232 ports.
const SocketsPerSourceIP = 28000

// ParseSourceIPs parses a list of local addresses: comma-separated IPv4
// addresses or ranges "a.b.c.d-a.b.c.e" (for example "127.0.0.2-127.0.0.20").
func ParseSourceIPs(s string) ([]net.IP, error) {
	var out []net.IP
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		lo, hi, isRange := strings.Cut(part, "-")
		a := net.ParseIP(strings.TrimSpace(lo)).To4()
		if a == nil {
			return nil, fmt.Errorf("source IP %q is not an IPv4 address", lo)
		}
		if !isRange {
			out = append(out, a)
			continue
		}
		b := net.ParseIP(strings.TrimSpace(hi)).To4()
		if b == nil {
			return nil, fmt.Errorf("source IP %q is not an IPv4 address", hi)
		}
		x, y := binary.BigEndian.Uint32(a), binary.BigEndian.Uint32(b)
		if y < x || y-x > 1<<16 {
			return nil, fmt.Errorf("source IP range %q is empty or too large", part)
		}
		for v := x; v <= y; v++ {
			ip := make(net.IP, 4)
			binary.BigEndian.PutUint32(ip, v)
			out = append(out, ip)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no source IP in %q", s)
	}
	return out, nil
}

// AutoSourceIPs returns the loopback source addresses to spread a run's
// sockets over, computed over every node it connects to (targets: the
// nodes' ws:// addresses): when the run opens more than
// SocketsPerSourceIP sockets in all and every node is on loopback,
// 127.0.0.1 .. 127.0.0.N with N = ⌈sockets / SocketsPerSourceIP⌉; nil
// when one address is enough, or when a node is not on loopback (a
// 127.0.0.x source cannot reach it: give --source-ips). The count is over
// all the nodes, not per node: a socket bound to a source address takes a
// port of that address whatever node it goes to, and the ladder may move
// the sockets of a dead node onto another.
func AutoSourceIPs(targets []string, sockets int) []net.IP {
	if sockets <= SocketsPerSourceIP || len(targets) == 0 {
		return nil
	}
	for _, t := range targets {
		u, err := url.Parse(t)
		if err != nil {
			return nil
		}
		host := u.Hostname()
		ip := net.ParseIP(host)
		if host == "localhost" {
			ip = net.IPv4(127, 0, 0, 1)
		}
		if ip == nil || !ip.IsLoopback() || ip.To4() == nil {
			return nil
		}
	}
	n := (sockets + SocketsPerSourceIP - 1) / SocketsPerSourceIP
	out := make([]net.IP, n)
	for i := range out {
		out[i] = net.IPv4(127, 0, 0, byte(i+1)).To4()
	}
	return out
}
