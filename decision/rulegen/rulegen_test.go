package rulegen_test

import (
	"bytes"
	"math"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/redirectd/redirectd/decision"
	"github.com/redirectd/redirectd/decision/rulegen"
)

func TestRulesDeterministic(t *testing.T) {
	cfg := rulegen.Config{N: 2000, Hosts: 3, Seed: 42}
	a, b := rulegen.Rules(cfg), rulegen.Rules(cfg)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("same Config gave different rules")
	}
	cfg.Seed = 43
	if c := rulegen.Rules(cfg); reflect.DeepEqual(a, c) {
		t.Fatal("a different seed gave the same rules")
	}
	qa := rulegen.Requests(a, rulegen.RequestConfig{N: 500, Hit: 0.9, Seed: 1})
	qb := rulegen.Requests(a, rulegen.RequestConfig{N: 500, Hit: 0.9, Seed: 1})
	if !reflect.DeepEqual(qa, qb) {
		t.Fatal("same RequestConfig gave different requests")
	}
}

func TestRulesMix(t *testing.T) {
	tests := []struct {
		name string
		mix  rulegen.Mix
		want [3]float64 // exact, prefix, pattern
	}{
		{"default", rulegen.Mix{}, [3]float64{0.8, 0.15, 0.05}},
		{"halves", rulegen.Mix{Exact: 1, Prefix: 1}, [3]float64{0.5, 0.5, 0}},
		{"patterns only", rulegen.Mix{Pattern: 3}, [3]float64{0, 0, 1}},
		{"odd", rulegen.Mix{Exact: 0.6, Prefix: 0.3, Pattern: 0.1}, [3]float64{0.6, 0.3, 0.1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, n := range []int{7, 1000, 9999} {
				rules := rulegen.Rules(rulegen.Config{N: n, Mix: tt.mix, Seed: 7})
				var got [3]int
				for _, r := range rules {
					got[r.Match]++
				}
				for k, f := range tt.want {
					// The generator keeps every kind within one rule of its share.
					if d := math.Abs(float64(got[k]) - f*float64(n)); d > 1 {
						t.Errorf("N=%d: %v rules = %d, want %.1f ± 1", n, decision.MatchKind(k), got[k], f*float64(n))
					}
				}
			}
		})
	}
}

func TestRulesShape(t *testing.T) {
	for _, hosts := range []int{0, 1, 5} {
		rules := rulegen.Rules(rulegen.Config{N: 5000, Hosts: hosts, Seed: 3})
		ids := map[string]bool{}
		keys := map[string]bool{}
		hostSeen := map[string]bool{}
		for _, r := range rules {
			if ids[r.ID] {
				t.Fatalf("hosts=%d: duplicate id %q", hosts, r.ID)
			}
			ids[r.ID] = true
			key := r.Host + " " + r.Path
			if keys[key] {
				t.Fatalf("hosts=%d: duplicate host+path %q", hosts, key)
			}
			keys[key] = true
			hostSeen[r.Host] = true
			if !strings.HasPrefix(r.Path, "/") || r.To == "" {
				t.Fatalf("hosts=%d: rule %s path %q to %q", hosts, r.ID, r.Path, r.To)
			}
			if r.Status != 0 && r.Status != 301 && r.Status != 302 && r.Status != 308 {
				t.Fatalf("rule %s status %d", r.ID, r.Status)
			}
		}
		wantHosts := max(hosts, 1)
		if len(hostSeen) != wantHosts {
			t.Errorf("hosts=%d: rules use %d hosts, want %d", hosts, len(hostSeen), wantHosts)
		}
	}
	// Ids sort in generation order (zero-padded), so paging by id walks
	// the set in order.
	rules := rulegen.Rules(rulegen.Config{N: 1001, Seed: 1})
	if rules[0].ID != "r0000" || rules[1000].ID != "r1000" {
		t.Errorf("ids %q .. %q, want r0000 .. r1000", rules[0].ID, rules[1000].ID)
	}
}

// TestBuildAndHitRatio is the contract with the engine: a generated set
// builds without a single problem, and the configured share of requests
// is redirected.
func TestBuildAndHitRatio(t *testing.T) {
	for _, hosts := range []int{0, 4} {
		rules := rulegen.Rules(rulegen.Config{N: 10000, Hosts: hosts, Seed: 11})
		ix, problems, err := decision.Build(rules, decision.Options{})
		if err != nil {
			t.Fatalf("hosts=%d: Build: %v", hosts, err)
		}
		for i, p := range problems {
			if i == 5 {
				break
			}
			t.Errorf("hosts=%d: Build problem: %s", hosts, p)
		}
		now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
		for _, hit := range []float64{0, 0.5, 0.9, 1} {
			reqs := rulegen.Requests(rules, rulegen.RequestConfig{N: 20000, Hit: hit, Seed: 5})
			redirected := 0
			for i := range reqs {
				d, err := ix.Decide(&reqs[i], now)
				if err != nil {
					t.Fatalf("hosts=%d: Decide(%+v): %v", hosts, reqs[i], err)
				}
				if d.Redirect {
					redirected++
				}
			}
			got := float64(redirected) / float64(len(reqs))
			// Bernoulli draws: 4 standard deviations at N=20000 is < 0.015.
			if math.Abs(got-hit) > 0.015 {
				t.Errorf("hosts=%d hit=%v: %.4f of requests redirected", hosts, hit, got)
			}
		}
	}
}

