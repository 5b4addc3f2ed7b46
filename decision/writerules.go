package decision

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"iter"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/goccy/go-json/jsontext"
	json "github.com/goccy/go-json/v2"
)

// Format is a rules-file format (README "Rules files").
type Format uint8

const (
	// FormatYAML is YAML, for files people write and read.
	FormatYAML Format = iota
	// FormatJSON is one JSON document {"rules": [ ... ]}.
	FormatJSON
	// FormatJSONL is JSON Lines: one rule object per line, for large
	// generated sets.
	FormatJSONL
)

var formatNames = [...]string{FormatYAML: "yaml", FormatJSON: "json", FormatJSONL: "jsonl"}

func (f Format) String() string {
	if int(f) < len(formatNames) {
		return formatNames[f]
	}
	return fmt.Sprintf("Format(%d)", uint8(f))
}

// FormatOf is the format of a rules file by its name: JSON Lines for
// ".jsonl", JSON for ".json", YAML for anything else (a ConfigMap's
// rules.yaml, rules.yml, a name without an extension).
func FormatOf(name string) Format {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".jsonl":
		return FormatJSONL
	case ".json":
		return FormatJSON
	}
	return FormatYAML
}

// ParseFormat reads a format's name: yaml, json or jsonl.
func ParseFormat(s string) (Format, error) {
	if i := slices.Index(formatNames[:], s); i >= 0 {
		return Format(i), nil
	}
	return FormatYAML, fmt.Errorf("unknown format %q; accepted: yaml, json, jsonl", s)
}

// RuleSeq yields a pointer to each of rules, in order, for WriteRules.
func RuleSeq(rules []Rule) iter.Seq[*Rule] {
	return func(yield func(*Rule) bool) {
		for i := range rules {
			if !yield(&rules[i]) {
				return
			}
		}
	}
}

// WriteRules writes rules as a rules file in format f, one rule at a time,
// so a caller holding rules in another form need not build a []Rule. What
// it writes reads back to the same rules (all but Line) through ParseRules
// and through any reader of the format (yaml.v3, PyYAML, encoding/json):
// fields in ruleFields' order, defaults left out, cache_max_age in seconds.
func WriteRules(w io.Writer, f Format, rules iter.Seq[*Rule]) error {
	bw := bufio.NewWriterSize(w, 256<<10)
	var err error
	switch f {
	case FormatJSON, FormatJSONL:
		err = writeJSON(bw, f == FormatJSONL, rules)
	default:
		writeYAML(bw, rules)
	}
	if err != nil {
		return err
	}
	return bw.Flush()
}

// MarshalRules is WriteRules of a []Rule as YAML into memory.
func MarshalRules(rules []Rule) []byte {
	var b bytes.Buffer
	WriteRules(&b, FormatYAML, RuleSeq(rules)) // a bytes.Buffer never fails
	return b.Bytes()
}

// jsonWriteOptions: map keys (headers) sorted, so the same rules are the
// same file.
var jsonWriteOptions = json.Deterministic(true)

// writeJSON writes each rule through goccy/go-json's v2 encoder: one per
// line, inside {"rules":[ ... ]} unless lines.
func writeJSON(w *bufio.Writer, lines bool, rules iter.Seq[*Rule]) error {
	var num []byte
	var f ruleFields // one for all rules: one per rule would escape to the heap
	n := 0
	for r := range rules {
		switch {
		case lines:
		case n == 0:
			w.WriteString("{\"rules\":[\n")
		default:
			w.WriteString(",\n")
		}
		f = fromRule(r, num)
		num = f.CacheMaxAge
		if err := json.MarshalWrite(w, &f, jsonWriteOptions); err != nil {
			return fmt.Errorf("rule %q: %w", r.ID, err)
		}
		if lines {
			w.WriteByte('\n')
		}
		n++
	}
	switch {
	case lines:
	case n == 0:
		w.WriteString("{\"rules\":[]}\n")
	default:
		w.WriteString("\n]}\n")
	}
	return nil
}

// omitZero[i] says whether field i of ruleFields is left out when zero
// (its json tag says omitzero); id, path and to are always written.
var omitZero = func() []bool {
	t := reflect.TypeFor[ruleFields]()
	omit := make([]bool, t.NumField())
	for i := range omit {
		omit[i] = strings.HasSuffix(t.Field(i).Tag.Get("json"), ",omitzero")
	}
	return omit
}()

