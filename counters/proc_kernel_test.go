package counters

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/netdrop/netdrop/internal/netns"
	"github.com/netdrop/netdrop/internal/testnet"
)

// procSources are the /proc readers of this package, for the kernel test
// and the benchmark.
func procSources() []Source {
	return []Source{
		SNMPSource{}, SoftnetSource{}, ConntrackSource{}, NeighSource{}, SockstatSource{},
		InterruptsSource{}, CPUStatSource{}, SysctlSource{}, UDPSource{},
	}
}

func TestProcSourcesRegistered(t *testing.T) {
	names := map[SourceID]bool{}
	for _, s := range DefaultSources() {
		names[s.ID()] = true
	}
	for _, s := range procSources() {
		if !names[s.ID()] {
			t.Errorf("%s is not registered", s.ID())
		}
	}
}

// pkCollect reads the /proc sources inside namespace ns, as diagnose does.
func pkCollect(t *testing.T, ns string) *Snapshot {
	t.Helper()
	var s *Snapshot
	if err := netns.Do(ns, func() error {
		s = Collect(context.Background(), Options{Netns: ns, Sources: procSources()})
		return nil
	}); err != nil {
		t.Fatalf("collect in %s: %v", ns, err)
	}
	return s
}

// pkNstat returns every counter `nstat -saz` prints inside ns (absolute
// values, history untouched).
func pkNstat(t *testing.T, ns string) map[string]uint64 {
	t.Helper()
	out := testnet.In(t, ns, "nstat", "-saz")
	m := map[string]uint64{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || strings.HasPrefix(f[0], "#") {
			continue
		}
		v, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			t.Fatalf("nstat line %q: %v", line, err)
		}
		m[f[0]] = v
	}
	if len(m) < 50 {
		t.Fatalf("nstat printed only %d counters:\n%s", len(m), out)
	}
	return m
}

// pkSysctls returns SysctlNames as sysctl(8) prints them inside ns, the
// ones this kernel does not show in a namespace left out (-e).
func pkSysctls(t *testing.T, ns string) map[string]string {
	t.Helper()
	out := testnet.In(t, ns, "sysctl", append([]string{"-e"}, SysctlNames...)...)
	m := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(line, " = ")
		if ok {
			m[k] = v
		}
	}
	return m
}

// nstatName is a counter's name as nstat prints it: group and field joined.
func nstatName(field string) string { return strings.Replace(field, ":", "", 1) }

