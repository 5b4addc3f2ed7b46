// Package accesslog reads the requests of an HTTP access log, one line at a
// time, as decision.Requests: what redirectctl diff replays against two rule
// sets (README "diff"). Four formats are read:
//
//   - jsonl: redirectd's request stream, one JSON object per line with
//     DecideRequest's JSON names (what `redirectctl gen --requests-out`
//     writes; read by rulegen.ParseRequest);
//   - common: the Common Log Format of Apache httpd and nginx,
//     `host ident user [time] "request line" status bytes`;
//   - combined: Common plus `"referer" "user-agent"` (nginx's default
//     log_format, Apache's "combined"); fields after those are ignored;
//   - envoy: Envoy's default access-log format,
//     `[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%
//     %PROTOCOL%" %RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED%
//     %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%
//     "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%"
//     "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%"`.
//
// Common and combined logs name no host and no scheme, Envoy's names no
// scheme: a Parser supplies them. Detect picks the format from a file's
// first lines.
package accesslog

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redirectd/redirectd/decision"
	"github.com/redirectd/redirectd/decision/rulegen"
)

// Format is an access-log format.
type Format uint8

const (
	// JSONL is redirectd's request stream (rulegen's format).
	JSONL Format = iota
	// Envoy is Envoy's default access-log format.
	Envoy
	// Combined is the Combined Log Format.
	Combined
	// Common is the Common Log Format.
	Common
)

// formatNames are the --log-format words, in the order Detect prefers a
// format when two read the same lines: the more specific first (every
// combined line is also a common one).
var formatNames = [...]string{"jsonl", "envoy", "combined", "common"}

// Names lists the accepted format names.
func Names() string { return strings.Join(formatNames[:], ", ") }

// String returns the format's name.
func (f Format) String() string {
	if int(f) < len(formatNames) {
		return formatNames[f]
	}
	return fmt.Sprintf("Format(%d)", uint8(f))
}

// ParseFormat reads a format name.
func ParseFormat(s string) (Format, error) {
	for i, name := range formatNames {
		if strings.EqualFold(s, name) {
			return Format(i), nil
		}
	}
	return 0, fmt.Errorf("unknown log format %q; accepted: %s", s, Names())
}

// HasHost reports whether the format's lines name the request's host.
func (f Format) HasHost() bool { return f == JSONL || f == Envoy }

// Parser reads lines of one format. Host and Scheme fill what a line does
// not say: every line of a common or combined log, an Envoy line whose
// authority is "-", a JSONL line without them.
type Parser struct {
	Format Format
	Host   string
	Scheme string
}

// errNoRequest is a line that carries no request line, such as the "-" a
// server logs for a connection closed before one arrived.
var errNoRequest = errors.New(`no request line ("-")`)

// Parse reads one line (without its newline). The request is not
// validated beyond its shape: decision.Index.Decide checks it as it checks
// every request.
func (p Parser) Parse(line []byte) (decision.Request, error) {
	var req decision.Request
	var err error
	switch p.Format {
	case JSONL:
		req, err = rulegen.ParseRequest(line)
	case Envoy:
		req, err = parseEnvoy(line)
	case Combined:
		req, err = parseCLF(line, true)
	case Common:
		req, err = parseCLF(line, false)
	default:
		err = fmt.Errorf("unknown log format %v", p.Format)
	}
	if err != nil {
		return decision.Request{}, err
	}
	if req.Host == "" {
		req.Host = p.Host
	}
	if req.Scheme == "" {
		req.Scheme = p.Scheme
	}
	return req, nil
}

// Detect returns the format that reads the most of lines (a file's first
// lines; blank ones are skipped), preferring the more specific format on a
// tie. It fails when no format reads any of them.
func Detect(lines [][]byte) (Format, error) {
	var best Format
	bestN, seen := 0, 0
	for f := range Format(len(formatNames)) {
		n := 0
		for _, l := range lines {
			if len(bytes.TrimSpace(l)) == 0 {
				continue
			}
			if f == 0 {
				seen++
			}
			if _, err := (Parser{Format: f}).Parse(l); err == nil {
				n++
			}
		}
		if n > bestN {
			best, bestN = f, n
		}
	}
	if bestN == 0 {
		if seen == 0 {
			return 0, errors.New("no lines to detect the log format from")
		}
		return 0, fmt.Errorf("the first %d lines are in no known log format; accepted: %s (name one with --log-format)", seen, Names())
	}
	return best, nil
}

