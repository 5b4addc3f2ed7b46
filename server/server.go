package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	"github.com/redirectd/redirectd/decision"
	"github.com/redirectd/redirectd/deploy"
	redirectv1 "github.com/redirectd/redirectd/proto/redirect/v1"
)

// Server is the redirectd daemon: the public gRPC listener, the HTTP
// listener and the admin gRPC listener around one Engine.
type Server struct {
	cfg    Config
	log    *slog.Logger
	now    func() time.Time
	engine *Engine

	public *grpcServer // Decide, Envoy Check, health, reflection
	admin  *grpcServer // RuleService, health, reflection; nil without --admin-addr
	health *health.Server
	mux    *http.ServeMux
	http   *http.Server
	// console is the web console (server/console); nil without
	// --console-addr. consoleTLS is its TLS config, nil for plain HTTP.
	console    *http.Server
	consoleTLS *tls.Config

	publicLis, adminLis, httpLis, consoleLis net.Listener

	// store loads, versions and publishes rule sets to engine; reloads
	// and admin writes go through it too.
	store *RuleStore
	// source is where the rule set lives (--store): store itself, or
	// etcd, which publishes through store.
	source RuleSource
	etcd   *EtcdStore // nil unless --store etcd
	url    *URLRules  // nil unless --rules is a URL

	// tasks run beside the listeners from the first good load until
	// shutdown (the rules watcher, for one). An error from a task stops
	// the daemon.
	tasks []func(ctx context.Context) error

	loaded   atomic.Bool // the first rule set is serving
	stopping atomic.Bool // shutdown has begun

	// streams is cancelled when the drain delay is over: every streaming
	// call's context derives from it (endStreams), so a health Watch ends
	// then instead of holding GracefulStop until --shutdown-timeout.
	streams    context.Context
	endStreams context.CancelFunc
}

