package loadgen

import "strconv"

// Every message the generator sends carries, at the start of its text, a
// compact header so that receivers can compute latency from the SCHEDULED
// send time, identify private messages and tell the node it was sent
// through:
//
//	<run tag>:<sender tab id>:<sequence>:<scheduled µs since run start>:<sender's node>|....
//
// padded with '.' to the scenario's message size. The run tag (6 hex
// digits) tells the generator's own messages from anyone else's. The node
// is the index, in the engine's node table (nodes.go), of the node the
// sender's socket was on when the message was first written: a message
// re-sent after a reconnect keeps its text (the server answers a repeated
// cid with the first message, and the content check compares texts), so it
// keeps that node too.

// minMsgSize is the smallest message size the header always fits in.
const minMsgSize = 48

// appendText appends the text of a message (header and padding) to dst.
func appendText(dst []byte, tag string, gid uint32, seq uint32, schedUs int64, node uint16, size int) []byte {
	start := len(dst)
	dst = append(dst, tag...)
	dst = append(dst, ':')
	dst = strconv.AppendUint(dst, uint64(gid), 10)
	dst = append(dst, ':')
	dst = strconv.AppendUint(dst, uint64(seq), 10)
	dst = append(dst, ':')
	dst = strconv.AppendInt(dst, schedUs, 10)
	dst = append(dst, ':')
	dst = strconv.AppendUint(dst, uint64(node), 10)
	dst = append(dst, '|')
	for len(dst)-start < size {
		dst = append(dst, '.')
	}
	return dst
}

// header is a parsed message header.
type header struct {
	gid     uint32
	seq     uint32
	schedUs int64
	node    uint16 // the sender's node (index in the engine's node table)
}

// parseHeader parses the header at the start of text (raw JSON string
// content). ok is false for a message without this run's header.
func parseHeader(text []byte, tag string) (h header, ok bool) {
	if len(text) < len(tag)+10 || string(text[:len(tag)]) != tag || text[len(tag)] != ':' {
		return h, false
	}
	var f [4]uint64
	i := len(tag) + 1
	for k := range f {
		j := i
		for j < len(text) && text[j] >= '0' && text[j] <= '9' {
			j++
		}
		if j == i || j >= len(text) {
			return h, false
		}
		want := byte(':')
		if k == len(f)-1 {
			want = '|'
		}
		if text[j] != want {
			return h, false
		}
		if j-i > 19 {
			return h, false
		}
		var v uint64
		for _, c := range text[i:j] {
			v = v*10 + uint64(c-'0')
		}
		f[k] = v
		i = j + 1
	}
	if f[0] > 1<<32-1 || f[1] > 1<<32-1 || f[3] > 1<<16-1 {
		return h, false
	}
	return header{gid: uint32(f[0]), seq: uint32(f[1]), schedUs: int64(f[2]), node: uint16(f[3])}, true
}
