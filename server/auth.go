package server

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// MinTokenBytes is the shortest bearer token the daemon accepts: 16 random
// bytes are out of reach of guessing over the network, a short word is not.
const MinTokenBytes = 16

// RequireBearerToken returns server options that refuse every call, unary
// or streaming, without the metadata "authorization: Bearer <token>"
// (RFC 6750 section 2.1), with UNAUTHENTICATED. It does not judge the
// token (the daemon's configuration does, CheckToken) and logs nothing;
// the daemon's listener logs refused calls.
func RequireBearerToken(token string) []grpc.ServerOption {
	return requireBearerToken(token, nil)
}

// refusalLogInterval spaces the log lines of refused calls: a caller
// trying tokens in a loop must not flood the log (or the disk under it).
const refusalLogInterval = time.Second

// requireBearerToken is RequireBearerToken, logging a refused call with the
// caller's address to log (when not nil), at most once a refusalLogInterval
// with the number of refusals not logged since.
func requireBearerToken(token string, log *slog.Logger) []grpc.ServerOption {
	// Digests of a fixed size are compared, so neither the answer's timing
	// nor its length dependence reveals how long the token is or how much
	// of a guess was right.
	want := sha256.Sum256([]byte("Bearer " + token))
	var lastLog, unlogged atomic.Int64
	refused := func(ctx context.Context, method string) error {
		if log != nil {
			now, last := time.Now().UnixNano(), lastLog.Load()
			if now-last >= int64(refusalLogInterval) && lastLog.CompareAndSwap(last, now) {
				caller := "unknown"
				if p, ok := peer.FromContext(ctx); ok {
					caller = p.Addr.String()
				}
				log.WarnContext(ctx, "admin call refused: missing or wrong bearer token", "peer", caller, "rpc", method, "refused_unlogged", unlogged.Swap(0))
			} else {
				unlogged.Add(1)
			}
		}
		return status.Error(codes.Unauthenticated, `admin API: missing or wrong token; send metadata "authorization: Bearer <token>" (redirectctl: --token or REDIRECTD_ADMIN_TOKEN)`)
	}
	check := func(ctx context.Context, method string) error {
		md, _ := metadata.FromIncomingContext(ctx)
		for _, got := range md.Get("authorization") {
			sum := sha256.Sum256([]byte(got))
			if subtle.ConstantTimeCompare(sum[:], want[:]) == 1 {
				return nil
			}
		}
		return refused(ctx, method)
	}
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
			if err := check(ctx, info.FullMethod); err != nil {
				return nil, err
			}
			return next(ctx, req)
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, next grpc.StreamHandler) error {
			if err := check(ss.Context(), info.FullMethod); err != nil {
				return err
			}
			return next(srv, ss)
		}),
	}
}

// CheckToken refuses a bearer token that protects nothing: empty, white
// space only, or shorter than MinTokenBytes. origin names where it came
// from in the error.
func CheckToken(token, origin string) error {
	switch {
	case strings.TrimSpace(token) == "":
		return fmt.Errorf("%s: the admin token is empty or white space only; give a random token of at least %d bytes (openssl rand -hex 16)", origin, MinTokenBytes)
	case len(token) < MinTokenBytes:
		return fmt.Errorf("%s: the admin token is %d bytes; accepted: at least %d (openssl rand -hex 16)", origin, len(token), MinTokenBytes)
	}
	return nil
}

// ReadTokenFile reads a bearer token from a file (a Kubernetes Secret
// mount), without surrounding white space, and checks it (CheckToken).
func ReadTokenFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	token := strings.TrimSpace(string(b))
	if err := CheckToken(token, "admin token file "+path); err != nil {
		return "", err
	}
	return token, nil
}
