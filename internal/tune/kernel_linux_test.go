package tune

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/netdrop/netdrop/counters"
	"github.com/netdrop/netdrop/diagnose"
	"github.com/netdrop/netdrop/internal/netns"
	"github.com/netdrop/netdrop/internal/testnet"
	"github.com/netdrop/netdrop/sockets"
	"github.com/netdrop/netdrop/stage"
)

// hostValues reads sysctls in the test process's own namespace, to prove a
// namespaced apply and rollback never touch the host.
func hostValues(t *testing.T, names ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, n := range names {
		b, err := os.ReadFile("/proc/sys/" + strings.ReplaceAll(n, ".", "/"))
		if err != nil {
			t.Fatal(err)
		}
		out[n] = string(b)
	}
	return out
}

func TestKernelApplyRollbackByteExact(t *testing.T) {
	p := testnet.NewPair(t, "tune")
	names := []string{"net.core.somaxconn", "net.ipv4.ip_local_port_range", "net.ipv4.tcp_fin_timeout"}
	host := hostValues(t, names...)
	sys := Kernel{Netns: netns.Named(p.B)}
	before := map[string]string{}
	for _, n := range names {
		v, err := sys.Read(sysctl(n))
		if err != nil {
			t.Fatal(err)
		}
		before[n] = v
	}
	if !strings.Contains(before["net.ipv4.ip_local_port_range"], "\t") {
		t.Fatalf("ip_local_port_range reads %q: expected the kernel's tab-separated form", before["net.ipv4.ip_local_port_range"])
	}
	plan := planOf(
		item(sysctl("net.core.somaxconn"), "7777"),
		item(sysctl("net.ipv4.ip_local_port_range"), "20000 40000"),
		item(sysctl("net.ipv4.tcp_fin_timeout"), "17"),
	)
	plan.Netns = p.B
	rbPath := filepath.Join(t.TempDir(), "rollback.json")
	res, err := Apply(plan, sys, rbPath)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Applied) != 3 {
		t.Fatalf("applied %d changes, want 3", len(res.Applied))
	}
	// The reference: the kernel's own files through ip netns exec.
	if got := testnet.In(t, p.B, "cat", "/proc/sys/net/ipv4/ip_local_port_range"); got != "20000\t40000\n" {
		t.Errorf("after apply, ip_local_port_range = %q", got)
	}
	if got := testnet.In(t, p.B, "cat", "/proc/sys/net/core/somaxconn"); got != "7777\n" {
		t.Errorf("after apply, somaxconn = %q", got)
	}
	rb, err := ReadRollback(rbPath)
	if err != nil {
		t.Fatal(err)
	}
	if rb.Netns != p.B {
		t.Errorf("rollback file netns = %q, want %q", rb.Netns, p.B)
	}
	if _, err := RollbackFrom(sys, rb); err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		got := testnet.In(t, p.B, "cat", "/proc/sys/"+strings.ReplaceAll(n, ".", "/"))
		if got != before[n] {
			t.Errorf("after rollback %s = %q, want byte-exact %q", n, got, before[n])
		}
	}
	for n, v := range hostValues(t, names...) {
		if v != host[n] {
			t.Errorf("host %s changed from %q to %q", n, host[n], v)
		}
	}
}

func TestKernelFailureHalfwayRollsBack(t *testing.T) {
	p := testnet.NewPair(t, "tune")
	sys := Kernel{Netns: netns.Named(p.B)}
	names := []string{"net.ipv4.ip_local_port_range", "net.ipv4.tcp_fin_timeout", "net.core.somaxconn"}
	before := map[string]string{}
	for _, n := range names {
		before[n], _ = sys.Read(sysctl(n))
	}
	// The kernel rejects a negative somaxconn (proc_dointvec_minmax with a
	// minimum of 0): the third change fails after two were made.
	plan := planOf(
		item(sysctl("net.ipv4.ip_local_port_range"), "20000 40000"),
		item(sysctl("net.ipv4.tcp_fin_timeout"), "17"),
		item(sysctl("net.core.somaxconn"), "-5"),
	)
	rbPath := filepath.Join(t.TempDir(), "rollback.json")
	_, err := Apply(plan, sys, rbPath)
	if err == nil {
		t.Fatal("apply of somaxconn=-5 succeeded")
	}
	if !errors.Is(err, unix.EINVAL) || !strings.Contains(err.Error(), "change 3 of 3 failed") || !strings.Contains(err.Error(), "2 changes made were rolled back") {
		t.Errorf("err = %v, want EINVAL on change 3 and 2 rolled back", err)
	}
	for _, n := range names {
		got := testnet.In(t, p.B, "cat", "/proc/sys/"+strings.ReplaceAll(n, ".", "/"))
		if got != before[n] {
			t.Errorf("after failed apply %s = %q, want %q", n, got, before[n])
		}
	}
}

