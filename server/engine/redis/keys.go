package redis

import "strings"

// Key and channel names. Every key of a room shares the hash tag {r:ROOM},
// every key of a user {u:KEY} (KEY: the name's mux.NameKey), and the node
// list {imload}, so that each script touches one slot of a Redis Cluster;
// channels are sharded (SSUBSCRIBE, SPUBLISH) and named like the keys of
// what they carry. Options.Prefix goes before each name.
//
//	PREFIX{r:ROOM}:m   hash: epoch, top
//	PREFIX{r:ROOM}:s   stream: the retained messages, id 0-OFFSET
//	PREFIX{r:ROOM}:c   hash: dedup field → OFFSET:TS
//	PREFIX{r:ROOM}:p   sorted set: presence NODE|NAME|COLOUR, score its expiry
//	PREFIX{r:ROOM}     channel: the room's messages and presence changes
//	PREFIX{u:KEY}      hash: name, color, token, dmid, tat; and the user's channel
//	PREFIX{u:KEY}:s    sorted set: sessions NODE|CONN|SINCE|SID, score its expiry
//	PREFIX{u:KEY}:dm   hash: the user's conversations, peer's key → GEN|EPOCH|TOP|TS|PEER
//	PREFIX{d:A|B}:m    hash: a conversation's epoch, top, ga, gb, ua, ub, ts (dmhist.go)
//	PREFIX{d:A|B}:s    stream: its retained messages, id 0-OFFSET
//	PREFIX{imload}:dmc        sorted set: conversations, score their newest message's time
//	PREFIX{imload}:nodes      sorted set: node ids, score the expiry
//	PREFIX{imload}:node-info  hash: node id → CONNS|ADVERTISE

// roomKeys are the names of one room's keys and channel.
type roomKeys struct {
	meta, stream, cids, presence, channel string
}

func (e *Engine) roomKeys(room string) roomKeys {
	ch := e.opts.Prefix + "{r:" + room + "}"
	return roomKeys{meta: ch + ":m", stream: ch + ":s", cids: ch + ":c", presence: ch + ":p", channel: ch}
}

// userKeys are the names of one user's keys and channel.
type userKeys struct {
	hash, sessions, channel, dms string
}

func (e *Engine) userKeys(key string) userKeys {
	h := e.opts.Prefix + "{u:" + key + "}"
	return userKeys{hash: h, sessions: h + ":s", channel: h, dms: h + ":dm"}
}

// channelOf tells what a channel carries: a room's ('r') or a user's ('u')
// messages, and the room's name or the user's key.
func (e *Engine) channelOf(ch string) (kind byte, name string, ok bool) {
	rest, ok := strings.CutPrefix(ch, e.opts.Prefix)
	if !ok || len(rest) < 5 || rest[0] != '{' || rest[2] != ':' || rest[len(rest)-1] != '}' {
		return 0, "", false
	}
	return rest[1], rest[3 : len(rest)-1], true
}

// slotTag is the hash tag of a room's or a user's keys, which picks the
// shard its requests go through (so that they reach Redis in order).
func slotTag(kind byte, name string) uint32 {
	h := uint32(2166136261)
	h = (h ^ uint32(kind)) * 16777619
	for i := 0; i < len(name); i++ {
		h = (h ^ uint32(name[i])) * 16777619
	}
	return h
}
