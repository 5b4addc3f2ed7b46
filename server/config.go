package server

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/redirectd/redirectd/decision"
)

// Config is everything the daemon can be told at start. Every field has a
// flag and a REDIRECTD_* environment variable (see ParseConfig).
type Config struct {
	// GRPCAddr is the public gRPC listener: Decide, Envoy Check, health,
	// reflection.
	GRPCAddr string
	// HTTPAddr is the HTTP listener: /healthz, /readyz, /metrics,
	// forward-auth.
	HTTPAddr string
	// AdminAddr is the admin gRPC listener (RuleService); "" disables it.
	AdminAddr string
	// ConsoleAddr is the web console's HTTP listener (server/console);
	// "" disables it. It is protected like the admin listener, with the
	// same token and TLS files.
	ConsoleAddr string
	// AdminInsecurePublic allows a non-loopback AdminAddr (or ConsoleAddr) without a token
	// or mTLS, or with a token but without TLS, for networks that are
	// private by other means.
	AdminInsecurePublic bool

	// Rules is the rules file, or an https:// URL to poll for it; ""
	// serves the built-in example.
	Rules string
	// RulesPoll is how often a rules URL is polled; RulesCA the PEM CA
	// bundle its server's certificate is checked against, when not the
	// system's.
	RulesPoll time.Duration
	RulesCA   string
	// Store is where the rule set lives: "file" (Rules) or "etcd"
	// (README "Where rules live"); the Etcd* fields configure the latter.
	Store string
	// EtcdEndpoints is a comma-separated list of etcd client URLs.
	EtcdEndpoints string
	// EtcdPrefix starts every key redirectd reads and writes.
	EtcdPrefix string
	// TLS towards etcd: the CA that signed its certificate, and a client
	// certificate and key when etcd requires one.
	EtcdCA, EtcdCert, EtcdKey string
	// EtcdUsername and EtcdPassword authenticate to etcd (RBAC).
	EtcdUsername, EtcdPassword string
	// PermanentMaxAge is the max-age of 301/308 answers whose rule sets none.
	PermanentMaxAge time.Duration
	// MaxCacheAge refuses rules whose cache_max_age is longer (README
	// "Rules", cache_max_age): a cached redirect cannot be taken back.
	MaxCacheAge time.Duration
	// FlattenChains makes A→B→C answer A→C directly.
	FlattenChains bool
	// ReloadDebounce is how long the rules watcher waits after the last
	// change of the rules file before re-reading it.
	ReloadDebounce time.Duration
	// ReloadMaxDrop refuses a reload that would remove more than this
	// percentage of the serving rules (a half-written file); 100 turns the
	// check off.
	ReloadMaxDrop float64
	// DecisionLogSample is the fraction of decisions logged (0 to 1).
	DecisionLogSample float64

	// MaxRequestBytes bounds one request message on the public listener,
	// a DecideBatch included; MaxInflightBytes the bytes of requests in
	// flight across the process; MaxConcurrentStreams the calls open at
	// once on one connection (README, "Memory bounds").
	MaxRequestBytes, MaxInflightBytes byteSize
	MaxConcurrentStreams              uint
	// MemoryLimit is the container's memory limit (0: none known); the
	// Go runtime's soft limit is set from it (SoftMemoryLimit).
	MemoryLimit byteSize

	// DrainDelay is how long every listener keeps serving after SIGTERM,
	// with health NOT_SERVING and /readyz 503, so load balancers and Envoy
	// stop sending before the listeners close.
	DrainDelay time.Duration
	// ShutdownTimeout bounds the graceful stop that follows the drain
	// delay; in-flight calls still running after it are cut.
	ShutdownTimeout time.Duration

	// LogFormat is "json" or "text"; LogLevel is debug, info, warn or error.
	LogFormat string
	LogLevel  slog.Level

	// TLS for the public gRPC listener (both files, or neither). With
	// TLSClientCA set, clients must present a certificate it signed (mTLS).
	TLSCert, TLSKey, TLSClientCA string
	// AdminToken is the bearer token admin calls must carry; AdminTokenFile
	// reads it from a file instead (a mounted secret).
	AdminToken, AdminTokenFile string
	// TLS for the admin listener; AdminClientCA requires client
	// certificates (mTLS).
	AdminTLSCert, AdminTLSKey, AdminClientCA string
}

