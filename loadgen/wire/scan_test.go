package wire

import (
	"testing"

	"imload/mux"
)

func TestDecodeString(t *testing.T) {
	if got := string(decodeString([]byte(`a\"b\u00e9`))); got != "a\"bé" {
		t.Fatalf("%q", got)
	}
	plain := []byte("abc:1:2:3|...")
	if got := decodeString(plain); &got[0] != &plain[0] {
		t.Fatal("a string without escapes was copied")
	}
	if got := string(decodeString([]byte(`bad\`))); got != `bad\` {
		t.Fatalf("invalid escape: %q", got)
	}
}

// Strings appended to commands are what mux.AppendString makes of them.
func TestAppendString(t *testing.T) {
	for _, s := range []string{"", "plain-1", `q"b\s`, "<&>", "tab\tnl\n", "été", "\xff", "\u2028"} {
		want := string(mux.AppendString(nil, s))
		if got := string(appendString(nil, s)); got != want {
			t.Errorf("%q: %s, want %s", s, got, want)
		}
		if got := string(appendStringBytes(nil, []byte(s))); got != want {
			t.Errorf("%q as bytes: %s, want %s", s, got, want)
		}
	}
}
