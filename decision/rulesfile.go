package decision

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"unicode/utf8"
	"unsafe"

	"gopkg.in/yaml.v3"
)

// Limits on a rules file. 5,000,000 rules is five times the largest hosted
// redirect product's cap; 256 MiB holds that many short rules.
const (
	MaxRulesFileBytes = 256 << 20
	MaxRules          = 5_000_000 // < 1<<24: see table
)

// ruleFieldNames are the rules-file fields in their canonical order
// (DESIGN.md section 4), the order MarshalRules writes them in.
var ruleFieldNames = []string{
	"id", "host", "path", "match", "to", "intent", "status", "methods", "query",
	"query_strip", "case_insensitive", "trailing_slash", "headers", "cache_max_age", "since",
}

var fieldsAccepted = "accepted: " + strings.Join(ruleFieldNames, ", ")

// ParseRules reads a rules file: YAML, or JSON (which YAML reads too, with
// the same line numbers). It is strict: an unknown or repeated field, a
// value of the wrong type or outside its accepted words, and every problem
// checkRule and checkIDs find, reject the whole file with a *RulesError
// listing each problem with file, line and field. Warnings (see checkRule)
// are not reported here; Build reports them.
//
// The top level is a mapping with the one key "rules", a list of rules. An
// empty file, or "rules: []", is an empty rule set. YAML anchors and aliases
// are rejected: they let a small file expand to an enormous one.
//
// Files in the form MarshalRules writes are read by a fast path that does
// not build a YAML node tree; anything else goes through gopkg.in/yaml.v3.
// Both give the same rules for the same text.
func ParseRules(file string, data []byte) ([]Rule, error) {
	rules, _, err := parseRules(file, data, MaxRulesFileBytes, MaxRules)
	return rules, err
}

// parseRules is ParseRules with its limits and the goroutines it may keep
// busy as arguments. It also returns sortIDs(rules), and the warnings
// checkRule found, with their field's line.
func parseRules(file string, data []byte, maxBytes, maxRules int) (rules []Rule, warns []Problem, err error) {
	workers := runtime.GOMAXPROCS(0)
	if len(data) > maxBytes {
		return nil, nil, &RulesError{Problems: []Problem{tooBig(file, int64(len(data)), maxBytes)}}
	}
	rules, lines, ok := parseCanonical(data, workers)
	var problems []Problem
	var decoded []bool // whether rules[i] decoded without problems
	if !ok {
		rules, lines, decoded, problems = parseYAML(data)
	}
	if len(rules) > maxRules {
		return nil, nil, &RulesError{Problems: []Problem{{
			File:    file,
			Message: fmt.Sprintf("the file has %d rules; accepted: at most %d", len(rules), maxRules),
		}}}
	}
	found := newChunkProblems(len(rules))
	inChunks(len(rules), workers, func(_, lo, hi int) {
		for i := lo; i < hi; i++ {
			// A rule whose fields did not decode would only add noise
			// such as "to: missing" after "to: must be a string".
			if decoded != nil && !decoded[i] {
				continue
			}
			for _, p := range checkRule(&rules[i]) {
				p.Line = lines[i].of(rules[i].Line, p.Field)
				found.add(lo, p)
			}
		}
	})
	// Warnings go back with their field lines; errors reject the file.
	for _, p := range found.all() {
		if p.Severity == SeverityWarning {
			warns = append(warns, p)
		} else {
			problems = append(problems, p)
		}
	}
	byID := sortIDs(rules)
	if dups := checkIDs(rules, byID); len(dups) > 0 {
		byLine := make(map[int]int, len(rules))
		for i := range rules {
			byLine[rules[i].Line] = i
		}
		for _, p := range dups {
			p.Line = lines[byLine[p.Line]].of(p.Line, "id")
			problems = append(problems, p)
		}
	}
	if len(problems) == 0 {
		return rules, warns, nil
	}
	sort.SliceStable(problems, func(i, j int) bool { return problems[i].Line < problems[j].Line })
	for i := range problems {
		problems[i].File = file
	}
	return nil, nil, &RulesError{Problems: problems}
}

// fieldLines holds, for one rule, each field's line as an offset from the
// rule's line (0 when the field is absent or too far away), so a problem
// found by checkRule can name the line of the field it is about.
type fieldLines [15]uint16

func (fl *fieldLines) set(field string, ruleLine, line int) {
	if i := fieldIndex([]byte(field)); i >= 0 && line > ruleLine && line-ruleLine <= math.MaxUint16 {
		fl[i] = uint16(line - ruleLine)
	}
}

func (fl *fieldLines) of(ruleLine int, field string) int {
	if i := fieldIndex([]byte(field)); i >= 0 {
		return ruleLine + int(fl[i])
	}
	return ruleLine
}

// yamlLine finds the line in a yaml.v3 syntax error ("yaml: line 3: ...").
var yamlLine = regexp.MustCompile(`^yaml: line (\d+): `)

