// Command redirectctl asks redirectd for decisions, checks rules files and
// runs rule test cases; `redirectctl help` lists its commands.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/redirectd/redirectd/client"
	"github.com/redirectd/redirectd/decision"
	redirectv1 "github.com/redirectd/redirectd/proto/redirect/v1"
)

// command is one redirectctl subcommand. run gets the arguments after the
// command's name; it reports failures by returning an error (printed to
// stderr, exit 1), usageError (exit 2) or errFailed (exit 1, already
// reported on stdout).
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

// commands is the table of subcommands, in the order `help` lists them.
// Adding a command is one line here and a file with its run function.
var commands = []command{
	{"decide", "ask for the decision on one request, from a server or a rules file", runDecide},
	{"lint", "check rules files: every error and warning with file:line", runLint},
	{"test", "run a file of request → expected answer cases against rules (a CI gate)", runTest},
	{"diff", "replay a request stream or access log against two rule sets and show every answer that changes", runDiff},
	{"get", "print one rule of a running redirectd (admin API) as a rules file", runGet},
	{"list", "list the rules of a running redirectd, all pages (admin API)", runList},
	{"put", "create or replace the rules of a rules file, one by one (admin API)", runPut},
	{"delete", "delete one rule (admin API)", runDelete},
	{"apply", "replace the whole rule set with a rules file, atomically (admin API)", runApply},
	{"validate", "check a rules file with the server's own options, without applying it (admin API)", runValidate},
	{"stats", "hit counts and last hit per rule; --unused finds dead rules (admin API)", runStats},
	{"bench", "load a server with Decide or Envoy Check calls: throughput, p50..p99.9 (open loop)", runBench},
	{"import", "convert a Netlify _redirects file or a Cloudflare Bulk Redirects CSV into a rules file", runImport},
	{"export", "write a rules file as a Netlify _redirects file, a Cloudflare Bulk Redirects CSV, or another rules-file format", runExport},
	{"envoy-config", "print the ext_authz allowed_headers that Envoy needs to send for a rules file", runEnvoyConfig},
	{"gen", "generate a realistic rule set and a request stream for benchmarks and load tests", runGen},
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// errFailed says the command has already reported what failed (a lint
// error, a failed test case) and only the exit status remains to set.
var errFailed = errors.New("failed")

// usageError is a mistake in the command line; it exits 2, as flag does.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// inputError is a command's input that could not be used (an unreadable
// file, a log with no request in it); it exits 2 like a usage mistake, for
// commands whose exit 1 means a finding (diff: too many changes).
type inputError struct{ err error }

func (e inputError) Error() string { return e.err.Error() }
func (e inputError) Unwrap() error { return e.err }

// run is main without the process: it returns the exit status, so tests
// call it with buffers.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		printHelp(stderr)
		return 2
	}
	name := args[0]
	switch name {
	case "help", "-h", "-help", "--help":
		if len(args) > 1 && name == "help" {
			// "help decide" prints decide's own usage.
			return run(ctx, []string{args[1], "-h"}, stdout, stderr)
		}
		printHelp(stdout)
		return 0
	}
	for _, c := range commands {
		if c.name != name {
			continue
		}
		err := c.run(ctx, args[1:], stdout, stderr)
		var usage usageError
		var input inputError
		switch {
		case err == nil, errors.Is(err, flag.ErrHelp):
			return 0
		case errors.Is(err, errFailed):
			return 1
		case errors.As(err, &usage):
			fmt.Fprintf(stderr, "redirectctl %s: %s\nrun 'redirectctl help %s' for usage\n", name, usage.msg, name)
			return 2
		case errors.As(err, &input):
			fmt.Fprintf(stderr, "redirectctl %s: %v\n", name, input.err)
			return 2
		default:
			fmt.Fprintf(stderr, "redirectctl %s: %v\n", name, err)
			return 1
		}
	}
	fmt.Fprintf(stderr, "redirectctl: unknown command %q\n", name)
	printHelp(stderr)
	return 2
}

