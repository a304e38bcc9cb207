package engine

import "hash/fnv"

// palette holds colours readable as text on white and as dots on dark.
var palette = [...]string{
	"#d9480f", "#c2255c", "#9c36b5", "#6741d9", "#3b5bdb", "#1971c2",
	"#0c8599", "#099268", "#2f9e44", "#66a80f", "#e67700", "#5f3dc4",
}

// Color returns the colour (#rrggbb) of a user name: derived from the name
// only, so it is the same on every node, with every engine, and after a
// restart.
func Color(name string) string {
	h := fnv.New32a()
	h.Write([]byte(name))
	return palette[h.Sum32()%uint32(len(palette))]
}