func TestKernelUnknownAndReadOnly(t *testing.T) {
	p := testnet.NewPair(t, "tune")
	sys := Kernel{Netns: netns.Named(p.B)}
	tests := []struct {
		s    Setting
		want error
		msg  string
	}{
		{sysctl("net.core.no_such_setting"), ErrUnknown, "no sysctl net.core.no_such_setting in namespace " + p.B},
		{sysctl("net.ipv4.tcp_available_congestion_control"), ErrReadOnly, "is read-only in namespace " + p.B},
		{sysctl("net.ipv4.conf"), ErrUnknown, "a directory of settings"},
		{Setting{Kind: diagnose.ChangeTxQueueLen, Target: "nosuch0"}, ErrUnknown, "no interface nosuch0"},
		{Setting{Kind: diagnose.ChangeRing, Target: "b0", Param: "rx"}, ErrNotSupported, "ring b0 rx"},
		{Setting{Kind: diagnose.ChangeRPSCPUs, Target: "nosuch0 rx-0"}, ErrUnknown, "no rps_cpus nosuch0 rx-0 in namespace " + p.B},
		{Setting{Kind: diagnose.ChangeRPSCPUs, Target: "b0 tx-0"}, ErrUnknown, `not "IFACE rx-N"`},
	}
	for _, tt := range tests {
		t.Run(tt.s.String(), func(t *testing.T) {
			err := sys.Check(tt.s)
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("Check = %v, want %v containing %q", err, tt.want, tt.msg)
			}
			werr := sys.Write(tt.s, "1")
			if !errors.Is(werr, tt.want) {
				t.Errorf("Write = %v, want %v", werr, tt.want)
			}
		})
	}
	// Build turns the same errors into skipped items, never into changes.
	r := &diagnose.Report{Netns: p.B, Findings: []diagnose.Finding{
		finding(stage.TCP, "x", change("net.core.no_such_setting", "1"), change("net.ipv4.tcp_available_congestion_control", "bbr")),
	}}
	plan := Build(r, sys, Context{})
	if len(plan.Items) != 2 || len(plan.Actionable()) != 0 {
		t.Fatalf("plan = %+v, want two skipped items", plan.Items)
	}
	if !strings.Contains(plan.Items[1].Skip, "read-only") {
		t.Errorf("read-only skip = %q", plan.Items[1].Skip)
	}
}

