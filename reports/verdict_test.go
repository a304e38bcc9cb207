package reports

import "testing"

// TestVerdictText pins the verdict's text, which every rendering and the CLI
// take from these methods.
func TestVerdictText(t *testing.T) {
	for _, c := range []struct {
		v                     Verdict
		word, why, line, mark string
	}{
		{Verdict{Pass: true, Reason: "ok"}, "PASS", "", "PASS", "pass"},
		{Verdict{Reason: "per-tab: 3 lost (max 0)"}, "FAIL", "per-tab: 3 lost (max 0)", "FAIL: per-tab: 3 lost (max 0)", "FAIL"},
		{Verdict{}, "FAIL", "no verdict recorded", "FAIL: no verdict recorded", "FAIL"},
	} {
		if got := [4]string{c.v.Word(), c.v.Why(), c.v.String(), c.v.Mark()}; got != [4]string{c.word, c.why, c.line, c.mark} {
			t.Errorf("%+v: Word, Why, String, Mark = %q, want %q", c.v, got, [4]string{c.word, c.why, c.line, c.mark})
		}
	}
}