// MemoryLimitFraction is the share of the container's memory limit given
// to the Go runtime as its soft limit (README "Memory sizing"): near it
// the GC works harder instead of the pod being OOM-killed; the rest is
// room for what the runtime does not count (stacks, the binary, cgroup
// page cache).
const MemoryLimitFraction = 0.9

// SoftMemoryLimit is the Go runtime's soft memory limit for c, in bytes:
// MemoryLimitFraction of MemoryLimit. ok is false when MemoryLimit is not
// set, or GOMEMLIMIT is (getenv), which the runtime has already applied.
func (c Config) SoftMemoryLimit(getenv func(string) string) (int64, bool) {
	if c.MemoryLimit <= 0 || getenv("GOMEMLIMIT") != "" {
		return 0, false
	}
	return int64(float64(c.MemoryLimit) * MemoryLimitFraction), true
}

// DefaultConfig is the configuration with no flags and no environment.
func DefaultConfig() Config {
	return Config{
		GRPCAddr:             ":50051",
		HTTPAddr:             ":8080",
		AdminAddr:            "127.0.0.1:50052",
		ConsoleAddr:          "127.0.0.1:8081",
		PermanentMaxAge:      24 * time.Hour,
		MaxCacheAge:          decision.MaxAdvisedCacheAge,
		RulesPoll:            DefaultRulesPoll,
		Store:                "file",
		EtcdPrefix:           "/redirectd/",
		ReloadDebounce:       DefaultReloadDebounce,
		ReloadMaxDrop:        50,
		MaxRequestBytes:      DefaultMaxRequestBytes,
		MaxInflightBytes:     DefaultMaxInflightBytes,
		MaxConcurrentStreams: DefaultMaxConcurrentStreams,
		DrainDelay:           5 * time.Second,
		ShutdownTimeout:      15 * time.Second,
		LogFormat:            "json",
		LogLevel:             slog.LevelInfo,
	}
}

// EnvPrefix starts every environment variable that stands for a flag:
// --grpc-addr is REDIRECTD_GRPC_ADDR.
const EnvPrefix = "REDIRECTD_"

