package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/netdrop/netdrop/internal/testnet"
	"github.com/netdrop/netdrop/probe"
	"github.com/netdrop/netdrop/stage"
)

// TestProbeWhereOnThePath runs a probe across three namespaces (sender,
// router, receiver) with loss injected at one place at a time: the sender's
// qdisc (tbf with a small queue), the router's forwarding (an nft rule that
// drops one frame in ten) and the receiver's socket (a small SO_RCVBUF and a
// slow reader). Each end traces its own flow, the router's exporter runs
// with --trace --trace-flows and the client asks it with --via. The report
// must name the right place and stage each time, with a count within 5% of
// the kernel's own tool there (tc -s, the nft rule's counter, nstat), and
// leave almost nothing to the others.
func TestProbeWhereOnThePath(t *testing.T) {
	testnet.RequireRoot(t)
	for _, tool := range []string{"tc", "nft", "nstat"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("CI: %s (the reference tool) is missing", tool)
			}
			t.Skipf("needs %s as the reference tool", tool)
		}
	}
	c := testnet.NewChain(t, "hop")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// The router's exporter: watches the router's namespace, listens on
	// this process's loopback, traces with 5-tuples.
	ready := filepath.Join(t.TempDir(), "ready")
	ectx, stopExporter := context.WithCancel(ctx)
	var eout, eerr lockedBuffer
	exited := make(chan int, 1)
	go func() {
		exited <- Main(ectx, []string{"exporter", "--netns", c.Router, "--listen", "127.0.0.1:0", "--trace", "--trace-flows", "--no-sockets", "--ready-file", ready}, &eout, &eerr)
	}()
	t.Cleanup(func() { stopExporter(); <-exited })
	var via string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if b, err := os.ReadFile(ready); err == nil && len(bytes.TrimSpace(b)) > 0 {
			via = "http://" + strings.TrimSpace(string(b))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("exporter not ready: %s", eerr.String())
		}
	}

	const port = "4790"
	dst := c.ReceiverAddr.String() + ":" + port
	nftScript := filepath.Join(t.TempDir(), "drop.nft")
	os.WriteFile(nftScript, []byte(`table inet ndhop {
	counter hopdrop {}
	chain probe_forward {
		type filter hook forward priority 0;
		udp dport `+port+` numgen random mod 10 0 counter name hopdrop drop
	}
}
`), 0o600)

	for _, tc := range []struct {
		name         string
		inject, undo func(t *testing.T)
		reference    func(t *testing.T) uint64 // the kernel's count at the place
		server       []string
		side, hop    string
		stage        stage.ID
	}{
		{
			name: "sender qdisc",
			inject: func(t *testing.T) {
				testnet.MustRun(t, "tc", "-n", c.Sender, "qdisc", "add", "dev", "s0", "root", "tbf", "rate", "4mbit", "burst", "4kb", "limit", "4kb")
			},
			undo:      func(t *testing.T) { testnet.MustRun(t, "tc", "-n", c.Sender, "qdisc", "del", "dev", "s0", "root") },
			reference: func(t *testing.T) uint64 { return tcDrops(t, c.Sender, "s0") },
			side:      "sender", stage: stage.Qdisc,
		},
		{
			name:      "router firewall",
			inject:    func(t *testing.T) { testnet.In(t, c.Router, "nft", "-f", nftScript) },
			undo:      func(t *testing.T) { testnet.In(t, c.Router, "nft", "delete", "table", "inet", "ndhop") },
			reference: func(t *testing.T) uint64 { return nftCounter(t, c.Router, "ndhop", "hopdrop") },
			side:      "hop", hop: via, stage: stage.Netfilter,
		},
		{
			name:      "receiver socket buffer",
			inject:    func(t *testing.T) {},
			undo:      func(t *testing.T) {},
			reference: func(t *testing.T) uint64 { return testnet.Nstat(t, c.Receiver, "UdpRcvbufErrors") },
			server:    []string{"--rcvbuf", "4096", "--reader-delay", "2ms"},
			side:      "", stage: stage.SocketRcvbuf,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.inject(t)
			defer tc.undo(t)
			ref0 := tc.reference(t)
			var sout, serr lockedBuffer
			done := make(chan int, 1)
			go func() {
				args := append([]string{"probe", "server", "--netns", c.Receiver, "--listen", dst, "--once", "--json", "--trace", "on"}, tc.server...)
				done <- Main(ctx, args, &sout, &serr)
			}()
			var out, errb bytes.Buffer
			code := Main(ctx, []string{"probe", "client", "--netns", c.Sender, "--to", dst, "--rate", "20000", "--duration", "1s",
				"--trace", "on", "--via", via, "--json"}, &out, &errb)
			if sc := <-done; sc != ExitFindings {
				t.Errorf("server exit %d: %s", sc, serr.String())
			}
			ref := tc.reference(t) - ref0
			var rep probe.Report
			if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
				t.Fatalf("client exit %d, not one JSON report: %v\n%s\n%s", code, err, out.String(), errb.String())
			}
			a := rep.Attribution
			var got uint64
			var elsewhere []string
			for _, s := range a.Stages {
				if s.Side == tc.side && s.Hop == tc.hop && s.Stage == tc.stage {
					got += s.Frames
					if !s.Exact {
						t.Errorf("%s at %s: not exact", s.Stage, orDefault(s.Side, "receiver"))
					}
					continue
				}
				elsewhere = append(elsewhere, fmt.Sprintf("%s %s %s %d", orDefault(s.Side, "receiver"), s.Hop, s.Stage, s.Frames))
			}
			other := a.Lost - got
			t.Logf("lost %d: %s %s %s %d (reference %d), elsewhere %v, unaccounted %d", a.Lost, orDefault(tc.side, "receiver"), tc.hop, tc.stage, got, ref, elsewhere, a.Unaccounted)
			if ref < 500 {
				t.Fatalf("the fault dropped only %d frames (reference); the test needs hundreds", ref)
			}
			if diff := max(got, ref) - min(got, ref); float64(diff) > 0.05*float64(ref) {
				t.Errorf("%s: report %d, reference %d: more than 5%% apart", tc.name, got, ref)
			}
			if float64(other) > 0.05*float64(a.Lost) {
				t.Errorf("%d of %d lost frames given elsewhere (%v) or unaccounted (%d)", other, a.Lost, elsewhere, a.Unaccounted)
			}
			places := map[string]probe.Place{}
			for _, p := range a.Places {
				places[p.Side] = p
			}
			for _, side := range []string{"sender", "receiver", "hop"} {
				if p := places[side]; !p.Traced || !p.Flow {
					t.Errorf("%s: not traced on its flow: %+v", side, p)
				}
			}
		})
	}
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// tcDrops is the root qdisc's dropped count on dev in ns, as tc -s prints it.
func tcDrops(t *testing.T, ns, dev string) uint64 {
	t.Helper()
	out := testnet.MustRun(t, "tc", "-n", ns, "-s", "qdisc", "show", "dev", dev)
	m := regexp.MustCompile(`dropped (\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("tc -s qdisc: no dropped count in\n%s", out)
	}
	n, _ := strconv.ParseUint(m[1], 10, 64)
	return n
}

// nftCounter is a named nft counter's packets in ns.
func nftCounter(t *testing.T, ns, table, name string) uint64 {
	t.Helper()
	out := testnet.In(t, ns, "nft", "list", "counter", "inet", table, name)
	m := regexp.MustCompile(`packets (\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("nft list counter: no packets in\n%s", out)
	}
	n, _ := strconv.ParseUint(m[1], 10, 64)
	return n
}
