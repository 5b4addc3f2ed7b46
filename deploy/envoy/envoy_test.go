package envoy_test

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
	"sigs.k8s.io/yaml"

	// Every typed_config in envoy.yaml names one of these types; importing
	// them registers the types so protojson can resolve each Any.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"

	"github.com/redirectd/redirectd/client"
	"github.com/redirectd/redirectd/decision"
	"github.com/redirectd/redirectd/deploy"
)

const configFile = "envoy.yaml"

// loadBootstrap decodes an Envoy bootstrap the way Envoy itself reads it:
// YAML as JSON into Envoy's own Bootstrap proto, unknown fields rejected,
// every Any resolved to its registered type, and every message (inside
// each Any too) checked against Envoy's protoc-gen-validate rules. It
// returns how many Any values it resolved.
func loadBootstrap(data []byte) (*bootstrapv3.Bootstrap, int, error) {
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, 0, fmt.Errorf("yaml: %w", err)
	}
	var b bootstrapv3.Bootstrap
	if err := (protojson.UnmarshalOptions{DiscardUnknown: false}).Unmarshal(js, &b); err != nil {
		return nil, 0, fmt.Errorf("decode Bootstrap: %w", err)
	}
	resolved := 0
	if err := validateDeep(&b, "bootstrap", &resolved); err != nil {
		return nil, resolved, err
	}
	return &b, resolved, nil
}

// validateDeep runs m's generated ValidateAll, then unpacks every Any
// reachable from m and validates its contents the same way: the generated
// validators stop at an Any, Envoy does not.
func validateDeep(m proto.Message, where string, resolved *int) error {
	if v, ok := m.(interface{ ValidateAll() error }); ok {
		if err := v.ValidateAll(); err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
	}
	return eachAny(m.ProtoReflect(), where, func(at string, a *anypb.Any) error {
		inner, err := a.UnmarshalNew()
		if err != nil {
			return fmt.Errorf("%s: %s: %w", at, a.GetTypeUrl(), err)
		}
		*resolved++
		return validateDeep(inner, at+"("+string(inner.ProtoReflect().Descriptor().FullName())+")", resolved)
	})
}

// eachAny calls fn for every Any set anywhere inside m, without descending
// into the Any itself (fn does that after unpacking).
func eachAny(m protoreflect.Message, where string, fn func(string, *anypb.Any) error) error {
	var err error
	visit := func(at string, v protoreflect.Message) bool {
		if a, ok := v.Interface().(*anypb.Any); ok {
			err = fn(at, a)
		} else {
			err = eachAny(v, at, fn)
		}
		return err == nil
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		at := where + "." + string(fd.Name())
		switch {
		case fd.IsMap():
			if fd.MapValue().Message() == nil {
				return true
			}
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				return visit(at+"["+k.String()+"]", mv.Message())
			})
		case fd.IsList():
			if fd.Message() == nil {
				return true
			}
			l := v.List()
			for i := 0; i < l.Len() && err == nil; i++ {
				visit(fmt.Sprintf("%s[%d]", at, i), l.Get(i).Message())
			}
		case fd.Message() != nil:
			visit(at, v.Message())
		}
		return err == nil
	})
	return err
}

