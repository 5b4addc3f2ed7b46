package decision_test

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/redirectd/redirectd/decision"
	"github.com/redirectd/redirectd/decision/rulegen"
)

// TestLoadOnManyCores checks that a load spread over several goroutines
// (checks, compile) gives what one goroutine gives: the same rules, the
// same problems in the same order, the same decisions. The set spans many
// load chunks, so every worker takes several.
func TestLoadOnManyCores(t *testing.T) {
	rules := rulegen.Rules(rulegen.Config{N: 20000, Hosts: 7, Seed: 3})
	// Problems in chunks far apart: a bad status, then a duplicate id.
	rules[150].Status = 304
	rules[17000].ID = rules[40].ID
	file := decision.MarshalRules(rules)
	reqs := rulegen.Requests(rules, rulegen.RequestConfig{N: 3000, Hit: 0.8, Seed: 4})
	now := time.Unix(1_800_000_000, 0)

	type outcome struct {
		ParseErr, BuildErr string
		Warnings           []decision.Problem
		Counts             []int
		Decisions          []string
	}
	load := func(procs int) outcome {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
		var o outcome
		_, err := decision.ParseRules("rules.yaml", file)
		o.ParseErr = fmt.Sprint(err)
		ix, warns, err := decision.Build(append([]decision.Rule(nil), rules...), decision.Options{})
		o.BuildErr, o.Warnings = fmt.Sprint(err), warns
		good := append([]decision.Rule(nil), rules...)
		good[150].Status, good[17000].ID = 0, "renamed"
		if ix, _, err = decision.Build(good, decision.Options{}); err != nil {
			t.Fatalf("GOMAXPROCS=%d: Build of the fixed set: %v", procs, err)
		}
		for _, k := range []decision.MatchKind{decision.MatchExact, decision.MatchPrefix, decision.MatchPattern, decision.MatchRegex} {
			o.Counts = append(o.Counts, ix.Count(k))
		}
		for i := range reqs {
			d, err := ix.Decide(&reqs[i], now)
			o.Decisions = append(o.Decisions, fmt.Sprintf("%v %d %s %s", err, d.Status, d.Location, d.RuleID))
		}
		return o
	}
	one, many := load(1), load(4)
	if one.ParseErr == "<nil>" || one.BuildErr == "<nil>" {
		t.Fatalf("the broken set loaded: parse %s, build %s", one.ParseErr, one.BuildErr)
	}
	if diff := cmp.Diff(one, many); diff != "" {
		t.Errorf("GOMAXPROCS=1 vs 4 (-one +many):\n%s", diff)
	}
}

// TestLoadRules checks the one-check file load against ParseRules followed
// by Build: the same outcome, with every problem in the file, warnings at
// the line of their field.
func TestLoadRules(t *testing.T) {
	tests := []struct {
		name, file string
		wantErr    string   // "" = loads
		wantWarns  []string // the start of Problem.String() of each warning
	}{
		{"clean", "rules:\n  - id: a\n    path: /a\n    to: /b\n", "", nil},
		{
			"warning from the rule's own check, at its field's line",
			"rules:\n  - id: p\n    path: /docs/\n    match: prefix\n    to: /d\n",
			"",
			[]string{`r.yaml:3: warning: rule "p": path: prefix "/docs/" ends with '/'`},
		},
		{
			"warning from the graph",
			"rules:\n  - id: a\n    path: /a\n    to: /b\n  - id: b\n    path: /b\n    to: /c\n",
			"",
			[]string{`r.yaml:2: warning: rule "a": to: redirect chain`},
		},
		{
			"error from the rule's own check",
			"rules:\n  - id: a\n    path: /a\n    to: /b\n    status: 304\n",
			`r.yaml:5: rule "a": status:`,
			nil,
		},
		{
			"error from the graph",
			"rules:\n  - id: a\n    path: /a\n    to: /b\n  - id: b\n    path: /b\n    to: /a\n",
			`r.yaml:2: rule "a": to: redirect cycle`,
			nil,
		},
		{
			"duplicate id",
			"rules:\n  - id: a\n    path: /a\n    to: /b\n  - id: a\n    path: /c\n    to: /b\n",
			`r.yaml:5: rule "a": id: duplicate id`,
			nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ix, warns, err := decision.LoadRules("r.yaml", []byte(tt.file), decision.Options{})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				if ix != nil {
					t.Error("an Index came with the error")
				}
			} else if err != nil {
				t.Fatalf("err = %v", err)
			}
			var got []string
			for _, w := range warns {
				got = append(got, w.String())
			}
			if len(got) != len(tt.wantWarns) {
				t.Fatalf("warnings %q, want %d", got, len(tt.wantWarns))
			}
			for i := range got {
				if !strings.HasPrefix(got[i], tt.wantWarns[i]) {
					t.Errorf("warning %q, want it to start with %q", got[i], tt.wantWarns[i])
				}
			}
			if err != nil {
				return
			}
			// The same rules and index as the two-step path.
			parsed, perr := decision.ParseRules("r.yaml", []byte(tt.file))
			if perr != nil {
				t.Fatal(perr)
			}
			var rules []decision.Rule
			for r := range ix.All() {
				rules = append(rules, *r)
			}
			if diff := cmp.Diff(parsed, rules, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("rules (-ParseRules +LoadRules):\n%s", diff)
			}
			if ix.Len() != len(parsed) {
				t.Errorf("index holds %d rules, want %d", ix.Len(), len(parsed))
			}
		})
	}
}
