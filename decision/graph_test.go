package decision

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
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
			name:  "pattern whose target is its own request",
			rules: []Rule{{ID: "u", Path: "/u/:x", Match: MatchPattern, To: "/u/:x"}},
			errs:  []string{`rule "u": to: redirects to itself`},
		},
		{
			name:  "splat whose target is its own request",
			rules: []Rule{{ID: "v", Host: "example.com", Path: "/v/*", Match: MatchPattern, To: "/v/:splat"}},
			errs:  []string{`rule "v": to: redirects to itself`},
		},
		{
			name:  "pattern whose target it matches again grows forever",
			rules: []Rule{{ID: "g", Host: "*.example.com", Path: "/g/*", Match: MatchPattern, To: "/g/new/:splat"}},
			errs:  []string{`rule "g": to: redirects to itself`},
		},
		{
			name:  "pattern whose fixed target it matches",
			rules: []Rule{{ID: "f", Path: "/f/:x", Match: MatchPattern, To: "/f/new"}},
			errs:  []string{`rule "f": to: redirects to itself`},
		},
		{
			name:  "regex whose target is its own request",
			rules: []Rule{{ID: "rx", Path: "/rx/(.*)", Match: MatchRegex, To: "/rx/$1"}},
			errs:  []string{`rule "rx": to: redirects to itself`},
		},
		{
			name:  "add-slash regex that also matches its target",
			rules: []Rule{{ID: "slash", Path: "/(.*[^/])", Match: MatchRegex, To: "/$1/"}},
			errs:  []string{`rule "slash": to: redirects to itself`},
		},
		{
			name:  "add-slash regex with strict trailing slash",
			rules: []Rule{{ID: "slash", Path: "/(.*[^/])", Match: MatchRegex, To: "/$1/", TrailingSlash: TrailingSlashStrict}},
		},
		{
			name:  "pattern to elsewhere",
			rules: []Rule{{ID: "u", Path: "/u/:x", Match: MatchPattern, To: "/users/:x"}},
		},
		{
			name:  "pattern scheme upgrade on its own host is not a self redirect",
			rules: []Rule{{ID: "up", Host: "example.com", Path: "/*", Match: MatchPattern, To: "https://example.com/:splat"}},
		},
		{
			name: "patterns pointing at each other",
			rules: []Rule{
				{ID: "a", Path: "/a/:x", Match: MatchPattern, To: "/b/:x"},
				{ID: "b", Path: "/b/:x", Match: MatchPattern, To: "/a/:x"},
			},
			errs: []string{`rule "a": to: redirect cycle: "a" → "b" → "a"`},
		},
		{
			name: "pattern and prefix pointing at each other",
			rules: []Rule{
				{ID: "a", Path: "/a/:x", Match: MatchPattern, To: "/b/:x"},
				{ID: "b", Path: "/b", Match: MatchPrefix, To: "/a"},
			},
			errs: []string{`rule "a": to: redirect cycle: "a" → "b" → "a"`},
		},
		{
			name: "pattern chain is a warning",
			rules: []Rule{
				{ID: "a", Path: "/a/:x", Match: MatchPattern, To: "/b/:x"},
				{ID: "b", Path: "/b/*", Match: MatchPattern, To: "/c/:splat"},
			},
			warns: []string{`rule "a": to: redirect chain: "a" → "b"`},
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
			name: "a shadow rule does not hide the rule it would replace",
			rules: []Rule{
				{ID: "trial", Path: "/a", To: "/new", Mode: ModeShadow},
				{ID: "current", Path: "/a", To: "/old"},
			},
		},
		{
			name: "a rule with a time window does not hide the next",
			rules: []Rule{
				{ID: "sale", Path: "/a", To: "/sale", ActiveFrom: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)},
				{ID: "usual", Path: "/a", To: "/shop"},
				{ID: "ended", Path: "/b", Match: MatchPrefix, To: "/x", ActiveUntil: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)},
				{ID: "after", Path: "/b", Match: MatchPrefix, To: "/y"},
			},
		},
		{
			name: "a shadow rule hidden by an enforced one never answers either",
			rules: []Rule{
				{ID: "current", Path: "/a", To: "/old"},
				{ID: "trial", Path: "/a", To: "/new", Mode: ModeShadow},
			},
			warns: []string{`rule "trial": path: never matches: rule "current"`},
		},
		{
			name: "a shadow rule's loop is refused before it is enforced",
			rules: []Rule{
				{ID: "trial", Path: "/a", To: "/b", Mode: ModeShadow},
				{ID: "back", Path: "/b", To: "/a"},
			},
			errs: []string{`rule "trial": to: redirect cycle: "trial" → "back" → "trial"`},
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

// TestLoopFixtures loads testdata/rules/loop_*.yaml as the daemon does and
// checks every problem, word for word, file:line first.
func TestLoopFixtures(t *testing.T) {
	for _, tt := range []struct {
		file string
		want []string
	}{
		{"loop_pattern.yaml", []string{
			`loop_pattern.yaml:3: rule "user": to: redirects to itself: a request for /u/x1 is sent to /u/x1, which this rule matches again`,
			`loop_pattern.yaml:7: rule "grow": to: redirects to itself: a request for /v/x1 is sent to /v/new/x1, which this rule matches again`,
			`loop_pattern.yaml:11: rule "add-slash": to: redirects to itself: a request for /xx is sent to /xx/, which this rule matches again`,
		}},
		{"loop_cycle.yaml", []string{
			`loop_cycle.yaml:3: rule "a": to: redirect cycle: "a" → "b" → "c" → "a"`,
		}},
		{"loop_upgrade.yaml", nil},
	} {
		t.Run(tt.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", "rules", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			c, err := NewStore(Options{}).ReplaceFile(tt.file, data)
			var got []string
			if err != nil {
				var re *RulesError
				if !errors.As(err, &re) {
					t.Fatalf("error %v, want a *RulesError", err)
				}
				got = problemStrings(re.Problems)
			} else {
				got = problemStrings(c.Warnings())
				c.Abort()
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
		})
	}
}
