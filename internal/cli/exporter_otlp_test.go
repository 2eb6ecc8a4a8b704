package cli

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestExporterOTLPDown runs `netdrop exporter --otlp` against a collector
// that is down: the exporter logs the failed push with the endpoint and
// the reason, and keeps serving /metrics.
func TestExporterOTLPDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + ln.Addr().String()
	ln.Close()
	ready := filepath.Join(t.TempDir(), "ready")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr lockedBuffer
	code := make(chan int, 1)
	go func() {
		code <- Main(ctx, []string{"exporter", "--listen", "127.0.0.1:0", "--ready-file", ready, "--no-sockets", "--otlp", down, "--otlp-interval", "1s"}, io.Discard, &stderr)
	}()
	var addr string
	for deadline := time.Now().Add(10 * time.Second); addr == "" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if b, err := os.ReadFile(ready); err == nil {
			addr = strings.TrimSpace(string(b))
		}
	}
	if addr == "" {
		cancel()
		t.Fatalf("exporter never ready (exit %d): %s", <-code, stderr.String())
	}
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(stderr.String(), "OTLP push failed") && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	cancel()
	if c := <-code; c != ExitOK {
		t.Errorf("exporter exit %d", c)
	}
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "netdrop_stage_drops_total") {
		t.Errorf("GET /metrics while the collector is down: %s\n%.300s", resp.Status, body)
	}
	log := stderr.String()
	for _, want := range []string{"level=ERROR", "OTLP push failed; /metrics keeps serving", "endpoint=" + down + "/v1/metrics", "connection refused"} {
		if !strings.Contains(log, want) {
			t.Errorf("stderr lacks %q:\n%s", want, log)
		}
	}
}

// TestExporterOTLPBadURL: a URL netdrop cannot push to is a usage error
// before anything is served.
func TestExporterOTLPBadURL(t *testing.T) {
	for _, args := range [][]string{
		{"--otlp", "collector:4318"},
		{"--otlp", "grpc://collector:4317"},
		{"--otlp", "http://collector", "--otlp-header", "novalue"},
		{"--otlp", "http://collector", "--otlp-interval", "10ms"},
	} {
		var stderr lockedBuffer
		c := Main(context.Background(), append([]string{"exporter", "--listen", "127.0.0.1:0", "--no-sockets"}, args...), io.Discard, &stderr)
		if c != ExitError {
			t.Errorf("%v: exit %d, want 2", args, c)
		}
		if !strings.Contains(stderr.String(), "--otlp") {
			t.Errorf("%v: stderr does not name the flag:\n%s", args, stderr.String())
		}
	}
}
