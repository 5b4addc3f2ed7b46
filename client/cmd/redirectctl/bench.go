package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"google.golang.org/grpc"

	"github.com/redirectd/redirectd/client/loadgen"
	"github.com/redirectd/redirectd/decision/rulegen"
)

// syntheticRequests is how many distinct requests bench sends when no
// request stream file is given.
const syntheticRequests = 10000

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench", "[--server ADDR] [--rpc decide|check|health] [--rate R] [--concurrency C] [--conns K] [--duration D] [--requests FILE] [--json]", stderr)
	var conn connection
	conn.register(fs, defaultServer)
	fs.StringVar(&conn.addr, "target", defaultServer, "same as --server")
	rpc := fs.String("rpc", "decide", "call to load: decide (DecisionService.Decide), check (Envoy ext_authz Authorization.Check) or health (grpc.health.v1 Check: the no-op floor of the same server)")
	rate := fs.Float64("rate", 0, "calls per second, scheduled open loop; 0 runs closed loop (each caller sends as soon as its last call returns)")
	concurrency := fs.Int("concurrency", 50, "callers: at a fixed rate, the most calls in flight")
	conns := fs.Int("conns", 4, "gRPC connections, used round-robin")
	duration := fs.Duration("duration", 10*time.Second, "measured duration (Ctrl-C ends the run early and still reports)")
	warmup := fs.Duration("warmup", 2*time.Second, "load sent before measuring, not counted")
	requestsFile := fs.String("requests", "", "request stream `file`, one JSON object per line (redirectctl gen --requests-out writes one); default: synthetic misses")
	asJSON := fs.Bool("json", false, "print the result as JSON instead of a table")
	quiet := fs.Bool("quiet", false, "no progress line every second on stderr")
	if rest, err := parseArgs(fs, args); err != nil {
		return err
	} else if len(rest) > 0 {
		return usagef("unexpected argument %q", rest[0])
	}
	switch {
	case *rpc != string(loadgen.RPCDecide) && *rpc != string(loadgen.RPCCheck) && *rpc != string(loadgen.RPCHealth):
		return usagef("--rpc %q: want decide, check or health", *rpc)
	case *rate < 0:
		return usagef("--rate %v: want 0 (closed loop) or a positive rate", *rate)
	case *concurrency < 1 || *conns < 1:
		return usagef("--concurrency and --conns want at least 1")
	case *duration <= 0 || *warmup < 0:
		return usagef("--duration wants a positive duration and --warmup zero or more")
	}

	reqs := loadgen.SyntheticRequests(syntheticRequests)
	if *requestsFile != "" {
		f, err := os.Open(*requestsFile)
		if err != nil {
			return err
		}
		reqs, err = rulegen.ReadRequests(*requestsFile, f)
		f.Close()
		if err != nil {
			return err
		}
	}
	creds, err := conn.grpcCredentials()
	if err != nil {
		return err
	}
	clientConns := make([]grpc.ClientConnInterface, *conns)
	for i := range clientConns {
		// One ClientConn is one HTTP/2 connection: K of them spread the load
		// over K server transports, as K Envoy workers would.
		cc, err := grpc.NewClient(conn.addr, grpc.WithTransportCredentials(creds))
		if err != nil {
			return fmt.Errorf("--server %q: %w", conn.addr, err)
		}
		defer cc.Close()
		cc.Connect()
		clientConns[i] = cc
	}

	cfg := loadgen.Config{
		RPC: loadgen.RPC(*rpc), Rate: *rate, Concurrency: *concurrency,
		Warmup: *warmup, Duration: *duration, Timeout: conn.timeout, Requests: reqs,
	}
	if !*quiet {
		cfg.Progress = stderr
	}
	res, err := loadgen.Run(ctx, clientConns, cfg)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			return err
		}
	} else if err := loadgen.WriteTable(stdout, res); err != nil {
		return err
	}
	// A failed call, or one the schedule wanted but the generator never
	// sent, fails the run, so a script (or CI) can assert "no request failed
	// during the reload" with the exit status alone. After Ctrl-C the calls
	// still queued behind are not the server's failures.
	if res.Failed() > 0 || (res.Unsent > 0 && !res.Interrupted) {
		fmt.Fprintf(stderr, "redirectctl bench: %d calls failed, %d never sent\n", res.Failed(), res.Unsent)
		return errFailed
	}
	return nil
}