// EnvName is the environment variable standing for the flag name.
func EnvName(flagName string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// flagSet binds every flag to c. The order here is the order of --help
// and of README's configuration table.
func (c *Config) flagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.StringVar(&c.GRPCAddr, "grpc-addr", c.GRPCAddr, "public gRPC listen address (Decide, Envoy Check, health, reflection)")
	fs.StringVar(&c.HTTPAddr, "http-addr", c.HTTPAddr, "HTTP listen address (/healthz, /readyz, /metrics, forward-auth)")
	fs.StringVar(&c.AdminAddr, "admin-addr", c.AdminAddr, `admin gRPC listen address (RuleService); "" disables it`)
	fs.StringVar(&c.ConsoleAddr, "console-addr", c.ConsoleAddr, `web console HTTP listen address, protected like --admin-addr (same token and TLS files); "" disables it`)
	fs.BoolVar(&c.AdminInsecurePublic, "admin-insecure-public", c.AdminInsecurePublic, "allow a non-loopback --admin-addr without a token or mTLS, or with a token without TLS")
	fs.StringVar(&c.Rules, "rules", c.Rules, "rules file (YAML or JSON), or an https:// URL of one to poll; empty serves the built-in example")
	fs.DurationVar(&c.RulesPoll, "rules-poll", c.RulesPoll, "how often a --rules URL is asked whether it changed (a conditional GET)")
	fs.StringVar(&c.RulesCA, "rules-ca", c.RulesCA, "PEM CA bundle that signed the --rules URL's certificate (a private CA)")
	fs.StringVar(&c.Store, "store", c.Store, "where the rule set lives: file (--rules) or etcd (--etcd-endpoints), shared by every replica")
	fs.StringVar(&c.EtcdEndpoints, "etcd-endpoints", c.EtcdEndpoints, "comma-separated etcd client URLs, for --store etcd (http://10.0.0.1:2379,...)")
	fs.StringVar(&c.EtcdPrefix, "etcd-prefix", c.EtcdPrefix, "etcd key prefix of the rule set; replicas with the same prefix serve the same rules")
	fs.StringVar(&c.EtcdCA, "etcd-ca", c.EtcdCA, "PEM CA bundle that signed etcd's certificate (https endpoints)")
	fs.StringVar(&c.EtcdCert, "etcd-cert", c.EtcdCert, "PEM client certificate for etcd (with --etcd-key)")
	fs.StringVar(&c.EtcdKey, "etcd-key", c.EtcdKey, "PEM private key for --etcd-cert")
	fs.StringVar(&c.EtcdUsername, "etcd-username", c.EtcdUsername, "etcd user name (with --etcd-password)")
	fs.StringVar(&c.EtcdPassword, "etcd-password", c.EtcdPassword, "etcd password (prefer the environment variable: flags show in ps)")
	fs.DurationVar(&c.PermanentMaxAge, "permanent-max-age", c.PermanentMaxAge, "max-age of 301/308 answers whose rule sets no cache_max_age")
	fs.DurationVar(&c.MaxCacheAge, "max-cache-age", c.MaxCacheAge, "refuse rules whose cache_max_age is longer (a cached redirect cannot be taken back before it expires)")
	fs.BoolVar(&c.FlattenChains, "flatten-chains", c.FlattenChains, "answer A→C directly when rules chain A→B→C")
	fs.DurationVar(&c.ReloadDebounce, "reload-debounce", c.ReloadDebounce, "wait this long after the last change of the rules file before reloading it")
	fs.Float64Var(&c.ReloadMaxDrop, "reload-max-drop", c.ReloadMaxDrop, "refuse a reload that removes more than this percentage of the serving rules (a half-written file); 100 turns it off")
	fs.Float64Var(&c.DecisionLogSample, "decision-log-sample", c.DecisionLogSample, "fraction of decisions logged, 0 to 1 (0.01 logs one in a hundred)")
	fs.Var(&c.MaxRequestBytes, "max-request-bytes", "largest request message on the public listener, a DecideBatch included (bytes, or with KiB, MiB, GiB)")
	fs.Var(&c.MaxInflightBytes, "max-inflight-bytes", "bytes of requests in flight across the process; calls over it answer RESOURCE_EXHAUSTED")
	fs.Var(&c.MemoryLimit, "memory-limit", "the container's memory limit (Kubernetes: limits.memory through the downward API); the Go soft memory limit is set to 90% of it unless GOMEMLIMIT is set")
	fs.UintVar(&c.MaxConcurrentStreams, "max-concurrent-streams", c.MaxConcurrentStreams, "calls open at once on one public connection")
	fs.DurationVar(&c.DrainDelay, "drain-delay", c.DrainDelay, "after SIGTERM, keep serving this long with health NOT_SERVING and /readyz 503 before closing the listeners")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", c.ShutdownTimeout, "after the drain delay, how long open calls may take to finish before they are cut")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "log format: json or text")
	fs.TextVar(&c.LogLevel, "log-level", c.LogLevel, "log level: debug, info, warn or error")
	fs.StringVar(&c.TLSCert, "tls-cert", c.TLSCert, "PEM certificate for the public gRPC listener (with --tls-key)")
	fs.StringVar(&c.TLSKey, "tls-key", c.TLSKey, "PEM private key for --tls-cert")
	fs.StringVar(&c.TLSClientCA, "tls-client-ca", c.TLSClientCA, "PEM CA bundle; public gRPC clients must present a certificate it signed (mTLS)")
	fs.StringVar(&c.AdminToken, "admin-token", c.AdminToken, "bearer token admin calls must carry (prefer the environment variable or --admin-token-file: flags show in ps)")
	fs.StringVar(&c.AdminTokenFile, "admin-token-file", c.AdminTokenFile, "file holding the bearer token admin calls must carry")
	fs.StringVar(&c.AdminTLSCert, "admin-tls-cert", c.AdminTLSCert, "PEM certificate for the admin listener (with --admin-tls-key)")
	fs.StringVar(&c.AdminTLSKey, "admin-tls-key", c.AdminTLSKey, "PEM private key for --admin-tls-cert")
	fs.StringVar(&c.AdminClientCA, "admin-client-ca", c.AdminClientCA, "PEM CA bundle; admin clients must present a certificate it signed (mTLS)")
	return fs
}

