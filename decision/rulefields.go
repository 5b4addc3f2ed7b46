package decision

import (
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-json/jsontext"
	json "github.com/goccy/go-json/v2"
)

// ruleFields is a rule as a rules file spells it, in every format (README
// "Rules files"): the one declaration of the file's field names, their order
// (the order the writers use) and their types. The JSON and JSON Lines
// readers and writers use its json tags through github.com/goccy/go-json;
// the YAML reader and writer walk it by its yaml tags. A new field is added
// here and in toRule and fromRule.
//
// Words (match, intent, ...) and times stay text here so that one function,
// toRule, says what each accepts, whatever the format.
type ruleFields struct {
	ID              string            `json:"id" yaml:"id"`
	Host            string            `json:"host,omitzero" yaml:"host"`
	Path            string            `json:"path" yaml:"path"`
	Match           string            `json:"match,omitzero" yaml:"match"`
	To              string            `json:"to" yaml:"to"`
	Intent          string            `json:"intent,omitzero" yaml:"intent"`
	Status          int               `json:"status,omitzero" yaml:"status"`
	Methods         []string          `json:"methods,omitzero" yaml:"methods"`
	Query           string            `json:"query,omitzero" yaml:"query"`
	QueryStrip      []string          `json:"query_strip,omitzero" yaml:"query_strip"`
	CaseInsensitive bool              `json:"case_insensitive,omitzero" yaml:"case_insensitive"`
	TrailingSlash   string            `json:"trailing_slash,omitzero" yaml:"trailing_slash"`
	Headers         map[string]string `json:"headers,omitzero" yaml:"headers"`
	Has             []Condition       `json:"has,omitzero" yaml:"has"`
	Missing         []Condition       `json:"missing,omitzero" yaml:"missing"`
	Languages       []string          `json:"languages,omitzero" yaml:"languages"`
	// CacheMaxAge is the value as written: a JSON number of seconds
	// (3600) or a JSON string holding a duration ("24h"). YAML's plain
	// numbers and strings map onto the same two.
	CacheMaxAge jsontext.Value `json:"cache_max_age,omitzero" yaml:"cache_max_age"`
	Since       string         `json:"since,omitzero" yaml:"since"`
	// The rule's lifecycle (README "Time windows", "Shadow rules",
	// "Staged permanence").
	ActiveFrom   string `json:"active_from,omitzero" yaml:"active_from"`
	ActiveUntil  string `json:"active_until,omitzero" yaml:"active_until"`
	Mode         string `json:"mode,omitzero" yaml:"mode"`
	PromoteAfter string `json:"promote_after,omitzero" yaml:"promote_after"`
}

// ruleFieldCount is the number of fields of ruleFields, which fieldLines
// holds a line for; TestRuleFieldsTags checks it.
const ruleFieldCount = 22

// ruleFieldNames are the rules-file fields in their declared order.
var ruleFieldNames = func() []string {
	t := reflect.TypeFor[ruleFields]()
	names := make([]string, t.NumField())
	for i := range names {
		names[i] = t.Field(i).Tag.Get("yaml")
	}
	return names
}()

var fieldsAccepted = "accepted: " + strings.Join(ruleFieldNames, ", ")

// fieldIndex is the position of a field name in ruleFields, or -1.
func fieldIndex(name string) int {
	for i, n := range ruleFieldNames {
		if n == name {
			return i
		}
	}
	return -1
}

