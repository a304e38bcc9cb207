package redis

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/rueidis"
)

// rueidisMessage is a reply of Redis.
type rueidisMessage = rueidis.RedisMessage

// sentReply is the send script's answer.
type sentReply struct {
	kind  string // ok, dup, epoch
	off   uint64
	ts    int64
	epoch string
}

func parseSent(r rueidisMessage) (sentReply, error) {
	arr, err := r.ToArray()
	if err != nil || len(arr) < 2 {
		return sentReply{}, fmt.Errorf("send: unexpected answer %v (%v)", r, err)
	}
	var a sentReply
	a.kind, _ = arr[0].ToString()
	switch a.kind {
	case "ok":
		off, err1 := arr[1].AsInt64()
		ep, err2 := arr[2].ToString()
		if err1 != nil || err2 != nil {
			return a, fmt.Errorf("send: unexpected answer %v", arr)
		}
		a.off, a.epoch = uint64(off), ep
	case "dup":
		off, err1 := arr[1].AsInt64()
		ts, err2 := arr[2].AsInt64()
		if err1 != nil || err2 != nil {
			return a, fmt.Errorf("send: unexpected answer %v", arr)
		}
		a.off, a.ts = uint64(off), ts
	case "epoch":
		a.epoch, _ = arr[1].ToString()
	default:
		return a, fmt.Errorf("send: unexpected answer %v", arr)
	}
	return a, nil
}

// readReply is the read script's answer.
type readReply struct {
	none       bool
	epoch      string
	top, first uint64
	entries    []entry
	present    []string
}

// entry is a stream entry.
type entry struct {
	off    uint64
	blob   string
	node   string
	ticket uint64
}

func parseRead(r rueidisMessage, reversed bool) (readReply, error) {
	var rr readReply
	arr, err := r.ToArray()
	if err != nil || len(arr) == 0 {
		return rr, fmt.Errorf("read: unexpected answer %v (%v)", r, err)
	}
	if kind, _ := arr[0].ToString(); kind == "none" {
		rr.none = true
		return rr, nil
	}
	if len(arr) != 6 {
		return rr, fmt.Errorf("read: unexpected answer %v", arr)
	}
	rr.epoch, _ = arr[1].ToString()
	top, err1 := arr[2].AsInt64()
	first, err2 := arr[3].AsInt64()
	xs, err3 := arr[4].AsXRangeSlices()
	present, err4 := arr[5].AsStrSlice()
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil {
		return rr, fmt.Errorf("read: unexpected answer %v", arr)
	}
	rr.top, rr.first, rr.present = uint64(top), uint64(first), present
	rr.entries = make([]entry, 0, len(xs))
	for _, x := range xs {
		off, ok := streamOffset(x.ID)
		if !ok {
			return rr, fmt.Errorf("read: stream id %q", x.ID)
		}
		en := entry{off: off}
		for _, fv := range x.FieldValues {
			switch fv.Field {
			case "d":
				en.blob = fv.Value
			case "n":
				en.node = fv.Value
			case "t":
				en.ticket, _ = strconv.ParseUint(fv.Value, 10, 64)
			}
		}
		rr.entries = append(rr.entries, en)
	}
	if reversed {
		for i, j := 0, len(rr.entries)-1; i < j; i, j = i+1, j-1 {
			rr.entries[i], rr.entries[j] = rr.entries[j], rr.entries[i]
		}
	}
	return rr, nil
}

// streamOffset reads the offset of a stream id 0-OFFSET.
func streamOffset(id string) (uint64, bool) {
	s, ok := strings.CutPrefix(id, "0-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil
}

// replyStrings returns the elements of a reply array as strings
// (integers in decimal).
func replyStrings(arr []rueidisMessage) []string {
	out := make([]string, len(arr))
	for i := range arr {
		if arr[i].IsInt64() {
			n, _ := arr[i].AsInt64()
			out[i] = strconv.FormatInt(n, 10)
			continue
		}
		out[i], _ = arr[i].ToString()
	}
	return out
}
