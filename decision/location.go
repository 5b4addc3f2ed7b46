package decision

import (
	"net/url"
	"path"
	"strings"
)

// template is a pattern or regex rule's To split at Build into literal
// text and capture references, so Decide only copies bytes. Exact and
// prefix rules have none: their To is used as is.
type template struct {
	parts []tplPart
}

type tplPart struct {
	text    string // literal text when group < 0
	group   int    // capture number: pattern param index or regex group
	inQuery bool   // the reference sits in To's query or fragment
}

// captures holds byte offsets into the request path; index 0 is unused for
// patterns and the whole match for regexes.
type captures struct {
	n    int
	span [maxCaptures][2]int
}

// maxCaptures bounds pattern parameters and regex groups a To may use, so
// captures live on the stack during Decide.
const maxCaptures = 16

// newTemplate splits to at the capture references ref finds. ref(to, i)
// returns the part a reference starting at to[i] stands for and its
// length, or ok false when none starts there.
func newTemplate(to string, ref func(s string, i int) (part tplPart, n int, ok bool)) *template {
	t := &template{}
	inQuery := false
	start := 0
	for i := 0; i < len(to); i++ {
		if to[i] == '?' || to[i] == '#' {
			inQuery = true
		}
		part, n, ok := ref(to, i)
		if !ok {
			continue
		}
		if start < i {
			t.parts = append(t.parts, tplPart{text: to[start:i], group: -1})
		}
		part.inQuery = inQuery
		t.parts = append(t.parts, part)
		i += n - 1
		start = i + 1
	}
	if start < len(to) {
		t.parts = append(t.parts, tplPart{text: to[start:], group: -1})
	}
	return t
}

// pathEnd is where to's path ends: at its '?' or '#', else its length.
func pathEnd(to string) int {
	if i := strings.IndexAny(to, "?#"); i >= 0 {
		return i
	}
	return len(to)
}

// location builds the Location for a matched rule. rest is the request path
// left after a prefix rule's prefix ("" otherwise); caps are pattern or
// regex captures over path.
// v holds the values of ":lang" and ":subdomain", which replace those
// names in To's own text, never in captured text.
func (rt *route) location(req *request, rest string, path string, caps *captures, v *vars) string {
	t := rt.template()
	to, pe := rt.cleanTo, int(rt.pathEnd)
	var tv toVars
	if rt.ext != nil && rt.ext.vars != 0 {
		tv = rt.ext.vars
		if t == nil {
			to = expandVars(to, tv, v)
			pe = pathEnd(to)
		}
	}
	reqQuery := req.query
	if rt.drop {
		reqQuery = ""
	}
	if t == nil && reqQuery == "" {
		// The common case: To (already cleaned at Build) plus, for a
		// prefix rule, the rest of the path; one allocation at most.
		if rest == "" {
			return to
		}
		if pe == len(to) {
			return joinPath(to, rest)
		}
	}

	var b strings.Builder
	b.Grow(len(to) + len(rest) + len(reqQuery) + 16)
	if t == nil {
		b.WriteString(to[:pe])
		writeRest(&b, rest)
		b.WriteString(to[pe:])
	} else {
		for _, p := range t.parts {
			if p.group < 0 {
				if tv != 0 {
					b.WriteString(expandVars(p.text, tv, v))
				} else {
					b.WriteString(p.text)
				}
				continue
			}
			if p.group < caps.n {
				if s := caps.span[p.group]; s[0] >= 0 {
					writeCapture(&b, path[s[0]:s[1]], p.inQuery)
				}
			}
		}
	}
	loc := b.String()
	if reqQuery == "" && !strings.HasPrefix(loc, "//") && (t == nil || strings.IndexByte(loc, '?') < 0) {
		return loc
	}
	return mergeQuery(loc, reqQuery, rt.queryStrip())
}

// hasVar reports whether to names ":name" (not as the start of a longer
// name).
func hasVar(to, name string) bool {
	for i := 0; i < len(to); {
		j := strings.Index(to[i:], ":"+name)
		if j < 0 {
			return false
		}
		end := i + j + 1 + len(name)
		if end == len(to) || !isNameByte(to[end]) {
			return true
		}
		i = end
	}
	return false
}

// expandVars replaces the names tv flags in text, a piece of a rule's To,
// by their values: ":lang" by a tag of the rule's languages, ":subdomain"
// by labels checked by dnsLabels, so neither can add a '/', '@', ':' or
// anything else that would change what the URL names.
func expandVars(text string, tv toVars, v *vars) string {
	if strings.IndexByte(text, ':') < 0 {
		return text
	}
	var b strings.Builder
	for i := 0; i < len(text); i++ {
		if text[i] == ':' {
			j := i + 1
			for j < len(text) && isNameByte(text[j]) {
				j++
			}
			switch name := text[i+1 : j]; {
			case name == "lang" && tv&varLang != 0:
				b.WriteString(v.lang)
				i = j - 1
				continue
			case name == "subdomain" && tv&varSubdomain != 0:
				b.WriteString(v.subdomain)
				i = j - 1
				continue
			}
		}
		b.WriteByte(text[i])
	}
	return b.String()
}

