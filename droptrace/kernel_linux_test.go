//go:build linux

package droptrace

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"

	"github.com/netdrop/netdrop/internal/netns"
	"github.com/netdrop/netdrop/internal/testnet"
)

// requireTracer skips without root; with root, a kernel that has BTF must
// run the tracer, so a failure to start is a test failure.
func requireTracer(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("kernel test: loading BPF programs needs root")
	}
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		t.Skip("kernel test: no kernel BTF (/sys/kernel/btf/vmlinux); tp_btf cannot attach")
	}
}

// mountTracefs mounts tracefs at /sys/kernel/tracing for the test when the
// kernel has it but nothing mounted it (fresh CI machines), so that the
// classic tracepoint path is tested rather than skipped; it unmounts what it
// mounted.
func mountTracefs(t *testing.T) {
	t.Helper()
	if _, err := readKfreeSkbFormat(""); err == nil || os.Geteuid() != 0 {
		return
	}
	fss, err := os.ReadFile("/proc/filesystems")
	if err != nil || !strings.Contains(string(fss), "\ttracefs\n") {
		return
	}
	const dir = "/sys/kernel/tracing"
	if err := unix.Mount("nodev", dir, "tracefs", 0, ""); err != nil {
		t.Logf("mounting tracefs: %v", err)
		return
	}
	t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
}