// writeYAML writes block-style YAML: a rule per list item, a field per
// line, lists and header maps in flow style. It is written by hand rather
// than by yaml.v3's encoder so a million rules take about a second; the
// fuzz tests hold it to yaml.v3's and PyYAML's reading.
func writeYAML(w *bufio.Writer, rules iter.Seq[*Rule]) {
	var num []byte
	var f ruleFields // one for all rules, as in writeJSON
	fields := reflect.ValueOf(&f).Elem()
	n := 0
	for r := range rules {
		if n == 0 {
			w.WriteString("rules:\n")
		}
		n++
		f = fromRule(r, num)
		num = f.CacheMaxAge
		for i, name := range ruleFieldNames {
			v := fields.Field(i)
			if omitZero[i] && v.IsZero() {
				continue
			}
			if i == 0 {
				w.WriteString("  - ")
			} else {
				w.WriteString("    ")
			}
			w.WriteString(name)
			w.WriteString(": ")
			writeYAMLValue(w, v)
			w.WriteByte('\n')
		}
	}
	if n == 0 {
		w.WriteString("rules: []\n")
	}
}

// writeYAMLValue writes one field's value by its type, as
// nodeDecoder.field reads it.
func writeYAMLValue(w *bufio.Writer, v reflect.Value) {
	switch v := v.Addr().Interface().(type) {
	case *string:
		writeScalar(w, *v, false)
	case *int:
		w.WriteString(strconv.Itoa(*v))
	case *bool:
		w.WriteString(strconv.FormatBool(*v))
	case *[]string:
		w.WriteByte('[')
		for i, s := range *v {
			if i > 0 {
				w.WriteString(", ")
			}
			writeScalar(w, s, true)
		}
		w.WriteByte(']')
	case *map[string]string:
		names := make([]string, 0, len(*v))
		for name := range *v {
			names = append(names, name)
		}
		slices.Sort(names)
		w.WriteByte('{')
		for i, name := range names {
			if i > 0 {
				w.WriteString(", ")
			}
			writeScalar(w, name, true)
			w.WriteString(": ")
			writeScalar(w, (*v)[name], true)
		}
		w.WriteByte('}')
	case *[]Condition:
		w.WriteByte('[')
		for i, c := range *v {
			if i > 0 {
				w.WriteString(", ")
			}
			w.WriteString("{type: ")
			writeScalar(w, c.Type, true)
			w.WriteString(", key: ")
			writeScalar(w, c.Key, true)
			if c.Value != nil {
				w.WriteString(", value: ")
				writeScalar(w, *c.Value, true)
			}
			w.WriteByte('}')
		}
		w.WriteByte(']')
	case *jsontext.Value:
		// A JSON number is a YAML number; fromRule writes only numbers.
		w.Write(*v)
	default:
		panic("decision: ruleFields has a field of a type the YAML writer does not know")
	}
}

// writeScalar writes s plain when every YAML reader reads it back as the
// string s, else double-quoted.
func writeScalar(w *bufio.Writer, s string, flow bool) {
	if plainSafe(s, flow) {
		w.WriteString(s)
		return
	}
	writeQuoted(w, s)
}

// plainSafe reports whether s can be written as a plain YAML scalar that
// YAML 1.1 and 1.2 readers both read back as the string s. It is
// deliberately narrow: it starts with a letter, '/' or '_' (never a
// number, a timestamp or an indicator such as - ? : # & * ! | > ' " % @ `),
// is not a word read as a boolean or null, has only letters, digits and
// "/_.-~%+=@;$" (in block context also ":?&,", never ending in ':'), so
// no space, comment, flow indicator or non-ASCII character.
func plainSafe(s string, flow bool) bool {
	if s == "" || !isPlainStart(s[0]) || s[len(s)-1] == ':' || reservedWord(s) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("/_.-~%+=@;$", c) >= 0:
		case !flow && strings.IndexByte(":?&,", c) >= 0:
		default:
			return false
		}
	}
	return true
}

func isPlainStart(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '/' || c == '_'
}

// reservedWord: plain words YAML 1.1 (PyYAML) or 1.2 (yaml.v3) reads as
// booleans or null.
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
func writeQuoted(w *bufio.Writer, s string) {
	w.WriteByte('"')
	for _, c := range s {
		switch {
		case c == '"':
			w.WriteString(`\"`)
		case c == '\\':
			w.WriteString(`\\`)
		case c < 0x20 || c == 0x7f:
			fmt.Fprintf(w, `\x%02X`, c)
		case c >= 0x80 && !yamlPrintable(c):
			fmt.Fprintf(w, `\u%04X`, c)
		default:
			w.WriteRune(c)
		}
	}
	w.WriteByte('"')
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
