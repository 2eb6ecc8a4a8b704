package exporter

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/netdrop/netdrop/counters"
)

// selfSigned writes a certificate for 127.0.0.1 and its key to dir and
// returns their paths and a pool that trusts the certificate.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "netdrop test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TestServeTLSBasicAuth serves /metrics on a real listener with a web
// configuration file that asks for TLS and basic auth: a scrape with the
// right password over TLS gets the metrics, a wrong or missing password
// gets 401, and plain HTTP gets no metrics.
func TestServeTLSBasicAuth(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, dir)
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	webConfig := filepath.Join(dir, "web.yml")
	cfg := "tls_server_config:\n  cert_file: " + certFile + "\n  key_file: " + keyFile + "\nbasic_auth_users:\n  prometheus: " + string(hash) + "\n"
	if err := os.WriteFile(webConfig, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := CheckWebConfig(webConfig); err != nil {
		t.Fatalf("CheckWebConfig: %v", err)
	}

	opts := Options{FS: counters.NewFS("testdata/before"), Sources: fixtureSources(), NoSockets: true}
	reg, _, err := NewRegistry(opts)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: Handler(reg, opts), ReadHeaderTimeout: 5 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
	done := make(chan error, 1)
	go func() { done <- Serve(ln, srv, webConfig, slog.New(slog.DiscardHandler)) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})

	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	get := func(scheme, user, pass string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, scheme+"://"+ln.Addr().String()+"/metrics", nil)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("https", "prometheus", "s3cret"); code != http.StatusOK || !strings.Contains(body, "netdrop_stage_drops_total") {
		t.Errorf("TLS with the right password: %d\n%.300s", code, body)
	}
	if code, _ := get("https", "prometheus", "wrong"); code != http.StatusUnauthorized {
		t.Errorf("TLS with a wrong password: %d, want 401", code)
	}
	if code, _ := get("https", "", ""); code != http.StatusUnauthorized {
		t.Errorf("TLS without a password: %d, want 401", code)
	}
	if code, body := get("http", "prometheus", "s3cret"); code == http.StatusOK || strings.Contains(body, "netdrop_") {
		t.Errorf("plain HTTP to the TLS listener served metrics: %d", code)
	}
}

// TestCheckWebConfig: a file the toolkit cannot use fails at start.
func TestCheckWebConfig(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"missing-cert": "tls_server_config:\n  cert_file: " + filepath.Join(dir, "nope.pem") + "\n  key_file: " + filepath.Join(dir, "nope.key") + "\n",
		"not-yaml":     "tls_server_config: [\n",
		"unknown-key":  "tls_server_config:\n  certfile: x\n",
	} {
		p := filepath.Join(dir, name+".yml")
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := CheckWebConfig(p); err == nil {
			t.Errorf("%s: CheckWebConfig accepted it", name)
		}
	}
	if err := CheckWebConfig(""); err != nil {
		t.Errorf("empty path (plain HTTP): %v", err)
	}
}
