package workerjs_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

// TestErrorCodesMirrorMux checks that static/core/errors.js, the one module
// of error names and codes that the hub, client.js and the page share, has
// exactly the Err and Code constants of mux/errors.go, key for key
// (ErrNameTaken is ERR.nameTaken, CodeTooLarge is CODE.tooLarge).
func TestErrorCodesMirrorMux(t *testing.T) {
	goErr, goCode := muxErrors(t)
	js, err := os.ReadFile("static/core/errors.js")
	if err != nil {
		t.Fatal(err)
	}
	jsErr := jsObject(t, string(js), "ERR")
	jsCode := jsObject(t, string(js), "CODE")
	if len(goErr) < 20 || len(goCode) < 15 {
		t.Fatalf("read %d error names and %d codes from mux/errors.go: the parser missed them", len(goErr), len(goCode))
	}
	if !maps.Equal(goErr, jsErr) {
		t.Errorf("error names differ:\n mux: %v\n  js: %v", sorted(goErr), sorted(jsErr))
	}
	if !maps.Equal(goCode, jsCode) {
		t.Errorf("codes differ:\n mux: %v\n  js: %v", sorted(goCode), sorted(jsCode))
	}
	// every error name written out in the browser code comes from the module
	for _, f := range []string{"static/core/hub.js", "static/client.js", "static/app.js", "static/core/conn.js"} {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range goErr {
			if strings.Contains(string(src), "'"+name+"'") || strings.Contains(string(src), `"`+name+`"`) {
				t.Errorf("%s spells the error %q: use ERR from core/errors.js", f, name)
			}
		}
	}
}

// muxErrors reads the Err (string) and Code (int) constants of
// mux/errors.go, keyed as errors.js keys them.
func muxErrors(t *testing.T) (errs, codes map[string]string) {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "../mux/errors.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	errs, codes = map[string]string{}, map[string]string{}
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, s := range g.Specs {
			vs := s.(*ast.ValueSpec)
			for i, n := range vs.Names {
				if i >= len(vs.Values) {
					continue
				}
				lit, ok := vs.Values[i].(*ast.BasicLit)
				if !ok {
					continue
				}
				switch {
				case strings.HasPrefix(n.Name, "Err") && lit.Kind == token.STRING:
					v, _ := strconv.Unquote(lit.Value)
					errs[lowerFirst(n.Name[3:])] = v
				case strings.HasPrefix(n.Name, "Code") && lit.Kind == token.INT:
					codes[lowerFirst(n.Name[4:])] = lit.Value
				}
			}
		}
	}
	return errs, codes
}

// jsObject reads `export const NAME = Object.freeze({ key: value, ... })`.
func jsObject(t *testing.T, src, name string) map[string]string {
	t.Helper()
	m := regexp.MustCompile(`(?s)export const ` + name + ` = Object\.freeze\(\{(.*?)\}\);`).FindStringSubmatch(src)
	if m == nil {
		t.Fatalf("errors.js has no %s", name)
	}
	out := map[string]string{}
	for _, kv := range regexp.MustCompile(`(\w+):\s*('([^']*)'|\d+)`).FindAllStringSubmatch(m[1], -1) {
		v := kv[2]
		if kv[3] != "" {
			v = kv[3]
		}
		out[kv[1]] = v
	}
	return out
}

// lowerFirst lowers a Go name's leading capitals as JavaScript spells
// keys: TooLarge -> tooLarge, IPRateLimited -> ipRateLimited, OK -> ok.
func lowerFirst(s string) string {
	k := 0
	for k < len(s) && unicode.IsUpper(rune(s[k])) {
		k++
	}
	if k > 1 && k < len(s) {
		k-- // the last capital starts the next word
	}
	return strings.ToLower(s[:k]) + s[k:]
}

func sorted(m map[string]string) []string {
	var out []string
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	slices.Sort(out)
	return out
}
