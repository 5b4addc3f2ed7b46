package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/redirectd/redirectd/client"
	"github.com/redirectd/redirectd/decision"
	redirectv1 "github.com/redirectd/redirectd/proto/redirect/v1"
)

// decider is what decide and test ask: a server over the network, or a
// rules file through client.Local. One code path, two backends.
type decider interface {
	Decide(ctx context.Context, req *redirectv1.DecideRequest) (*redirectv1.DecideResponse, error)
	DecideBatch(ctx context.Context, reqs []*redirectv1.DecideRequest) ([]*redirectv1.DecideResult, error)
	Close() error
}

// defaultServer is the daemon's default public listener.
const defaultServer = "localhost:50051"

// backend registers --server/TLS and --rules flags and opens the decider
// they choose: --rules answers offline, otherwise the server is asked.
type backend struct {
	conn    connection
	offline offlineRules
}

func (b *backend) register(fs *flag.FlagSet) {
	b.conn.register(fs, defaultServer)
	b.offline.register(fs)
}

// open returns the decider; rules-file warnings go to stderr.
func (b *backend) open(stderr io.Writer) (decider, error) {
	if b.offline.file == "" {
		return b.conn.dial()
	}
	if b.conn.set("server") {
		return nil, usagef("--server and --rules exclude each other: ask a server or a rules file")
	}
	return b.offline.load(stderr)
}

// describe turns a failed call into words for a person.
func (b *backend) describe(err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	switch st.Code() {
	case codes.InvalidArgument:
		return fmt.Errorf("invalid request: %s", st.Message())
	case codes.Unavailable:
		return fmt.Errorf("redirectd at %s is unavailable (is it running? plaintext or TLS as it expects?): %s", b.conn.addr, st.Message())
	}
	return fmt.Errorf("%s: %s", st.Code(), st.Message())
}

// headerFlags collects repeated -H 'name: value' flags.
type headerFlags map[string]string

func (h headerFlags) String() string { return "" }

func (h headerFlags) Set(v string) error {
	name, value, ok := strings.Cut(v, ":")
	name = strings.TrimSpace(name)
	if !ok || name == "" {
		return fmt.Errorf("want 'name: value', got %q", v)
	}
	name = strings.ToLower(name)
	value = strings.TrimSpace(value)
	// Repeated fields combine into one value as decision.JoinFields says.
	if prev, seen := h[name]; seen {
		value = decision.JoinFields(name, []string{prev, value})
	}
	h[name] = value
	return nil
}

// intentFlag reads the rules-file intent words into the wire enum.
func intentFlag(word string) (redirectv1.Intent, error) {
	if word == "" {
		return redirectv1.Intent_INTENT_UNSPECIFIED, nil
	}
	i, err := decision.ParseIntent(word)
	if err != nil {
		return 0, err
	}
	return redirectv1.IntentToProto(i), nil
}

func runDecide(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("decide", "[--server ADDR | --rules FILE] [flags] METHOD URL", stderr)
	var (
		b        backend
		intent   = fs.String("intent", "", "intent of the request: permanent, temporary or see_other (default: the rule's)")
		protocol = fs.String("protocol", "", "client protocol: HTTP/1.0, HTTP/1.1, HTTP/2 or HTTP/3 (default: HTTP/1.1 or later)")
		explain  = fs.Bool("explain", false, "show the rules considered and why each did or did not apply")
		asJSON   = fs.Bool("json", false, "print the DecideResponse as protobuf JSON")
		headers  = headerFlags{}
	)
	b.register(fs)
	fs.Var(headers, "H", "request header 'name: value' (repeatable)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return usagef("want METHOD URL, e.g. GET https://example.com/docs; got %d arguments", len(pos))
	}
	req, err := client.RequestFromURL(pos[0], pos[1])
	if err != nil {
		return usageError{err.Error()}
	}
	if req.Intent, err = intentFlag(*intent); err != nil {
		return usagef("--intent: %v", err)
	}
	req.Protocol = *protocol
	req.Explain = *explain
	if len(headers) > 0 {
		req.Headers = headers
	}

	d, err := b.open(stderr)
	if err != nil {
		return err
	}
	defer d.Close()
	resp, err := d.Decide(ctx, req)
	if err != nil {
		return b.describe(err)
	}
	if *asJSON {
		return printJSON(stdout, resp)
	}
	printDecision(stdout, req.GetMethod(), resp)
	return nil
}

// printJSON writes m as indented protobuf JSON. protojson varies its
// whitespace on purpose; re-indenting makes the output stable for people
// and scripts that diff it.
func printJSON(w io.Writer, m proto.Message) error {
	out, err := protojson.Marshal(m)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, out, "", "  "); err != nil {
		return err
	}
	buf.WriteByte('\n')
	_, err = buf.WriteTo(w)
	return err
}

// printDecision writes the short human form:
//
//	301 Moved Permanently → https://docs.example.com/x (rule docs-moved)
//	Cache-Control: public, max-age=86400
//	follow-up: GET
func printDecision(w io.Writer, method string, resp *redirectv1.DecideResponse) {
	if !resp.GetRedirect() {
		fmt.Fprintln(w, "no redirect: pass the request on")
	} else {
		fmt.Fprintf(w, "%d %s → %s (rule %s)\n", resp.GetStatusCode(), http.StatusText(int(resp.GetStatusCode())), resp.GetLocation(), resp.GetRuleId())
		for _, h := range resp.GetHeaders() {
			if !strings.EqualFold(h.GetName(), "Location") {
				fmt.Fprintf(w, "%s: %s\n", h.GetName(), h.GetValue())
			}
		}
		fmt.Fprintf(w, "follow-up: %s\n", followUp(method, resp))
	}
	if x := resp.GetExplanation(); x != nil {
		fmt.Fprintf(w, "explain: host %q, path %q\n", x.GetHost(), x.GetPath())
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, c := range x.GetCandidates() {
			mark := "skipped"
			if c.GetApplied() {
				mark = "applied"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", mark, c.GetRuleId(), c.GetScope(), c.GetMatch(), c.GetReason())
		}
		if len(x.GetCandidates()) == 0 {
			fmt.Fprintln(tw, "  no rule was a candidate")
		}
		tw.Flush()
	}
}

// followUp says what a browser does next (Fetch, HTTP-redirect fetch): the
// method, and for a method that has a body whether it is sent again.
func followUp(method string, resp *redirectv1.DecideResponse) string {
	next := resp.GetFollowUpMethod()
	switch {
	case !strings.EqualFold(method, next):
		return next + ", body dropped"
	case next == http.MethodGet || next == http.MethodHead:
		return next
	case resp.GetFollowUpKeepsBody():
		return next + ", body re-sent"
	}
	return next + ", body dropped"
}
