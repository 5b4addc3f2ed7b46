// Package deploy holds what redirectd ships besides its binaries: the
// example rule set it serves when started without --rules, and the proxy,
// container and Kubernetes configurations checked by this package's tests.
package deploy

import _ "embed"

// ExampleRules is deploy/rules/example.yaml: a rule set showing every match
// kind, intent and option, served by redirectd when no --rules is given.
//
//go:embed rules/example.yaml
var ExampleRules []byte

// ExampleRulesName names ExampleRules in logs, versions and problems.
const ExampleRulesName = "built-in example (deploy/rules/example.yaml)"