func TestKernelLinkSettings(t *testing.T) {
	p := testnet.NewPair(t, "tune")
	sys := Kernel{Netns: netns.Named(p.B)}
	qlen := Setting{Kind: diagnose.ChangeTxQueueLen, Target: "b0"}
	rx := Setting{Kind: diagnose.ChangeChannels, Target: "b0", Param: "rx"}
	rps := Setting{Kind: diagnose.ChangeRPSCPUs, Target: "b0 rx-0"}
	before := map[Setting]string{}
	for _, s := range []Setting{qlen, rx, rps} {
		v, err := sys.Read(s)
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		before[s] = v
	}
	// veth has one RX channel and allows up to the CPU count; a single
	// CPU host cannot show a change.
	ch := testnet.In(t, p.B, "ethtool", "-l", "b0")
	plan := planOf(item(qlen, "4321"), item(rps, "1"))
	if !strings.Contains(ch, "RX:\t\t1\n") || strings.Count(ch, "RX:\t\t1\n") == 2 {
		t.Logf("veth channels cannot change here:\n%s", ch)
	} else {
		plan.Items = append(plan.Items, item(rx, "2"))
	}
	rbPath := filepath.Join(t.TempDir(), "rollback.json")
	if _, err := Apply(plan, sys, rbPath); err != nil {
		t.Fatal(err)
	}
	if out := testnet.In(t, p.B, "ip", "link", "show", "b0"); !strings.Contains(out, "qlen 4321") {
		t.Errorf("ip link show after apply:\n%s", out)
	}
	rpsFile := "/sys/class/net/b0/queues/rx-0/rps_cpus"
	if out := testnet.In(t, p.B, "cat", rpsFile); strings.Trim(out, "0,\n") != "1" {
		t.Errorf("rps_cpus after apply (ip netns exec, its own sysfs) = %q, want CPU 0's mask", out)
	}
	if mi, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(mi), "netdrop-sysfs-") {
		t.Errorf("the namespace's sysfs mount leaked into the test's mount namespace:\n%s", mi)
	}
	if len(plan.Items) == 3 {
		if out := testnet.In(t, p.B, "ethtool", "-l", "b0"); strings.Count(out, "RX:\t\t2") != 2 {
			t.Errorf("ethtool -l after apply rx=2:\n%s", out)
		}
	}
	rb, err := ReadRollback(rbPath)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := RollbackFrom(sys, rb); err != nil {
		t.Fatal(err)
	}
	for s, v := range before {
		if got, _ := sys.Read(s); got != v {
			t.Errorf("after rollback %s = %q, want %q", s, got, v)
		}
	}
	if out := testnet.In(t, p.B, "cat", rpsFile); out != before[rps] {
		t.Errorf("rps_cpus after rollback = %q, want byte-exact %q", out, before[rps])
	}
	if out := testnet.In(t, p.B, "ip", "link", "show", "b0"); !strings.Contains(out, "qlen "+before[qlen]) {
		t.Errorf("ip link show after rollback, want qlen %s:\n%s", before[qlen], out)
	}
}

// listenRaw opens a TCP listener with an explicit listen() backlog inside ns,
// so the accept queue limit is min(backlog, the namespace's somaxconn)
// whatever Go's own default would be.
func listenRaw(t *testing.T, ns string, ip net.IP, port, backlog int) {
	t.Helper()
	var fd int
	err := netns.Do(ns, func() error {
		var err error
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		sa := &unix.SockaddrInet4{Port: port}
		copy(sa.Addr[:], ip.To4())
		if err := unix.Bind(fd, sa); err != nil {
			return err
		}
		return unix.Listen(fd, backlog)
	})
	if err != nil {
		t.Fatalf("listen in %s: %v", ns, err)
	}
	t.Cleanup(func() { unix.Close(fd) })
}

