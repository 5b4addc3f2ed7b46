package decision

import (
	"cmp"
	"hash/maphash"
	"iter"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	memdb "github.com/hashicorp/go-memdb"
)

// maxChainHops bounds FlattenChains; cycles are rejected at Build, so this
// only limits the work per decision.
const maxChainHops = 8

// match is the rule that decided a request.
type match struct {
	win route
	loc string // win's Location for the request
	// varies lists the rules whose header conditions were evaluated
	// before (and including) the winner: the answer depends on those
	// headers, whether they matched or not (RFC 9110 section 12.5.5).
	varies []*routeExtra
	// self: a rule was passed over because its Location was the
	// request's own URL (a loop, not an alreadyTarget).
	self bool
	// now decides time windows. until, when not zero, is the start of a
	// rule that was passed over because it is not active yet: the answer
	// given instead is not cached past it.
	now, until time.Time
	// shadows are the shadow rules that would have answered, with their
	// Locations, in the order tried.
	shadows []shadowHit
	// vars are the values of ":lang" (set by admit for the candidate it
	// admits) and ":subdomain" (set by matchScope for a wildcard scope).
	vars vars
	// loadCheck is the load check's view (graph.go): every rule active
	// and enforced, and a rule whose Location is the request's own path
	// wins, so the loop shows. Decide never sets it.
	loadCheck bool
}

// shadowHit is a shadow rule that would have answered, and its Location.
type shadowHit struct {
	rt  route
	loc string
}

// capAt lowers m.until to t (zero: no bound).
func (m *match) capAt(t time.Time) {
	if !t.IsZero() && (m.until.IsZero() || t.Before(m.until)) {
		m.until = t
	}
}

// expiry is the time past which the winner's answer is not to be cached:
// the end of its window, or the start of a rule passed over.
func (m *match) expiry() time.Time {
	if e := m.win.ext; e != nil {
		m.capAt(e.activeUntil)
	}
	return m.until
}

// active reports whether rt's time window holds at m.now, and if not why
// (README "Time windows"). An enforced rule that is not active yet caps
// the max-age of the answer given instead at its start.
func (m *match) active(rt *route) (string, bool) {
	e := rt.ext
	if e == nil || m.loadCheck {
		return "", true
	}
	switch {
	case !e.activeFrom.IsZero() && m.now.Before(e.activeFrom):
		if !e.shadow {
			m.capAt(e.activeFrom)
		}
		return e.notYetWhy, false
	case !e.activeUntil.IsZero() && !m.now.Before(e.activeUntil):
		return e.endedWhy, false
	}
	return "", true
}

// Decide answers one request; the error is a *RequestError. now decides
// time windows, staged permanence and the permanent-cache ramp of rules
// with Since.
func (ix *Index) Decide(req *Request, now time.Time) (Decision, error) {
	r, rerr := parseRequest(req)
	if rerr != nil {
		return Decision{}, rerr
	}
	var ex *Explanation
	if req.Explain {
		ex = &Explanation{Host: r.host, Path: r.path}
	}
	m := match{now: now}
	found := ix.match(&r, req.Headers, ex, &m)
	shadows := shadowAnswers(m.shadows, req.Intent, &r, now)
	rt := &m.win
	var status int
	var staged bool
	var method string
	var keepsBody bool
	if found {
		status, staged = rt.statusOf(req.Intent, &r, now)
		method, keepsBody = followUp(status, r.method)
		if ix.opts.FlattenChains {
			ix.flatten(&r, req, method, &m)
			if ownURL(m.loc, &r) != elsewhere {
				// A chain that leads back to the request (through rules
				// the load check could not follow): no redirect at all.
				found, m.self = false, true
				unapply(ex, rt.id, "matched, but the chain of redirects from it leads back to the request's own URL "+m.loc+"; passed (README \"Redirect loops\")")
			}
		}
	}
	vary := varyOf(m.varies)
	if !found {
		d := Decision{SelfRedirect: m.self, Shadows: shadows, Explanation: ex}
		if vary != "" {
			d.Headers = []Header{{"Vary", vary}}
		}
		return d, nil
	}
	loc := m.loc
	cache := rt.cacheAdvice(status, staged, now, vary != "", m.expiry())
	d := Decision{
		Redirect:          true,
		Status:            status,
		Location:          loc,
		FollowUpMethod:    method,
		FollowUpKeepsBody: keepsBody,
		Cache:             cache,
		RuleID:            rt.id,
		SelfRedirect:      m.self,
		Shadows:           shadows,
		Explanation:       ex,
	}
	if vary == "" {
		d.Headers = []Header{{"Location", loc}, {"Cache-Control", cache.CacheControl}}
	} else {
		d.Headers = []Header{{"Location", loc}, {"Cache-Control", cache.CacheControl}, {"Vary", vary}}
	}
	return d, nil
}