func readConfig(t *testing.T) []byte {
	t.Helper()
	data, err := os.ReadFile(configFile)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestBootstrapDecodesAndValidates(t *testing.T) {
	_, resolved, err := loadBootstrap(readConfig(t))
	if err != nil {
		t.Fatalf("%s is not a valid Envoy bootstrap: %v", configFile, err)
	}
	// HCM, access log, ext_authz, router, 2 per-route configs, 1 cluster
	// protocol option.
	if resolved < 7 {
		t.Errorf("resolved %d typed_config values, want at least 7", resolved)
	}
}

// TestBootstrapRejectsMistakes shows that the loader is strict: each edit
// is a mistake Envoy would refuse at startup, and the test must refuse it.
func TestBootstrapRejectsMistakes(t *testing.T) {
	good := string(readConfig(t))
	tests := []struct {
		name, from, to, wantErr string
	}{
		{"typo in a top-level field", "static_resources:", "static_resource:", "unknown field"},
		{"typo inside a typed_config", "failure_mode_allow: true", "failure_mode_alow: true", "unknown field"},
		{"unknown typed_config type", "v3.ExtAuthzPerRoute", "v3.ExtAuthzPerRoutes", "ExtAuthzPerRoutes"},
		{"port out of range", "port_value: 50051", "port_value: 70000", "PortValue"},
		{"bad value inside a typed_config", "stat_prefix: ingress_http", `stat_prefix: ""`, "StatPrefix"},
		{"zero connect timeout", "connect_timeout: 1s", "connect_timeout: 0s", "ConnectTimeout"},
		{"unknown enum value", "transport_api_version: V3", "transport_api_version: V4", "V4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(good, tt.from) {
				t.Fatalf("%s no longer contains %q: update this case", configFile, tt.from)
			}
			_, _, err := loadBootstrap([]byte(strings.Replace(good, tt.from, tt.to, 1)))
			if err == nil {
				t.Fatalf("replacing %q by %q was accepted", tt.from, tt.to)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not mention %q", err, tt.wantErr)
			}
		})
	}
}

func unpack[M proto.Message](t *testing.T, a *anypb.Any, m M) M {
	t.Helper()
	if a == nil {
		t.Fatalf("missing typed_config for %T", m)
	}
	if err := a.UnmarshalTo(m); err != nil {
		t.Fatalf("typed_config %s: %v", a.GetTypeUrl(), err)
	}
	return m
}

// TestBootstrapSettings walks the decoded config and checks the choices
// the README promises: fail open, a short timeout, HTTP/2 to redirectd,
// a catch-all route, no check on the health route.
func TestBootstrapSettings(t *testing.T) {
	b, _, err := loadBootstrap(readConfig(t))
	if err != nil {
		t.Fatal(err)
	}

	if a := b.GetAdmin().GetAddress().GetSocketAddress(); a.GetAddress() != "127.0.0.1" || a.GetPortValue() != 9901 {
		t.Errorf("admin on %s:%d, want 127.0.0.1:9901 (never on a public address)", a.GetAddress(), a.GetPortValue())
	}

	clusters := map[string]*clusterv3.Cluster{}
	for _, c := range b.GetStaticResources().GetClusters() {
		clusters[c.GetName()] = c
	}

	listeners := b.GetStaticResources().GetListeners()
	if len(listeners) != 1 {
		t.Fatalf("%d listeners, want 1", len(listeners))
	}
	if p := listeners[0].GetAddress().GetSocketAddress().GetPortValue(); p != 10000 {
		t.Errorf("listener port %d, want 10000", p)
	}
	filters := listeners[0].GetFilterChains()[0].GetFilters()
	hcm := unpack(t, filters[0].GetTypedConfig(), &hcmv3.HttpConnectionManager{})

	// The filter chain: ext_authz first, router last.
	httpFilters := hcm.GetHttpFilters()
	if n := len(httpFilters); n < 2 || httpFilters[0].GetName() != "envoy.filters.http.ext_authz" || httpFilters[n-1].GetName() != "envoy.filters.http.router" {
		t.Fatalf("http_filters %v: want ext_authz first and router last", filterNames(httpFilters))
	}
	authz := unpack(t, httpFilters[0].GetTypedConfig(), &extauthzv3.ExtAuthz{})
	t.Run("ext_authz", func(t *testing.T) {
		if !authz.GetFailureModeAllow() {
			t.Error("failure_mode_allow is false: an unreachable redirectd would fail every request")
		}
		if authz.GetChargeClusterResponseStats() == nil || authz.GetChargeClusterResponseStats().GetValue() {
			t.Error("charge_cluster_response_stats must be set to false: redirects are not cluster errors")
		}
		if authz.GetIncludePeerCertificate() {
			t.Error("include_peer_certificate is true: redirectd never uses it")
		}
		var withheld []string
		for _, m := range authz.GetDisallowedHeaders().GetPatterns() {
			withheld = append(withheld, m.GetExact())
		}
		for _, h := range []string{"authorization", "proxy-authorization"} {
			if !slices.Contains(withheld, h) {
				t.Errorf("disallowed_headers %v lacks %s: credentials would reach redirectd", withheld, h)
			}
		}
		checkAllowedHeaders(t, authz)
		if v := authz.GetTransportApiVersion().String(); v != "V3" {
			t.Errorf("transport_api_version %s, want V3", v)
		}
		g := authz.GetGrpcService()
		if g == nil {
			t.Fatal("ext_authz has no grpc_service")
		}
		if d := g.GetTimeout().AsDuration(); d <= 0 || d > 200*time.Millisecond {
			t.Errorf("check timeout %v, want more than 0 and at most 200ms", d)
		}
		name := g.GetEnvoyGrpc().GetClusterName()
		c, ok := clusters[name]
		if !ok {
			t.Fatalf("ext_authz cluster %q is not defined", name)
		}
		checkRedirectdCluster(t, c)
	})

	t.Run("routes", func(t *testing.T) {
		vhosts := hcm.GetRouteConfig().GetVirtualHosts()
		if len(vhosts) != 1 || len(vhosts[0].GetDomains()) != 1 || vhosts[0].GetDomains()[0] != "*" {
			t.Fatalf("want one virtual host for domain \"*\", got %v", vhosts)
		}
		routes := vhosts[0].GetRoutes()
		if len(routes) == 0 {
			t.Fatal("no routes")
		}
		for _, r := range routes {
			if c := r.GetRoute().GetCluster(); clusters[c] == nil {
				t.Errorf("route %q targets undefined cluster %q", r.GetName(), c)
			}
		}
		last := routes[len(routes)-1]
		if last.GetMatch().GetPrefix() != "/" || perRoute(t, last) != nil {
			t.Errorf("last route %q is not a catch-all prefix \"/\" checked by ext_authz", last.GetName())
		}

		var health, intent *routev3.Route
		for _, r := range routes {
			if r.GetMatch().GetPath() == "/healthz" {
				health = r
			}
			if perRoute(t, r).GetCheckSettings().GetContextExtensions()["intent"] != "" {
				intent = r
			}
		}
		if health == nil || !perRoute(t, health).GetDisabled() {
			t.Error("no /healthz route with ext_authz disabled")
		}
		if intent == nil {
			t.Fatal("no route shows context_extensions intent")
		}
		word := perRoute(t, intent).GetCheckSettings().GetContextExtensions()["intent"]
		if _, err := decision.ParseIntent(word); err != nil {
			t.Errorf("route %q: context_extensions intent: %v", intent.GetName(), err)
		}
	})
}

