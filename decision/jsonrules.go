package decision

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"iter"
	"maps"
	"reflect"
	"runtime"
	"slices"

	"github.com/goccy/go-json/jsontext"
	json "github.com/goccy/go-json/v2"
)

// The JSON and JSON Lines readers (README "Rules files"). Each rule object
// is decoded by github.com/goccy/go-json's v2 Unmarshal, which is strict as
// RFC 7493 asks (a repeated name is an error) and, with
// RejectUnknownMembers, refuses a field ruleFields does not have. That call
// stops at a rule's first problem; only a rule that has one is read again
// member by member (explainJSON) to list every problem with its line.

// strictJSON are the options every rule object is decoded with.
var strictJSON = json.RejectUnknownMembers(true)

// splitBytes is the size from which a JSON Lines file is decoded in
// runtime.GOMAXPROCS(0) pieces at once; below it one goroutine is as fast.
const splitBytes = 4 << 20

// decodeRule decodes and checks one rule object that starts on line
// line into r. Its problems and warnings carry the lines of their fields.
// f is scratch space, reused from rule to rule: one that escapes to the
// heap per rule would be a quarter of a gigabyte of garbage at a million.
func decodeRule(raw []byte, line int, r *Rule, f *ruleFields) []Problem {
	*f = ruleFields{}
	var problems []Problem // located already
	err := json.Unmarshal(raw, f, strictJSON)
	if err != nil {
		*f, problems, _ = explainJSON(raw, line)
		if len(problems) == 0 { // a backstop: explainJSON finds what Unmarshal refused
			problems = []Problem{{Line: line, Message: "not a valid rule: " + err.Error()}}
		}
	}
	unplaced := f.toRule(r)
	r.Line = line
	if len(problems) == 0 && len(unplaced) == 0 {
		unplaced = checkRule(r)
	}
	if len(unplaced) > 0 {
		// Rare (a problem, or a warning): read the object again for the
		// lines of its fields.
		_, _, lines := explainJSON(raw, line)
		for _, p := range unplaced {
			p.Line = lines.of(line, p.Field)
			problems = append(problems, p)
		}
	}
	for i := range problems {
		problems[i].RuleID = r.ID
	}
	return problems
}

// explainJSON reads one rule object member by member through goccy's
// jsontext decoder and returns what decoded, every problem (each with the
// line of its field), and the line of each field. line is the line the
// object starts on.
func explainJSON(raw []byte, line int) (f ruleFields, problems []Problem, lines fieldLines) {
	dec := jsontext.NewDecoder(bytes.NewReader(raw), jsontext.AllowDuplicateNames(true))
	lineAt := func(off int64) int { return line + bytes.Count(raw[:min(int(off), len(raw))], []byte{'\n'}) }
	problem := func(at int, field, format string, args ...any) {
		problems = append(problems, Problem{Line: at, RuleID: f.ID, Field: field, Message: fmt.Sprintf(format, args...)})
	}
	syntax := func(err error) {
		problems = append(problems, syntaxProblemJSON(err, lineAt))
	}
	if k := dec.PeekKind(); k != '{' {
		if v, err := dec.ReadValue(); err != nil {
			syntax(err)
		} else {
			problem(line, "", "a rule is %s; each rule is an object such as {\"id\": \"a\", \"path\": \"/a\", \"to\": \"/b\"}", describeJSON(v))
		}
		return f, problems, lines
	}
	dec.ReadToken()
	fields := reflect.ValueOf(&f).Elem()
	seen := map[string]int{}
	for dec.PeekKind() != '}' {
		name, err := dec.ReadToken()
		if err != nil {
			syntax(err)
			return f, problems, lines
		}
		key := name.String() // before the next call voids name
		nameLine := lineAt(dec.InputOffset())
		v, err := dec.ReadValue()
		if err != nil {
			syntax(err)
			return f, problems, lines
		}
		valueLine := lineAt(dec.InputOffset() - int64(len(v)))
		if first, dup := seen[key]; dup && first == nameLine {
			problem(nameLine, key, "given twice in one rule")
			continue
		} else if dup {
			problem(nameLine, key, "given twice in one rule (first at line %d)", first)
			continue
		}
		seen[key] = nameLine
		i := fieldIndex(key)
		if i < 0 {
			problem(nameLine, key, "%s", unknownField(key))
			continue
		}
		lines.set(key, line, valueLine)
		field := fields.Field(i)
		if err := json.Unmarshal(v, field.Addr().Interface(), strictJSON); err != nil {
			field.SetZero()
			problem(valueLine, key, "%s", wrongType(key, field.Type(), v, err))
		}
	}
	dec.ReadToken()
	if _, err := dec.ReadValue(); !errors.Is(err, io.EOF) {
		problem(lineAt(dec.InputOffset()), "", "text after the rule object; accepted: one rule object per line")
	}
	return f, problems, lines
}