// ParseConfig reads flags from args and, for every flag not given, its
// REDIRECTD_* environment variable through getenv. A flag that is given
// wins over the environment. help receives usage text on -h.
func ParseConfig(name string, args []string, getenv func(string) string, help io.Writer) (Config, error) {
	cfg := DefaultConfig()
	fs := cfg.flagSet(name)
	fs.SetOutput(help)
	fs.Usage = func() {
		fmt.Fprintf(help, "Usage of %s (every flag also reads %sNAME, e.g. %s):\n", name, EnvPrefix, EnvName("grpc-addr"))
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected argument %q: %s takes flags only", fs.Arg(0), name)
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		env := EnvName(f.Name)
		v := getenv(env)
		if given[f.Name] || v == "" {
			return
		}
		if err := f.Value.Set(v); err != nil {
			errs = append(errs, fmt.Errorf("environment %s=%q: %v (flag --%s: %s)", env, v, err, f.Name, f.Usage))
		}
	})
	if err := errors.Join(errs...); err != nil {
		return Config{}, err
	}
	return cfg, cfg.Validate()
}

// Validate reports settings that cannot work together, naming the flags.
func (c Config) Validate() error {
	var errs []error
	if c.GRPCAddr == "" {
		errs = append(errs, errors.New("--grpc-addr is empty; give a listen address such as :50051"))
	}
	if c.HTTPAddr == "" {
		errs = append(errs, errors.New("--http-addr is empty; give a listen address such as :8080"))
	}
	errs = append(errs, c.storeProblems()...)
	if c.RulesPoll <= 0 {
		errs = append(errs, fmt.Errorf("--rules-poll %v: must be positive", c.RulesPoll))
	}
	if c.RulesCA != "" && !strings.HasPrefix(c.Rules, "https://") {
		errs = append(errs, fmt.Errorf("--rules-ca is for an https:// --rules URL; --rules is %q", c.Rules))
	}
	if c.PermanentMaxAge <= 0 {
		errs = append(errs, fmt.Errorf("--permanent-max-age %v: must be positive (browsers keep an undated 301 forever)", c.PermanentMaxAge))
	}
	if c.MaxCacheAge <= 0 {
		errs = append(errs, fmt.Errorf("--max-cache-age %v: must be positive", c.MaxCacheAge))
	}
	if c.PermanentMaxAge > c.MaxCacheAge && c.MaxCacheAge > 0 {
		errs = append(errs, fmt.Errorf("--permanent-max-age %v is more than --max-cache-age %v: the default would be longer than any rule may ask for", c.PermanentMaxAge, c.MaxCacheAge))
	}
	if c.ReloadDebounce <= 0 {
		errs = append(errs, fmt.Errorf("--reload-debounce %v: must be positive", c.ReloadDebounce))
	}
	if c.ReloadMaxDrop < 0 || c.ReloadMaxDrop > 100 {
		errs = append(errs, fmt.Errorf("--reload-max-drop %v: accepted: a percentage from 0 to 100 (100 turns the check off)", c.ReloadMaxDrop))
	}
	if c.DecisionLogSample < 0 || c.DecisionLogSample > 1 {
		errs = append(errs, fmt.Errorf("--decision-log-sample %v: accepted: 0 (none) to 1 (every decision)", c.DecisionLogSample))
	}
	if c.MaxRequestBytes <= 0 || c.MaxRequestBytes > 1<<30 {
		errs = append(errs, fmt.Errorf("--max-request-bytes %v: accepted: 1 byte to 1GiB", c.MaxRequestBytes))
	}
	if c.MaxInflightBytes < c.MaxRequestBytes {
		errs = append(errs, fmt.Errorf("--max-inflight-bytes %v is less than --max-request-bytes %v: no request that large could ever be received", c.MaxInflightBytes, c.MaxRequestBytes))
	}
	if c.MaxConcurrentStreams == 0 || c.MaxConcurrentStreams > 1<<31 {
		errs = append(errs, fmt.Errorf("--max-concurrent-streams %d: accepted: 1 to %d", c.MaxConcurrentStreams, 1<<31))
	}
	if c.DrainDelay < 0 {
		errs = append(errs, fmt.Errorf("--drain-delay %v: must not be negative (0 closes the listeners at once)", c.DrainDelay))
	}
	if c.ShutdownTimeout < 0 {
		errs = append(errs, fmt.Errorf("--shutdown-timeout %v: must not be negative", c.ShutdownTimeout))
	}
	if c.LogFormat != "json" && c.LogFormat != "text" {
		errs = append(errs, fmt.Errorf("--log-format %q: accepted: json, text", c.LogFormat))
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, errors.New("--tls-cert and --tls-key go together: give both or neither"))
	}
	if c.TLSClientCA != "" && c.TLSCert == "" {
		errs = append(errs, errors.New("--tls-client-ca needs --tls-cert and --tls-key: mTLS runs over TLS"))
	}
	if c.AdminToken != "" && c.AdminTokenFile != "" {
		errs = append(errs, errors.New("--admin-token and --admin-token-file: give one, not both"))
	}
	if (c.AdminTLSCert == "") != (c.AdminTLSKey == "") {
		errs = append(errs, errors.New("--admin-tls-cert and --admin-tls-key go together: give both or neither"))
	}
	if c.AdminClientCA != "" && c.AdminTLSCert == "" {
		errs = append(errs, errors.New("--admin-client-ca needs --admin-tls-cert and --admin-tls-key: mTLS runs over TLS"))
	}
	if c.AdminToken != "" {
		if err := CheckToken(c.AdminToken, "--admin-token ("+EnvName("admin-token")+")"); err != nil {
			errs = append(errs, err)
		}
	}
	if c.AdminAddr != "" && !c.AdminInsecurePublic {
		errs = append(errs, c.adminExposure(c.AdminAddr, "--admin-addr"))
	}
	if c.ConsoleAddr != "" && !c.AdminInsecurePublic {
		errs = append(errs, c.adminExposure(c.ConsoleAddr, "--console-addr"))
	}
	return errors.Join(errs...)
}

