package decision

import (
	"errors"
	"slices"
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
	parts := make([]*baseBuilder, pieces)
	found := make([][]Problem, pieces)
	inPieces(pieces, func(k int) {
		lo, hi := k*n/pieces, (k+1)*n/pieces
		bb := newBaseBuilder(newCacheTable(s.opts), hi-lo, 0)
		var r Rule
		for i := lo; i < hi; i++ {
			r = Rule{}
			if err := rule(i, &r); err != nil {
				found[k] = append(found[k], Problem{Message: err.Error()})
				continue
			}
			found[k] = bb.addDecoded(&r, checkRule(&r), found[k])
		}
		parts[k] = bb
	})
	errs, warns := splitProblems("", slices.Concat(found...), nil, nil)
	if len(errs) > 0 {
		return nil, &RulesError{Problems: errs}
	}
	out := newBaseBuilder(newCacheTable(s.opts), 0, 0)
	out.reserve(parts, 0, 0)
	out.join(parts)
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
