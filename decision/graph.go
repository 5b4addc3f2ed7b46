package decision

import (
	"cmp"
	"fmt"
	"regexp/syntax"
	"slices"
	"strconv"
	"strings"
)

// The rule graph: where rules send clients. A rule whose target it
// matches itself, or a cycle A→B→A, would loop a client until it gives up
// (browsers stop after 20 hops, Fetch "HTTP-redirect fetch" step 5):
// errors. A chain A→B→C costs clients a round trip per hop: a warning
// (Options.FlattenChains answers A with C's Location). Rules that can
// never match are warnings too.
//
// A rule is followed from probes: requests that stand for what it
// matches (see probes). Exact and prefix rules are followed exactly;
// a pattern from one request with every parameter filled, which is
// decisive because a pattern treats all values of a parameter alike
// where no other rule tells them apart; a regex from one string its
// expression matches (regexSample), which can miss a loop that only some
// strings make. Rules with header conditions or limited to methods other
// than GET are not followed (the probes send GET and no headers). What
// this misses, Decide catches per request (self.go, README "Redirect
// loops").

// loopResult is what following a rule from its probes found.
type loopResult struct {
	hops   []route // the rule, then each rule its probe reached
	probe  string  // the probe's path and the rule's Location for it
	loc    string
	cyclic bool // the hops came back to the rule (alone: a self-redirect)
}

// checkGraph checks every rule of a freshly built Index, whose overlay is
// empty. Each rule is followed on its own, so the work spreads over
// workers goroutines and stays in proportion to the set's size (a rule
// whose target no rule matches costs one lookup a probe).
func (ix *Index) checkGraph(workers int) (errs, warns []Problem) {
	b := ix.base
	n := len(b.rules)
	type found struct {
		pos int
		res loopResult
	}
	perWorker := make([][]found, workers)
	inChunks(n, workers, func(w, lo, hi int) {
		var a route
		for i := lo; i < hi; i++ {
			b.route(uint32(i), &a)
			if res := ix.loopCheck(&a); res.cyclic || len(res.hops) >= 2 {
				perWorker[w] = append(perWorker[w], found{i, res})
			}
		}
	})
	all := slices.Concat(perWorker...)
	slices.SortFunc(all, func(x, y found) int { return x.pos - y.pos })
	// A cycle is reported once, by the first of its rules that found it.
	cycles := map[string]bool{}
	for _, f := range all {
		a := &f.res.hops[0]
		if f.res.cyclic && len(f.res.hops) > 1 {
			key := cycleKey(f.res.hops)
			if cycles[key] {
				continue
			}
			cycles[key] = true
		}
		if p, ok := ix.loopProblem(a, f.res, ""); ok {
			if p.Severity == SeverityError {
				errs = append(errs, p)
			} else {
				warns = append(warns, p)
			}
		}
	}
	// Slots of more than one rule: the slot table holds each slot's first.
	// The table's order is the hash's: the warnings are put in file order.
	var slot []route
	var shadow []Problem
	var t route
	for _, e := range b.slots.slots {
		if e == 0 || b.next[e&posMask-1] == 0 {
			continue
		}
		slot = slot[:0]
		for p := e & posMask; p != 0; p = b.next[p-1] {
			b.route(p-1, &t)
			slot = append(slot, t)
		}
		shadow = append(shadow, shadowedInSlot(slot)...)
	}
	slices.SortFunc(shadow, func(a, b Problem) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), strings.Compare(a.RuleID, b.RuleID))
	})
	warns = append(warns, shadow...)
	return errs, warns
}

// cycleKey names a cycle by its rules, whichever of them it starts from.
func cycleKey(hops []route) string {
	orders := make([]uint64, len(hops))
	for i := range hops {
		orders[i] = hops[i].order
	}
	slices.Sort(orders)
	return fmt.Sprint(orders)
}

