package rulegen_test

import (
	"testing"

	"github.com/redirectd/redirectd/decision/rulegen"
)

// TestParseRequestHeaders: a request line's headers reach the request, with
// lower-case names, so rules with conditions decide on them.
func TestParseRequestHeaders(t *testing.T) {
	req, err := rulegen.ParseRequest([]byte(`{"method":"GET","path":"/","headers":{"Accept-Language":"de","cookie":"beta=1"}}`))
	if err != nil || req.Headers["accept-language"] != "de" || req.Headers["cookie"] != "beta=1" || len(req.Headers) != 2 {
		t.Errorf("ParseRequest = %+v, %v", req, err)
	}
}
