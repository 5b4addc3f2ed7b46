// Package rulegen generates realistic, deterministic rule sets and matching
// request streams, so every benchmark, load test and scale test of redirectd
// uses the same data.
//
// Rules(cfg) returns cfg.N rules that decision.Build accepts without errors:
// ids are unique, no two rules share a host and path, and no target can
// match any rule (sources and targets live under disjoint top-level
// segments), so there are no self-redirects, cycles or chains. Paths look
// like the ones sites carry after a migration:
//
//	exact    /blog/2019/03/quiet-river-notes-k3x9  → /articles/quiet-river-notes-k3x9
//	exact    /products/sku-481516-2s               → https://shop.example.org/item/481516-2s
//	exact    /docs/v2/guide/easy-setup-tips-9a     → /documentation/v3/guide/easy-setup-tips-9a
//	prefix   /docs/v2/install-1a                   → https://docs.example.org/v2/install-1a
//	prefix   /category/shoes-5b                    → /shop/shoes-5b
//	pattern  /news/travel-7f/:year/:slug           → /articles/travel-7f/:year/:slug
//	pattern  /u/maria-2c/*                         → https://people.example.org/maria-2c/:splat
//
// One segment of every path carries the rule's number in base 36, which makes
// every path unique. Intents are mixed (70% permanent, 7% of all pinned to
// 308; 20% temporary, 3% pinned to 302; 5% see_other; 5% unspecified); 5%
// of rules drop the query and a few strip tracking parameters.
//
// Requests(rules, cfg) returns requests of which a fraction cfg.Hit match a
// rule (the rule is drawn uniformly) and the rest match none: asset and API
// paths, and follow-up requests for redirect targets, as a real edge sees.
//
// # Request stream file format
//
// AppendRequest writes, and ReadRequests reads, one JSON object per line
// whose field names are DecideRequest's JSON names (the format the load tool
// reads; redirectctl gen --requests-out writes it by default):
//
//	{"method":"GET","scheme":"https","host":"www.example.com","path":"/blog/2019/03/quiet-river-notes-k3x9?utm_source=mail"}
//
// method and path are always present; scheme, host and protocol ("HTTP/1.0",
// ...) are omitted when empty. When reading, blank lines and fields other
// than these are ignored (a file may carry notes such as the expected
// rule), as client/loadgen, the load tool's reader, does.
//
// Both generators are pure functions of their arguments: the same Config and
// seed give byte-for-byte the same rules and requests on every machine and
// Go version (math/rand/v2's PCG is specified).
package rulegen

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/redirectd/redirectd/decision"
)

// Mix is the fraction of rules of each match kind. Fractions are relative:
// they are divided by their sum, which must be positive.
type Mix struct {
	Exact, Prefix, Pattern float64
}

// DefaultMix is the mix of a typical large site: mostly one-to-one moves,
// some moved sections, a few templated moves.
var DefaultMix = Mix{Exact: 0.8, Prefix: 0.15, Pattern: 0.05}

// ParseMix reads "exact=0.8,prefix=0.15,pattern=0.05". Kinds left out get
// zero; the fractions are normalised to sum to one.
func ParseMix(s string) (Mix, error) {
	var m Mix
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, val, ok := strings.Cut(part, "=")
		if !ok {
			return Mix{}, fmt.Errorf("mix %q: %q is not kind=fraction; accepted kinds: exact, prefix, pattern", s, part)
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil || f < 0 || math.IsInf(f, 0) || math.IsNaN(f) {
			return Mix{}, fmt.Errorf("mix %q: %s=%s is not a non-negative number", s, name, val)
		}
		switch strings.TrimSpace(name) {
		case "exact":
			m.Exact = f
		case "prefix":
			m.Prefix = f
		case "pattern":
			m.Pattern = f
		default:
			return Mix{}, fmt.Errorf("mix %q: unknown kind %q; accepted: exact, prefix, pattern", s, name)
		}
	}
	if _, err := m.normalised(); err != nil {
		return Mix{}, fmt.Errorf("mix %q: %w", s, err)
	}
	return m, nil
}

