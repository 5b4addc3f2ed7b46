package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/redirectd/redirectd/client"
	redirectv1 "github.com/redirectd/redirectd/proto/redirect/v1"
)

func runTest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("test", "CASES_FILE [--server ADDR | --rules FILE] [flags]", stderr)
	var b backend
	b.register(fs)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("want one CASES_FILE (a YAML list of request → expect cases); got %d arguments", len(pos))
	}
	data, err := os.ReadFile(pos[0])
	if err != nil {
		return err
	}
	cases, err := parseCases(pos[0], data)
	if err != nil {
		return err
	}

	d, err := b.open(stderr)
	if err != nil {
		return err
	}
	defer d.Close()
	reqs := make([]*redirectv1.DecideRequest, len(cases))
	for i, c := range cases {
		reqs[i] = c.request
	}
	// One batch (split by the client at the server's limit): a rules file
	// with thousands of cases costs a few round trips, not thousands.
	results, err := d.DecideBatch(ctx, reqs)
	if err != nil {
		return b.describe(err)
	}
	if len(results) != len(cases) {
		return fmt.Errorf("%d results for %d cases", len(results), len(cases))
	}
	passed, failed := 0, 0
	for i, c := range cases {
		diffs := c.expect.check(results[i])
		if len(diffs) == 0 {
			passed++
			fmt.Fprintf(stdout, "PASS  %s\n", c.name)
			continue
		}
		failed++
		fmt.Fprintf(stdout, "FAIL  %s (%s:%d)\n", c.name, pos[0], c.line)
		for _, diff := range diffs {
			fmt.Fprintf(stdout, "      %s\n", diff)
		}
	}
	fmt.Fprintf(stdout, "%d passed, %d failed\n", passed, failed)
	if failed > 0 {
		return errFailed
	}
	return nil
}

// testCase is one request and what its answer must be.
type testCase struct {
	name    string
	line    int
	request *redirectv1.DecideRequest
	expect  expectation
}

// expectation holds the fields a case checks; nil fields are not checked.
type expectation struct {
	Redirect          *bool   `yaml:"redirect"`
	Status            *int32  `yaml:"status"`
	Location          *string `yaml:"location"`
	FollowUpMethod    *string `yaml:"follow_up_method"`
	FollowUpKeepsBody *bool   `yaml:"follow_up_keeps_body"`
	CacheControl      *string `yaml:"cache_control"`
	Vary              *string `yaml:"vary"`
	RuleID            *string `yaml:"rule_id"`
	// Error is a substring of the error for a request that must be rejected.
	Error *string `yaml:"error"`
}

// check compares a result with the expectation and returns one line per
// difference, "field: want X, got Y".
func (e *expectation) check(res *redirectv1.DecideResult) []string {
	if msg, rejected := res.GetOutcome().(*redirectv1.DecideResult_Error); rejected {
		if e.Error != nil && strings.Contains(msg.Error, *e.Error) {
			return nil
		}
		if e.Error != nil {
			return []string{fmt.Sprintf("error: want one containing %q, got %q", *e.Error, msg.Error)}
		}
		return []string{"request rejected: " + msg.Error}
	}
	resp := res.GetResponse()
	if e.Error != nil {
		return []string{fmt.Sprintf("error: want one containing %q, got a decision (redirect: %t)", *e.Error, resp.GetRedirect())}
	}
	wantRedirect := e.Redirect == nil || *e.Redirect
	if wantRedirect != resp.GetRedirect() {
		if resp.GetRedirect() {
			return []string{fmt.Sprintf("redirect: want false, got %d → %s (rule %s)", resp.GetStatusCode(), resp.GetLocation(), resp.GetRuleId())}
		}
		return []string{"redirect: want true, got false (no rule matched)"}
	}
	var diffs []string
	str := func(field string, want *string, got string) {
		if want != nil && *want != got {
			diffs = append(diffs, fmt.Sprintf("%s: want %q, got %q", field, *want, got))
		}
	}
	if e.Status != nil && *e.Status != resp.GetStatusCode() {
		diffs = append(diffs, fmt.Sprintf("status: want %d, got %d", *e.Status, resp.GetStatusCode()))
	}
	str("location", e.Location, resp.GetLocation())
	str("follow_up_method", e.FollowUpMethod, resp.GetFollowUpMethod())
	if e.FollowUpKeepsBody != nil && *e.FollowUpKeepsBody != resp.GetFollowUpKeepsBody() {
		diffs = append(diffs, fmt.Sprintf("follow_up_keeps_body: want %t, got %t", *e.FollowUpKeepsBody, resp.GetFollowUpKeepsBody()))
	}
	str("cache_control", e.CacheControl, resp.GetCache().GetCacheControl())
	str("vary", e.Vary, headerValue(resp, "Vary"))
	str("rule_id", e.RuleID, resp.GetRuleId())
	return diffs
}

