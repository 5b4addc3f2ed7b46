package decision

// TEMPORARY: errNotYet was declared in the deleted stub_index.go and is
// still used by stub_rulesfile.go; delete this file with that one.

import "errors"

var errNotYet = errors.New("decision: not built yet")
