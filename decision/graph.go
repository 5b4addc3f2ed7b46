package decision

import (
	"cmp"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"
)

// The rule graph: where exact and prefix rules send clients. A rule whose
// target it matches itself, or a cycle A→B→A, would loop a client until it
// gives up (browsers stop after 20 hops, Fetch "HTTP-redirect fetch" step
// 5): errors. A chain A→B→C costs clients a round trip per hop: a warning
// (Options.FlattenChains answers A with C's Location). Rules that can
// never match are warnings too.

// checkGraph checks every rule of a freshly built Index, whose overlay is
// empty, so a rule's position is its order >> 32, less one (baseOrder).
func (ix *Index) checkGraph() (errs, warns []Problem) {
	b := ix.base
	n := len(b.rules)
	// next[i]-1 is the rule the target of exact or prefix rule i hits.
	// Each is a lookup in the finished index, so they spread over the cores.
	next := make([]uint32, n)
	inChunks(n, runtime.GOMAXPROCS(0), func(_, lo, hi int) {
		var a route
		for i := lo; i < hi; i++ {
			if k := b.rules[i].kind; k != MatchExact && k != MatchPrefix {
				continue
			}
			b.route(uint32(i), &a)
			if t, ok := ix.targetRule(&a); ok {
				next[i] = uint32(t.order >> 32) // position + 1
			}
		}
	})
	var a, t route
	for i := range next {
		if next[i] == 0 {
			continue
		}
		b.route(uint32(i), &a)
		if next[i]-1 == uint32(i) {
			errs = append(errs, a.problem(SeverityError, "to",
				fmt.Sprintf("redirects to itself: %s matches this rule's own path", a.cleanTo)))
			continue
		}
		path := []uint32{uint32(i)}
		cyclic := false
		for cur := next[i]; cur != 0; cur = next[cur-1] {
			if cur-1 == uint32(i) {
				cyclic = true
				break
			}
			if slices.Contains(path, cur-1) || len(path) > maxChainHops {
				break // a cycle not through i, reported from its own members
			}
			path = append(path, cur-1)
		}
		switch {
		case cyclic && slices.Min(path) == uint32(i):
			errs = append(errs, a.problem(SeverityError, "to", "redirect cycle: "+chainText(b, append(path, uint32(i)))))
		case !cyclic && len(path) >= 2 && !ix.opts.FlattenChains:
			warns = append(warns, a.problem(SeverityWarning, "to",
				"redirect chain: "+chainText(b, path)+"; clients make one request per hop (flatten-chains answers the first rule with the last target)"))
		}
	}
	// Slots of more than one rule: the slot table holds each slot's first.
	// The table's order is the hash's: the warnings are put in file order.
	var slot []route
	var shadow []Problem
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

// checkChanged checks the rules a change put (changed) and the places it
// freed (freed: rules deleted or moved away) in ix, the Index as it will
// be. Any new cycle runs through a changed rule, or through the rule that
// now answers a freed rule's path: the rules that sent clients there now
// reach it. Only those are walked, so a change costs work in proportion to
// its size, not to the set's.
func (ix *Index) checkChanged(changed []*route, freed []*route) (errs, warns []Problem) {
	for _, a := range changed {
		if a.kind != MatchExact && a.kind != MatchPrefix {
			continue
		}
		t, ok := ix.targetRule(a)
		if !ok {
			continue
		}
		if t.order == a.order {
			errs = append(errs, a.problem(SeverityError, "to",
				fmt.Sprintf("redirects to itself: %s matches this rule's own path", a.cleanTo)))
			continue
		}
		hops, cyclic := ix.walk(a, t)
		switch {
		case cyclic:
			errs = append(errs, a.problem(SeverityError, "to", "redirect cycle: "+hopText(append(hops, *a))))
		case len(hops) >= 2 && !ix.opts.FlattenChains:
			warns = append(warns, a.problem(SeverityWarning, "to",
				"redirect chain: "+hopText(hops)+"; clients make one request per hop (flatten-chains answers the first rule with the last target)"))
		}
	}
	for _, d := range freed {
		var r route
		if d.kind != MatchExact && d.kind != MatchPrefix {
			continue
		}
		probe := *d
		probe.cleanTo = d.path
		if probe.cleanTo == "" {
			probe.cleanTo = "/"
		}
		if got, ok := ix.targetRule(&probe); ok {
			r = got
		} else {
			continue
		}
		if r.kind != MatchExact && r.kind != MatchPrefix {
			continue
		}
		if t, ok := ix.targetRule(&r); ok && t.order != r.order {
			if hops, cyclic := ix.walk(&r, t); cyclic {
				errs = append(errs, r.problem(SeverityError, "to",
					"redirect cycle once rule "+strconv.Quote(d.id)+" is gone: "+hopText(append(hops, r))))
			}
		}
	}
	for _, a := range changed {
		warns = append(warns, shadowedInSlot(ix.slotOf(a))...)
	}
	return errs, warns
}

// walk follows the targets from a's first hop t, up to maxChainHops, and
// reports whether they lead back to a.
func (ix *Index) walk(a *route, t route) (hops []route, cyclic bool) {
	hops = []route{*a}
	for cur := t; ; {
		if cur.order == a.order {
			return hops, true
		}
		for _, h := range hops {
			if h.order == cur.order {
				return hops, false // a cycle not through a
			}
		}
		if len(hops) > maxChainHops {
			return hops, false
		}
		hops = append(hops, cur)
		next, ok := ix.targetRule(&cur)
		if !ok || (cur.kind != MatchExact && cur.kind != MatchPrefix) {
			return hops, false
		}
		cur = next
	}
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

// targetRule is the exact or prefix rule a client following a's redirect
// with GET would hit next. A host-less target stays on a's host; for a
// wildcard rule that is a probe subdomain, for an any-host rule only
// any-host rules are considered (a particular host is unknown).
func (ix *Index) targetRule(a *route) (route, bool) {
	to := a.cleanTo
	req := Request{Method: "GET", Target: to}
	switch {
	case strings.HasPrefix(to, "/"):
		switch {
		case a.scope == "*":
		case strings.HasPrefix(a.scope, "*."):
			req.Host = "redirectd-probe" + a.scope[1:]
		default:
			req.Host = a.scope
		}
	default:
		if _, _, _, ok := splitAbsolute(to); !ok {
			return route{}, false
		}
	}
	r, err := parseRequest(&req)
	if err != nil {
		return route{}, false
	}
	var m match
	if !ix.match(&r, nil, nil, &m) || (m.win.kind != MatchExact && m.win.kind != MatchPrefix) {
		return route{}, false
	}
	return m.win, true
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
// condition on the earlier rule, methods a superset, trailing-slash
// handling at least as wide. Only cases that can be proven are reported.
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
	if e.ext != nil && (len(e.ext.headers) > 0 || e.ext.selfScheme != "") {
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

func (rt *route) problem(sev Severity, field, msg string) Problem {
	return Problem{Severity: sev, Line: int(rt.line), RuleID: rt.id, Field: field, Message: msg}
}

func chainText(b *base, positions []uint32) string {
	ids := make([]string, len(positions))
	for i, p := range positions {
		ids[i] = strconv.Quote(b.str(&b.rules[p], sID))
	}
	return strings.Join(ids, " → ")
}

func hopText(hops []route) string {
	ids := make([]string, len(hops))
	for i := range hops {
		ids[i] = strconv.Quote(hops[i].id)
	}
	return strings.Join(ids, " → ")
}
