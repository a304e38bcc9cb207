package reports

// Verdict says whether a run met its thresholds, and if not, why.
//
// Its text is written in one place, the methods below: the text summary, the
// HTML page and the CLI's lines and errors all show a verdict through them,
// so that it reads the same everywhere.
type Verdict struct {
	Pass bool `json:"pass"`
	// Reason is a one-line explanation ("ok" or the first failed thresholds).
	Reason string `json:"reason"`
}

const (
	verdictPass = "PASS"
	verdictFail = "FAIL"
	// noVerdict explains a FAIL without a reason: a result whose verdict
	// was never evaluated.
	noVerdict = "no verdict recorded"
)

// Word is the verdict in one word: "PASS" or "FAIL" (the HTML page's badge).
func (v Verdict) Word() string {
	if v.Pass {
		return verdictPass
	}
	return verdictFail
}

// Why is what made the verdict FAIL (its reason, or "no verdict recorded"
// when it has none), and "" when it passed.
func (v Verdict) Why() string {
	switch {
	case v.Pass:
		return ""
	case v.Reason == "":
		return noVerdict
	}
	return v.Reason
}

// String is the verdict on one line: "PASS", or "FAIL: " and why.
func (v Verdict) String() string {
	if v.Pass {
		return verdictPass
	}
	return verdictFail + ": " + v.Why()
}

// Mark is the verdict in a table cell: "pass", or "FAIL" in capitals so that
// a failed run stands out among the others.
func (v Verdict) Mark() string {
	if v.Pass {
		return "pass"
	}
	return verdictFail
}
