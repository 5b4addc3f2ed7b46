package server

import (
	"context"
	"crypto/subtle"
	"fmt"
	"os"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// RequireBearerToken returns server options that refuse every call, unary
// or streaming, without the metadata "authorization: Bearer <token>"
// (RFC 6750 section 2.1), with UNAUTHENTICATED.
func RequireBearerToken(token string) []grpc.ServerOption {
	want := []byte("Bearer " + token)
	check := func(ctx context.Context) error {
		md, _ := metadata.FromIncomingContext(ctx)
		for _, got := range md.Get("authorization") {
			// Constant time, so the answer's timing does not reveal how
			// much of a guessed token was right.
			if subtle.ConstantTimeCompare([]byte(got), want) == 1 {
				return nil
			}
		}
		return status.Error(codes.Unauthenticated, `admin API: missing or wrong token; send metadata "authorization: Bearer <token>" (redirectctl: --token or REDIRECTD_ADMIN_TOKEN)`)
	}
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
			if err := check(ctx); err != nil {
				return nil, err
			}
			return next(ctx, req)
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, next grpc.StreamHandler) error {
			if err := check(ss.Context()); err != nil {
				return err
			}
			return next(srv, ss)
		}),
	}
}

// ReadTokenFile reads a bearer token from a file (a Kubernetes Secret
// mount), without surrounding white space.
func ReadTokenFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	token := strings.TrimSpace(string(b))
	if token == "" {
		return "", fmt.Errorf("admin token file %s is empty", path)
	}
	return token, nil
}
