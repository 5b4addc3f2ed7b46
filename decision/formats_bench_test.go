package decision_test

import (
	"bytes"
	"fmt"
	"io"
	"testing"

	"github.com/redirectd/redirectd/decision"
	"github.com/redirectd/redirectd/decision/rulegen"
)

// The rules-file readers and writers at a million rules (README "Rules
// files"); run one at a time:
//
//	go test -run '^$' -bench 'ParseRules|WriteRules' -benchtime 3x ./decision/

// exactLines is the JSON Lines file of issue 11's comparison with OPA:
// n exact rules /old/i -> /new/i.
func exactLines(n int) []byte {
	var b bytes.Buffer
	for i := range n {
		fmt.Fprintf(&b, `{"id":"old-%d","path":"/old/%d","to":"/new/%d","intent":"permanent","cache_max_age":3600}`+"\n", i, i, i)
	}
	return b.Bytes()
}

// genFile is the default rulegen mix (redirectctl gen --rules n --hosts
// 100) written in format f.
func genFile(b *testing.B, n int, f decision.Format) []byte {
	var buf bytes.Buffer
	rules := rulegen.Rules(rulegen.Config{N: n, Mix: rulegen.DefaultMix, Hosts: 100, Seed: 1})
	if err := decision.WriteRules(&buf, f, decision.RuleSeq(rules)); err != nil {
		b.Fatal(err)
	}
	return buf.Bytes()
}

func BenchmarkParseRules(b *testing.B) {
	const n = 1_000_000
	files := []struct {
		name string
		data func() []byte
	}{
		{"jsonl/exact", func() []byte { return exactLines(n) }},
		{"jsonl/gen", func() []byte { return genFile(b, n, decision.FormatJSONL) }},
		{"json/gen", func() []byte { return genFile(b, n, decision.FormatJSON) }},
		{"yaml/gen", func() []byte { return genFile(b, n, decision.FormatYAML) }},
	}
	for _, file := range files {
		b.Run(fmt.Sprintf("%s/rules=%d", file.name, n), func(b *testing.B) {
			data := file.data()
			name := "bench." + file.name[:bytes.IndexByte([]byte(file.name), '/')]
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				rules, err := decision.ParseRules(name, data)
				if err != nil || len(rules) != n {
					b.Fatalf("%d rules, %v", len(rules), err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/rule")
			b.ReportMetric(float64(len(data))/n, "bytes/rule")
		})
	}
}

func BenchmarkWriteRules(b *testing.B) {
	const n = 1_000_000
	rules := rulegen.Rules(rulegen.Config{N: n, Mix: rulegen.DefaultMix, Hosts: 100, Seed: 1})
	for _, f := range []decision.Format{decision.FormatJSONL, decision.FormatJSON, decision.FormatYAML} {
		b.Run(fmt.Sprintf("%v/rules=%d", f, n), func(b *testing.B) {
			b.ReportAllocs()
			var w countingWriter
			for b.Loop() {
				w = 0
				if err := decision.WriteRules(&w, f, decision.RuleSeq(rules)); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/rule")
			b.ReportMetric(float64(w)/n, "bytes/rule")
		})
	}
}

// countingWriter counts what is written to it and keeps none of it.
type countingWriter int64

func (w *countingWriter) Write(p []byte) (int, error) {
	*w += countingWriter(len(p))
	return len(p), nil
}

var _ io.Writer = (*countingWriter)(nil)
