package server

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	redirectv1 "github.com/redirectd/redirectd/proto/redirect/v1"
)

func TestReadTokenFile(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		name, content, want string // want: "" = accepted, else part of the error
	}{
		{"empty", "", "empty or white space"},
		{"white space", " \n\t\n", "empty or white space"},
		{"short", "s3cret-token\n", "12 bytes"},
		{"16 bytes and a newline", "0123456789abcdef\n", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, tt.name)
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			token, err := ReadTokenFile(path)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.want == "" && token != strings.TrimSpace(tt.content):
				t.Fatalf("token %q, want %q", token, strings.TrimSpace(tt.content))
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), path)):
				t.Fatalf("error %v; want one naming %s and saying %q", err, path, tt.want)
			}
		})
	}
}

// TestRefusedTokenLogged: a refused admin call is logged with the caller's
// address, and a flood of them makes one line, not one per call.
func TestRefusedTokenLogged(t *testing.T) {
	cfg := testConfig()
	cfg.AdminToken = "0123456789abcdef-right"
	r := start(t, cfg)
	var local string
	conn, err := grpc.NewClient(r.AdminAddr(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
			if err == nil {
				local = c.LocalAddr().String()
			}
			return c, err
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := redirectv1.NewRuleServiceClient(conn)
	for _, token := range []string{"0123456789abcdef-wrong", "0123456789abcdef-righ", "", "0123456789abcdef-right-and-more"} {
		ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+token)
		if _, err := c.GetRuleStats(ctx, &redirectv1.GetRuleStatsRequest{}); status.Code(err) != codes.Unauthenticated {
			t.Fatalf("token %q: %v, want Unauthenticated", token, err)
		}
	}
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+cfg.AdminToken)
	if _, err := c.GetRuleStats(ctx, &redirectv1.GetRuleStatsRequest{}); err != nil {
		t.Fatalf("right token: %v", err)
	}
	var lines []string
	for _, l := range strings.Split(r.logs.String(), "\n") {
		if strings.Contains(l, "admin call refused") {
			lines = append(lines, l)
		}
	}
	if len(lines) != 1 || !strings.Contains(lines[0], local) {
		t.Fatalf("want one log line of a refused admin call naming the caller %s, got %d:\n%s", local, len(lines), strings.Join(lines, "\n"))
	}
}
