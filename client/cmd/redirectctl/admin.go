package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/redirectd/redirectd/decision"
	redirectv1 "github.com/redirectd/redirectd/proto/redirect/v1"
)

// The admin commands (get, list, put, delete, apply, validate, stats) talk
// to redirectd's RuleService on the admin listener. Rules go in and come
// out as rules files, so `redirectctl list -o yaml > rules.yaml` and
// `redirectctl apply rules.yaml` round-trip.

// defaultAdmin is the daemon's default admin listener.
const defaultAdmin = "127.0.0.1:50052"

// adminTokenEnv carries the bearer token when --token is not given, so it
// does not show in ps or shell history.
const adminTokenEnv = "REDIRECTD_ADMIN_TOKEN"

// adminConn is the admin commands' connection: the shared connection
// flags (TLS, mTLS, timeout) with --admin as the address, plus the token.
type adminConn struct {
	conn  connection
	token string
}

func (a *adminConn) register(fs *flag.FlagSet) {
	a.conn.register(fs, defaultAdmin)
	fs.StringVar(&a.conn.addr, "admin", defaultAdmin, "redirectd admin gRPC `address` (host:port); same as --server")
	fs.StringVar(&a.token, "token", "", "bearer `token` of the admin API (default: $"+adminTokenEnv+")")
}

// dial connects to RuleService and returns a context carrying the token
// and the call deadline.
func (a *adminConn) dial(ctx context.Context) (redirectv1.RuleServiceClient, context.Context, func(), error) {
	creds, err := a.conn.grpcCredentials()
	if err != nil {
		return nil, nil, nil, err
	}
	// A whole rule set (apply, list pages, stats of every rule) can be far
	// over gRPC's 4 MB default; the server accepts up to 512 MB.
	const most = 512 << 20
	cc, err := grpc.NewClient(a.conn.addr, grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(most), grpc.MaxCallSendMsgSize(most)))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("admin address %q: %w", a.conn.addr, err)
	}
	token := a.token
	if token == "" {
		token = os.Getenv(adminTokenEnv)
	}
	if token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	}
	ctx, cancel := context.WithTimeout(ctx, a.conn.timeout)
	return redirectv1.NewRuleServiceClient(cc), ctx, func() { cancel(); cc.Close() }, nil
}

// describe turns a failed admin call into words for a person.
func (a *adminConn) describe(err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	switch st.Code() {
	case codes.Unavailable:
		return fmt.Errorf("redirectd admin API at %s is unavailable (is redirectd running with --admin-addr? plaintext or TLS as it expects?): %s", a.conn.addr, st.Message())
	}
	return fmt.Errorf("%s: %s", st.Code(), st.Message())
}

// adminCall parses an admin command's flags, wants exactly nargs
// positional arguments (any number when nargs < 0), connects to
// RuleService and runs call; nothing is sent before call makes a request.
func adminCall(ctx context.Context, name, usage string, nargs int, args []string, stderr io.Writer,
	extra func(fs *flag.FlagSet),
	call func(ctx context.Context, a *adminConn, rs redirectv1.RuleServiceClient, pos []string) error,
) error {
	fs := newFlagSet(name, "[--admin ADDR] [--token T] [flags] "+usage, stderr)
	a := &adminConn{}
	a.register(fs)
	if extra != nil {
		extra(fs)
	}
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if nargs >= 0 && len(pos) != nargs {
		return usagef("want %s; got %d arguments", usage, len(pos))
	}
	rs, ctx, done, err := a.dial(ctx)
	if err != nil {
		return err
	}
	defer done()
	return call(ctx, a, rs, pos)
}

// precondition is the optimistic concurrency check of the commands that
// change rules: --expected-version and --expected-hash (README "Admin
// API"; the hash survives a restart of a file-backed daemon, the number
// does not).
type precondition struct {
	version uint64
	hash    string
}

