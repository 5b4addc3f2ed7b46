package decision

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestNegotiateREADME decides every row of README's Language negotiation
// table, so the table is what negotiate does.
func TestNegotiateREADME(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(data), "### Language negotiation")
	if !ok {
		t.Fatal("README has no Language negotiation section")
	}
	_, table, ok := strings.Cut(section, "With `languages: [en, de, fr-CH]`:")
	if !ok {
		t.Fatal("README's Language negotiation section has no table for [en, de, fr-CH]")
	}
	available := []string{"en", "de", "fr-CH"}
	code := regexp.MustCompile("`([^`]*)`")
	rows := 0
	for line := range strings.SplitSeq(table, "\n") {
		cells := strings.Split(line, "|")
		if !strings.HasPrefix(line, "| `") || len(cells) < 4 {
			if rows > 0 && !strings.HasPrefix(line, "|") {
				break
			}
			continue
		}
		want := ""
		if m := code.FindStringSubmatch(cells[2]); m != nil {
			want = m[1]
		}
		var headers []string
		for _, m := range code.FindAllStringSubmatch(cells[1], -1) {
			headers = append(headers, m[1])
		}
		if strings.Contains(cells[1], "no header") {
			headers = append(headers, "")
		}
		for _, h := range headers {
			rows++
			got, _ := negotiate(h, available)
			if got != want {
				t.Errorf("README: Accept-Language %q selects %q; negotiate selects %q", h, want, got)
			}
		}
	}
	if rows < 8 {
		t.Errorf("read %d rows of README's table; want every row", rows)
	}
}

func TestParseWeight(t *testing.T) {
	for in, want := range map[string]int{"q=1": 1000, "Q=0.5": 500, "q=0.001": 1, "q=0": 0, "q=0.": 0, "q=1.000": 1000} {
		if got, ok := parseWeight(in); !ok || got != want {
			t.Errorf("parseWeight(%q) = %d, %v; want %d", in, got, ok, want)
		}
	}
	for _, in := range []string{"q=1.001", "q=2", "q=0.0001", "q=.5", "q= 0.5", "x=1", "q=-0", "q=0.5a"} {
		if got, ok := parseWeight(in); ok {
			t.Errorf("parseWeight(%q) = %d, accepted; want refused", in, got)
		}
	}
}
