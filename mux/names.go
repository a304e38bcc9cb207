package mux

import (
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
)

// User names. A name is 1 to MaxNameBytes bytes of letters, ASCII digits
// and '_', '-', '.', where every letter belongs to one Unicode script (the
// Han script may go with Hiragana and Katakana, with Hangul, or with
// Bopomofo, as Japanese, Korean and Chinese names do: UTS #39's "highly
// restrictive" level). So "аlice" (a Cyrillic а among Latin letters)
// cannot pass for "alice". Names are unique without regard to case: two
// names are the same name when their case folds are equal (NameKey), so
// "ALICE" cannot stand next to "alice". Look-alikes within one script
// ("aIice" with a capital i) are not detected.
//
// worker-js/static/core/names.js mirrors this rule; keep the two in step.

// scriptNames are the scripts a letter may belong to, sorted for a stable
// search order (Latin first: most names are Latin).
var scriptNames = func() []string {
	names := make([]string, 0, len(unicode.Scripts))
	for n := range unicode.Scripts {
		if n != "Latin" && n != "Common" && n != "Inherited" {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return append([]string{"Latin"}, names...)
}()

// scriptOf returns the Unicode script of letter r, or "" for a letter of
// no particular script (Common or Inherited: mathematical letters and the
// like, refused) and for the compatibility forms of Latin letters that
// look like plain ones (fullwidth ａ, ligatures like ﬁ), also refused. The
// prolonged sound mark ー (and its half-width form), Common by script but
// only used with kana, counts as Katakana.
func scriptOf(r rune) string {
	switch {
	case r == 'ー' || r == 'ｰ':
		return "Katakana"
	case r >= 0xFF21 && r <= 0xFF3A, r >= 0xFF41 && r <= 0xFF5A, r >= 0xFB00 && r <= 0xFB06:
		return ""
	}
	for _, n := range scriptNames {
		if unicode.Is(unicode.Scripts[n], r) {
			return n
		}
	}
	return ""
}

// scriptSets are the sets of scripts a name may mix; a name whose letters
// are all of one script is always fine.
var scriptSets = [][]string{
	{"Han", "Hiragana", "Katakana"},
	{"Han", "Hangul"},
	{"Han", "Bopomofo"},
}

// compatibleScripts reports whether a name may mix the scripts in seen.
func compatibleScripts(seen []string) bool {
	if len(seen) <= 1 {
		return true
	}
	for _, set := range scriptSets {
		all := true
		for _, s := range seen {
			all = all && contains(set, s)
		}
		if all {
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// CheckName returns nil if s is a valid user name, or a 400 bad_request
// *Error that says what is wrong with it.
func CheckName(s string) error {
	if len(s) == 0 || len(s) > MaxNameBytes {
		return badRequest("name %q is not a valid user name: it must be 1-%d bytes", Echo(s), MaxNameBytes)
	}
	if !utf8.ValidString(s) {
		return badRequest("name %q is not valid UTF-8", Echo(s))
	}
	var seen []string
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9', r == '_', r == '-', r == '.':
		case unicode.IsLetter(r):
			sc := scriptOf(r)
			if sc == "" {
				return badRequest("name %q is not a valid user name: the letter %q belongs to no script (use letters of one alphabet, ASCII digits, _ - .)", Echo(s), r)
			}
			if !contains(seen, sc) {
				seen = append(seen, sc)
				if !compatibleScripts(seen) {
					return badRequest("name %q mixes letters of the scripts %s: a name's letters must all be of one script", Echo(s), strings.Join(seen, " and "))
				}
			}
		default:
			return badRequest("name %q is not a valid user name: %q is not allowed (letters of one script, ASCII digits, _ - .; no spaces, no @)", Echo(s), r)
		}
	}
	return nil
}

// ValidName reports whether s may be a user name (see CheckName). Names
// have no spaces and no '@', so that "@name text" is unambiguous in a chat
// box.
func ValidName(s string) bool { return CheckName(s) == nil }

// NameKey returns the key under which a valid name is unique: its simple
// Unicode case fold (each letter replaced by the smallest letter of its
// case-folding orbit, as strings.EqualFold compares), so that "ALICE",
// "Alice" and "alice" are one name.
func NameKey(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= utf8.RuneSelf || ('A' <= c && c <= 'Z') {
			ascii = false
			break
		}
	}
	if ascii {
		return s // lower-case ASCII already: the common case, no allocation
	}
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		b.WriteRune(foldRune(r))
	}
	return b.String()
}

// foldRune returns the smallest rune of r's simple case-folding orbit
// (for ASCII, the upper-case letter's orbit starts at upper case, so it is
// mapped to lower case explicitly to keep keys readable).
func foldRune(r rune) rune {
	if r < utf8.RuneSelf {
		if 'A' <= r && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return r
	}
	m := r
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		m = min(m, f)
	}
	if m < utf8.RuneSelf && 'A' <= m && m <= 'Z' {
		m += 'a' - 'A' // the Kelvin sign K folds with k and K
	}
	return m
}
