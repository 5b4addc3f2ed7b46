package decision

import (
	"errors"
	"strings"
	"testing"
)

func TestBuildGraph(t *testing.T) {
	tests := []struct {
		name  string
		rules []Rule
		opts  Options
		// errs and warns are substrings expected, one per problem, in order.
		errs, warns []string
	}{
		{
			name:  "self redirect exact",
			rules: []Rule{{ID: "s", Path: "/a", To: "/a/"}},
			errs:  []string{`rule "s": to: redirects to itself`},
		},
		{
			name:  "self redirect same host path-only",
			rules: []Rule{{ID: "s", Host: "example.com", Path: "/a", To: "/a"}},
			errs:  []string{`rule "s": to: redirects to itself`},
		},
		{
			name:  "prefix into itself grows forever",
			rules: []Rule{{ID: "p", Path: "/a", Match: MatchPrefix, To: "/a/b"}},
			errs:  []string{`rule "p": to: redirects to itself`},
		},
		{
			name:  "strict trailing slash is not a self redirect",
			rules: []Rule{{ID: "slash", Path: "/a", To: "/a/", TrailingSlash: TrailingSlashStrict}},
		},
		{
			name:  "scheme upgrade on the same host is not a self redirect",
			rules: []Rule{{ID: "up", Host: "example.com", Path: "/", Match: MatchPrefix, To: "https://example.com/"}},
		},
		{
			name: "cycle",
			rules: []Rule{
				{ID: "a", Path: "/a", To: "/b"},
				{ID: "b", Path: "/b", To: "/a"},
			},
			errs: []string{`rule "a": to: redirect cycle: "a" → "b" → "a"`},
		},
		{
			name: "cycle across hosts",
			rules: []Rule{
				{ID: "apex", Host: "example.com", Path: "/x", To: "https://www.example.com/x"},
				{ID: "www", Host: "www.example.com", Path: "/x", Match: MatchPrefix, To: "https://example.com/x"},
			},
			errs: []string{`redirect cycle: "apex" → "www" → "apex"`},
		},
		{
			name: "chain is a warning",
			rules: []Rule{
				{ID: "a", Path: "/a", To: "/b"},
				{ID: "b", Path: "/b", To: "/c"},
			},
			warns: []string{`rule "a": to: redirect chain: "a" → "b"`},
		},
		{
			name: "chain flattened is not a warning",
			rules: []Rule{
				{ID: "a", Path: "/a", To: "/b"},
				{ID: "b", Path: "/b", To: "/c"},
			},
			opts: Options{FlattenChains: true},
		},
		{
			name: "shadowed exact",
			rules: []Rule{
				{ID: "first", Path: "/a", To: "/x", Line: 3},
				{ID: "second", Path: "/a/", To: "/y", Methods: []string{"GET"}},
			},
			warns: []string{`rule "second": path: never matches: rule "first" (line 3)`},
		},
		{
			name: "not shadowed when the first has a method filter",
			rules: []Rule{
				{ID: "first", Path: "/a", To: "/x", Methods: []string{"GET"}},
				{ID: "second", Path: "/a", To: "/y"},
			},
		},
		{
			name: "not shadowed when the first has headers",
			rules: []Rule{
				{ID: "first", Path: "/a", To: "/x", Headers: map[string]string{"x-beta": "1"}},
				{ID: "second", Path: "/a", To: "/y"},
			},
		},
		{
			name: "shadowed by a case-insensitive rule",
			rules: []Rule{
				{ID: "first", Path: "/a", To: "/x", CaseInsensitive: true},
				{ID: "second", Path: "/A", To: "/y"},
			},
			warns: []string{`rule "second": path: never matches`},
		},
		{
			name: "shadowed prefix and pattern",
			rules: []Rule{
				{ID: "p1", Path: "/d", Match: MatchPrefix, To: "/x"},
				{ID: "p2", Path: "/d", Match: MatchPrefix, To: "/y"},
				{ID: "t1", Path: "/t/:a", Match: MatchPattern, To: "/x"},
				{ID: "t2", Path: "/t/:a", Match: MatchPattern, To: "/y"},
			},
			warns: []string{`rule "p2": path: never matches`, `rule "t2": path: never matches`},
		},
		{
			name: "different hosts do not shadow",
			rules: []Rule{
				{ID: "a", Host: "a.example", Path: "/a", To: "/x"},
				{ID: "b", Host: "b.example", Path: "/a", To: "/y"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ix, warns, err := Build(tt.rules, tt.opts)
			var gotErrs []string
			if err != nil {
				var re *RulesError
				if !errors.As(err, &re) {
					t.Fatalf("error %T %v, want *RulesError", err, err)
				}
				for _, p := range re.Problems {
					gotErrs = append(gotErrs, p.String())
				}
				if ix != nil {
					t.Error("an index came with an error")
				}
			}
			var gotWarns []string
			for _, p := range warns {
				if p.Severity != SeverityWarning {
					t.Errorf("warning with severity %v: %s", p.Severity, p)
				}
				gotWarns = append(gotWarns, p.String())
			}
			matchAll(t, "errors", gotErrs, tt.errs)
			matchAll(t, "warnings", gotWarns, tt.warns)
		})
	}
}

func matchAll(t *testing.T, what string, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s = %q, want %d matching %q", what, got, len(want), want)
	}
	for i := range want {
		if !strings.Contains(got[i], want[i]) {
			t.Errorf("%s[%d] = %q, want it to contain %q", what, i, got[i], want[i])
		}
	}
}

// TestBuildListsEveryProblem: field errors from checkRule and duplicate ids
// all come back in one *RulesError, so a file is fixed in one pass.
func TestBuildListsEveryProblem(t *testing.T) {
	_, _, err := Build([]Rule{
		{ID: "a", Path: "/a", To: "/b", Status: 404},
		{ID: "a", Path: "/c", To: "/d"},
		{ID: "c", Path: "/e", To: "/f\r\nSet-Cookie: x"},
	}, Options{})
	var re *RulesError
	if !errors.As(err, &re) {
		t.Fatalf("error = %v, want *RulesError", err)
	}
	fields := map[string]bool{}
	for _, p := range re.Problems {
		fields[p.Field] = true
	}
	for _, f := range []string{"status", "id", "to"} {
		if !fields[f] {
			t.Errorf("no problem on %s in %v", f, re)
		}
	}
}
