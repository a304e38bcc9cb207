package server

import (
	"crypto/rand"
	"encoding/hex"
	"hash/fnv"
)

// palette holds colours readable as text on white and as dots on dark.
var palette = [...]string{
	"#d9480f", "#c2255c", "#9c36b5", "#6741d9", "#3b5bdb", "#1971c2",
	"#0c8599", "#099268", "#2f9e44", "#66a80f", "#e67700", "#5f3dc4",
}

// colorOf returns the colour of a user name: derived from the name only,
// so it is the same on every server and after a restart.
func colorOf(name string) string {
	h := fnv.New32a()
	h.Write([]byte(name))
	return palette[h.Sum32()%uint32(len(palette))]
}

// randomID returns n random bytes as hex.
func randomID(n int) string {
	b := make([]byte, n)
	rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b)
}
