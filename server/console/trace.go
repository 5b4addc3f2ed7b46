package console

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/redirectd/redirectd/decision"
)

// traceForm is the trace form as submitted (a GET, so a trace is a link
// that can be shared and works without JavaScript).
type traceForm struct {
	Method, URL, Protocol, Intent, Headers string
}

type tracePage struct {
	Form     traceForm
	Methods  []string
	Protos   []string
	Intents  []string
	Error    string
	Ran      bool
	Decision decision.Decision
	Sentence string
}

var (
	traceMethods   = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
	traceProtocols = []string{"HTTP/1.1", "HTTP/2", "HTTP/3", "HTTP/1.0"}
	traceIntents   = []string{"", "permanent", "temporary", "see_other"}
)

// serveTrace decides one URL against the serving set with explain on. It
// calls the Index directly, not the daemon's engine: a trace is not
// traffic, so it counts in no hit statistic or metric.
func (c *Console) serveTrace(w http.ResponseWriter, r *http.Request) {
	ix := c.index(w, r)
	if ix == nil {
		return
	}
	q := r.URL.Query()
	p := &tracePage{Methods: traceMethods, Protos: traceProtocols, Intents: traceIntents,
		Form: traceForm{Method: q.Get("method"), URL: q.Get("url"), Protocol: q.Get("protocol"), Intent: q.Get("intent"), Headers: q.Get("headers")}}
	if p.Form.Method == "" {
		p.Form.Method = "GET"
	}
	status := http.StatusOK
	if p.Form.URL != "" {
		d, err := trace(ix, p.Form, c.opts.Now())
		if err != nil {
			p.Error, status = err.Error(), http.StatusBadRequest
		} else {
			p.Ran, p.Decision, p.Sentence = true, d, sentence(p.Form.Method, d)
		}
	}
	c.render(w, r, status, "trace", "Trace a URL", p)
}

func trace(ix *decision.Index, f traceForm, now time.Time) (decision.Decision, error) {
	u, err := url.Parse(strings.TrimSpace(f.URL))
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return decision.Decision{}, fmt.Errorf("URL %q: give an absolute http or https URL, such as https://example.com/old?x=1 (the host is taken from it)", f.URL)
	}
	req := decision.Request{Method: strings.ToUpper(strings.TrimSpace(f.Method)), Scheme: u.Scheme, Host: u.Host,
		Target: u.EscapedPath(), Protocol: f.Protocol, Explain: true}
	if req.Target == "" {
		req.Target = "/"
	}
	if u.RawQuery != "" {
		req.Target += "?" + u.RawQuery
	}
	if f.Intent != "" {
		if req.Intent, err = decision.ParseIntent(f.Intent); err != nil {
			return decision.Decision{}, fmt.Errorf("intent: %v", err)
		}
	}
	for n, line := range strings.Split(f.Headers, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok || strings.TrimSpace(name) == "" {
			return decision.Decision{}, fmt.Errorf("headers line %d %q: write one header a line as \"Name: value\"", n+1, line)
		}
		if req.Headers == nil {
			req.Headers = map[string]string{}
		}
		req.Headers[strings.ToLower(strings.TrimSpace(name))] = strings.TrimSpace(value)
	}
	return ix.Decide(&req, now)
}

// statusSections are the RFC 9110 sections of the redirect status codes.
var statusSections = map[int]string{301: "15.4.2", 302: "15.4.3", 303: "15.4.4", 307: "15.4.8", 308: "15.4.9"}

// sentence says in one plain sentence what a browser does with the answer
// (RFC 9110 section 15.4, the Fetch standard's HTTP-redirect fetch for the
// method, RFC 9111 for caching).
func sentence(method string, d decision.Decision) string {
	method = strings.ToUpper(method)
	if !d.Redirect {
		return "No rule applies: redirectd answers \"no redirect\" and the request goes on to the site as it came."
	}
	var b strings.Builder
	switch {
	case d.FollowUpMethod == method && d.FollowUpKeepsBody && method != "GET" && method != "HEAD":
		fmt.Fprintf(&b, "A browser will repeat this %s to %s with the same body", method, d.Location)
	case d.FollowUpMethod != method:
		fmt.Fprintf(&b, "A browser will follow with a %s to %s and drop the %s's body", d.FollowUpMethod, d.Location, method)
	default:
		fmt.Fprintf(&b, "A browser will request %s with %s", d.Location, d.FollowUpMethod)
	}
	if d.Cache.Cacheable {
		fmt.Fprintf(&b, ", and may reuse this redirect without asking again for %s", d.Cache.MaxAge)
	} else {
		b.WriteString(", and will ask again next time (not cached)")
	}
	fmt.Fprintf(&b, " (%d, RFC 9110 section %s).", d.Status, statusSections[d.Status])
	return b.String()
}