// wrongType says what a field of type t accepts, and what v, which
// json.Unmarshal refused with err, has instead.
func wrongType(field string, t reflect.Type, v jsontext.Value, err error) string {
	var se *jsontext.SyntacticError
	if errors.As(err, &se) && errors.Is(err, jsontext.ErrDuplicateName) {
		return fmt.Sprintf("%q given twice", se.JSONPointer.LastToken())
	}
	found := describeJSON(v)
	var want string
	switch t.Kind() {
	case reflect.String:
		want = "must be a text value in quotes"
	case reflect.Int:
		want = "must be a whole number"
	case reflect.Bool:
		want = "must be true or false"
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Struct {
			return conditionsWrongType(v)
		}
		want = `must be a list of texts such as ["GET", "HEAD"]`
		var list []jsontext.Value
		if json.Unmarshal(v, &list) == nil {
			for _, e := range list {
				if e.Kind() != '"' {
					found = describeJSON(e) + " in the list"
					break
				}
			}
		}
	case reflect.Map:
		want = `must be an object of header name: glob such as {"accept-language": "de*"}`
		var m map[string]jsontext.Value
		if json.Unmarshal(v, &m) == nil {
			for _, name := range slices.Sorted(maps.Keys(m)) {
				if e := m[name]; e.Kind() != '"' {
					found = fmt.Sprintf("%s for %q", describeJSON(e), name)
					break
				}
			}
		}
	}
	msg := fmt.Sprintf("%s, found %s", want, found)
	if field == "status" {
		msg += "; " + statusAccepted
	}
	return msg
}

// conditionsWrongType says what is wrong with a has or missing list that
// did not decode: the first entry or member that is not what a Condition
// takes.
func conditionsWrongType(v jsontext.Value) string {
	const accepted = `accepted: a list such as [{"type": "cookie", "key": "beta", "value": "1"}] (type, key, optional value)`
	var list []jsontext.Value
	if json.Unmarshal(v, &list) != nil {
		return fmt.Sprintf("must be a list, found %s; %s", describeJSON(v), accepted)
	}
	for i, e := range list {
		var members map[string]jsontext.Value
		if json.Unmarshal(e, &members) != nil {
			return fmt.Sprintf("[%d] is %s; %s", i, describeJSON(e), accepted)
		}
		for _, name := range slices.Sorted(maps.Keys(members)) {
			m := members[name]
			switch {
			case name != "type" && name != "key" && name != "value":
				return fmt.Sprintf("[%d]: unknown condition field %q; accepted: type, key, value", i, name)
			case m.Kind() != '"' && !(name == "value" && m.Kind() == 'n'):
				return fmt.Sprintf("[%d]: %s must be a text value in quotes, found %s", i, name, describeJSON(m))
			}
		}
	}
	return fmt.Sprintf("must be a list of conditions; %s", accepted)
}

// syntaxProblemJSON is a Problem for an error of the JSON grammar, at the
// line of its offset.
func syntaxProblemJSON(err error, lineAt func(int64) int) Problem {
	var se *jsontext.SyntacticError
	if errors.As(err, &se) && se.Err != nil {
		return Problem{Line: lineAt(se.ByteOffset), Message: "not valid JSON: " + se.Err.Error()}
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return Problem{Message: "not valid JSON: the file ends inside a value"}
	}
	return Problem{Message: "not valid JSON: " + err.Error()}
}