// toRule turns the fields as written into r (all but r.Line), and
// returns the problems of values outside their accepted words or forms,
// each naming its field; checkRule judges the rest.
func (f *ruleFields) toRule(r *Rule) []Problem {
	var problems []Problem
	fail := func(field string, err error) {
		problems = append(problems, Problem{Field: field, Message: err.Error()})
	}
	*r = Rule{
		ID: f.ID, Host: f.Host, Path: f.Path, To: f.To, Status: f.Status,
		Methods: f.Methods, QueryStrip: f.QueryStrip, CaseInsensitive: f.CaseInsensitive, Headers: f.Headers,
		Has: f.Has, Missing: f.Missing, Languages: f.Languages,
	}
	var err error
	if f.Match != "" {
		if r.Match, err = ParseMatchKind(f.Match); err != nil {
			fail("match", err)
		}
	}
	if f.Intent != "" {
		if r.Intent, err = ParseIntent(f.Intent); err != nil {
			fail("intent", err)
		}
	}
	if f.Query != "" {
		if r.Query, err = parseQueryPolicy(f.Query); err != nil {
			fail("query", err)
		}
	}
	if f.TrailingSlash != "" {
		if r.TrailingSlash, err = parseTrailingSlash(f.TrailingSlash); err != nil {
			fail("trailing_slash", err)
		}
	}
	if len(f.CacheMaxAge) > 0 {
		d, err := parseMaxAge(f.CacheMaxAge)
		if err != nil {
			fail("cache_max_age", err)
		}
		r.CacheMaxAge = &d
	}
	for _, t := range []struct {
		field, text string
		to          *time.Time
	}{{"since", f.Since, &r.Since}, {"active_from", f.ActiveFrom, &r.ActiveFrom}, {"active_until", f.ActiveUntil, &r.ActiveUntil}} {
		if t.text != "" {
			if *t.to, err = parseTime(t.text); err != nil {
				fail(t.field, err)
			}
		}
	}
	if f.Mode != "" {
		if r.Mode, err = ParseMode(f.Mode); err != nil {
			fail("mode", err)
		}
	}
	if f.PromoteAfter != "" {
		if r.PromoteAfter, err = parseDuration(f.PromoteAfter); err != nil {
			fail("promote_after", fmt.Errorf("%q is not a duration; accepted: a duration such as 30d, 12h or 1d12h", f.PromoteAfter))
		}
	}
	if len(r.Headers) == 0 {
		r.Headers = nil
	}
	if len(r.Has) == 0 {
		r.Has = nil
	}
	if len(r.Missing) == 0 {
		r.Missing = nil
	}
	if len(r.Languages) == 0 {
		r.Languages = nil
	}
	return problems
}

// fromRule is toRule's inverse: defaults are left empty so the writers
// leave them out. num is scratch space for cache_max_age's digits, reused
// from rule to rule by a writer.
func fromRule(r *Rule, num []byte) ruleFields {
	f := ruleFields{
		ID: r.ID, Host: r.Host, Path: r.Path, To: r.To, Status: r.Status,
		Methods: r.Methods, QueryStrip: r.QueryStrip, CaseInsensitive: r.CaseInsensitive, Headers: r.Headers,
		Has: r.Has, Missing: r.Missing, Languages: r.Languages,
	}
	if r.Match != MatchExact {
		f.Match = r.Match.String()
	}
	if r.Intent != IntentUnspecified {
		f.Intent = r.Intent.String()
	}
	if r.Query == QueryDrop {
		f.Query = "drop"
	}
	if r.TrailingSlash == TrailingSlashStrict {
		f.TrailingSlash = "strict"
	}
	if r.CacheMaxAge != nil {
		f.CacheMaxAge = strconv.AppendInt(num[:0], int64(*r.CacheMaxAge/time.Second), 10)
	}
	f.Since, f.ActiveFrom, f.ActiveUntil = formatTime(r.Since), formatTime(r.ActiveFrom), formatTime(r.ActiveUntil)
	if r.Mode != ModeEnforce {
		f.Mode = r.Mode.String()
	}
	if r.PromoteAfter != 0 {
		f.PromoteAfter = formatDuration(r.PromoteAfter)
	}
	return f
}

const maxAgeAccepted = "accepted: a number of seconds such as 86400, or a duration such as 24h, 90m or 7d"

