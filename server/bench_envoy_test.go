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

// BenchmarkEnvoyCheck compares Envoy's Check with the no-op handler of
// BenchmarkGRPC in one run, on one server with the daemon's options: 50
// concurrent callers over 4 connections on loopback, client and server in
// this process. Check requests are Envoy-shaped (peers, time, all the
// headers Envoy sends). pct-of-noop is Check's throughput as a percentage
// of the no-op's measured just before it.
//
//	go test -run '^$' -bench BenchmarkEnvoyCheck -benchtime 100000x -count 5 ./server/
func BenchmarkEnvoyCheck(b *testing.B) {
	log := slog.New(slog.DiscardHandler)
	srv := grpc.NewServer(serverOptions(log)...)
	authv3.RegisterAuthorizationServer(srv, NewAuthorizationService(edgeEngine(b), log, nil))
	srv.RegisterService(&noopDesc, struct{}{})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(lis)
	defer srv.Stop()

	conns := make([]*grpc.ClientConn, benchConns)
	clients := make([]authv3.AuthorizationClient, benchConns)
	for i := range conns {
		conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close()
		conns[i], clients[i] = conn, authv3.NewAuthorizationClient(conn)
	}

	var noopPerSecond float64
	b.Run("noop", func(b *testing.B) {
		runCallers(b, func(ctx context.Context, caller int) error {
			return conns[caller%benchConns].Invoke(ctx, noopMethod, &emptypb.Empty{}, new(emptypb.Empty))
		})
		noopPerSecond = float64(b.N) / b.Elapsed().Seconds()
	})
	checks := []struct {
		name string
		in   *authv3.CheckRequest
		want codes.Code
	}{
		{"check-redirect", envoyCheck("GET", "example.com:8443", "/docs/intro?lang=en&lang=de"), codes.PermissionDenied},
		{"check-pass", envoyCheck("GET", "example.com:8443", "/pricing?plan=pro"), codes.OK},
	}
	for _, c := range checks {
		b.Run(c.name, func(b *testing.B) {
			runCallers(b, func(ctx context.Context, caller int) error {
				resp, err := clients[caller%benchConns].Check(ctx, c.in)
				if err == nil && codes.Code(resp.GetStatus().GetCode()) != c.want {
					b.Errorf("Check answered %v, want %v", resp.GetStatus(), c.want)
				}
				return err
			})
			if noopPerSecond > 0 {
				b.ReportMetric(100*float64(b.N)/b.Elapsed().Seconds()/noopPerSecond, "pct-of-noop")
			}
		})
	}
}
