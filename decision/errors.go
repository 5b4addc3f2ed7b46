package decision

import (
	"fmt"
	"slices"
	"strings"
)

// Severity says whether a Problem rejects a rule set.
type Severity uint8

const (
	// SeverityError rejects the whole rule set.
	SeverityError Severity = iota
	// SeverityWarning is reported but the rule set is accepted.
	SeverityWarning
)

func (s Severity) String() string {
	if s == SeverityWarning {
		return "warning"
	}
	return "error"
}

// Problem is one finding about a rule set, located for a person to fix:
// "rules.yaml:12: rules[3] (docs-moved) status: 404 is not a redirect
// status; accepted: 301, 302, 303, 307, 308".
type Problem struct {
	Severity Severity
	File     string // "" when the rules did not come from a file
	Line     int    // 0 when unknown
	RuleID   string
	Field    string // rules-file field name, e.g. "status"
	Message  string
}

func (p Problem) String() string {
	var b strings.Builder
	if p.File != "" {
		b.WriteString(p.File)
		b.WriteByte(':')
	}
	if p.Line > 0 {
		fmt.Fprintf(&b, "%d:", p.Line)
	}
	if b.Len() > 0 {
		b.WriteByte(' ')
	}
	if p.Severity == SeverityWarning {
		b.WriteString("warning: ")
	}
	if p.RuleID != "" {
		fmt.Fprintf(&b, "rule %q: ", p.RuleID)
	}
	if p.Field != "" {
		b.WriteString(p.Field)
		b.WriteString(": ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// RulesError rejects a whole rule set. It lists every error found, so a
// person can fix a file in one pass, and apart from them the warnings
// found on the way (redirectctl lint shows both, README "lint"). A load
// stops at the first of its stages that errs (reading, each rule, ids,
// the graph), so warnings of later stages are not known.
type RulesError struct {
	Problems []Problem
	Warnings []Problem
}

// withWarnings is err with warns before its own warnings, if err is a
// *RulesError; warns were found at an earlier stage of the load, and
// those err has too (an in-place change reports the serving set's) are
// not repeated.
func withWarnings(err error, warns []Problem) error {
	re, ok := err.(*RulesError)
	if !ok || len(warns) == 0 {
		return err
	}
	all, seen := slices.Clip(warns), make(map[Problem]bool, len(warns))
	for _, w := range warns {
		seen[w] = true
	}
	for _, w := range re.Warnings {
		if !seen[w] {
			all = append(all, w)
		}
	}
	return &RulesError{Problems: re.Problems, Warnings: all}
}

// All is every problem of the refused set: the errors, then the warnings.
func (e *RulesError) All() []Problem { return slices.Concat(e.Problems, e.Warnings) }

func (e *RulesError) Error() string {
	const most = 10
	var b strings.Builder
	for i, p := range e.Problems {
		if i == most {
			fmt.Fprintf(&b, "\n(and %d more)", len(e.Problems)-most)
			break
		}
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(p.String())
	}
	return b.String()
}

// RequestError says which field of a Request is unacceptable and why.
type RequestError struct {
	Field   string // "method", "path", "host", ...
	Message string
}

func (e *RequestError) Error() string {
	return e.Field + ": " + e.Message
}