func headerValue(resp *redirectv1.DecideResponse, name string) string {
	var values []string
	for _, h := range resp.GetHeaders() {
		if strings.EqualFold(h.GetName(), name) {
			values = append(values, h.GetValue())
		}
	}
	return strings.Join(values, ", ")
}

// caseRequest is a case's request as written.
type caseRequest struct {
	Method   string            `yaml:"method"`
	URL      string            `yaml:"url"`
	Scheme   string            `yaml:"scheme"`
	Host     string            `yaml:"host"`
	Path     string            `yaml:"path"`
	Intent   string            `yaml:"intent"`
	Protocol string            `yaml:"protocol"`
	Headers  map[string]string `yaml:"headers"`
}

// parseCases reads a cases file strictly: an unknown field, a value of the
// wrong type, a missing name or a request without url or path is an error
// naming file and line. Every problem is reported, not only the first.
func parseCases(file string, data []byte) ([]testCase, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if len(doc.Content) == 0 {
		return nil, fmt.Errorf("%s: no cases; want a YAML list of {name, request, expect}", file)
	}
	list := doc.Content[0]
	if list.Kind != yaml.SequenceNode {
		return nil, fmt.Errorf("%s:%d: want a YAML list of cases ({name, request, expect}), got a %s", file, list.Line, kindName(list))
	}
	p := caseParser{file: file}
	var cases []testCase
	names := map[string]int{}
	for i, n := range list.Content {
		where := fmt.Sprintf("cases[%d]", i)
		c, ok := p.parseCase(n, where)
		if !ok {
			continue
		}
		if first, dup := names[c.name]; dup {
			p.errorf(n, "%s: name %q is already used at line %d; names must be unique", where, c.name, first)
			continue
		}
		names[c.name] = c.line
		cases = append(cases, c)
	}
	if len(p.errs) > 0 {
		sort.SliceStable(p.errs, func(i, j int) bool { return p.errs[i].line < p.errs[j].line })
		msgs := make([]string, len(p.errs))
		for i, e := range p.errs {
			msgs[i] = e.msg
		}
		return nil, errors.New(strings.Join(msgs, "\n"))
	}
	if len(cases) == 0 {
		return nil, fmt.Errorf("%s: no cases; want a YAML list of {name, request, expect}", file)
	}
	return cases, nil
}

// caseParser collects located errors while walking a cases file.
type caseParser struct {
	file string
	errs []located
}

// located is one error and its line, so errors print in file order.
type located struct {
	line int
	msg  string
}

func (p *caseParser) errorf(n *yaml.Node, format string, args ...any) {
	p.errs = append(p.errs, located{n.Line, fmt.Sprintf("%s:%d: ", p.file, n.Line) + fmt.Sprintf(format, args...)})
}

// fields decodes mapping n into the targets by key; unknown and repeated
// keys and values of the wrong type are located errors.
func (p *caseParser) fields(n *yaml.Node, where string, targets map[string]any) bool {
	if n.Kind != yaml.MappingNode {
		p.errorf(n, "%s: want a mapping with %s, got a %s", where, accepted(targets), kindName(n))
		return false
	}
	ok := true
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, value := n.Content[i], n.Content[i+1]
		target, known := targets[key.Value]
		switch {
		case !known:
			p.errorf(key, "%s: unknown field %q; accepted: %s", where, key.Value, accepted(targets))
			ok = false
		case seen[key.Value]:
			p.errorf(key, "%s.%s: given twice", where, key.Value)
			ok = false
		default:
			if err := value.Decode(target); err != nil {
				p.errorf(value, "%s.%s: %s", where, key.Value, typeProblem(err))
				ok = false
			}
		}
		seen[key.Value] = true
	}
	return ok
}