// parseYAML decodes a rules file through a yaml.v3 node tree, so every
// problem has a line. decoded[i] says rules[i] had no decoding problem.
func parseYAML(data []byte) (rules []Rule, lines []fieldLines, decoded []bool, problems []Problem) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil, nil, nil // empty file, or only comments
		}
		return nil, nil, nil, []Problem{syntaxProblem(err)}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, nil, nil, []Problem{{Line: extra.Line, Message: "a second YAML document (after ---); accepted: one document with rules:"}}
	} else if !errors.Is(err, io.EOF) {
		return nil, nil, nil, []Problem{syntaxProblem(err)}
	}
	d := &nodeDecoder{}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	list := d.rulesList(root)
	if list == nil {
		return nil, nil, nil, d.problems
	}
	rules = make([]Rule, len(list.Content))
	lines = make([]fieldLines, len(list.Content))
	decoded = make([]bool, len(list.Content))
	for i, item := range list.Content {
		before := len(d.problems)
		d.rule(i, item, &rules[i], &lines[i])
		decoded[i] = len(d.problems) == before
		for j := before; j < len(d.problems); j++ {
			d.problems[j].RuleID = rules[i].ID
		}
	}
	return rules, lines, decoded, d.problems
}

func syntaxProblem(err error) Problem {
	msg := err.Error()
	p := Problem{Message: "not valid YAML or JSON: " + strings.TrimPrefix(msg, "yaml: ")}
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		p.Line, _ = strconv.Atoi(m[1])
		p.Message = "not valid YAML or JSON: " + msg[len(m[0]):]
	}
	return p
}

// nodeDecoder turns yaml.v3 nodes into rules, collecting problems.
type nodeDecoder struct {
	problems []Problem
}

func (d *nodeDecoder) errorf(n *yaml.Node, field, format string, args ...any) {
	d.problems = append(d.problems, Problem{Line: n.Line, Field: field, Message: fmt.Sprintf(format, args...)})
}

// usable rejects anchors and aliases, which would let a small file expand
// into billions of nodes (the "billion laughs" attack).
func (d *nodeDecoder) usable(n *yaml.Node, field string) bool {
	if n.Kind == yaml.AliasNode || n.Anchor != "" {
		d.errorf(n, field, "YAML anchors and aliases (&name, *name) are not accepted; write the value out")
		return false
	}
	return true
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "nothing (null)"
		}
		return fmt.Sprintf("%q", n.Value)
	}
	return "an alias"
}

// rulesList checks the top level and returns the rules sequence (nil when
// there is none: an empty set or a problem).
func (d *nodeDecoder) rulesList(root *yaml.Node) *yaml.Node {
	if !d.usable(root, "") {
		return nil
	}
	switch {
	case root.Kind == yaml.ScalarNode && root.Tag == "!!null":
		return nil // only "---"
	case root.Kind == yaml.SequenceNode:
		d.errorf(root, "", "the top level is a list; put the rules under a rules: key (rules:\\n  - id: ...)")
		return nil
	case root.Kind != yaml.MappingNode:
		d.errorf(root, "", "the top level is %s; accepted: a mapping with the one key rules", kindName(root))
		return nil
	}
	var list *yaml.Node
	seen := 0
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if !d.usable(k, "") || !d.usable(v, "rules") {
			continue
		}
		if k.Value != "rules" {
			d.errorf(k, "", "unknown top-level field %q; accepted: rules", k.Value)
			continue
		}
		if seen > 0 {
			d.errorf(k, "rules", "given twice (first at line %d)", seen)
			continue
		}
		seen = k.Line
		switch {
		case v.Kind == yaml.SequenceNode:
			list = v
		case v.Kind == yaml.ScalarNode && v.Tag == "!!null":
		default:
			d.errorf(v, "rules", "must be a list of rules, found %s", kindName(v))
		}
	}
	if seen == 0 && len(d.problems) == 0 {
		d.errorf(root, "", "no rules: key; accepted: a mapping with the one key rules (rules: [] for none)")
	}
	if len(d.problems) > 0 {
		return nil
	}
	return list
}

// rule decodes one list item into r.
func (d *nodeDecoder) rule(i int, n *yaml.Node, r *Rule, lines *fieldLines) {
	r.Line = n.Line
	if !d.usable(n, "") {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(n, "", "rules[%d] is %s; each rule is a mapping of field: value (id, path, to, ...)", i, kindName(n))
		return
	}
	seen := make(map[string]int, len(n.Content)/2)
	for j := 0; j+1 < len(n.Content); j += 2 {
		k, v := n.Content[j], n.Content[j+1]
		if !d.usable(k, "") || !d.usable(v, k.Value) {
			continue
		}
		if k.Kind != yaml.ScalarNode {
			d.errorf(k, "", "a field name is %s; %s", kindName(k), fieldsAccepted)
			continue
		}
		if line, dup := seen[k.Value]; dup {
			d.errorf(k, k.Value, "given twice in one rule (first at line %d)", line)
			continue
		}
		seen[k.Value] = k.Line
		lines.set(k.Value, r.Line, v.Line)
		if fieldIndex([]byte(k.Value)) < 0 {
			msg := fmt.Sprintf("unknown field %q; %s", k.Value, fieldsAccepted)
			if near := nearestField(k.Value); near != "" {
				msg = fmt.Sprintf("unknown field %q (did you mean %s?); %s", k.Value, near, fieldsAccepted)
			}
			d.errorf(k, k.Value, "%s", msg)
			continue
		}
		d.field(k.Value, v, r)
	}
}

