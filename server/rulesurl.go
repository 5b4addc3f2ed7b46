package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/redirectd/redirectd/decision"
)

// DefaultRulesPoll is how often a rules URL is asked whether it changed.
const DefaultRulesPoll = 30 * time.Second

// IsRulesURL reports whether --rules names a URL rather than a file.
func IsRulesURL(rules string) bool {
	return strings.HasPrefix(rules, "https://") || strings.HasPrefix(rules, "http://")
}

// URLRules serves a rules file published at a URL (README "Where rules
// live"), for fleets that publish one file to object storage: fetched at
// start, then polled with conditional requests (RFC 9110 section 13.1:
// If-None-Match with the last ETag, If-Modified-Since with the last
// Last-Modified), so an unchanged file costs a 304 and no parse. It is
// parsed and applied exactly as a rules file is (RuleStore.applyData): a
// bad file is refused and the last good set keeps serving; a failed poll
// is logged and counted, never fatal. Admin writes have nowhere to go.
type URLRules struct {
	rules  *RuleStore
	url    string
	source string // the URL without its query, for logs and problems
	poll   time.Duration
	client *http.Client
	failed prometheus.Counter

	// etag and modified are the validators of the content last applied
	// or refused; only the poller uses them.
	etag, modified string
}

// NewURLRules returns the URL source of cfg publishing through rules.
func NewURLRules(cfg Config, rules *RuleStore) (*URLRules, error) {
	u, err := url.Parse(cfg.Rules)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("--rules %q: not a URL: %v", cfg.Rules, err)
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.RulesCA != "" {
		pem, err := os.ReadFile(cfg.RulesCA)
		if err != nil {
			return nil, fmt.Errorf("--rules-ca: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--rules-ca %s: no PEM certificate in it", cfg.RulesCA)
		}
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.TLSClientConfig = tc
	r := &URLRules{
		rules:  rules,
		url:    cfg.Rules,
		source: (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String(),
		poll:   cfg.RulesPoll,
		client: &http.Client{Transport: transport, Timeout: time.Minute},
		failed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "redirectd_rules_fetch_failures_total",
			Help: "Fetches of the rules URL that failed (no answer, an error status, too large); the last good set keeps serving.",
		}),
	}
	if rules.Metrics != nil {
		rules.Metrics.registry.MustRegister(r.failed)
	}
	return r, nil
}

// Rules is the RuleStore every set is published through.
func (r *URLRules) Rules() *RuleStore { return r.rules }

// Update refuses: the published file is the source of truth.
func (r *URLRules) Update(context.Context, Precondition, Edit) (*Snapshot, []decision.Problem, error) {
	return nil, nil, r.Writable()
}

// Writable says why the rules cannot be changed here.
func (r *URLRules) Writable() error {
	return fmt.Errorf("%w: the rules come from %s (--rules): change the published file instead", ErrNotPersistable, r.source)
}

// Load fetches and applies the rules at start. A fetch that fails is
// tried again (not ready until it succeeds), as long as ctx lasts; rules
// that are refused stop the start, as a bad rules file does.
func (r *URLRules) Load(ctx context.Context) error {
	for attempt := 0; ; attempt++ {
		_, err := r.Fetch(ctx)
		var rerr *decision.RulesError
		if err == nil || errors.As(err, &rerr) || ctx.Err() != nil {
			return err
		}
		if !sleep(ctx, backoff(attempt)) {
			return ctx.Err()
		}
	}
}

// Poll fetches the rules every poll interval until ctx ends.
func (r *URLRules) Poll(ctx context.Context) error {
	r.rules.Log.Info("polling rules", "url", r.source, "every", r.poll)
	t := time.NewTicker(r.poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			r.Fetch(ctx) // logged and counted
		}
	}
}

// Fetch asks the URL for the rules, conditionally, and applies what
// changed; false when nothing did.
func (r *URLRules) Fetch(ctx context.Context) (applied bool, err error) {
	data, err := r.get(ctx)
	if err != nil {
		r.failed.Inc()
		r.rules.reject(r.source, err)
		return false, err
	}
	if data == nil {
		return false, nil // 304 Not Modified
	}
	r.rules.mu.Lock()
	defer r.rules.mu.Unlock()
	return r.rules.applyData(r.source, data, r.rules.Now())
}

// get fetches the rules: nil data when the server answers 304.
func (r *URLRules) get(ctx context.Context) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.url, nil)
	if err != nil {
		return nil, fmt.Errorf("rules URL %s: %w", r.source, err)
	}
	if r.rules.Engine.Ready() {
		// Validators only once something serves: a first load needs the
		// content whatever the server has.
		if r.etag != "" {
			req.Header.Set("If-None-Match", r.etag)
		}
		if r.modified != "" {
			req.Header.Set("If-Modified-Since", r.modified)
		}
	}
	resp, err := r.client.Do(req)
	if err != nil {
		// url.Error names the whole URL; its query may be a signature.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return nil, fmt.Errorf("fetch rules %s: %w", r.source, err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotModified:
		return nil, nil
	default:
		return nil, fmt.Errorf("fetch rules %s: %s", r.source, resp.Status)
	}
	if resp.ContentLength > decision.MaxRulesFileBytes {
		return nil, r.tooLarge(resp.ContentLength)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, decision.MaxRulesFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("fetch rules %s: %w", r.source, err)
	}
	if len(data) > decision.MaxRulesFileBytes {
		return nil, r.tooLarge(int64(len(data)))
	}
	// Remembered whether the content is then applied or refused: a
	// refused file is not fetched again until it changes.
	r.etag, r.modified = resp.Header.Get("ETag"), resp.Header.Get("Last-Modified")
	return data, nil
}

func (r *URLRules) tooLarge(n int64) error {
	return fmt.Errorf("rules URL %s: the answer is %d bytes or more; accepted: at most %d (%d MiB)", r.source, n, decision.MaxRulesFileBytes, decision.MaxRulesFileBytes>>20)
}
