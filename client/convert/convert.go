// Package convert translates between redirectd rules and the redirect
// files of two other products, so a site can move to redirectd (or check
// its rules elsewhere) without retyping them:
//
//   - Netlify's _redirects file (ImportNetlify, ExportNetlify);
//   - Cloudflare Bulk Redirects CSV (ImportCSV, ExportCSV).
//
// Conversion preserves behaviour or refuses: a line whose meaning redirectd
// cannot reproduce (a rewrite, a proxy, a country condition, a rule the
// other product would never reach) is not converted but reported as a
// decision.Problem with its line number and the reason, and the rest of the
// file is converted. Exports report, by rule id, every rule the format
// cannot express (errors: the rule is left out) and every detail it drops
// that changes only caching or a non-GET answer (warnings: the rule is
// written).
//
// Imported rules pin the status code the file gave (a Netlify 301 stays 301
// for every method, as Netlify answers) and carry the matching intent, so
// cache advice follows README "How decisions are made". Ids are made from the line
// number ("netlify-L12", "cf-L7"), so re-importing an unchanged file gives
// the same ids.
package convert

import (
	"errors"
	"fmt"
	"strings"

	"github.com/redirectd/redirectd/decision"
)

// intentOf is the intent a foreign status code expresses; ok is false for
// a status that is not one of redirectd's five redirect codes.
func intentOf(status int) (decision.Intent, bool) {
	switch status {
	case 301, 308:
		return decision.IntentPermanent, true
	case 302, 307:
		return decision.IntentTemporary, true
	case 303:
		return decision.IntentSeeOther, true
	}
	return decision.IntentUnspecified, false
}

// exportStatus is the one status a format that pins a code per rule gets
// for r, and a warning when redirectd would answer some requests with
// another code. temporary is the format's code for a temporary redirect.
func exportStatus(r *decision.Rule, temporary int) (int, string) {
	if r.Status != 0 {
		return r.Status, ""
	}
	switch r.Intent {
	case decision.IntentPermanent:
		return 301, "status not pinned: redirectd answers 301 to GET and HEAD but 308 to other methods (RFC 9110 section 15.4.9); exported 301"
	case decision.IntentSeeOther:
		return 303, ""
	}
	if temporary == 307 {
		return 307, ""
	}
	return temporary, fmt.Sprintf("status not pinned: redirectd answers a temporary redirect with 307 to HTTP/1.1 clients; exported %d", temporary)
}

// unexpressible returns the field and reason when r uses a feature neither
// format has; format names the product in the message.
func unexpressible(r *decision.Rule, format string) (field, msg string, ok bool) {
	switch {
	case r.Match == decision.MatchRegex:
		return "match", "regular expressions have no " + format + " equivalent", true
	case len(r.Methods) > 0:
		return "methods", format + " rules apply to every method", true
	case len(r.Headers) > 0:
		return "headers", format + " cannot match request headers", true
	case len(r.Missing) > 0:
		return "missing", format + " has no missing conditions", true
	case len(r.QueryStrip) > 0:
		return "query_strip", format + " cannot remove single query parameters", true
	case r.CaseInsensitive:
		return "case_insensitive", format + " compares paths case-sensitively", true
	case r.Mode == decision.ModeShadow:
		return "mode", format + " has no shadow rules: the rule would answer instead of being tried", true
	case !r.ActiveFrom.IsZero():
		return "active_from", format + " has no time windows: the rule would answer at every time", true
	case !r.ActiveUntil.IsZero():
		return "active_until", format + " has no time windows: the rule would answer at every time", true
	case r.PromoteAfter != 0:
		return "promote_after", format + " cannot stage a permanent redirect: it would be permanent at once", true
	}
	return "", "", false
}

// droppedCaching warns about the fields that only tune cache advice, which
// neither format can carry; the rule is still exported.
func droppedCaching(r *decision.Rule, format string) []decision.Problem {
	var ps []decision.Problem
	if r.CacheMaxAge != nil {
		ps = append(ps, ruleWarning(r, "cache_max_age", format+" has no per-rule cache lifetime; dropped"))
	}
	if !r.Since.IsZero() {
		ps = append(ps, ruleWarning(r, "since", format+" has no permanent-cache ramp; dropped"))
	}
	return ps
}

func ruleError(r *decision.Rule, field, msg string) decision.Problem {
	return decision.Problem{Line: r.Line, RuleID: r.ID, Field: field, Message: msg}
}