func startTracer(t *testing.T, opts Options) *Tracer {
	t.Helper()
	tr, err := Start(context.Background(), opts)
	if err != nil {
		t.Fatalf("Start(%+v): %v", opts, err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

// flood sends n UDP datagrams from namespace ns to dst as fast as the
// kernel takes them (sendmmsg batches), from an unconnected socket so that
// ICMP errors do not stop it. It returns how many were sent.
func flood(t testing.TB, ns string, dst netip.AddrPort, n int, limit time.Duration) int {
	t.Helper()
	sent, _ := floodCPU(t, ns, dst, n, limit)
	return sent
}

// floodCPU is flood that also returns the CPU time (user + system) of the
// sending thread. Receive processing of a veth runs in the sender's softirq
// context and is charged to it, so packets per CPU-second measure the
// per-packet cost of the whole path, tracer included, even when other
// processes compete for the CPUs.
func floodCPU(t testing.TB, ns string, dst netip.AddrPort, n int, limit time.Duration) (int, time.Duration) {
	t.Helper()
	sent := 0
	var cpu time.Duration
	err := netns.Do(ns, func() error {
		var r0, r1 unix.Rusage
		_ = unix.Getrusage(unix.RUSAGE_THREAD, &r0)
		defer func() {
			_ = unix.Getrusage(unix.RUSAGE_THREAD, &r1)
			cpu = time.Duration(r1.Utime.Nano() + r1.Stime.Nano() - r0.Utime.Nano() - r0.Stime.Nano())
		}()
		c, err := net.ListenPacket("udp4", "0.0.0.0:0")
		if err != nil {
			return err
		}
		defer c.Close()
		pc := ipv4.NewPacketConn(c)
		ua := net.UDPAddrFromAddrPort(dst)
		payload := make([]byte, 64)
		msgs := make([]ipv4.Message, 64)
		for i := range msgs {
			msgs[i] = ipv4.Message{Buffers: [][]byte{payload}, Addr: ua}
		}
		deadline := time.Now().Add(limit)
		for sent < n && time.Now().Before(deadline) {
			batch := msgs[:min(len(msgs), n-sent)]
			k, err := pc.WriteBatch(batch, 0)
			if err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) {
					return err
				}
				continue // ENOBUFS and the like: the kernel dropped, try again
			}
			sent += k
		}
		return nil
	})
	if err != nil {
		t.Fatalf("flood %s from %s: %v", dst, ns, err)
	}
	return sent, cpu
}

// settle waits until the tracer's count stops moving: the receive side
// runs in softirq and may trail the sender by a few milliseconds.
func settle(t *testing.T, tr *Tracer) Snapshot {
	t.Helper()
	var last uint64 = ^uint64(0)
	for range 50 {
		s, err := tr.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		n := s.Count(func(Row) bool { return true })
		if n == last {
			return s
		}
		last = n
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("drop counts did not settle within 5s")
	return Snapshot{}
}

var nftCounterRE = regexp.MustCompile(`counter packets (\d+) bytes`)

func nftCounter(t *testing.T, ns string) uint64 {
	t.Helper()
	out := testnet.In(t, ns, "nft", "list", "chain", "inet", "ndtrace", "in")
	m := nftCounterRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no counter in nft output:\n%s", out)
	}
	n, _ := strconv.ParseUint(m[1], 10, 64)
	return n
}

func attachModes(t *testing.T) []string {
	mountTracefs(t)
	modes := []string{"tp_btf"}
	if _, err := readKfreeSkbFormat(""); err == nil {
		modes = append(modes, "tracepoint")
	} else {
		t.Logf("classic tracepoint not tested: %v", err)
	}
	return modes
}

// TestNetfilterDropMatchesRuleCounter floods a UDP port that an nftables
// rule drops in namespace B and checks the tracer's NETFILTER_DROP count in
// B against the rule's own counter: they must be equal, packet for packet.
func TestNetfilterDropMatchesRuleCounter(t *testing.T) {
	requireTracer(t)
	testnet.RequireTool(t, "nft")
	for _, mode := range attachModes(t) {
		t.Run(mode, func(t *testing.T) {
			p := testnet.NewPair(t, "dtrace")
			testnet.In(t, p.B, "nft", "add", "table", "inet", "ndtrace")
			testnet.In(t, p.B, "nft", "add", "chain", "inet", "ndtrace", "in", "{ type filter hook input priority 0 ; }")
			testnet.In(t, p.B, "nft", "add", "rule", "inet", "ndtrace", "in", "udp", "dport", "7777", "counter", "drop")

			tr := startTracer(t, Options{Attach: mode, Netns: p.B, Flows: true, Stacks: true})
			before := nftCounter(t, p.B)
			dst := netip.AddrPortFrom(netip.AddrFrom4([4]byte(p.AddrB.To4())), 7777)
			sent := flood(t, p.A, dst, 200000, 5*time.Second)
			s := settle(t, tr)
			delta := nftCounter(t, p.B) - before

			bIno, err := netnsInode(p.B)
			if err != nil {
				t.Fatal(err)
			}
			var got uint64
			var rows []Row
			for _, r := range s.Rows {
				if r.Reason == "NETFILTER_DROP" && r.Netns == bIno {
					got += r.Count
					rows = append(rows, r)
				}
			}
			t.Logf("%s: sent %d, rule counter +%d, tracer NETFILTER_DROP %d in %d rows", mode, sent, delta, got, len(rows))
			if delta == 0 {
				t.Fatalf("the rule dropped nothing (sent %d): the test did not make drops", sent)
			}
			if got != delta {
				t.Fatalf("tracer counted %d NETFILTER_DROP in netns %d, nft rule counter moved by %d", got, bIno, delta)
			}
			for _, r := range rows {
				if r.Stage != "netfilter" || r.Ifname != "b0" || r.L4 != "udp" {
					t.Errorf("row %s at %s: stage %q ifname %q l4 %q, want netfilter, b0, udp", r.Reason, r.Location, r.Stage, r.Ifname, r.L4)
				}
				if len(r.Flows) == 0 || !strings.HasSuffix(r.Flows[0].Dst, ":7777") || !strings.HasPrefix(r.Flows[0].Src, p.AddrA.String()+":") {
					t.Errorf("row at %s: top flow %+v, want %s:* -> %s", r.Location, r.Flows, p.AddrA, dst)
				}
				var samples uint64
				for _, st := range r.Stacks {
					samples += st.Samples
					if !slices.ContainsFunc(st.Frames, func(f string) bool { return strings.HasPrefix(f, r.Function+"+") }) {
						t.Errorf("row at %s: stack %v does not contain %s", r.Location, st.Frames, r.Function)
					}
				}
				// Sampling: the first 8 per CPU, then one in 1024.
				if samples == 0 || samples > r.Count || samples < min(r.Count, 8) {
					t.Errorf("row at %s: %d stack samples for %d drops", r.Location, samples, r.Count)
				}
				var fsum uint64
				for _, f := range r.Flows {
					fsum += f.Count
				}
				if fsum != r.Count {
					t.Errorf("row at %s: flows sum to %d, row counts %d", r.Location, fsum, r.Count)
				}
			}
		})
	}
}

// TestNoSocketMatchesNstat floods a closed UDP port in namespace B and
// checks the tracer's NO_SOCKET count in B against Udp NoPorts (nstat).
func TestNoSocketMatchesNstat(t *testing.T) {
	requireTracer(t)
	testnet.RequireTool(t, "nstat")
	for _, mode := range attachModes(t) {
		t.Run(mode, func(t *testing.T) {
			p := testnet.NewPair(t, "dtrace")
			tr := startTracer(t, Options{Attach: mode, Netns: p.B, Reason: "NO_SOCKET"})
			before := testnet.Nstat(t, p.B, "UdpNoPorts")
			dst := netip.AddrPortFrom(netip.AddrFrom4([4]byte(p.AddrB.To4())), 7778)
			sent := flood(t, p.A, dst, 100000, 5*time.Second)
			s := settle(t, tr)
			delta := testnet.Nstat(t, p.B, "UdpNoPorts") - before
			got := s.Count(func(r Row) bool { return r.Reason == "NO_SOCKET" })
			t.Logf("%s: sent %d, UdpNoPorts +%d, tracer NO_SOCKET %d", mode, sent, delta, got)
			if delta == 0 {
				t.Fatalf("UdpNoPorts did not move (sent %d): the test did not make drops", sent)
			}
			if got != delta {
				t.Fatalf("tracer counted %d NO_SOCKET, Udp NoPorts moved by %d", got, delta)
			}
			for _, r := range s.Rows {
				if r.Stage != "no-socket" || r.Function != "__udp4_lib_rcv" {
					t.Errorf("NO_SOCKET row at %s: stage %q, want no-socket at __udp4_lib_rcv", r.Location, r.Stage)
				}
			}
			if len(s.Noise) != 0 || len(s.Rows) == 0 {
				t.Errorf("reason filter: rows %d noise %d, want only NO_SOCKET rows", len(s.Rows), len(s.Noise))
			}
		})
	}
}

// TestEventsLoseNothingSilently streams events through a deliberately
// small ring and checks that received + lost equals the aggregated count.
func TestEventsLoseNothingSilently(t *testing.T) {
	requireTracer(t)
	p := testnet.NewPair(t, "dtrace")
	tr := startTracer(t, Options{Netns: p.B, Events: true, RingSize: 4096, Reason: "NO_SOCKET"})
	var received uint64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range tr.Events() {
			if ev.Row.Reason != "NO_SOCKET" || ev.Flow == nil || !strings.HasSuffix(ev.Flow.Dst, ":7779") {
				t.Errorf("event %+v flow %+v: want NO_SOCKET to port 7779", ev.Row, ev.Flow)
			}
			received++
			time.Sleep(20 * time.Microsecond) // a slow reader, so the ring overflows
		}
	}()
	dst := netip.AddrPortFrom(netip.AddrFrom4([4]byte(p.AddrB.To4())), 7779)
	flood(t, p.A, dst, 20000, 5*time.Second)
	s := settle(t, tr)
	time.Sleep(300 * time.Millisecond)
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	<-done
	total := s.Count(func(Row) bool { return true })
	t.Logf("aggregated %d, events received %d, lost %d", total, received, s.LostEvents)
	if s.LostEvents == 0 {
		t.Errorf("a 4 KiB ring with a slow reader lost nothing: the overflow path was not exercised")
	}
	if received+s.LostEvents != total {
		t.Errorf("received %d + lost %d = %d, aggregated %d", received, s.LostEvents, received+s.LostEvents, total)
	}
}

