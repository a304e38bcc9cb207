package redis

import (
	"errors"
	"strconv"

	"imload/server/engine"
)

// The payloads published on channels and the messages stored in streams
// are strings of fields, each written as its length in decimal, a colon,
// and its bytes ("5:alice"): the scripts build them with string
// concatenation, and reading one allocates nothing but the strings kept.
//
// A room's channel carries
//
//	'm' epoch offset node ticket blob   a message (node and ticket: its publish)
//	'p' in node name colour [display]   presence ("1": present, "": gone)
//
// a user's channel
//
//	'd' id to from colour ts cid text exceptNode exceptConn exceptSince exceptSID epoch offset [display]
//	                                    a private message (epoch and offset: its place in its
//	                                    conversation, "" without DM history; display: the
//	                                    sender's display name)
//	'k' node conn user                  a kick of a connection of node
//	'x' reason                          the user's sessions are to be detached (server API)
//
// and a stream entry's field d is a message's blob: ts from colour cid text
// [display]. A field in brackets is left out when empty (and so absent from
// what a node of an earlier version wrote).

// appendField appends s as one field.
func appendField(dst []byte, s string) []byte {
	dst = strconv.AppendInt(dst, int64(len(s)), 10)
	dst = append(dst, ':')
	return append(dst, s...)
}

// appendUint appends n as one field.
func appendUint(dst []byte, n uint64) []byte {
	var b [20]byte
	return appendField(dst, string(strconv.AppendUint(b[:0], n, 10)))
}

// appendInt appends n as one field.
func appendInt(dst []byte, n int64) []byte {
	var b [20]byte
	return appendField(dst, string(strconv.AppendInt(b[:0], n, 10)))
}

var errPayload = errors.New("malformed payload")

// fields reads fields off a payload.
type fields struct {
	s   string
	err error
}

// next returns the next field ("" and an error once the payload is
// malformed or used up).
func (f *fields) next() string {
	if f.err != nil {
		return ""
	}
	n := 0
	i := 0
	for ; i < len(f.s) && f.s[i] != ':'; i++ {
		c := f.s[i]
		if c < '0' || c > '9' || i > 9 {
			f.err = errPayload
			return ""
		}
		n = n*10 + int(c-'0')
	}
	if i == 0 || i >= len(f.s) || len(f.s)-i-1 < n {
		f.err = errPayload
		return ""
	}
	v := f.s[i+1 : i+1+n]
	f.s = f.s[i+1+n:]
	return v
}

// uint reads a field as a decimal number.
func (f *fields) uint() uint64 {
	s := f.next()
	if f.err != nil {
		return 0
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		f.err = errPayload
	}
	return n
}

// int reads a field as a signed decimal number.
func (f *fields) int() int64 {
	s := f.next()
	if f.err != nil {
		return 0
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		f.err = errPayload
	}
	return n
}

// blob is a message as a stream entry keeps it.
type blob struct {
	ts                        int64
	from, color, display, cid string
	text                      string
}

// encodeBlob encodes a message's blob: its sender's name, colour and
// display name (who), the time, client id and text.
func encodeBlob(ts int64, who *engine.Author, cid, text string) string {
	b := make([]byte, 0, 32+len(who.Name)+len(who.Color)+len(who.Display)+len(cid)+len(text))
	b = appendInt(b, ts)
	b = appendField(b, who.Name)
	b = appendField(b, who.Color)
	b = appendField(b, cid)
	b = appendField(b, text)
	if who.Display != "" {
		b = appendField(b, who.Display)
	}
	return string(b)
}

// decodeBlob decodes a message's blob.
func decodeBlob(s string) (blob, error) {
	f := fields{s: s}
	b := blob{ts: f.int(), from: f.next(), color: f.next(), cid: f.next(), text: f.next()}
	if f.err == nil && f.s != "" {
		b.display = f.next()
	}
	return b, f.err
}

// dedupField is the field of a message's cid in the room's cid hash.
func dedupField(from, cid string) string {
	return string(appendField(make([]byte, 0, 4+len(from)+len(cid)), from)) + cid
}
