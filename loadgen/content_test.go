package loadgen

import "testing"

func TestContentTable(t *testing.T) {
	ct := newContentTable(2)
	h := func(s string) uint64 { return contentHash([]byte("alice"), []byte("c1"), []byte(s)) }
	ep := []byte("e1")
	// A receiver first, the sender's reply later, another receiver last.
	if !ct.check(0, ep, 7, h("hello"), false) || !ct.check(0, ep, 7, h("hello"), true) || !ct.check(0, ep, 7, h("hello"), false) {
		t.Fatal("the same content under one offset is a mismatch")
	}
	// Another content under the same (room, epoch, offset).
	if ct.check(0, ep, 7, h("other"), false) {
		t.Fatal("other content under offset 7 matched")
	}
	if got := ct.mismatched.Load(); got != 1 {
		t.Fatalf("mismatched %d, want 1", got)
	}
	// The same offset in another room or another epoch is another message.
	if !ct.check(1, ep, 7, h("other"), false) || !ct.check(0, []byte("e2"), 7, h("other"), false) {
		t.Fatal("another room or epoch compared with room 0, epoch e1")
	}
	// A receiver recorded first with the wrong content: the sender's
	// reply is a mismatch and becomes the reference.
	ct.check(0, ep, 8, h("wrong"), false)
	if ct.check(0, ep, 8, h("right"), true) {
		t.Fatal("sender's content matched a different first receiver")
	}
	if !ct.check(0, ep, 8, h("right"), false) || ct.check(0, ep, 8, h("wrong"), false) {
		t.Fatal("the sender's content is not the reference after a mismatch")
	}
	if got := ct.mismatched.Load(); got != 3 {
		t.Fatalf("mismatched %d, want 3", got)
	}
}

// TestContentTableBounded: the table keeps at most contentWindow offsets
// per room and epoch and two epochs per room, however long the run; older
// offsets are not checked (counted), and an entry survives the window's
// growth.
func TestContentTableBounded(t *testing.T) {
	ct := newContentTable(1)
	ep := []byte("e")
	hash := func(o uint64) uint64 { return contentHash(nil, nil, []byte{byte(o), byte(o >> 8), byte(o >> 16)}) }
	for o := uint64(1); o <= 100_000; o++ {
		ct.check(0, ep, o, hash(o), true)
		if o == 1500 && ct.check(0, ep, 3, hash(4), false) {
			t.Fatal("offset 3 lost its entry when the window grew")
		}
	}
	w := &ct.rooms[0].win
	if n := len(w[0].ring) + len(w[1].ring); n > contentWindow {
		t.Fatalf("%d entries kept, want at most %d", n, contentWindow)
	}
	if ct.mismatched.Load() != 1 {
		t.Fatalf("mismatched %d", ct.mismatched.Load())
	}
	before := ct.unchecked.Load()
	if !ct.check(0, ep, 100_000-contentWindow, hash(1), false) || ct.unchecked.Load() != before+1 {
		t.Fatal("an offset below the window was checked")
	}
	if ct.check(0, ep, 100_000-contentWindow+1, hash(1), false) {
		t.Fatal("the oldest offset of the window was not checked")
	}
	// A third epoch replaces the least recently used one.
	ct.check(0, []byte("f"), 1, hash(1), true)
	ct.check(0, ep, 99_999, hash(99_999), false)
	ct.check(0, []byte("g"), 1, hash(1), true)
	if w[0].epoch != "e" && w[1].epoch != "e" {
		t.Fatalf("epochs kept %q %q: the one in use was dropped", w[0].epoch, w[1].epoch)
	}
}

func TestContentHash(t *testing.T) {
	a := contentHash([]byte("ab"), []byte("c"), []byte("t"))
	b := contentHash([]byte("a"), []byte("bc"), []byte("t"))
	if a == b {
		t.Fatal("fields shift into each other")
	}
}

// The check of a push (every delivery goes through it) allocates nothing.
func TestContentCheckAllocs(t *testing.T) {
	ct := newContentTable(1)
	ep, from, cid, text := []byte("epoch-1"), []byte("bob"), []byte("c1-1"), []byte("x:1:1:1|....")
	off := uint64(0)
	if n := testing.AllocsPerRun(1000, func() {
		off++
		ct.check(0, ep, off, contentHash(from, cid, text), false)
	}); n > 0.05 { // the window's growth, amortised
		t.Fatalf("%.2f allocations per check", n)
	}
}