// TestFilters checks the in-kernel filters against a flood they must keep
// or reject.
func TestFilters(t *testing.T) {
	requireTracer(t)
	p := testnet.NewPair(t, "dtrace")
	addrA := netip.AddrFrom4([4]byte(p.AddrA.To4()))
	dst := netip.AddrPortFrom(netip.AddrFrom4([4]byte(p.AddrB.To4())), 7780)
	cases := []struct {
		name string
		opts Options
		keep bool
	}{
		{"proto udp", Options{Proto: "udp"}, true},
		{"proto tcp", Options{Proto: "tcp"}, false},
		{"port 7780", Options{Port: 7780}, true},
		{"port 7781", Options{Port: 7781}, false},
		{"host A", Options{Host: addrA}, true},
		{"host other", Options{Host: netip.MustParseAddr("10.231.255.77")}, false},
		{"host v6", Options{Host: netip.MustParseAddr("fd00::1")}, false},
		{"reason NO_SOCKET", Options{Reason: "no_socket"}, true},
		{"reason NETFILTER_DROP", Options{Reason: "NETFILTER_DROP"}, false},
	}
	var trs []*Tracer
	for _, c := range cases {
		c.opts.Netns = p.B
		trs = append(trs, startTracer(t, c.opts))
	}
	flood(t, p.A, dst, 2000, 5*time.Second)
	settle(t, trs[0])
	for i, c := range cases {
		s, err := trs[i].Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		n := s.Count(func(r Row) bool { return r.Reason == "NO_SOCKET" })
		if c.keep && n == 0 || !c.keep && n != 0 {
			t.Errorf("%s: counted %d NO_SOCKET drops, want keep=%v", c.name, n, c.keep)
		}
	}
}

