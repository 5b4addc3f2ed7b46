package rulegen

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"

	"github.com/redirectd/redirectd/decision"
)

// RequestConfig describes a request stream.
type RequestConfig struct {
	// N is the number of requests.
	N int
	// Hit is the probability (0..1) that a request matches a rule; the
	// others match none. With no rules every request misses.
	Hit float64
	// Seed makes the stream reproducible.
	Seed int64
}

// anyHostPool is where requests for any-host rules (Config.Hosts == 0) and
// misses come from.
var anyHostPool = [...]string{"www.example.com", "example.com", "m.example.com", "shop.example.com"}

var missPaths = [...]string{
	"/", "/search?q=", "/static/js/app-", "/static/css/site-", "/api/v1/cart/",
	"/account/orders/", "/favicon.ico", "/robots.txt", "/images/hero-",
}

// Requests generates cfg.N requests for rules (see the package comment):
// methods are GET (90%), HEAD (6%) and POST (4%), schemes https (85%) and
// http, and a fifth carry a query string. It panics only on a negative N or
// a Hit outside 0..1 (programming errors).
func Requests(rules []decision.Rule, cfg RequestConfig) []decision.Request {
	if cfg.N < 0 || !(cfg.Hit >= 0 && cfg.Hit <= 1) {
		panic(fmt.Sprintf("rulegen: RequestConfig N=%d Hit=%v: want N ≥ 0 and 0 ≤ Hit ≤ 1", cfg.N, cfg.Hit))
	}
	rng := rand.New(rand.NewPCG(uint64(cfg.Seed), 0x72657175657374)) // "request"
	reqs := make([]decision.Request, cfg.N)
	var b []byte
	for i := range reqs {
		q := &reqs[i]
		switch n := rng.IntN(100); {
		case n < 90:
			q.Method = "GET"
		case n < 96:
			q.Method = "HEAD"
		default:
			q.Method = "POST"
		}
		q.Scheme = "https"
		if rng.IntN(100) < 15 {
			q.Scheme = "http"
		}
		b = b[:0]
		switch {
		case len(rules) > 0 && rng.Float64() < cfg.Hit:
			r := &rules[rng.IntN(len(rules))]
			q.Host = r.Host
			if q.Host == "" {
				q.Host = anyHostPool[rng.IntN(len(anyHostPool))]
			}
			b = hitPath(rng, b, r)
		case len(rules) > 0 && rng.IntN(2) == 0:
			// The follow-up request of an earlier redirect: its target,
			// which no rule matches.
			r := &rules[rng.IntN(len(rules))]
			host, path := splitTarget(r.To)
			if host == "" {
				host = r.Host
			}
			if host == "" {
				host = anyHostPool[rng.IntN(len(anyHostPool))]
			}
			q.Host = host
			b = fill(rng, b, path)
		default:
			q.Host = anyHostPool[rng.IntN(len(anyHostPool))]
			p := missPaths[rng.IntN(len(missPaths))]
			b = append(b, p...)
			if p != "/" && strings.ContainsAny(p[len(p)-1:], "-/=") {
				b = strconv.AppendUint(b, rng.Uint64N(1<<32), 36)
			}
		}
		if rng.IntN(5) == 0 {
			if bytes.IndexByte(b, '?') >= 0 {
				b = append(b, '&')
			} else {
				b = append(b, '?')
			}
			b = append(b, "utm_source=newsletter&ref="...)
			b = strconv.AppendInt(b, int64(rng.IntN(1000)), 10)
		}
		q.Target = string(b)
	}
	return reqs
}

// hitPath appends a path that r matches.
func hitPath(rng *rand.Rand, b []byte, r *decision.Rule) []byte {
	switch r.Match {
	case decision.MatchPrefix:
		b = append(b, r.Path...)
		if rng.IntN(3) > 0 {
			b = append(b, '/')
			b = append(b, words[rng.IntN(len(words))]...)
			b = append(b, "-page"...)
		}
		return b
	case decision.MatchPattern:
		return fill(rng, b, r.Path)
	default:
		return append(b, r.Path...)
	}
}

