// Package decision decides HTTP redirects: given a request and a rule set it
// answers the status code, Location, the method a client will use on the
// follow-up request and cache advice, following RFC 9110, RFC 9111 and the
// Fetch standard.
//
// It is a plain library: no network, no logging, no goroutines, no globals;
// the clock is passed in. A Store holds a rule set and changes it in place
// (README "The rule store"): the bulk in a compact base built on load, the
// changes since in a hashicorp/go-memdb overlay. Each change publishes a
// new immutable Index; readers of the previous one are never disturbed.
package decision

import (
	"fmt"
	"time"
)

// Intent is what a redirect means, independent of the status code that
// expresses it for a given method and protocol (README "Decision semantics").
type Intent uint8

const (
	// IntentUnspecified leaves the choice to the rule, then to the default
	// (temporary, the reversible choice).
	IntentUnspecified Intent = iota
	// IntentPermanent: the resource has moved for good; clients may cache it.
	IntentPermanent
	// IntentTemporary: the resource is elsewhere for now.
	IntentTemporary
	// IntentSeeOther: the answer is another resource, fetched with GET.
	IntentSeeOther
)

var intentNames = [...]string{"", "permanent", "temporary", "see_other"}

// String returns the rules-file word for the intent ("" when unspecified).
func (i Intent) String() string {
	if int(i) < len(intentNames) {
		return intentNames[i]
	}
	return fmt.Sprintf("Intent(%d)", uint8(i))
}

// ParseIntent reads a rules-file word: permanent, temporary or see_other.
func ParseIntent(s string) (Intent, error) {
	for i, name := range intentNames {
		if name != "" && name == s {
			return Intent(i), nil
		}
	}
	return IntentUnspecified, fmt.Errorf("unknown intent %q; accepted: permanent, temporary, see_other", s)
}

// MatchKind says how a rule's path is compared with the request path.
type MatchKind uint8

const (
	// MatchExact compares the whole normalised path.
	MatchExact MatchKind = iota
	// MatchPrefix matches whole leading segments; the rest is appended to To.
	MatchPrefix
	// MatchPattern matches ":name" segments and a trailing "*" (":splat").
	MatchPattern
	// MatchRegex matches an RE2 expression anchored on the whole path.
	MatchRegex
)

var matchNames = [...]string{"exact", "prefix", "pattern", "regex"}

// String returns the rules-file word for the match kind.
func (k MatchKind) String() string {
	if int(k) < len(matchNames) {
		return matchNames[k]
	}
	return fmt.Sprintf("MatchKind(%d)", uint8(k))
}

// ParseMatchKind reads a rules-file word: exact, prefix, pattern or regex.
func ParseMatchKind(s string) (MatchKind, error) {
	for i, name := range matchNames {
		if name == s {
			return MatchKind(i), nil
		}
	}
	return MatchExact, fmt.Errorf("unknown match %q; accepted: exact, prefix, pattern, regex", s)
}

// QueryPolicy says what happens to the request's query string.
type QueryPolicy uint8

const (
	// QueryKeep merges the request query into the target's query (the
	// target wins on equal keys).
	QueryKeep QueryPolicy = iota
	// QueryDrop discards the request query.
	QueryDrop
)

// TrailingSlash says whether "/a" and "/a/" are the same path for a rule.
type TrailingSlash uint8

const (
	// TrailingSlashIgnore matches "/a" and "/a/" alike.
	TrailingSlashIgnore TrailingSlash = iota
	// TrailingSlashStrict matches only the path as written.
	TrailingSlashStrict
)

// Mode says whether a rule's answers are given (README "Shadow rules").
type Mode uint8

const (
	// ModeEnforce: the rule answers the requests it matches.
	ModeEnforce Mode = iota
	// ModeShadow: the rule is evaluated and, when it would have answered,
	// reported in Decision.Shadows; the decision is made as if it were
	// absent. A new rule is tried on live traffic this way.
	ModeShadow
)

var modeNames = [...]string{"enforce", "shadow"}

// String returns the rules-file word for the mode.
func (m Mode) String() string {
	if int(m) < len(modeNames) {
		return modeNames[m]
	}
	return fmt.Sprintf("Mode(%d)", uint8(m))
}

// ParseMode reads a rules-file word: enforce or shadow.
func ParseMode(s string) (Mode, error) {
	for i, name := range modeNames {
		if name == s {
			return Mode(i), nil
		}
	}
	return ModeEnforce, fmt.Errorf("unknown mode %q; accepted: enforce, shadow", s)
}

