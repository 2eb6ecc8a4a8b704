package cli

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestReadyFileSymlink plants symlinks where `exporter --ready-file P`
// writes (P, and P.tmp that earlier versions wrote through), as another user
// would in a shared directory: the files they point to keep their content,
// and P becomes netdrop's own regular file.
func TestReadyFileSymlink(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim")
	if err := os.WriteFile(victim, []byte("precious\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ready := filepath.Join(dir, "ready")
	for _, p := range []string{ready, ready + ".tmp"} {
		if err := os.Symlink(victim, p); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr bytes.Buffer
	code := make(chan int, 1)
	go func() {
		code <- Main(ctx, []string{"exporter", "--listen", "127.0.0.1:0", "--ready-file", ready, "--no-sockets"}, io.Discard, &stderr)
	}()
	var addr string
	for deadline := time.Now().Add(10 * time.Second); addr == "" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if fi, err := os.Lstat(ready); err == nil && fi.Mode().IsRegular() {
			b, _ := os.ReadFile(ready)
			addr = strings.TrimSpace(string(b))
		}
	}
	cancel()
	if c := <-code; c != ExitOK {
		t.Fatalf("exporter exit %d: %s", c, stderr.String())
	}
	if addr == "" || !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Errorf("ready file holds %q, want the listening address", addr)
	}
	if b, _ := os.ReadFile(victim); string(b) != "precious\n" {
		t.Errorf("the file behind the planted symlink was overwritten: %q", b)
	}

	// trace writes its ready file through the same function.
	if err := os.Remove(ready); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, ready); err != nil {
		t.Fatal(err)
	}
	if err := writeReadyFile(ready, []byte("42\n")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "precious\n" {
		t.Errorf("writeReadyFile wrote through a symlink: %q", b)
	}
}