// checkAllowedHeaders: the committed allowed_headers are exactly what
// redirectctl envoy-config prints for the example rules (deploy/rules),
// and that output is itself a valid ext_authz allowed_headers: Cookie,
// Accept-Language and every header a condition names reach redirectd.
func checkAllowedHeaders(t *testing.T, authz *extauthzv3.ExtAuthz) {
	t.Helper()
	rules, err := decision.ParseRules(deploy.ExampleRulesName, deploy.ExampleRules)
	if err != nil {
		t.Fatal(err)
	}
	var printed strings.Builder
	if err := client.WriteEnvoyAllowedHeaders(&printed, rules); err != nil {
		t.Fatal(err)
	}
	js, err := yaml.YAMLToJSON([]byte(printed.String()))
	if err != nil {
		t.Fatalf("envoy-config output is not YAML: %v\n%s", err, printed.String())
	}
	var generated extauthzv3.ExtAuthz
	if err := protojson.Unmarshal(js, &generated); err != nil {
		t.Fatalf("envoy-config output is not an ext_authz allowed_headers: %v\n%s", err, printed.String())
	}
	exacts := func(a *extauthzv3.ExtAuthz) []string {
		var out []string
		for _, m := range a.GetAllowedHeaders().GetPatterns() {
			if m.GetExact() == "" || m.GetIgnoreCase() {
				t.Errorf("allowed_headers pattern %v: want exact, lower-case names", m)
			}
			out = append(out, m.GetExact())
		}
		return out
	}
	committed := exacts(authz)
	if diff := cmp.Diff(exacts(&generated), committed); diff != "" {
		t.Errorf("allowed_headers in %s differ from redirectctl envoy-config --rules deploy/rules/example.yaml (-printed +committed):\n%s", configFile, diff)
	}
	for _, h := range []string{"cookie", "accept-language", "x-request-id"} {
		if !slices.Contains(committed, h) {
			t.Errorf("allowed_headers %v lacks %s", committed, h)
		}
	}
}