// parseCLF reads `host ident user [time] "request line" status bytes`, and
// with combined `"referer" "user-agent"` after it.
func parseCLF(line []byte, combined bool) (decision.Request, error) {
	s := string(line)
	for i := range 3 { // host, ident, user
		sp := strings.IndexByte(s, ' ')
		if sp <= 0 {
			return decision.Request{}, fmt.Errorf("want `host ident user [time] \"request\" status bytes`; field %d missing", i+1)
		}
		s = s[sp+1:]
	}
	s, err := skipTime(s)
	if err != nil {
		return decision.Request{}, err
	}
	reqLine, s, err := quoted(s, "request line")
	if err != nil {
		return decision.Request{}, err
	}
	if s, err = statusField(s); err != nil {
		return decision.Request{}, err
	}
	bytesField, s, _ := strings.Cut(s, " ")
	if bytesField != "-" && !isDigits(bytesField) {
		return decision.Request{}, fmt.Errorf("bytes %q: want a number or -", bytesField)
	}
	if combined {
		for _, name := range [...]string{"referer", "user-agent"} {
			if _, s, err = quoted(s, name); err != nil {
				return decision.Request{}, err
			}
			s = strings.TrimPrefix(s, " ")
		}
	} else if s != "" {
		return decision.Request{}, fmt.Errorf("unexpected %q after the bytes field (a combined log?)", short(s))
	}
	return requestLine(reqLine)
}

// parseEnvoy reads Envoy's default format (see the package comment): the
// request line, then the authority in the fourth quoted field after the
// status code.
func parseEnvoy(line []byte) (decision.Request, error) {
	s := string(line)
	if !strings.HasPrefix(s, "[") {
		return decision.Request{}, errors.New("want `[START_TIME] \"METHOD PATH PROTOCOL\" ...` (Envoy's default format)")
	}
	end := strings.IndexByte(s, ']')
	if end < 0 {
		return decision.Request{}, errors.New("start time: no closing ]")
	}
	if _, err := time.Parse(time.RFC3339Nano, s[1:end]); err != nil {
		return decision.Request{}, fmt.Errorf("start time %q: want RFC 3339, as %%START_TIME%% writes", short(s[1:end]))
	}
	s = strings.TrimPrefix(s[end+1:], " ")
	reqLine, s, err := quoted(s, "request line")
	if err != nil {
		return decision.Request{}, err
	}
	if s, err = statusField(s); err != nil {
		return decision.Request{}, err
	}
	// RESPONSE_FLAGS BYTES_RECEIVED BYTES_SENT DURATION UPSTREAM-SERVICE-TIME,
	// then "X-FORWARDED-FOR" "USER-AGENT" "X-REQUEST-ID" "AUTHORITY".
	q := strings.IndexByte(s, '"')
	if q < 0 {
		return decision.Request{}, errors.New(`want "x-forwarded-for" "user-agent" "x-request-id" "authority" after the status`)
	}
	s = s[q:]
	var authority string
	for _, name := range [...]string{"x-forwarded-for", "user-agent", "x-request-id", "authority"} {
		if authority, s, err = quoted(s, name); err != nil {
			return decision.Request{}, err
		}
		s = strings.TrimPrefix(s, " ")
	}
	req, err := requestLine(reqLine)
	if err != nil {
		return decision.Request{}, err
	}
	if authority != "-" {
		req.Host = authority
	}
	return req, nil
}