func (m Mix) normalised() ([3]float64, error) {
	sum := m.Exact + m.Prefix + m.Pattern
	if !(sum > 0) || m.Exact < 0 || m.Prefix < 0 || m.Pattern < 0 {
		return [3]float64{}, fmt.Errorf("fractions must be non-negative with a positive sum")
	}
	return [3]float64{m.Exact / sum, m.Prefix / sum, m.Pattern / sum}, nil
}

// String writes the mix as ParseMix reads it.
func (m Mix) String() string {
	f := func(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }
	return "exact=" + f(m.Exact) + ",prefix=" + f(m.Prefix) + ",pattern=" + f(m.Pattern)
}

// Config describes a rule set.
type Config struct {
	// N is the number of rules.
	N int
	// Mix is the fraction of each match kind; the zero Mix means DefaultMix.
	Mix Mix
	// Hosts is the number of distinct hosts the rules are scoped to; zero
	// makes every rule apply to any host.
	Hosts int
	// Seed makes the set reproducible: same Config, same rules.
	Seed int64
}

// Host returns the i-th generated host name (0 ≤ i < Config.Hosts).
func Host(i int) string {
	if i == 0 {
		return "www.example.com"
	}
	return "www." + string(base36(nil, uint64(i))) + ".example.com"
}

// hostsFor returns the hosts rules are scoped to (none = any host).
func hostsFor(n int) []string {
	hosts := make([]string, n)
	for i := range hosts {
		hosts[i] = Host(i)
	}
	return hosts
}

// Word lists for slugs. Fixed forever: changing them changes every
// generated set.
var (
	words = [...]string{
		"quiet", "river", "notes", "summer", "guide", "launch", "update", "review",
		"faster", "builds", "winter", "sale", "how", "we", "scaled", "search",
		"open", "source", "release", "team", "offsite", "recap", "new", "pricing",
		"api", "changes", "year", "in", "data", "privacy", "mobile", "app",
		"design", "system", "tips", "for", "remote", "work", "coffee", "garden",
		"travel", "budget", "recipes", "week", "night", "market", "city", "trail",
		"spring", "clean", "easy", "home", "office", "setup", "best", "practices",
		"deep", "dive", "into", "caching", "edge", "routing", "migration", "story",
	}
	sections   = [...]string{"install", "config", "reference", "tutorial", "faq", "api", "cli", "upgrade"}
	categories = [...]string{"shoes", "bags", "outdoor", "kitchen", "books", "toys", "garden", "audio"}
	topics     = [...]string{"travel", "tech", "food", "sport", "culture", "science", "money", "health"}
	people     = [...]string{"maria", "chen", "amir", "sofia", "lukas", "aiko", "omar", "lea"}
	elsewhere  = [...]string{"https://shop.example.org", "https://docs.example.org", "https://people.example.org", "https://archive.example.org"}
)

// Source paths start with one of these segments and targets with another,
// so no target can ever match a rule.
const (
	targetArticles = "/articles/"
	targetShop     = "/shop/"
	targetDocs     = "/documentation/"
)

