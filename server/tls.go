package server

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// TLSFiles names the PEM files of a listener's TLS setup.
type TLSFiles struct {
	Cert, Key string
	// ClientCA, when set, requires clients to present a certificate signed
	// by one of these CAs (mTLS).
	ClientCA string
}

// Enabled reports whether TLS is configured.
func (f TLSFiles) Enabled() bool { return f.Cert != "" || f.Key != "" }

// ServerConfig loads the files into a server TLS config (TLS 1.2 or
// later). The certificate is re-read when its file changes, so a rotated
// certificate (cert-manager, a Secret update) is served to new connections
// without a restart.
func (f TLSFiles) ServerConfig() (*tls.Config, error) {
	if f.Cert == "" || f.Key == "" {
		return nil, fmt.Errorf("TLS needs both a certificate and a key file (got cert %q, key %q)", f.Cert, f.Key)
	}
	kp := &keyPair{certFile: f.Cert, keyFile: f.Key}
	if _, err := kp.get(); err != nil {
		return nil, err
	}
	cfg := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return kp.get() },
	}
	if f.ClientCA != "" {
		pem, err := os.ReadFile(f.ClientCA)
		if err != nil {
			return nil, fmt.Errorf("client CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("client CA %s: no PEM certificate found", f.ClientCA)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// keyPair serves a certificate and reloads it when the certificate file's
// modification time changes; a broken new pair keeps the previous one.
type keyPair struct {
	certFile, keyFile string

	mu      sync.Mutex
	cert    *tls.Certificate
	modTime time.Time
}

func (k *keyPair) get() (*tls.Certificate, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	info, err := os.Stat(k.certFile)
	if err == nil && k.cert != nil && info.ModTime().Equal(k.modTime) {
		return k.cert, nil
	}
	cert, lerr := tls.LoadX509KeyPair(k.certFile, k.keyFile)
	if lerr != nil {
		if k.cert != nil {
			return k.cert, nil
		}
		return nil, fmt.Errorf("load TLS key pair %s, %s: %w", k.certFile, k.keyFile, lerr)
	}
	k.cert = &cert
	if err == nil {
		k.modTime = info.ModTime()
	}
	return k.cert, nil
}

// streamWindow and connWindow are the public listener's HTTP/2 flow-control
// windows (RFC 9113, section 5.2), fixed. A stream's window is what its
// client may send before the handler reads: gRPC's default grows it with
// its bandwidth estimate up to 16 MiB, so calls waiting for or refused by
// --max-inflight-bytes took in whole batches beside those being served,
// outside the budget (a peak RSS of 450 of 512 MiB in
// TestMemoryBoundUnderLargeBatches) and in the served calls' bandwidth
// (under the race detector, no batch answered in 8 s). Fixed, a
// connection's unread bytes stay under --max-concurrent-streams × 256 KiB
// (32 MiB with the defaults). The connection's window only paces the
// sender: gRPC gives it back as data arrives, read or not.
const streamWindow, connWindow = 256 << 10, 4 << 20

// publicListenerOptions are the public gRPC listener's limits on what one
// connection and one request may hold (README, "Memory bounds") and its
// TLS/mTLS option, if any.
func publicListenerOptions(cfg Config) ([]grpc.ServerOption, error) {
	opts := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(int(cfg.MaxRequestBytes)),
		grpc.MaxConcurrentStreams(uint32(cfg.MaxConcurrentStreams)),
		grpc.InitialWindowSize(streamWindow),
		grpc.InitialConnWindowSize(connWindow),
	}
	files := TLSFiles{Cert: cfg.TLSCert, Key: cfg.TLSKey, ClientCA: cfg.TLSClientCA}
	if !files.Enabled() {
		return opts, nil
	}
	tc, err := files.ServerConfig()
	if err != nil {
		return nil, fmt.Errorf("public listener TLS (--tls-cert, --tls-key, --tls-client-ca): %w", err)
	}
	return append(opts, grpc.Creds(credentials.NewTLS(tc))), nil
}
