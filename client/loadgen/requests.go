package loadgen

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strings"
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

// ReadRequests reads a request stream. name is used in error messages. Blank
// lines are skipped; a line that is not a JSON object with a method and a
// path is an error naming the line.
func ReadRequests(name string, r io.Reader) ([]Request, error) {
	var reqs []Request
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			continue
		}
		var req Request
		if err := json.Unmarshal([]byte(text), &req); err != nil {
			return nil, fmt.Errorf("%s:%d: not a request object (want {\"method\":..,\"host\":..,\"path\":..,\"scheme\":..}): %v", name, line, err)
		}
		switch {
		case req.Method == "":
			return nil, fmt.Errorf("%s:%d: field method is missing (an HTTP method such as GET)", name, line)
		case req.Path == "":
			return nil, fmt.Errorf("%s:%d: field path is missing (the request target, e.g. /a?b=c)", name, line)
		}
		reqs = append(reqs, req)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s:%d: %w", name, line+1, err)
	}
	if len(reqs) == 0 {
		return nil, fmt.Errorf("%s: no requests (one JSON object per line)", name)
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
