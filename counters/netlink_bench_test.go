package counters

// Benchmarks of the netlink and ioctl sources next to the reference tool that
// prints the same values, read from the same host in the same run, so the
// result is a ratio (netdrop's ns/op over the tool's) rather than a time
// that depends on the machine:
//
//	go test -run '^$' -bench 'Netlink' ./counters/
//
// The tools' time includes starting a process, which is what a user pays
// for each `ip -s link` too.

import (
	"context"
	"os/exec"
	"testing"
)

func benchSource(b *testing.B, src Source) {
	b.Helper()
	ctx := context.Background()
	opts := Options{Sources: []Source{src}}
	for b.Loop() {
		s := Collect(ctx, opts)
		if len(s.Unavailable) > 0 {
			b.Fatalf("%s: %+v", src.ID(), s.Unavailable)
		}
	}
}

func benchTool(b *testing.B, name string, args ...string) {
	b.Helper()
	if _, err := exec.LookPath(name); err != nil {
		b.Skipf("reference tool %s not installed", name)
	}
	for b.Loop() {
		if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
			b.Fatalf("%s: %v\n%s", name, err, out)
		}
	}
}

func BenchmarkNetlinkLinkStats(b *testing.B)   { benchSource(b, linkSource{}) }
func BenchmarkNetlinkLinkStatsIP(b *testing.B) { benchTool(b, "ip", "-s", "-s", "-j", "link", "show") }
func BenchmarkNetlinkQdisc(b *testing.B)       { benchSource(b, qdiscSource{}) }
func BenchmarkNetlinkQdiscTC(b *testing.B)     { benchTool(b, "tc", "-s", "-j", "qdisc", "show") }
func BenchmarkNetlinkNftables(b *testing.B)    { benchSource(b, nftablesSource{}) }
func BenchmarkNetlinkNftablesNft(b *testing.B) { benchTool(b, "nft", "-j", "list", "ruleset") }
