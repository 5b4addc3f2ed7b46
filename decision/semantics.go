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

// statusOf is the status rt answers r with at now: its pinned status,
// else statusFor the intent (the request's, else the rule's). A staged
// permanent rule (promote_after) answers the temporary status for the
// method and protocol until since + promote_after, so clients keep
// nothing they cannot be told to forget (README "Staged permanence");
// staged says so.
func (rt *route) statusOf(reqIntent Intent, r *request, now time.Time) (status int, staged bool) {
	status = int(rt.status)
	if status == 0 {
		intent := reqIntent
		if intent == IntentUnspecified {
			intent = rt.intent
		}
		status = statusFor(intent, r.method, r.http10)
	}
	if e := rt.ext; e != nil && e.promoteAfter > 0 && isPermanent(status) && now.Before(e.since.Add(e.promoteAfter)) {
		return statusFor(IntentTemporary, r.method, r.http10), true
	}
	return status, false
}

// cacheAdvice is RFC 9111 advice for one answer. Permanent answers are
// heuristically cacheable forever (RFC 9111 section 4.2.2), so they always
// carry an explicit max-age: the rule's, else the server's. A rule with
// Since ramps it: N' = min(N, max(300s, age/4)), so a permanent rule
// created a minute ago is cached five minutes, one created four days ago a
// day. Temporary answers are no-store unless the rule sets a max-age;
// cache_max_age: 0 and a staged rule's temporary answers are no-store.
// No max-age runs past until (README "Time windows"): the end of the
// rule's window, or the start of a rule that will answer instead; what is
// left of it is whole seconds, and none left is no-store. private
// replaces public when the answer depended on request headers.
func (rt *route) cacheAdvice(status int, staged bool, now time.Time, private bool, until time.Time) CacheAdvice {
	if staged {
		return CacheAdvice{CacheControl: "no-store"}
	}
	permanent := isPermanent(status)
	n, cc := rt.cc.tempMaxAge, rt.cc.tempPublic
	if private {
		cc = rt.cc.tempPrivate
	}
	if permanent {
		n, cc = rt.cc.permMaxAge, rt.cc.permPublic
		if private {
			cc = rt.cc.permPrivate
		}
		if e := rt.ext; n > 0 && e != nil && !e.since.IsZero() {
			age := max(now.Sub(e.since), 0)
			if ramp := max(minRampMaxAge, age/4); ramp < n {
				n, cc = ramp.Truncate(time.Second), ""
			}
		}
	}
	if !until.IsZero() && n > 0 {
		if left := until.Sub(now).Truncate(time.Second); left < n {
			n, cc = left, ""
		}
	}
	if n <= 0 {
		return CacheAdvice{CacheControl: "no-store"}
	}
	if cc == "" {
		cc = cacheControlFor(permanent, private, n)
	}
	return CacheAdvice{Cacheable: true, MaxAge: n, CacheControl: cc}
}

// cacheControlFor is the Cache-Control of a cacheable answer (N in whole
// seconds, RFC 9111 section 5.2.2.1): "public, max-age=N" for a permanent
// redirect, "max-age=N" for a temporary one, "private, max-age=N" for
// either when it depended on request headers.
func cacheControlFor(permanent, private bool, n time.Duration) string {
	maxAge := "max-age=" + strconv.FormatInt(int64(n/time.Second), 10)
	switch {
	case private:
		return "private, " + maxAge
	case permanent:
		return "public, " + maxAge
	}
	return maxAge
}