// parseJSONL reads JSON Lines: one rule object per line, blank lines and
// lines starting with # skipped. A file over splitBytes is cut at line
// boundaries into runtime.GOMAXPROCS(0) pieces decoded at once, each into
// its own part of one slice (a line is at most one rule); the result is
// the same as from one piece, in file order.
func parseJSONL(data []byte) parsed {
	n := 1
	if len(data) > splitBytes {
		n = runtime.GOMAXPROCS(0)
	}
	pieces := splitLines(data, n)
	lines := linesBefore(pieces) // lines[k]: lines before piece k
	rules := make([]Rule, lines[len(pieces)])
	used := make([]int, len(pieces))
	problems := make([][]Problem, len(pieces))
	inPieces(len(pieces), func(k int) {
		used[k], problems[k] = parseLines(pieces[k], lines[k], rules[lines[k]:lines[k+1]])
	})
	// Close the gaps that blank and comment lines left.
	n = used[0]
	for k := 1; k < len(pieces); k++ {
		n += copy(rules[n:], rules[lines[k]:lines[k]+used[k]])
	}
	clear(rules[n:])
	rules = rules[:n:n]
	return parsed{
		rules:    rules,
		problems: slices.Concat(problems...),
		idLine:   func(i int) int { return rules[i].Line },
	}
}

// splitLines cuts data into up to n pieces of about equal size, each
// ending at a line end (the last at the end of data).
func splitLines(data []byte, n int) [][]byte {
	pieces := make([][]byte, 0, n)
	for k := n; k > 1; k-- {
		cut := len(data) / k
		nl := bytes.IndexByte(data[cut:], '\n')
		if nl < 0 {
			break
		}
		pieces = append(pieces, data[:cut+nl+1])
		data = data[cut+nl+1:]
	}
	return append(pieces, data)
}

// parseLines decodes one piece of a JSON Lines file, whose first line
// follows line before, into rules (room for a rule per line), and returns
// how many rules it holds and their problems.
func parseLines(data []byte, before int, rules []Rule) (n int, problems []Problem) {
	for r, ps := range eachLine(data, before) {
		problems = append(problems, ps...)
		rules[n] = *r
		n++
	}
	return n, problems
}

// eachLine decodes the rules of a piece of a JSON Lines file, whose first
// line follows line before, one at a time, with each rule's problems and
// warnings: the Rule it yields is reused, so a million rules need not be
// held at once (see Store.ReplaceFile).
func eachLine(data []byte, before int) iter.Seq2[*Rule, []Problem] {
	return func(yield func(*Rule, []Problem) bool) {
		line := before
		var f ruleFields
		var r Rule
		for len(data) > 0 {
			line++
			text := data
			if nl := bytes.IndexByte(data, '\n'); nl >= 0 {
				text, data = data[:nl], data[nl+1:]
			} else {
				data = nil
			}
			content := bytes.TrimLeft(text, " \t\r")
			if len(content) == 0 || content[0] == '#' {
				continue
			}
			r = Rule{}
			if !yield(&r, decodeRule(text, line, &r, &f)) {
				return
			}
		}
	}
}

// linesBefore returns, for each piece, the number of lines before it.
func linesBefore(pieces [][]byte) []int {
	lines := make([]int, len(pieces)+1)
	for k, piece := range pieces {
		lines[k+1] = lines[k] + bytes.Count(piece, []byte{'\n'})
		if len(piece) > 0 && piece[len(piece)-1] != '\n' {
			lines[k+1]++ // the last line has no line end
		}
	}
	return lines
}

// span is where one rule object lies in a JSON document.
type span struct {
	start, end int
	line       int
}

