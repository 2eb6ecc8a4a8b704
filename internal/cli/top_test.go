package cli

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
)

// TestTopNeedsTerminal: top on a pipe or a file draws nothing, says what
// to use instead and exits 2, before reading anything of the kernel.
func TestTopNeedsTerminal(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for name, out := range map[string]interface{ Write([]byte) (int, error) }{"buffer": &bytes.Buffer{}, "file": f} {
		var stderr bytes.Buffer
		code := Main(context.Background(), []string{"top", "--netns", "no-such-netns-ndtop"}, out, &stderr)
		if code != ExitError {
			t.Errorf("%s: exit %d, want %d", name, code, ExitError)
		}
		for _, s := range []string{"needs a terminal", "netdrop record", "netdrop diagnose"} {
			if !strings.Contains(stderr.String(), s) {
				t.Errorf("%s: stderr %q lacks %q", name, stderr.String(), s)
			}
		}
	}
	var stderr bytes.Buffer
	if code := Main(context.Background(), []string{"top", "-i", "10ms"}, f, &stderr); code != ExitError || !strings.Contains(stderr.String(), "below the minimum") {
		t.Errorf("-i 10ms: exit %d, stderr %q", code, stderr.String())
	}
}
