// Command redirectd is the redirect decision daemon: gRPC on :50051, HTTP
// (/healthz, /readyz, /metrics, forward-auth) on :8080, admin gRPC on
// 127.0.0.1:50052. With no flags it serves a built-in example rule set.
// Every flag has a REDIRECTD_* environment equivalent; see -h.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/redirectd/redirectd/server"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := realMain(ctx, os.Args[1:])
	stop()
	switch {
	case errors.Is(err, flag.ErrHelp):
	case err != nil:
		// Plain text on stderr: start-up errors (a rules file's problems,
		// a busy port) are read by people, one problem per line.
		fmt.Fprintf(os.Stderr, "redirectd: %v\n", err)
		os.Exit(1)
	}
}

func realMain(ctx context.Context, args []string) error {
	cfg, err := server.ParseConfig("redirectd", args, os.Getenv, os.Stderr)
	if err != nil {
		return err
	}
	log := server.NewLogger(cfg, os.Stderr)
	if n, ok := cfg.SoftMemoryLimit(os.Getenv); ok {
		debug.SetMemoryLimit(n)
		log.Info("Go soft memory limit set from --memory-limit", "memory_limit_bytes", int64(cfg.MemoryLimit), "soft_limit_bytes", n)
	}
	srv, err := server.New(cfg, log)
	if err != nil {
		return err
	}
	return srv.Run(ctx)
}