func printHelp(w io.Writer) {
	fmt.Fprintln(w, "redirectctl talks to redirectd and checks rules files.")
	fmt.Fprintln(w, "\nusage: redirectctl COMMAND [flags] [args]\n\ncommands:")
	width := 0
	for _, c := range commands {
		width = max(width, len(c.name))
	}
	for _, c := range commands {
		fmt.Fprintf(w, "  %-*s  %s\n", width, c.name, c.summary)
	}
	fmt.Fprintln(w, "\nrun 'redirectctl help COMMAND' for a command's flags")
}

// newFlagSet returns a FlagSet for a command whose -h prints
// "usage: redirectctl NAME ARGS" and the flags.
func newFlagSet(name, args string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: redirectctl %s %s\n", name, args)
		fs.PrintDefaults()
	}
	return fs
}

// parseArgs parses flags that may come before, between or after the
// positional arguments ("test cases.yaml --rules rules.yaml"), which the
// flag package alone stops at; "--" ends the flags.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageError{err.Error()}
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return positional, nil
		}
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			return append(positional, rest...), nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

// connection is how a command reaches a redirectd listener: the address
// and its transport security. Plaintext is chosen for a loopback address
// (the daemon's default listener), TLS with the system roots otherwise;
// --insecure and --ca/--cert/--key override that.
type connection struct {
	addr       string
	insecure   bool
	ca         string
	cert, key  string
	serverName string
	timeout    time.Duration
	fs         *flag.FlagSet
}

// register adds the connection flags to fs; defaultAddr is "" when the
// command has another backend (--rules) and needs --server to use one.
func (c *connection) register(fs *flag.FlagSet, defaultAddr string) {
	c.fs = fs
	fs.StringVar(&c.addr, "server", defaultAddr, "redirectd gRPC `address` (host:port)")
	fs.BoolVar(&c.insecure, "insecure", false, "plaintext, no TLS (default: true for a loopback address such as localhost:50051)")
	fs.StringVar(&c.ca, "ca", "", "PEM `file` of CA certificates to verify the server with (implies TLS)")
	fs.StringVar(&c.cert, "cert", "", "PEM client certificate `file` for mTLS (with --key)")
	fs.StringVar(&c.key, "key", "", "PEM client key `file` for mTLS (with --cert)")
	fs.StringVar(&c.serverName, "server-name", "", "TLS server `name` to verify, when it differs from the address")
	fs.DurationVar(&c.timeout, "timeout", 10*time.Second, "deadline of each call")
}

// set reports whether the flag called name was given on the command line.
func (c *connection) set(name string) bool {
	found := false
	c.fs.Visit(func(f *flag.Flag) { found = found || f.Name == name })
	return found
}