// loopProblem is the problem res shows for a, if any; gone names a rule
// whose deletion exposed it.
func (ix *Index) loopProblem(a *route, res loopResult, gone string) (Problem, bool) {
	switch {
	case res.cyclic && len(res.hops) == 1:
		if a.kind == MatchExact || a.kind == MatchPrefix {
			return a.problem(SeverityError, "to",
				fmt.Sprintf("redirects to itself: %s matches this rule's own path", res.loc)), true
		}
		return a.problem(SeverityError, "to",
			fmt.Sprintf("redirects to itself: a request for %s is sent to %s, which this rule matches again", res.probe, res.loc)), true
	case res.cyclic && gone != "":
		return a.problem(SeverityError, "to",
			"redirect cycle once rule "+strconv.Quote(gone)+" is gone: "+hopText(append(res.hops, *a))), true
	case res.cyclic:
		return a.problem(SeverityError, "to", "redirect cycle: "+hopText(append(res.hops, *a))), true
	case len(res.hops) >= 2 && !ix.opts.FlattenChains && gone == "":
		return a.problem(SeverityWarning, "to",
			"redirect chain: "+hopText(res.hops)+"; clients make one request per hop (flatten-chains answers the first rule with the last target)"), true
	}
	return Problem{}, false
}

// checkChanged checks the rules a change put (changed) and the places it
// freed (freed: rules deleted or moved away) in ix, the Index as it will
// be. Any new cycle runs through a changed rule, or through the rule that
// now answers a freed rule's path: the rules that sent clients there now
// reach it. Only those are followed, so a change costs work in proportion
// to its size, not to the set's.
func (ix *Index) checkChanged(changed []*route, freed []*route) (errs, warns []Problem) {
	for _, a := range changed {
		if p, ok := ix.loopProblem(a, ix.loopCheck(a), ""); ok {
			if p.Severity == SeverityError {
				errs = append(errs, p)
			} else {
				warns = append(warns, p)
			}
		}
	}
	for _, d := range freed {
		for _, pr := range d.appendProbes(nil) {
			h := hop{host: pr.host}
			r, _, ok := ix.follow(&h, pr.path)
			if !ok {
				continue
			}
			if res := ix.loopCheck(&r); res.cyclic && len(res.hops) > 1 {
				p, _ := ix.loopProblem(&r, res, d.id)
				errs = append(errs, p)
				break
			}
		}
	}
	for _, a := range changed {
		warns = append(warns, shadowedInSlot(ix.slotOf(a))...)
	}
	return errs, warns
}

// loopCheck follows a from each of its probes, hop by hop as a client
// would with GET, up to maxChainHops. It returns the first probe that
// comes back to a, else the longest chain (none when no probe reaches a
// second rule). It runs for every rule of a load, and most rules lead
// nowhere: the hops are kept on the stack and copied out only when found.
func (ix *Index) loopCheck(a *route) loopResult {
	var best loopResult
	var probes [2]probe
	var stack [4]route
	for _, pr := range a.appendProbes(probes[:0]) {
		loc, ok := a.probeLocation(pr.path)
		if !ok {
			continue
		}
		hops := append(stack[:0], *a)
		h := hop{host: pr.host}
		cyclic := false
		for next := loc; ; {
			t, nl, ok := ix.follow(&h, next)
			if !ok {
				break
			}
			if t.order == a.order {
				cyclic = true
				break
			}
			if len(hops) > maxChainHops || slices.ContainsFunc(hops, func(h route) bool { return h.order == t.order }) {
				break // a cycle not through a, reported from its own rules
			}
			hops = append(hops, t)
			next = nl
		}
		if cyclic || len(hops) > max(1, len(best.hops)) {
			best = loopResult{hops: slices.Clone(hops), probe: pr.path, loc: loc, cyclic: cyclic}
		}
		if cyclic {
			break
		}
	}
	return best
}

// follow is one hop: the rule a client asking for loc from where h stands
// reaches with GET and no headers, and that rule's Location. A rule whose
// Location is its own request wins here (m.loadCheck), so the loop shows.
func (ix *Index) follow(h *hop, loc string) (route, string, bool) {
	next, ok := h.request(loc, "GET", "")
	if !ok {
		return route{}, "", false
	}
	r, err := parseRequest(&next)
	if err != nil {
		return route{}, "", false
	}
	m := match{loadCheck: true}
	if !ix.match(&r, nil, nil, &m) {
		return route{}, "", false
	}
	h.host, h.scheme = next.Host, r.scheme
	return m.win, m.loc, true
}

