package accesslog

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/redirectd/redirectd/decision"
)

// Lines as the servers write them: Apache's documentation example
// (httpd "Log Files"), nginx's combined, Envoy's documented default.
const (
	commonLine   = `127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326`
	combinedLine = `127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326 "http://www.example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)"`
	envoyLine    = `[2016-04-15T20:17:00.310Z] "POST /api/v1/locations?x=1 HTTP/2" 204 - 154 0 226 100 "10.0.35.28" "nsq2http" "cc21d9b0-cf5c-432b-8c7e-98aeb7988cd2" "locations.example.com" "tcp://10.0.2.1:80"`
	jsonlLine    = `{"method":"GET","scheme":"https","host":"www.example.com","path":"/blog/a?utm_source=x"}`
)

func TestParse(t *testing.T) {
	tests := []struct {
		name   string
		parser Parser
		line   string
		want   decision.Request
	}{
		{"common", Parser{Format: Common, Host: "example.com", Scheme: "https"}, commonLine,
			decision.Request{Method: "GET", Scheme: "https", Host: "example.com", Target: "/apache_pb.gif", Protocol: "HTTP/1.0"}},
		{"common, no bytes sent", Parser{Format: Common, Host: "example.com"},
			`::1 - - [10/Oct/2000:13:55:36 +0000] "HEAD /x HTTP/1.1" 301 -`,
			decision.Request{Method: "HEAD", Host: "example.com", Target: "/x", Protocol: "HTTP/1.1"}},
		{"common, escaped quote in the target", Parser{Format: Common, Host: "example.com"},
			`1.2.3.4 - - [10/Oct/2000:13:55:36 +0000] "GET /a\"b HTTP/1.1" 404 0`,
			decision.Request{Method: "GET", Host: "example.com", Target: `/a"b`, Protocol: "HTTP/1.1"}},
		{"combined", Parser{Format: Combined, Host: "example.com", Scheme: "http"}, combinedLine,
			decision.Request{Method: "GET", Scheme: "http", Host: "example.com", Target: "/apache_pb.gif", Protocol: "HTTP/1.0"}},
		{"combined, fields after the user agent", Parser{Format: Combined, Host: "example.com"}, combinedLine + ` "-" 0.003`,
			decision.Request{Method: "GET", Host: "example.com", Target: "/apache_pb.gif", Protocol: "HTTP/1.0"}},
		{"envoy", Parser{Format: Envoy, Scheme: "https"}, envoyLine,
			decision.Request{Method: "POST", Scheme: "https", Host: "locations.example.com", Target: "/api/v1/locations?x=1", Protocol: "HTTP/2"}},
		{"envoy without authority takes --host", Parser{Format: Envoy, Host: "fallback.example"},
			`[2016-04-15T20:17:00.310Z] "GET / HTTP/1.1" 200 - 0 0 1 - "-" "-" "-" "-" "-"`,
			decision.Request{Method: "GET", Host: "fallback.example", Target: "/", Protocol: "HTTP/1.1"}},
		{"envoy, no response sent (status 0): a request all the same", Parser{Format: Envoy},
			`[2016-04-15T20:17:00.310Z] "GET /gone HTTP/1.1" 0 DC 0 0 5 - "-" "curl/8.5.0" "-" "example.com" "-"`,
			decision.Request{Method: "GET", Host: "example.com", Target: "/gone", Protocol: "HTTP/1.1"}},
		{"jsonl", Parser{Format: JSONL, Host: "ignored.example"}, jsonlLine,
			decision.Request{Method: "GET", Scheme: "https", Host: "www.example.com", Target: "/blog/a?utm_source=x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.parser.Parse([]byte(tt.line))
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.line, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Parse(%q) (-want +got):\n%s", tt.line, diff)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		format Format
		line   string
		want   string
	}{
		{Common, `127.0.0.1 - - [10/Oct/2000:13:55:36 -0700] "-" 400 0`, `no request line`},
		{Common, `127.0.0.1 - - [yesterday] "GET / HTTP/1.1" 200 0`, `time "yesterday"`},
		{Common, `127.0.0.1 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.1" OK 0`, `status "OK"`},
		{Common, `127.0.0.1 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.1 200 0`, `no closing quote`},
		{Common, combinedLine, `after the bytes field (a combined log?)`},
		{Common, `garbage`, `field 1 missing`},
		{Combined, commonLine, `want a quoted referer`},
		{Combined, `127.0.0.1 - - [10/Oct/2000:13:55:36 -0700] "\x16\x03\x01" 400 0 "-" "-"`, `want METHOD TARGET PROTOCOL`},
		{Envoy, commonLine, `Envoy's default format`},
		{Envoy, `[2016-04-15T20:17:00.310Z] "GET / SPDY/3" 200 - 0 0 1 - "-" "-" "-" "a" "-"`, `protocol "SPDY/3"`},
		{Envoy, `[2016-04-15T20:17:00.310Z] "GET / HTTP/1.1" 200 - 0 0 1 -`, `want "x-forwarded-for"`},
		{Envoy, `[2016-04-15T20:17:00.310Z] "GET / HTTP/1.1" 200 - 0 0 1 - "-" "-"`, `want a quoted x-request-id`},
		{JSONL, `{"method":"GET"}`, `method and path are required`},
		{JSONL, envoyLine, `want one JSON object per line`},
	}
	for _, tt := range tests {
		_, err := (Parser{Format: tt.format}).Parse([]byte(tt.line))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v Parse(%q) = %v, want an error containing %q", tt.format, tt.line, err, tt.want)
		}
	}
}

func TestDetect(t *testing.T) {
	tests := []struct {
		name  string
		lines []string
		want  Format
	}{
		{"jsonl", []string{jsonlLine, "", jsonlLine}, JSONL},
		{"envoy", []string{envoyLine}, Envoy},
		{"combined, not common", []string{combinedLine, combinedLine}, Combined},
		{"common", []string{commonLine}, Common},
		// A bad first line does not decide the format: the majority does.
		{"combined with a bad line first", []string{`127.0.0.1 - - [10/Oct/2000:13:55:36 -0700] "-" 400 0 "-" "-"`, combinedLine, commonLine, combinedLine}, Combined},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var lines [][]byte
			for _, l := range tt.lines {
				lines = append(lines, []byte(l))
			}
			got, err := Detect(lines)
			if err != nil || got != tt.want {
				t.Errorf("Detect = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
	for _, lines := range [][][]byte{nil, {[]byte("  ")}, {[]byte("hello"), []byte("world")}} {
		if f, err := Detect(lines); err == nil {
			t.Errorf("Detect(%q) = %v, want an error", lines, f)
		}
	}
}

func TestParseFormat(t *testing.T) {
	for i, name := range formatNames {
		if f, err := ParseFormat(strings.ToUpper(name)); err != nil || f != Format(i) || f.String() != name {
			t.Errorf("ParseFormat(%q) = %v, %v", name, f, err)
		}
	}
	if _, err := ParseFormat("w3c"); err == nil || !strings.Contains(err.Error(), "accepted: jsonl, envoy, combined, common") {
		t.Errorf("ParseFormat(w3c) = %v", err)
	}
}

// TestAppendRoundTrip: what Append writes, Parse and Detect read back.
func TestAppendRoundTrip(t *testing.T) {
	reqs := []decision.Request{
		{Method: "GET", Scheme: "https", Host: "www.example.com", Target: "/docs/a?x=1", Protocol: "HTTP/1.0"},
		{Method: "POST", Scheme: "https", Host: "shop.example.com", Target: "/cart"},
	}
	at := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	for f := range Format(len(formatNames)) {
		var b []byte
		for i := range reqs {
			b = Append(b, f, &reqs[i], at)
		}
		lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
		var raw [][]byte
		for _, l := range lines {
			raw = append(raw, []byte(l))
		}
		if got, err := Detect(raw); err != nil || got != f {
			t.Errorf("%v: Detect = %v, %v\n%s", f, got, err, b)
		}
		for i, l := range lines {
			want := reqs[i]
			if !f.HasHost() {
				want.Host = "h.example"
			}
			if f != JSONL {
				want.Scheme = "https"
				if want.Protocol == "" {
					want.Protocol = "HTTP/1.1"
				}
			}
			got, err := (Parser{Format: f, Host: "h.example", Scheme: "https"}).Parse([]byte(l))
			if err != nil {
				t.Fatalf("%v: Parse(%q): %v", f, l, err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("%v: Parse(%q) (-want +got):\n%s", f, l, diff)
			}
		}
	}
}
