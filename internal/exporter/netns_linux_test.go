package exporter

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/netdrop/netdrop/counters"
	"github.com/netdrop/netdrop/internal/netns"
	"github.com/netdrop/netdrop/internal/netnsmap"
	"github.com/netdrop/netdrop/internal/netnsmap/netnsmaptest"
	"github.com/netdrop/netdrop/internal/testnet"
)

// podNamespaces makes n namespaces (lo up) that a fake CRI runtime says are
// pods netdrop-test/NAME-i, and returns their names and the socket.
func podNamespaces(t testing.TB, prefix string, n int) ([]string, string) {
	t.Helper()
	fake := &netnsmaptest.CRI{Info: map[string]string{}}
	var names []string
	var add, del bytes.Buffer
	for i := range n {
		ns := fmt.Sprintf("ndt-%s-%d-%d", prefix, os.Getpid(), i)
		names = append(names, ns)
		fmt.Fprintf(&add, "netns add %s\n", ns)
		fmt.Fprintf(&del, "netns del %s\n", ns)
		id := fmt.Sprintf("%064x", os.Getpid()*1000+i)
		fake.Sandboxes = append(fake.Sandboxes, netnsmaptest.Sandbox(id, "netdrop-test", fmt.Sprintf("%s-%d", prefix, i),
			fmt.Sprintf("00000000-0000-4000-8000-%012d", os.Getpid()*1000+i), cri.PodSandboxState_SANDBOX_READY))
		fake.Info[id] = `{"netNamespacePath": "/run/netns/` + ns + `"}`
	}
	t.Cleanup(func() {
		cmd := exec.Command("ip", "-force", "-batch", "-")
		cmd.Stdin = &del
		_ = cmd.Run()
	})
	cmd := exec.Command("ip", "-batch", "-")
	cmd.Stdin = &add
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ip -batch: %v\n%s", err, out)
	}
	for _, ns := range names {
		if err := netns.Do(ns, func() error {
			lo, err := netlink.LinkByName("lo")
			if err != nil {
				return err
			}
			return netlink.LinkSetUp(lo)
		}); err != nil {
			t.Fatalf("%s: lo up: %v", ns, err)
		}
	}
	return names, netnsmaptest.Serve(t, fake)
}

// TestNetnsCollectorKernel scrapes with --all-netns while one pod's
// namespace drops datagrams to a closed port between two scrapes: its
// series, labelled with the pod, counts what nstat counts there, and the
// quiet pod has no drop series.
func TestNetnsCollectorKernel(t *testing.T) {
	testnet.RequireRoot(t)
	testnet.RequireTool(t, "nstat")
	nss, sock := podNamespaces(t, "nsexp", 2)
	reg, _, err := NewRegistry(Options{AllNetns: true, CRISockets: []string{sock}, NoSockets: true})
	if err != nil {
		t.Fatal(err)
	}
	h := Handler(reg, Options{})
	scrapeText(t, h)
	before := testnet.Nstat(t, nss[0], "UdpNoPorts")
	sent := testnet.SendUDP(t, nss[0], "127.0.0.1:9", 100, 32)
	ref := testnet.Nstat(t, nss[0], "UdpNoPorts") - before
	if ref != uint64(sent) || sent == 0 {
		t.Fatalf("nstat UdpNoPorts moved by %d for %d sent", ref, sent)
	}
	time.Sleep(10 * time.Millisecond)
	text := scrapeText(t, h)
	series := fmt.Sprintf(`netdrop_netns_stage_drops_total{container="",netns="%s",pod="nsexp-0",pod_namespace="netdrop-test",stage="no-socket"}`, nss[0])
	if got := sample(t, text, series); got != fmt.Sprint(ref) {
		t.Errorf("%s = %s, nstat %d", series, got, ref)
	}
	if strings.Contains(text, `pod="nsexp-1",pod_namespace="netdrop-test",stage=`) && strings.Contains(text, "netdrop_netns_stage_drops_total{container=\"\",netns=\""+nss[1]) {
		t.Errorf("the quiet pod has a drop series:\n%s", grep(text, nss[1]))
	}
	if !strings.Contains(text, fmt.Sprintf(`netdrop_netns_findings{container="",netns="%s",pod="nsexp-0",pod_namespace="netdrop-test",severity=`, nss[0])) {
		t.Errorf("no finding series for the dropping pod:\n%s", grep(text, "netdrop_netns_"))
	}

	// With a cap of one series, the rest are counted, not exported.
	reg, _, err = NewRegistry(Options{AllNetns: true, CRISockets: []string{sock}, NoSockets: true, MaxSeries: 1})
	if err != nil {
		t.Fatal(err)
	}
	h = Handler(reg, Options{})
	scrapeText(t, h)
	testnet.SendUDP(t, nss[0], "127.0.0.1:9", 10, 32)
	testnet.SendUDP(t, nss[1], "127.0.0.1:9", 10, 32)
	text = scrapeText(t, h)
	if n := strings.Count(text, "\nnetdrop_netns_stage_drops_total{") + strings.Count(text, "\nnetdrop_netns_findings{"); n != 1 {
		t.Errorf("%d per-namespace series with a cap of 1:\n%s", n, grep(text, "netdrop_netns_"))
	}
	if got := sample(t, text, "netdrop_netns_series_dropped_total"); got == "0" {
		t.Errorf("netdrop_netns_series_dropped_total = 0 with two pods dropping and a cap of 1")
	}
}

