package decision

import "strings"

// Redirects to the request itself (README "Redirect loops"). A Location
// that names the URL the client just asked for would send it round until
// it gives up (Fetch "HTTP-redirect fetch" stops after 20). The load check
// (graph.go) refuses the rules it can prove do that; the rest, and the
// rules that only change a URL's scheme or host, are caught here, on every
// decision, whichever adapter asked.

// selfKind says how a Location relates to the request it was built for.
type selfKind uint8

const (
	// elsewhere: another URL, a redirect.
	elsewhere selfKind = iota
	// alreadyTarget: an absolute Location (scheme and host written in the
	// rule) equal to the request's URL. The rule upgrades the scheme or
	// moves the host for other requests; this one is already there.
	alreadyTarget
	// loop: a path-only Location equal to the request's own path and
	// query. The rule sends every such request to itself, whatever its
	// scheme: a mistake in the rules.
	loop
)

// ownURL compares loc, a Location built for r, with r's own URL after
// normalisation: same scheme, host, port (the scheme's default port is no
// port), path and query (RFC 3986 section 6.2.2). A fragment is ignored:
// it is never sent (RFC 9110 section 7.1). An absolute Location on a
// request whose scheme or host is unknown is never the request's own.
func ownURL(loc string, r *request) selfKind {
	if i := strings.IndexByte(loc, '#'); i >= 0 {
		loc = loc[:i]
	}
	kind, rest := loop, loc
	if !strings.HasPrefix(loc, "/") {
		scheme, authority, p, ok := splitAbsolute(loc)
		if !ok || r.scheme == "" || scheme != r.scheme || r.host == "" {
			return elsewhere
		}
		if h, err := normalizeHost(authority); err != nil || h != r.host ||
			explicitPort(scheme, hostPort(authority)) != explicitPort(scheme, r.port) {
			return elsewhere
		}
		kind, rest = alreadyTarget, p
	}
	p, q := rest, ""
	if i := strings.IndexByte(rest, '?'); i >= 0 {
		p, q = rest[:i], rest[i+1:]
	}
	if normalizePath(p) != r.path || !sameQuery(q, r.query) {
		return elsewhere
	}
	return kind
}

// explicitPort is port, or "" when it is scheme's default (RFC 9110
// section 4.2).
func explicitPort(scheme, port string) string {
	if scheme == "http" && port == "80" || scheme == "https" && port == "443" {
		return ""
	}
	return port
}

// sameQuery compares two queries parameter by parameter, in order, after
// the normalisation mergeQuery and browsers apply: empty parameters
// dropped, bytes a query may not hold raw percent-encoded, escapes of
// unreserved characters decoded and the others' hex upper-cased.
func sameQuery(a, b string) bool {
	if a == b {
		return true
	}
	return normalQuery(a) == normalQuery(b)
}

func normalQuery(q string) string {
	var b strings.Builder
	for p := range strings.SplitSeq(q, "&") {
		if p == "" {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('&')
		}
		for i := 0; i < len(p); i++ {
			switch c := p[i]; {
			case c == '%' && i+2 < len(p) && isHex(p[i+1]) && isHex(p[i+2]):
				if d := unhex(p[i+1])<<4 | unhex(p[i+2]); isUnreserved(d) {
					b.WriteByte(d)
				} else {
					b.WriteByte('%')
					b.WriteByte(upperHex(p[i+1]))
					b.WriteByte(upperHex(p[i+2]))
				}
				i += 2
			case isPathChar(c) || c == '?':
				b.WriteByte(c)
			default:
				writePercent(&b, c)
			}
		}
	}
	return b.String()
}
