package server

import (
	"context"
	"log/slog"
	"net"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/emptypb"
)

// staticAuthorization answers every Check with OK without looking at it:
// the transport floor for Envoy-shaped requests.
type staticAuthorization struct {
	authv3.UnimplementedAuthorizationServer
}

func (staticAuthorization) Check(context.Context, *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	return okResponse, nil
}

// BenchmarkEnvoyCheck compares Envoy's Check with the no-op handler of
// BenchmarkGRPC in one run, on servers with the daemon's options: 50
// concurrent callers over 4 connections on loopback, client and server in
// this process. Check requests are Envoy-shaped (peers, time, the headers
// Envoy sends: about 400 bytes, where the no-op's request is empty), so a
// second baseline, noop-check, answers the same requests with a constant
// OK: the difference between it and check-* is redirectd's own work.
//
// pct-of-noop is throughput as a percentage of noop's, measured just
// before; cpu-pct-of-noop the same from CPU time per call, which does not
// depend on what else the machine is running.
//
//	go test -run '^$' -bench BenchmarkEnvoyCheck -benchtime 100000x -count 5 ./server/
func BenchmarkEnvoyCheck(b *testing.B) {
	log := slog.New(slog.DiscardHandler)
	redirectd := benchServer(b, log, func(s *grpc.Server) {
		registerAuthorization(s, NewAuthorizationService(edgeEngine(b), log, nil))
		s.RegisterService(&noopDesc, struct{}{})
	})
	static := benchServer(b, log, func(s *grpc.Server) {
		authv3.RegisterAuthorizationServer(s, staticAuthorization{})
	})

	var noopRate, noopCPU float64
	b.Run("noop", func(b *testing.B) {
		cpu0 := processCPU(b)
		runCallers(b, func(ctx context.Context, caller int) error {
			return redirectd[caller%benchConns].Invoke(ctx, noopMethod, &emptypb.Empty{}, new(emptypb.Empty))
		})
		noopRate = float64(b.N) / b.Elapsed().Seconds()
		noopCPU = float64(processCPU(b)-cpu0) / float64(b.N)
	})
	redirectReq := envoyCheck("GET", "example.com:8443", "/docs/intro?lang=en&lang=de")
	checks := []struct {
		name  string
		conns []*grpc.ClientConn
		in    *authv3.CheckRequest
		want  codes.Code
	}{
		{"noop-check", static, redirectReq, codes.OK},
		{"check-redirect", redirectd, redirectReq, codes.PermissionDenied},
		{"check-pass", redirectd, envoyCheck("GET", "example.com:8443", "/pricing?plan=pro"), codes.OK},
	}
	for _, c := range checks {
		clients := make([]authv3.AuthorizationClient, len(c.conns))
		for i, conn := range c.conns {
			clients[i] = authv3.NewAuthorizationClient(conn)
		}
		b.Run(c.name, func(b *testing.B) {
			cpu0 := processCPU(b)
			runCallers(b, func(ctx context.Context, caller int) error {
				resp, err := clients[caller%benchConns].Check(ctx, c.in)
				if err == nil && codes.Code(resp.GetStatus().GetCode()) != c.want {
					b.Errorf("Check answered %v, want %v", resp.GetStatus(), c.want)
				}
				return err
			})
			cpu := float64(processCPU(b)-cpu0) / float64(b.N)
			if noopRate > 0 {
				b.ReportMetric(100*float64(b.N)/b.Elapsed().Seconds()/noopRate, "pct-of-noop")
				b.ReportMetric(100*noopCPU/cpu, "cpu-pct-of-noop")
			}
		})
	}
}

// benchServer serves what register adds on a loopback listener with the
// daemon's server options and returns benchConns client connections.
func benchServer(b *testing.B, log *slog.Logger, register func(*grpc.Server)) []*grpc.ClientConn {
	b.Helper()
	srv := grpc.NewServer(serverOptions(log)...)
	register(srv)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(lis)
	b.Cleanup(srv.Stop)
	conns := make([]*grpc.ClientConn, benchConns)
	for i := range conns {
		conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { conn.Close() })
		conns[i] = conn
	}
	return conns
}