// storeProblems are the settings of --store that cannot work.
func (c Config) storeProblems() []error {
	var errs []error
	switch c.Store {
	case "file":
		if c.EtcdEndpoints != "" {
			errs = append(errs, errors.New("--etcd-endpoints is set but --store is file: add --store etcd to keep the rules in etcd"))
		}
		return errs
	case "etcd":
	default:
		return []error{fmt.Errorf("--store %q: accepted: file, etcd", c.Store)}
	}
	if c.EtcdEndpoints == "" {
		errs = append(errs, errors.New("--store etcd needs --etcd-endpoints (e.g. http://127.0.0.1:2379)"))
	}
	if c.Rules != "" {
		errs = append(errs, fmt.Errorf("--rules %q and --store etcd: the rules live in etcd; load a file into it with redirectctl apply", c.Rules))
	}
	if !strings.HasPrefix(c.EtcdPrefix, "/") || !strings.HasSuffix(c.EtcdPrefix, "/") {
		errs = append(errs, fmt.Errorf("--etcd-prefix %q: must start and end with / (e.g. /redirectd/), so one prefix is never the start of another", c.EtcdPrefix))
	}
	if (c.EtcdCert == "") != (c.EtcdKey == "") {
		errs = append(errs, errors.New("--etcd-cert and --etcd-key go together: give both or neither"))
	}
	if (c.EtcdUsername == "") != (c.EtcdPassword == "") {
		errs = append(errs, errors.New("--etcd-username and --etcd-password go together: give both or neither"))
	}
	return errs
}

// adminExposure refuses a non-loopback address of a listener that
// changes rules (admin, console; flag names it) that anyone who reaches it
// could use: without authentication, or with a bearer token sent in
// clear, which anyone on the path can read and replay.
func (c Config) adminExposure(addr, flag string) error {
	loopback, err := isLoopbackAddr(addr)
	switch {
	case err != nil:
		return fmt.Errorf("%s %q: %v", flag, addr, err)
	case loopback:
		return nil
	case !c.adminAuthenticated():
		return fmt.Errorf("%s %q is not a loopback address: anyone who reaches it could change the rules; "+
			"set --admin-token, --admin-token-file or --admin-client-ca, or --admin-insecure-public if the network is private", flag, addr)
	case (c.AdminToken != "" || c.AdminTokenFile != "") && c.AdminTLSCert == "":
		return fmt.Errorf("%s %q is not a loopback address and its bearer token would cross the network without TLS, readable by anyone on the path; "+
			"set --admin-tls-cert and --admin-tls-key, or --admin-insecure-public if the network is private", flag, addr)
	}
	return nil
}

// adminAuthenticated reports whether admin callers must prove who they are.
func (c Config) adminAuthenticated() bool {
	return c.AdminToken != "" || c.AdminTokenFile != "" || c.AdminClientCA != ""
}

// isLoopbackAddr reports whether a listen address binds loopback only. An
// empty host ("":50052) binds every interface, so it is not loopback.
func isLoopbackAddr(addr string) (bool, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false, err
	}
	if host == "localhost" {
		return true, nil
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback(), nil
}

// NewLogger returns the daemon's logger as configured, writing to w.
func NewLogger(c Config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.LogLevel}
	if c.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}
