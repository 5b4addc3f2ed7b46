package server

import (
	"context"
	"log/slog"
	"runtime/debug"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
)

// streamWorkers is how many calls run at once on parked workers: one
// connection's default MaxConcurrentStreams, at a few KiB of stack each.
const streamWorkers = DefaultMaxConcurrentStreams

// serverOptions are the options of every gRPC server the daemon runs (the
// public and the admin listener), and of the benchmark's no-op baseline.
//
// Per-request validation is not an interceptor: DecideBatch must report a
// bad request in its own slot, so the checks live with the service (and
// the field checks with the engine) instead of being applied twice.
func serverOptions(log *slog.Logger) []grpc.ServerOption {
	return []grpc.ServerOption{
		// Calls run on parked workers rather than a goroutine each: a new
		// goroutine's stack starts small and is copied every time a call
		// outgrows it (twice per Envoy Check, a fifth of the daemon's CPU
		// in a profile at 1M rules), where a worker's stack has already
		// grown. A call that finds every worker busy still gets a
		// goroutine of its own, so this bounds nothing.
		grpc.NumStreamWorkers(streamWorkers),
		// Protobuf, with Envoy's CheckRequest read straight from the wire
		// (registerAuthorization).
		grpc.ForceServerCodecV2(newServerCodec()),
		// Envoy and grpc-go clients ping idle connections; allow it, but
		// not more often than every 5 s (a faster pinger gets GOAWAY).
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
			MinTime:             5 * time.Second,
			PermitWithoutStream: true,
		}),
		// Find dead peers behind NATs and load balancers.
		grpc.KeepaliveParams(keepalive.ServerParameters{
			Time:    30 * time.Second,
			Timeout: 10 * time.Second,
		}),
		// Recovery outermost, so a panic anywhere below is caught.
		grpc.ChainUnaryInterceptor(recoverUnary(log), logUnary(log)),
		grpc.ChainStreamInterceptor(recoverStream(log)),
	}
}

// errPanic is what a caller sees when a handler panicked.
var errPanic = status.Error(codes.Internal, "internal error; the server log has the details")

// recoverUnary turns a handler panic into INTERNAL and logs the stack, so
// one bad request cannot take the process (and every proxy behind it) down.
func recoverUnary(log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		defer func() {
			if r := recover(); r != nil {
				log.ErrorContext(ctx, "panic in gRPC handler", "rpc", info.FullMethod, "panic", r, "stack", string(debug.Stack()))
				resp, err = nil, errPanic
			}
		}()
		return handler(ctx, req)
	}
}

func recoverStream(log *slog.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
		defer func() {
			if r := recover(); r != nil {
				log.ErrorContext(ss.Context(), "panic in gRPC stream handler", "rpc", info.FullMethod, "panic", r, "stack", string(debug.Stack()))
				err = errPanic
			}
		}()
		return handler(srv, ss)
	}
}

// logUnary logs every call: successes at debug (the hot path must not pay
// for a log line by default), the caller's mistakes at info, server
// failures at error with the cause the caller did not see.
func logUnary(log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := handler(ctx, req)
		code := status.Code(err)
		level := codeLevel(code)
		if log.Enabled(ctx, level) {
			attrs := []slog.Attr{
				slog.String("rpc", info.FullMethod),
				slog.String("code", code.String()),
				slog.Duration("took", time.Since(start)),
			}
			if err != nil {
				attrs = append(attrs, slog.String("error", err.Error()))
			}
			log.LogAttrs(ctx, level, "rpc", attrs...)
		}
		return resp, err
	}
}

func codeLevel(c codes.Code) slog.Level {
	switch c {
	case codes.OK:
		return slog.LevelDebug
	case codes.Internal, codes.Unknown, codes.DataLoss, codes.Unimplemented:
		return slog.LevelError
	}
	return slog.LevelInfo
}

// grpcServer is a gRPC server made with serverOptions whose services
// receive requests through recvRequest, so a request that does not decode
// answers INVALID_ARGUMENT, and, with budgets, within the bytes of
// requests in flight the process allows. gRPC calls a unary handler's
// decoder before any interceptor (and reports its failure as INTERNAL),
// so the handlers themselves are wrapped, once, when a service is
// registered. Register every service through it (the generated Register
// functions take it as a grpc.ServiceRegistrar).
type grpcServer struct {
	*grpc.Server
	// budget bounds the requests of every service but health, which has
	// a small budget of its own so that large requests filling budget
	// never make health checks fail. Both nil: no bound (the admin
	// listener).
	budget, healthBudget *requestBudget
}

func newGRPCServer(budget, healthBudget *requestBudget, opts ...grpc.ServerOption) *grpcServer {
	return &grpcServer{grpc.NewServer(opts...), budget, healthBudget}
}

// RegisterService registers impl with every handler of desc receiving its
// requests through the service's budget.
func (s *grpcServer) RegisterService(desc *grpc.ServiceDesc, impl any) {
	budget := s.budget
	if desc.ServiceName == healthpb.Health_ServiceDesc.ServiceName {
		budget = s.healthBudget
	}
	d := *desc
	d.Methods = make([]grpc.MethodDesc, len(desc.Methods))
	for i, m := range desc.Methods {
		handler := m.Handler
		m.Handler = func(srv any, ctx context.Context, dec func(any) error, ic grpc.UnaryServerInterceptor) (any, error) {
			var held int64
			defer func() { budget.release(held) }()
			return handler(srv, ctx, func(v any) (err error) {
				held, err = budget.receive(ctx, dec, v)
				return err
			}, ic)
		}
		d.Methods[i] = m
	}
	d.Streams = make([]grpc.StreamDesc, len(desc.Streams))
	for i, sd := range desc.Streams {
		handler := sd.Handler
		sd.Handler = func(srv any, ss grpc.ServerStream) error {
			return handler(srv, receivingStream{ss, budget})
		}
		d.Streams[i] = sd
	}
	s.Server.RegisterService(&d, impl)
}

// receivingStream receives a stream's requests within a budget. A
// stream's message is released once decoded: the handler's later work is
// not proportional to it.
type receivingStream struct {
	grpc.ServerStream
	budget *requestBudget
}

func (s receivingStream) RecvMsg(m any) error {
	held, err := s.budget.receive(s.Context(), s.ServerStream.RecvMsg, m)
	s.budget.release(held)
	return err
}