// TestProcAgainstKernel makes known events happen inside a fresh namespace
// and checks netdrop's numbers against the kernel's reference tools: every
// counter nstat prints, the exact NoPorts and receive-buffer drops caused,
// and the per-socket drop count ss -m shows.
func TestProcAgainstKernel(t *testing.T) {
	testnet.RequireTool(t, "nstat")
	testnet.RequireTool(t, "ss")
	p := testnet.NewPair(t, "cproc")
	const port = 9931
	// Resolve the neighbour first so no datagram waits in (or falls out
	// of) the ARP queue: one datagram, then wait until it arrived.
	testnet.SendUDP(t, p.A, fmt.Sprintf("%s:%d", p.AddrB, port+2), 1, 8)
	deadline := time.Now().Add(3 * time.Second)
	for testnet.Nstat(t, p.B, "UdpNoPorts") < 1 {
		if time.Now().After(deadline) {
			t.Fatal("the first datagram never reached the peer namespace")
		}
		time.Sleep(20 * time.Millisecond)
	}
	recv := testnet.ListenUDP(t, p.B, fmt.Sprintf("%s:%d", p.AddrB, port))
	if err := recv.SetReadBuffer(1); err != nil { // the kernel raises it to its minimum
		t.Fatal(err)
	}

	a := pkCollect(t, p.B)

	const noPorts, flood = 37, 300
	if n := pkSendTo(t, p.A, fmt.Sprintf("%s:%d", p.AddrB, port+1), noPorts); n != noPorts {
		t.Fatalf("sent %d of %d datagrams to the closed port", n, noPorts)
	}
	if n := testnet.SendUDP(t, p.A, fmt.Sprintf("%s:%d", p.AddrB, port), flood, 512); n != flood {
		t.Fatalf("sent %d of %d datagrams to the small socket", n, flood)
	}

	b := pkCollect(t, p.B)
	ref := pkNstat(t, p.B)
	c := pkCollect(t, p.B)
	d := Delta(a, b)

	// Exact deltas from the events made above.
	val := func(s *Snapshot, src SourceID, obj, field string) uint64 {
		t.Helper()
		v, ok := s.Value(src, obj, field)
		if !ok {
			t.Fatalf("%s %s %s not read; unavailable: %v", src, obj, field, s.Unavailable)
		}
		return v
	}
	// Datagrams can only go missing on the way in the per-CPU backlog of
	// veth (softnet_stat dropped, host-wide, so other traffic on the host
	// may add to it); with no backlog drops the counts are exact.
	var backlog uint64
	for _, x := range d.Counters {
		if x.Source == ProcNetSoftnetStat && x.Field == "dropped" {
			backlog += x.Value
		}
	}
	exact := func(name string, got, want uint64) {
		t.Helper()
		if got == want || (got < want && want-got <= backlog) {
			return
		}
		t.Errorf("%s = %d, want %d (backlog drops on the host in between: %d)", name, got, want, backlog)
	}
	exact("Udp:NoPorts delta", val(d, ProcNetSNMP, "", "Udp:NoPorts"), noPorts)
	rcvbuf := val(d, ProcNetSNMP, "", "Udp:RcvbufErrors")
	// Udp:InDatagrams counts on read: drain what the socket queued.
	queued := 0
	buf := make([]byte, 2048)
	for range flood {
		recv.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if _, _, err := recv.ReadFrom(buf); err != nil {
			break
		}
		queued++
	}
	if rcvbuf == 0 {
		t.Errorf("no receive buffer drops from %d datagrams into a minimal buffer", flood)
	}
	exact("RcvbufErrors + datagrams queued", rcvbuf+uint64(queued), flood)
	if got := val(d, ProcNetSNMP, "", "Udp:InErrors"); got != rcvbuf {
		t.Errorf("Udp:InErrors delta = %d, want RcvbufErrors %d", got, rcvbuf)
	}

	// The per-socket counter names the socket and matches ss -m.
	local := recv.LocalAddr().(*net.UDPAddr)
	obj := fmt.Sprintf("udp %s:%d inode", local.IP, local.Port)
	var sock Counter
	for _, x := range d.Counters {
		if x.Source == ProcNetUDP && strings.HasPrefix(x.Object, obj) {
			sock = x
		}
	}
	if sock.Value != rcvbuf {
		t.Errorf("per-socket drops %+v, want %d for %s", sock, rcvbuf, obj)
	}
	ss := testnet.In(t, p.B, "ss", "-uanm", "src", fmt.Sprintf("%s:%d", local.IP, local.Port))
	m := regexp.MustCompile(`,d(\d+)\)`).FindStringSubmatch(ss)
	if m == nil {
		t.Fatalf("no drop count in ss -m output:\n%s", ss)
	}
	if want, _ := strconv.ParseUint(m[1], 10, 64); sock.Value != want {
		t.Errorf("per-socket drops %d, ss -m says d%d", sock.Value, want)
	}

	// Every counter nstat prints is read, with nstat's value. Counters
	// that move on their own (IPv6 MLD reports) must lie between the
	// reads taken before and after nstat.
	// A per-type ICMPv6 counter is listed only once it is non-zero, so one
	// that first moves between the two reads (a neighbour solicitation in
	// a slow VM) is only in the second: its range starts at zero.
	ours := map[string][2]uint64{}
	for _, x := range c.Counters {
		if x.Source == ProcNetSNMP || x.Source == ProcNetNetstat || x.Source == ProcNetSNMP6 {
			before, _ := b.Value(x.Source, x.Object, x.Field)
			ours[nstatName(x.Field)] = [2]uint64{before, x.Value}
		}
	}
	checked := 0
	for name, want := range ref {
		got, ok := ours[name]
		if !ok {
			t.Errorf("nstat prints %s, netdrop did not read it", name)
			continue
		}
		if want < got[0] || want > got[1] {
			t.Errorf("%s: nstat %d, netdrop %d then %d", name, want, got[0], got[1])
		}
		checked++
	}
	t.Logf("%d nstat counters matched; Udp NoPorts +%d, RcvbufErrors +%d", checked, noPorts, rcvbuf)

	// Host-wide readers: neighbour statistics are not visible here; the
	// per-CPU files agree on the number of online CPUs.
	if !hasReason(b, ProcNetStatARPCache, "initial network namespace") {
		t.Errorf("inside a namespace the neighbour statistics must be reported as host-wide: %v", b.Unavailable)
	}
	online, err := exec.Command("getconf", "_NPROCESSORS_ONLN").Output()
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := strconv.Atoi(strings.TrimSpace(string(online))); b.CPUs != n {
		t.Errorf("CPUs = %d, getconf says %d online", b.CPUs, n)
	}
	for _, src := range []SourceID{ProcNetSoftnetStat, ProcInterrupts, ProcSoftirqs, ProcStat} {
		if !hasSource(b, src) {
			t.Errorf("no counters from %s: %v", src, b.Unavailable)
		}
	}
	// The settings as sysctl(8) shows them in the namespace: which ones a
	// namespace has differs between kernels (net.core.rmem_max is per
	// namespace on 6.18, host-wide and invisible here on 6.1), so the
	// reference decides what netdrop must have read.
	want := pkSysctls(t, p.B)
	if len(want) == 0 {
		t.Fatal("sysctl -e printed none of SysctlNames in the namespace")
	}
	if diff := cmp.Diff(want, b.Sysctls); diff != "" {
		t.Errorf("sysctls (-sysctl +netdrop):\n%s", diff)
	}
	for _, u := range b.Unavailable {
		if u.Source != ProcNetStatARPCache && u.Source != ProcNetStatNDiscCache {
			t.Errorf("unexpected unavailable source %s: %s", u.Source, u.Reason)
		}
	}
}

