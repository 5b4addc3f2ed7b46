package decision

import (
	"errors"
	"sync"

	json "github.com/goccy/go-json/v2"
)

// ReplaceFunc is Replace for a set of n rules that rule decodes one at a
// time: rule(i, r) sets *r to the i-th rule in file order, or says why it
// cannot. It is called on every core at once, and each rule is checked
// and compiled straight into a new base as a JSON Lines file's are
// (README "Rules files"): the set is never held as n Rules. An error of
// rule is one problem of the set, with its text as the message.
func (s *Store) ReplaceFunc(n int, rule func(i int, r *Rule) error) (*Change, error) {
	if n > MaxRules {
		return nil, tooMany(n)
	}
	pieces := 1
	if n >= 4<<10 {
		pieces = s.loadWorkers()
	}
	out, warns, err := s.decodeInPieces("", n, pieces, 0, func(i int, r *Rule, _ *ruleFields) []Problem {
		if err := rule(i, r); err != nil {
			return []Problem{{Severity: SeverityError, Message: err.Error()}}
		}
		return checkRule(r)
	})
	if err != nil {
		return nil, err
	}
	return s.replaceBase("", out, warns)
}

// UnmarshalRule decodes one rule object as rules files spell it (README
// "Rules files": {"id": "a", "path": "/a", "to": "/b", ...}) into r,
// strictly: an unknown or repeated field, or a value outside its accepted
// words or forms, is an error naming the field. It does not check the
// rule: Replace and ReplaceFunc do.
func UnmarshalRule(data []byte, r *Rule) error {
	f := fieldsPool.Get().(*ruleFields)
	defer fieldsPool.Put(f)
	*f = ruleFields{}
	if err := json.Unmarshal(data, f, strictJSON); err != nil {
		return err
	}
	if ps := f.toRule(r); len(ps) > 0 {
		return errors.New(ps[0].Field + ": " + ps[0].Message)
	}
	return nil
}

// fieldsPool holds UnmarshalRule's scratch space: one ruleFields that
// escapes to the heap per rule would be a quarter of a gigabyte of
// garbage at a million.
var fieldsPool = sync.Pool{New: func() any { return new(ruleFields) }}