// Rules generates cfg.N rules (see the package comment). It panics only on
// a Config that cannot describe a rule set (negative N or Hosts, a Mix
// with no positive fraction): those are programming errors.
func Rules(cfg Config) []decision.Rule {
	if cfg.N < 0 || cfg.Hosts < 0 {
		panic(fmt.Sprintf("rulegen: negative N (%d) or Hosts (%d)", cfg.N, cfg.Hosts))
	}
	mix := cfg.Mix
	if mix == (Mix{}) {
		mix = DefaultMix
	}
	frac, err := mix.normalised()
	if err != nil {
		panic("rulegen: mix " + mix.String() + ": " + err.Error())
	}
	rng := rand.New(rand.NewPCG(uint64(cfg.Seed), 0x7265646972656374)) // "redirect"
	hosts := hostsFor(cfg.Hosts)
	idWidth := digits(max(cfg.N-1, 0))

	rules := make([]decision.Rule, cfg.N)
	var counts [3]int
	// One buffer per string kind, reused: strings are built with append
	// and converted once: one allocation per string; fmt.Sprintf measured
	// ~10x slower per path (3 allocations) on the 2-core machines.
	var id, path, to, tok []byte
	for i := range rules {
		kind := nextKind(frac, &counts, i)
		r := &rules[i]
		if len(hosts) > 0 {
			r.Host = hosts[rng.IntN(len(hosts))]
		}
		tok = base36(tok[:0], uint64(i)) // unique per rule: makes every path unique

		// "r" and i zero-padded to idWidth digits, so ids sort in order.
		id = append(id[:0], 'r')
		for d := digits(i); d < idWidth; d++ {
			id = append(id, '0')
		}
		id = strconv.AppendInt(id, int64(i), 10)

		path, to = path[:0], to[:0]
		switch kind {
		case decision.MatchExact:
			path, to = exactRule(rng, path, to, tok)
		case decision.MatchPrefix:
			path, to = prefixRule(rng, path, to, tok)
		case decision.MatchPattern:
			path, to = patternRule(rng, path, to, tok)
		}
		r.ID = string(id)
		r.Path = string(path)
		r.To = string(to)
		r.Match = kind
		intentOf(rng, r)
		if rng.IntN(20) == 0 {
			r.Query = decision.QueryDrop
		} else if rng.IntN(20) == 0 {
			r.QueryStrip = trackingParams
		}
	}
	return rules
}

// trackingParams is shared by the rules that strip parameters; callers must
// not modify a rule's QueryStrip in place.
var trackingParams = []string{"utm_*", "fbclid"}

// nextKind picks the kind whose count is furthest below its share, so the
// counts follow the mix exactly (within one rule) at every length, and the
// kinds are interleaved rather than in blocks.
func nextKind(frac [3]float64, counts *[3]int, i int) decision.MatchKind {
	best, bestDeficit := 0, math.Inf(-1)
	for k, f := range frac {
		if f == 0 {
			continue
		}
		if d := f*float64(i+1) - float64(counts[k]); d > bestDeficit {
			best, bestDeficit = k, d
		}
	}
	counts[best]++
	return mixKinds[best]
}

var mixKinds = [3]decision.MatchKind{decision.MatchExact, decision.MatchPrefix, decision.MatchPattern}

func intentOf(rng *rand.Rand, r *decision.Rule) {
	switch n := rng.IntN(100); {
	case n < 70:
		r.Intent = decision.IntentPermanent
		if n < 7 {
			r.Status = 308
		}
	case n < 90:
		r.Intent = decision.IntentTemporary
		if n < 73 {
			r.Status = 302
		}
	case n < 95:
		r.Intent = decision.IntentSeeOther
	default:
		// Unspecified: the engine's default (temporary) applies.
	}
}

func slug(rng *rand.Rand, b []byte, tok []byte) []byte {
	n := 2 + rng.IntN(3)
	for j := 0; j < n; j++ {
		b = append(b, words[rng.IntN(len(words))]...)
		b = append(b, '-')
	}
	return append(b, tok...)
}

func exactRule(rng *rand.Rand, path, to, tok []byte) ([]byte, []byte) {
	switch rng.IntN(4) {
	case 0, 1: // blog post moved to /articles
		path = append(path, "/blog/"...)
		path = strconv.AppendInt(path, int64(2012+rng.IntN(14)), 10)
		path = append(path, '/')
		path = twoDigits(path, 1+rng.IntN(12))
		path = append(path, '/')
		start := len(path)
		path = slug(rng, path, tok)
		to = append(to, targetArticles...)
		to = append(to, path[start:]...)
	case 2: // product moved to the new shop, often on another host
		sku := 100000 + rng.IntN(900000)
		path = append(path, "/products/sku-"...)
		path = strconv.AppendInt(path, int64(sku), 10)
		path = append(path, '-')
		path = append(path, tok...)
		if rng.IntN(2) == 0 {
			to = append(to, elsewhere[0]...)
			to = append(to, "/item/"...)
		} else {
			to = append(to, targetShop...)
			to = append(to, categories[rng.IntN(len(categories))]...)
			to = append(to, '/')
		}
		to = strconv.AppendInt(to, int64(sku), 10)
		to = append(to, '-')
		to = append(to, tok...)
	default: // documentation page renamed
		v := 1 + rng.IntN(3)
		path = append(path, "/docs/v"...)
		path = strconv.AppendInt(path, int64(v), 10)
		path = append(path, "/guide/"...)
		start := len(path)
		path = slug(rng, path, tok)
		to = append(to, targetDocs...)
		to = append(to, 'v')
		to = strconv.AppendInt(to, int64(v+1), 10)
		to = append(to, "/guide/"...)
		to = append(to, path[start:]...)
	}
	return path, to
}