// New wires the daemon and binds its listeners, so a busy port fails here,
// before anything starts. Call Run to serve, or Close to release the ports.
func New(cfg Config, log *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{
		cfg:    cfg,
		log:    log,
		now:    time.Now,
		health: health.NewServer(),
		mux:    http.NewServeMux(),
	}
	s.streams, s.endStreams = context.WithCancel(context.Background())
	s.engine = NewEngine(decision.NewStore(decision.Options{
		PermanentMaxAge: cfg.PermanentMaxAge,
		FlattenChains:   cfg.FlattenChains,
		MaxCacheAge:     cfg.MaxCacheAge,
	}), s.now)
	s.store = &RuleStore{
		Engine:  s.engine,
		Path:    rulesFile(cfg.Rules),
		MaxDrop: cfg.ReloadMaxDrop / 100,
		Log:     log,
		Now:     s.now,
		Metrics: NewMetrics(),
		Hits:    NewHits(),
		History: &ReloadHistory{},
	}
	s.source = s.store
	if IsRulesURL(cfg.Rules) {
		var err error
		if s.url, err = NewURLRules(cfg, s.store); err != nil {
			return nil, err
		}
		s.source = s.url
	}
	if cfg.Store == "etcd" {
		var err error
		if s.etcd, err = NewEtcdStore(cfg, s.store); err != nil {
			return nil, err
		}
		s.source = s.etcd
	}
	s.engine.SetObserver((&DecisionObserver{Metrics: s.store.Metrics, Hits: s.store.Hits, Log: log, LogSample: cfg.DecisionLogSample}).Observe)

	// Both listeners share serverOptions and end their streaming calls
	// when the drain delay is over; the public listener's memory bounds
	// and TLS, and the admin listener's token and mTLS, come on top.
	publicSec, err := publicListenerOptions(cfg)
	if err != nil {
		s.closeStore()
		return nil, err
	}
	adminSec, err := adminListenerOptions(cfg, log)
	if err != nil {
		s.closeStore()
		return nil, err
	}
	shared := append(serverOptions(log), grpc.ChainStreamInterceptor(s.endStreamAtShutdown))
	publicOpts := append(slices.Clip(shared), publicSec...)
	adminOpts := append(slices.Clip(shared), adminSec...)

	s.public = newGRPCServer(
		newRequestBudget(int64(cfg.MaxInflightBytes), int64(cfg.MaxRequestBytes)),
		newRequestBudget(healthCalls*int64(cfg.MaxRequestBytes), int64(cfg.MaxRequestBytes)),
		publicOpts...)
	redirectv1.RegisterDecisionServiceServer(s.public, NewDecisionService(s.engine))
	healthpb.RegisterHealthServer(s.public, s.health)
	reflection.Register(s.public)
	if cfg.AdminAddr != "" {
		s.admin = newGRPCServer(nil, nil, adminOpts...)
		redirectv1.RegisterRuleServiceServer(s.admin, NewRuleService(s.source))
		healthpb.RegisterHealthServer(s.admin, s.health)
		reflection.Register(s.admin)
	}
	s.mux.HandleFunc("GET /healthz", s.serveHealthz)
	s.mux.HandleFunc("GET /readyz", s.serveReadyz)
	s.mux.Handle("GET /metrics", s.store.Metrics.Handler())
	if s.store.Path != "" {
		s.tasks = append(s.tasks, func(ctx context.Context) error { return s.store.Watch(ctx, cfg.ReloadDebounce) })
	}
	if s.url != nil {
		s.tasks = append(s.tasks, s.url.Poll)
	}
	if s.etcd != nil {
		s.tasks = append(s.tasks, s.etcd.Follow, s.etcd.Monitor)
	}

	// Other services register here, one line each. They may use
	// s.public, s.admin (nil when disabled), s.mux, s.engine, s.store and
	// append to s.tasks.
	registerAuthorization(s.public, NewAuthorizationService(s.engine, log, s.store.Metrics))
	MountForwardAuth(s.mux, NewForwardAuthHandler(s.engine, log, s.store.Metrics))

	if cfg.ConsoleAddr != "" {
		if s.console, s.consoleTLS, err = s.newConsole(); err != nil {
			return nil, err
		}
	}

	if err := s.listen(); err != nil {
		return nil, err
	}
	s.http = &http.Server{
		Handler:           s.mux,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	return s, nil
}

// listen binds every listener or none.
func (s *Server) listen() error {
	type binding struct {
		addr, flag string
		lis        *net.Listener
	}
	bindings := []binding{
		{s.cfg.GRPCAddr, "--grpc-addr", &s.publicLis},
		{s.cfg.HTTPAddr, "--http-addr", &s.httpLis},
	}
	if s.admin != nil {
		bindings = append(bindings, binding{s.cfg.AdminAddr, "--admin-addr", &s.adminLis})
	}
	if s.console != nil {
		bindings = append(bindings, binding{s.cfg.ConsoleAddr, "--console-addr", &s.consoleLis})
	}
	for _, b := range bindings {
		lis, err := net.Listen("tcp", b.addr)
		if err != nil {
			s.Close()
			return fmt.Errorf("listen on %s (%s, %s): %w", b.addr, b.flag, EnvName(strings.TrimPrefix(b.flag, "--")), err)
		}
		*b.lis = lis
	}
	return nil
}

// rulesFile is the rules file of --rules: "" when it is a URL.
func rulesFile(rules string) string {
	if IsRulesURL(rules) {
		return ""
	}
	return rules
}

// closeStore closes the etcd client, if there is one.
func (s *Server) closeStore() {
	if s.etcd != nil {
		s.etcd.Close()
	}
}

// Close releases the listeners of a Server that will not Run.
func (s *Server) Close() {
	s.closeStore()
	for _, lis := range []net.Listener{s.publicLis, s.httpLis, s.adminLis, s.consoleLis} {
		if lis != nil {
			lis.Close()
		}
	}
}

// GRPCAddr is the bound public gRPC address (useful with port 0).
func (s *Server) GRPCAddr() string { return s.publicLis.Addr().String() }

// HTTPAddr is the bound HTTP address.
func (s *Server) HTTPAddr() string { return s.httpLis.Addr().String() }

// AdminAddr is the bound admin gRPC address, or "" when disabled.
func (s *Server) AdminAddr() string {
	if s.adminLis == nil {
		return ""
	}
	return s.adminLis.Addr().String()
}

// Engine is the engine every adapter decides with.
func (s *Server) Engine() *Engine { return s.engine }

// Run serves until ctx is cancelled (SIGTERM), then shuts down gracefully.
// Health stays NOT_SERVING and /readyz 503 until the first rule set is
// loaded; a rules file that does not load is an error and nothing is
// served as ready.
func (s *Server) Run(ctx context.Context) error {
	s.setHealth(healthpb.HealthCheckResponse_NOT_SERVING)

	// The first failure stops the daemon; later ones are only logged.
	serveErr := make(chan error, 1)
	fail := func(err error) {
		select {
		case serveErr <- err:
		default:
			s.log.Error("failure while stopping", "error", err)
		}
	}
	var serving sync.WaitGroup
	serve := func(name string, fn func() error) {
		serving.Add(1)
		go func() {
			defer serving.Done()
			if err := fn(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				fail(fmt.Errorf("%s listener: %w", name, err))
			}
		}()
	}
	serve("gRPC", func() error { return s.public.Serve(s.publicLis) })
	serve("HTTP", func() error { return s.http.Serve(s.httpLis) })
	if s.admin != nil {
		serve("admin gRPC", func() error { return s.admin.Serve(s.adminLis) })
	}
	if s.console != nil {
		serve("console", func() error { return s.console.Serve(consoleListener(s.consoleLis, s.consoleTLS)) })
	}

	err := s.loadAtStart(ctx)
	if err != nil && ctx.Err() != nil {
		err = nil // stopped while waiting for the first load
	} else if err == nil {
		s.loaded.Store(true)
		s.setHealth(healthpb.HealthCheckResponse_SERVING)
		s.log.Info("redirectd serving", "grpc", s.GRPCAddr(), "http", s.HTTPAddr(), "admin", s.AdminAddr(), "console", s.ConsoleAddr())

		taskCtx, stopTasks := context.WithCancel(ctx)
		var tasks sync.WaitGroup
		for _, task := range s.tasks {
			tasks.Add(1)
			go func() {
				defer tasks.Done()
				if err := task(taskCtx); err != nil && taskCtx.Err() == nil {
					fail(err)
				}
			}()
		}
		select {
		case <-ctx.Done():
			s.log.Info("shutting down", "reason", context.Cause(ctx))
		case err = <-serveErr:
			s.log.Error("stopping after a failure", "error", err)
		}
		stopTasks()
		tasks.Wait()
	}
	drain := s.cfg.DrainDelay
	if !s.loaded.Load() {
		drain = 0 // never ready: no load balancer is sending
	}
	s.shutdown(drain)
	serving.Wait()
	s.closeStore()
	return err
}

// shutdown tells health checkers first, so load balancers and Envoy stop
// sending new calls, and keeps every listener serving for drain, the time
// they take to notice (README, "Daemon behaviour"). Then it ends streaming
// calls (a health Watch would otherwise hold the stop), stops accepting,
// and lets open unary calls finish until --shutdown-timeout. The HTTP
// listener closes last: /readyz answers 503 and forward-auth keeps
// answering while gRPC stops.
func (s *Server) shutdown(drain time.Duration) {
	s.stopping.Store(true)
	s.health.Shutdown() // every service NOT_SERVING, for good
	if drain > 0 {
		s.log.Info("draining: health NOT_SERVING, still serving until the drain delay is over", "drain_delay", drain)
		time.Sleep(drain)
	}
	s.endStreams()
	deadline := time.Now().Add(s.cfg.ShutdownTimeout)

	var wg sync.WaitGroup
	for _, srv := range []*grpcServer{s.public, s.admin} {
		if srv == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.stopGRPC(srv, deadline)
		}()
	}
	wg.Wait()
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	if s.console != nil {
		s.console.Shutdown(ctx) // pages only: whatever is still open is cut below
		s.console.Close()
	}
	if err := s.http.Shutdown(ctx); err != nil {
		s.log.Warn("HTTP requests still open at --shutdown-timeout; closing them", "error", err)
		s.http.Close()
	}
}

