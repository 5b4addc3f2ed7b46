package loadgen

import (
	"fmt"
	"io"

	"github.com/redirectd/redirectd/decision/rulegen"
)

// Request is one HTTP request to ask about, as a line of a request stream
// file: a JSON object per line, e.g.
//
//	{"method":"GET","scheme":"https","host":"shop.example.com","path":"/old/1?utm_source=x"}
//
// This is the format `redirectctl gen --requests-out` writes. Fields this
// type does not know (a generator may record the rule it expects to hit)
// are ignored, so one file serves both the generator's checks and the load.
type Request struct {
	Method   string `json:"method"`
	Scheme   string `json:"scheme,omitempty"`
	Host     string `json:"host,omitempty"`
	Path     string `json:"path"`
	Protocol string `json:"protocol,omitempty"`
}

// ReadRequests reads a request stream, through the reader of the package
// that writes them (decision/rulegen), so the two never disagree on the
// format. name is used in errors, which name the line.
func ReadRequests(name string, r io.Reader) ([]Request, error) {
	stream, err := rulegen.ReadRequests(name, r)
	if err != nil {
		return nil, err
	}
	if len(stream) == 0 {
		return nil, fmt.Errorf("%s: no requests (one JSON object per line)", name)
	}
	reqs := make([]Request, len(stream))
	for i, q := range stream {
		reqs[i] = Request{Method: q.Method, Scheme: q.Scheme, Host: q.Host, Path: q.Target, Protocol: q.Protocol}
	}
	return reqs, nil
}

// SyntheticRequests returns n GET requests for distinct paths on one host,
// for a load test without a request stream file. Against rules that do not
// mention them they are all misses, which exercises the full lookup.
func SyntheticRequests(n int) []Request {
	reqs := make([]Request, n)
	for i := range reqs {
		reqs[i] = Request{Method: "GET", Scheme: "https", Host: "bench.example.com", Path: fmt.Sprintf("/bench/%d?utm_source=load", i)}
	}
	return reqs
}
