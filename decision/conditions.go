package decision

import (
	"fmt"
	"net/textproto"
	"slices"
	"strings"
	"unicode/utf8"
)

// Request conditions: has, missing and the headers shorthand (README
// "Conditions"). They are compiled once per rule into conds and checked by
// admit; the Vary they cause is computed with them.

// condKind is a Condition's Type, compiled.
type condKind uint8

const (
	condHeader condKind = iota
	condCookie
	condQuery
)

// cond is one compiled condition.
type cond struct {
	key     string // header names lower-case
	glob    string
	why     string // the explanation when it does not hold (see describe)
	kind    condKind
	any     bool // no value: presence alone decides
	missing bool // a missing condition: it holds when the key is not found
}

// conditionKinds maps the rules-file words to condKind.
var conditionKinds = map[string]condKind{ConditionHeader: condHeader, ConditionCookie: condCookie, ConditionQuery: condQuery}

// compileConditions turns a rule's headers, has and missing into conds
// (consultedHeaders names the request headers they consult, for Vary).
// headers is shorthand for has conditions of type header; its empty glob
// ("absent or empty") is a missing condition whose value is "?*".
func compileConditions(r *Rule) []cond {
	var conds []cond
	add := func(c Condition, missing bool) {
		k := conditionKinds[c.Type]
		cd := cond{kind: k, key: c.Key, missing: missing, any: c.Value == nil}
		if c.Value != nil {
			cd.glob = *c.Value
		}
		if k == condHeader {
			cd.key = strings.ToLower(c.Key)
		}
		cd.why = cd.describe()
		conds = append(conds, cd)
	}
	names := make([]string, 0, len(r.Headers))
	for name := range r.Headers {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		glob := r.Headers[name]
		if glob == "" {
			nonEmpty := "?*"
			add(Condition{Type: ConditionHeader, Key: name, Value: &nonEmpty}, true)
		} else {
			add(Condition{Type: ConditionHeader, Key: name, Value: &glob}, false)
		}
	}
	for _, c := range r.Has {
		add(c, false)
	}
	for _, c := range r.Missing {
		add(c, true)
	}
	return conds
}