// TestNothingLeftAfterClose checks through the bpf syscall (program, link
// and map ids), not bpftool, that Close removes everything the tracer made.
func TestNothingLeftAfterClose(t *testing.T) {
	requireTracer(t)
	for _, mode := range attachModes(t) {
		t.Run(mode, func(t *testing.T) {
			tr, err := Start(context.Background(), Options{Attach: mode, Stacks: true, Flows: true, Events: true})
			if err != nil {
				t.Fatalf("Start: %v", err)
			}
			info := tr.Info()
			if info.ProgramID == 0 || info.LinkID == 0 || len(info.MapIDs) == 0 {
				t.Fatalf("info %+v: want program, link and map ids", info)
			}
			if !idLive(t, "prog", info.ProgramID) || !idLive(t, "link", info.LinkID) {
				t.Fatalf("program %d or link %d not visible while attached", info.ProgramID, info.LinkID)
			}
			if err := tr.Close(); err != nil {
				t.Fatal(err)
			}
			// The kernel frees maps and programs after an RCU grace period.
			deadline := time.Now().Add(5 * time.Second)
			for {
				left := leftovers(t, info)
				if len(left) == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("after Close: %s still exist", strings.Join(left, ", "))
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}

func leftovers(t *testing.T, info Info) []string {
	var left []string
	if idLive(t, "prog", info.ProgramID) {
		left = append(left, fmt.Sprintf("program %d", info.ProgramID))
	}
	if idLive(t, "link", info.LinkID) {
		left = append(left, fmt.Sprintf("link %d", info.LinkID))
	}
	for _, id := range info.MapIDs {
		if idLive(t, "map", id) {
			left = append(left, fmt.Sprintf("map %d", id))
		}
	}
	return left
}

// idLive walks the kernel's id space of one object kind and reports
// whether id is in it.
func idLive(t *testing.T, kind string, id uint32) bool {
	t.Helper()
	switch kind {
	case "prog":
		for cur := ebpf.ProgramID(0); ; {
			next, err := ebpf.ProgramGetNextID(cur)
			if err != nil {
				return false
			}
			if uint32(next) == id {
				return true
			}
			cur = next
		}
	case "map":
		for cur := ebpf.MapID(0); ; {
			next, err := ebpf.MapGetNextID(cur)
			if err != nil {
				return false
			}
			if uint32(next) == id {
				return true
			}
			cur = next
		}
	case "link":
		it := new(link.Iterator)
		defer it.Close()
		for it.Next() {
			if uint32(it.ID) == id {
				return true
			}
		}
		return false
	}
	t.Fatalf("unknown kind %s", kind)
	return false
}

// ourPrograms lists the ids of loaded programs named like the tracer's
// (the kernel keeps 15 bytes of a name: "kfree_skb_btf", "kfree_skb_tp").
func ourPrograms() map[ebpf.ProgramID]bool {
	out := map[ebpf.ProgramID]bool{}
	for id := ebpf.ProgramID(0); ; {
		next, err := ebpf.ProgramGetNextID(id)
		if err != nil {
			return out
		}
		id = next
		p, err := ebpf.NewProgramFromID(id)
		if err != nil {
			continue
		}
		pi, err := p.Info()
		p.Close()
		if err == nil && strings.HasPrefix(pi.Name, "kfree_skb_") {
			out[id] = true
		}
	}
}

// TestHelperTracerProcess is not a test: TestNothingLeftAfterExit runs the
// test binary as a child that starts a tracer and waits for a signal.
func TestHelperTracerProcess(t *testing.T) {
	ready := os.Getenv("DROPTRACE_HELPER_READY")
	if ready == "" {
		t.Skip("helper process for TestNothingLeftAfterExit")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	tr, err := Start(ctx, Options{Stacks: true, Flows: true, Events: true})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if err := os.WriteFile(ready, []byte(strconv.Itoa(int(tr.Info().ProgramID))), 0o600); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ctx.Done():
	case <-time.After(20 * time.Second):
	}
}

// TestNothingLeftAfterExit starts a tracer in a child process, ends it by
// SIGINT, SIGTERM and SIGKILL, and checks that its program is gone: nothing
// is pinned, so even SIGKILL leaves nothing behind.
func TestNothingLeftAfterExit(t *testing.T) {
	requireTracer(t)
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) {
			ready := filepath.Join(t.TempDir(), "ready")
			cmd := exec.Command(os.Args[0], "-test.run=^TestHelperTracerProcess$", "-test.count=1")
			cmd.Env = append(os.Environ(), "DROPTRACE_HELPER_READY="+ready)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
			var id int
			// Generous: a child that parses kernel BTF and kallsyms takes
			// over 10 s in a VM without KVM on a busy host (the 6.1 guest
			// of CI); the wait ends as soon as the child is ready.
			for deadline := time.Now().Add(60 * time.Second); ; {
				if b, err := os.ReadFile(ready); err == nil && len(b) > 0 {
					id, _ = strconv.Atoi(string(b))
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("child tracer did not become ready in 60s")
				}
				time.Sleep(20 * time.Millisecond)
			}
			if !ourPrograms()[ebpf.ProgramID(id)] {
				t.Fatalf("child's program %d not found by id walk while attached", id)
			}
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			_ = cmd.Wait()
			for deadline := time.Now().Add(5 * time.Second); ourPrograms()[ebpf.ProgramID(id)]; {
				if time.Now().After(deadline) {
					t.Fatalf("program %d still loaded after the child died by %s", id, sig)
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}

// TestHelperUnprivileged is not a test: TestUnprivilegedClearError runs the
// test binary as nobody with every capability dropped.
func TestHelperUnprivileged(t *testing.T) {
	if os.Getenv("DROPTRACE_HELPER_UNPRIV") == "" {
		t.Skip("helper process for TestUnprivilegedClearError")
	}
	_, err := Start(context.Background(), Options{})
	if !errors.Is(err, ErrPermission) {
		t.Fatalf("Start as uid %d: err = %v, want ErrPermission", os.Geteuid(), err)
	}
	if !strings.Contains(err.Error(), "CAP_BPF, CAP_PERFMON and CAP_SYSLOG") {
		t.Fatalf("error %q does not name the capabilities", err)
	}
}

// TestUnprivilegedClearError checks that a user without CAP_BPF and
// CAP_PERFMON gets the one clear line, not a verifier EPERM.
func TestUnprivilegedClearError(t *testing.T) {
	if os.Geteuid() != 0 {
		// Already unprivileged: check directly.
		_, err := Start(context.Background(), Options{})
		if !errors.Is(err, ErrPermission) {
			t.Fatalf("err = %v, want ErrPermission", err)
		}
		return
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("needs setpriv (util-linux) to drop privileges")
	}
	// The go test binary lives in a directory only root can enter.
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "droptrace.test")
	b, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all",
		bin, "-test.run=^TestHelperUnprivileged$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "DROPTRACE_HELPER_UNPRIV=1")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestHelperUnprivileged") {
		t.Fatalf("unprivileged child: %v\n%s", err, out)
	}
}

// TestNoTracefsClearError forces the classic tracepoint with a tracefs root
// that has no events: the error must say what is missing and how to fix it.
func TestNoTracefsClearError(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("kernel test: needs root to get past the privilege check")
	}
	_, err := Start(context.Background(), Options{Attach: "tracepoint", Tracefs: t.TempDir()})
	if !errors.Is(err, ErrNotSupported) || !strings.Contains(err.Error(), "format") {
		t.Fatalf("err = %v, want ErrNotSupported naming the missing format file", err)
	}
	if _, err := Start(context.Background(), Options{Attach: "kprobe"}); err == nil || !strings.Contains(err.Error(), "attach mode") {
		t.Fatalf("unknown attach mode: err = %v", err)
	}
	// A bad option is reported once, not once per attach mode tried.
	_, err = Start(context.Background(), Options{Reason: "NO_SUCH_REASON"})
	if err == nil || strings.Count(err.Error(), "unknown drop reason") != 1 {
		t.Fatalf("unknown reason: err = %v", err)
	}
}

// TestReasonsKernelBTFMatchTracefs reads the running kernel's reasons both
// ways: every name in the tracefs table must have the same value in BTF.
func TestReasonsKernelBTFMatchTracefs(t *testing.T) {
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		t.Skip("kernel test: no /sys/kernel/btf/vmlinux")
	}
	mountTracefs(t)
	format, err := readKfreeSkbFormat("")
	if err != nil {
		t.Skipf("kernel test: tracefs kfree_skb format unreadable: %v", err)
	}
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		t.Fatal(err)
	}
	fromBTF, err := ReasonsFromBTF(spec)
	if err != nil {
		t.Fatal(err)
	}
	fromFS, err := ReasonsFromFormat(format)
	if err != nil {
		t.Fatal(err)
	}
	got := map[uint32]string{}
	for c := range fromFS.names {
		got[c] = fromBTF.Name(c)
	}
	if diff := cmp.Diff(fromFS.names, got); diff != "" {
		t.Errorf("BTF names differ from tracefs (-tracefs +btf):\n%s", diff)
	}
}