func (s *Server) stopGRPC(srv *grpcServer, deadline time.Time) {
	done := make(chan struct{})
	go func() {
		srv.GracefulStop()
		close(done)
	}()
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		s.log.Warn("gRPC calls still open at --shutdown-timeout; cutting them", "timeout", s.cfg.ShutdownTimeout)
		srv.Stop()
		<-done
	}
}

// endStreamAtShutdown gives a streaming call a context that also ends with
// s.streams, when the drain delay is over. Handlers that wait on their
// context (health Watch) then return at once; one blocked reading its
// client (reflection) ends when the client sends or at --shutdown-timeout.
func (s *Server) endStreamAtShutdown(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, next grpc.StreamHandler) error {
	ctx, cancel := context.WithCancel(ss.Context())
	defer cancel()
	defer context.AfterFunc(s.streams, cancel)()
	return next(srv, streamContext{ss, ctx})
}

// streamContext is a ServerStream with another context.
type streamContext struct {
	grpc.ServerStream
	ctx context.Context
}

func (s streamContext) Context() context.Context { return s.ctx }

// setHealth sets every service of both gRPC servers, and the whole server
// (""), to st: a per-service check and a plain check agree.
func (s *Server) setHealth(st healthpb.HealthCheckResponse_ServingStatus) {
	s.health.SetServingStatus("", st)
	for _, srv := range []*grpcServer{s.public, s.admin} {
		if srv == nil {
			continue
		}
		for name := range srv.GetServiceInfo() {
			s.health.SetServingStatus(name, st)
		}
	}
}