func ruleWarning(r *decision.Rule, field, msg string) decision.Problem {
	p := ruleError(r, field, msg)
	p.Severity = decision.SeverityWarning
	return p
}

func lineProblem(file string, line int, format string, args ...any) decision.Problem {
	return decision.Problem{File: file, Line: line, Message: fmt.Sprintf(format, args...)}
}

// splitURL splits "scheme://host/path" into its parts; ok is false when s
// has no "http://" or "https://" scheme. path is "/" when s has none.
func splitURL(s string) (scheme, host, path string, ok bool) {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok || (!strings.EqualFold(scheme, "http") && !strings.EqualFold(scheme, "https")) {
		return "", "", "", false
	}
	host, path = rest, "/"
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		host, path = rest[:i], rest[i:]
		if path[0] != '/' {
			path = "/" + path
		}
	}
	return strings.ToLower(scheme), host, path, true
}

// checkHost says what is wrong with a host taken from a source URL.
func checkHost(host string) string {
	switch {
	case host == "":
		return "the URL has no host"
	case strings.ContainsAny(host, "@"):
		return fmt.Sprintf("host %q carries user information", host)
	case strings.Contains(host, ":"):
		return fmt.Sprintf("host %q carries a port; redirectd matches hosts without their port", host)
	case strings.Contains(host, "*"):
		return fmt.Sprintf("host %q has a wildcard", host)
	}
	return ""
}

// literalPrefix is the part of a path before its first placeholder or
// splat segment, without a trailing slash ("/" for none).
func literalPrefix(path string) string {
	end := len(path)
	for i := 0; i < len(path); i++ {
		if path[i] == '/' && i+1 < len(path) && (path[i+1] == ':' || path[i+1] == '*') {
			end = i
			break
		}
	}
	return trimSlash(path[:end])
}

// trimSlash drops a trailing slash, except from the root path.
func trimSlash(p string) string {
	if len(p) > 1 && strings.HasSuffix(p, "/") {
		return p[:len(p)-1]
	}
	if p == "" {
		return "/"
	}
	return p
}

// underPath reports whether p is base or lies below it, on whole segments.
func underPath(p, base string) bool {
	p, base = trimSlash(p), trimSlash(base)
	return base == "/" || p == base || strings.HasPrefix(p, base+"/")
}

// redirectsToItself reports whether a rule on host (""=any) matching path
// sends a request it matches back to a path it matches: a loop a browser
// would follow until it gives up. A target on another host is never a
// loop, even for an any-host rule: the foreign file served only its own
// site.
func redirectsToItself(host, path string, match decision.MatchKind, to string) bool {
	toPath := to
	if _, toHost, p, ok := splitURL(to); ok {
		if host == "" || !strings.EqualFold(toHost, host) {
			return false
		}
		toPath = p
	}
	if i := strings.IndexAny(toPath, "?#"); i >= 0 {
		toPath = toPath[:i]
	}
	if match == decision.MatchExact {
		return trimSlash(toPath) == trimSlash(path)
	}
	return underPath(literalPrefix(toPath), literalPrefix(path))
}

// Loadable returns the rules decision.Build accepts as a set: a rule named
// by a Build error (a redirect cycle across lines, a capture the path does
// not define, a capture in the target's host) is removed and its problems
// returned in rejected, until the rest builds. warnings are the final
// build's. err is a Build error that names no rule.
func Loadable(rules []decision.Rule, opts decision.Options) (kept []decision.Rule, rejected, warnings []decision.Problem, err error) {
	kept = rules
	for {
		_, warnings, err = decision.Build(kept, opts)
		var rerr *decision.RulesError
		if err == nil || !errors.As(err, &rerr) {
			return kept, rejected, warnings, err
		}
		bad := map[string]bool{}
		for _, p := range rerr.Problems {
			if p.Severity != decision.SeverityError {
				continue
			}
			if p.RuleID == "" {
				return kept, rejected, nil, err
			}
			bad[p.RuleID] = true
			rejected = append(rejected, p)
		}
		if len(bad) == 0 {
			return kept, rejected, nil, err
		}
		next := make([]decision.Rule, 0, len(kept)-len(bad))
		for _, r := range kept {
			if !bad[r.ID] {
				next = append(next, r)
			}
		}
		kept = next
	}
}
