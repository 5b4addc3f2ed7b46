package decision

import (
	"strconv"
	"time"
)

// minRampMaxAge is the floor of the permanent-cache ramp: a brand-new
// permanent rule is still cached for five minutes, enough to absorb load,
// short enough to take a mistake back.
const minRampMaxAge = 300 * time.Second

// statusFor is README "How decisions are made"'s table. HTTP/1.0 knows only 301 and 302
// (RFC 1945 section 9.3); for later protocols a permanent redirect of an
// unsafe method is 308 so the method and body survive (RFC 9110 section
// 15.4.9), and temporary is 307, never 302, for the same reason (RFC 9110
// section 15.4.3 notes user agents rewrite POST after 302).
func statusFor(intent Intent, method string, http10 bool) int {
	switch intent {
	case IntentPermanent:
		if http10 || method == "GET" || method == "HEAD" {
			return 301
		}
		return 308
	case IntentSeeOther:
		if http10 {
			return 302
		}
		return 303
	default:
		if http10 {
			return 302
		}
		return 307
	}
}

// followUp is what a conforming user agent does next (Fetch standard,
// "HTTP-redirect fetch", step 12): 301/302 turn POST into GET, 303 turns
// anything but GET/HEAD into GET; in those cases the body is dropped.
// Otherwise the method is unchanged and its body is sent again; GET and
// HEAD carry none (RFC 9110 sections 9.3.1, 9.3.2), so nothing is kept.
func followUp(status int, method string) (string, bool) {
	switch {
	case (status == 301 || status == 302) && method == "POST",
		status == 303 && method != "GET" && method != "HEAD":
		return "GET", false
	}
	return method, method != "GET" && method != "HEAD"
}

func isPermanent(status int) bool { return status == 301 || status == 308 }

// cacheAdvice is RFC 9111 advice for one answer. Permanent answers are
// heuristically cacheable forever (RFC 9111 section 4.2.2), so they always
// carry an explicit max-age: the rule's, else the server's. A rule with
// Since ramps it: N' = min(N, max(300s, age/4)), so a permanent rule
// created a minute ago is cached five minutes, one created four days ago a
// day. Temporary answers are no-store unless the rule sets a max-age.
// private replaces public when the answer depended on request headers.
func (rt *route) cacheAdvice(status int, now time.Time, private bool) CacheAdvice {
	if isPermanent(status) {
		n := rt.cc.permMaxAge
		if rt.ext != nil && !rt.ext.since.IsZero() {
			age := now.Sub(rt.ext.since)
			if age < 0 {
				age = 0
			}
			ramp := max(minRampMaxAge, age/4)
			if ramp < n {
				n = ramp.Truncate(time.Second)
				return CacheAdvice{Cacheable: true, MaxAge: n, CacheControl: cacheControl(visibility(private), n)}
			}
		}
		if private {
			return CacheAdvice{Cacheable: true, MaxAge: n, CacheControl: rt.cc.permPrivate}
		}
		return CacheAdvice{Cacheable: true, MaxAge: n, CacheControl: rt.cc.permPublic}
	}
	if rt.cc.tempMaxAge <= 0 {
		return CacheAdvice{CacheControl: "no-store"}
	}
	if private {
		return CacheAdvice{Cacheable: true, MaxAge: rt.cc.tempMaxAge, CacheControl: rt.cc.tempPrivate}
	}
	return CacheAdvice{Cacheable: true, MaxAge: rt.cc.tempMaxAge, CacheControl: rt.cc.tempPublic}
}

func visibility(private bool) string {
	if private {
		return "private"
	}
	return "public"
}

// cacheControl formats "public, max-age=N" (N in whole seconds, RFC 9111
// section 5.2.2.1).
func cacheControl(vis string, d time.Duration) string {
	return vis + ", max-age=" + strconv.FormatInt(int64(d/time.Second), 10)
}
