package client

import (
	"fmt"
	"io"
	"slices"

	"github.com/redirectd/redirectd/decision"
)

// WriteEnvoyAllowedHeaders writes the allowed_headers field of an
// ext_authz filter's typed_config for rules, as YAML to paste into
// envoy.yaml: the request headers Envoy must send redirectd for them
// (README "Envoy", allowed_headers), those their conditions and languages
// read (decision.ConsultedHeaders) and x-request-id, which redirectd's
// logs carry. Method, host, path and scheme reach it as request
// attributes whatever the list says.
func WriteEnvoyAllowedHeaders(w io.Writer, rules []decision.Rule) error {
	if _, err := fmt.Fprintln(w, "allowed_headers:\n  patterns:"); err != nil {
		return err
	}
	names := append(decision.ConsultedHeaders(rules), "x-request-id")
	slices.Sort(names)
	for _, name := range slices.Compact(names) {
		if _, err := fmt.Fprintf(w, "  - exact: %s\n", name); err != nil {
			return err
		}
	}
	return nil
}