// shadowAnswers are the answers the shadow rules hit would have given,
// each as if it alone decided (no chain flattened, no other rule's Vary).
func shadowAnswers(hits []shadowHit, reqIntent Intent, r *request, now time.Time) []ShadowAnswer {
	if len(hits) == 0 {
		return nil
	}
	out := make([]ShadowAnswer, len(hits))
	for i := range hits {
		rt := &hits[i].rt
		status, staged := rt.statusOf(reqIntent, r, now)
		var until time.Time
		if rt.ext != nil {
			until = rt.ext.activeUntil
		}
		out[i] = ShadowAnswer{RuleID: rt.id, Status: status, Location: hits[i].loc,
			Cache: rt.cacheAdvice(status, staged, now, rt.ext != nil && rt.ext.vary != "", until)}
	}
	return out
}

// unapply marks the applied candidate of rule id as not applied, and why.
func unapply(ex *Explanation, id, why string) {
	if ex == nil {
		return
	}
	for i := range ex.Candidates {
		if c := &ex.Candidates[i]; c.Applied && c.RuleID == id {
			c.Applied, c.Reason = false, why
		}
	}
}

// varyOf joins the header names of the rules a decision depended on.
func varyOf(rs []*routeExtra) string {
	switch len(rs) {
	case 0:
		return ""
	case 1:
		return rs[0].vary
	}
	var names []string
	for _, e := range rs {
		for n := range strings.SplitSeq(e.vary, ", ") {
			if !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
	}
	return strings.Join(names, ", ")
}

// flatten follows a chain of redirects inside this index (A→B→C answers
// C's Location for A), leaving the last Location in m.loc. Each hop is
// decided as the client would request it, with the request's headers: a
// hop's header conditions vary the answer as the first rule's do, so they
// join m.varies. It stops at a Location that is the request's own URL.
func (ix *Index) flatten(first *request, req *Request, method string, m *match) {
	h := hop{host: req.Host, scheme: first.scheme}
	for range maxChainHops {
		next, ok := h.request(m.loc, method, req.Protocol)
		if !ok {
			return
		}
		r, err := parseRequest(&next)
		if err != nil {
			return
		}
		hm := match{now: m.now}
		found := ix.match(&r, req.Headers, nil, &hm)
		m.varies = append(m.varies, hm.varies...)
		if !found {
			return
		}
		m.capAt(hm.expiry())
		nl := h.absolute(hm.loc)
		if nl == m.loc {
			return
		}
		m.loc, h.host, h.scheme = nl, next.Host, r.scheme
		if ownURL(nl, first) != elsewhere {
			return
		}
	}
}

// hop is where a client that follows a redirect stands: the host and
// scheme it last asked, and the origin ("https://host") once a chain has
// left the first request's host, so that a path target is made absolute
// on the host it is relative to.
type hop struct {
	host, scheme, origin string
}

// request is the request a client sends for loc; ok is false when loc is
// not an http(s) URL or absolute path. It records a new origin in h.
func (h *hop) request(loc, method, protocol string) (Request, bool) {
	next := Request{Method: method, Scheme: h.scheme, Host: h.host, Target: loc, Protocol: protocol}
	if !strings.HasPrefix(loc, "/") {
		u, err := url.Parse(loc)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
			return next, false
		}
		next.Host, next.Scheme = u.Host, u.Scheme
		h.origin = u.Scheme + "://" + u.Host
	}
	return next, true
}

// absolute makes a path Location absolute on the origin a chain moved to.
func (h *hop) absolute(loc string) string {
	if strings.HasPrefix(loc, "/") && h.origin != "" {
		return h.origin + loc
	}
	return loc
}

// match finds the rule for r: host scopes from most to least specific
// (exact host, "*.suffix" longest suffix first, any host), only scopes
// that have rules. A wildcard "*.example.com" matches subdomains at any
// depth, not example.com itself (as nginx and Cloudflare do).
func (ix *Index) match(r *request, hdr map[string]string, ex *Explanation, m *match) bool {
	k := ix.keys.Get().(*lookupKey)
	defer ix.keys.Put(k)
	if r.host != "" {
		if _, ok := ix.hosts[r.host]; ok {
			if ix.matchScope(k, "", r.host, r, hdr, ex, m) {
				return true
			}
		}
		if len(ix.wildcards) > 0 {
			for i := 0; i < len(r.host); i++ {
				if r.host[i] != '.' {
					continue
				}
				if _, ok := ix.wildcards[r.host[i+1:]]; ok {
					if ix.matchScope(k, "*.", r.host[i+1:], r, hdr, ex, m) {
						return true
					}
				}
			}
		}
	}
	return ix.anyHost && ix.matchScope(k, "", "*", r, hdr, ex, m)
}