func grep(text, sub string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// BenchmarkAllNetnsScale is issue #17's scale target: a node with 200
// network namespaces (pods, through a CRI runtime) and 50k sockets (25k in
// the host's namespace, which the socket collector reads, and 125 in each
// pod) scraped by netdrop exporter --all-netns. After one warm-up scrape,
// ten pods drop a few datagrams each (their series, and the pods they
// label, are in the scrapes); it prints the scrape time (median and worst
// of 10) and the exporter's peak RSS, and each collector's time in the
// last scrape; the target is under 200 ms and 60 MB.
//
// NETDROP_SCALE_NETNS changes the namespace count; NETDROP_SCALE_BUSY=1
// sends a datagram to a closed port in every namespace before every
// scrape, so that none is quiet; NETDROP_SCALE_PERF=FILE
// builds the exporter with symbols and records the scrapes with perf
// record -g (kernel and Go stacks); NETDROP_SCALE_DUMP=FILE keeps the last
// scrape's text.
func BenchmarkAllNetnsScale(b *testing.B) {
	testnet.RequireRoot(b)
	nNetns := 200
	if v, err := fmt.Sscan(os.Getenv("NETDROP_SCALE_NETNS"), &nNetns); err != nil || v != 1 {
		nNetns = 200
	}
	// Open sockets cost a file descriptor each and the hard limit here
	// may be 20000, so 35k of the 50k are TIME_WAIT, which hold none.
	const hostSockets, perNetns, timeWait = 5000, 50, 35000
	bin := filepath.Join(b.TempDir(), "netdrop")
	perfOut := os.Getenv("NETDROP_SCALE_PERF") // keep symbols and record the scrapes with perf
	ldflags := "-s -w"
	if perfOut != "" {
		ldflags = ""
	}
	build := exec.Command("go", "build", "-trimpath", "-ldflags="+ldflags, "-o", bin, "../../cmd/netdrop")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	nss, sock := podNamespaces(b, "scale", nNetns)
	var fds []int
	b.Cleanup(func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	})
	open := func(n int) error {
		for range n {
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return err
			}
			fds = append(fds, fd)
			if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
				return err
			}
		}
		return nil
	}
	if err := open(hostSockets); err != nil {
		b.Fatal(err)
	}
	for _, ns := range nss {
		if err := netns.Do(ns, func() error { return open(perNetns) }); err != nil {
			b.Fatal(err)
		}
	}
	makeTimeWait(b, timeWait/2)
	makeTimeWait(b, timeWait/2) // a second listener: ports per destination
	ready := filepath.Join(b.TempDir(), "ready")
	agent := exec.Command(bin, "exporter", "--all-netns", "--cri-socket", sock, "--listen", "127.0.0.1:0", "--ready-file", ready)
	var stderr bytes.Buffer
	agent.Stderr = &stderr
	if err := agent.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = agent.Process.Signal(unix.SIGTERM)
		_ = agent.Wait()
	})
	var addr string
	for deadline := time.Now().Add(20 * time.Second); addr == ""; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatalf("exporter not ready after 20 s:\n%s", stderr.String())
		}
		if data, err := os.ReadFile(ready); err == nil {
			addr = strings.TrimSpace(string(data))
		}
	}
	scrape := func() (time.Duration, string) {
		start := time.Now()
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			b.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("scrape: %s", resp.Status)
		}
		return time.Since(start), string(body)
	}
	scrape() // the first has nothing to compare with
	// A few pods drop datagrams to a closed port, so that their series
	// (and the analysis of a namespace that moved) are in the scrapes.
	const dropping = 10
	for _, ns := range nss[:min(dropping, len(nss))] {
		testnet.SendUDP(b, ns, "127.0.0.1:9", 5, 32)
	}
	if perfOut != "" {
		perf := exec.Command("perf", "record", "-F", "2000", "-g", "-o", perfOut, "-p", fmt.Sprint(agent.Process.Pid))
		if err := perf.Start(); err != nil {
			b.Fatal(err)
		}
		time.Sleep(500 * time.Millisecond)
		defer func() {
			_ = perf.Process.Signal(unix.SIGINT)
			_ = perf.Wait()
		}()
	}
	var times []time.Duration
	var text string
	cpu0 := procCPU(b, agent.Process.Pid)
	busy := os.Getenv("NETDROP_SCALE_BUSY") != ""
	var cpu time.Duration
	for range 10 {
		if busy {
			// Every namespace moves before every scrape: none is
			// quiet, each is diagnosed.
			c0 := procCPU(b, agent.Process.Pid)
			for _, ns := range nss {
				testnet.SendUDP(b, ns, "127.0.0.1:9", 1, 32)
			}
			cpu -= procCPU(b, agent.Process.Pid) - c0
		}
		var d time.Duration
		d, text = scrape()
		times = append(times, d)
	}
	cpu = (cpu + procCPU(b, agent.Process.Pid) - cpu0) / 10
	slices.Sort(times)
	rss := procMemKB(b, agent.Process.Pid, "VmHWM:")
	series := 0
	for _, l := range strings.Split(text, "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			series++
		}
	}
	pods := podsLabelled(text)
	b.Logf("exporter --all-netns, %s namespaces, %d open sockets and %d TIME_WAIT: scrape median %.1f ms, worst %.1f ms, %.0f ms CPU; peak RSS %.1f MB; %d series (%d pods labelled)",
		sample(b, text, "netdrop_netns_count"), len(fds), timeWait, ms(times[len(times)/2]), ms(times[len(times)-1]), ms(cpu), float64(rss)/1024, series, pods)
	if want := min(dropping, len(nss)); pods != want && !busy {
		b.Errorf("%d pods labelled in the per-namespace series, want the %d that dropped:\n%s", pods, want, grep(text, "netdrop_netns_"))
	}
	b.Logf("last scrape, per collector:\n%s", grep(text, "netdrop_scrape_collector_duration_seconds{"))
	if out := os.Getenv("NETDROP_SCALE_DUMP"); out != "" {
		_ = os.WriteFile(out, []byte(text), 0o644)
	}
	b.ReportMetric(ms(times[len(times)/2]), "scrape-ms")
	b.ReportMetric(float64(rss)/1024, "rss-MB")
	b.ReportMetric(ms(cpu), "cpu-ms/scrape")
	for range b.N {
	}
}

