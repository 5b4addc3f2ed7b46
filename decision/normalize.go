package decision

import (
	"strings"
)

// Limits on request fields. 8 KiB is the request-line limit most servers
// apply (nginx large_client_header_buffers, Envoy's default path limit);
// 255 bytes is the longest DNS name (RFC 1035 section 2.3.4).
const (
	maxTargetBytes = 8 << 10
	maxHostBytes   = 255
)

// request is a validated, normalised Request: what matching works on.
type request struct {
	method   string
	scheme   string // "http", "https" or ""
	host     string // lower-case, no port, no trailing dot; "" when unknown
	port     string // the authority's port, "" when none (compared by ownURL)
	path     string // normalised: see normalizePath
	trailing bool   // path ends in "/" (and is not "/")
	upper    bool   // path has ASCII upper-case letters
	query    string // raw query without '?'; "" when none
	http10   bool   // the client speaks HTTP/1.0 (or 0.9)
}

// parseRequest validates req and normalises what matching needs. The error
// names the offending field so a caller can answer 400 / INVALID_ARGUMENT.
func parseRequest(req *Request) (request, *RequestError) {
	var r request
	if req.Method == "" {
		return r, &RequestError{Field: "method", Message: "required; an HTTP method such as GET"}
	}
	if !isToken(req.Method) {
		return r, &RequestError{Field: "method", Message: "not an HTTP method token (RFC 9110 section 5.6.2)"}
	}
	r.method = req.Method
	switch strings.ToUpper(req.Protocol) {
	case "", "HTTP/1.1", "HTTP/2", "HTTP/2.0", "HTTP/3", "HTTP/3.0":
	case "HTTP/1.0", "HTTP/0.9":
		r.http10 = true
	default:
		return r, &RequestError{Field: "protocol", Message: "unknown protocol " + quoteShort(req.Protocol) + "; accepted: HTTP/1.0, HTTP/1.1, HTTP/2, HTTP/3 or empty"}
	}
	switch strings.ToLower(req.Scheme) {
	case "":
	case "http":
		r.scheme = "http"
	case "https":
		r.scheme = "https"
	default:
		return r, &RequestError{Field: "scheme", Message: "unknown scheme " + quoteShort(req.Scheme) + "; accepted: http, https or empty"}
	}

	target := req.Target
	if target == "" {
		return r, &RequestError{Field: "path", Message: "required; the request target, e.g. /docs?x=1"}
	}
	if len(target) > maxTargetBytes {
		return r, &RequestError{Field: "path", Message: "longer than 8 KiB"}
	}
	if hasControl(target) {
		return r, &RequestError{Field: "path", Message: "contains a control character"}
	}
	host := req.Host
	if target[0] != '/' {
		// Absolute-form (RFC 9112 section 3.2.2): its authority replaces
		// the Host header.
		scheme, authority, rest, ok := splitAbsolute(target)
		if !ok {
			return r, &RequestError{Field: "path", Message: "must start with '/' or be an absolute http(s) URL"}
		}
		if err := browserSameHost(scheme, authority); err != nil {
			return r, err
		}
		r.scheme = scheme
		host = authority
		target = rest
	}
	if i := strings.IndexByte(target, '#'); i >= 0 {
		target = target[:i] // a fragment is never sent; ignore one if a caller did
	}
	p := target
	if i := strings.IndexByte(target, '?'); i >= 0 {
		p, r.query = target[:i], target[i+1:]
	}
	var err *RequestError
	if r.host, err = normalizeHost(host); err != nil {
		return r, err
	}
	r.port = hostPort(host)
	r.path = normalizePath(p)
	r.upper = hasUpper(r.path)
	r.trailing = len(r.path) > 1 && r.path[len(r.path)-1] == '/'
	return r, nil
}

// splitAbsolute splits "https://host:port/p?q" into its scheme, authority
// and "/p?q" (or "/" when the path is empty).
func splitAbsolute(s string) (scheme, authority, rest string, ok bool) {
	i := strings.Index(s, "://")
	if i <= 0 {
		return "", "", "", false
	}
	switch strings.ToLower(s[:i]) {
	case "http":
		scheme = "http"
	case "https":
		scheme = "https"
	default:
		return "", "", "", false
	}
	s = s[i+3:]
	end := strings.IndexAny(s, "/?#")
	if end < 0 {
		return scheme, s, "/", true
	}
	authority, rest = s[:end], s[end:]
	if rest[0] != '/' {
		rest = "/" + rest
	}
	return scheme, authority, rest, true
}

