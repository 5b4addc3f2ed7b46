package decision

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/google/go-cmp/cmp"
)

// storeRules is a small set whose rules compete: exact rules that differ
// only by method, patterns and regexes whose slots nest, prefixes at
// several depths, in two host scopes. Targets are under /dest, which no
// rule matches, so no edit makes a cycle or a chain.
func storeRules(rng *rand.Rand, n int) []Rule {
	paths := []struct {
		path  string
		match MatchKind
	}{
		{"/p0", MatchExact}, {"/p1", MatchExact}, {"/p0/x", MatchExact}, {"/P1", MatchExact},
		{"/p0", MatchPrefix}, {"/q", MatchPrefix}, {"/q/r/s", MatchPrefix}, {"/q/r", MatchPrefix},
		{"/p0/:x", MatchPattern}, {"/q/:y/*", MatchPattern}, {"/:a/x", MatchPattern},
		{"/p[0-9]", MatchRegex}, {"/q/(.*)", MatchRegex},
	}
	hosts := []string{"", "h.example", "*.example"}
	methods := [][]string{nil, {"GET"}, {"POST"}}
	rules := make([]Rule, n)
	for i := range rules {
		p := paths[rng.IntN(len(paths))]
		rules[i] = Rule{
			ID: fmt.Sprintf("r%d-%d", i, rng.IntN(1000)), Host: hosts[rng.IntN(len(hosts))],
			Path: p.path, Match: p.match, Methods: methods[rng.IntN(len(methods))],
			To: fmt.Sprintf("/dest/%d", rng.IntN(100)), CaseInsensitive: rng.IntN(4) == 0,
		}
	}
	return rules
}

// storeRequests are requests that reach every rule storeRules makes.
func storeRequests() []Request {
	var reqs []Request
	for _, host := range []string{"h.example", "a.example", "other"} {
		for _, method := range []string{"GET", "POST"} {
			for _, path := range []string{"/p0", "/p1", "/P1", "/p0/x", "/p0/y", "/q", "/q/r", "/q/r/s", "/q/1/2", "/z/x", "/p7", "/", "/none"} {
				reqs = append(reqs, Request{Method: method, Host: host, Target: path, Explain: true})
			}
		}
	}
	return reqs
}

// sameAnswers checks that got answers every request as want does, with
// the same explanation.
func sameAnswers(t *testing.T, what string, got, want *Index) {
	t.Helper()
	for _, req := range storeRequests() {
		g, gerr := got.Decide(&req, testNow)
		w, werr := want.Decide(&req, testNow)
		gs := fmt.Sprintf("%v %v %d %s %s %+v", gerr, g.Redirect, g.Status, g.Location, g.RuleID, g.Explanation)
		ws := fmt.Sprintf("%v %v %d %s %s %+v", werr, w.Redirect, w.Status, w.Location, w.RuleID, w.Explanation)
		if gs != ws {
			t.Fatalf("%s: %s %s%s:\n got %s\nwant %s", what, req.Method, req.Host, req.Target, gs, ws)
		}
	}
}

func ids(ix *Index) []string {
	var out []string
	for r := range ix.All() {
		out = append(out, r.ID)
	}
	return out
}

func ruleIDs(rules []Rule) []string {
	out := make([]string, len(rules))
	for i := range rules {
		out[i] = rules[i].ID
	}
	return out
}

func mustBuild(t *testing.T, rules []Rule) *Index {
	t.Helper()
	ix, _, err := Build(slices.Clone(rules), Options{})
	if err != nil {
		t.Fatal(err)
	}
	return ix
}

// commit(t)(s.Put(r)) commits a change that must be accepted.
func commit(t testing.TB) func(*Change, error) *Index {
	return func(c *Change, err error) *Index {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return c.Commit(Info{})
	}
}

