package decision

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/goccy/go-json/jsontext"
	"gopkg.in/yaml.v3"
)

// Limits on a rules file. 5,000,000 rules is five times the largest hosted
// redirect product's cap; 256 MiB holds that many short rules.
const (
	MaxRulesFileBytes = 256 << 20
	MaxRules          = 5_000_000
)

// ParseRules reads a rules file in the format its name says (FormatOf):
// JSON Lines (.jsonl), JSON (.json) or YAML (anything else). It is strict:
// an unknown or repeated field, a value of the wrong type or outside its
// accepted words, and every problem checkRule and checkIDs find, reject the
// whole file with a *RulesError listing each problem with file, line and
// field. Warnings (see checkRule) are not reported here; LoadRules and
// Build report them.
//
// In YAML and JSON the top level is a mapping with the one key "rules", a
// list of rules; in JSON Lines each line is one rule. An empty file, or an
// empty list, is an empty rule set. YAML anchors and aliases are rejected:
// they let a small file expand to an enormous one.
func ParseRules(file string, data []byte) ([]Rule, error) {
	rules, _, err := parseRules(file, data, MaxRulesFileBytes, MaxRules)
	return rules, err
}

// parseRules is ParseRules with its limits as arguments. The rules come
// back in file order, each checked by checkRule and for a duplicate id,
// with Line set; warnings come back with the line of their field and File
// set; errors as a *RulesError with File set.
func parseRules(file string, data []byte, maxBytes, maxRules int) (rules []Rule, warns []Problem, err error) {
	if len(data) > maxBytes {
		return nil, nil, &RulesError{Problems: []Problem{tooBig(file, int64(len(data)), maxBytes)}}
	}
	var p parsed
	switch FormatOf(file) {
	case FormatJSONL:
		p = parseJSONL(data)
	case FormatJSON:
		p = parseJSON(data)
	default:
		p = parseYAML(data)
	}
	if len(p.rules) > maxRules {
		return nil, nil, &RulesError{Problems: []Problem{{
			File:    file,
			Message: fmt.Sprintf("the file has %d rules; accepted: at most %d", len(p.rules), maxRules),
		}}}
	}
	var problems []Problem
	for _, pr := range p.problems {
		pr.File = file
		if pr.Severity == SeverityWarning {
			warns = append(warns, pr)
		} else {
			problems = append(problems, pr)
		}
	}
	for at, first := range duplicateIDs(p.rules) {
		pr := duplicateID(p.rules, at, first)
		pr.File, pr.Line = file, p.idLine(at)
		problems = append(problems, pr)
	}
	if len(problems) > 0 {
		slices.SortStableFunc(problems, func(a, b Problem) int { return a.Line - b.Line })
		return nil, nil, &RulesError{Problems: problems, Warnings: warns}
	}
	return p.rules, warns, nil
}

// parsed is what a reader found in a file: rules in file order, and their
// problems and warnings, each with the line of its field.
type parsed struct {
	rules    []Rule
	problems []Problem
	// idLine is the line of rule i's id field, for duplicate ids.
	idLine func(i int) int
}

// inPieces calls f(0) … f(n-1), each on its own goroutine, and returns
// when all have returned. Callers pass at most runtime.GOMAXPROCS(0)
// pieces: more would only take turns.
func inPieces(n int, f func(k int)) {
	if n <= 1 {
		f(0)
		return
	}
	var wg sync.WaitGroup
	for k := range n {
		wg.Go(func() { f(k) })
	}
	wg.Wait()
}

// yamlLine finds the line in a yaml.v3 syntax error ("yaml: line 3: ...").
var yamlLine = regexp.MustCompile(`^yaml: line (\d+): `)

// parseYAML decodes a rules file through a yaml.v3 node tree, so every
// problem has the line of its field.
func parseYAML(data []byte) parsed {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return parsed{} // empty file, or only comments
		}
		return parsed{problems: []Problem{syntaxProblem(err)}}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return parsed{problems: []Problem{{Line: extra.Line, Message: "a second YAML document (after ---); accepted: one document with rules:"}}}
	} else if !errors.Is(err, io.EOF) {
		return parsed{problems: []Problem{syntaxProblem(err)}}
	}
	d := &nodeDecoder{}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	list := d.rulesList(root)
	if list == nil {
		return parsed{problems: d.problems}
	}
	rules := make([]Rule, len(list.Content))
	lines := make([]fieldLines, len(list.Content))
	decoded := make([]bool, len(list.Content))
	for i, item := range list.Content {
		before := len(d.problems)
		var f ruleFields
		d.rule(i, item, &f, &lines[i])
		line := item.Line
		for _, p := range f.toRule(&rules[i]) {
			p.Line = lines[i].of(line, p.Field)
			d.problems = append(d.problems, p)
		}
		rules[i].Line = line
		decoded[i] = len(d.problems) == before
		for j := before; j < len(d.problems); j++ {
			d.problems[j].RuleID = rules[i].ID
		}
	}
	// checkRule is the costly part: in pieces at once when there are many.
	n := min(runtime.GOMAXPROCS(0), len(rules)/1024+1)
	found := make([][]Problem, n)
	inPieces(n, func(k int) {
		for i := k * len(rules) / n; i < (k+1)*len(rules)/n; i++ {
			// A rule whose fields did not decode would only add noise
			// such as "to: missing" after "to: must be a text value".
			if !decoded[i] {
				continue
			}
			for _, p := range checkRule(&rules[i]) {
				p.Line = lines[i].of(rules[i].Line, p.Field)
				found[k] = append(found[k], p)
			}
		}
	})
	return parsed{
		rules:    rules,
		problems: slices.Concat(append([][]Problem{d.problems}, found...)...),
		idLine:   func(i int) int { return lines[i].of(rules[i].Line, "id") },
	}
}