// dnsLabels reports whether s is one or more dot-separated LDH labels
// (RFC 1035 section 2.3.1, with RFC 1123 section 2.1's leading digits):
// letters, digits and '-', not at either end, 1 to 63 bytes each. Such
// labels put before ".example.org" name a host under example.org and
// nothing else.
func dnsLabels(s string) bool {
	if s == "" || len(s) > maxHostLen {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// joinPath appends rest to to without creating "//" at the seam.
func joinPath(to, rest string) string {
	if strings.HasSuffix(to, "/") && rest[0] == '/' {
		return to + rest[1:]
	}
	return to + rest
}

func writeRest(b *strings.Builder, rest string) {
	if rest == "" {
		return
	}
	s := b.String()
	if strings.HasSuffix(s, "/") && rest[0] == '/' {
		rest = rest[1:]
	}
	b.WriteString(rest)
}

// writeCapture writes a captured value percent-encoded so that it cannot
// end To's path or query early or add a parameter: '?', '#', control and
// non-ASCII bytes are always encoded; in the query also '&', '=', '+'.
// Existing "%XX" escapes (the path is normalised) are kept. A '/' that
// would make "//" is dropped, so a capture can never turn a path into a
// network-path reference (RFC 3986 section 4.2), the open-redirect trick.
func writeCapture(b *strings.Builder, v string, inQuery bool) {
	last := byte(0)
	if s := b.String(); s != "" {
		last = s[len(s)-1]
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c == '%' && i+2 < len(v) && isHex(v[i+1]) && isHex(v[i+2]):
			b.WriteString(v[i : i+3])
			i += 2
			last = 'X'
			continue
		case c == '/':
			if last == '/' || (last == 0 && i+1 < len(v) && v[i+1] == '/') {
				continue
			}
			b.WriteByte(c)
		case inQuery && (c == '&' || c == '=' || c == '+'):
			writePercent(b, c)
		case isPathChar(c):
			b.WriteByte(c)
		default:
			writePercent(b, c)
		}
		last = c
	}
}

// mergeQuery applies the query policy to a built Location: the request's
// query parameters (minus those matching a query_strip glob) are added
// after the target's own, except where the target already has the key —
// the target wins. Parameters keep their bytes, so an encoded '&' or '='
// stays encoded; repeated keys keep their order; an empty query leaves no
// '?'. It also guarantees the Location does not start with "//".
func mergeQuery(loc, reqQuery string, strip []string) string {
	base, frag := loc, ""
	if i := strings.IndexByte(loc, '#'); i >= 0 {
		base, frag = loc[:i], loc[i:]
	}
	toQuery := ""
	if i := strings.IndexByte(base, '?'); i >= 0 {
		base, toQuery = base[:i], base[i+1:]
	}
	for strings.HasPrefix(base, "//") {
		base = base[1:]
	}
	var b strings.Builder
	b.Grow(len(loc) + len(reqQuery) + 1)
	b.WriteString(base)
	n := 0
	add := func(param string) {
		if n == 0 {
			b.WriteByte('?')
		} else {
			b.WriteByte('&')
		}
		writeQueryParam(&b, param)
		n++
	}
	for p := range strings.SplitSeq(toQuery, "&") {
		if p != "" {
			add(p)
		}
	}
	for p := range strings.SplitSeq(reqQuery, "&") {
		if p == "" {
			continue
		}
		key := paramKey(p)
		if stripped(key, strip) || hasKey(toQuery, key) {
			continue
		}
		add(p)
	}
	b.WriteString(frag)
	return b.String()
}

// writeQueryParam copies a query parameter, percent-encoding the bytes a
// URI query may not hold raw (RFC 3986 section 3.4: non-ASCII, space, '"',
// '<', '>', '\\', '^', '`', '{', '|', '}', and a '%' that starts no
// escape), as browsers do; everything else keeps its bytes.
func writeQueryParam(b *strings.Builder, p string) {
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '%' && i+2 < len(p) && isHex(p[i+1]) && isHex(p[i+2]):
			b.WriteByte(c)
		case isPathChar(c) || c == '?':
			b.WriteByte(c)
		default:
			writePercent(b, c)
		}
	}
}

// paramKey is the name part of "name=value".
func paramKey(p string) string {
	if i := strings.IndexByte(p, '='); i >= 0 {
		return p[:i]
	}
	return p
}

// hasKey reports whether query has a parameter named key, comparing
// decoded names so "a%5Fb" and "a_b" are one key.
func hasKey(query, key string) bool {
	if query == "" {
		return false
	}
	k := decodeName(key)
	for p := range strings.SplitSeq(query, "&") {
		if p != "" && decodeName(paramKey(p)) == k {
			return true
		}
	}
	return false
}

// decodeName decodes a form-encoded parameter name (WHATWG URL
// application/x-www-form-urlencoded), leaving it as is when invalid.
func decodeName(s string) string {
	if !strings.ContainsAny(s, "%+") {
		return s
	}
	if d, err := url.QueryUnescape(s); err == nil {
		return d
	}
	return s
}

func stripped(key string, globs []string) bool {
	if len(globs) == 0 {
		return false
	}
	k := decodeName(key)
	for _, g := range globs {
		if globMatch(g, k) {
			return true
		}
	}
	return false
}

// globMatch matches with path.Match syntax (* ? [a-z] \x), the syntax
// checkRule validates; '*' does not cross '/'.
func globMatch(glob, s string) bool {
	ok, _ := path.Match(glob, s)
	return ok
}