// TestReplaceInPlace edits a set at random (insert, delete, change, move)
// and checks that the store, which writes only the differences to its
// overlay, answers every request, explanation included, as a set built
// from scratch does, and lists the rules in the new file order.
func TestReplaceInPlace(t *testing.T) {
	for seed := range uint64(300) {
		rng := rand.New(rand.NewPCG(seed, 7))
		old := storeRules(rng, 5+rng.IntN(25))
		s := NewStore(Options{})
		commit(t)(s.Replace(slices.Clone(old)))
		// Some of the serving set in the overlay already: a put that
		// replaces, one that adds, a delete.
		if rng.IntN(2) == 0 && len(old) > 2 {
			r := storeRules(rng, 1)[0]
			r.ID = old[0].ID
			old[0] = r
			commit(t)(s.Put(r))
			r = storeRules(rng, 1)[0]
			r.ID = fmt.Sprintf("added-%d", seed)
			old = append(old, r)
			commit(t)(s.Put(r))
			commit(t)(s.Delete(old[1].ID))
			old = slices.Delete(old, 1, 2)
		}
		next := slices.Clone(old)
		edits := 1 + rng.IntN(6)
		for range edits {
			switch i := rng.IntN(len(next)); rng.IntN(4) {
			case 0:
				next = slices.Delete(next, i, i+1)
			case 1:
				next[i].To = fmt.Sprintf("/dest/changed-%d", rng.IntN(100))
			case 2:
				r := storeRules(rng, 1)[0]
				r.ID = fmt.Sprintf("new-%d", rng.IntN(1e6))
				next = slices.Insert(next, i, r)
			case 3:
				r := next[i]
				next = slices.Delete(next, i, i+1)
				j := rng.IntN(len(next) + 1)
				next = slices.Insert(next, j, r)
			}
			if len(next) == 0 {
				next = storeRules(rng, 1)
			}
		}
		c, err := s.Replace(slices.Clone(next))
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		if c.Rebuilt {
			t.Fatalf("seed %d: %d edits rebuilt the base", seed, edits)
		}
		before := s.Index()
		ix := c.Commit(Info{Version: 2})
		want := mustBuild(t, next)
		sameAnswers(t, fmt.Sprintf("seed %d", seed), ix, want)
		if got, w := ids(ix), ruleIDs(next); !slices.Equal(got, w) {
			t.Fatalf("seed %d: file order %v, want %v", seed, got, w)
		}
		if ix.Len() != len(next) || ix.Count(MatchExact) != want.Count(MatchExact) || ix.Count(MatchPattern) != want.Count(MatchPattern) {
			t.Fatalf("seed %d: Len %d, exact %d, want %d, %d", seed, ix.Len(), ix.Count(MatchExact), len(next), want.Count(MatchExact))
		}
		// The Index read before the change still answers as before.
		sameAnswers(t, fmt.Sprintf("seed %d, the old index", seed), before, mustBuild(t, old))
		// A fold gives the same set with an empty overlay.
		s.Fold()
		if s.Index().changes != 0 {
			t.Fatalf("seed %d: %d overlay rows after Fold", seed, s.Index().changes)
		}
		sameAnswers(t, fmt.Sprintf("seed %d, folded", seed), s.Index(), want)
	}
}

// TestPutDelete makes random admin writes and checks them against the
// rule list they stand for: a Put of a new id appends, a Put of an id in
// use replaces the rule where it stands, a Delete removes it.
func TestPutDelete(t *testing.T) {
	for seed := range uint64(100) {
		rng := rand.New(rand.NewPCG(seed, 9))
		list := storeRules(rng, 10+rng.IntN(10))
		s := NewStore(Options{})
		commit(t)(s.Replace(slices.Clone(list)))
		for step := range 12 {
			if rng.IntN(3) == 0 && len(list) > 1 {
				i := rng.IntN(len(list))
				commit(t)(s.Delete(list[i].ID))
				list = slices.Delete(list, i, i+1)
			} else {
				r := storeRules(rng, 1)[0]
				if i := rng.IntN(len(list) + 3); i < len(list) {
					r.ID = list[i].ID
					list[i] = r
				} else {
					r.ID = fmt.Sprintf("put-%d-%d", seed, step)
					list = append(list, r)
				}
				commit(t)(s.Put(r))
			}
			sameAnswers(t, fmt.Sprintf("seed %d step %d", seed, step), s.Index(), mustBuild(t, list))
			if got, w := ids(s.Index()), ruleIDs(list); !slices.Equal(got, w) {
				t.Fatalf("seed %d step %d: file order %v, want %v", seed, step, got, w)
			}
			var listed []string
			for _, r := range s.Index().Rules("", 0) {
				listed = append(listed, r.ID)
			}
			if w := slices.Sorted(slices.Values(ruleIDs(list))); !slices.Equal(listed, w) {
				t.Fatalf("seed %d step %d: Rules lists %v, want %v", seed, step, listed, w)
			}
		}
	}
}