func (p *precondition) register(fs *flag.FlagSet) {
	fs.Uint64Var(&p.version, "expected-version", 0, "refuse unless the serving version is this number (0: any); from `list` or a previous change")
	fs.StringVar(&p.hash, "expected-hash", "", "refuse unless the serving version's hash is this (empty: any); from `list -o yaml` or a previous change")
}

// follow moves the precondition on to v, the version a change made: the
// next change of the same command expects the set this one left, so
// nobody else's change lands between two puts of one file unnoticed.
func (p *precondition) follow(v *redirectv1.Version) {
	if p.version != 0 {
		p.version = v.GetNumber()
	}
	if p.hash != "" {
		p.hash = v.GetHash()
	}
}

func runGet(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return adminCall(ctx, "get", "ID", 1, args, stderr, nil, func(ctx context.Context, a *adminConn, rs redirectv1.RuleServiceClient, pos []string) error {
		resp, err := rs.GetRule(ctx, &redirectv1.GetRuleRequest{Id: pos[0]})
		if err != nil {
			return a.describe(err)
		}
		return printRules(stdout, []*redirectv1.Rule{resp.GetRule()})
	})
}

func runList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var pageSize int
	var output string
	flags := func(fs *flag.FlagSet) {
		fs.IntVar(&pageSize, "page-size", maxPageSize, fmt.Sprintf("rules fetched per call (at most %d); every page is fetched", maxPageSize))
		fs.StringVar(&output, "o", "table", "output: table, or yaml (a rules file that apply reads back)")
	}
	return adminCall(ctx, "list", "", 0, args, stderr, flags, func(ctx context.Context, a *adminConn, rs redirectv1.RuleServiceClient, _ []string) error {
		if output != "table" && output != "yaml" {
			return usagef("-o %q: accepted: table, yaml", output)
		}
		rules, version, err := a.listRules(ctx, rs, pageSize)
		if err != nil {
			return err
		}
		if output == "yaml" {
			fmt.Fprintf(stdout, "# redirectd rules version %d (%s)\n", version.GetNumber(), version.GetHash())
			return printRules(stdout, rules)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tHOST\tPATH\tMATCH\tTO\tSTATUS")
		for _, r := range rules {
			host := r.GetHost()
			if host == "" {
				host = "*"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.GetId(), host, r.GetPath(), r.GetMatch(), r.GetTo(), ruleStatus(r))
		}
		tw.Flush()
		fmt.Fprintf(stdout, "%d rules, version %d\n", len(rules), version.GetNumber())
		return nil
	})
}

// maxPageSize is the most rules ListRules answers in one page.
const maxPageSize = 1000

// listRules reads every page of the serving rule set, all of one version.
func (a *adminConn) listRules(ctx context.Context, rs redirectv1.RuleServiceClient, pageSize int) ([]*redirectv1.Rule, *redirectv1.Version, error) {
	var rules []*redirectv1.Rule
	var version *redirectv1.Version
	token := ""
	for {
		resp, err := rs.ListRules(ctx, &redirectv1.ListRulesRequest{PageSize: int32(pageSize), PageToken: token})
		if err != nil {
			return nil, nil, a.describe(err)
		}
		// Pages read from different versions would mix two rule sets.
		if version != nil && resp.GetVersion().GetNumber() != version.GetNumber() {
			return nil, nil, changedWhileListing(version, resp.GetVersion())
		}
		version = resp.GetVersion()
		rules = append(rules, resp.GetRules()...)
		if token = resp.GetNextPageToken(); token == "" {
			return rules, version, nil
		}
	}
}

// ruleStatus is the pinned status, or the intent that chooses one.
func ruleStatus(r *redirectv1.Rule) string {
	if r.GetStatus() != 0 {
		return fmt.Sprint(r.GetStatus())
	}
	if r.GetIntent() != "" {
		return r.GetIntent()
	}
	return "temporary"
}

