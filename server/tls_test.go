package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	redirectv1 "github.com/redirectd/redirectd/proto/redirect/v1"
)

// testPKI is a CA with a server certificate for 127.0.0.1 and a client
// certificate, written as PEM files.
type testPKI struct {
	caFile, serverCert, serverKey string
	client                        tls.Certificate
	roots                         *x509.CertPool
}

func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "redirectd test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	issue := func(serial int64, usage x509.ExtKeyUsage, ips []net.IP) ([]byte, []byte) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "redirectd test"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: ips, KeyUsage: x509.KeyUsageDigitalSignature,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		keyDER, _ := x509.MarshalECPrivateKey(key)
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	}
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	p := testPKI{caFile: write("ca.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}))}
	sc, sk := issue(2, x509.ExtKeyUsageServerAuth, []net.IP{net.ParseIP("127.0.0.1")})
	p.serverCert, p.serverKey = write("server.pem", sc), write("server-key.pem", sk)
	cc, ck := issue(3, x509.ExtKeyUsageClientAuth, nil)
	if p.client, err = tls.X509KeyPair(cc, ck); err != nil {
		t.Fatal(err)
	}
	p.roots = x509.NewCertPool()
	p.roots.AddCert(ca)
	return p
}

// TestAdminSecurity serves RuleService with the daemon's admin options
// (adminListenerOptions) and calls it as clients with and without a client
// certificate and the token.
func TestAdminSecurity(t *testing.T) {
	pki := newTestPKI(t)
	cfg := DefaultConfig()
	cfg.AdminTLSCert, cfg.AdminTLSKey, cfg.AdminClientCA = pki.serverCert, pki.serverKey, pki.caFile
	cfg.AdminToken = "tok"
	opts, err := adminListenerOptions(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	st := loadedStore(t, time.Now)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(opts...)
	redirectv1.RegisterRuleServiceServer(gs, NewRuleService(st))
	go gs.Serve(lis)
	t.Cleanup(gs.Stop)

	for _, tc := range []struct {
		name       string
		clientCert bool
		token      string
		code       codes.Code
	}{
		{"certificate and token", true, "tok", codes.OK},
		{"certificate, no token", true, "", codes.Unauthenticated},
		{"token, no certificate", false, "tok", codes.Unavailable}, // the TLS handshake fails
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc0 := &tls.Config{RootCAs: pki.roots, MinVersion: tls.VersionTLS12}
			if tc.clientCert {
				tc0.Certificates = []tls.Certificate{pki.client}
			}
			conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(credentials.NewTLS(tc0)))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if tc.token != "" {
				ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tc.token)
			}
			_, err = redirectv1.NewRuleServiceClient(conn).GetRule(ctx, &redirectv1.GetRuleRequest{Id: "old"})
			if status.Code(err) != tc.code {
				t.Errorf("got %v, want %v", err, tc.code)
			}
		})
	}
}

func TestTLSFilesErrors(t *testing.T) {
	pki := newTestPKI(t)
	for _, tc := range []struct {
		name  string
		files TLSFiles
	}{
		{"key missing", TLSFiles{Cert: pki.serverCert}},
		{"key file absent", TLSFiles{Cert: pki.serverCert, Key: "/nonexistent/key.pem"}},
		{"CA is not PEM", TLSFiles{Cert: pki.serverCert, Key: pki.serverKey, ClientCA: pki.serverKey}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := tc.files.ServerConfig(); err == nil {
				t.Error("want an error")
			}
		})
	}
}