// TestChangeChecks: an in-place change is checked like a whole set, but
// only around what it touches; a refused change leaves the set serving.
func TestChangeChecks(t *testing.T) {
	s := NewStore(Options{})
	commit(t)(s.Replace([]Rule{
		{ID: "a", Path: "/a", To: "/b/c"},
		{ID: "bc", Path: "/b/c", To: "/z"},
		{ID: "b", Path: "/b", Match: MatchPrefix, To: "/a"},
	}))
	serving := s.Index()
	refused := func(what string, c *Change, err error, want string) {
		t.Helper()
		var re *RulesError
		if !errors.As(err, &re) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want a RulesError containing %q", what, err, want)
		}
		if c != nil || s.Index() != serving {
			t.Errorf("%s: the refused change was applied", what)
		}
	}
	c, err := s.Put(Rule{ID: "z", Path: "/z", To: "/a"})
	refused("a put closing a cycle", c, err, `redirect cycle: "z" → "a" → "bc" → "z"`)
	c, err = s.Put(Rule{ID: "self", Path: "/s", To: "/s"})
	refused("a put to itself", c, err, "redirects to itself")
	c, err = s.Put(Rule{ID: "bad", Path: "no-slash", To: "/x"})
	refused("a put of an invalid rule", c, err, "path")
	// Pattern and regex rules are followed from a request they match.
	c, err = s.Put(Rule{ID: "pself", Path: "/u/:x", Match: MatchPattern, To: "/u/:x"})
	refused("a pattern put to itself", c, err, `rule "pself": to: redirects to itself: a request for /u/x1 is sent to /u/x1`)
	c, err = s.Put(Rule{ID: "rself", Path: "/rx/(.*)", Match: MatchRegex, To: "/rx/$1"})
	refused("a regex put to itself", c, err, "redirects to itself")
	c, err = s.Put(Rule{ID: "pa", Path: "/a/*", Match: MatchPattern, To: "/b/:splat"})
	refused("a pattern put closing a cycle through a prefix", c, err, `redirect cycle: "pa" → "b" → "pa"`)
	// Without bc, a's target falls to the prefix rule b, which sends
	// clients back to a.
	c, err = s.Delete("bc")
	refused("a delete that exposes a cycle", c, err, `once rule "bc" is gone`)
	if _, err := s.Delete("nope"); !errors.Is(err, ErrRuleNotFound) {
		t.Errorf("delete of an unknown id: %v, want ErrRuleNotFound", err)
	}
	// A chain is a warning of the change.
	c, err = s.Put(Rule{ID: "y", Path: "/y", To: "/a"})
	if err != nil {
		t.Fatal(err)
	}
	if w := c.Warnings(); len(w) != 1 || !strings.Contains(w[0].String(), `redirect chain: "y" → "a" → "bc"`) {
		t.Errorf("warnings %v, want the chain y → a → bc", w)
	}
	ix := c.Commit(Info{})
	if len(ix.Warnings()) == 0 {
		t.Error("the set's warnings lost the change's")
	}
}