// candidates appends the live rules of the slot with the given key to
// k.cands, in the order they are tried: exact, then pattern and regex,
// then prefix, each in file order. Away from the whole path (level > 0)
// only prefix, pattern and regex rules can match.
func (ix *Index) candidates(k *lookupKey, key []byte, level int) {
	start := len(k.cands)
	b := ix.base
	if pos, ok := b.slot(key); ok {
		for p := pos + 1; p != 0; p = b.next[p-1] {
			c := &b.rules[p-1]
			if level > 0 && c.kind == MatchExact {
				continue
			}
			if ix.changes > 0 && !ix.live(b.str(c, sID)) {
				continue
			}
			k.cands = append(k.cands, candidate{level: level})
			b.route(p-1, &k.cands[len(k.cands)-1].rt)
		}
	}
	if ix.changes > 0 && (level == 0 || ix.dynamic > 0) && ix.filter.mayHoldBytes(ix.base.seed, key) {
		rows, err := ix.txn.Get(rulesTable, slotIndex, string(key))
		for raw := range memdbRows(rows, err) {
			if rt := raw.(*change).rt; level == 0 || rt.kind != MatchExact {
				k.cands = append(k.cands, candidate{rt: *rt, level: level})
			}
		}
	}
	if added := k.cands[start:]; len(added) > 1 {
		slices.SortFunc(added, func(a, b candidate) int {
			if c := kindClass(a.rt.kind) - kindClass(b.rt.kind); c != 0 {
				return c
			}
			return cmp.Compare(a.rt.order, b.rt.order)
		})
	}
}

// memdbRows yields the rows of a memdb query.
func memdbRows(it memdb.ResultIterator, err error) iter.Seq[any] {
	return func(yield func(any) bool) {
		if err != nil || it == nil {
			return
		}
		for raw := it.Next(); raw != nil; raw = it.Next() {
			if !yield(raw) {
				return
			}
		}
	}
}

// walksUp reports whether a request whose key is key may have a prefix,
// pattern or regex candidate above its whole path in this scope.
func (ix *Index) walksUp(key []byte, scopeLen int) bool {
	if ix.dynamic > 0 {
		return true
	}
	b := ix.base
	if len(b.rootWalk) > 0 {
		if _, ok := b.rootWalk[string(key[:scopeLen])]; ok {
			return true
		}
	}
	if len(b.gates) == 0 {
		return false
	}
	_, ok := b.gates[maphash.Bytes(b.seed, key[:gateLen(key)])]
	return ok
}