// requestLine splits `METHOD target PROTOCOL` (RFC 9112 section 3); the
// protocol may be missing (HTTP/0.9).
func requestLine(s string) (decision.Request, error) {
	if s == "-" {
		return decision.Request{}, errNoRequest
	}
	method, rest, ok := strings.Cut(s, " ")
	if !ok || method == "" || rest == "" {
		return decision.Request{}, fmt.Errorf("request line %q: want METHOD TARGET PROTOCOL", short(s))
	}
	target, proto, _ := strings.Cut(rest, " ")
	if proto != "" && !strings.HasPrefix(proto, "HTTP/") {
		return decision.Request{}, fmt.Errorf("request line %q: protocol %q is not HTTP/x", short(s), short(proto))
	}
	return decision.Request{Method: method, Target: target, Protocol: proto}, nil
}

// skipTime skips "[10/Oct/2000:13:55:36 -0700] ".
func skipTime(s string) (string, error) {
	if !strings.HasPrefix(s, "[") {
		return "", errors.New("want [time] after host, ident and user")
	}
	end := strings.IndexByte(s, ']')
	if end < 0 {
		return "", errors.New("time: no closing ]")
	}
	if _, err := time.Parse("02/Jan/2006:15:04:05 -0700", s[1:end]); err != nil {
		return "", fmt.Errorf("time %q: want 10/Oct/2000:13:55:36 -0700", short(s[1:end]))
	}
	return strings.TrimPrefix(s[end+1:], " "), nil
}

// quoted reads a double-quoted field at the start of s, in which Apache
// and nginx escape '"' and '\' with a backslash, and returns its value and
// what follows it.
func quoted(s, name string) (value, rest string, err error) {
	if !strings.HasPrefix(s, `"`) {
		return "", "", fmt.Errorf("want a quoted %s", name)
	}
	escaped := false
	for i := 1; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && i+1 < len(s):
			escaped = true
			i++
		case c == '"':
			v := s[1:i]
			if escaped {
				if u, err := strconv.Unquote(`"` + v + `"`); err == nil {
					v = u
				}
			}
			return v, s[i+1:], nil
		}
	}
	return "", "", fmt.Errorf("%s: no closing quote", name)
}

// statusField skips " 200 " after the request line. Envoy writes 0 for
// a request that got no response (the client went away first): a request
// all the same.
func statusField(s string) (string, error) {
	s = strings.TrimPrefix(s, " ")
	code, rest, _ := strings.Cut(s, " ")
	if code != "0" && (len(code) != 3 || !isDigits(code)) {
		return "", fmt.Errorf("status %q: want a three-digit code (or Envoy's 0)", short(code))
	}
	return rest, nil
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// short keeps error messages about long garbage lines readable.
func short(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// Append appends req as one line of format f (with its newline), logged at
// time t with status 200: the inverse of Parse, which `redirectctl gen
// --requests-format` uses to write sample logs. A common or combined line
// names no host and no scheme, an Envoy line no scheme.
func Append(b []byte, f Format, req *decision.Request, t time.Time) []byte {
	proto := req.Protocol
	if proto == "" {
		proto = "HTTP/1.1"
	}
	switch f {
	case Envoy:
		b = append(b, '[')
		b = t.UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z")
		b = appendRequestLine(b, req.Method, req.Target, proto)
		b = append(b, ` 200 - 0 0 1 - "-" "curl/8.5.0" "-" "`...)
		host := req.Host
		if host == "" {
			host = "-"
		}
		b = append(b, host...)
		b = append(b, `" "10.0.0.1:8080"`...)
	case Common, Combined:
		b = append(b, `192.0.2.1 - - [`...)
		b = t.UTC().AppendFormat(b, "02/Jan/2006:15:04:05 -0700")
		b = appendRequestLine(b, req.Method, req.Target, proto)
		b = append(b, ` 200 0`...)
		if f == Combined {
			b = append(b, ` "-" "curl/8.5.0"`...)
		}
	default:
		return rulegen.AppendRequest(b, req)
	}
	return append(b, '\n')
}

// appendRequestLine appends the end of the time's bracket and the quoted
// request line, `] "GET /path HTTP/1.1"`, as every format writes them.
func appendRequestLine(b []byte, method, target, proto string) []byte {
	b = append(b, `] "`...)
	b = append(b, method...)
	b = append(b, ' ')
	b = append(b, target...)
	b = append(b, ' ')
	b = append(b, proto...)
	return append(b, '"')
}