// makeTimeWait leaves n TCP sockets in TIME_WAIT on loopback: connections
// this side closes first, which then hold no file descriptor.
func makeTimeWait(b *testing.B, n int) {
	b.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				_, _ = c.Read(make([]byte, 1)) // until the client's FIN
				c.Close()
			}()
		}
	}()
	for i := range n {
		c, err := net.Dial("tcp4", ln.Addr().String())
		if err != nil {
			b.Fatalf("connection %d: %v", i, err)
		}
		c.Close()
	}
}

// BenchmarkNetnsCollectorUpdate times the per-namespace collector alone,
// in this process, over NETDROP_SCALE_NETNS (default 200) pod namespaces:
// what BenchmarkAllNetnsScale's scrape spends on --all-netns, with
// go test's -cpuprofile and -memprofile at hand.
func BenchmarkNetnsCollectorUpdate(b *testing.B) {
	testnet.RequireRoot(b)
	nNetns := 200
	if v, err := fmt.Sscan(os.Getenv("NETDROP_SCALE_NETNS"), &nNetns); err != nil || v != 1 {
		nNetns = 200
	}
	_, sock := podNamespaces(b, "nsupd", nNetns)
	// The agent's soft memory limit (cli.agentMemory), which decides
	// how often the collector runs.
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(24 << 20))
	c := newNetnsCollector(Options{AllNetns: true, CRISockets: []string{sock}})
	ch := make(chan prometheus.Metric, 1024)
	done := make(chan int)
	go func() {
		n := 0
		for range ch {
			n++
		}
		done <- n
	}()
	ctx := context.Background()
	if err := c.update(ctx, nil, ch); err != nil { // the first reading has nothing to compare with
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		if err := c.update(ctx, nil, ch); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	close(ch)
	<-done
}