// serveHealthz answers 200 while the process runs: liveness only.
func (s *Server) serveHealthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintln(w, "ok")
}

// serveReadyz answers 200 only when a rule set is serving and shutdown
// has not begun, so traffic arrives when answers are right and leaves
// before the listeners close.
func (s *Server) serveReadyz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	switch {
	case s.stopping.Load():
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, "not ready: shutting down")
	case !s.loaded.Load():
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, "not ready: no rule set loaded yet")
	default:
		fmt.Fprintln(w, "ready")
	}
}

// loadAtStart serves --rules, or the built-in example when there is none,
// or the set in etcd, waiting for etcd as long as it takes. The error of a
// rejected file lists every problem with file:line.
func (s *Server) loadAtStart(ctx context.Context) error {
	if s.etcd != nil {
		return startupError(s.etcd.Load(ctx), "--store etcd")
	}
	if s.url != nil {
		return startupError(s.url.Load(ctx), "--rules")
	}
	if s.cfg.Rules == "" {
		s.log.Info("serving the built-in example rules; pass --rules FILE to serve your own", "rules", deploy.ExampleRulesName)
		return startupError(s.store.LoadBytes(deploy.ExampleRulesName, deploy.ExampleRules), "built-in example")
	}
	return startupError(s.store.Load(), "--rules")
}

// startupError lists every problem of a rejected rule set, one per line,
// so a person can fix the file in one pass; RulesError.Error stops at ten.
// The *decision.RulesError stays reachable with errors.As.
func startupError(err error, origin string) error {
	if err == nil {
		return nil
	}
	var re *decision.RulesError
	if !errors.As(err, &re) {
		return fmt.Errorf("load rules (%s): %w", origin, err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "rules (%s) rejected, %d problems:", origin, len(re.Problems))
	for _, p := range re.Problems {
		b.WriteString("\n  ")
		b.WriteString(p.String())
	}
	return &rejectedRules{msg: b.String(), err: re}
}

// rejectedRules carries the full message and the *decision.RulesError.
type rejectedRules struct {
	msg string
	err *decision.RulesError
}

func (e *rejectedRules) Error() string { return e.msg }
func (e *rejectedRules) Unwrap() error { return e.err }