// TestChangeIsAtomic: a decision reads one Index, so concurrent readers
// see all of a change or none of it (run under -race).
func TestChangeIsAtomic(t *testing.T) {
	s := NewStore(Options{})
	rules := []Rule{{ID: "a", Path: "/a", To: "/old"}, {ID: "b", Path: "/b", To: "/old"}}
	commit(t)(s.Replace(rules))
	done := make(chan struct{})
	errs := make(chan string, 1)
	go func() {
		defer close(done)
		for range 2000 {
			ix := s.Index()
			da, _ := ix.Decide(&Request{Method: "GET", Target: "/a"}, testNow)
			db, _ := ix.Decide(&Request{Method: "GET", Target: "/b"}, testNow)
			if da.Location != db.Location {
				select {
				case errs <- da.Location + " beside " + db.Location:
				default:
				}
				return
			}
		}
	}()
	for i := range 200 {
		to := fmt.Sprintf("/v%d", i)
		commit(t)(s.Replace([]Rule{{ID: "a", Path: "/a", To: to}, {ID: "b", Path: "/b", To: to}}))
	}
	<-done
	select {
	case e := <-errs:
		t.Errorf("one Index answered %s", e)
	default:
	}
}

// TestFoldAfterManyPuts: the overlay grows by one row per put until a fold
// folds it into a new base; the version and the answers stay.
func TestFoldAfterManyPuts(t *testing.T) {
	s := NewStore(Options{})
	commit(t)(s.Replace([]Rule{{ID: "seed", Path: "/seed", To: "/x"}}))
	for i := range 50 {
		c, err := s.Put(Rule{ID: fmt.Sprintf("p%d", i), Path: fmt.Sprintf("/p/%d", i), To: "/x"})
		if err != nil {
			t.Fatal(err)
		}
		c.Commit(Info{Version: uint64(i + 2)})
	}
	if got := s.Index().changes; got != 50 {
		t.Fatalf("%d overlay rows, want 50", got)
	}
	s.Fold()
	ix := s.Index()
	if ix.changes != 0 || ix.Len() != 51 || ix.Info().Version != 51 {
		t.Errorf("after Fold: %d rows, %d rules, version %d; want 0, 51, 51", ix.changes, ix.Len(), ix.Info().Version)
	}
	if d, _ := ix.Decide(&Request{Method: "GET", Target: "/p/49"}, time.Now()); d.RuleID != "p49" {
		t.Errorf("after Fold /p/49 decided by %q", d.RuleID)
	}
}

// BenchmarkReloadInPlace is the index part of a reload of a million-rule
// file in which 10 rules changed: the comparison with the serving set and
// the overlay writes, the parse (and the checks it makes) left out.
//
//	go test -run x -bench 'ReloadInPlace' -benchtime 10x -count 3 ./decision/
func BenchmarkReloadInPlace(b *testing.B) {
	rules := make([]Rule, 1_000_000)
	for i := range rules {
		rules[i] = Rule{ID: fmt.Sprintf("old-%d", i), Path: fmt.Sprintf("/old/%d", i), To: fmt.Sprintf("/new/%d", i),
			Intent: IntentPermanent, CacheMaxAge: new(time.Hour)}
	}
	s := NewStore(Options{})
	commit(b)(s.replace(slices.Clone(rules), nil))
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		next := slices.Clone(rules)
		for j := range 10 {
			next[j*99_991].To = fmt.Sprintf("/changed/%d/%d", i, j)
		}
		b.StartTimer()
		c, err := s.replace(next, nil)
		if err != nil {
			b.Fatal(err)
		}
		if c.Rebuilt || c.Puts != 10 {
			b.Fatalf("rebuilt %v, %d puts; want 10 in place", c.Rebuilt, c.Puts)
		}
		c.Commit(Info{})
	}
}