// slotOf returns the live rules of rt's slot, in the order tried.
func (ix *Index) slotOf(rt *route) []route {
	k := ix.keys.Get().(*lookupKey)
	defer ix.keys.Put(k)
	k.buf = rt.appendKey(k.buf[:0])
	k.cands = k.cands[:0]
	ix.candidates(k, k.buf, 0)
	out := make([]route, len(k.cands))
	for i := range k.cands {
		out[i] = k.cands[i].rt
	}
	return out
}

// probe is a request the load check starts from: a host in the rule's
// scope ("" for any host: only any-host rules answer its path targets)
// and a path the rule matches.
type probe struct {
	host, path string
}

// appendProbes appends to dst the requests that stand for what rt
// matches: an exact rule's path; a prefix's path and a path under it; a
// pattern with each parameter and the splat filled ("x1", "x2" …); a
// regex's sample. A wildcard rule is probed on a subdomain of its suffix.
// The load check probes every rule, so the caller lends dst: a slice per
// rule would be a million allocations.
func (rt *route) appendProbes(dst []probe) []probe {
	host := rt.scope
	switch {
	case host == "*":
		host = ""
	case strings.HasPrefix(host, "*."):
		host = "redirectd-probe" + host[1:]
	}
	own := rt.path
	if own == "" {
		own = "/"
	} else if rt.strict && rt.trailing && own != "/" {
		own += "/"
	}
	switch rt.kind {
	case MatchExact:
		return append(dst, probe{host, own})
	case MatchPrefix:
		return append(dst, probe{host, own}, probe{host, strings.TrimSuffix(own, "/") + "/x"})
	case MatchPattern:
		if len(rt.ext.pattern) == 0 {
			return append(dst, probe{host, "/"})
		}
		var b strings.Builder
		for _, sg := range rt.ext.pattern {
			b.WriteByte('/')
			if sg.param || sg.splat {
				fmt.Fprintf(&b, "x%d", sg.group)
			} else {
				b.WriteString(sg.lit)
			}
		}
		return append(dst, probe{host, b.String()})
	default:
		if sample, ok := regexSample(rt.ext.re.String()); ok {
			return append(dst, probe{host, sample})
		}
		return dst
	}
}

// probeVars are the values a probe gives ":lang" and ":subdomain": the
// rule's first language, and the probe host's label.
func (rt *route) probeVars() *vars {
	v := &vars{subdomain: "redirectd-probe"}
	if rt.ext != nil && rt.ext.conds != nil && len(rt.ext.conds.langs) > 0 {
		v.lang = rt.ext.conds.langs[0]
	}
	return v
}

// probeLocation is rt's Location for a GET of path, or false when rt does
// not match it (a regex sample that normalisation changed).
func (rt *route) probeLocation(path string) (string, bool) {
	r := request{method: "GET", path: normalizePath(path)}
	r.trailing = len(r.path) > 1 && strings.HasSuffix(r.path, "/")
	switch rt.kind {
	case MatchExact:
		return rt.location(&r, "", r.path, nil, rt.probeVars()), true
	case MatchPrefix:
		rest := strings.TrimPrefix(trimSlash(r.path), rt.path)
		if rest == "/" {
			rest = ""
		}
		if rt.strict && rt.trailing && rest == "" {
			rest = "/"
		}
		return rt.location(&r, rest, r.path, nil, rt.probeVars()), true
	}
	p := trimSlash(r.path)
	if rt.strict {
		p = r.path
	}
	var caps captures
	if !rt.matchDynamic(p, &caps) {
		return "", false
	}
	return rt.location(&r, "", p, &caps, rt.probeVars()), true
}

