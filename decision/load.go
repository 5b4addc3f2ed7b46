package decision

import (
	"runtime"
	"slices"
)

// replaceJSONL is ReplaceFile for a JSON Lines file that builds a new
// base: the lines are decoded, checked and compiled straight into the
// base, a piece of the file per core, so a million rules are never held
// as Rules at once (a Rule is 176 bytes and its strings; the base holds a
// rule in about a hundred). The caller holds mu; on success the Change
// holds it until Commit or Abort.
func (s *Store) replaceJSONL(file string, data []byte) (*Change, []Problem, error) {
	n := 1
	if len(data) > splitBytes {
		n = runtime.GOMAXPROCS(0)
	}
	pieces := splitLines(data, n)
	before := linesBefore(pieces)
	if before[len(pieces)] > MaxRules {
		// Lines, not rules: blank and comment lines count too, a bound
		// that is close enough to refuse an absurd file before decoding.
		return nil, nil, tooMany(before[len(pieces)])
	}
	// Every piece fills its own builder over its own region of one slice
	// of records, as many as it has lines.
	all := make([]crule, before[len(pieces)])
	parts := make([]*baseBuilder, len(pieces))
	found := make([][]Problem, len(pieces))
	inPieces(len(pieces), func(k int) {
		bb := newBaseBuilder(newCacheTable(s.opts), 0, len(pieces[k])/2)
		bb.b.rules = all[before[k]:before[k]:before[k+1]]
		var rt route
		for r, ps := range eachLine(pieces[k], before[k]) {
			found[k] = append(found[k], ps...)
			if hasError(ps) {
				continue
			}
			var p *Problem
			if rt, p = compile(r, bb.caches); p != nil {
				found[k] = append(found[k], *p)
				continue
			}
			bb.add(r, &rt)
		}
		parts[k] = bb
	})
	var errs, warns []Problem
	for _, p := range slices.Concat(found...) {
		p.File = file
		if p.Severity == SeverityWarning {
			warns = append(warns, p)
		} else {
			errs = append(errs, p)
		}
	}
	if len(errs) > 0 {
		return nil, nil, &RulesError{Problems: errs}
	}
	bb := joinBuilders(parts, all, newCacheTable(s.opts))
	c, err := s.finishBase(bb, nil)
	if err != nil {
		return nil, nil, locate(err, file)
	}
	return c, warns, nil
}

// joinBuilders makes one builder of the parts, in order, whose records
// lie in regions of all: the records move together, their spans, scopes,
// cache strings and extras are renumbered into the joined tables.
func joinBuilders(parts []*baseBuilder, all []crule, caches *cacheTable) *baseBuilder {
	text, n := 0, 0
	for _, p := range parts {
		text += len(p.b.arena)
	}
	out := newBaseBuilder(caches, 0, text)
	out.b.arena = out.b.arena[:0]
	for _, p := range parts {
		pb := p.b
		arenaBase := uint32(len(out.b.arena))
		out.b.arena = append(out.b.arena, pb.arena...)
		extBase := uint32(len(out.b.exts)) - 1
		out.b.exts = append(out.b.exts, pb.exts[1:]...)
		scopes := make([]uint32, len(pb.scopes))
		for i, sc := range pb.scopes {
			scopes[i] = out.scope(sc)
		}
		cacheIDs := make([]uint32, len(p.caches.list))
		for i, cc := range p.caches.list {
			cacheIDs[i], _ = caches.get(cc.ruleMaxAge())
		}
		// The part's records start at or after their place in all: the
		// parts before it kept fewer records than they had lines.
		start := n
		n += copy(all[n:], pb.rules)
		for i := range all[start:n] {
			c := &all[start+i]
			for s := range c.off {
				c.off[s] += arenaBase
			}
			c.scope, c.cache = scopes[c.scope], cacheIDs[c.cache]
			if c.ext != 0 {
				c.ext += extBase
			}
		}
	}
	out.b.rules = all[:n:n]
	return out
}