// perRoute returns the route's ext_authz override, or nil.
func perRoute(t *testing.T, r *routev3.Route) *extauthzv3.ExtAuthzPerRoute {
	t.Helper()
	a, ok := r.GetTypedPerFilterConfig()["envoy.filters.http.ext_authz"]
	if !ok {
		return nil
	}
	return unpack(t, a, &extauthzv3.ExtAuthzPerRoute{})
}

func checkRedirectdCluster(t *testing.T, c *clusterv3.Cluster) {
	t.Helper()
	if c.GetType() != clusterv3.Cluster_STRICT_DNS {
		t.Errorf("cluster %s type %s, want STRICT_DNS", c.GetName(), c.GetType())
	}
	opts, ok := c.GetTypedExtensionProtocolOptions()["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
	if !ok {
		t.Fatalf("cluster %s has no HttpProtocolOptions: gRPC needs HTTP/2", c.GetName())
	}
	hpo := unpack(t, opts, &upstreamhttpv3.HttpProtocolOptions{})
	if hpo.GetExplicitHttpConfig().GetHttp2ProtocolOptions() == nil {
		t.Errorf("cluster %s does not speak HTTP/2 explicitly", c.GetName())
	}
	var ports []uint32
	for _, e := range c.GetLoadAssignment().GetEndpoints() {
		for _, lb := range e.GetLbEndpoints() {
			ports = append(ports, lb.GetEndpoint().GetAddress().GetSocketAddress().GetPortValue())
		}
	}
	if len(ports) != 1 || ports[0] != 50051 {
		t.Errorf("cluster %s endpoint ports %v, want [50051]", c.GetName(), ports)
	}
	hc := c.GetHealthChecks()
	if len(hc) == 0 || hc[0].GetGrpcHealthCheck() == nil {
		t.Errorf("cluster %s has no gRPC health check", c.GetName())
	}
}

func filterNames(fs []*hcmv3.HttpFilter) []string {
	var names []string
	for _, f := range fs {
		names = append(names, f.GetName())
	}
	return names
}

// Guard against a silently empty walk: the deep validator must report an
// error found only inside an Any.
func TestValidateDeepReachesInsideAny(t *testing.T) {
	bad, err := anypb.New(&extauthzv3.ExtAuthzPerRoute{}) // override oneof unset: invalid
	if err != nil {
		t.Fatal(err)
	}
	r := &routev3.Route{
		Match:                &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
		Action:               &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "app"}}},
		TypedPerFilterConfig: map[string]*anypb.Any{"envoy.filters.http.ext_authz": bad},
	}
	if err := r.ValidateAll(); err != nil {
		t.Fatalf("the route around the Any must be valid itself: %v", err)
	}
	resolved := 0
	err = validateDeep(r, "route", &resolved)
	if err == nil || resolved != 1 || !strings.Contains(err.Error(), "ExtAuthzPerRoute") {
		t.Fatalf("validateDeep = %v after %d Any values, want an ExtAuthzPerRoute error", err, resolved)
	}
	var multi interface{ AllErrors() []error }
	if !errors.As(err, &multi) {
		t.Errorf("error %v is not the generated MultiError", err)
	}
}

// TestLocalVariant: the sed line in envoy.yaml's header, for redirectd and
// the app on loopback, still gives a valid bootstrap that points there.
func TestLocalVariant(t *testing.T) {
	local := strings.NewReplacer("address: redirectd,", "address: 127.0.0.1,", "address: app,", "address: 127.0.0.1,").Replace(string(readConfig(t)))
	b, _, err := loadBootstrap([]byte(local))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range b.GetStaticResources().GetClusters() {
		for _, e := range c.GetLoadAssignment().GetEndpoints() {
			for _, lb := range e.GetLbEndpoints() {
				if a := lb.GetEndpoint().GetAddress().GetSocketAddress().GetAddress(); a != "127.0.0.1" {
					t.Errorf("cluster %s still points at %s", c.GetName(), a)
				}
			}
		}
	}
}
