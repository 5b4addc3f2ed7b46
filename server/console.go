package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/redirectd/redirectd/decision"
	"github.com/redirectd/redirectd/server/console"
)

// consoleBackend is the web console's view of the daemon: the serving
// set, hit statistics, reload history, and rule changes through the admin
// API's own code path, RuleSource.Update of the configured source (the
// rules file, etcd; a URL takes none), with the hash the form was
// rendered from as expected_hash (README "Web console").
type consoleBackend struct {
	source RuleSource
}

// store is the file store or the one an etcd store publishes through.
func (b consoleBackend) store() *RuleStore { return b.source.Rules() }

var _ console.Backend = consoleBackend{}

func (b consoleBackend) Index() *decision.Index { return b.store().Engine.Store().Index() }

func (b consoleBackend) Hits(id string) console.RuleHits {
	return console.RuleHits(b.store().Hits.Stats(id))
}

func (b consoleBackend) EachHit(fn func(console.RuleHits) bool) {
	b.store().Hits.Each(func(h RuleHits) bool { return fn(console.RuleHits(h)) })
}

func (b consoleBackend) PerMinute(id string, now time.Time) []uint32 {
	return b.store().Hits.PerMinute(id, now)
}

func (b consoleBackend) Reloads() []console.Reload {
	var out []console.Reload
	for _, o := range b.store().History.Last() {
		out = append(out, console.Reload(o))
	}
	return out
}

func (b consoleBackend) Writable() error { return b.source.Writable() }

func (b consoleBackend) Put(ctx context.Context, expected string, r *decision.Rule) (console.Written, error) {
	return b.update(ctx, expected, Edit{Puts: []decision.Rule{*r}})
}

func (b consoleBackend) Delete(ctx context.Context, expected string, id string) (console.Written, error) {
	return b.update(ctx, expected, Edit{Deletes: []string{id}})
}

func (b consoleBackend) Apply(ctx context.Context, expected string, rules []decision.Rule) (console.Written, error) {
	return b.update(ctx, expected, Edit{Puts: rules, Whole: true})
}

func (b consoleBackend) update(ctx context.Context, expected string, e Edit) (console.Written, error) {
	snap, warnings, err := b.source.Update(ctx, Precondition{Hash: expected}, e)
	return written(snap, warnings, err)
}

func (b consoleBackend) Lint(name string, data []byte) ([]decision.Rule, []decision.Problem, error) {
	return b.store().LintFile(name, data)
}

func written(snap *Snapshot, warnings []decision.Problem, err error) (console.Written, error) {
	if errors.Is(err, ErrVersionMismatch) {
		return console.Written{}, fmt.Errorf("%w: %v", console.ErrConflict, err)
	}
	if err != nil {
		return console.Written{}, err
	}
	return console.Written{Version: snap.Version.Number, Warnings: warnings}, nil
}

// newConsole builds the console's HTTP server. It is protected like the
// admin listener (README "Web console"): the admin token, entered once
// on a login page, and the admin TLS files (with mTLS when
// --admin-client-ca is set).
func (s *Server) newConsole() (*http.Server, *tls.Config, error) {
	token, err := s.cfg.adminToken()
	if err != nil {
		return nil, nil, err
	}
	var tc *tls.Config
	files := TLSFiles{Cert: s.cfg.AdminTLSCert, Key: s.cfg.AdminTLSKey, ClientCA: s.cfg.AdminClientCA}
	if files.Enabled() {
		if tc, err = files.ServerConfig(); err != nil {
			return nil, nil, fmt.Errorf("console listener TLS (--admin-tls-cert, --admin-tls-key, --admin-client-ca): %w", err)
		}
	}
	c, err := console.New(consoleBackend{source: s.source}, console.Options{Token: token, Secure: tc != nil, Log: s.log, Now: s.now})
	if err != nil {
		return nil, nil, err
	}
	return &http.Server{
		Handler:           c,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}, tc, nil
}

// ConsoleAddr is the bound console address, or "" when disabled.
func (s *Server) ConsoleAddr() string {
	if s.consoleLis == nil {
		return ""
	}
	return s.consoleLis.Addr().String()
}

// consoleListener wraps lis in TLS when the console serves TLS.
func consoleListener(lis net.Listener, tc *tls.Config) net.Listener {
	if tc == nil {
		return lis
	}
	return tls.NewListener(lis, tc)
}