func runPut(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var pre precondition
	return adminCall(ctx, "put", "FILE|-", 1, args, stderr, pre.register, func(ctx context.Context, a *adminConn, rs redirectv1.RuleServiceClient, pos []string) error {
		rules, err := readRulesArg(pos[0])
		if err != nil {
			return err
		}
		for _, r := range rules {
			resp, err := rs.PutRule(ctx, &redirectv1.PutRuleRequest{Rule: r, ExpectedVersion: pre.version, ExpectedHash: pre.hash})
			if err != nil {
				return fmt.Errorf("put %s: %w", r.GetId(), a.describe(err))
			}
			printWarnings(stderr, resp.GetWarnings())
			fmt.Fprintf(stdout, "put %s: version %d (%s)\n", r.GetId(), resp.GetVersion().GetNumber(), resp.GetVersion().GetHash())
			pre.follow(resp.GetVersion())
		}
		return nil
	})
}

func runDelete(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var pre precondition
	return adminCall(ctx, "delete", "ID", 1, args, stderr, pre.register, func(ctx context.Context, a *adminConn, rs redirectv1.RuleServiceClient, pos []string) error {
		resp, err := rs.DeleteRule(ctx, &redirectv1.DeleteRuleRequest{Id: pos[0], ExpectedVersion: pre.version, ExpectedHash: pre.hash})
		if err != nil {
			return a.describe(err)
		}
		fmt.Fprintf(stdout, "deleted %s: version %d (%s)\n", pos[0], resp.GetVersion().GetNumber(), resp.GetVersion().GetHash())
		return nil
	})
}

func runApply(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var pre precondition
	return adminCall(ctx, "apply", "FILE|-", 1, args, stderr, pre.register, func(ctx context.Context, a *adminConn, rs redirectv1.RuleServiceClient, pos []string) error {
		rules, err := readRulesArg(pos[0])
		if err != nil {
			return err
		}
		resp, err := rs.ApplyRules(ctx, &redirectv1.ApplyRulesRequest{Rules: rules, ExpectedVersion: pre.version, ExpectedHash: pre.hash})
		if err != nil {
			return a.describe(err)
		}
		printWarnings(stderr, resp.GetWarnings())
		fmt.Fprintf(stdout, "applied %d rules: version %d (%s)\n", len(rules), resp.GetVersion().GetNumber(), resp.GetVersion().GetHash())
		return nil
	})
}

func runValidate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return adminCall(ctx, "validate", "FILE|-", 1, args, stderr, nil, func(ctx context.Context, a *adminConn, rs redirectv1.RuleServiceClient, pos []string) error {
		name, data, err := readArg(pos[0])
		if err != nil {
			return err
		}
		resp, err := rs.ValidateRules(ctx, &redirectv1.ValidateRulesRequest{File: data, FileName: name})
		if err != nil {
			return a.describe(err)
		}
		for _, p := range resp.GetProblems() {
			fmt.Fprintln(stdout, redirectv1.ProblemFromProto(p).String())
		}
		if !resp.GetValid() {
			fmt.Fprintf(stdout, "%s: rejected by the server\n", name)
			return errFailed
		}
		fmt.Fprintf(stdout, "%s: ok\n", name)
		return nil
	})
}