// parseJSON reads a JSON document {"rules": [ ... ]} of any layout. goccy's
// jsontext decoder walks the top level and finds each rule object; the
// objects are then decoded in runtime.GOMAXPROCS(0) pieces at once.
func parseJSON(data []byte) parsed {
	var p parsed
	spans, problems := jsonRuleSpans(data)
	if len(problems) > 0 {
		p.problems = problems
		return p
	}
	p.rules = make([]Rule, len(spans))
	n := 1
	if len(data) > splitBytes {
		n = runtime.GOMAXPROCS(0)
	}
	found := make([][]Problem, n)
	inPieces(n, func(k int) {
		var f ruleFields
		for i := k * len(spans) / n; i < (k+1)*len(spans)/n; i++ {
			s := spans[i]
			found[k] = append(found[k], decodeRule(data[s.start:s.end], s.line, &p.rules[i], &f)...)
		}
	})
	p.problems = slices.Concat(found...)
	p.idLine = func(i int) int {
		s := spans[i]
		_, _, lines := explainJSON(data[s.start:s.end], s.line)
		return lines.of(s.line, "id")
	}
	return p
}

// jsonRuleSpans walks the top level of a JSON rules document and returns
// where each rule object is, or the problems of the top level.
func jsonRuleSpans(data []byte) ([]span, []Problem) {
	dec := jsontext.NewDecoder(bytes.NewReader(data), jsontext.AllowDuplicateNames(true))
	line, seenTo := 1, 0
	lineAt := func(off int64) int {
		off = min(off, int64(len(data)))
		line += bytes.Count(data[seenTo:off], []byte{'\n'})
		seenTo = int(off)
		return line
	}
	fail := func(err error) ([]span, []Problem) {
		return nil, []Problem{syntaxProblemJSON(err, lineAt)}
	}
	tok, err := dec.ReadToken()
	switch {
	case errors.Is(err, io.EOF):
		return nil, nil // an empty file: no rules
	case err != nil:
		return fail(err)
	case tok.Kind() == '[':
		return nil, []Problem{{Line: lineAt(dec.InputOffset()), Message: `the top level is a list; put the rules under a "rules" key: {"rules": [ ... ]}`}}
	case tok.Kind() != '{':
		return nil, []Problem{{Line: lineAt(dec.InputOffset()), Message: `the top level is not an object; accepted: {"rules": [ ... ]}`}}
	}
	var spans []span
	var problems []Problem
	seen := 0
	for dec.PeekKind() != '}' {
		name, err := dec.ReadToken()
		if err != nil {
			return fail(err)
		}
		key := name.String() // before the next call voids name
		at := lineAt(dec.InputOffset())
		switch {
		case key != "rules":
			problems = append(problems, Problem{Line: at, Message: fmt.Sprintf("unknown top-level field %q; accepted: rules", key)})
		case seen > 0:
			problems = append(problems, Problem{Line: at, Field: "rules", Message: fmt.Sprintf("given twice (first at line %d)", seen)})
		case dec.PeekKind() == 'n':
			seen = at
		case dec.PeekKind() != '[':
			seen = at
			if v, err := dec.ReadValue(); err == nil {
				problems = append(problems, Problem{Line: at, Field: "rules", Message: fmt.Sprintf("must be a list of rules, found %s", describeJSON(v))})
			}
			continue
		default:
			seen = at
			dec.ReadToken()
			for dec.PeekKind() != ']' {
				v, err := dec.ReadValue()
				if err != nil {
					return fail(err)
				}
				end := int(dec.InputOffset())
				start := end - len(v)
				spans = append(spans, span{start: start, end: end, line: lineAt(int64(start))})
			}
			if _, err := dec.ReadToken(); err != nil {
				return fail(err)
			}
			continue
		}
		if err := dec.SkipValue(); err != nil {
			return fail(err)
		}
	}
	if _, err := dec.ReadToken(); err != nil {
		return fail(err)
	}
	if _, err := dec.ReadValue(); !errors.Is(err, io.EOF) {
		return nil, []Problem{{Line: lineAt(dec.InputOffset()), Message: `text after the top-level object; accepted: one object {"rules": [ ... ]}`}}
	}
	if seen == 0 && len(problems) == 0 {
		problems = append(problems, Problem{Line: 1, Message: `no "rules" key; accepted: {"rules": [ ... ]} ({"rules": []} for none)`})
	}
	return spans, problems
}