func TestRequestsShape(t *testing.T) {
	rules := rulegen.Rules(rulegen.Config{N: 1000, Hosts: 2, Seed: 9})
	reqs := rulegen.Requests(rules, rulegen.RequestConfig{N: 10000, Hit: 0.9, Seed: 9})
	methods := map[string]int{}
	for _, q := range reqs {
		methods[q.Method]++
		if !strings.HasPrefix(q.Target, "/") || q.Host == "" || q.Scheme == "" {
			t.Fatalf("request %+v: want path from /, a host and a scheme", q)
		}
		if strings.ContainsAny(q.Target, ":*") {
			t.Fatalf("request %+v: unfilled pattern in the path", q)
		}
	}
	if g := float64(methods["GET"]) / 10000; g < 0.87 || g > 0.93 {
		t.Errorf("GET share %.3f, want 0.9 ± 0.03 (methods %v)", g, methods)
	}
	if methods["HEAD"] == 0 || methods["POST"] == 0 {
		t.Errorf("methods %v: want some HEAD and POST", methods)
	}
	if got := rulegen.Requests(nil, rulegen.RequestConfig{N: 10, Hit: 1}); len(got) != 10 {
		t.Errorf("no rules: %d requests, want 10 misses", len(got))
	}
}

func TestParseMix(t *testing.T) {
	tests := []struct {
		in      string
		want    rulegen.Mix
		wantErr string
	}{
		{in: "exact=0.8,prefix=0.15,pattern=0.05", want: rulegen.Mix{Exact: 0.8, Prefix: 0.15, Pattern: 0.05}},
		{in: " exact=8 , prefix=2 ", want: rulegen.Mix{Exact: 8, Prefix: 2}},
		{in: "pattern=1", want: rulegen.Mix{Pattern: 1}},
		{in: "exact=0.5,regex=0.5", wantErr: `unknown kind "regex"`},
		{in: "exact", wantErr: "is not kind=fraction"},
		{in: "exact=-1,prefix=2", wantErr: "not a non-negative number"},
		{in: "exact=x", wantErr: "not a non-negative number"},
		{in: "exact=0", wantErr: "positive sum"},
		{in: "", wantErr: "positive sum"},
	}
	for _, tt := range tests {
		got, err := rulegen.ParseMix(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseMix(%q) error %v, want one containing %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseMix(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
		if back, err := rulegen.ParseMix(got.String()); err != nil || back != got {
			t.Errorf("ParseMix(%q.String()) = %+v, %v", tt.in, back, err)
		}
	}
}

func TestRequestStreamRoundTrip(t *testing.T) {
	rules := rulegen.Rules(rulegen.Config{N: 200, Hosts: 2, Seed: 1})
	reqs := rulegen.Requests(rules, rulegen.RequestConfig{N: 300, Hit: 0.8, Seed: 2})
	var buf bytes.Buffer
	for i := range reqs {
		buf.Write(rulegen.AppendRequest(nil, &reqs[i]))
	}
	first, _, _ := strings.Cut(buf.String(), "\n")
	if !strings.HasPrefix(first, `{"method":"`) || !strings.Contains(first, `"path":"/`) {
		t.Errorf("first line %s: want DecideRequest JSON names", first)
	}
	got, err := rulegen.ReadRequests("reqs.jsonl", &buf)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, reqs) {
		t.Fatal("requests read back differ from those written")
	}

	// Protocol is carried; unknown fields and blank lines are ignored.
	got, err = rulegen.ReadRequests("notes.jsonl", strings.NewReader("\n"+`{"method":"GET","path":"/a","protocol":"HTTP/1.0","expect_rule":"r01"}`+"\n\n"))
	want := []decision.Request{{Method: "GET", Target: "/a", Protocol: "HTTP/1.0"}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("ReadRequests = %+v, %v; want %+v", got, err, want)
	}
}

func TestReadRequestsErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"{\"method\":\"GET\",\"path\":\"/a\"}\n\nnot json\n", "reqs.jsonl:3:"},
		{"{\"method\":\"GET\",\"path\":\"/a\"}\n[1,2]\n", "reqs.jsonl:2: json: cannot unmarshal array"},
		{"{\"path\":\"/a\"}\n", "reqs.jsonl:1: method and path are required"},
		{"{\"method\":\"GET\"}\n", "reqs.jsonl:1: method and path are required"},
	}
	for _, tt := range tests {
		_, err := rulegen.ReadRequests("reqs.jsonl", strings.NewReader(tt.in))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ReadRequests(%q) error %v, want one containing %q", tt.in, err, tt.want)
		}
	}
}

// BenchmarkRules measures generation speed and the heap a generated rule
// holds (the rule slice and its strings).
func BenchmarkRules(b *testing.B) {
	for _, size := range []struct {
		name string
		n    int
	}{{"100k", 100_000}, {"1M", 1_000_000}} {
		n := size.n
		b.Run(size.name, func(b *testing.B) {
			b.ReportAllocs()
			var before, after runtime.MemStats
			var rules []decision.Rule
			for i := 0; i < b.N; i++ {
				rules = nil
				runtime.GC()
				runtime.ReadMemStats(&before)
				rules = rulegen.Rules(rulegen.Config{N: n, Hosts: 10, Seed: int64(i)})
			}
			runtime.GC()
			runtime.ReadMemStats(&after)
			b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(n), "heapB/rule")
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "rules/s")
			runtime.KeepAlive(rules)
		})
	}
}

func BenchmarkRequests(b *testing.B) {
	rules := rulegen.Rules(rulegen.Config{N: 100_000, Hosts: 10, Seed: 1})
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rulegen.Requests(rules, rulegen.RequestConfig{N: 100_000, Hit: 0.9, Seed: int64(i)})
	}
	b.ReportMetric(100_000*float64(b.N)/b.Elapsed().Seconds(), "requests/s")
}