// browserSameHost refuses an absolute-form authority that a browser would
// read differently. The WHATWG URL standard, which browsers follow, treats
// '\' as '/' in http and https URLs, so "https://good.com\@evil.com/" is
// host good.com to a browser but evil.com to a split at '/'; it also skips
// the extra slashes of "https:///evil.com". A browser never sends either
// (it normalises first), so such a target is refused rather than guessed
// at (README, "Choices where the design was silent", host matching).
func browserSameHost(scheme, authority string) *RequestError {
	switch {
	case strings.IndexByte(authority, '\\') >= 0:
		return &RequestError{Field: "path", Message: `absolute URL with '\' in its host; browsers read '\' as '/' (WHATWG URL), so which host is meant is ambiguous; send the URL as a browser would`}
	case authority == "":
		return &RequestError{Field: "path", Message: "absolute URL without a host after \"" + scheme + "://\""}
	}
	return nil
}

// normalizeHost lower-cases the host and drops a port, a trailing dot and
// any userinfo, so "Example.COM.:8443" and "example.com" are one host.
func normalizeHost(h string) (string, *RequestError) {
	if len(h) > maxHostBytes+6 { // room for ":65535"
		return "", &RequestError{Field: "host", Message: "longer than 255 bytes"}
	}
	if hasControl(h) {
		return "", &RequestError{Field: "host", Message: "contains a control character"}
	}
	if i := strings.LastIndexByte(h, '@'); i >= 0 {
		h = h[i+1:]
	}
	if strings.HasPrefix(h, "[") { // IPv6 literal, RFC 3986 section 3.2.2
		end := strings.IndexByte(h, ']')
		if end < 0 {
			return "", &RequestError{Field: "host", Message: "IPv6 literal without ']'"}
		}
		if rest := h[end+1:]; rest != "" && (rest[0] != ':' || !isDigits(rest[1:])) {
			return "", &RequestError{Field: "host", Message: "invalid port after IPv6 literal"}
		}
		return strings.ToLower(h[:end+1]), nil
	}
	if i := strings.LastIndexByte(h, ':'); i >= 0 {
		if !isDigits(h[i+1:]) {
			return "", &RequestError{Field: "host", Message: "invalid port " + quoteShort(h[i+1:]) + "; a host is name[:port]"}
		}
		h = h[:i]
	}
	h = strings.TrimSuffix(h, ".")
	if len(h) > maxHostBytes {
		return "", &RequestError{Field: "host", Message: "longer than 255 bytes"}
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !hostChars[c] {
			return "", &RequestError{Field: "host", Message: "invalid character " + quoteShort(string(c)) + "; accepted: letters, digits, '-', '.', '_' and an optional :port"}
		}
	}
	return strings.ToLower(h), nil
}

// hostPort is the port of a host that normalizeHost accepted ("" when it
// has none).
func hostPort(h string) string {
	i := strings.LastIndexByte(h, ':')
	if i < 0 || strings.IndexByte(h[i:], ']') >= 0 {
		return ""
	}
	return h[i+1:]
}

// normalizePath puts a path in the one form rules and requests are compared
// in (RFC 3986 section 6.2.2): percent-encoded octets of unreserved
// characters decoded, other percent-encodings upper-cased, bytes that may
// not appear raw in a path (non-ASCII, space, '"', ...) percent-encoded,
// dot segments removed (section 5.2.4) and "//" collapsed. It returns p
// itself, without allocating, when p is already normal.
func normalizePath(p string) string {
	if p == "" {
		return "/"
	}
	if isNormalPath(p) {
		return p
	}
	var b strings.Builder
	b.Grow(len(p) + 8)
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '%' && i+2 < len(p) && isHex(p[i+1]) && isHex(p[i+2]):
			d := unhex(p[i+1])<<4 | unhex(p[i+2])
			if isUnreserved(d) {
				b.WriteByte(d)
			} else {
				b.WriteByte('%')
				b.WriteByte(upperHex(p[i+1]))
				b.WriteByte(upperHex(p[i+2]))
			}
			i += 2
		case isPathChar(c):
			b.WriteByte(c)
		default:
			writePercent(&b, c)
		}
	}
	return removeDotSegments(b.String())
}

