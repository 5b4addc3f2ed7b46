package server

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseConfig(t *testing.T) {
	withDefaults := func(change func(*Config)) Config {
		c := DefaultConfig()
		change(&c)
		return c
	}
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want Config
	}{
		{
			name: "no flags, no environment",
			want: DefaultConfig(),
		},
		{
			name: "flags",
			args: []string{"--grpc-addr", "127.0.0.1:9000", "--rules", "r.yaml", "--permanent-max-age", "1h",
				"--flatten-chains", "--shutdown-timeout", "3s", "--log-format", "text", "--log-level", "debug"},
			want: withDefaults(func(c *Config) {
				c.GRPCAddr = "127.0.0.1:9000"
				c.Rules = "r.yaml"
				c.PermanentMaxAge = time.Hour
				c.FlattenChains = true
				c.ShutdownTimeout = 3 * time.Second
				c.LogFormat = "text"
				c.LogLevel = slog.LevelDebug
			}),
		},
		{
			name: "environment stands for flags not given",
			env: map[string]string{
				"REDIRECTD_HTTP_ADDR":         "127.0.0.1:8081",
				"REDIRECTD_FLATTEN_CHAINS":    "true",
				"REDIRECTD_PERMANENT_MAX_AGE": "2h",
				"REDIRECTD_LOG_LEVEL":         "warn",
			},
			want: withDefaults(func(c *Config) {
				c.HTTPAddr = "127.0.0.1:8081"
				c.FlattenChains = true
				c.PermanentMaxAge = 2 * time.Hour
				c.LogLevel = slog.LevelWarn
			}),
		},
		{
			name: "a given flag wins over its variable",
			args: []string{"--grpc-addr", ":7000"},
			env:  map[string]string{"REDIRECTD_GRPC_ADDR": ":6000", "REDIRECTD_RULES": "env.yaml"},
			want: withDefaults(func(c *Config) {
				c.GRPCAddr = ":7000"
				c.Rules = "env.yaml"
			}),
		},
		{
			name: "admin on every interface when explicitly allowed",
			args: []string{"--admin-addr", ":50052", "--admin-insecure-public"},
			want: withDefaults(func(c *Config) {
				c.AdminAddr = ":50052"
				c.AdminInsecurePublic = true
			}),
		},
		{
			name: "admin on every interface behind a token over TLS",
			args: []string{"--admin-addr", "0.0.0.0:50052", "--admin-token-file", "/run/secrets/token", "--admin-tls-cert", "c.pem", "--admin-tls-key", "k.pem"},
			want: withDefaults(func(c *Config) {
				c.AdminAddr = "0.0.0.0:50052"
				c.AdminTokenFile = "/run/secrets/token"
				c.AdminTLSCert, c.AdminTLSKey = "c.pem", "k.pem"
			}),
		},
		{
			name: "admin token in clear on a private network, explicitly allowed",
			args: []string{"--admin-addr", "0.0.0.0:50052", "--admin-insecure-public"},
			env:  map[string]string{"REDIRECTD_ADMIN_TOKEN": "0123456789abcdef"},
			want: withDefaults(func(c *Config) {
				c.AdminAddr = "0.0.0.0:50052"
				c.AdminInsecurePublic = true
				c.AdminToken = "0123456789abcdef"
			}),
		},
		{
			name: "admin token in clear on loopback",
			env:  map[string]string{"REDIRECTD_ADMIN_TOKEN": "0123456789abcdef"},
			want: withDefaults(func(c *Config) { c.AdminToken = "0123456789abcdef" }),
		},
		{
			name: "memory bounds in bytes and binary units",
			args: []string{"--max-request-bytes", "512KiB", "--max-concurrent-streams", "16"},
			env:  map[string]string{"REDIRECTD_MAX_INFLIGHT_BYTES": "1GiB"},
			want: withDefaults(func(c *Config) {
				c.MaxRequestBytes = 512 << 10
				c.MaxInflightBytes = 1 << 30
				c.MaxConcurrentStreams = 16
			}),
		},
		{
			name: "memory bound in plain bytes",
			args: []string{"--max-request-bytes", "1000"},
			want: withDefaults(func(c *Config) { c.MaxRequestBytes = 1000 }),
		},
		{
			name: "admin disabled",
			env:  map[string]string{"REDIRECTD_ADMIN_ADDR": ""},
			args: []string{"--admin-addr", ""},
			want: withDefaults(func(c *Config) { c.AdminAddr = "" }),
		},
		{
			name: "admin on IPv6 loopback",
			args: []string{"--admin-addr", "[::1]:50052"},
			want: withDefaults(func(c *Config) { c.AdminAddr = "[::1]:50052" }),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseConfig("redirectd", tt.args, func(k string) string { return tt.env[k] }, io.Discard)
			if err != nil {
				t.Fatalf("ParseConfig: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want []string // every one must be in the error
	}{
		{
			name: "bad environment value names the variable",
			env:  map[string]string{"REDIRECTD_PERMANENT_MAX_AGE": "a day"},
			want: []string{"REDIRECTD_PERMANENT_MAX_AGE", `"a day"`, "--permanent-max-age"},
		},
		{
			name: "bad boolean in the environment",
			env:  map[string]string{"REDIRECTD_FLATTEN_CHAINS": "yes please"},
			want: []string{"REDIRECTD_FLATTEN_CHAINS"},
		},
		{
			name: "bad log level in the environment",
			env:  map[string]string{"REDIRECTD_LOG_LEVEL": "loud"},
			want: []string{"REDIRECTD_LOG_LEVEL"},
		},
		{
			name: "unknown log format",
			args: []string{"--log-format", "xml"},
			want: []string{"--log-format", "json, text"},
		},
		{
			name: "admin on every interface without protection",
			args: []string{"--admin-addr", ":50052"},
			want: []string{"--admin-addr", "not a loopback", "--admin-insecure-public"},
		},
		{
			name: "console on every interface without protection",
			env:  map[string]string{"REDIRECTD_CONSOLE_ADDR": ":8081"},
			want: []string{"--console-addr", "not a loopback", "--admin-token"},
		},
		{
			name: "console on a public address with a token but no TLS",
			args: []string{"--console-addr", "0.0.0.0:8081", "--admin-token", "0123456789abcdef0123"},
			want: []string{"--console-addr", "without TLS", "--admin-tls-cert"},
		},
		{
			name: "admin on a public address from the environment",
			env:  map[string]string{"REDIRECTD_ADMIN_ADDR": "10.0.0.7:50052"},
			want: []string{"--admin-addr", "10.0.0.7:50052"},
		},
		{
			name: "size in decimal units",
			args: []string{"--max-request-bytes", "4MB"},
			want: []string{"max-request-bytes", `"4MB"`, "KiB, MiB or GiB"},
		},
		{
			name: "in-flight bound below one request",
			args: []string{"--max-request-bytes", "8MiB", "--max-inflight-bytes", "4MiB"},
			want: []string{"--max-inflight-bytes 4MiB", "--max-request-bytes 8MiB"},
		},
		{
			name: "no streams",
			env:  map[string]string{"REDIRECTD_MAX_CONCURRENT_STREAMS": "0"},
			want: []string{"--max-concurrent-streams 0"},
		},
		{
			name: "negative drain delay",
			args: []string{"--drain-delay", "-1s"},
			want: []string{"--drain-delay", "negative"},
		},
		{
			name: "admin token of white space",
			args: []string{"--admin-addr", "0.0.0.0:50052", "--admin-token", " ", "--admin-tls-cert", "c.pem", "--admin-tls-key", "k.pem"},
			want: []string{"--admin-token", "empty or white space"},
		},
		{
			name: "short admin token",
			env:  map[string]string{"REDIRECTD_ADMIN_TOKEN": "s3cret"},
			want: []string{"--admin-token", "6 bytes", "at least 16"},
		},
		{
			name: "admin token in clear on every interface",
			args: []string{"--admin-addr", "0.0.0.0:50052", "--admin-token-file", "/run/secrets/token"},
			want: []string{"--admin-addr", "without TLS", "--admin-tls-cert", "--admin-insecure-public"},
		},
		{
			name: "admin address without a port",
			args: []string{"--admin-addr", "localhost"},
			want: []string{"--admin-addr", "missing port"},
		},
		{
			name: "half a TLS key pair",
			args: []string{"--tls-cert", "c.pem"},
			want: []string{"--tls-cert and --tls-key"},
		},
		{
			name: "mTLS without TLS",
			args: []string{"--tls-client-ca", "ca.pem"},
			want: []string{"--tls-client-ca needs"},
		},
		{
			name: "unbounded permanent caching",
			args: []string{"--permanent-max-age", "0s"},
			want: []string{"--permanent-max-age", "positive"},
		},
		{
			name: "positional argument",
			args: []string{"rules.yaml"},
			want: []string{`"rules.yaml"`, "flags only"},
		},
		{
			name: "unknown flag",
			args: []string{"--rule", "x.yaml"},
			want: []string{"-rule"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig("redirectd", tt.args, func(k string) string { return tt.env[k] }, io.Discard)
			if err == nil {
				t.Fatal("ParseConfig succeeded, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestEnvName(t *testing.T) {
	for flagName, want := range map[string]string{
		"grpc-addr":             "REDIRECTD_GRPC_ADDR",
		"admin-insecure-public": "REDIRECTD_ADMIN_INSECURE_PUBLIC",
		"rules":                 "REDIRECTD_RULES",
	} {
		if got := EnvName(flagName); got != want {
			t.Errorf("EnvName(%q) = %q, want %q", flagName, got, want)
		}
	}
}

// TestREADMEConfigTable keeps README's configuration table complete: every
// flag with its variable and default.
func TestREADMEConfigTable(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.flagSet("redirectd").VisitAll(func(f *flag.Flag) {
		def := "`" + f.DefValue + "`"
		if f.DefValue == "" || f.DefValue == "false" {
			def = "" // README leaves the cell empty
		}
		row := fmt.Sprintf("| `--%s` | `%s` | %s |", f.Name, EnvName(f.Name), def)
		if !strings.Contains(string(readme), row) {
			t.Errorf("README.md's configuration table has no row starting %q", row)
		}
	})
}
