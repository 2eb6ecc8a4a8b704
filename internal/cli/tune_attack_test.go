package cli

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netdrop/netdrop/diagnose"
	"github.com/netdrop/netdrop/internal/testnet"
	"github.com/netdrop/netdrop/internal/tune"
)

// TestTuneRollbackAttack is attacks 1 and 6 end to end, on a namespace-local
// sysctl (net.ipv4.tcp_fin_timeout in a throwaway namespace) standing in
// for kernel.core_pattern: a rollback file owned by nobody with mode 0666 is
// refused and the value stays; the same content in a file only root can
// write is applied once, and a replay is refused.
func TestTuneRollbackAttack(t *testing.T) {
	p := testnet.NewPair(t, "clirbatk")
	const file = "/proc/sys/net/ipv4/tcp_fin_timeout"
	testnet.In(t, p.B, "sh", "-c", "echo 47 > "+file)
	body := fmt.Sprintf(`{"version":1,"netns":%q,"created":"2026-01-01T00:00:00Z","entries":[{"setting":{"kind":"sysctl","target":"net.ipv4.tcp_fin_timeout"},"raw":%q,"value":"33","applied":"47"}]}`,
		p.B, base64.StdEncoding.EncodeToString([]byte("33\n")))
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	forged := filepath.Join(dir, "forged.json")
	if err := os.WriteFile(forged, []byte(body), 0o666); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(forged, 0o666); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(forged, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	var errb bytes.Buffer
	if c := Main(context.Background(), []string{"tune", "--rollback", forged}, io.Discard, &errb); c != ExitError || !strings.Contains(errb.String(), "refused") {
		t.Errorf("forged rollback file: exit %d, stderr %q; want exit %d and a refusal", c, errb.String(), ExitError)
	}
	if got := testnet.In(t, p.B, "cat", file); got != "47\n" {
		t.Errorf("the forged file was applied: tcp_fin_timeout = %q", got)
	}

	own := filepath.Join(dir, "own.json")
	if err := os.WriteFile(own, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	errb.Reset()
	if c := Main(context.Background(), []string{"tune", "--rollback", own}, &out, &errb); c != ExitOK {
		t.Fatalf("root's own rollback file: exit %d: %s", c, errb.String())
	}
	if got := testnet.In(t, p.B, "cat", file); got != "33\n" {
		t.Errorf("after rollback tcp_fin_timeout = %q, want 33", got)
	}
	// Replay after the value was set again: refused, nothing written.
	testnet.In(t, p.B, "sh", "-c", "echo 47 > "+file)
	errb.Reset()
	if c := Main(context.Background(), []string{"tune", "--rollback", own}, io.Discard, &errb); c != ExitError || !strings.Contains(errb.String(), "was used on") {
		t.Errorf("replayed rollback file: exit %d, stderr %q", c, errb.String())
	}
	if got := testnet.In(t, p.B, "cat", file); got != "47\n" {
		t.Errorf("a replay wrote tcp_fin_timeout = %q", got)
	}
}

// TestApplyPrecheck: with nothing to change --apply needs nothing (no
// directory, no root); with changes a user other than root is refused
// before anything is created.
func TestApplyPrecheck(t *testing.T) {
	empty := &tune.Plan{Items: []tune.Item{{Setting: tune.Setting{Kind: diagnose.ChangeSysctl, Target: "net.core.somaxconn"}, Skip: "already set"}}}
	work := &tune.Plan{Items: []tune.Item{{Setting: tune.Setting{Kind: diagnose.ChangeSysctl, Target: "net.core.somaxconn"}, Proposed: "8192"}}}
	tests := []struct {
		name        string
		p           *tune.Plan
		euid        int
		nothing     bool
		errContains string
	}{
		{"nothing, user", empty, 65534, true, ""},
		{"nothing, root", empty, 0, true, ""},
		{"changes, user", work, 65534, false, "needs root"},
		{"changes, root", work, 0, false, ""},
	}
	for _, tt := range tests {
		nothing, err := applyPrecheck(tt.p, tt.euid)
		if nothing != tt.nothing || (err == nil) != (tt.errContains == "") || (err != nil && !strings.Contains(err.Error(), tt.errContains)) {
			t.Errorf("%s: applyPrecheck = %v, %v", tt.name, nothing, err)
		}
	}
}

// TestIntervalRefused: intervals below 100 ms are refused with the reason;
// 0 stays "off" where it means that (trace).
func TestIntervalRefused(t *testing.T) {
	for _, args := range [][]string{
		{"diagnose", "-i", "1ns"},
		{"diagnose", "--interval", "99ms"},
		{"tune", "-i", "50ms"},
		{"trace", "--interval", "10ms"},
	} {
		var errb bytes.Buffer
		if c := Main(context.Background(), args, io.Discard, &errb); c != ExitError || !strings.Contains(errb.String(), "below the minimum of 100ms") {
			t.Errorf("%v: exit %d, stderr %q", args, c, errb.String())
		}
	}
	if err := checkInterval("--interval", 0, true); err != nil {
		t.Errorf("trace --interval 0: %v", err)
	}
	if err := checkInterval("--interval", minInterval, false); err != nil {
		t.Errorf("--interval %s: %v", minInterval, err)
	}
}
