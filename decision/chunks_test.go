package decision_test

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

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
			o.Decisions = append(o.Decisions, fmt.Sprintf("%v %d %s %s %d", err, d.Status, d.Location, d.RuleID, d.RulePos))
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
