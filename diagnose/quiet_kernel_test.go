package diagnose_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/netdrop/netdrop/counters"
	"github.com/netdrop/netdrop/diagnose"
	"github.com/netdrop/netdrop/internal/testnet"
)

// TestQuietHostExitsZero runs the whole diagnosis (counters, tracer,
// sockets) three times on this host and three times in a fresh namespace,
// and expects nothing at warning or above each time: the exit code of
// `netdrop diagnose` on a quiet machine is 0, three runs out of three.
//
// The host is whatever machine runs the tests. The kernel tests that make
// drops on purpose run under one lock (/tmp/nd-kernel.lock) and clean up,
// so between them the host is quiet; a finding here that another process
// explains (a flood someone runs outside the lock) is printed in full so it
// can be told apart from a false alarm.
func TestQuietHostExitsZero(t *testing.T) {
	testnet.RequireRoot(t)
	ns := fmt.Sprintf("ndquiet%d", os.Getpid())
	testnet.MustRun(t, "ip", "netns", "add", ns)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	for _, where := range []counters.Target{counters.CurrentNetns(), counters.NamedNetns(ns)} {
		for run := 1; run <= 3; run++ {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			r, err := diagnose.Run(ctx, diagnose.Options{Interval: time.Second, Netns: where, Trace: "auto"})
			cancel()
			if err != nil {
				t.Fatalf("netns %q run %d: %v", where, run, err)
			}
			if sev, any := r.Worst(); any && sev >= diagnose.Warning {
				t.Errorf("netns %q run %d: worst finding %s, want below warning:%s", where, run, sev, withEvidence(r.Findings))
			}
		}
	}
}

// withEvidence lists findings with their evidence, to tell a false alarm
// from traffic someone else made.
func withEvidence(fs []diagnose.Finding) string {
	var b strings.Builder
	for _, f := range fs {
		fmt.Fprintf(&b, "\n  %s %s drops=%d %s", f.Severity, f.Stage, f.Drops, f.Title)
		for _, e := range f.Evidence {
			fmt.Fprintf(&b, "\n      %s %s +%d =%d", e.Source, e.Name(), e.Delta, e.Value)
		}
	}
	return b.String()
}