// TestKernelPlanFromDiagnosis makes a real accept-queue overflow (a
// listener nobody accepts on, in a namespace whose somaxconn is 8), runs a
// real diagnosis, builds the plan, applies it and rolls it back.
func TestKernelPlanFromDiagnosis(t *testing.T) {
	p := testnet.NewPair(t, "tune")
	sys := Kernel{Netns: netns.Named(p.B)}
	somax := sysctl("net.core.somaxconn")
	orig, err := sys.Read(somax)
	if err != nil {
		t.Fatal(err)
	}
	if err := sys.Write(somax, "8"); err != nil {
		t.Fatal(err)
	}
	faulted, _ := sys.Read(somax)
	listenRaw(t, p.B, p.AddrB, 8080, 1024)

	overBefore := testnet.Nstat(t, p.B, "TcpExtListenOverflows")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	started := make(chan struct{})
	type result struct {
		r   *diagnose.Report
		err error
	}
	done := make(chan result, 1)
	go func() {
		r, err := diagnose.Run(ctx, diagnose.Options{Interval: 2 * time.Second, Netns: counters.NamedNetns(p.B), Progress: func(string) { close(started) }})
		done <- result{r, err}
	}()
	<-started
	// 30 clients at once against an accept queue of 8 (+1): the rest of
	// the SYNs are dropped as overflows. Each dial gives up after 500 ms.
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	for i := 0; i < 30; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = netns.Do(p.A, func() error {
				c, err := net.DialTimeout("tcp4", fmt.Sprintf("%s:8080", p.AddrB), 500*time.Millisecond)
				if err == nil {
					mu.Lock()
					conns = append(conns, c)
					mu.Unlock()
				}
				return nil
			})
		}()
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	res := <-done
	if res.err != nil {
		t.Fatal(res.err)
	}
	overAfter := testnet.Nstat(t, p.B, "TcpExtListenOverflows")
	if overAfter == overBefore {
		t.Fatalf("no listen overflow happened (nstat TcpExtListenOverflows stayed %d)", overAfter)
	}
	var lf *diagnose.Finding
	for i, f := range res.r.Findings {
		if f.Stage == stage.TCPListen {
			lf = &res.r.Findings[i]
		}
	}
	if lf == nil {
		t.Fatalf("diagnosis found no tcp-listen finding; nstat saw %d overflows; findings: %+v", overAfter-overBefore, res.r.Findings)
	}

	sum, err := sockets.Summarize(ctx, sockets.Options{Netns: netns.Named(p.B), States: sockets.StateSet(1 << sockets.Listen), Top: -1})
	if err != nil {
		t.Fatal(err)
	}
	var tc Context
	for _, l := range sum.Listeners {
		tc.Listeners = append(tc.Listeners, Listener{Local: l.Local.String(), Backlog: l.Backlog, Drops: l.Drops})
	}
	plan := Build(res.r, sys, tc)
	var it *Item
	for i := range plan.Items {
		if plan.Items[i].Setting == somax {
			it = &plan.Items[i]
		}
	}
	if it == nil {
		t.Fatalf("plan has no somaxconn change: %+v (finding fixes %+v)", plan.Items, lf.Fix)
	}
	if it.Current != "8" || it.Skip != "" || it.Stage != stage.TCPListen {
		t.Fatalf("somaxconn item = %+v, want current 8, actionable, stage tcp-listen", *it)
	}
	if !strings.Contains(it.Note, "somaxconn caps the backlog of "+p.AddrB.String()+":8080") {
		t.Errorf("note = %q, want the capped listener named", it.Note)
	}
	for _, x := range plan.Items {
		if strings.Contains(x.Setting.Target, "tw_recycle") || (strings.Contains(x.Setting.Target, "rp_filter") && x.Actionable()) {
			t.Errorf("plan proposes %s", x.Setting)
		}
	}

	rbPath := filepath.Join(t.TempDir(), "rollback.json")
	applied, err := Apply(plan, sys, rbPath)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(testnet.In(t, p.B, "cat", "/proc/sys/net/core/somaxconn")); got != it.Proposed {
		t.Errorf("somaxconn after apply = %s, want %s", got, it.Proposed)
	}
	rb, err := ReadRollback(rbPath)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := RollbackFrom(sys, rb); err != nil {
		t.Fatal(err)
	}
	for _, e := range applied.Applied {
		got, err := sys.Read(e.Setting)
		if err != nil || got != string(e.Raw) {
			t.Errorf("after rollback %s = %q (%v), want %q", e.Setting, got, err, e.Raw)
		}
	}
	if got := testnet.In(t, p.B, "cat", "/proc/sys/net/core/somaxconn"); got != faulted {
		t.Errorf("somaxconn after rollback = %q, want %q", got, faulted)
	}
	_ = orig
}

// TestKernelUnprivileged runs the test binary again as nobody, without
// capabilities: reading a sysctl works, and writing one is refused at check
// time with a permission error that says root is needed, not "read-only".
func TestKernelUnprivileged(t *testing.T) {
	if os.Getenv("NETDROP_TUNE_UNPRIV") == "1" {
		if os.Geteuid() == 0 {
			t.Fatal("helper still runs as root")
		}
		sys := Kernel{}
		if _, err := sys.Read(sysctl("net.core.somaxconn")); err != nil {
			t.Fatalf("read as nobody: %v", err)
		}
		err := sys.Check(sysctl("net.core.somaxconn"))
		if !errors.Is(err, os.ErrPermission) || errors.Is(err, ErrReadOnly) || !strings.Contains(err.Error(), "needs root") {
			t.Fatalf("check as nobody = %v, want a permission error naming root", err)
		}
		return
	}
	testnet.RequireRoot(t)
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("needs setpriv (util-linux) to drop privileges")
	}
	// The go test binary lives in a directory only root can enter.
	dir, err := os.MkdirTemp("", "ndtest-tune-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "tune.test")
	b, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all",
		bin, "-test.run=^TestKernelUnprivileged$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "NETDROP_TUNE_UNPRIV=1")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestKernelUnprivileged") {
		t.Fatalf("unprivileged child: %v\n%s", err, out)
	}
}