func (d *nodeDecoder) field(name string, v *yaml.Node, r *Rule) {
	switch name {
	case "id":
		r.ID, _ = d.str(name, v)
	case "host":
		r.Host, _ = d.str(name, v)
	case "path":
		r.Path, _ = d.str(name, v)
	case "to":
		r.To, _ = d.str(name, v)
	case "match":
		r.Match = decodeWord(d, name, v, ParseMatchKind)
	case "intent":
		r.Intent = decodeWord(d, name, v, ParseIntent)
	case "query":
		r.Query = decodeWord(d, name, v, parseQueryPolicy)
	case "trailing_slash":
		r.TrailingSlash = decodeWord(d, name, v, parseTrailingSlash)
	case "status":
		if n, ok := d.integer(name, v, statusAccepted); ok {
			if n > math.MaxInt32 {
				d.errorf(v, name, "%s is not a redirect status; %s", v.Value, statusAccepted)
			} else {
				r.Status = int(n)
			}
		}
	case "case_insensitive":
		r.CaseInsensitive = d.boolean(name, v)
	case "methods":
		r.Methods = d.strList(name, v)
	case "query_strip":
		r.QueryStrip = d.strList(name, v)
	case "headers":
		r.Headers = d.strMap(name, v)
	case "cache_max_age":
		r.CacheMaxAge = d.maxAge(v)
	case "since":
		if s, ok := d.str(name, v); ok {
			t, err := parseSince(s)
			if err != nil {
				d.errorf(v, name, "%s", err)
			}
			r.Since = t
		}
	}
}

// plainWord is decodeWord for the fast path, which has no problem to
// report: a word it cannot take sends the file to yaml.v3, which reports it.
func plainWord[T any](v []byte, parse func(string) (T, error)) (T, bool) {
	w, err := parse(string(v))
	return w, err == nil
}

// decodeWord reads a field that takes one of a few words (match, intent,
// query, trailing_slash) with that field's parse function, which names
// the accepted words when it refuses one.
func decodeWord[T any](d *nodeDecoder, field string, v *yaml.Node, parse func(string) (T, error)) T {
	var w T
	if s, ok := d.str(field, v); ok {
		var err error
		if w, err = parse(s); err != nil {
			d.errorf(v, field, "%s", err)
		}
	}
	return w
}

// str reads a scalar as written. Numbers and booleans are taken as their
// text (an id may be 404); only null and collections are refused.
func (d *nodeDecoder) str(field string, v *yaml.Node) (string, bool) {
	if v.Kind != yaml.ScalarNode || v.Tag == "!!null" {
		d.errorf(v, field, "must be a text value, found %s", kindName(v))
		return "", false
	}
	return v.Value, true
}

// integer reads a decimal integer; in JSON a quoted "301" is a string, not
// a number, and is refused as such.
func (d *nodeDecoder) integer(field string, v *yaml.Node, accepted string) (int64, bool) {
	if v.Kind != yaml.ScalarNode || v.Tag != "!!int" {
		d.errorf(v, field, "must be a number, found %s; %s", kindName(v), accepted)
		return 0, false
	}
	n, err := strconv.ParseInt(v.Value, 10, 64)
	if err != nil {
		d.errorf(v, field, "%s is not a decimal number; %s", v.Value, accepted)
		return 0, false
	}
	return n, true
}

func (d *nodeDecoder) boolean(field string, v *yaml.Node) bool {
	if v.Kind != yaml.ScalarNode || v.Tag != "!!bool" {
		d.errorf(v, field, "must be true or false, found %s", kindName(v))
		return false
	}
	return strings.ToLower(v.Value) == "true"
}

func (d *nodeDecoder) strList(field string, v *yaml.Node) []string {
	if v.Kind == yaml.ScalarNode && v.Tag == "!!null" {
		return nil
	}
	if v.Kind != yaml.SequenceNode {
		d.errorf(v, field, "must be a list such as [a, b], found %s", kindName(v))
		return nil
	}
	var out []string
	for _, e := range v.Content {
		if !d.usable(e, field) {
			continue
		}
		if s, ok := d.str(field, e); ok {
			out = append(out, s)
		}
	}
	return out
}

