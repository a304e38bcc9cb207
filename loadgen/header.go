package loadgen

import "strconv"

// Every message the generator sends carries, at the start of its text, a
// compact header so that receivers can compute latency from the SCHEDULED
// send time and identify private messages:
//
//	<run tag>:<sender tab id>:<sequence>:<scheduled µs since run start>|....
//
// padded with '.' to the scenario's message size. The run tag (6 hex
// digits) tells the generator's own messages from anyone else's.

// minMsgSize is the smallest message size the header always fits in.
const minMsgSize = 48

// appendText appends the text of a message (header and padding) to dst.
func appendText(dst []byte, tag string, gid uint32, seq uint32, schedUs int64, size int) []byte {
	start := len(dst)
	dst = append(dst, tag...)
	dst = append(dst, ':')
	dst = strconv.AppendUint(dst, uint64(gid), 10)
	dst = append(dst, ':')
	dst = strconv.AppendUint(dst, uint64(seq), 10)
	dst = append(dst, ':')
	dst = strconv.AppendInt(dst, schedUs, 10)
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
}

// parseHeader parses the header at the start of text (raw JSON string
// content). ok is false for a message without this run's header.
func parseHeader(text []byte, tag string) (h header, ok bool) {
	if len(text) < len(tag)+8 || string(text[:len(tag)]) != tag || text[len(tag)] != ':' {
		return h, false
	}
	var f [3]uint64
	i := len(tag) + 1
	for k := 0; k < 3; k++ {
		j := i
		for j < len(text) && text[j] >= '0' && text[j] <= '9' {
			j++
		}
		if j == i || j >= len(text) {
			return h, false
		}
		want := byte(':')
		if k == 2 {
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
	if f[0] > 1<<32-1 || f[1] > 1<<32-1 {
		return h, false
	}
	return header{gid: uint32(f[0]), seq: uint32(f[1]), schedUs: int64(f[2])}, true
}