// TestReplaceFileJSONL: a JSON Lines file loaded straight into a new base,
// a piece per core, gives the set that parsing it whole and building it
// gives: the same rules in the same order, the same answers, the same
// problems.
func TestReplaceFileJSONL(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(3))
	rng := rand.New(rand.NewPCG(1, 2))
	rules := storeRules(rng, 60_000) // over splitBytes: three pieces
	for i := range rules {
		rules[i].ID = fmt.Sprintf("r%d", i)
		rules[i].Methods = []string{"GET", "POST", "PUT"}[i%3 : i%3+1] // no two alike: none shadowed
		rules[i].Path = fmt.Sprintf("/n%d%s", i, strings.TrimPrefix(rules[i].Path, "/"))
		if rules[i].Match == MatchRegex {
			// Regexes under "/" are tried for every request: 60,000
			// of them would make the graph check quadratic.
			rules[i].Match = MatchExact
		}
	}
	var b strings.Builder
	if err := WriteRules(&b, FormatJSONL, RuleSeq(rules)); err != nil {
		t.Fatal(err)
	}
	data := "# generated\n\n" + b.String()
	if len(data) <= splitBytes {
		t.Fatalf("%d bytes: not over splitBytes", len(data))
	}
	c, err := NewStore(Options{}).ReplaceFile("r.jsonl", []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	got := c.Commit(Info{})
	want, _, err := LoadRulesSlow(t, "r.jsonl", []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	if g, w := ids(got), ids(want); !slices.Equal(g, w) {
		t.Fatalf("order differs: %d rules vs %d", len(g), len(w))
	}
	for i := 0; i < len(rules); i += 997 {
		r := rules[i]
		for _, m := range []string{"GET", "POST"} {
			req := Request{Method: m, Host: "h.example", Target: strings.ReplaceAll(strings.ReplaceAll(r.Path, ":x", "v"), "*", "w")}
			gd, gerr := got.Decide(&req, testNow)
			wd, werr := want.Decide(&req, testNow)
			if fmt.Sprint(gd.RuleID, gd.Location, gerr) != fmt.Sprint(wd.RuleID, wd.Location, werr) {
				t.Fatalf("%s %s: %s %s vs %s %s", m, req.Target, gd.RuleID, gd.Location, wd.RuleID, wd.Location)
			}
		}
		if gr, _ := got.Rule(r.ID); !sameRule(&gr, &r) {
			t.Fatalf("rule %s: %+v, want %+v", r.ID, gr, r)
		}
	}

	// The same rules as one JSON document, decoded straight into a base
	// too, and a bad rule in it named by its line.
	var doc strings.Builder
	if err := WriteRules(&doc, FormatJSON, RuleSeq(rules)); err != nil {
		t.Fatal(err)
	}
	fromJSON, err := NewStore(Options{}).ReplaceFile("r.json", []byte(doc.String()))
	if err != nil {
		t.Fatal(err)
	}
	if g, w := ids(fromJSON.Commit(Info{})), ids(want); !slices.Equal(g, w) {
		t.Fatalf("JSON: order differs: %d rules vs %d", len(g), len(w))
	}
	bad := strings.Replace(doc.String(), `{"id":"r7",`, `{"id":"r7","status":404,`, 1)
	if _, err := NewStore(Options{}).ReplaceFile("r.json", []byte(bad)); err == nil || !strings.Contains(err.Error(), `r.json:9: rule "r7": status: 404`) {
		t.Errorf("JSON with a bad status: %v", err)
	}

	// Streamed through a reader that returns short reads, with a comment
	// line longer than a chunk (the buffer grows for it) and a bad rule
	// after it: the same rules, and the bad one's own line.
	long := strings.Split(data, "\n")
	long = slices.Insert(long, 20, "# "+strings.Repeat("x", chunkBytes+100))
	streamed, err := NewStore(Options{}).ReplaceFrom("r.jsonl", iotest.HalfReader(strings.NewReader(strings.Join(long, "\n"))), 0)
	if err != nil {
		t.Fatal(err)
	}
	if g, w := ids(streamed.Commit(Info{})), ids(want); !slices.Equal(g, w) {
		t.Fatalf("streamed: order differs: %d rules vs %d", len(g), len(w))
	}
	long[len(long)-5] = `{"id":"late","path":"/b","to":"/c","status":404}`
	_, err = NewStore(Options{}).ReplaceFrom("r.jsonl", strings.NewReader(strings.Join(long, "\n")), 0)
	if want := fmt.Sprintf(`r.jsonl:%d: rule "late": status: 404`, len(long)-4); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("streamed: error %v, want one containing %q", err, want)
	}

	// Problems in two pieces: a duplicate id across them and a bad line.
	lines := strings.Split(data, "\n")
	lines[len(lines)-3] = strings.Replace(lines[len(lines)-3], `"id":"`, `"id":"r5`+`","x":"`, 1)
	lines[10] = `{"id":"bad","path":"/b","to":"/c","status":404}`
	_, err = NewStore(Options{}).ReplaceFile("r.jsonl", []byte(strings.Join(lines, "\n")))
	for _, want := range []string{`r.jsonl:11: rule "bad": status: 404`, `r.jsonl:` + fmt.Sprint(len(lines)-2) + `:`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v, want one containing %q", err, want)
		}
	}
}