// parseMaxAge reads cache_max_age: whole seconds as a number, or a Go
// duration as a string ("24h", "1h30m"); checkRule then wants it >= 0 and
// whole seconds. A number in quotes is a string, and no duration.
func parseMaxAge(v jsontext.Value) (time.Duration, error) {
	switch v.Kind() {
	case '"':
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return 0, fmt.Errorf("%s is not a duration; %s", v, maxAgeAccepted)
		}
		d, err := parseDuration(s)
		if err != nil {
			return 0, fmt.Errorf("%q is not a duration; %s", s, maxAgeAccepted)
		}
		return d, nil
	case '0':
		n, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s is not a whole number of seconds; %s", v, maxAgeAccepted)
		}
		if n > math.MaxInt64/int64(time.Second) || n < math.MinInt64/int64(time.Second) {
			return 0, fmt.Errorf("%d seconds is too long; %s", n, maxAgeAccepted)
		}
		return time.Duration(n) * time.Second, nil
	}
	return 0, fmt.Errorf("must be a number or a duration, found %s; %s", describeJSON(v), maxAgeAccepted)
}

// describeJSON names a JSON value for a message: short text as written,
// containers by their kind.
func describeJSON(v jsontext.Value) string {
	switch v.Kind() {
	case '{':
		return "an object"
	case '[':
		return "a list"
	case 'n':
		return "nothing (null)"
	}
	if len(v) > 60 {
		return string(v[:57]) + "..."
	}
	return string(v)
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

// parseTime reads since, active_from and active_until: RFC 3339 times.
func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not an RFC 3339 time; accepted: a time such as 2026-11-01T00:00:00Z", s)
	}
	return t, nil
}

// formatTime is parseTime's inverse; "" for the zero time.
func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format(time.RFC3339Nano)
}

const day = 24 * time.Hour

// parseDuration reads a Go duration ("12h", "90m") with whole days in
// front accepted ("30d", "1d12h"), as people write redirect lifetimes.
func parseDuration(s string) (time.Duration, error) {
	var days int64
	if i := strings.IndexByte(s, 'd'); i > 0 {
		n, err := strconv.ParseInt(s[:i], 10, 64)
		if err != nil || n < 0 || n > math.MaxInt64/int64(day) {
			return 0, fmt.Errorf("%q: bad number of days", s)
		}
		days, s = n, s[i+1:]
		if s == "" {
			return time.Duration(days) * day, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, err
	}
	if days > 0 && d < 0 {
		return 0, fmt.Errorf("%q: a negative part after days", s)
	}
	total := time.Duration(days)*day + d
	if total < d {
		return 0, fmt.Errorf("%q is too long", s)
	}
	return total, nil
}

// formatDuration is parseDuration's inverse: whole days as "30d", the
// rest as Go writes it ("1d12h0m0s").
func formatDuration(d time.Duration) string {
	if d < day {
		return d.String()
	}
	s := strconv.FormatInt(int64(d/day), 10) + "d"
	if rest := d % day; rest != 0 {
		s += rest.String()
	}
	return s
}

// unknownField is the message for a field name ruleFields does not have,
// with a suggestion for a misspelt one.
func unknownField(name string) string {
	if near := nearestField(name); near != "" {
		return fmt.Sprintf("unknown field %q (did you mean %s?); %s", name, near, fieldsAccepted)
	}
	return fmt.Sprintf("unknown field %q; %s", name, fieldsAccepted)
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

// fieldLines holds, for one rule, each field's line as an offset from the
// rule's line (0 when the field is absent or too far away), so a problem
// about a field can name the line of that field.
type fieldLines [ruleFieldCount]uint16

func (fl *fieldLines) set(field string, ruleLine, line int) {
	if i := fieldIndex(field); i >= 0 && line > ruleLine && line-ruleLine <= math.MaxUint16 {
		fl[i] = uint16(line - ruleLine)
	}
}

func (fl *fieldLines) of(ruleLine int, field string) int {
	if i := fieldIndex(field); i >= 0 {
		return ruleLine + int(fl[i])
	}
	return ruleLine
}