// tlsConfig is the transport security the flags choose: nil for
// plaintext, else the TLS configuration (CA, client certificate, name).
// Every command that dials redirectd goes through it.
func (c *connection) tlsConfig() (*tls.Config, error) {
	wantsTLS := c.ca != "" || c.cert != "" || c.key != "" || c.serverName != ""
	plaintext := c.insecure
	if !c.set("insecure") {
		plaintext = isLoopback(c.addr) && !wantsTLS
	}
	if plaintext {
		if wantsTLS {
			return nil, usagef("--insecure cannot be combined with --ca, --cert, --key or --server-name")
		}
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.serverName}
	if c.ca != "" {
		pem, err := os.ReadFile(c.ca)
		if err != nil {
			return nil, fmt.Errorf("--ca: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--ca %s: no PEM certificate found", c.ca)
		}
	}
	if (c.cert == "") != (c.key == "") {
		return nil, usagef("--cert and --key go together")
	}
	if c.cert != "" {
		pair, err := tls.LoadX509KeyPair(c.cert, c.key)
		if err != nil {
			return nil, fmt.Errorf("--cert/--key: %w", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

// grpcCredentials is tlsConfig for a command that builds its own
// grpc.ClientConn (the admin API, the load generator).
func (c *connection) grpcCredentials() (credentials.TransportCredentials, error) {
	cfg, err := c.tlsConfig()
	if err != nil {
		return nil, err
	}
	if cfg == nil {
		return insecure.NewCredentials(), nil
	}
	return credentials.NewTLS(cfg), nil
}

// clientOptions turns the flags into client options.
func (c *connection) clientOptions() ([]client.Option, error) {
	cfg, err := c.tlsConfig()
	if err != nil {
		return nil, err
	}
	opts := []client.Option{client.WithTimeout(c.timeout)}
	if cfg == nil {
		return append(opts, client.WithInsecure()), nil
	}
	return append(opts, client.WithTLS(cfg)), nil
}

// dial returns a Client for the flags.
func (c *connection) dial() (*client.Client, error) {
	opts, err := c.clientOptions()
	if err != nil {
		return nil, err
	}
	return client.New(c.addr, opts...)
}

// isLoopback reports whether addr ("host:port") names this machine.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// engineOptions are the daemon's options for the engine a command runs in
// its own process (decide and test with --rules, diff), and the clock.
type engineOptions struct {
	permanentMaxAge time.Duration
	maxCacheAge     time.Duration
	flattenChains   bool
	now             string
}

// register adds the flags; when is what makes them apply ("with --rules: ").
func (o *engineOptions) register(fs *flag.FlagSet, when string) {
	fs.DurationVar(&o.permanentMaxAge, "permanent-max-age", decision.DefaultPermanentMaxAge, when+"max-age of 301/308 answers whose rule sets none (as the daemon's flag)")
	fs.DurationVar(&o.maxCacheAge, "max-cache-age", decision.MaxAdvisedCacheAge, when+"refuse rules whose cache_max_age is longer (as the daemon's flag)")
	fs.BoolVar(&o.flattenChains, "flatten-chains", false, when+"answer A→C for a chain A→B→C (as the daemon's flag)")
	fs.StringVar(&o.now, "now", "", when+"the clock, RFC 3339 (default: the current time); makes time windows, staged permanence and the cache ramp repeatable")
}

// clock is --now, or the current time.
func (o *engineOptions) clock() (func() time.Time, error) { return parseNow(o.now) }

// options are the daemon's options these flags stand for.
func (o *engineOptions) options() decision.Options {
	return decision.Options{PermanentMaxAge: o.permanentMaxAge, MaxCacheAge: o.maxCacheAge, FlattenChains: o.flattenChains}
}

// fileIndex builds a rules file into the index the daemon would serve
// from it, printing its warnings; errors (every problem, with file:line)
// reject it.
func (o *engineOptions) fileIndex(file string, stderr io.Writer) (*decision.Index, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	ix, warnings, err := decision.LoadRules(file, data, o.options())
	if err != nil {
		return nil, err
	}
	for _, w := range warnings {
		fmt.Fprintln(stderr, w.String())
	}
	return ix, nil
}

// offlineRules are the flags of a command that can answer from a rules file
// with the same engine the daemon uses, and the daemon's options for it.
type offlineRules struct {
	file string
	engineOptions
}

func (o *offlineRules) register(fs *flag.FlagSet) {
	fs.StringVar(&o.file, "rules", "", "answer offline from this rules `file` instead of a server")
	o.engineOptions.register(fs, "with --rules: ")
}

// parseNow reads a --now flag: the clock is fixed at that time, or is the
// current time when the flag is empty.
func parseNow(flagValue string) (func() time.Time, error) {
	if flagValue == "" {
		return time.Now, nil
	}
	t, err := time.Parse(time.RFC3339, flagValue)
	if err != nil {
		return nil, usagef("--now %q: want RFC 3339, e.g. 2026-11-01T00:00:00Z", flagValue)
	}
	return func() time.Time { return t }, nil
}

// load builds the rules file (fileIndex) and answers from it.
func (o *offlineRules) load(stderr io.Writer) (*client.Client, error) {
	clock, err := o.clock()
	if err != nil {
		return nil, err
	}
	ix, err := o.fileIndex(o.file, stderr)
	if err != nil {
		return nil, err
	}
	// The daemon's DecisionService translation over the decision library
	// the daemon serves, in this process: --rules answers exactly as a
	// daemon serving the file would, without its listeners, metrics or
	// file watching (README "redirectctl").
	svc := redirectv1.NewDecisionService(func(req *decision.Request) (decision.Decision, error) {
		return ix.Decide(req, clock())
	})
	return client.Local(svc), nil
}
