package loadgen

// A tiny JSON scanner for the hot path: the room-message pushes that make up
// almost all of the traffic a load generator reads. Decoding them with
// encoding/json (a Frame, then its body) would cost the generator more CPU
// than the server spends encoding them once per connection. Anything the
// scanner does not understand falls back to mux.DecodeServerFrame.

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

// pushMsg is a decoded room-message push (fields alias the frame).
type pushMsg struct {
	sids   []uint32
	room   []byte
	epoch  []byte
	offset uint64
	from   []byte
	cid    []byte // nil when the message has none
	text   []byte // raw JSON string content (may hold escapes)
}

// parsePushMsg decodes a room-message push with the fast scanner. ok is
// false for anything else (the caller falls back to the full decoder).
func parsePushMsg(frame []byte, p *pushMsg) bool {
	var isPush, isMsg, bodyOK bool
	var body []byte
	p.from, p.cid = nil, nil
	ok := scanObject(frame, func(k, v []byte) bool {
		switch string(k) {
		case "t":
			isPush = string(v) == `"push"`
		case "ev":
			isMsg = string(v) == `"msg"`
		case "sids":
			var ok bool
			p.sids, ok = parseSids(v, p.sids[:0])
			return ok
		case "body":
			body = v
		}
		return true
	})
	if !ok || !isPush || !isMsg || body == nil {
		return false
	}
	bodyOK = scanObject(body, func(k, v []byte) bool {
		switch string(k) {
		case "room":
			r, ok := unquote(v)
			p.room = r
			return ok
		case "epoch":
			e, ok := unquote(v)
			p.epoch = e
			return ok
		case "offset":
			o, ok := parseUint(v)
			p.offset = o
			return ok
		case "from":
			f, ok := unquote(v)
			p.from = f
			return ok
		case "cid":
			c, ok := unquote(v)
			p.cid = c
			return ok
		case "text":
			if len(v) < 2 {
				return false
			}
			p.text = v[1 : len(v)-1]
		}
		return true
	})
	return bodyOK && p.room != nil && p.offset > 0 && len(p.sids) > 0
}
