package wire

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"

	"imload/mux"
)

// A tiny JSON scanner for the hot path: the room messages that make up almost
// all of the traffic a load generator reads (imload's pushes, socket.io's
// message events, Centrifugo's publications). Decoding them with
// encoding/json would cost the generator more CPU than the server spends
// encoding them once per connection. What the scanner does not understand
// falls back to encoding/json (imload: mux.DecodeServerFrame). And the
// other way, appending strings to the JSON of a command.

// scanObject calls fn for each key and raw value of the JSON object b (keys
// without quotes, values as they appear). It returns false if b is not a
// well-formed object or fn returns false.
func scanObject(b []byte, fn func(key, val []byte) bool) bool {
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return false
	}
	i++
	for {
		i = skipWS(b, i)
		if i >= len(b) {
			return false
		}
		if b[i] == '}' {
			return true
		}
		if b[i] == ',' {
			i = skipWS(b, i+1)
		}
		if i >= len(b) || b[i] != '"' {
			return false
		}
		ke := skipString(b, i)
		if ke < 0 {
			return false
		}
		key := b[i+1 : ke-1]
		i = skipWS(b, ke)
		if i >= len(b) || b[i] != ':' {
			return false
		}
		i = skipWS(b, i+1)
		ve := skipValue(b, i)
		if ve < 0 {
			return false
		}
		if !fn(key, b[i:ve]) {
			return false
		}
		i = ve
	}
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n') {
		i++
	}
	return i
}

// skipString returns the index after the string starting at b[i] == '"'.
func skipString(b []byte, i int) int {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return -1
}

// skipValue returns the index after the value starting at b[i].
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				e := skipString(b, j)
				if e < 0 {
					return -1
				}
				j = e - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return -1
	default:
		j := i
		for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\n' {
			j++
		}
		if j == i {
			return -1
		}
		return j
	}
}

// parseUint parses a non-negative decimal integer; ok is false otherwise.
func parseUint(b []byte) (v uint64, ok bool) {
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + uint64(c-'0')
	}
	return v, true
}

// unquote returns the content of a JSON string value without escapes, or
// ok=false if it has escapes or is not a string.
func unquote(v []byte) ([]byte, bool) {
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return nil, false
	}
	s := v[1 : len(v)-1]
	for _, c := range s {
		if c == '\\' {
			return nil, false
		}
	}
	return s, true
}

// parseSids parses a JSON array of session ids into dst.
func parseSids(v []byte, dst []uint32) ([]uint32, bool) {
	if len(v) < 2 || v[0] != '[' || v[len(v)-1] != ']' {
		return dst, false
	}
	v = v[1 : len(v)-1]
	for len(v) > 0 {
		j := 0
		for j < len(v) && v[j] != ',' {
			j++
		}
		n, ok := parseUint(trimSpace(v[:j]))
		if !ok || n > 1<<32-1 {
			return dst, false
		}
		dst = append(dst, uint32(n))
		if j == len(v) {
			break
		}
		v = v[j+1:]
	}
	return dst, true
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && b[0] == ' ' {
		b = b[1:]
	}
	for len(b) > 0 && b[len(b)-1] == ' ' {
		b = b[:len(b)-1]
	}
	return b
}

// decodeString returns the content of a raw JSON string (without its
// quotes) decoded: raw itself when it holds no escape (no copy), else a new
// slice with the escapes resolved (raw again if it is not valid JSON).
func decodeString(raw []byte) []byte {
	if bytes.IndexByte(raw, '\\') < 0 {
		return raw
	}
	var s string
	q := make([]byte, 0, len(raw)+2)
	q = append(append(append(q, '"'), raw...), '"')
	if json.Unmarshal(q, &s) == nil {
		return []byte(s)
	}
	return raw
}

// needsEscape reports whether c must not appear as is in a JSON string
// (mux.AppendString escapes it, or it starts a multi-byte character that it
// may have to).
func needsEscape(c byte) bool {
	return c < 0x20 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' || c >= utf8.RuneSelf
}

// appendEsc appends s escaped as the inside of a JSON string (without
// quotes), as mux.AppendString would: a copy when nothing needs escaping.
func appendEsc(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if needsEscape(s[i]) {
			q := mux.AppendString(nil, s)
			return append(dst, q[1:len(q)-1]...)
		}
	}
	return append(dst, s...)
}

// appendEscBytes is appendEsc for a byte slice.
func appendEscBytes(dst []byte, s []byte) []byte {
	for _, c := range s {
		if needsEscape(c) {
			q := mux.AppendString(nil, string(s))
			return append(dst, q[1:len(q)-1]...)
		}
	}
	return append(dst, s...)
}

// appendString appends s as a JSON string.
func appendString(dst []byte, s string) []byte {
	return append(appendEsc(append(dst, '"'), s), '"')
}

// appendStringBytes appends s as a JSON string.
func appendStringBytes(dst []byte, s []byte) []byte {
	return append(appendEscBytes(append(dst, '"'), s), '"')
}
