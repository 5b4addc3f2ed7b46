package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"github.com/redirectd/redirectd/decision"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	redirectv1 "github.com/redirectd/redirectd/proto/redirect/v1"
	"github.com/redirectd/redirectd/server"
)

// TestDecideOverTLS: --ca makes the CLI use TLS even on loopback and
// verifies the server with that CA; without it, loopback means plaintext,
// which a TLS server refuses.
func TestDecideOverTLS(t *testing.T) {
	dir := t.TempDir()
	cert, caFile := selfSigned(t, dir)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}})))
	engine := server.NewEngine(decision.NewStore(decision.Options{}), time.Now)
	redirectv1.RegisterDecisionServiceServer(s, server.NewDecisionService(engine))
	go s.Serve(lis)
	t.Cleanup(s.Stop)
	addr := lis.Addr().String()
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name     string
		args     []string
		wantCode int
		want     string
	}{
		{"TLS with the CA", []string{"--ca", caFile}, 0, "no redirect"},
		{"TLS with the CA, name checked", []string{"--ca", caFile, "--server-name", "redirectd.test"}, 0, "no redirect"},
		{"TLS, wrong name", []string{"--ca", caFile, "--server-name", "other.test"}, 1, "unavailable"},
		{"plaintext to a TLS server", nil, 1, "unavailable"},
		{"missing CA file", []string{"--ca", filepath.Join(dir, "missing.pem")}, 1, "--ca: open"},
		{"CA file without PEM", []string{"--ca", notPEM}, 1, "no PEM certificate found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"decide", "--server", addr, "--timeout", "5s"}, tt.args...)
			code, stdout, stderr := cli(t, append(args, "GET", "https://example.com/")...)
			if code != tt.wantCode {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, tt.wantCode, stderr)
			}
			if !strings.Contains(stdout+stderr, tt.want) {
				t.Errorf("output lacks %q:\nstdout:\n%s\nstderr:\n%s", tt.want, stdout, stderr)
			}
		})
	}
}

// selfSigned makes a certificate for 127.0.0.1 and redirectd.test and
// writes it as the CA file clients trust.
func selfSigned(t *testing.T, dir string) (tls.Certificate, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "redirectd test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"redirectd.test"},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, caFile
}
