package main

import (
	"context"
	"fmt"
	"io"

	"github.com/redirectd/redirectd/client"
	"github.com/redirectd/redirectd/decision"
)

// runEnvoyConfig prints the ext_authz allowed_headers for a rules file:
// Envoy then sends redirectd the headers its conditions read, and no
// others (README "Envoy").
func runEnvoyConfig(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("envoy-config", "--rules FILE", stderr)
	rulesFile := fs.String("rules", "", "the rules file redirectd serves")
	rest, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usagef("unexpected arguments %q", rest)
	}
	if *rulesFile == "" {
		return usagef("want --rules FILE")
	}
	name, data, err := readArg(*rulesFile)
	if err != nil {
		return err
	}
	rules, err := decision.ParseRules(name, data)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "# ext_authz allowed_headers for %s: the request headers its rules read, and x-request-id for redirectd's logs.\n", *rulesFile)
	return client.WriteEnvoyAllowedHeaders(stdout, rules)
}