// consultedHeaders names the request headers r's conditions and languages consult,
// canonical, sorted, each once: every header condition's (headers
// included), Cookie for cookie conditions, Accept-Language for languages;
// query conditions none, the query being part of the URL (README
// "Conditions").
func consultedHeaders(r *Rule) []string {
	var names []string
	for name := range r.Headers {
		names = append(names, textproto.CanonicalMIMEHeaderKey(name))
	}
	for _, c := range slices.Concat(r.Has, r.Missing) {
		switch c.Type {
		case ConditionHeader:
			names = append(names, textproto.CanonicalMIMEHeaderKey(c.Key))
		case ConditionCookie:
			names = append(names, "Cookie")
		}
	}
	if len(r.Languages) > 0 {
		names = append(names, "Accept-Language")
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// ConsultedHeaders are the request headers that the rules' conditions
// and languages read, lower-case and sorted: "cookie" for cookie
// conditions, "accept-language" for languages, each header condition's
// name. A proxy that sends redirectd only some headers must send these
// (README "Envoy").
func ConsultedHeaders(rules []Rule) []string {
	var names []string
	for i := range rules {
		for _, n := range consultedHeaders(&rules[i]) {
			names = append(names, strings.ToLower(n))
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// conditionsEqual reports whether two lists hold the same conditions in
// the same order.
func conditionsEqual(a, b []Condition) bool {
	return slices.EqualFunc(a, b, func(x, y Condition) bool {
		return x.Type == y.Type && x.Key == y.Key && (x.Value == nil) == (y.Value == nil) &&
			(x.Value == nil || *x.Value == *y.Value)
	})
}

// cloneConditions copies a list, values included, so a caller may change
// the copy.
func cloneConditions(list []Condition) []Condition {
	if list == nil {
		return nil
	}
	out := make([]Condition, len(list))
	for i, c := range list {
		out[i] = c
		if c.Value != nil {
			v := *c.Value
			out[i].Value = &v
		}
	}
	return out
}

// holds reports whether the condition holds for the request.
func (c *cond) holds(r *request, hdr map[string]string) bool {
	found := false
	switch c.kind {
	case condHeader:
		v, ok := hdr[c.key]
		found = ok && (c.any || valueGlob(c.glob, v))
	case condCookie:
		for name, v := range cookies(hdr["cookie"]) {
			if name == c.key && (c.any || valueGlob(c.glob, v)) {
				found = true
				break
			}
		}
	case condQuery:
		for name, raw := range queryParams(r.query) {
			if name == c.key && (c.any || valueGlob(c.glob, decodeName(raw))) {
				found = true
				break
			}
		}
	}
	return found != c.missing
}

// describe says why a condition failed, for explain; compile keeps it in
// why, so a decision never formats it.
func (c *cond) describe() string {
	what := [...]string{condHeader: "header", condCookie: "cookie", condQuery: "query parameter"}[c.kind]
	switch {
	case c.missing && c.any:
		return fmt.Sprintf("missing: %s %s is present", what, c.key)
	case c.missing:
		return fmt.Sprintf("missing: %s %s matches %q", what, c.key, c.glob)
	case c.any:
		return fmt.Sprintf("has: %s %s is absent", what, c.key)
	}
	return fmt.Sprintf("has: %s %s does not match %q", what, c.key, c.glob)
}

// JoinFields joins the values of a request header sent in several fields
// into the one value Request.Headers holds: ", " as RFC 9110 section 5.3
// allows, but "; " for Cookie, whose fields are joined that way (RFC 9113
// section 8.2.3; a Cookie value is no comma-separated list, RFC 6265
// section 5.4). name is compared case-insensitively.
func JoinFields(name string, values []string) string {
	if strings.EqualFold(name, "cookie") {
		return strings.Join(values, "; ")
	}
	return strings.Join(values, ", ")
}

// cookies yields the name=value pairs of a Cookie header, read as RFC 6265
// section 4.2.1 writes them (pairs separated by ';' and optional spaces; a
// value may be in double quotes, which are not part of it) but leniently,
// as section 5.4's user agents and servers do: a pair without '=' is
// skipped, and names and values are trimmed of spaces. Cookies sent in
// several header fields arrive joined by "; " (RFC 9113 section 8.2.3).
func cookies(header string) func(yield func(name, value string) bool) {
	return func(yield func(name, value string) bool) {
		for pair := range strings.SplitSeq(header, ";") {
			name, value, ok := strings.Cut(pair, "=")
			if !ok {
				continue
			}
			name = strings.Trim(name, " \t\r\n")
			value = strings.Trim(value, " \t\r\n")
			if len(value) >= 2 && value[0] == '"' && value[len(value)-1] == '"' {
				value = value[1 : len(value)-1]
			}
			if name != "" && !yield(name, value) {
				return
			}
		}
	}
}

// queryParams yields the request's query parameters, each name decoded
// as a browser form encodes it (WHATWG URL
// application/x-www-form-urlencoded: '+' is a space, %XX a byte) and its
// value as written: a caller decodes (decodeName) only the values of the
// name it looks for. A parameter without '=' has the empty value, and
// text that does not decode is compared as it is.
func queryParams(query string) func(yield func(name, rawValue string) bool) {
	return func(yield func(name, value string) bool) {
		if query == "" {
			return
		}
		for p := range strings.SplitSeq(query, "&") {
			if p == "" {
				continue
			}
			name, value, _ := strings.Cut(p, "=")
			if !yield(decodeName(name), value) {
				return
			}
		}
	}
}

// valueGlob matches a condition's value glob: '*' is any text, '/'
// included, '?' one character, '\' makes the next character literal;
// everything else, '[' included, is itself. Case-sensitive.
func valueGlob(glob, s string) bool {
	// The classic two-pointer match with one backtrack point: the last
	// '*' seen and where in s it started to match.
	gi, si := 0, 0
	star, mark := -1, 0
	for si < len(s) {
		if gi < len(glob) {
			switch c := glob[gi]; c {
			case '*':
				star, mark = gi, si
				gi++
				continue
			case '?':
				_, n := utf8.DecodeRuneInString(s[si:])
				gi++
				si += n
				continue
			case '\\':
				if gi+1 < len(glob) && glob[gi+1] == s[si] {
					gi += 2
					si++
					continue
				}
			default:
				if c == s[si] {
					gi++
					si++
					continue
				}
			}
		}
		if star < 0 {
			return false
		}
		mark++
		gi, si = star+1, mark
	}
	for gi < len(glob) && glob[gi] == '*' {
		gi++
	}
	return gi == len(glob)
}

// checkGlob says what is wrong with a value glob: only a trailing '\'
// with nothing to quote, and text no rule field may carry.
func checkGlob(glob string) string {
	if msg := checkText(glob); msg != "" {
		return msg
	}
	for i := 0; i < len(glob); i++ {
		if glob[i] == '\\' {
			if i+1 == len(glob) {
				return "ends with a '\\' that quotes nothing"
			}
			i++
		}
	}
	return ""
}

const (
	conditionShape         = "{type: header|cookie|query, key: a name, value: an optional glob with * and ?}"
	conditionFieldAccepted = "accepted: " + conditionShape
	conditionAccepted      = "accepted: a list of " + conditionShape
)

// checkConditions checks a has or missing list.
func checkConditions(rp *ruleProblems, field string, list []Condition) {
	for i, c := range list {
		at := fmt.Sprintf("[%d]", i)
		if _, ok := conditionKinds[c.Type]; !ok {
			rp.errorf(field, "%s: unknown type %q; %s", at, c.Type, conditionFieldAccepted)
			continue
		}
		switch {
		case c.Key == "":
			rp.errorf(field, "%s: empty key; %s", at, conditionFieldAccepted)
		case c.Type == ConditionHeader && !isToken(c.Key):
			rp.errorf(field, "%s: %q is not a header name; accepted: a header name such as x-beta (RFC 9110 section 5.1)", at, c.Key)
		case c.Type == ConditionCookie && !isToken(c.Key):
			rp.errorf(field, "%s: %q is not a cookie name; accepted: a name without spaces, ';', '=' or quotes (RFC 6265 section 4.1.1)", at, c.Key)
		case checkText(c.Key) != "":
			rp.errorf(field, "%s: key %s", at, checkText(c.Key))
		}
		if c.Value != nil {
			if msg := checkGlob(*c.Value); msg != "" {
				rp.errorf(field, "%s: value %q %s; accepted: a glob where * is any text, ? one character and \\ quotes the next", at, *c.Value, msg)
			}
		}
	}
}