func syntaxProblem(err error) Problem {
	msg := err.Error()
	p := Problem{Message: "not valid YAML: " + strings.TrimPrefix(msg, "yaml: ")}
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		p.Line, _ = strconv.Atoi(m[1])
		p.Message = "not valid YAML: " + msg[len(m[0]):]
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

// rule decodes one list item into f, and the lines of its fields.
func (d *nodeDecoder) rule(i int, n *yaml.Node, f *ruleFields, lines *fieldLines) {
	if !d.usable(n, "") {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(n, "", "rules[%d] is %s; each rule is a mapping of field: value (id, path, to, ...)", i, kindName(n))
		return
	}
	fields := reflect.ValueOf(f).Elem()
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
		lines.set(k.Value, n.Line, v.Line)
		fi := fieldIndex(k.Value)
		if fi < 0 {
			d.errorf(k, k.Value, "%s", unknownField(k.Value))
			continue
		}
		d.field(k.Value, v, fields.Field(fi))
	}
}

// field decodes v into a field of ruleFields by the field's type.
func (d *nodeDecoder) field(name string, v *yaml.Node, field reflect.Value) {
	switch field.Addr().Interface().(type) {
	case *string:
		s, _ := d.str(name, v)
		field.SetString(s)
	case *int:
		accepted := "accepted: a whole number"
		if name == "status" {
			accepted = statusAccepted
		}
		if n, ok := d.integer(name, v, accepted); ok {
			if n > math.MaxInt32 || n < math.MinInt32 {
				d.errorf(v, name, "%s is out of range; %s", v.Value, accepted)
			} else {
				field.SetInt(n)
			}
		}
	case *bool:
		field.SetBool(d.boolean(name, v))
	case *[]string:
		field.Set(reflect.ValueOf(d.strList(name, v)))
	case *map[string]string:
		field.Set(reflect.ValueOf(d.strMap(name, v)))
	case *[]Condition:
		field.Set(reflect.ValueOf(d.conditions(name, v)))
	case *jsontext.Value:
		field.Set(reflect.ValueOf(d.number(name, v)))
	default:
		panic("decision: ruleFields has a field of a type the YAML reader does not know: " + name)
	}
}

// number reads a field that takes a number or a text (cache_max_age) as
// the JSON value it would be in a JSON file, so one function reads it
// whatever the format: a plain YAML number as the number, anything else
// that is text as a JSON string.
func (d *nodeDecoder) number(field string, v *yaml.Node) jsontext.Value {
	switch {
	case v.Kind == yaml.ScalarNode && (v.Tag == "!!int" || v.Tag == "!!float"):
		return jsontext.Value(v.Value)
	case v.Kind == yaml.ScalarNode && v.Tag != "!!null":
		q, _ := jsontext.AppendQuote(nil, v.Value)
		return q
	}
	d.errorf(v, field, "must be a number or a duration, found %s; %s", kindName(v), maxAgeAccepted)
	return nil
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

// conditions reads a has or missing list (README "Conditions"): mappings
// of type, key and an optional value. A null value is no value, as in
// JSON; other scalars are taken as their text (value: 1 is "1").
func (d *nodeDecoder) conditions(field string, v *yaml.Node) []Condition {
	if v.Kind == yaml.ScalarNode && v.Tag == "!!null" {
		return nil
	}
	if v.Kind != yaml.SequenceNode {
		d.errorf(v, field, "must be a list, found %s; %s", kindName(v), conditionAccepted)
		return nil
	}
	var out []Condition
	for _, e := range v.Content {
		if !d.usable(e, field) {
			continue
		}
		if e.Kind != yaml.MappingNode {
			d.errorf(e, field, "an entry is %s; %s", kindName(e), conditionAccepted)
			continue
		}
		var c Condition
		seen := map[string]bool{}
		for j := 0; j+1 < len(e.Content); j += 2 {
			k, val := e.Content[j], e.Content[j+1]
			if !d.usable(k, field) || !d.usable(val, field) {
				continue
			}
			if seen[k.Value] {
				d.errorf(k, field, "%q given twice in one condition", k.Value)
				continue
			}
			seen[k.Value] = true
			switch k.Value {
			case "type":
				c.Type, _ = d.str(field, val)
			case "key":
				c.Key, _ = d.str(field, val)
			case "value":
				if val.Kind == yaml.ScalarNode && val.Tag == "!!null" {
					continue
				}
				if s, ok := d.str(field, val); ok {
					c.Value = &s
				}
			default:
				d.errorf(k, field, "unknown condition field %q; accepted: type, key, value", k.Value)
			}
		}
		out = append(out, c)
	}
	return out
}
