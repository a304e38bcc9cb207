package reports

import (
	"fmt"
	"slices"
	"strings"
)

// noteGroup is a titled group of known Run.Notes keys, in display order.
type noteGroup struct {
	title string
	keys  [][2]string // key, label
}

// noteGroups lists the notes the load generator writes (package loadgen,
// docs/loadgen.md), grouped, with a short label each. Keys starting with
// "server_" are the target's /stats counter deltas over the run and form
// their own group; any other key is shown under "other" by its name.
var noteGroups = []noteGroup{
	{"room messages", [][2]string{
		{NoteDeliveriesByPush, "delivered by push"},
		{NoteDeliveriesByResume, "delivered by resume or history page"},
		{NoteResumeResets, "resumes answered with reset"},
		{NoteResumeResetOffsets, "offsets gone at a reset (not lost)"},
		{NoteEpochResets, "rooms that changed epoch (history lost)"},
		{NoteTracksExcused, "tracks closed early (excused)"},
		{NoteContentUnchecked, "messages too old for the content check"},
		{NoteSendsUnconfirmed, "sends never acknowledged (not re-sent)"},
		{NoteSendsRefusedShutdown, "sends refused: server shutting down"},
		{NoteSendsResent, "sends re-sent after a lost link (same cid)"},
		{NoteSendsResentDup, "  of them answered dup (published before)"},
	}},
	{"private messages", [][2]string{
		{NoteDMExpected, "DM copies expected"},
		{NoteDMDelivered, "DM copies delivered"},
		{NoteDMExtra, "DM copies to attaching tabs (extra)"},
		{NoteDMLostExcused, "DM copies missed, excused (disruption)"},
		{NoteDMCountMismatchExcused, "DM session counts off, excused"},
		{NoteDMUnconfirmed, "DMs never acknowledged (not checked)"},
		{NoteDMTargetOffline, "DMs refused: target offline"},
		{NoteDMNotSentOffline, "DMs not sent: tab offline"},
	}},
	{"Redis (imload run --nodes), over the run", [][2]string{
		{NoteRedisCommands, "commands processed"},
		{NoteRedisEvalsha, "script calls (EVALSHA)"},
		{NoteRedisSpublish, "sharded publishes (SPUBLISH)"},
		{NoteRedisBytesIn, "bytes in"},
		{NoteRedisBytesOut, "bytes out"},
	}},
	{"disruptions", [][2]string{
		{NoteSocketsKilled, "sockets killed on purpose"},
		{NoteTabsClosed, "tabs closed (churn)"},
		{NoteGoAways, "go-aways received"},
		{NoteDialFailures, "dial failures"},
		{NoteLBSRefetches, "/lbs address list refetches"},
		{NoteBrowsersGaveUp, "browsers that gave up"},
	}},
	{"tokens", [][2]string{
		{NoteTokensMinted, "tokens signed"},
		{NoteTokenExpiring, "token_expiring pushes"},
		{NoteTokenRefreshes, "tokens refreshed"},
	}},
}

// NoteLabel returns the short human label of a Run.Notes key: a known key's
// label ("resume_reset_offsets" → "offsets gone at a reset (not lost)"), a
// /stats delta's counter ("server_messages_out" → "server /stats Δ
// messages_out"), or else the key itself.
func NoteLabel(key string) string {
	for _, g := range noteGroups {
		for _, kl := range g.keys {
			if kl[0] == key {
				return kl[1]
			}
		}
	}
	if rest, ok := strings.CutPrefix(key, NoteServerPrefix); ok && rest != "" {
		return "server /stats Δ " + rest
	}
	return key
}

// noteSection is one group of the notes present in a result: its title and
// its keys with the labels to show (within the group, so shorter for /stats
// deltas).
type noteSection struct {
	title  string
	keys   []string
	labels []string
}

