package decision

import (
	"fmt"
	"slices"
	"strings"
)

// checkGraph looks at where exact and prefix rules send clients. A rule
// whose target it matches itself, or a cycle A→B→A, would loop a client
// until it gives up (browsers stop after 20 hops, Fetch "HTTP-redirect
// fetch" step 5): errors. A chain A→B→C costs clients a round trip per
// hop: a warning (Options.FlattenChains answers A with C's Location).
// Rules that can never match are warnings too.
func (ix *Index) checkGraph(slots []*slot) (errs, warns []Problem) {
	// next[i] is the rule the target of exact or prefix rule i hits. Each
	// is a lookup in the finished index, so they spread over the cores.
	next := make([]*route, len(ix.routes))
	inChunks(len(ix.routes), ix.opts.loadWorkers(), func(_, lo, hi int) {
		for i := lo; i < hi; i++ {
			if a := &ix.routes[i]; a.rule != nil && (a.kind == MatchExact || a.kind == MatchPrefix) {
				next[i] = ix.targetRule(a)
			}
		}
	})
	var y yielder
	for i := range ix.routes {
		y.step()
		a := &ix.routes[i]
		b := next[i]
		if b == nil {
			continue
		}
		if b == a {
			errs = append(errs, a.problem(SeverityError, "to",
				fmt.Sprintf("redirects to itself: %s matches this rule's own path", a.rule.To)))
			continue
		}
		path := []*route{a}
		cyclic := false
		for cur := b; cur != nil; cur = next[cur.order] {
			if cur == a {
				cyclic = true
				break
			}
			if containsRoute(path, cur) || len(path) > maxChainHops {
				break // a cycle not through a, reported from its own members
			}
			path = append(path, cur)
		}
		switch {
		case cyclic && isFirst(a, path):
			errs = append(errs, a.problem(SeverityError, "to", "redirect cycle: "+chainText(append(path, a))))
		case !cyclic && len(path) >= 2 && !ix.opts.FlattenChains:
			warns = append(warns, a.problem(SeverityWarning, "to",
				"redirect chain: "+chainText(path)+"; clients make one request per hop (flatten-chains answers the first rule with the last target)"))
		}
	}
	for _, s := range slots {
		y.step()
		warns = append(warns, shadowed(s.exact())...)
		warns = append(warns, shadowed(s.prefix())...)
		warns = append(warns, shadowed(s.dynamic())...)
	}
	return errs, warns
}

// targetRule is the exact or prefix rule a client following a's redirect
// with GET would hit next, or nil. A host-less target stays on a's host;
// for a wildcard rule that is a probe subdomain, for an any-host rule only
// any-host rules are considered (a particular host is unknown).
func (ix *Index) targetRule(a *route) *route {
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
			return nil
		}
	}
	r, err := parseRequest(&req)
	if err != nil {
		return nil
	}
	var m match
	if !ix.match(&r, nil, nil, &m) || (m.rt.kind != MatchExact && m.rt.kind != MatchPrefix) {
		return nil
	}
	return m.rt
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
					fmt.Sprintf("never matches: rule %q (line %d) comes first with the same host and path and answers every request this one would", e.rule.ID, e.rule.Line)))
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
		return e.rule.Path == l.rule.Path && e.fold == l.fold && e.strict == l.strict
	}
}

func (rt *route) problem(sev Severity, field, msg string) Problem {
	return Problem{Severity: sev, Line: rt.rule.Line, RuleID: rt.rule.ID, Field: field, Message: msg}
}

func containsRoute(rs []*route, r *route) bool {
	for _, x := range rs {
		if x == r {
			return true
		}
	}
	return false
}

// isFirst reports whether a comes first in file order among a cycle's
// members, so each cycle is reported once.
func isFirst(a *route, cycle []*route) bool {
	for _, r := range cycle {
		if r.order < a.order {
			return false
		}
	}
	return true
}

func chainText(rs []*route) string {
	ids := make([]string, len(rs))
	for i, r := range rs {
		ids[i] = fmt.Sprintf("%q", r.rule.ID)
	}
	return strings.Join(ids, " → ")
}