func prefixRule(rng *rand.Rand, path, to, tok []byte) ([]byte, []byte) {
	switch rng.IntN(2) {
	case 0: // a docs section moved to the docs site
		v := 1 + rng.IntN(3)
		s := sections[rng.IntN(len(sections))]
		path = append(path, "/docs/v"...)
		path = strconv.AppendInt(path, int64(v), 10)
		path = append(path, '/')
		path = append(path, s...)
		path = append(path, '-')
		path = append(path, tok...)
		to = append(to, elsewhere[1]...)
		to = append(to, "/v"...)
		to = strconv.AppendInt(to, int64(v), 10)
		to = append(to, '/')
		to = append(to, s...)
		to = append(to, '-')
		to = append(to, tok...)
	default: // a shop category renamed
		c := categories[rng.IntN(len(categories))]
		path = append(path, "/category/"...)
		path = append(path, c...)
		path = append(path, '-')
		path = append(path, tok...)
		to = append(to, targetShop...)
		to = append(to, c...)
		to = append(to, '-')
		to = append(to, tok...)
	}
	return path, to
}

func patternRule(rng *rand.Rand, path, to, tok []byte) ([]byte, []byte) {
	switch rng.IntN(2) {
	case 0: // dated news section moved under /articles
		t := topics[rng.IntN(len(topics))]
		path = append(path, "/news/"...)
		start := len(path)
		path = append(path, t...)
		path = append(path, '-')
		path = append(path, tok...)
		to = append(to, targetArticles...)
		to = append(to, path[start:]...)
		path = append(path, "/:year/:slug"...)
		to = append(to, "/:year/:slug"...)
	default: // user pages moved to another host, whole subtree
		p := people[rng.IntN(len(people))]
		path = append(path, "/u/"...)
		path = append(path, p...)
		path = append(path, '-')
		path = append(path, tok...)
		to = append(to, elsewhere[2]...)
		to = append(to, '/')
		to = append(to, p...)
		to = append(to, '-')
		to = append(to, tok...)
		path = append(path, "/*"...)
		to = append(to, "/:splat"...)
	}
	return path, to
}

// digits is the number of decimal digits of n ≥ 0.
func digits(n int) int {
	d := 1
	for ; n >= 10; n /= 10 {
		d++
	}
	return d
}

func twoDigits(b []byte, n int) []byte {
	return append(b, byte('0'+n/10), byte('0'+n%10))
}

func base36(b []byte, n uint64) []byte {
	return strconv.AppendUint(b, n, 36)
}

// OldNew is the set the in-place store's figures and OPA-Envoy's were
// measured with: n exact rules /old/i → /new/i, permanent, cached an hour,
// then 100 prefix rules /section-i → https://archive.example.com/old/section-i.
func OldNew(n int) []decision.Rule {
	rules := make([]decision.Rule, 0, n+100)
	for i := range n {
		rules = append(rules, decision.Rule{ID: fmt.Sprintf("old-%d", i), Path: fmt.Sprintf("/old/%d", i),
			To: fmt.Sprintf("/new/%d", i), Intent: decision.IntentPermanent, CacheMaxAge: new(time.Hour)})
	}
	for i := range 100 {
		rules = append(rules, decision.Rule{ID: fmt.Sprintf("section-%d", i), Path: fmt.Sprintf("/section-%d", i),
			Match: decision.MatchPrefix, To: fmt.Sprintf("https://archive.example.com/old/section-%d", i)})
	}
	return rules
}
