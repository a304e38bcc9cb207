// Package wsframe reads WebSocket frames (RFC 6455 §5) out of bytes already
// read from a socket, and writes frame headers. It does no I/O: both ends of
// imload's connections (the server reading its clients, the load generator
// reading the server) read the socket themselves, when it is ready, into a
// buffer they share between connections, and hand the bytes here. A
// connection that has nothing half-read holds no buffer at all.
//
// No extension is ever negotiated, so the reserved bits must be zero. A
// server reads masked frames only (§5.1: a client must mask), a client
// unmasked ones only.
package wsframe

import (
	"encoding/binary"
	"errors"
)

// Opcodes (RFC 6455 §5.2).
const (
	OpContinuation byte = 0x0
	OpText         byte = 0x1
	OpBinary       byte = 0x2
	OpClose        byte = 0x8
	OpPing         byte = 0x9
	OpPong         byte = 0xa
)

// Fin is the FIN bit of a frame's first byte: OR it with an opcode.
const Fin byte = 0x80

// Close codes the reader's errors map to (RFC 6455 §7.4.1).
const (
	CloseNormal        = 1000
	CloseProtocolError = 1002
	CloseUnsupported   = 1003 // a data type the endpoint does not accept
	CloseNoStatus      = 1005 // never sent: a close frame without a code
	CloseTooBig        = 1009
)

// MaxControlPayload is the longest payload of a control frame (§5.5).
const MaxControlPayload = 125

// Errors of the reader. Either ends the connection: ErrProtocol with close
// code 1002, ErrTooLarge with 1009 (see CloseCode).
var (
	ErrProtocol = errors.New("websocket: protocol error")
	ErrTooLarge = errors.New("websocket: message over the size limit")
)

// CloseCode returns the close code that answers a reader error.
func CloseCode(err error) int {
	if errors.Is(err, ErrTooLarge) {
		return CloseTooBig
	}
	return CloseProtocolError
}

// Frame is one parsed frame. Payload points into the parsed bytes
// (unmasked in place).
type Frame struct {
	Op      byte
	Fin     bool
	Payload []byte
}

// Parse parses the frame at the start of p. masked says which end reads:
// true for a server (frames must be masked; the payload is unmasked in
// place), false for a client (frames must not be). n is the frame's length
// in p, or 0 if p holds only part of it; need is then the frame's whole
// length once its header is complete (0 while it is not). A data frame
// whose payload passes limit is ErrTooLarge; anything malformed is
// ErrProtocol.
func Parse(p []byte, limit int, masked bool) (f Frame, n, need int, err error) {
	if len(p) < 2 {
		return Frame{}, 0, 0, nil
	}
	b0, b1 := p[0], p[1]
	if b0&0x70 != 0 { // RSV1-3: no extension is negotiated
		return Frame{}, 0, 0, ErrProtocol
	}
	if (b1&0x80 != 0) != masked {
		return Frame{}, 0, 0, ErrProtocol
	}
	f.Fin, f.Op = b0&Fin != 0, b0&0x0f
	h, l := 2, uint64(b1&0x7f)
	switch l {
	case 126:
		if len(p) < 4 {
			return Frame{}, 0, 0, nil
		}
		h, l = 4, uint64(binary.BigEndian.Uint16(p[2:]))
	case 127:
		if len(p) < 10 {
			return Frame{}, 0, 0, nil
		}
		h, l = 10, binary.BigEndian.Uint64(p[2:])
		if l>>63 != 0 { // §5.2: the most significant bit must be 0
			return Frame{}, 0, 0, ErrProtocol
		}
	}
	switch {
	case f.Op >= OpClose:
		if f.Op > OpPong || !f.Fin || l > MaxControlPayload {
			return Frame{}, 0, 0, ErrProtocol
		}
	case f.Op > OpBinary:
		return Frame{}, 0, 0, ErrProtocol
	case l > uint64(limit):
		return Frame{}, 0, 0, ErrTooLarge
	}
	if masked {
		h += 4
	}
	total := h + int(l)
	if len(p) < total {
		return Frame{}, 0, total, nil
	}
	f.Payload = p[h:total:total]
	if masked {
		Mask(p[h-4:h], f.Payload)
	}
	return f, total, 0, nil
}

// Mask applies (or removes: it is its own inverse) the masking key (4
// bytes) to b in place.
func Mask(key, b []byte) {
	k := binary.LittleEndian.Uint32(key)
	k8 := uint64(k) | uint64(k)<<32
	i := 0
	for ; i+8 <= len(b); i += 8 {
		binary.LittleEndian.PutUint64(b[i:], binary.LittleEndian.Uint64(b[i:])^k8)
	}
	for ; i < len(b); i++ {
		b[i] ^= key[i&3]
	}
}

// AppendHeader appends the header of an unmasked frame (a server's) with
// first byte b0 (opcode, with Fin for a whole message) and a payload of n
// bytes.
func AppendHeader(dst []byte, b0 byte, n int) []byte {
	switch {
	case n < 126:
		return append(dst, b0, byte(n))
	case n <= 0xffff:
		return binary.BigEndian.AppendUint16(append(dst, b0, 126), uint16(n))
	default:
		return binary.BigEndian.AppendUint64(append(dst, b0, 127), uint64(n))
	}
}

// AppendClosePayload appends the payload of a close frame: the code and a
// reason cut to fit a control frame. CloseNoStatus gives an empty payload.
func AppendClosePayload(dst []byte, code int, reason string) []byte {
	if code == CloseNoStatus {
		return dst
	}
	if len(reason) > MaxControlPayload-2 {
		reason = reason[:MaxControlPayload-2]
	}
	return append(binary.BigEndian.AppendUint16(dst, uint16(code)), reason...)
}

// ParseClose returns the code and reason of a close frame's payload
// (CloseNoStatus for an empty one). A one-byte payload or a code that may
// not be sent (§7.4) is ErrProtocol.
func ParseClose(payload []byte) (code int, reason string, err error) {
	switch len(payload) {
	case 0:
		return CloseNoStatus, "", nil
	case 1:
		return 0, "", ErrProtocol
	}
	code = int(binary.BigEndian.Uint16(payload))
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014, code >= 3000 && code <= 4999:
	default:
		return 0, "", ErrProtocol
	}
	return code, string(payload[2:]), nil
}