func (p *caseParser) parseCase(n *yaml.Node, where string) (testCase, bool) {
	var (
		c          = testCase{line: n.Line}
		reqN, expN yaml.Node
	)
	if n.Kind != yaml.MappingNode {
		p.errorf(n, "%s: want a mapping with name, request and expect, got a %s", where, kindName(n))
		return c, false
	}
	// Known fields are decoded even when others are wrong, so one run
	// reports every mistake of the case.
	ok := p.fields(n, where, map[string]any{"name": &c.name, "request": &reqN, "expect": &expN})
	if c.name == "" {
		p.errorf(n, "%s: name is required", where)
		ok = false
	} else {
		where = fmt.Sprintf("%s (%s)", where, c.name)
	}
	if reqN.Kind == 0 {
		p.errorf(n, "%s: request is required", where)
		return c, false
	}
	if expN.Kind == 0 {
		p.errorf(n, "%s: expect is required", where)
		return c, false
	}
	var r caseRequest
	if !p.fields(&reqN, where+".request", map[string]any{
		"method": &r.Method, "url": &r.URL, "scheme": &r.Scheme, "host": &r.Host, "path": &r.Path,
		"intent": &r.Intent, "protocol": &r.Protocol, "headers": &r.Headers,
	}) {
		ok = false
	} else if c.request = p.request(&reqN, where+".request", &r); c.request == nil {
		ok = false
	}
	e := &c.expect
	if !p.fields(&expN, where+".expect", map[string]any{
		"redirect": &e.Redirect, "status": &e.Status, "location": &e.Location,
		"follow_up_method": &e.FollowUpMethod, "follow_up_keeps_body": &e.FollowUpKeepsBody,
		"cache_control": &e.CacheControl, "vary": &e.Vary, "rule_id": &e.RuleID, "error": &e.Error,
	}) {
		return c, false
	}
	if len(expN.Content) == 0 {
		p.errorf(&expN, "%s.expect: empty; give at least one of redirect, status, location, follow_up_method, cache_control, rule_id, error", where)
		ok = false
	}
	details := e.Status != nil || e.Location != nil || e.FollowUpMethod != nil || e.FollowUpKeepsBody != nil ||
		e.CacheControl != nil || e.Vary != nil || e.RuleID != nil
	if e.Redirect != nil && !*e.Redirect && details {
		p.errorf(&expN, "%s.expect: redirect: false cannot go with status, location or other redirect fields", where)
		ok = false
	}
	if e.Error != nil && (details || e.Redirect != nil) {
		p.errorf(&expN, "%s.expect: error expects the request to be rejected; it cannot go with other fields", where)
		ok = false
	}
	return c, ok
}

// request turns a case's request into a DecideRequest: url, or path with
// optional host and scheme; method defaults to GET.
func (p *caseParser) request(n *yaml.Node, where string, r *caseRequest) *redirectv1.DecideRequest {
	method := r.Method
	if method == "" {
		method = "GET"
	}
	var req *redirectv1.DecideRequest
	switch {
	case r.URL != "" && (r.Path != "" || r.Host != "" || r.Scheme != ""):
		p.errorf(n, "%s: give url, or path with optional host and scheme, not both", where)
		return nil
	case r.URL != "":
		var err error
		if req, err = client.RequestFromURL(method, r.URL); err != nil {
			p.errorf(n, "%s.%v", where, err)
			return nil
		}
	case r.Path != "":
		req = &redirectv1.DecideRequest{Method: method, Scheme: r.Scheme, Host: r.Host, Path: r.Path}
	default:
		p.errorf(n, "%s: url or path is required", where)
		return nil
	}
	intent, err := intentFlag(r.Intent)
	if err != nil {
		p.errorf(n, "%s.intent: %v", where, err)
		return nil
	}
	req.Intent = intent
	req.Protocol = r.Protocol
	req.Headers = r.Headers
	return req
}

func accepted(targets map[string]any) string {
	names := make([]string, 0, len(targets))
	for n := range targets {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	case yaml.ScalarNode:
		return fmt.Sprintf("scalar %q", n.Value)
	}
	return "value of another kind"
}

// typeProblem shortens yaml's "line N: cannot unmarshal !!str `x` into
// int32" to the part after the line, which errorf already gives.
func typeProblem(err error) string {
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg := te.Errors[0]
		if _, rest, found := strings.Cut(msg, ": "); found && strings.HasPrefix(msg, "line ") {
			msg = rest
		}
		return msg
	}
	return err.Error()
}