// BenchmarkNetnsFloor is the kernel's share of reading NETDROP_SCALE_NETNS
// (default 200) namespaces, without netdrop's parsing: one thread visits
// each namespace in turn, as a scrape's workers do, and times entering it,
// reading its snmp, netstat, snmp6 and stat/nf_conntrack whole, opening its
// two conntrack sysctls (and, apart, reading them again through
// descriptors kept open, as the collector does since), and dumping its
// links and qdiscs over a new netlink socket each (and, apart, over one
// socket kept open in the namespace, as the collector does since). Each
// part is reported in µs per namespace.
func BenchmarkNetnsFloor(b *testing.B) {
	testnet.RequireRoot(b)
	nNetns := 200
	if v, err := fmt.Sscan(os.Getenv("NETDROP_SCALE_NETNS"), &nNetns); err != nil || v != 1 {
		nNetns = 200
	}
	nss, _ := podNamespaces(b, "floor", nNetns)
	runtime.LockOSThread() // the thread changes namespace; it is thrown away at the end
	self, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer unix.Close(self)
	var fds []int
	for _, ns := range nss {
		fd, err := unix.Open(filepath.Join(netns.RunDir, ns), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			b.Fatal(err)
		}
		fds = append(fds, fd)
	}
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	buf := make([]byte, 64<<10)
	readAll := func(path string) {
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return
		}
		for {
			if n, err := unix.Read(fd, buf); n <= 0 || err != nil {
				break
			}
		}
		unix.Close(fd)
	}
	// dump asks NETLINK_ROUTE for a dump of typ and reads it to the end.
	// dumpOn asks NETLINK_ROUTE socket fd for a dump of typ and reads it
	// to the end.
	dumpOn := func(fd int, typ uint16) {
		req := make([]byte, unix.NLMSG_HDRLEN+unix.SizeofIfInfomsg)
		*(*unix.NlMsghdr)(unsafe.Pointer(&req[0])) = unix.NlMsghdr{Len: uint32(len(req)), Type: typ, Flags: unix.NLM_F_REQUEST | unix.NLM_F_DUMP, Seq: 1}
		if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
			b.Fatal(err)
		}
		for {
			n, _, err := unix.Recvfrom(fd, buf, 0)
			if err != nil || n < unix.NLMSG_HDRLEN {
				return
			}
			msgs, err := syscall.ParseNetlinkMessage(buf[:n])
			if err != nil || len(msgs) == 0 || msgs[len(msgs)-1].Header.Type == unix.NLMSG_DONE || msgs[len(msgs)-1].Header.Type == unix.NLMSG_ERROR {
				return
			}
		}
	}
	// dump is dumpOn over a new socket.
	dump := func(typ uint16) {
		fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
		if err != nil {
			b.Fatal(err)
		}
		defer unix.Close(fd)
		dumpOn(fd, typ)
	}
	var enter, files, sysctls, preads, dumps, keptDumps time.Duration
	visit := func(part *time.Duration, fn func()) {
		for _, fd := range fds {
			t := time.Now()
			if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
				b.Fatal(err)
			}
			if fn == nil {
				*part += time.Since(t)
				continue
			}
			t = time.Now()
			fn()
			*part += time.Since(t)
		}
		if err := unix.Setns(self, unix.CLONE_NEWNET); err != nil {
			b.Fatal(err)
		}
	}
	visit(new(time.Duration), func() { // warm the dentry cache, as scrapes before do
		readAll("/proc/thread-self/net/snmp")
		readAll("/proc/sys/net/netfilter/nf_conntrack_count")
	})
	// The sysctls as the collector reads them now: opened once in each
	// namespace and read again with pread (counters.KeptFiles).
	kept := make([][3]int, len(fds))
	visitNo := 0
	visit(new(time.Duration), func() {
		for j, f := range []string{"nf_conntrack_count", "nf_conntrack_max"} {
			fd, err := unix.Open("/proc/sys/net/netfilter/"+f, unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				b.Skipf("no conntrack sysctls: %v", err)
			}
			kept[visitNo][j] = fd
		}
		fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
		if err != nil {
			b.Fatal(err)
		}
		kept[visitNo][2] = fd
		visitNo++
	})
	defer func() {
		for _, k := range kept {
			for _, fd := range k {
				unix.Close(fd)
			}
		}
	}()
	b.ResetTimer()
	for range b.N {
		visitNo = 0
		visit(&enter, nil)
		visit(&files, func() {
			for _, f := range []string{"snmp", "netstat", "snmp6", "stat/nf_conntrack"} {
				readAll("/proc/thread-self/net/" + f)
			}
		})
		visit(&sysctls, func() {
			for _, f := range []string{"nf_conntrack_count", "nf_conntrack_max"} {
				fd, err := unix.Open("/proc/sys/net/netfilter/"+f, unix.O_RDONLY|unix.O_CLOEXEC, 0)
				if err == nil {
					unix.Close(fd)
				}
			}
		})
		visit(&preads, func() {
			for _, fd := range kept[visitNo][:2] {
				_, _ = unix.Pread(fd, buf[:64], 0)
			}
			visitNo++
		})
		visitNo = 0
		visit(&keptDumps, func() {
			dumpOn(kept[visitNo][2], unix.RTM_GETLINK)
			dumpOn(kept[visitNo][2], unix.RTM_GETQDISC)
			visitNo++
		})
		visit(&dumps, func() {
			dump(unix.RTM_GETLINK)
			dump(unix.RTM_GETQDISC)
		})
	}
	per := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) / float64(b.N*len(fds)) }
	b.ReportMetric(per(enter), "µs-setns/netns")
	b.ReportMetric(per(files), "µs-4-net-files/netns")
	b.ReportMetric(per(sysctls), "µs-2-sysctl-opens/netns")
	b.ReportMetric(per(preads), "µs-2-kept-sysctl-preads/netns")
	b.ReportMetric(per(dumps), "µs-link-qdisc-dumps/netns")
	b.ReportMetric(per(keptDumps), "µs-link-qdisc-dumps-kept-socket/netns")
}

