package wsframe

// Reader is the read state of one connection: the start of a frame not
// complete yet, and a fragmented data message being put together. Both are
// nil in the normal case (every frame read whole), so an idle connection
// holds no buffer. The zero Reader reads unmasked frames without a limit;
// set Limit and Masked before use.
type Reader struct {
	// Limit is the largest data message accepted, in bytes (0: no limit).
	Limit int
	// Masked is true on a server: frames must be masked.
	Masked bool

	pend   []byte // start of an incomplete frame (or a read buffer with spare room)
	frag   []byte // payload of a fragmented data message so far
	fragOp byte   // its opcode (0: none)
}

func (r *Reader) limit() int {
	if r.Limit <= 0 {
		return int(^uint(0) >> 1)
	}
	return r.Limit
}

// Next returns the next data message or control frame in data: op is its
// opcode (OpText or OpBinary for a whole data message, possibly put
// together from fragments), n the bytes of data consumed. With op 0, data
// holds nothing complete: n bytes of fragments were consumed, and need is
// the length of the frame that starts at data[n:] when known. msg is valid
// until the next call and until data is reused.
func (r *Reader) Next(data []byte) (op byte, msg []byte, n, need int, err error) {
	limit := r.limit()
	for {
		f, m, nd, err := Parse(data[n:], limit, r.Masked)
		if err != nil {
			return 0, nil, n, 0, err
		}
		if m == 0 {
			return 0, nil, n, nd, nil
		}
		n += m
		switch {
		case f.Op >= OpClose:
			return f.Op, f.Payload, n, 0, nil
		case f.Op == OpContinuation:
			if r.fragOp == 0 {
				return 0, nil, n, 0, ErrProtocol
			}
			if len(r.frag)+len(f.Payload) > limit {
				r.fragOp, r.frag = 0, nil
				return 0, nil, n, 0, ErrTooLarge
			}
			r.frag = append(r.frag, f.Payload...)
			if f.Fin {
				op, msg = r.fragOp, r.frag
				r.fragOp, r.frag = 0, nil
				return op, msg, n, 0, nil
			}
		default:
			if r.fragOp != 0 {
				return 0, nil, n, 0, ErrProtocol
			}
			if f.Fin {
				return f.Op, f.Payload, n, 0, nil
			}
			r.fragOp, r.frag = f.Op, append([]byte(nil), f.Payload...)
		}
	}
}

// Pending returns the bytes kept by Keep (nil: none).
func (r *Reader) Pending() []byte { return r.pend }

// SetPending replaces the pending bytes (for a caller that read into the
// buffer Room returned, or that has bytes read before the Reader existed).
func (r *Reader) SetPending(p []byte) { r.pend = p }

// Keep stores rest (the unconsumed end of data) as the pending bytes, in a
// buffer of the Reader's own sized for the frame it starts (need, when
// known): data may then be reused.
func (r *Reader) Keep(rest []byte, need int) {
	if len(rest) == 0 {
		r.pend = nil
		return
	}
	if len(r.pend) > 0 && &r.pend[0] == &rest[0] && cap(rest) >= need {
		r.pend = rest // already in the pending buffer, at its start: keep it
		return
	}
	p := make([]byte, len(rest), max(need, len(rest)+512))
	copy(p, rest)
	r.pend = p
}

// Room returns the pending bytes with spare capacity to read into (grown
// when full).
func (r *Reader) Room() []byte {
	p := r.pend
	if cap(p) > len(p) {
		return p
	}
	np := make([]byte, len(p), max(2*len(p), len(p)+4096))
	copy(np, p)
	r.pend = np
	return np
}

// Reset forgets everything pending.
func (r *Reader) Reset() { r.pend, r.frag, r.fragOp = nil, nil, 0 }
