package redis

import (
	"crypto/sha1"
	"embed"
	"encoding/hex"
	"fmt"
	"regexp"
)

// The engine's Lua scripts (lua/*.lua): each runs on the keys of one room,
// one user or the node list, which share a hash tag, so each touches one
// slot of a Redis Cluster. They are called by EVALSHA; a shard loads them
// again when Redis answers NOSCRIPT (after a restart). A script's line
// "-- include: NAME" is replaced by lua/lib/NAME.lua, code that several
// scripts share (Redis has no modules for scripts).
//
//go:embed lua/*.lua lua/lib/*.lua
var luaFiles embed.FS

// script is one Lua script and its SHA-1.
type script struct {
	name string
	src  string
	sha  string
}

// scripts are the engine's scripts, read once per engine.
type scripts struct {
	send, read, who, presence, touchRoom          *script
	claim, release, unreserve, touchUser, dm, dmS *script
	disconnect, sessions                          *script
	nodes                                         *script
	dmCheck, dmAppend, dmDeliver, dmRead, dmList  *script
	dmReg, dmDrop, userGen                        *script
	all                                           []*script
}

func loadScripts() (*scripts, error) {
	s := &scripts{}
	for _, p := range []struct {
		dst  **script
		name string
	}{
		{&s.send, "send"}, {&s.read, "read"}, {&s.who, "who"}, {&s.presence, "presence"},
		{&s.touchRoom, "touch_room"}, {&s.claim, "claim"}, {&s.release, "release"},
		{&s.unreserve, "unreserve"}, {&s.touchUser, "touch_user"}, {&s.dm, "dm"},
		{&s.dmS, "dm_sender"}, {&s.disconnect, "disconnect"}, {&s.sessions, "sessions"}, {&s.nodes, "nodes"},
		{&s.dmCheck, "dm_check"}, {&s.dmAppend, "dm_append"}, {&s.dmDeliver, "dm_deliver"}, {&s.dmRead, "dm_read"},
		{&s.dmList, "dm_list"}, {&s.dmReg, "dm_reg"}, {&s.dmDrop, "dm_drop"}, {&s.userGen, "user_gen"},
	} {
		b, err := readScript(p.name)
		if err != nil {
			return nil, err
		}
		sum := sha1.Sum(b)
		sc := &script{name: p.name, src: string(b), sha: hex.EncodeToString(sum[:])}
		*p.dst = sc
		s.all = append(s.all, sc)
	}
	return s, nil
}

// includeLine matches a script's "-- include: NAME" lines.
var includeLine = regexp.MustCompile(`(?m)^-- include: ([a-z_]+)\n`)

// readScript reads lua/NAME.lua with its includes in place.
func readScript(name string) ([]byte, error) {
	b, err := luaFiles.ReadFile("lua/" + name + ".lua")
	if err != nil {
		return nil, fmt.Errorf("redis engine: script %s: %w", name, err)
	}
	var missing error
	b = includeLine.ReplaceAllFunc(b, func(line []byte) []byte {
		lib := includeLine.FindSubmatch(line)[1]
		src, err := luaFiles.ReadFile("lua/lib/" + string(lib) + ".lua")
		if err != nil {
			missing = fmt.Errorf("redis engine: script %s includes %s: %w", name, lib, err)
			return line
		}
		return src
	})
	return b, missing
}