// matchScope looks the path up in one host scope. Inside a scope, an exact
// rule wins, then pattern and regex rules in file order, then the longest
// prefix; a rule whose methods, headers or case do not fit is skipped and
// the next candidate tried.
func (ix *Index) matchScope(k *lookupKey, scopePrefix, scope string, r *request, hdr map[string]string, ex *Explanation, m *match) bool {
	trim := trimSlash(r.path)
	m.vars.subdomain = ""
	if scopePrefix == "*." {
		m.vars.subdomain = r.host[:len(r.host)-len(scope)-1]
	}
	k.buf = append(k.buf[:0], scopePrefix...)
	k.buf = append(k.buf, scope...)
	scopeLen := len(k.buf)
	k.buf = append(k.buf, 0)
	start := len(k.buf)
	k.buf = append(k.buf, trim...)
	folded := r.upper // the path had upper-case letters
	if folded {
		for i, c := range k.buf[start:] {
			if c >= 'A' && c <= 'Z' {
				k.buf[start+i] = c + 'a' - 'A'
			}
		}
	}
	if trim != "/" {
		k.buf = append(k.buf, '/')
	}
	k.cands = k.cands[:0]
	ix.candidates(k, k.buf, 0)
	for i := range k.cands {
		rt := &k.cands[i].rt
		if rt.kind != MatchExact {
			break
		}
		ok, why, loc := false, "path differs in case or trailing slash", ""
		if rt.fold || !folded && rt.lower || rt.path == trim {
			if !rt.strict || rt.trailing == r.trailing {
				loc, ok, why = ix.apply(rt, r, hdr, m, "", r.path, nil)
			}
		}
		explain(ex, rt, ok, why)
		if ok {
			m.win, m.loc = *rt, loc
			return true
		}
	}
	// Every slot on the way up may hold prefix, pattern or regex rules.
	if ix.walksUp(k.buf, scopeLen) {
		for level, end := 1, len(k.buf)-1; end > start; level++ {
			for end--; k.buf[end] != '/'; end-- {
			}
			ix.candidates(k, k.buf[:end+1], level)
		}
	}

	// Pattern and regex rules: the earliest in file order that matches
	// wins, whichever slot holds it.
	var caps captures
	found, bestCand, shadowsBefore := false, -1, len(m.shadows)
	for i := range k.cands {
		rt := &k.cands[i].rt
		if kindClass(rt.kind) != 1 || found && rt.order > m.win.order {
			continue
		}
		p := trim
		if rt.strict {
			p = r.path
		}
		ok, why, loc := false, "path does not match", ""
		if rt.matchDynamic(p, &caps) {
			loc, ok, why = ix.apply(rt, r, hdr, m, "", p, &caps)
		}
		explain(ex, rt, false, why)
		if ok {
			found = true
			m.win, m.loc = *rt, loc
			if ex != nil {
				if bestCand >= 0 {
					ex.Candidates[bestCand].Reason = "matched, but rule " + strconv.Quote(rt.id) + " comes first in the file"
				}
				bestCand = len(ex.Candidates) - 1
			}
		}
	}
	if found {
		if ex != nil {
			ex.Candidates[bestCand].Applied = true
			ex.Candidates[bestCand].Reason = "matched"
		}
		// A shadow rule later in the file than the winner would not have
		// answered either.
		kept := m.shadows[:shadowsBefore]
		for _, sh := range m.shadows[shadowsBefore:] {
			if sh.rt.order < m.win.order {
				kept = append(kept, sh)
			} else {
				reexplain(ex, sh.rt.id, "mode: shadow, and rule "+strconv.Quote(m.win.id)+" comes first in the file")
			}
		}
		m.shadows = kept
		return true
	}

	for i := range k.cands {
		rt := &k.cands[i].rt
		if rt.kind != MatchPrefix {
			continue
		}
		ok, why, loc := false, "path differs in case", ""
		switch {
		case !rt.fold && (folded || !rt.lower) && !strings.HasPrefix(r.path, rt.path):
		case rt.strict && rt.trailing && len(r.path) == len(rt.path):
			why = "trailing_slash strict: the prefix ends in '/'"
		default:
			loc, ok, why = ix.apply(rt, r, hdr, m, r.path[len(rt.path):], r.path, nil)
		}
		explain(ex, rt, ok, why)
		if ok {
			m.win, m.loc = *rt, loc
			return true
		}
	}
	return false
}

// apply decides whether rt, whose path matches r, answers it: its time
// window (README "Time windows"), methods and headers (admit), and its
// Location (target; rest and caps as there). A shadow rule that would
// have answered is recorded in m.shadows and does not apply: the decision
// goes on as if it were absent, its headers out of Vary and its loops
// uncounted (README "Shadow rules").
func (ix *Index) apply(rt *route, r *request, hdr map[string]string, m *match, rest, path string, caps *captures) (string, bool, string) {
	if why, ok := m.active(rt); !ok {
		return "", false, why
	}
	shadow := rt.ext != nil && rt.ext.shadow && !m.loadCheck
	self, varies := m.self, len(m.varies)
	ok, why := ix.admit(rt, r, hdr, m)
	loc := ""
	if ok {
		loc, ok, why = ix.target(rt, r, rest, path, caps, m)
	}
	if !shadow {
		return loc, ok, why
	}
	m.self, m.varies = self, m.varies[:varies]
	if ok {
		m.shadows = append(m.shadows, shadowHit{rt: *rt, loc: loc})
		why = "mode: shadow: would have redirected to " + loc + "; decided as if it were absent (README \"Shadow rules\")"
	}
	return loc, false, why
}

// mayPass reports whether a rule can pass over a request its path and
// methods match, by one of the filters apply runs: a time window (active),
// shadow mode, conditions or languages, or a :subdomain that must be DNS
// labels (admit). A filter added to those belongs here too, or the load
// check would call a later rule shadowed by this one (shadowed).
func (e *routeExtra) mayPass() bool {
	return e != nil && (e.conds != nil || e.vars&varSubdomain != 0 || e.shadow || !e.activeFrom.IsZero() || !e.activeUntil.IsZero())
}

