package decision

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestREADMERuleExamples loads every YAML rules example in README (a
// fenced yaml block holding rules, or list items of rules written without
// the rules: key): each must be a valid rule set, so the documentation
// never shows a rule the daemon would refuse.
func TestREADMERuleExamples(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	block := regexp.MustCompile("(?s)```yaml\n(.*?)```")
	n := 0
	for _, m := range block.FindAllStringSubmatchIndex(string(data), -1) {
		text := string(data[m[2]:m[3]])
		line := strings.Count(string(data[:m[2]]), "\n") + 1
		switch {
		case strings.HasPrefix(text, "rules:"):
		case strings.HasPrefix(strings.TrimLeft(text, " "), "- {id:") || strings.HasPrefix(strings.TrimLeft(text, " "), "- id:"):
			text = "rules:\n" + text
		default:
			continue // not a rules file: a manifest, a config
		}
		n++
		if _, err := ParseRules("README.md", []byte(text)); err != nil {
			t.Errorf("README.md:%d: the example does not load: %v\n%s", line, err, text)
			continue
		}
		if _, _, err := Build(mustParse(t, text), Options{}); err != nil {
			t.Errorf("README.md:%d: the example's rules are refused: %v\n%s", line, err, text)
		}
	}
	if n < 7 {
		t.Errorf("found %d rules examples in README; the test no longer finds them", n)
	}
}

func mustParse(t *testing.T, text string) []Rule {
	t.Helper()
	rules, err := ParseRules("README.md", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return rules
}