func (d *nodeDecoder) strMap(field string, v *yaml.Node) map[string]string {
	if v.Kind == yaml.ScalarNode && v.Tag == "!!null" {
		return nil
	}
	if v.Kind != yaml.MappingNode {
		d.errorf(v, field, "must be a mapping of header name: glob, found %s", kindName(v))
		return nil
	}
	out := make(map[string]string, len(v.Content)/2)
	for j := 0; j+1 < len(v.Content); j += 2 {
		k, e := v.Content[j], v.Content[j+1]
		if !d.usable(k, field) || !d.usable(e, field) {
			continue
		}
		name, ok := d.str(field, k)
		if !ok {
			continue
		}
		if _, dup := out[name]; dup {
			d.errorf(k, field, "%q given twice", name)
			continue
		}
		// A null value ("accept-language:") means the empty glob: header
		// absent or empty.
		if e.Kind == yaml.ScalarNode && e.Tag == "!!null" {
			out[name] = ""
			continue
		}
		if s, ok := d.str(field, e); ok {
			out[name] = s
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

const maxAgeAccepted = "accepted: a number of seconds such as 86400, or a duration such as 24h or 90m"

// maxAge reads cache_max_age: whole seconds as a number, or a Go duration
// string ("24h", "1h30m"); checkRule then wants it >= 0 and whole seconds.
func (d *nodeDecoder) maxAge(v *yaml.Node) time.Duration {
	const field = "cache_max_age"
	if v.Kind == yaml.ScalarNode && v.Tag == "!!str" {
		dur, err := time.ParseDuration(v.Value)
		if err != nil {
			d.errorf(v, field, "%q is not a duration; %s", v.Value, maxAgeAccepted)
		}
		return dur
	}
	n, ok := d.integer(field, v, maxAgeAccepted)
	if !ok {
		return 0
	}
	if n > math.MaxInt64/int64(time.Second) || n < math.MinInt64/int64(time.Second) {
		d.errorf(v, field, "%d seconds is too long; %s", n, maxAgeAccepted)
		return 0
	}
	return time.Duration(n) * time.Second
}

func parseQueryPolicy(s string) (QueryPolicy, error) {
	switch s {
	case "keep":
		return QueryKeep, nil
	case "drop":
		return QueryDrop, nil
	}
	return QueryKeep, fmt.Errorf("unknown query policy %q; accepted: keep, drop", s)
}

func parseTrailingSlash(s string) (TrailingSlash, error) {
	switch s {
	case "ignore":
		return TrailingSlashIgnore, nil
	case "strict":
		return TrailingSlashStrict, nil
	}
	return TrailingSlashIgnore, fmt.Errorf("unknown trailing_slash %q; accepted: ignore, strict", s)
}

func parseSince(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not an RFC 3339 time; accepted: a time such as 2026-11-01T00:00:00Z", s)
	}
	return t, nil
}

// nearestField suggests a field for a misspelt one (edit distance <= 2).
func nearestField(s string) string {
	best, bestDist := "", 3
	for _, f := range ruleFieldNames {
		if dist := editDistance(s, f); dist < bestDist {
			best, bestDist = f, dist
		}
	}
	return best
}

func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 64
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// MarshalRules writes rules as a canonical rules file: fields in the
// order of DESIGN.md section 4, defaults left out, strings quoted only
// where YAML needs it. ParseRules reads it back to the same rules (all but
// Line), through its fast path. It is written by hand rather than through
// yaml.v3's reflection so a million rules take well under a second.
func MarshalRules(rules []Rule) []byte {
	if len(rules) == 0 {
		return []byte("rules: []\n")
	}
	// Size the buffer once: regrowing it copies the whole file so far.
	size := len("rules:\n")
	for i := range rules {
		r := &rules[i]
		size += len(r.ID) + len(r.Host) + len(r.Path) + len(r.To) + 64
	}
	var b bytes.Buffer
	b.Grow(size)
	b.WriteString("rules:\n")
	for i := range rules {
		writeRule(&b, &rules[i])
	}
	return b.Bytes()
}

func writeRule(b *bytes.Buffer, r *Rule) {
	first := true
	key := func(name string) {
		if first {
			b.WriteString("  - ")
			first = false
		} else {
			b.WriteString("    ")
		}
		b.WriteString(name)
		b.WriteString(": ")
	}
	key("id")
	writeScalar(b, r.ID, false)
	b.WriteByte('\n')
	if r.Host != "" {
		key("host")
		writeScalar(b, r.Host, false)
		b.WriteByte('\n')
	}
	key("path")
	writeScalar(b, r.Path, false)
	b.WriteByte('\n')
	if r.Match != MatchExact {
		key("match")
		writeScalar(b, r.Match.String(), false)
		b.WriteByte('\n')
	}
	key("to")
	writeScalar(b, r.To, false)
	b.WriteByte('\n')
	if r.Intent != IntentUnspecified {
		key("intent")
		writeScalar(b, r.Intent.String(), false)
		b.WriteByte('\n')
	}
	if r.Status != 0 {
		key("status")
		b.WriteString(strconv.Itoa(r.Status))
		b.WriteByte('\n')
	}
	if len(r.Methods) > 0 {
		key("methods")
		writeList(b, r.Methods)
	}
	if r.Query == QueryDrop {
		key("query")
		b.WriteString("drop\n")
	}
	if len(r.QueryStrip) > 0 {
		key("query_strip")
		writeList(b, r.QueryStrip)
	}
	if r.CaseInsensitive {
		key("case_insensitive")
		b.WriteString("true\n")
	}
	if r.TrailingSlash == TrailingSlashStrict {
		key("trailing_slash")
		b.WriteString("strict\n")
	}
	if len(r.Headers) > 0 {
		key("headers")
		names := make([]string, 0, len(r.Headers))
		for name := range r.Headers {
			names = append(names, name)
		}
		sort.Strings(names)
		b.WriteByte('{')
		for i, name := range names {
			if i > 0 {
				b.WriteString(", ")
			}
			writeScalar(b, name, true)
			b.WriteString(": ")
			writeScalar(b, r.Headers[name], true)
		}
		b.WriteString("}\n")
	}
	if r.CacheMaxAge != 0 {
		key("cache_max_age")
		b.WriteString(strconv.FormatInt(int64(r.CacheMaxAge/time.Second), 10))
		b.WriteByte('\n')
	}
	if !r.Since.IsZero() {
		key("since")
		b.WriteString(r.Since.Format(time.RFC3339Nano))
		b.WriteByte('\n')
	}
}

func writeList(b *bytes.Buffer, list []string) {
	b.WriteByte('[')
	for i, s := range list {
		if i > 0 {
			b.WriteString(", ")
		}
		writeScalar(b, s, true)
	}
	b.WriteString("]\n")
}

// writeScalar writes s plain when YAML reads it back as the same string,
// else double-quoted.
func writeScalar(b *bytes.Buffer, s string, flow bool) {
	if plainSafe(s, flow) {
		b.WriteString(s)
		return
	}
	writeQuoted(b, s)
}

// plainSafe reports whether s can be written as a plain YAML scalar that
// reads back as the string s. It is deliberately narrow: printable ASCII
// without spaces, starting with a letter, '/' or '_' (so never a number,
// an indicator or a comment), not a word YAML reads as a boolean or null,
// not ending in ':'; in flow context ([a, b], {k: v}) also without
// ",[]{}:#".
func plainSafe(s string, flow bool) bool { return plainScalar(s, flow, false) }

// plainScalar is plainSafe's test; nonASCII also allows bytes above 0x7f,
// as the fast path reads them (canonicalText checked they are printable
// UTF-8), though MarshalRules quotes them.
func plainScalar[T string | []byte](s T, flow, nonASCII bool) bool {
	if len(s) == 0 || !isPlainStart(s[0]) || s[len(s)-1] == ':' || reservedWord(string(s)) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c == 0x7f || c > 0x7f && !nonASCII {
			return false
		}
		if flow && strings.IndexByte(",[]{}:#", c) >= 0 {
			return false
		}
	}
	return true
}

func isPlainStart(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '/' || c == '_'
}

// reservedWord: plain words YAML 1.1 or 1.2 reads as booleans or null.
func reservedWord(s string) bool {
	if len(s) > 5 {
		return false
	}
	switch strings.ToLower(s) {
	case "true", "false", "yes", "no", "on", "off", "y", "n", "null":
		return true
	}
	return false
}

// writeQuoted writes a YAML double-quoted scalar (YAML 1.2 section 7.3.1).
// Characters YAML treats as line breaks or as not printable are escaped.
func writeQuoted(b *bytes.Buffer, s string) {
	b.WriteByte('"')
	for _, c := range s {
		switch {
		case c == '"':
			b.WriteString(`\"`)
		case c == '\\':
			b.WriteString(`\\`)
		case c < 0x20 || c == 0x7f:
			fmt.Fprintf(b, `\x%02X`, c)
		case c >= 0x80 && !yamlPrintable(c):
			fmt.Fprintf(b, `\u%04X`, c)
		default:
			b.WriteRune(c)
		}
	}
	b.WriteByte('"')
}

// yamlPrintable reports whether a non-ASCII rune may appear raw in a YAML
// stream without being read as a line break or rejected: YAML 1.2 c-printable
// minus NEL, the line and paragraph separators (line breaks in YAML 1.1,
// which yaml.v3 follows) and the byte order mark.
func yamlPrintable(c rune) bool {
	switch {
	case c == 0x85, c == 0x2028, c == 0x2029, c == 0xFEFF:
		return false
	case c >= 0xA0 && c <= 0xD7FF, c >= 0xE000 && c <= 0xFFFD, c >= 0x10000 && c <= 0x10FFFF:
		return true
	}
	return false
}

// parseCanonical reads files in the form MarshalRules writes (and
// hand-written files in the same style: block rules, one field per line,
// flow lists, comment lines) without building a yaml.v3 node tree, which
// for a million rules takes many seconds and gigabytes. It gives up
// (ok = false) on anything outside that form, including anything that
// would be a problem, and ParseRules then takes the yaml.v3 path, which
// reports problems with their lines. FuzzParseRules checks that whenever
// this path accepts a file, yaml.v3 reads the same rules from it.
func parseCanonical(data []byte, workers int) (rules []Rule, lines []fieldLines, ok bool) {
	p := canonicalParser{data: data, hosts: make(map[string]string)}
	line, ok := p.nextContent()
	if !ok {
		return nil, nil, false
	}
	switch string(line) {
	case "rules:":
	case "rules: []":
		_, more := p.nextContent()
		return nil, nil, !more && canonicalText(data)
	default:
		return nil, nil, false
	}
	body, bodyLine := data[p.pos:], p.lineNo+1
	if !canonicalText(data[:p.pos]) { // the pieces check the rest
		return nil, nil, false
	}
	// Every rule starts on a line "- " at the indent of the first one
	// (that is what the form allows), so counting those lines sizes the
	// slices once (growing a slice of a million rules copies hundreds of
	// megabytes) and splits the body into pieces that parse on their own.
	first, more := p.nextContent()
	if !more {
		return nil, nil, canonicalText(data) // "rules:" alone is null: no rules
	}
	indent := countSpaces(first)
	if indent > 2 || !bytes.HasPrefix(first[indent:], []byte("- ")) {
		return nil, nil, false
	}
	marker := append(bytes.Repeat([]byte(" "), indent), "- "...)
	pieces := splitRules(body, marker, workers)
	total := 0
	for i := range pieces {
		total += pieces[i].rules
	}
	rules, lines = make([]Rule, total), make([]fieldLines, total)
	at, lineNo := 0, bodyLine
	for i := range pieces {
		pc := &pieces[i]
		pc.firstLine = lineNo
		lineNo += countLines(pc.text)
		pc.into, pc.lines = rules[at:at+pc.rules], lines[at:at+pc.rules]
		at += pc.rules
	}
	var failed atomic.Bool
	var wg sync.WaitGroup
	for i := range pieces {
		wg.Go(func() {
			if !pieces[i].parse(indent) {
				failed.Store(true)
			}
		})
	}
	wg.Wait()
	if failed.Load() {
		return nil, nil, false
	}
	return rules, lines, true
}

// countLines counts the line breaks in b a megabyte at a time: over a
// whole 150 MB file, bytes.Count is one assembly call that cannot be
// preempted for tens of milliseconds, and a GC phase change waiting on
// it stops every goroutine, decisions included, until it ends.
func countLines(b []byte) int {
	n := 0
	for len(b) > 0 {
		piece := b[:min(len(b), 1<<20)]
		n += bytes.Count(piece, []byte("\n"))
		b = b[len(piece):]
	}
	return n
}

// rulesPiece is a run of whole rules of a canonical file: text starts at
// the start of a line (its first content line starts a rule) and ends
// after a line break or at the end of the file.
type rulesPiece struct {
	text      []byte
	rules     int // lines in text that start a rule
	firstLine int // line number of text's first line
	into      []Rule
	lines     []fieldLines
}

// splitRules cuts body into up to n pieces of about equal size at lines
// that start with marker, counting each piece's rule lines. Small bodies
// stay whole: a piece is worth a goroutine from about a megabyte.
func splitRules(body, marker []byte, n int) []rulesPiece {
	const minPiece = 1 << 20
	n = max(min(n, len(body)/minPiece), 1)
	nlMarker := append([]byte("\n"), marker...)
	var pieces []rulesPiece
	for k := 1; k <= n && len(body) > 0; k++ {
		cut := len(body)
		if k < n {
			want := len(body) / (n - k + 1)
			if i := bytes.Index(body[want:], nlMarker); i >= 0 {
				cut = want + i + 1
			}
		}
		text := body[:cut]
		count := bytes.Count(text, nlMarker)
		if bytes.HasPrefix(text, marker) {
			count++
		}
		pieces = append(pieces, rulesPiece{text: text, rules: count})
		body = body[cut:]
	}
	return pieces
}

// parse reads the piece's rules into pc.into and pc.lines, which have
// room for exactly pc.rules rules. indent is the indent of "- ".
func (pc *rulesPiece) parse(indent int) bool {
	if !canonicalText(pc.text) {
		return false
	}
	p := canonicalParser{data: pc.text, lineNo: pc.firstLine - 1, hosts: make(map[string]string)}
	n := -1 // index of the rule being read
	var seen uint32
	for {
		line, more := p.nextContent()
		if !more {
			break
		}
		sp := countSpaces(line)
		switch {
		case sp == indent:
			if !bytes.HasPrefix(line[sp:], []byte("- ")) || n+1 >= len(pc.into) {
				return false
			}
			if n++; n%loadChunk == 0 {
				runtime.Gosched() // see inChunks
			}
			pc.into[n].Line = p.lineNo // the slice is fresh: every other field is already zero
			seen = 0
			line = line[sp+2:]
		case sp == indent+2 && n >= 0:
			line = line[sp:]
		default:
			return false
		}
		key, value, found := bytes.Cut(line, []byte(": "))
		if !found || len(value) == 0 || value[0] == ' ' || value[len(value)-1] == ' ' {
			return false
		}
		field := fieldIndex(key)
		if field < 0 || seen&(1<<field) != 0 {
			return false
		}
		seen |= 1 << field
		r := &pc.into[n]
		if offset := p.lineNo - r.Line; offset <= math.MaxUint16 {
			pc.lines[n][field] = uint16(offset)
		}
		if !p.field(field, value, r) {
			return false
		}
	}
	return n+1 == len(pc.into)
}

// canonicalText reports whether data holds only characters the fast path
// can take as they are: no tabs, CR or other control characters, no byte
// order mark, no characters YAML reads as line breaks, valid UTF-8.
func canonicalText(data []byte) bool {
	for i := 0; i < len(data); {
		c := data[i]
		if c < 0x80 {
			if c < 0x20 && c != '\n' || c == 0x7f {
				return false
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && size == 1 || !yamlPrintable(r) { // invalid UTF-8, or not printable
			return false
		}
		i += size
	}
	return true
}

func fieldIndex(key []byte) int {
	for i, name := range ruleFieldNames {
		if string(key) == name {
			return i
		}
	}
	return -1
}

func countSpaces(b []byte) int {
	n := 0
	for n < len(b) && b[n] == ' ' {
		n++
	}
	return n
}

type canonicalParser struct {
	data   []byte
	pos    int
	lineNo int
	hosts  map[string]string // interned: few hosts, many rules
	// text holds the bytes of the ids, paths and targets read so far, so
	// a million rules are a few dozen allocations for the GC to track,
	// not three million; it is only ever appended to.
	text []byte
}

// textBlock is the size of p.text's blocks (smaller for a smaller file):
// whole huge pages.
const textBlock = 4 << 20

// scalar reads a field's whole value as a string kept in p.text.
func (p *canonicalParser) scalar(v []byte) (string, bool) {
	b, rest, ok := scalarBytes(v, false)
	if !ok || len(rest) > 0 {
		return "", false
	}
	if len(b) == 0 {
		return "", true
	}
	if cap(p.text)-len(p.text) < len(b) {
		// A block never needs to be bigger than the text it is read from.
		p.text = make([]byte, 0, max(len(b), min(textBlock, len(p.data))))
	}
	start := len(p.text)
	p.text = append(p.text, b...)
	return unsafe.String(&p.text[start], len(b)), true
}

// nextContent returns the next line that is neither blank nor a comment.
func (p *canonicalParser) nextContent() ([]byte, bool) {
	for p.pos < len(p.data) {
		rest := p.data[p.pos:]
		end := bytes.IndexByte(rest, '\n')
		if end < 0 {
			end = len(rest)
			p.pos = len(p.data)
		} else {
			p.pos += end + 1
		}
		p.lineNo++
		line := rest[:end]
		n := countSpaces(line)
		if n == len(line) || line[n] == '#' {
			continue
		}
		return line, true
	}
	return nil, false
}

// field decodes one "key: value" into r; false means "not canonical".
func (p *canonicalParser) field(field int, v []byte, r *Rule) bool {
	var ok bool
	switch ruleFieldNames[field] {
	case "id":
		r.ID, ok = p.scalar(v)
	case "host":
		if h, seen := p.hosts[string(v)]; seen { // no allocation
			r.Host, ok = h, true
		} else if r.Host, ok = scalar(v, false); ok {
			p.hosts[string(v)] = r.Host
		}
	case "path":
		r.Path, ok = p.scalar(v)
	case "to":
		r.To, ok = p.scalar(v)
	case "match":
		r.Match, ok = plainWord(v, ParseMatchKind)
	case "intent":
		r.Intent, ok = plainWord(v, ParseIntent)
	case "query":
		r.Query, ok = plainWord(v, parseQueryPolicy)
	case "trailing_slash":
		r.TrailingSlash, ok = plainWord(v, parseTrailingSlash)
	case "status":
		var n int64
		n, ok = decimal(v)
		r.Status = int(n)
	case "cache_max_age":
		var n int64
		n, ok = decimal(v)
		r.CacheMaxAge = time.Duration(n) * time.Second
	case "case_insensitive":
		switch string(v) {
		case "true":
			r.CaseInsensitive, ok = true, true
		case "false":
			ok = true
		}
	case "since":
		if plainSafeSince(v) {
			var err error
			r.Since, err = parseSince(string(v))
			ok = err == nil
		}
	case "methods":
		r.Methods, ok = flowList(v)
	case "query_strip":
		r.QueryStrip, ok = flowList(v)
	case "headers":
		r.Headers, ok = flowMap(v)
	}
	return ok
}

// decimal reads a plain decimal integer of at most 9 digits, which YAML
// reads as the same int.
func decimal(v []byte) (int64, bool) {
	if len(v) == 0 || len(v) > 9 || (v[0] == '0' && len(v) > 1) {
		return 0, false
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// plainSafeSince: an RFC 3339 time written plain, as MarshalRules does.
func plainSafeSince(v []byte) bool {
	for _, c := range v {
		if !(c >= '0' && c <= '9' || c == '-' || c == ':' || c == '.' || c == '+' || c == 'T' || c == 'Z') {
			return false
		}
	}
	return len(v) > 0 && v[0] >= '0' && v[0] <= '9'
}

// scalar reads a whole value: plain if plainSafe (non-ASCII allowed,
// it was checked printable), or double-quoted with the escapes
// writeQuoted writes.
func scalar(v []byte, flow bool) (string, bool) {
	s, rest, ok := scalarPrefix(v, flow)
	return s, ok && len(rest) == 0
}

// scalarPrefix reads one scalar from the start of v and returns the rest.
// A plain scalar ends at the end of v, or in flow context at ',', ']',
// '}' or ':'.
func scalarPrefix(v []byte, flow bool) (s string, rest []byte, ok bool) {
	b, rest, ok := scalarBytes(v, flow)
	return string(b), rest, ok
}

// scalarBytes is scalarPrefix with the scalar's bytes, which may be part
// of v.
func scalarBytes(v []byte, flow bool) (s, rest []byte, ok bool) {
	if len(v) == 0 {
		return nil, nil, false
	}
	if v[0] == '"' {
		var b []byte
		for i := 1; i < len(v); i++ {
			switch c := v[i]; c {
			case '"':
				if b == nil {
					return v[1:i], v[i+1:], true
				}
				return b, v[i+1:], true
			case '\\':
				if b == nil {
					b = append(make([]byte, 0, len(v)), v[1:i]...)
				}
				var n int
				if b, n = unescape(b, v[i+1:]); n == 0 {
					return nil, nil, false
				}
				i += n
			default:
				if b != nil {
					b = append(b, c)
				}
			}
		}
		return nil, nil, false
	}
	end := len(v)
	if flow {
		end = bytes.IndexAny(v, ",]}:")
		if end < 0 {
			end = len(v)
		}
	}
	tok := v[:end]
	if !plainScalar(tok, flow, true) {
		return nil, nil, false
	}
	return tok, v[end:], true
}

// unescape appends the character of the escape at the start of v (after
// the backslash) and returns how many bytes it took, 0 for one the fast
// path leaves to yaml.v3. It takes the escapes writeQuoted writes.
func unescape(b, v []byte) ([]byte, int) {
	if len(v) == 0 {
		return b, 0
	}
	digits := 0
	switch v[0] {
	case '"', '\\':
		return append(b, v[0]), 1
	case 'x':
		digits = 2
	case 'u':
		digits = 4
	default:
		return b, 0
	}
	if len(v) < 1+digits {
		return b, 0
	}
	n, err := strconv.ParseUint(string(v[1:1+digits]), 16, 32)
	if err != nil || n >= 0xD800 && n <= 0xDFFF {
		return b, 0
	}
	return utf8.AppendRune(b, rune(n)), 1 + digits
}

// flowList reads "[a, b]" as MarshalRules writes it.
func flowList(v []byte) ([]string, bool) {
	if len(v) < 2 || v[0] != '[' || v[len(v)-1] != ']' {
		return nil, false
	}
	body := v[1 : len(v)-1]
	if len(body) == 0 {
		return nil, true
	}
	var out []string
	for {
		s, rest, ok := scalarPrefix(body, true)
		if !ok {
			return nil, false
		}
		out = append(out, s)
		if len(rest) == 0 {
			return out, true
		}
		if !bytes.HasPrefix(rest, []byte(", ")) {
			return nil, false
		}
		body = rest[2:]
	}
}

// flowMap reads "{k: v, k2: v2}" as MarshalRules writes it.
func flowMap(v []byte) (map[string]string, bool) {
	if len(v) < 2 || v[0] != '{' || v[len(v)-1] != '}' {
		return nil, false
	}
	body := v[1 : len(v)-1]
	if len(body) == 0 {
		return nil, true
	}
	out := make(map[string]string)
	for {
		k, rest, ok := scalarPrefix(body, true)
		if !ok || !bytes.HasPrefix(rest, []byte(": ")) {
			return nil, false
		}
		if _, dup := out[k]; dup {
			return nil, false
		}
		val, rest, ok := scalarPrefix(rest[2:], true)
		if !ok {
			return nil, false
		}
		out[k] = val
		if len(rest) == 0 {
			return out, true
		}
		if !bytes.HasPrefix(rest, []byte(", ")) {
			return nil, false
		}
		body = rest[2:]
	}
}