// TestConntrackAgainstKernel makes a few tracked flows inside a namespace
// and compares what netdrop reads there with the conntrack tool: the table
// size with `conntrack -C`, every per-CPU statistic, summed, with
// `conntrack -S` (read over ctnetlink, not /proc).
func TestConntrackAgainstKernel(t *testing.T) {
	testnet.RequireTool(t, "conntrack")
	testnet.RequireTool(t, "nft")
	p := testnet.NewPair(t, "cproc")
	// A ct expression makes conntrack track this namespace's traffic.
	testnet.In(t, p.B, "nft", "add table inet ndtest; add chain inet ndtest in { type filter hook input priority 0; }; add rule inet ndtest in ct state new counter")
	const flows = 5
	for i := range flows {
		pkSendTo(t, p.A, fmt.Sprintf("%s:%d", p.AddrB, 9800+i), 2)
	}
	// The first datagrams wait for ARP: poll until every flow arrived.
	var s *Snapshot
	deadline := time.Now().Add(3 * time.Second)
	for {
		s = pkCollect(t, p.B)
		count, ok := s.Value(ProcSysConntrackCount, "", "nf_conntrack_count")
		if !ok {
			t.Skipf("conntrack not available: %v", s.Unavailable)
		}
		if count >= flows {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("nf_conntrack_count %d after 3s, want %d flows", count, flows)
		}
		time.Sleep(20 * time.Millisecond)
	}
	count, _ := s.Value(ProcSysConntrackCount, "", "nf_conntrack_count")
	out := testnet.In(t, p.B, "conntrack", "-C")
	if want, err := strconv.ParseUint(strings.TrimSpace(out), 10, 64); err != nil || count != want {
		t.Errorf("nf_conntrack_count %d, conntrack -C %q", count, out)
	}
	if entries, _ := s.Value(ProcNetStatConntrack, "", "entries"); entries != count {
		t.Errorf("entries %d, nf_conntrack_count %d: entries must be taken once, not summed", entries, count)
	}

	out = testnet.In(t, p.B, "conntrack", "-S")
	// conntrack -S names some columns its own way.
	names := map[string]string{"error": "icmp_error", "clash_resolve": "clashres", "chaintoolong": "chainlength"}
	sums := map[string]uint64{}
	for _, line := range strings.Split(out, "\n") {
		for _, kv := range strings.Fields(line) {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || k == "cpu" {
				continue
			}
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				t.Fatalf("conntrack -S: %q", kv)
			}
			if m, ok := names[k]; ok {
				k = m
			}
			sums[k] += n
		}
	}
	if len(sums) < 6 {
		t.Fatalf("conntrack -S printed too little:\n%s", out)
	}
	for k, want := range sums {
		got, ok := s.Value(ProcNetStatConntrack, "", k)
		if !ok {
			t.Errorf("conntrack -S shows %s, netdrop did not read it", k)
			continue
		}
		if got != want {
			t.Errorf("%s: netdrop %d, conntrack -S %d", k, got, want)
		}
	}
	t.Logf("%d flows tracked; conntrack -S %v", count, sums)
}

