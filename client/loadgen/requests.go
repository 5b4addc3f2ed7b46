package loadgen

import (
	"fmt"

	"github.com/redirectd/redirectd/decision"
)

// SyntheticRequests returns n GET requests for distinct paths on one host,
// for a load test without a request stream file. Against rules that do not
// mention them they are all misses, which exercises the full lookup.
// Request streams (redirectctl gen --requests-out) are read with
// rulegen.ReadRequests, the reader of the package that writes them.
func SyntheticRequests(n int) []decision.Request {
	reqs := make([]decision.Request, n)
	for i := range reqs {
		reqs[i] = decision.Request{Method: "GET", Scheme: "https", Host: "bench.example.com", Target: fmt.Sprintf("/bench/%d?utm_source=load", i)}
	}
	return reqs
}