// TestNetnsKeptFilesChurn scrapes 100 times while namespaces come and go
// (one made and one deleted before each scrape): every namespace present
// keeps its two conntrack sysctls and its netlink sockets open and reads
// them, and those of the deleted ones are closed, so that the process holds no more
// descriptors at the end than before the first scrape.
func TestNetnsKeptFilesChurn(t *testing.T) {
	testnet.RequireRoot(t)
	if _, err := os.Stat("/proc/sys/net/netfilter/nf_conntrack_count"); err != nil {
		t.Skip("nf_conntrack is not loaded: no sysctls to keep open")
	}
	prefix := fmt.Sprintf("ndt-kept-%d-", os.Getpid())
	var live []string
	t.Cleanup(func() {
		for _, ns := range live {
			_ = exec.Command("ip", "netns", "del", ns).Run()
		}
	})
	add := func(i int) {
		ns := fmt.Sprint(prefix, i)
		if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
			t.Fatalf("ip netns add: %v\n%s", err, out)
		}
		live = append(live, ns)
	}
	del := func() {
		if out, err := exec.Command("ip", "netns", "del", live[0]).CombinedOutput(); err != nil {
			t.Fatalf("ip netns del: %v\n%s", err, out)
		}
		live = live[1:]
	}
	discover := func(context.Context) (*netnsmap.Map, error) {
		m := &netnsmap.Map{}
		for _, ns := range live {
			path := filepath.Join(netns.RunDir, ns)
			var st unix.Stat_t
			if err := unix.Stat(path, &st); err != nil {
				return nil, err
			}
			m.Namespaces = append(m.Namespaces, &netnsmap.Namespace{Inode: st.Ino, Mounts: []string{path}})
		}
		return m, nil
	}
	openFDs := func() int {
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Fatal(err)
		}
		return len(ents)
	}
	c := newNetnsCollector(Options{AllNetns: true, Discover: discover})
	ch := make(chan prometheus.Metric, 64)
	go func() {
		for range ch {
		}
	}()
	defer close(ch)
	ctx := context.Background()
	if err := c.update(ctx, nil, ch); err != nil { // nothing yet: the runtime's own descriptors settle
		t.Fatal(err)
	}
	before := openFDs()
	const keep = 5
	for i := range 100 {
		add(i)
		if len(live) > keep {
			del()
		}
		if err := c.update(ctx, nil, ch); err != nil {
			t.Fatal(err)
		}
		kept := 0
		for ino, st := range c.state {
			// The two conntrack sysctls and a NETLINK_ROUTE socket at
			// least (NETLINK_NETFILTER's too where nftables answers).
			if n := st.files.Len(); n < 3 {
				t.Fatalf("scrape %d: namespace %d keeps %d files and sockets, want the 2 conntrack sysctls and a netlink socket", i, ino, n)
			}
			kept += st.files.Len()
			got := map[string]bool{}
			for _, k := range st.prev.layout.counters {
				got[k.Field] = true
				got[string(k.Source)] = true
			}
			if !got["nf_conntrack_count"] || !got["nf_conntrack_max"] || !got[string(counters.NetlinkLinkStats)] {
				t.Fatalf("scrape %d: namespace %d read without the conntrack gauges or the link dump", i, ino)
			}
		}
		if len(c.state) != len(live) {
			t.Fatalf("scrape %d: %d namespaces kept, %d live", i, len(c.state), len(live))
		}
		if got := openFDs(); got != before+kept {
			t.Fatalf("scrape %d: %d descriptors open, want %d and the %d kept", i, got, before, kept)
		}
	}
	for len(live) > 0 {
		del()
	}
	if err := c.update(ctx, nil, ch); err != nil {
		t.Fatal(err)
	}
	if got := openFDs(); got != before || len(c.state) != 0 {
		t.Errorf("all namespaces gone: %d descriptors open (%d before), %d namespaces kept", got, before, len(c.state))
	}
}