// TestJSONLRefusedEarlyStopsReading: a JSON Lines stream refused before
// its end (more lines than MaxRules) is handed back to the caller, who
// reads the rest of it for the file's hash, as the daemon does: by then
// the chunk being read ahead of the decoding (readAhead) has stopped
// reading it (under -race, a read beside the caller's would be reported).
func TestJSONLRefusedEarlyStopsReading(t *testing.T) {
	blank := strings.NewReader(strings.Repeat("\n", 3*MaxRules))
	_, err := NewStore(Options{}).ReplaceFrom("r.jsonl", blank, blank.Size())
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("accepted: at most %d", MaxRules)) {
		t.Fatalf("error %v, want one refusing more than %d rules", err, MaxRules)
	}
	if blank.Len() == 0 {
		t.Fatal("the whole stream was read before the refusal")
	}
	if n, err := io.Copy(io.Discard, blank); err != nil || n == 0 {
		t.Fatalf("the rest of the stream: %d bytes, %v", n, err)
	}
}

// LoadRulesSlow parses a whole file, then builds it: the reference for
// the streaming load.
func LoadRulesSlow(t *testing.T, file string, data []byte) (*Index, []Problem, error) {
	t.Helper()
	rules, warns, err := parseRules(file, data, MaxRulesFileBytes, MaxRules)
	if err != nil {
		return nil, nil, err
	}
	ix, more, err := Build(rules, Options{})
	return ix, append(warns, more...), err
}

// TestConditionsKeptAsWritten: rules with conditions and languages come
// back from the compact base as written, and replacing the set with the
// same rules changes none of them (base.sameAs), while a changed value
// does change one.
func TestConditionsKeptAsWritten(t *testing.T) {
	one := "1"
	rules := []Rule{
		{ID: "a", Path: "/a", To: "/:lang/a", Languages: []string{"en", "de-CH"},
			Has:     []Condition{{Type: "cookie", Key: "beta", Value: &one}, {Type: "header", Key: "X-Env"}},
			Missing: []Condition{{Type: "query", Key: "no"}}, Headers: map[string]string{"x-a": ""}},
		{ID: "b", Host: "*.example.com", Path: "/b", To: "https://:subdomain.example.org/b"},
		{ID: "c", Path: "/c", To: "/d"},
	}
	s := NewStore(Options{})
	commit(t)(s.Replace(slices.Clone(rules)))
	for _, r := range rules {
		got, ok := s.Index().Rule(r.ID)
		if diff := cmp.Diff(r, got, ignoreLine); !ok || diff != "" {
			t.Errorf("Rule(%s) (-want +got):\n%s", r.ID, diff)
		}
	}
	c, err := s.Replace(slices.Clone(rules))
	if err != nil {
		t.Fatal(err)
	}
	if c.Puts != 0 || c.Deletes != 0 {
		t.Errorf("the same rules again: %d puts, %d deletes; want none", c.Puts, c.Deletes)
	}
	c.Abort()
	two := "2"
	changed := slices.Clone(rules)
	changed[0].Has = []Condition{{Type: "cookie", Key: "beta", Value: &two}, {Type: "header", Key: "X-Env"}}
	c, err = s.Replace(changed)
	if err != nil {
		t.Fatal(err)
	}
	if c.Puts != 1 {
		t.Errorf("one changed value: %d puts, want 1", c.Puts)
	}
	c.Abort()
}