// regexSample makes a path the anchored expression expr matches: the
// first branch of each alternation, one repetition of each star or plus,
// and for a character class a letter or digit it holds. ok is false when
// the expression needs what a sample cannot give ("\b", a class of
// nothing but reserved bytes).
func regexSample(expr string) (string, bool) {
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return "", false
	}
	var b strings.Builder
	var walk func(re *syntax.Regexp) bool
	walk = func(re *syntax.Regexp) bool {
		switch re.Op {
		case syntax.OpEmptyMatch, syntax.OpBeginLine, syntax.OpEndLine, syntax.OpBeginText, syntax.OpEndText:
			return true
		case syntax.OpLiteral:
			b.WriteString(string(re.Rune))
			return true
		case syntax.OpAnyChar, syntax.OpAnyCharNotNL:
			b.WriteByte('x')
			return true
		case syntax.OpCharClass:
			for _, c := range "xa0-_~" {
				for i := 0; i+1 < len(re.Rune); i += 2 {
					if re.Rune[i] <= c && c <= re.Rune[i+1] {
						b.WriteRune(c)
						return true
					}
				}
			}
			return false
		case syntax.OpCapture, syntax.OpStar, syntax.OpPlus, syntax.OpQuest:
			return walk(re.Sub[0])
		case syntax.OpRepeat:
			for range max(re.Min, min(re.Max, 1)) {
				if !walk(re.Sub[0]) {
					return false
				}
			}
			return true
		case syntax.OpConcat:
			for _, s := range re.Sub {
				if !walk(s) {
					return false
				}
			}
			return true
		case syntax.OpAlternate:
			return walk(re.Sub[0])
		}
		return false
	}
	if !walk(re) || !strings.HasPrefix(b.String(), "/") {
		return "", false
	}
	return b.String(), true
}

// shadowedInSlot reports the shadowed rules of one slot, kind by kind.
func shadowedInSlot(slot []route) []Problem {
	var out []Problem
	for class := range 3 {
		var rs []*route
		for i := range slot {
			if kindClass(slot[i].kind) == class {
				rs = append(rs, &slot[i])
			}
		}
		out = append(out, shadowed(rs)...)
	}
	return out
}

// shadowed reports rules of one slot and kind that an earlier rule of the
// slot always answers first: same path (or a case-folding one), no header
// condition, time window or shadow mode on the earlier rule (README "Time
// windows", "Shadow rules": it does not always answer), methods a
// superset, trailing-slash handling at least as wide. Only cases that can
// be proven are reported.
func shadowed(rs []*route) []Problem {
	var out []Problem
	for j := 1; j < len(rs); j++ {
		l := rs[j]
		for _, e := range rs[:j] {
			if covers(e, l) {
				out = append(out, l.problem(SeverityWarning, "path",
					fmt.Sprintf("never matches: rule %q (line %d) comes first with the same host and path and answers every request this one would", e.id, e.line)))
				break
			}
		}
	}
	return out
}

func covers(e, l *route) bool {
	if e.kind != l.kind {
		return false
	}
	if e.ext.mayPass() || e.mayBeOwnTarget() {
		return false
	}
	if em := e.methods(); len(em) > 0 {
		lm := l.methods()
		if len(lm) == 0 {
			return false
		}
		for _, m := range lm {
			if !slices.Contains(em, m) {
				return false
			}
		}
	}
	switch e.kind {
	case MatchExact, MatchPrefix:
		if !e.fold && (l.fold || e.path != l.path) {
			return false
		}
		if e.strict && !(l.strict && l.trailing == e.trailing) {
			if e.kind == MatchExact || e.trailing {
				return false
			}
		}
		return true
	default:
		return e.fold == l.fold && e.strict == l.strict && e.path == l.path &&
			slices.Equal(e.ext.pattern, l.ext.pattern) && (e.ext.re == nil) == (l.ext.re == nil) &&
			(e.ext.re == nil || e.ext.re.String() == l.ext.re.String())
	}
}

// mayBeOwnTarget reports whether rt's To is an absolute URL on a host rt
// matches: for a request already there, rt does not apply (README
// "Redirect loops"), so it cannot shadow a later rule.
func (rt *route) mayBeOwnTarget() bool {
	_, authority, _, ok := splitAbsolute(rt.cleanTo)
	if !ok {
		return false
	}
	h, err := normalizeHost(authority)
	switch {
	case err != nil:
		return false
	case rt.scope == "*":
		return true
	case strings.HasPrefix(rt.scope, "*."):
		return strings.HasSuffix(h, rt.scope[1:])
	}
	return h == rt.scope
}

func (rt *route) problem(sev Severity, field, msg string) Problem {
	return Problem{Severity: sev, Line: int(rt.line), RuleID: rt.id, Field: field, Message: msg}
}

func hopText(hops []route) string {
	ids := make([]string, len(hops))
	for i := range hops {
		ids[i] = strconv.Quote(hops[i].id)
	}
	return strings.Join(ids, " → ")
}