// reexplain replaces the reason of rule id's candidate that a shadow
// rule's "would have redirected" gave.
func reexplain(ex *Explanation, id, why string) {
	if ex == nil {
		return
	}
	for i := range ex.Candidates {
		if c := &ex.Candidates[i]; c.RuleID == id && strings.HasPrefix(c.Reason, "mode: shadow: would") {
			c.Reason = why
		}
	}
}

// admit applies the filters that do not depend on the path: methods,
// then conditions (README "Conditions"), then languages (README "Language
// negotiation"), which sets m.vars.lang. A rule whose conditions or
// languages were evaluated is recorded whether they held or not: the
// answer varies on the headers they consult.
//
// This is the place for further per-rule filters: each is a field of
// routeExtra set by compile and tested here, before the path's Location
// is built, and named in mayPass.
func (ix *Index) admit(rt *route, r *request, hdr map[string]string, m *match) (bool, string) {
	e := rt.ext
	if e == nil {
		return true, "matched"
	}
	if len(e.methods) > 0 && !slices.Contains(e.methods, r.method) {
		return false, "method " + r.method + " not in methods"
	}
	if e.vary != "" {
		m.varies = append(m.varies, e)
	}
	if rc := e.conds; rc != nil {
		for i := range rc.list {
			if c := &rc.list[i]; !c.holds(r, hdr) {
				return false, c.why
			}
		}
		if len(rc.langs) > 0 {
			tag, ok := negotiate(hdr["accept-language"], rc.langs)
			if !ok {
				return false, rc.langWhy
			}
			m.vars.lang = tag
		}
	}
	if e.vars&varSubdomain != 0 && !dnsLabels(m.vars.subdomain) {
		return false, "the host's labels " + strconv.Quote(m.vars.subdomain) + " before the wildcard's suffix are not DNS labels, so they are no :subdomain (README \"Host captures\")"
	}
	return true, "matched"
}

// target builds rt's Location for r (rest: what follows a prefix; caps:
// pattern or regex captures over path, nil for exact and prefix rules). A rule whose Location is the
// request's own URL does not apply to it (README "Redirect loops"): one
// that moves the scheme or host is already satisfied, one that sends a
// path to itself is a loop, recorded in m.self.
func (ix *Index) target(rt *route, r *request, rest, path string, caps *captures, m *match) (string, bool, string) {
	loc := rt.location(r, rest, path, caps, &m.vars)
	switch ownURL(loc, r) {
	case alreadyTarget:
		return loc, false, "request is already the target " + loc
	case loop:
		if m.loadCheck {
			return loc, true, "matched"
		}
		m.self = true
		return loc, false, "its Location " + loc + " is the request's own URL: a redirect would loop (README \"Redirect loops\")"
	}
	return loc, true, "matched"
}

// matchDynamic matches a pattern or regex rule against p, filling caps.
func (rt *route) matchDynamic(p string, caps *captures) bool {
	if re := rt.ext.re; re != nil {
		loc := re.FindStringSubmatchIndex(p)
		if loc == nil {
			return false
		}
		caps.n = len(loc) / 2
		for i := 0; i < caps.n; i++ {
			caps.span[i] = [2]int{loc[2*i], loc[2*i+1]}
		}
		return true
	}
	return rt.matchPattern(p, caps)
}

// matchPattern matches ":name" segments (non-empty, one segment) and a
// trailing "*" (any rest, possibly empty).
func (rt *route) matchPattern(p string, caps *captures) bool {
	segs := rt.ext.pattern
	if len(segs) == 0 {
		return p == "/"
	}
	caps.n = 0
	i := 0
	for _, sg := range segs {
		if sg.splat {
			start := min(i+1, len(p))
			caps.span[sg.group] = [2]int{start, len(p)}
			caps.n = max(caps.n, sg.group+1)
			return true
		}
		if i >= len(p) || p[i] != '/' {
			return false
		}
		end := strings.IndexByte(p[i+1:], '/')
		if end < 0 {
			end = len(p)
		} else {
			end += i + 1
		}
		seg := p[i+1 : end]
		switch {
		case sg.param:
			if seg == "" {
				return false
			}
			caps.span[sg.group] = [2]int{i + 1, end}
			caps.n = max(caps.n, sg.group+1)
		case rt.fold && !strings.EqualFold(seg, sg.lit), !rt.fold && seg != sg.lit:
			return false
		}
		i = end
	}
	return i == len(p)
}

func explain(ex *Explanation, rt *route, applied bool, why string) {
	if ex == nil {
		return
	}
	ex.Candidates = append(ex.Candidates, Candidate{
		RuleID: rt.id, Scope: rt.scope, Match: rt.kind, Applied: applied, Reason: why,
	})
}
