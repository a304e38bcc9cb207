package reports

// Reading, checking and writing result.json.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// ErrUnsupportedVersion is wrapped by Load's error for a file written by a
// newer imload whose schema version this build does not know.
var ErrUnsupportedVersion = errors.New("unsupported result schema version")

// Load reads and checks a result.json file. Its errors name the file and the
// problem: not found, empty, not JSON (with line and column), truncated,
// missing or unsupported version, or inconsistent content.
func Load(path string) (*Result, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read result: %w", err)
	}
	r, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return r, nil
}

// Parse decodes and checks the content of a result.json file (see Load).
func Parse(data []byte) (*Result, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, errors.New("empty file, not an imload result")
	}
	var probe struct {
		Version *json.RawMessage `json:"version"`
		Runs    *json.RawMessage `json:"runs"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, describeJSONError(data, err)
	}
	if probe.Version == nil {
		return nil, errors.New("not an imload result: no \"version\" field")
	}
	var version int
	if err := json.Unmarshal(*probe.Version, &version); err != nil {
		return nil, fmt.Errorf("not an imload result: \"version\" is %s, want an integer", *probe.Version)
	}
	if version > SchemaVersion {
		return nil, fmt.Errorf("%w: schema version %d is newer than this imload supports (%d); use a newer imload to read it",
			ErrUnsupportedVersion, version, SchemaVersion)
	}
	if version < 1 {
		return nil, fmt.Errorf("%w: schema version %d is invalid (versions start at 1)", ErrUnsupportedVersion, version)
	}
	if probe.Runs == nil {
		return nil, errors.New("not an imload result: no \"runs\" field")
	}
	var r Result
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, describeJSONError(data, err)
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return &r, nil
}

// describeJSONError turns a JSON decoding error into a message that says
// where and what: truncation, a syntax error at line:column, or a field of the
// wrong type.
func describeJSONError(data []byte, err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		if syn.Offset >= int64(len(bytes.TrimRight(data, " \t\r\n"))) {
			return fmt.Errorf("truncated JSON: the file ends after %d bytes in the middle of a value (was the run interrupted while writing?)", len(data))
		}
		line, col := lineCol(data, syn.Offset-1)
		return fmt.Errorf("not valid JSON at line %d, column %d: %w", line, col, err)
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			field = "(top level)"
		}
		line, col := lineCol(data, typ.Offset)
		return fmt.Errorf("field %q at line %d, column %d: JSON %s where Go %s was expected", field, line, col, typ.Value, typ.Type)
	}
	return fmt.Errorf("decode JSON: %w", err)
}

// lineCol converts a byte offset into a 1-based line and column.
func lineCol(data []byte, off int64) (line, col int) {
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	if off < 0 {
		off = 0
	}
	before := data[:off]
	line = bytes.Count(before, []byte("\n")) + 1
	col = int(off) - bytes.LastIndexByte(before, '\n')
	return line, col
}

// Validate checks the consistency of a decoded result: known modes, no
// duplicate modes, positive client and tab counts, nodes named once each,
// and decodable histograms.
func (r *Result) Validate() error {
	if len(r.Runs) == 0 {
		return errors.New("result has no runs")
	}
	seen := map[string]bool{}
	for i, run := range r.Runs {
		if run.Mode != ModeShared && run.Mode != ModePerTab {
			return fmt.Errorf("run %d: unknown mode %q (want %q or %q)", i, run.Mode, ModeShared, ModePerTab)
		}
		if seen[run.Mode] {
			return fmt.Errorf("run %d: mode %q appears twice", i, run.Mode)
		}
		seen[run.Mode] = true
		if run.Clients < 0 || run.Tabs < 0 {
			return fmt.Errorf("run %d (%s): negative clients or tabs", i, run.Mode)
		}
		targets := map[string]bool{}
		for j, n := range run.Nodes {
			if n.Target == "" {
				return fmt.Errorf("run %d (%s): node %d has no target", i, run.Mode, j)
			}
			if targets[n.Target] {
				return fmt.Errorf("run %d (%s): node %q appears twice", i, run.Mode, n.Target)
			}
			targets[n.Target] = true
		}
		for _, name := range sortedKeys(run.Latency) {
			l := run.Latency[name]
			if l.HDR == "" {
				continue
			}
			if _, err := l.Histogram(); err != nil {
				return fmt.Errorf("run %d (%s): latency %q: %w", i, run.Mode, name, err)
			}
		}
	}
	return nil
}

// Save writes r as indented JSON to path, atomically (a temporary file in the
// same directory renamed over path), so that a reader never sees half a file.
// A zero Version is set to SchemaVersion.
func (r *Result) Save(path string) error {
	if r.Version == 0 {
		r.Version = SchemaVersion
	}
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode result: %w", err)
	}
	data = append(data, '\n')
	return writeFileAtomic(path, data)
}

// writeFileAtomic writes data to a temporary file next to path and renames it
// over path.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Chmod(tmp, 0o644); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