// TestReplaceJSONLInPlace: a JSON Lines file loaded over a serving set is
// compared with it after decoding, and only what differs is written; a
// file that shares few rules with the set serves as the new base, and
// says how many serving rules it drops.
func TestReplaceJSONLInPlace(t *testing.T) {
	file := func(n int, change func(i int) string) string {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, `{"id":"r%d","path":"/p/%d","to":"%s"}`+"\n", i, i, change(i))
		}
		return b.String()
	}
	same := func(i int) string { return fmt.Sprint("/q/", i) }
	s := NewStore(Options{})
	c, err := s.ReplaceFile("r.jsonl", []byte(file(1000, same)))
	if err != nil {
		t.Fatal(err)
	}
	before := c.Commit(Info{Version: 1})

	c, err = s.ReplaceFile("r.jsonl", []byte(file(1000, func(i int) string {
		if i == 7 || i == 700 {
			return "/moved"
		}
		return same(i)
	})+`{"id":"dup","path":"/d","to":"/e/"}`+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Rebuilt || c.Puts != 3 || c.Deletes != 0 {
		t.Errorf("two rules changed, one added: rebuilt %v, puts %d, deletes %d; want in place, 3, 0", c.Rebuilt, c.Puts, c.Deletes)
	}
	after := c.Commit(Info{Version: 2})
	for _, tc := range []struct {
		ix   *Index
		path string
		want string
	}{{before, "/p/7", "/q/7"}, {after, "/p/7", "/moved"}, {after, "/p/700", "/moved"}, {after, "/p/8", "/q/8"}, {after, "/d", "/e/"}} {
		d, err := tc.ix.Decide(&Request{Method: "GET", Target: tc.path}, testNow)
		if err != nil || d.Location != tc.want {
			t.Errorf("version %d: %s → %q, %v; want %q", tc.ix.Info().Version, tc.path, d.Location, err, tc.want)
		}
	}
	if r, _ := after.Rule("r7"); r.Line != 8 || r.To != "/moved" {
		t.Errorf("r7 after the change: %+v", r)
	}

	// More than FoldAt rules replaced: a new base, which drops the 1,001
	// serving rules.
	c, err = s.ReplaceFile("r.jsonl", []byte(strings.ReplaceAll(file(FoldAt+1, same), `"id":"r`, `"id":"n`)))
	if err != nil {
		t.Fatal(err)
	}
	if !c.Rebuilt || c.Deletes != 1001 {
		t.Errorf("a new set: rebuilt %v, deletes %d; want a new base dropping 1001", c.Rebuilt, c.Deletes)
	}
	c.Abort()

	// A duplicate id is refused, naming both lines, and nothing changes.
	_, err = s.ReplaceFile("r.jsonl", []byte(file(3, same)+`{"id":"r1","path":"/x","to":"/y"}`+"\n"))
	if err == nil || !strings.Contains(err.Error(), `r.jsonl:4: rule "r1": id: duplicate id, first used at line 2`) {
		t.Errorf("duplicate id: %v", err)
	}
	if s.Index() != after {
		t.Error("a refused file changed the serving set")
	}
}

// TestInPlaceReloadWarnsInEveryFormat: a reload that changes a rule in
// place warns about that rule whatever the file's format (YAML went
// through Replace, which dropped the parse's warnings in place).
func TestInPlaceReloadWarnsInEveryFormat(t *testing.T) {
	files := map[string]func(age string) string{
		"r.yaml": func(age string) string {
			return "rules:\n  - id: a\n    path: /a\n    to: /b\n    cache_max_age: " + age + "\n  - id: c\n    path: /c\n    to: /d\n"
		},
		"r.json": func(age string) string {
			return `{"rules":[{"id":"a","path":"/a","to":"/b","cache_max_age":"` + age + `"},{"id":"c","path":"/c","to":"/d"}]}`
		},
		"r.jsonl": func(age string) string {
			return `{"id":"a","path":"/a","to":"/b","cache_max_age":"` + age + `"}` + "\n" + `{"id":"c","path":"/c","to":"/d"}` + "\n"
		},
	}
	for name, content := range files {
		s := NewStore(Options{})
		c, err := s.ReplaceFile(name, []byte(content("1h")))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		c.Commit(Info{Version: 1})
		c, err = s.ReplaceFile(name, []byte(content("800d")))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if c.Rebuilt {
			t.Errorf("%s: one rule changed and the set was rebuilt", name)
		}
		ws := c.Warnings()
		if len(ws) != 1 || ws[0].RuleID != "a" || ws[0].File != name || !strings.Contains(ws[0].Message, "more than a year") {
			t.Errorf("%s: warnings %v; want the year warning of rule a, in %s", name, ws, name)
		}
		c.Abort()
	}
}

// TestRejectedSetKeepsItsWarnings: a set refused for an error still tells
// the warnings found beside it (RulesError.Warnings), from the rule checks
// and from the graph check that found the error, in every format, on a
// first load and in place.
func TestRejectedSetKeepsItsWarnings(t *testing.T) {
	files := map[string]func(loopTo string) string{
		"r.yaml": func(loopTo string) string {
			return "rules:\n  - {id: a-to-b, path: /a, to: /b}\n  - {id: b-to-c, path: /b, to: /c}\n" +
				"  - {id: loop, path: /loop, to: " + loopTo + "}\n  - {id: forever, path: /old, to: /new, cache_max_age: 800d}\n"
		},
		"r.json": func(loopTo string) string {
			return `{"rules":[{"id":"a-to-b","path":"/a","to":"/b"},` + "\n" + `{"id":"b-to-c","path":"/b","to":"/c"},` + "\n" +
				`{"id":"loop","path":"/loop","to":"` + loopTo + `"},` + "\n" + `{"id":"forever","path":"/old","to":"/new","cache_max_age":"800d"}]}`
		},
		"r.jsonl": func(loopTo string) string {
			return `{"id":"a-to-b","path":"/a","to":"/b"}` + "\n" + `{"id":"b-to-c","path":"/b","to":"/c"}` + "\n" +
				`{"id":"loop","path":"/loop","to":"` + loopTo + `"}` + "\n" + `{"id":"forever","path":"/old","to":"/new","cache_max_age":"800d"}` + "\n"
		},
	}
	for name, content := range files {
		for _, inPlace := range []bool{false, true} {
			s := NewStore(Options{})
			if inPlace {
				c, err := s.ReplaceFile(name, []byte(content("/elsewhere")))
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				c.Commit(Info{Version: 1})
			}
			_, err := s.ReplaceFile(name, []byte(content("/loop")))
			var re *RulesError
			if !errors.As(err, &re) {
				t.Fatalf("%s (in place %v): %v, want a *RulesError", name, inPlace, err)
			}
			if len(re.Problems) != 1 || re.Problems[0].RuleID != "loop" {
				t.Errorf("%s (in place %v): errors %v, want the loop's", name, inPlace, re.Problems)
			}
			warned := map[string]bool{}
			for _, w := range re.Warnings {
				if w.File != name || w.Line == 0 || w.Severity != SeverityWarning {
					t.Errorf("%s (in place %v): warning %v: want a warning with file %s and line", name, inPlace, w, name)
				}
				warned[w.RuleID] = true
			}
			if len(re.Warnings) != 2 || !warned["a-to-b"] || !warned["forever"] {
				t.Errorf("%s (in place %v): warnings %v, want the chain's (a-to-b) and the cache lifetime's (forever), once each", name, inPlace, re.Warnings)
			}
		}
	}
}