// TestNeighMatchesIPNtable compares the ARP table statistics with the
// netlink view `ip -s ntable` prints. They are host-wide and move with other
// traffic, so each value must lie between netdrop's reads before and after.
func TestNeighMatchesIPNtable(t *testing.T) {
	testnet.RequireTool(t, "ip")
	a := &Snapshot{}
	if err := (NeighSource{}).Collect(context.Background(), NewReading(DefaultFS()), a); err != nil || !hasSource(a, ProcNetStatARPCache) {
		t.Skipf("arp_cache not readable here (a non-initial namespace?): %v %v", err, a.Unavailable)
	}
	out := testnet.MustRun(t, "ip", "-s", "ntable", "show", "name", "arp_cache")
	c := &Snapshot{}
	if err := (NeighSource{}).Collect(context.Background(), NewReading(DefaultFS()), c); err != nil {
		t.Fatal(err)
	}
	// The first block is the table itself; its "stats" lines follow.
	block, _, _ := strings.Cut(out, "\n\n")
	_, stats, ok := strings.Cut(block, "stats ")
	if !ok {
		t.Fatalf("no stats in ip -s ntable:\n%s", out)
	}
	f := strings.Fields(stats)
	checked := 0
	for i := 0; i+1 < len(f); i += 2 {
		want, err := strconv.ParseUint(f[i+1], 10, 64)
		if err != nil {
			t.Fatalf("ip -s ntable: %s %s", f[i], f[i+1])
		}
		lo, ok1 := a.Value(ProcNetStatARPCache, "", f[i])
		hi, ok2 := c.Value(ProcNetStatARPCache, "", f[i])
		if !ok1 || !ok2 {
			t.Errorf("ip -s ntable shows %s, netdrop did not read it", f[i])
			continue
		}
		if want < lo || want > hi {
			t.Errorf("%s: ip -s ntable %d, netdrop %d then %d", f[i], want, lo, hi)
		}
		checked++
	}
	if checked < 8 {
		t.Errorf("only %d statistics compared:\n%s", checked, stats)
	}
}

// pkSendTo sends n datagrams from an unconnected socket in ns, so the ICMP
// port unreachable answers do not fail the next send as they would on a
// connected socket.
func pkSendTo(t *testing.T, ns, dst string, n int) int {
	t.Helper()
	sent := 0
	err := netns.Do(ns, func() error {
		to, err := net.ResolveUDPAddr("udp4", dst)
		if err != nil {
			return err
		}
		c, err := net.ListenUDP("udp4", nil)
		if err != nil {
			return err
		}
		defer c.Close()
		for range n {
			if _, err := c.WriteTo(make([]byte, 32), to); err == nil {
				sent++
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("send to %s from %s: %v", dst, ns, err)
	}
	return sent
}

func hasReason(s *Snapshot, source SourceID, part string) bool {
	for _, u := range s.Unavailable {
		if u.Source == source && strings.Contains(u.Reason, part) {
			return true
		}
	}
	return false
}

func hasSource(s *Snapshot, source SourceID) bool {
	for _, c := range s.Counters {
		if c.Source == source {
			return true
		}
	}
	return false
}

// BenchmarkCollectProc reads every /proc source of this package once per
// iteration from the running kernel: the cost of the /proc part of a
// snapshot.
func BenchmarkCollectProc(b *testing.B) {
	srcs := procSources()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		s := Collect(ctx, Options{Sources: srcs})
		if len(s.Counters) == 0 {
			b.Fatal("nothing read")
		}
	}
}

// BenchmarkProcSource times each /proc source alone.
func BenchmarkProcSource(b *testing.B) {
	ctx := context.Background()
	fs := DefaultFS()
	for _, src := range procSources() {
		b.Run(strings.TrimPrefix(string(src.ID()), "/proc/"), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				s := &Snapshot{Sysctls: map[string]string{}}
				if err := src.Collect(ctx, NewReading(fs), s); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