// isNormalPath reports whether normalizePath would return p unchanged.
func isNormalPath(p string) bool {
	if p[0] != '/' {
		return false
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c == '%' || !isPathChar(c) {
			return false
		}
		if c == '/' && i+1 < len(p) {
			switch p[i+1] {
			case '/':
				return false
			case '.':
				// "/." or "/.." followed by '/' or the end is a dot segment.
				rest := p[i+2:]
				if rest == "" || rest[0] == '/' || rest[0] == '.' && (len(rest) == 1 || rest[1] == '/') {
					return false
				}
			}
		}
	}
	return true
}

// removeDotSegments implements RFC 3986 section 5.2.4 on an absolute path and
// also collapses empty segments ("//"), keeping a trailing "/".
func removeDotSegments(p string) string {
	if !hasDotOrEmptySegment(p) {
		return p
	}
	segs := strings.Split(p, "/")
	out := make([]string, 0, len(segs))
	trailing := false
	for i, s := range segs {
		last := i == len(segs)-1
		switch s {
		case "", ".":
			trailing = last && i > 0
			continue
		case "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
			trailing = last
			continue
		}
		out = append(out, s)
		trailing = false
	}
	if len(out) == 0 {
		return "/"
	}
	r := "/" + strings.Join(out, "/")
	if trailing {
		r += "/"
	}
	return r
}

// hasDotOrEmptySegment reports whether p has a "." or ".." segment or an
// empty one ("//"), the cases removeDotSegments changes.
func hasDotOrEmptySegment(p string) bool {
	for i := 0; i < len(p); i++ {
		if p[i] != '/' || i+1 >= len(p) {
			continue
		}
		switch rest := p[i+1:]; {
		case rest[0] == '/':
			return true
		case rest[0] == '.':
			if len(rest) == 1 || rest[1] == '/' || rest[1] == '.' && (len(rest) == 2 || rest[2] == '/') {
				return true
			}
		}
	}
	return p != "" && p[0] != '/'
}

// isToken reports whether s is an RFC 9110 section 5.6.2 token.
func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			continue
		}
		if !strings.ContainsRune("!#$%&'*+-.^_`|~", rune(c)) {
			return false
		}
	}
	return s != ""
}

// hasControl reports whether s holds an ASCII control character or DEL;
// such bytes would let a value split or smuggle headers.
func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return true
		}
	}
	return false
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != "" && len(s) <= 5
}

// isUnreserved: ALPHA / DIGIT / "-" / "." / "_" / "~" (RFC 3986 section 2.3).
func isUnreserved(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

// isPathChar: the bytes a normalised path holds raw — unreserved,
// sub-delims, ':', '@' (pchar, RFC 3986 section 3.3) and '/'.
func isPathChar(c byte) bool { return pathChars[c] }

// pathChars and hostChars are read-only byte tables: one lookup per byte
// on the per-request path instead of a chain of comparisons.
var pathChars, hostChars = byteTables()

func byteTables() (path, host [256]bool) {
	for c := 0; c < 256; c++ {
		b := byte(c)
		path[c] = isUnreserved(b) || strings.IndexByte("/:@!$&'()*+,;=", b) >= 0
		host[c] = b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '-' || b == '.' || b == '_'
	}
	return path, host
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

func upperHex(c byte) byte {
	if c >= 'a' && c <= 'f' {
		return c - 'a' + 'A'
	}
	return c
}

const hexDigits = "0123456789ABCDEF"

func writePercent(b *strings.Builder, c byte) {
	b.WriteByte('%')
	b.WriteByte(hexDigits[c>>4])
	b.WriteByte(hexDigits[c&15])
}

func quoteShort(s string) string {
	if len(s) > 40 {
		s = s[:40] + "..."
	}
	return "\"" + strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s) + "\""
}

func hasUpper(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i]-'A' < 26 {
			return true
		}
	}
	return false
}

// lowerASCII returns s with ASCII letters lower-cased; non-ASCII bytes (in a
// normalised path there are none raw) are left alone.
func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if c := b[j]; c >= 'A' && c <= 'Z' {
					b[j] = c + 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}