func runStats(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var unused, expired bool
	var now string
	flags := func(fs *flag.FlagSet) {
		fs.BoolVar(&unused, "unused", false, "only rules that never matched since the daemon started (candidates for removal)")
		fs.BoolVar(&expired, "expired", false, "only rules whose active_until has passed: they never match again (candidates for removal); lists every rule to find them")
		fs.StringVar(&now, "now", "", "with --expired: the time to judge by, RFC 3339 (default: the current time)")
	}
	return adminCall(ctx, "stats", "[ID...]", -1, args, stderr, flags, func(ctx context.Context, a *adminConn, rs redirectv1.RuleServiceClient, ids []string) error {
		clock, err := parseNow(now)
		if err != nil {
			return err
		}
		// ended holds, with --expired, when each rule listed ended.
		var ended map[string]time.Time
		var version *redirectv1.Version
		total := 0
		if expired {
			if len(ids) > 0 {
				return usagef("--expired finds the rules itself; give no IDs")
			}
			var pbs []*redirectv1.Rule
			if pbs, version, err = a.listRules(ctx, rs, maxPageSize); err != nil {
				return err
			}
			rules, err := serverRules(pbs)
			if err != nil {
				return err
			}
			ended, total = map[string]time.Time{}, len(rules)
			at := clock()
			for _, r := range rules {
				if r.Ended(at) {
					ended[r.ID] = r.ActiveUntil
					ids = append(ids, r.ID)
				}
			}
		}
		var stats []*redirectv1.RuleStats
		if !expired || len(ids) > 0 {
			resp, err := rs.GetRuleStats(ctx, &redirectv1.GetRuleStatsRequest{Ids: ids})
			if err != nil {
				return a.describe(err)
			}
			if expired && resp.GetVersion().GetNumber() != version.GetNumber() {
				// Which rules had ended was read from the other set.
				return changedWhileListing(version, resp.GetVersion())
			}
			stats, version = resp.GetStats(), resp.GetVersion()
		}
		if !expired {
			total = len(stats)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		if expired {
			fmt.Fprintln(tw, "RULE\tHITS\tLAST HIT\tENDED")
		} else {
			fmt.Fprintln(tw, "RULE\tHITS\tLAST HIT")
		}
		shown := 0
		for _, s := range stats {
			if unused && s.GetHits() > 0 {
				continue
			}
			last := "never"
			if s.GetLastHit() != nil {
				last = s.GetLastHit().AsTime().Format(time.RFC3339)
			}
			if expired {
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", s.GetRuleId(), s.GetHits(), last, ended[s.GetRuleId()].Format(time.RFC3339))
			} else {
				fmt.Fprintf(tw, "%s\t%d\t%s\n", s.GetRuleId(), s.GetHits(), last)
			}
			shown++
		}
		tw.Flush()
		what := "rules"
		if expired {
			what = "rules have ended"
		}
		fmt.Fprintf(stdout, "%d of %d %s, version %d; counts since the daemon started\n", shown, total, what, version.GetNumber())
		return nil
	})
}

// readArg reads a file, or stdin for "-".
func readArg(arg string) (name string, data []byte, err error) {
	if arg == "-" {
		data, err = io.ReadAll(os.Stdin)
		return "stdin", data, err
	}
	data, err = os.ReadFile(arg)
	return arg, data, err
}

// readRulesArg reads a rules file (or stdin) and converts it for the API;
// problems are reported here with file:line, before anything is sent.
func readRulesArg(arg string) ([]*redirectv1.Rule, error) {
	name, data, err := readArg(arg)
	if err != nil {
		return nil, err
	}
	rules, err := decision.ParseRules(name, data)
	if err != nil {
		return nil, err
	}
	return redirectv1.RulesToProto(rules), nil
}

// changedWhileListing is the error of a listing that read two versions.
func changedWhileListing(first, then *redirectv1.Version) error {
	return fmt.Errorf("the rules changed while listing (version %d, then %d); run the command again", first.GetNumber(), then.GetNumber())
}

// serverRules converts the rules a server sent.
func serverRules(pbs []*redirectv1.Rule) ([]decision.Rule, error) {
	rules, err := redirectv1.RulesFromProto(pbs)
	if err != nil {
		return nil, fmt.Errorf("server answered a rule this redirectctl cannot read (a newer server?): %w", err)
	}
	return rules, nil
}

// printRules writes rules as a rules file.
func printRules(w io.Writer, pbs []*redirectv1.Rule) error {
	rules, err := serverRules(pbs)
	if err != nil {
		return err
	}
	_, err = w.Write(decision.MarshalRules(rules))
	return err
}

func printWarnings(w io.Writer, ps []*redirectv1.Problem) {
	for _, p := range ps {
		fmt.Fprintln(w, redirectv1.ProblemFromProto(p).String())
	}
}