// noteSections groups the notes keys present in any run of r: the known
// groups in order, then the server's /stats deltas, then unknown keys, each
// sorted by name after the known order. It returns nil when no run has
// notes.
func noteSections(r *Result) []noteSection {
	present := map[string]bool{}
	for _, run := range r.Runs {
		for k := range run.Notes {
			present[k] = true
		}
	}
	if len(present) == 0 {
		return nil
	}
	var out []noteSection
	known := map[string]bool{}
	for _, g := range noteGroups {
		s := noteSection{title: g.title}
		for _, kl := range g.keys {
			known[kl[0]] = true
			if present[kl[0]] {
				s.keys = append(s.keys, kl[0])
				s.labels = append(s.labels, kl[1])
			}
		}
		if len(s.keys) > 0 {
			out = append(out, s)
		}
	}
	server := noteSection{title: "server /stats over the run (Δ)"}
	other := noteSection{title: "other"}
	for _, k := range sortedKeys(present) {
		if known[k] {
			continue
		}
		if rest, ok := strings.CutPrefix(k, NoteServerPrefix); ok && rest != "" {
			server.keys = append(server.keys, k)
			server.labels = append(server.labels, rest)
			continue
		}
		other.keys = append(other.keys, k)
		other.labels = append(other.labels, k)
	}
	for _, s := range []noteSection{server, other} {
		if len(s.keys) > 0 {
			out = append(out, s)
		}
	}
	return out
}

// noteCell formats a run's note: its count, 0 when the run has notes but not
// this one (the load generator omits zero counts), "-" when the run has no
// notes at all (an older or hand-made result).
func noteCell(run *Run, key string) string {
	if run.Notes == nil {
		return "-"
	}
	return fmtInt(run.Notes[key])
}

// notesRows is the notes table, one row per key and one column per run,
// grouped: the first group's title heads the table, the others are section
// rows. It returns nil when no run has notes.
func notesRows(r *Result) [][]string {
	secs := noteSections(r)
	if secs == nil {
		return nil
	}
	var rows [][]string
	for i, s := range secs {
		if i == 0 {
			rows = append(rows, headerRow(r, s.title))
		} else {
			rows = append(rows, []string{s.title})
		}
		for j, k := range s.keys {
			rows = append(rows, perRun(r, "  "+s.labels[j], func(run *Run) string { return noteCell(run, k) }))
		}
	}
	return rows
}

// notesHTMLTable is the notes table for the HTML report: one section row per
// group, and the raw key of each row as its label's tooltip.
func notesHTMLTable(r *Result) (htmlTable, bool) {
	secs := noteSections(r)
	if secs == nil {
		return htmlTable{}, false
	}
	t := htmlTable{Head: headerRow(r, "")}
	for _, s := range secs {
		t.Rows = append(t.Rows, htmlRow{Section: s.title})
		for j, k := range s.keys {
			cells := []htmlCell{{Text: s.labels[j], Title: k}}
			for i := range r.Runs {
				cells = append(cells, htmlCell{Text: noteCell(&r.Runs[i], k)})
			}
			t.Rows = append(t.Rows, htmlRow{Cells: cells})
		}
	}
	return t, true
}

// hasDMDelivery says whether any run of r has a private-message delivery
// outcome.
func hasDMDelivery(r *Result) bool {
	return slices.ContainsFunc(r.Runs, func(run Run) bool { return run.DMDelivery != nil })
}

// dmRows are the private-message delivery rows of the headline table (after
// the room messages' delivery), or nil when no run has DMDelivery.
func dmRows(r *Result) [][]string {
	if !hasDMDelivery(r) {
		return nil
	}
	dm := func(f func(d *Delivery) string) func(run *Run) string {
		return func(run *Run) string {
			if run.DMDelivery == nil {
				return "-"
			}
			return f(run.DMDelivery)
		}
	}
	return [][]string{
		perRun(r, "DM copies delivered", dm(func(d *Delivery) string { return fmtInt(d.Delivered) })),
		perRun(r, "DM lost / duplicated", dm(func(d *Delivery) string {
			return fmt.Sprintf("%s / %s", fmtInt(d.Lost), fmtInt(d.Duplicated))
		})),
	}
}