// Rule is one redirect rule, as written in a rules file (README "Rules").
// Zero values are the documented defaults. The one-byte fields sit
// together: a million rules live in one slice, and padding around each of
// them cost 24 bytes a rule.
type Rule struct {
	ID   string
	Host string // exact host, "*.suffix", or "" for any host
	Path string
	To   string // absolute URL or absolute path

	Match MatchKind
	// Intent is the rule's default intent; a request's intent overrides it.
	Intent          Intent
	Query           QueryPolicy
	CaseInsensitive bool
	TrailingSlash   TrailingSlash
	Mode            Mode
	// Status pins the status code (301, 302, 303, 307 or 308); 0 = from intent.
	Status     int
	Methods    []string // upper-case; empty = any method
	QueryStrip []string // glob patterns of query parameter names
	// Headers restricts the rule to requests whose headers match: lower-case
	// name to glob ("" = header absent or empty). It is shorthand for Has
	// conditions of type header (README "Conditions").
	Headers map[string]string
	// Has and Missing are request conditions (README "Conditions"): the
	// rule applies only when every Has condition holds and no Missing one
	// does. A decision that consulted headers or cookies carries Vary and
	// private caching.
	Has, Missing []Condition
	// Languages limits the rule to requests whose Accept-Language selects
	// one of these tags (RFC 4647 section 3.4 lookup); ":lang" in To is the
	// tag selected (README "Language negotiation").
	Languages []string
	// CacheMaxAge overrides the server's max-age: nil = not set (the
	// server's default), 0 = not cacheable (no-store).
	CacheMaxAge *time.Duration
	// Since is when the rule was created; it drives the permanent-cache
	// ramp and PromoteAfter.
	Since time.Time
	// ActiveFrom and ActiveUntil bound when the rule matches (README
	// "Time windows"): from ActiveFrom, before ActiveUntil; zero = no
	// bound.
	ActiveFrom, ActiveUntil time.Time
	// PromoteAfter stages a permanent rule (README "Staged permanence"):
	// until Since+PromoteAfter it answers the temporary status with
	// no-store. 0 = not staged.
	PromoteAfter time.Duration

	// Line is the rule's line in its rules file (0 when not from a file).
	Line int
}

// Condition is one entry of a rule's has or missing list, in Vercel's
// shape (README "Conditions").
type Condition struct {
	// Type is "header", "cookie" or "query".
	Type string `json:"type" yaml:"type"`
	// Key is the header name (compared case-insensitively), cookie name or
	// query parameter name (both compared case-sensitively).
	Key string `json:"key" yaml:"key"`
	// Value is a glob ('*' any text, '?' one character, '\' quotes the
	// next) the value must match; nil: the key need only be present.
	Value *string `json:"value,omitzero" yaml:"value"`
}

// The condition types.
const (
	ConditionHeader = "header"
	ConditionCookie = "cookie"
	ConditionQuery  = "query"
)

// Request is what a caller knows about an HTTP request.
type Request struct {
	Method string
	Scheme string // "http" or "https"; "" when unknown
	Host   string // authority, may carry a port
	// Target is the request target as sent: path with optional "?query",
	// or absolute-form "https://host/p?q".
	Target   string
	Intent   Intent
	Protocol string            // "HTTP/1.0", "HTTP/1.1", "HTTP/2", "HTTP/3"; "" = 1.1 or later
	Headers  map[string]string // lower-case names
	Explain  bool
}

// Decision is the answer for one request.
type Decision struct {
	// Redirect is false when no rule matched: pass the request on.
	Redirect          bool
	Status            int
	Location          string
	FollowUpMethod    string
	FollowUpKeepsBody bool
	Cache             CacheAdvice
	// Headers are exactly the response headers to send. A pass carries
	// Vary alone when header conditions were evaluated: the response the
	// origin sends varies on them (RFC 9110 section 12.5.5).
	Headers []Header
	RuleID  string
	// SelfRedirect: a rule's Location was the request's own URL (same
	// scheme, host, port, path and query after normalisation), so it was
	// not answered: another candidate decided, or the request passed
	// (README "Redirect loops"). The server counts these.
	SelfRedirect bool
	// Shadows are the shadow rules (Rule.Mode) that would have answered
	// the request, in the order they were tried, each with its answer;
	// the decision itself was made as if they were absent (README
	// "Shadow rules"). The server counts and logs them.
	Shadows []ShadowAnswer
	// Explanation is filled when the request asked for it.
	Explanation *Explanation
}

// ShadowAnswer is the answer a shadow rule would have given.
type ShadowAnswer struct {
	RuleID   string
	Status   int
	Location string
	Cache    CacheAdvice
}

// CacheAdvice is how long a client or shared cache may keep the redirect.
type CacheAdvice struct {
	Cacheable    bool
	MaxAge       time.Duration
	CacheControl string
}

// Header is one response header.
type Header struct {
	Name, Value string
}

// Explanation tells how a decision was reached.
type Explanation struct {
	Host       string // normalised host used for matching
	Path       string // normalised path used for matching
	Candidates []Candidate
}

// Candidate is one rule the index considered, in the order considered.
type Candidate struct {
	RuleID  string
	Scope   string // "example.com", "*.example.com" or "*" (any host)
	Match   MatchKind
	Applied bool
	Reason  string
}

// Options tune how an Index decides.
type Options struct {
	// PermanentMaxAge is the max-age of 301/308 answers whose rule sets
	// none; zero means DefaultPermanentMaxAge. Never unbounded: browsers
	// keep an undated 301 forever.
	PermanentMaxAge time.Duration
	// FlattenChains makes A→B→C answer A→C directly.
	FlattenChains bool
	// MaxCacheAge refuses rules whose cache_max_age is longer (README
	// "Rules", cache_max_age); zero = no limit. A cached redirect cannot
	// be taken back before it expires.
	MaxCacheAge time.Duration
}

// MaxAdvisedCacheAge is the longest cache_max_age lint accepts without a
// warning, and the daemon's default --max-cache-age: one year, the
// ceiling RFC 2616 section 14.21 advised for Expires.
const MaxAdvisedCacheAge = 365 * 24 * time.Hour

// DefaultPermanentMaxAge is one day.
const DefaultPermanentMaxAge = 24 * time.Hour
