package server

import (
	"io"
	"strings"
	"testing"
)

func TestEtcdConfig(t *testing.T) {
	env := func(vars map[string]string) func(string) string { return func(k string) string { return vars[k] } }
	cfg, err := ParseConfig("redirectd", []string{"--store", "etcd"}, env(map[string]string{
		"REDIRECTD_ETCD_ENDPOINTS": "http://a:2379,http://b:2379",
		"REDIRECTD_ETCD_PASSWORD":  "secret",
		"REDIRECTD_ETCD_USERNAME":  "redirectd",
	}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.EtcdEndpoints != "http://a:2379,http://b:2379" || cfg.EtcdPrefix != "/redirectd/" || cfg.EtcdPassword != "secret" {
		t.Errorf("config from the environment: %+v", cfg)
	}
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--store", "etcd"}, "--store etcd needs --etcd-endpoints"},
		{[]string{"--store", "consul"}, `--store "consul": accepted: file, etcd`},
		{[]string{"--etcd-endpoints", "http://a:2379"}, "add --store etcd"},
		{[]string{"--store", "etcd", "--etcd-endpoints", "http://a:2379", "--rules", "r.yaml"}, "the rules live in etcd"},
		{[]string{"--store", "etcd", "--etcd-endpoints", "http://a:2379", "--etcd-prefix", "/redirectd"}, "must start and end with /"},
		{[]string{"--store", "etcd", "--etcd-endpoints", "http://a:2379", "--etcd-cert", "c.pem"}, "--etcd-cert and --etcd-key go together"},
		{[]string{"--store", "etcd", "--etcd-endpoints", "http://a:2379", "--etcd-username", "u"}, "--etcd-username and --etcd-password go together"},
	}
	for _, tt := range tests {
		_, err := ParseConfig("redirectd", tt.args, env(nil), io.Discard)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: got %v, want an error containing %q", tt.args, err, tt.want)
		}
	}
}