// fill appends path with ":name" segments and a trailing "*" replaced by
// concrete values.
func fill(rng *rand.Rand, b []byte, path string) []byte {
	for path != "" {
		i := strings.IndexAny(path, ":*")
		if i < 0 {
			return append(b, path...)
		}
		b = append(b, path[:i]...)
		if path[i] == '*' {
			b = append(b, words[rng.IntN(len(words))]...)
			b = append(b, '/')
			b = append(b, words[rng.IntN(len(words))]...)
			path = path[i+1:]
			continue
		}
		end := strings.IndexByte(path[i:], '/')
		if end < 0 {
			end = len(path) - i
		}
		if path[i:i+end] == ":year" {
			b = strconv.AppendInt(b, int64(2012+rng.IntN(14)), 10)
		} else {
			b = append(b, words[rng.IntN(len(words))]...)
			b = append(b, '-')
			b = append(b, words[rng.IntN(len(words))]...)
		}
		path = path[i+end:]
	}
	return b
}

// splitTarget splits a rule target into host ("" for a path) and path.
func splitTarget(to string) (host, path string) {
	rest, ok := strings.CutPrefix(to, "https://")
	if !ok {
		if rest, ok = strings.CutPrefix(to, "http://"); !ok {
			return "", to
		}
	}
	host, path, _ = strings.Cut(rest, "/")
	return host, "/" + path
}

// RequestLine is one line of a request stream file; the names are
// DecideRequest's JSON names.
type RequestLine struct {
	Method   string `json:"method"`
	Scheme   string `json:"scheme,omitempty"`
	Host     string `json:"host,omitempty"`
	Path     string `json:"path"`
	Protocol string `json:"protocol,omitempty"`
	// Headers are the request headers rules may consult (conditions,
	// languages); names are compared lower-case, as in DecideRequest.
	Headers map[string]string `json:"headers,omitempty"`
}

// LineOf is q as a line of a request stream.
func LineOf(q *decision.Request) RequestLine {
	return RequestLine{Method: q.Method, Scheme: q.Scheme, Host: q.Host, Path: q.Target, Protocol: q.Protocol, Headers: q.Headers}
}

// AppendRequest appends q to b as one line of a request stream, its
// newline included.
func AppendRequest(b []byte, q *decision.Request) []byte {
	buf := bytes.NewBuffer(b)
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false) // a query's & stays &
	if err := enc.Encode(LineOf(q)); err != nil {
		panic(err) // strings and a map of strings always encode
	}
	return buf.Bytes()
}

// ParseRequest reads one non-blank line of a request stream (see the
// package comment). Readers that stream a file line by line, such as
// redirectctl diff, use it; ReadRequests reads a whole file with it.
func ParseRequest(line []byte) (decision.Request, error) {
	var l RequestLine
	if err := json.Unmarshal(line, &l); err != nil {
		return decision.Request{}, fmt.Errorf("%v; want one JSON object per line with method, scheme, host, path", err)
	}
	if l.Method == "" || l.Path == "" {
		return decision.Request{}, fmt.Errorf("method and path are required")
	}
	var headers map[string]string
	if len(l.Headers) > 0 {
		headers = make(map[string]string, len(l.Headers))
		for name, value := range l.Headers {
			headers[strings.ToLower(name)] = value
		}
	}
	return decision.Request{Method: l.Method, Scheme: l.Scheme, Host: l.Host, Target: l.Path, Protocol: l.Protocol, Headers: headers}, nil
}

// ReadRequests reads a request stream (see the package comment). name is
// used in errors, which say which line is wrong.
func ReadRequests(name string, r io.Reader) ([]decision.Request, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var reqs []decision.Request
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		req, err := ParseRequest(line)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %v", name, n, err)
		}
		reqs = append(reqs, req)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return reqs, nil
}
