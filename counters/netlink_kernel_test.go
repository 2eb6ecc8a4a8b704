package counters

// Kernel integration tests for the netlink, ioctl and nftables sources. Each
// test builds its own pair of network namespaces joined by a veth, makes drops
// happen there with traffic that never leaves them, and compares netdrop's
// numbers with the reference tool's (tc, nft, iptables, ip, ethtool) on the
// same state.

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/netdrop/netdrop/stage"

	"github.com/netdrop/netdrop/internal/netns"
)

// ktSeq numbers the namespaces of this process.
var ktSeq atomic.Int32

// ktNeed skips the test unless it runs as root with the named tools.
func ktNeed(t *testing.T, tools ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces")
	}
	for _, tool := range append([]string{"ip"}, tools...) {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s as the reference tool: %v", tool, err)
		}
	}
}

// ktRun runs a command and fails the test with its output if it fails.
func ktRun(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// ktPair is two namespaces, A (10.201.0.1 on vA) and B (10.201.0.2 on vB),
// joined by a veth with fixed MAC addresses and permanent neighbour entries,
// so that no ARP exchange mixes with the test's traffic.
type ktPair struct {
	A, B   string
	IPB    string
	MACA   string
	MACB   string
	VA, VB string
}

func ktNewPair(t *testing.T) ktPair {
	t.Helper()
	n := ktSeq.Add(1)
	p := ktPair{
		A:    fmt.Sprintf("ndtest-ctrnl-%d-%da", os.Getpid(), n),
		B:    fmt.Sprintf("ndtest-ctrnl-%d-%db", os.Getpid(), n),
		IPB:  "10.201.0.2",
		MACA: "02:00:00:00:01:01",
		MACB: "02:00:00:00:01:02",
		VA:   "vA", VB: "vB",
	}
	for _, ns := range []string{p.A, p.B} {
		ktRun(t, "ip", "netns", "add", ns)
		t.Cleanup(func() {
			if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
				t.Errorf("ip netns del %s: %v\n%s", ns, err, out)
			}
		})
		// No IPv6 inside the pair: DAD, MLD and router solicitations sent
		// when a link comes up would add stray packets to exact counts.
		// These sysctls belong to the new namespace only; a kernel without
		// IPv6 has nothing to silence.
		_ = exec.Command("ip", "netns", "exec", ns, "sysctl", "-qw",
			"net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1").Run()
	}
	ktRun(t, "ip", "-n", p.A, "link", "add", p.VA, "address", p.MACA, "type", "veth",
		"peer", "name", p.VB, "address", p.MACB, "netns", p.B)
	ktRun(t, "ip", "-n", p.A, "addr", "add", "10.201.0.1/24", "dev", p.VA)
	ktRun(t, "ip", "-n", p.B, "addr", "add", p.IPB+"/24", "dev", p.VB)
	for _, ns := range []string{p.A, p.B} {
		ktRun(t, "ip", "-n", ns, "link", "set", "lo", "up")
	}
	ktRun(t, "ip", "-n", p.A, "link", "set", p.VA, "up")
	ktRun(t, "ip", "-n", p.B, "link", "set", p.VB, "up")
	ktRun(t, "ip", "-n", p.A, "neigh", "replace", p.IPB, "lladdr", p.MACB, "dev", p.VA, "nud", "permanent")
	ktRun(t, "ip", "-n", p.B, "neigh", "replace", "10.201.0.1", "lladdr", p.MACA, "dev", p.VB, "nud", "permanent")
	ktWaitUp(t, p.A, p.VA)
	ktWaitUp(t, p.B, p.VB)
	return p
}

// ktWaitUp waits until dev's operstate is UP. Link watch sets it in the
// same step that activates the device's qdisc; before that, frames go to
// noop_qdisc and are dropped, which would spoil exact counts.
func ktWaitUp(t *testing.T, ns, dev string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var links []struct {
			Operstate string `json:"operstate"`
		}
		out := ktRun(t, "ip", "-n", ns, "-j", "link", "show", "dev", dev)
		if err := json.Unmarshal([]byte(out), &links); err == nil && len(links) == 1 && links[0].Operstate == "UP" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s in %s not up after 5 s: %s", dev, ns, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ktSendUDP sends n datagrams of size bytes from namespace ns to dst:port.
// The socket is made inside ns; send errors (ENOBUFS from a full qdisc,
// ECONNREFUSED after a REJECT) are expected and ignored. Bounded by n and
// by a 5 s deadline.
func ktSendUDP(t *testing.T, ns, dst string, port, n, size int) {
	t.Helper()
	err := netns.Do(ns, func() error {
		c, err := net.ListenPacket("udp4", "0.0.0.0:0")
		if err != nil {
			return err
		}
		defer c.Close()
		if err := c.SetWriteDeadline(time.Now().Add(5 * time.Second)); err != nil {
			return err
		}
		to := &net.UDPAddr{IP: net.ParseIP(dst), Port: port}
		buf := make([]byte, size)
		for i := 0; i < n; i++ {
			if _, err := c.WriteTo(buf, to); err != nil && os.IsTimeout(err) {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("send in %s: %v", ns, err)
	}
}

// ktSendRaw writes n Ethernet frames of the given EtherType on dev in
// namespace ns through an AF_PACKET socket.
func ktSendRaw(t *testing.T, ns, dev, dst, src string, etherType uint16, n int) {
	t.Helper()
	err := netns.Do(ns, func() error {
		ifi, err := net.InterfaceByName(dev)
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		d, _ := net.ParseMAC(dst)
		sm, _ := net.ParseMAC(src)
		frame := make([]byte, 60)
		copy(frame, d)
		copy(frame[6:], sm)
		binary.BigEndian.PutUint16(frame[12:], etherType)
		to := &unix.SockaddrLinklayer{Ifindex: ifi.Index, Halen: 6}
		copy(to.Addr[:], d)
		for i := 0; i < n; i++ {
			if err := unix.Sendto(fd, frame, 0, to); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("raw send in %s: %v", ns, err)
	}
}

// ktCollect reads one source inside namespace ns, as `netdrop --netns` does.
func ktCollect(t *testing.T, ns string, src Source) *Snapshot {
	t.Helper()
	var s *Snapshot
	if err := netns.Do(ns, func() error {
		s = Collect(context.Background(), Options{Netns: ns, Sources: []Source{src}})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(s.Unavailable) > 0 {
		t.Errorf("%s in %s: unavailable %+v", src.ID(), ns, s.Unavailable)
	}
	return s
}

// ktValue returns a counter's value or fails.
func ktValue(t *testing.T, s *Snapshot, source SourceID, object, field string) uint64 {
	t.Helper()
	v, ok := s.Value(source, object, field)
	if !ok {
		var have []string
		for _, c := range s.Counters {
			have = append(have, string(c.Source)+"|"+c.Name())
		}
		t.Fatalf("no counter %s|%s %s; have %v", source, object, field, have)
	}
	return v
}

// ktSoftnetDropped sums column 2 of /proc/net/softnet_stat: packets the
// host's per-CPU input backlogs dropped (hex, one row per CPU).
func ktSoftnetDropped(t *testing.T) uint64 {
	t.Helper()
	b, err := os.ReadFile("/proc/net/softnet_stat")
	if err != nil {
		t.Fatal(err)
	}
	var sum uint64
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		v, err := strconv.ParseUint(f[1], 16, 32)
		if err != nil {
			t.Fatalf("softnet_stat: %v", err)
		}
		sum += v
	}
	return sum
}

// ktExact runs a phase that sends traffic and checks an exact count; the
// phase returns "" on success or what differed. The veth receive path goes
// through the host-wide per-CPU backlog, which other traffic on a shared
// machine can fill: a mismatch is retried (three attempts in all) only
// when that backlog dropped packets during the attempt, and fails
// otherwise.
func ktExact(t *testing.T, phase func() string) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		before := ktSoftnetDropped(t)
		msg := phase()
		if msg == "" {
			return
		}
		if ktSoftnetDropped(t) == before || attempt == 3 {
			t.Error(msg)
			return
		}
		t.Logf("attempt %d: %s; the host's input backlog dropped packets meanwhile, retrying", attempt, msg)
	}
}

// ktWait polls until cond holds or 3 s pass: softirq processing of the
// sent packets may trail the send loop slightly.
// ktNftDropsExactly sends n datagrams from A to B's port 9999, which a drop
// rule there counts, and checks the rule's packets (object obj, what in
// messages) move by exactly n between two readings (see ktExact).
func ktNftDropsExactly(t *testing.T, p ktPair, obj string, n int, what string) {
	t.Helper()
	ktExact(t, func() string {
		before := ktCollect(t, p.B, nftablesSource{})
		ktSendUDP(t, p.A, p.IPB, 9999, n, 64)
		var got uint64
		ktWait(func() bool {
			got, _ = Delta(before, ktCollect(t, p.B, nftablesSource{})).Value(NetlinkNftables, obj, "packets")
			return got >= uint64(n)
		})
		if got != uint64(n) {
			return fmt.Sprintf("%s packets delta = %d, want %d sent", what, got, n)
		}
		return ""
	})
}

func ktWait(cond func() bool) {
	deadline := time.Now().Add(3 * time.Second)
	for !cond() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
}

func TestQdiscDropsMatchTC(t *testing.T) {
	ktNeed(t, "tc")
	p := ktNewPair(t)
	// A token bucket of 1 Mbit/s with a 3000-byte queue: a burst of 200
	// datagrams of 1000 bytes overflows it at once.
	ktRun(t, "tc", "-n", p.A, "qdisc", "add", "dev", p.VA, "root", "handle", "1:", "tbf",
		"rate", "1mbit", "burst", "2k", "limit", "3000")

	tcDrops := func() uint64 {
		t.Helper()
		var qs []struct {
			Kind   string `json:"kind"`
			Handle string `json:"handle"`
			Drops  uint64 `json:"drops"`
		}
		out := ktRun(t, "tc", "-n", p.A, "-s", "-j", "qdisc", "show", "dev", p.VA)
		if err := json.Unmarshal([]byte(out), &qs); err != nil {
			t.Fatalf("tc -j: %v\n%s", err, out)
		}
		for _, q := range qs {
			if q.Kind == "tbf" && q.Handle == "1:" {
				return q.Drops
			}
		}
		t.Fatalf("tc shows no tbf 1: on %s:\n%s", p.VA, out)
		return 0
	}
	obj := p.VA + " tbf 1:"
	before := ktCollect(t, p.A, qdiscSource{})
	tcBefore := tcDrops()

	ktSendUDP(t, p.A, p.IPB, 9000, 200, 1000)

	after := ktCollect(t, p.A, qdiscSource{})
	tcAfter := tcDrops()
	if abs := ktValue(t, after, NetlinkQdisc, obj, "drops"); abs != tcAfter {
		t.Errorf("qdisc drops = %d, tc -s qdisc shows %d", abs, tcAfter)
	}
	d := Delta(before, after)
	got := ktValue(t, d, NetlinkQdisc, obj, "drops")
	if want := tcAfter - tcBefore; got != want {
		t.Errorf("qdisc drops delta = %d, tc -s qdisc shows %d", got, want)
	}
	if got == 0 {
		t.Errorf("a 200-datagram burst into a 3000-byte tbf dropped nothing")
	}
	// The gauges are there too, and are levels, not deltas.
	c, _ := d.Get(Key{NetlinkQdisc, obj, "backlog"})
	if !c.Gauge {
		t.Errorf("backlog is not a gauge: %+v", c)
	}
	t.Logf("tbf drops: netdrop %d, tc %d", got, tcAfter-tcBefore)

	// The shaper's settings as tc prints them (rate in bytes per second,
	// burst in bytes); tc prints no limit but a latency, so the limit is
	// the one this test set.
	var qs []struct {
		Kind    string `json:"kind"`
		Options struct {
			Rate  uint64 `json:"rate"`
			Burst uint64 `json:"burst"`
		} `json:"options"`
	}
	out := ktRun(t, "tc", "-n", p.A, "-j", "qdisc", "show", "dev", p.VA)
	if err := json.Unmarshal([]byte(out), &qs); err != nil || len(qs) == 0 || qs[0].Kind != "tbf" {
		t.Fatalf("tc -j: %v\n%s", err, out)
	}
	for field, want := range map[string]uint64{"rate": qs[0].Options.Rate, "burst": qs[0].Options.Burst, "limit": 3000} {
		if got := ktValue(t, after, NetlinkQdisc, obj, field); got != want {
			t.Errorf("tbf %s = %d, tc says %d", field, got, want)
		}
	}
}

func TestNftablesDropRuleMatchesNft(t *testing.T) {
	ktNeed(t, "nft")
	p := ktNewPair(t)
	nft := func(args ...string) string {
		return ktRun(t, "ip", append([]string{"netns", "exec", p.B, "nft"}, args...)...)
	}
	nft("add", "table", "inet", "ndt")
	nft("add", "chain", "inet", "ndt", "input", "{ type filter hook input priority 0; policy accept; }")
	nft("add", "rule", "inet", "ndt", "input", "udp", "dport", "9999", "counter", "drop")

	nftCount := func() (handle int, packets uint64) {
		t.Helper()
		var doc struct {
			Nftables []struct {
				Rule *struct {
					Handle int `json:"handle"`
					Expr   []struct {
						Counter *struct {
							Packets uint64 `json:"packets"`
						} `json:"counter"`
					} `json:"expr"`
				} `json:"rule"`
			} `json:"nftables"`
		}
		out := nft("-j", "list", "chain", "inet", "ndt", "input")
		if err := json.Unmarshal([]byte(out), &doc); err != nil {
			t.Fatalf("nft -j: %v\n%s", err, out)
		}
		for _, x := range doc.Nftables {
			if x.Rule == nil {
				continue
			}
			for _, e := range x.Rule.Expr {
				if e.Counter != nil {
					return x.Rule.Handle, e.Counter.Packets
				}
			}
		}
		t.Fatalf("nft shows no counter rule:\n%s", out)
		return 0, 0
	}
	handle, nftBefore := nftCount()
	obj := fmt.Sprintf("inet ndt input handle %d: udp dport 9999 counter drop", handle)
	first := ktCollect(t, p.B, nftablesSource{})

	const n = 37
	ktNftDropsExactly(t, p, obj, n, "drop rule")

	after := ktCollect(t, p.B, nftablesSource{})
	_, nftAfter := nftCount()
	if abs := ktValue(t, after, NetlinkNftables, obj, "packets"); abs != nftAfter {
		t.Errorf("drop rule packets = %d, nft shows %d", abs, nftAfter)
	}
	if got, want := ktValue(t, Delta(first, after), NetlinkNftables, obj, "packets"), nftAfter-nftBefore; got != want || got == 0 {
		t.Errorf("drop rule packets delta = %d, nft shows %d", got, want)
	}
}

// TestNftablesNamedCounterMatchesNft drops datagrams through a rule that
// counts into a named counter object ("counter name dropped", no anonymous
// counter expression) and checks the rule's count is the object's, as
// `nft list counter` shows it. A map element pointing at the same counter
// then makes it no longer a drop count of that rule alone, which the
// kernel's use count must tell.
func TestNftablesNamedCounterMatchesNft(t *testing.T) {
	ktNeed(t, "nft")
	p := ktNewPair(t)
	nft := func(args ...string) string {
		return ktRun(t, "ip", append([]string{"netns", "exec", p.B, "nft"}, args...)...)
	}
	nft("add", "table", "inet", "ndt")
	nft("add", "counter", "inet", "ndt", "dropped")
	nft("add", "chain", "inet", "ndt", "input", "{ type filter hook input priority 0; policy accept; }")
	nft("add", "rule", "inet", "ndt", "input", "udp", "dport", "9999", "counter", "name", "dropped", "drop")

	nftCounter := func() uint64 {
		t.Helper()
		var doc struct {
			Nftables []struct {
				Counter *struct {
					Packets uint64 `json:"packets"`
				} `json:"counter"`
			} `json:"nftables"`
		}
		out := nft("-j", "list", "counter", "inet", "ndt", "dropped")
		if err := json.Unmarshal([]byte(out), &doc); err != nil {
			t.Fatalf("nft -j: %v\n%s", err, out)
		}
		for _, x := range doc.Nftables {
			if x.Counter != nil {
				return x.Counter.Packets
			}
		}
		t.Fatalf("nft shows no counter dropped:\n%s", out)
		return 0
	}
	var handle int
	if m := regexp.MustCompile(`counter name "dropped" drop # handle (\d+)`).FindStringSubmatch(nft("-a", "list", "chain", "inet", "ndt", "input")); m != nil {
		handle, _ = strconv.Atoi(m[1])
	} else {
		t.Fatal("nft -a list chain shows no rule counting into dropped")
	}
	obj := fmt.Sprintf(`inet ndt input handle %d: udp dport 9999 counter name "dropped" drop`, handle)
	nftBefore := nftCounter()
	// ktCollect fails on any unavailable entry: before, this rule was
	// "without a counter".
	first := ktCollect(t, p.B, nftablesSource{})

	const n = 37
	ktNftDropsExactly(t, p, obj, n, "named counter drop rule")

	after := ktCollect(t, p.B, nftablesSource{})
	nftAfter := nftCounter()
	if abs := ktValue(t, after, NetlinkNftables, obj, "packets"); abs != nftAfter {
		t.Errorf("drop rule packets = %d, nft list counter shows %d", abs, nftAfter)
	}
	if got, want := ktValue(t, Delta(first, after), NetlinkNftables, obj, "packets"), nftAfter-nftBefore; got != want || got == 0 {
		t.Errorf("drop rule packets delta = %d, nft list counter shows %d", got, want)
	}

	// A map element now counts into "dropped" too: the rule loses its
	// counter, and both it and the map rule say why.
	nft("add", "rule", "inet", "ndt", "input", "udp", "dport", "9998", "counter", "name", "ip", "saddr", "map", `{ 10.201.0.1 : "dropped" }`, "drop")
	var shared *Snapshot
	if err := netns.Do(p.B, func() error {
		shared = Collect(context.Background(), Options{Netns: p.B, Sources: []Source{nftablesSource{}}})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, ok := shared.Value(NetlinkNftables, obj, "packets"); ok {
		t.Errorf("rule %q still has the counter a map element also counts into", obj)
	}
	var reasons []string
	for _, u := range shared.Unavailable {
		if u.Source == NetlinkNftables {
			reasons = append(reasons, u.Object+": "+u.Reason)
		}
	}
	all := strings.Join(reasons, "\n")
	for _, want := range []string{`inet ndt counter "dropped": drop or reject rules (handle ` + strconv.Itoa(handle) + `) count into named counter "dropped", which 1 other`,
		"inet ndt input: drop or reject rules that count into a counter map"} {
		if !strings.Contains(all, want) {
			t.Errorf("unavailable lacks %q:\n%s", want, all)
		}
	}
}

func TestIptablesNftRejectAndPolicyMatchIptables(t *testing.T) {
	ktNeed(t, "iptables")
	if out, _ := exec.Command("iptables", "-V").CombinedOutput(); !strings.Contains(string(out), "nf_tables") {
		t.Skipf("iptables is not the nf_tables variant (%s); its rules are not nftables rules", strings.TrimSpace(string(out)))
	}
	p := ktNewPair(t)
	ipt := func(args ...string) string {
		return ktRun(t, "ip", append([]string{"netns", "exec", p.B, "iptables"}, args...)...)
	}
	ipt("-A", "INPUT", "-p", "udp", "--dport", "9998", "-j", "REJECT")
	ipt("-P", "INPUT", "DROP")

	// iptables -nvxL INPUT: "Chain INPUT (policy DROP 13 packets, 572 bytes)"
	// and one line per rule starting with its exact packet count.
	policyRe := regexp.MustCompile(`Chain INPUT \(policy DROP (\d+) packets`)
	rejectRe := regexp.MustCompile(`(?m)^\s*(\d+)\s+\d+\s+REJECT\s`)
	counts := func() (policy, reject uint64) {
		t.Helper()
		out := ipt("-nvxL", "INPUT")
		m, r := policyRe.FindStringSubmatch(out), rejectRe.FindStringSubmatch(out)
		if m == nil || r == nil {
			t.Fatalf("cannot read iptables -nvxL INPUT:\n%s", out)
		}
		policy, _ = strconv.ParseUint(m[1], 10, 64)
		reject, _ = strconv.ParseUint(r[1], 10, 64)
		return policy, reject
	}
	findRule := func(s *Snapshot) string {
		t.Helper()
		for _, c := range s.Counters {
			if c.Source == NetlinkNftables && strings.HasPrefix(c.Object, "ip filter INPUT handle ") {
				return c.Object
			}
		}
		t.Fatalf("no REJECT rule counter in ip filter INPUT: %+v", s.Counters)
		return ""
	}
	policyObj := "ip filter INPUT policy drop"

	polBefore, rejBefore := counts()
	first := ktCollect(t, p.B, nftablesSource{})
	ruleObj := findRule(first)

	const nReject, nPolicy = 11, 13
	ktExact(t, func() string {
		before := ktCollect(t, p.B, nftablesSource{})
		ktSendUDP(t, p.A, p.IPB, 9998, nReject, 64)
		ktSendUDP(t, p.A, p.IPB, 9997, nPolicy, 64)
		var a, b uint64
		ktWait(func() bool {
			d := Delta(before, ktCollect(t, p.B, nftablesSource{}))
			a, _ = d.Value(NetlinkNftables, ruleObj, "packets")
			b, _ = d.Value(NetlinkNftables, policyObj, "packets")
			return a >= nReject && b >= nPolicy
		})
		if a != nReject || b != nPolicy {
			return fmt.Sprintf("REJECT rule delta %d (sent %d), policy drop delta %d (sent %d)", a, nReject, b, nPolicy)
		}
		return ""
	})

	after := ktCollect(t, p.B, nftablesSource{})
	polAfter, rejAfter := counts()
	if a, b := ktValue(t, after, NetlinkNftables, ruleObj, "packets"), ktValue(t, after, NetlinkNftables, policyObj, "packets"); a != rejAfter || b != polAfter {
		t.Errorf("REJECT rule = %d, policy = %d; iptables shows %d, %d", a, b, rejAfter, polAfter)
	}
	d := Delta(first, after)
	if got := ktValue(t, d, NetlinkNftables, ruleObj, "packets"); got != rejAfter-rejBefore || got == 0 {
		t.Errorf("REJECT rule delta = %d, iptables shows %d", got, rejAfter-rejBefore)
	}
	if got := ktValue(t, d, NetlinkNftables, policyObj, "packets"); got != polAfter-polBefore || got == 0 {
		t.Errorf("policy drop delta = %d, iptables shows %d", got, polAfter-polBefore)
	}
}

// ipLinkStats reads `ip -s -s -j link show dev` in namespace ns.
func ipLinkStats(t *testing.T, ns, dev string) (rx, tx map[string]uint64) {
	t.Helper()
	var links []struct {
		Stats64 struct {
			RX map[string]uint64 `json:"rx"`
			TX map[string]uint64 `json:"tx"`
		} `json:"stats64"`
	}
	out := ktRun(t, "ip", "-n", ns, "-s", "-s", "-j", "link", "show", "dev", dev)
	if err := json.Unmarshal([]byte(out), &links); err != nil || len(links) != 1 {
		t.Fatalf("ip -s -j link: %v\n%s", err, out)
	}
	return links[0].Stats64.RX, links[0].Stats64.TX
}

func TestLinkStatsMatchIP(t *testing.T) {
	ktNeed(t)
	p := ktNewPair(t)
	const n = 23

	// Frames for another host's MAC: vB receives them and ip_rcv_core
	// drops them as PACKET_OTHERHOST (rx_otherhost_dropped, 6.0+).
	ktRun(t, "ip", "-n", p.A, "neigh", "replace", p.IPB, "lladdr", "02:00:00:00:99:99", "dev", p.VA, "nud", "permanent")
	ktExact(t, func() string {
		before := ktCollect(t, p.B, linkSource{})
		ktSendUDP(t, p.A, p.IPB, 9000, n, 64)
		var d *Snapshot
		ktWait(func() bool {
			d = Delta(before, ktCollect(t, p.B, linkSource{}))
			v, _ := d.Value(NetlinkLinkStats, p.VB, "rx_otherhost_dropped")
			return v >= n
		})
		if v, ok := d.Value(NetlinkLinkStats, p.VB, "rx_otherhost_dropped"); !ok {
			t.Logf("kernel sends no rx_otherhost_dropped (before 6.0)")
		} else if v != n {
			return fmt.Sprintf("rx_otherhost_dropped delta = %d, want %d", v, n)
		}
		return ""
	})

	// Frames of an EtherType nobody handles (0x88b5, IEEE local
	// experimental), written raw on vA: __netif_receive_skb_core on vB
	// finds no handler and, vB not being an exact-delivery device (an
	// inactive bond slave), counts them in rx_dropped, not rx_nohandler.
	// A frame the backlog drops is counted in rx_dropped too, so this
	// count is exact even on a busy host.
	before := ktCollect(t, p.B, linkSource{})
	ktSendRaw(t, p.A, p.VA, p.MACB, p.MACA, 0x88b5, n)
	var d *Snapshot
	ktWait(func() bool {
		d = Delta(before, ktCollect(t, p.B, linkSource{}))
		v, _ := d.Value(NetlinkLinkStats, p.VB, "rx_dropped")
		return v >= n
	})
	if v := ktValue(t, d, NetlinkLinkStats, p.VB, "rx_dropped"); v != n {
		t.Errorf("rx_dropped delta after %d unhandled frames = %d", n, v)
	}
	if v := ktValue(t, d, NetlinkLinkStats, p.VB, "rx_nohandler"); v != 0 {
		t.Errorf("rx_nohandler delta = %d, want 0 on a veth", v)
	}

	// Frames longer than the peer's MTU allows: veth_xmit cannot forward
	// them (is_skb_forwardable), so the sender counts tx_dropped and the
	// peer rx_dropped (drivers/net/veth.c). Taking the peer down instead
	// races with link watch: once it sees the carrier go it swaps the
	// sender's qdisc for noop, which drops before veth_xmit and counts
	// nothing on the device (seen on 6.1 in a slow VM).
	ktRun(t, "ip", "-n", p.A, "neigh", "replace", p.IPB, "lladdr", p.MACB, "dev", p.VA, "nud", "permanent")
	ktRun(t, "ip", "-n", p.B, "link", "set", p.VB, "mtu", "1280")
	beforeA := ktCollect(t, p.A, linkSource{})
	ktSendUDP(t, p.A, p.IPB, 9000, n, 1400)
	afterA := ktCollect(t, p.A, linkSource{})
	if v := ktValue(t, Delta(beforeA, afterA), NetlinkLinkStats, p.VA, "tx_dropped"); v != n {
		t.Errorf("%s tx_dropped delta = %d, want %d", p.VA, v, n)
	}

	// Every value against ip -s -s -j link on the now quiet pair.
	names := map[string][2]string{ // ours -> ip's (direction, key)
		"rx_packets": {"rx", "packets"}, "rx_dropped": {"rx", "dropped"}, "rx_errors": {"rx", "errors"},
		"rx_over_errors": {"rx", "over_errors"}, "rx_crc_errors": {"rx", "crc_errors"},
		"rx_frame_errors": {"rx", "frame_errors"}, "rx_fifo_errors": {"rx", "fifo_errors"},
		"rx_missed_errors": {"rx", "missed_errors"}, "rx_length_errors": {"rx", "length_errors"},
		"rx_otherhost_dropped": {"rx", "otherhost"}, "rx_nohandler": {"rx", "nohandler"},
		"tx_packets": {"tx", "packets"}, "tx_dropped": {"tx", "dropped"}, "tx_errors": {"tx", "errors"},
		"tx_aborted_errors": {"tx", "aborted_errors"}, "tx_carrier_errors": {"tx", "carrier_errors"},
		"tx_fifo_errors": {"tx", "fifo_errors"},
	}
	for _, side := range []struct{ ns, dev string }{{p.A, p.VA}, {p.B, p.VB}} {
		s := ktCollect(t, side.ns, linkSource{})
		rx, tx := ipLinkStats(t, side.ns, side.dev)
		compared := 0
		for ours, ip := range names {
			m := rx
			if ip[0] == "tx" {
				m = tx
			}
			want, ok := m[ip[1]]
			if !ok {
				continue // iproute2 omits zero nohandler/otherhost
			}
			compared++
			if got := ktValue(t, s, NetlinkLinkStats, side.dev, ours); got != want {
				t.Errorf("%s %s = %d, ip -s link shows %d", side.dev, ours, got, want)
			}
		}
		if compared < 10 {
			t.Errorf("%s: compared only %d values with ip -s link", side.dev, compared)
		}
	}
}

func TestEthtoolMatchesEthtool(t *testing.T) {
	ktNeed(t, "ethtool")
	p := ktNewPair(t)
	s := ktCollect(t, p.A, ethtoolSource{})
	out := ktRun(t, "ip", "netns", "exec", p.A, "ethtool", "-S", p.VA)
	lineRe := regexp.MustCompile(`(?m)^\s+(\S+): (\d+)$`)
	compared := 0
	for _, m := range lineRe.FindAllStringSubmatch(out, -1) {
		if !ethtoolSelected(m[1]) {
			continue
		}
		want, _ := strconv.ParseUint(m[2], 10, 64)
		if got := ktValue(t, s, EthtoolStats, p.VA, m[1]); got != want {
			t.Errorf("%s %s = %d, ethtool -S shows %d", p.VA, m[1], got, want)
		}
		compared++
	}
	if compared == 0 {
		t.Errorf("no drop statistics of veth compared; ethtool -S:\n%s", out)
	}
	// veth has no ring and no device: it must not pose as a NIC.
	for _, n := range s.NICs {
		if n.Name == p.VA {
			t.Errorf("veth got a NIC entry: %+v", n)
		}
	}
}

// TestNICLayoutMatchesEthtool reads the host's own NICs, read-only, and
// compares ring sizes and channels with ethtool -g and -l.
func TestNICLayoutMatchesEthtool(t *testing.T) {
	ktNeed(t, "ethtool")
	var s *Snapshot
	if err := netns.Do("", func() error {
		s = Collect(context.Background(), Options{Sources: []Source{nicSource{}, ethtoolSource{}}})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	num := func(out, section, key string) uint32 {
		i := strings.Index(out, section)
		if i < 0 {
			return 0
		}
		m := regexp.MustCompile(`(?m)^` + key + `:\s+(\d+)`).FindStringSubmatch(out[i:])
		if m == nil {
			return 0
		}
		v, _ := strconv.ParseUint(m[1], 10, 32)
		return uint32(v)
	}
	withRing := 0
	for _, n := range s.NICs {
		g, err := exec.Command("ethtool", "-g", n.Name).CombinedOutput()
		if err != nil {
			if n.RxRing != 0 {
				t.Errorf("%s: ethtool -g fails (%v) but netdrop has ring %d", n.Name, err, n.RxRing)
			}
			continue
		}
		withRing++
		gs := string(g)
		if want := num(gs, "Current hardware settings", "RX"); n.RxRing != want {
			t.Errorf("%s rx ring = %d, ethtool -g shows %d", n.Name, n.RxRing, want)
		}
		if want := num(gs, "Pre-set maximums", "RX"); n.RxRingMax != want {
			t.Errorf("%s rx ring max = %d, ethtool -g shows %d", n.Name, n.RxRingMax, want)
		}
		if want := num(gs, "Current hardware settings", "TX"); n.TxRing != want {
			t.Errorf("%s tx ring = %d, ethtool -g shows %d", n.Name, n.TxRing, want)
		}
		if l, err := exec.Command("ethtool", "-l", n.Name).CombinedOutput(); err == nil {
			if want := num(string(l), "Current hardware settings", "Combined"); n.CombinedChannels != want {
				t.Errorf("%s combined channels = %d, ethtool -l shows %d", n.Name, n.CombinedChannels, want)
			}
		}
		if n.RxQueues == 0 || n.TxQueues == 0 || n.Driver == "" {
			t.Errorf("%s: sysfs layout missing: %+v", n.Name, n)
		}
	}
	if withRing == 0 {
		t.Skip("this host has no NIC with an ethtool ring to compare")
	}
}

// tcQdisc is one entry of `tc -s -j qdisc show`.
type tcQdisc struct {
	Kind   string `json:"kind"`
	Handle string `json:"handle"`
	Parent string `json:"parent"`
	Root   bool   `json:"root"`
	Drops  uint64 `json:"drops"`
}

func tcQdiscs(t *testing.T, ns, dev string) []tcQdisc {
	t.Helper()
	var qs []tcQdisc
	out := ktRun(t, "tc", "-n", ns, "-s", "-j", "qdisc", "show", "dev", dev)
	if err := json.Unmarshal([]byte(out), &qs); err != nil {
		t.Fatalf("tc -j: %v\n%s", err, out)
	}
	return qs
}

// TestQdiscHierarchyCountsOnceAtRoot checks that a drop in a leaf of a
// classful tree is evidence once: the root (which the kernel also charges)
// carries the qdisc stage, the leaf is context.
func TestQdiscHierarchyCountsOnceAtRoot(t *testing.T) {
	ktNeed(t, "tc")
	p := ktNewPair(t)
	ktRun(t, "tc", "-n", p.A, "qdisc", "add", "dev", p.VA, "root", "handle", "1:", "htb", "default", "10")
	ktRun(t, "tc", "-n", p.A, "class", "add", "dev", p.VA, "parent", "1:", "classid", "1:10", "htb", "rate", "1mbit", "ceil", "1mbit")
	ktRun(t, "tc", "-n", p.A, "qdisc", "add", "dev", p.VA, "parent", "1:10", "handle", "10:", "pfifo", "limit", "3")

	ktSendUDP(t, p.A, p.IPB, 9000, 100, 1000)

	s := ktCollect(t, p.A, qdiscSource{})
	tc := tcQdiscs(t, p.A, p.VA)
	var tcRoot, tcLeaf uint64
	for _, q := range tc {
		switch q.Handle {
		case "1:":
			tcRoot = q.Drops
		case "10:":
			tcLeaf = q.Drops
		}
	}
	root, _ := s.Get(Key{NetlinkQdisc, p.VA + " htb 1:", "drops"})
	leaf, _ := s.Get(Key{NetlinkQdisc, p.VA + " pfifo 10:", "drops"})
	if root.Value != tcRoot || leaf.Value != tcLeaf {
		t.Errorf("drops root %d leaf %d, tc shows root %d leaf %d", root.Value, leaf.Value, tcRoot, tcLeaf)
	}
	if leaf.Value == 0 || root.Value != leaf.Value {
		t.Errorf("a burst into a 3-packet pfifo under htb: root %d, leaf %d drops; want equal and non-zero", root.Value, leaf.Value)
	}
	if root.Stage != "qdisc" || leaf.Stage != "" {
		t.Errorf("stages: root %q leaf %q, want qdisc and context", root.Stage, leaf.Stage)
	}
	var staged uint64
	for _, c := range s.Counters {
		if c.Field == "drops" && c.Stage == "qdisc" && strings.HasPrefix(c.Object, p.VA+" ") {
			staged += c.Value
		}
	}
	if staged != tcRoot {
		t.Errorf("qdisc-stage drops on %s sum to %d, the tree dropped %d", p.VA, staged, tcRoot)
	}
}

// TestQdiscObjectsMatchTC checks names on a multiqueue device: mq's
// children all have handle 0: and are told apart by their parent, as tc
// prints them.
func TestQdiscObjectsMatchTC(t *testing.T) {
	ktNeed(t, "tc")
	p := ktNewPair(t)
	ktRun(t, "ip", "-n", p.A, "link", "add", "mq0", "numtxqueues", "4", "type", "veth", "peer", "name", "mq1")
	ktRun(t, "ip", "-n", p.A, "link", "set", "mq0", "up")
	ktRun(t, "ip", "-n", p.A, "link", "set", "mq1", "up")
	ktRun(t, "tc", "-n", p.A, "qdisc", "add", "dev", "mq0", "root", "handle", "1:", "mq")
	ktRun(t, "tc", "-n", p.A, "qdisc", "add", "dev", "mq0", "ingress")

	s := ktCollect(t, p.A, qdiscSource{})
	tc := tcQdiscs(t, p.A, "mq0")
	if len(tc) != 6 {
		t.Fatalf("tc shows %d qdiscs on mq0, want mq, 4 children and ingress: %+v", len(tc), tc)
	}
	for _, q := range tc {
		obj := "mq0 " + q.Kind + " " + q.Handle
		if q.Handle == "0:" {
			obj += " parent " + q.Parent
		}
		c, ok := s.Get(Key{NetlinkQdisc, obj, "drops"})
		if !ok {
			t.Errorf("no qdisc %q; tc shows %+v", obj, q)
			continue
		}
		if c.Value != q.Drops {
			t.Errorf("%s drops = %d, tc shows %d", obj, c.Value, q.Drops)
		}
		want := stage.ID("")
		switch {
		case q.Root:
			want = stage.Qdisc
		case q.Kind == "ingress":
			want = stage.TCIngress // its drops are filter verdicts on receive
		}
		if c.Stage != want {
			t.Errorf("%s stage %q, want %q: the root carries the qdisc stage, ingress the tc-ingress stage", obj, c.Stage, want)
		}
	}
}

// TestNftablesUncountedDropRule checks that a drop rule without a counter,
// and a policy drop on a chain without counters (as nft creates them), are
// reported as blind spots rather than silently missing.
func TestNftablesUncountedDropRule(t *testing.T) {
	ktNeed(t, "nft")
	p := ktNewPair(t)
	nft := func(args ...string) string {
		return ktRun(t, "ip", append([]string{"netns", "exec", p.B, "nft"}, args...)...)
	}
	nft("add", "table", "ip", "ndb")
	nft("add", "chain", "ip", "ndb", "input", "{ type filter hook input priority 0; policy drop; }")
	nft("add", "rule", "ip", "ndb", "input", "udp", "dport", "9990", "drop")
	out := nft("-a", "list", "chain", "ip", "ndb", "input")
	m := regexp.MustCompile(`drop # handle (\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no handle in nft -a output:\n%s", out)
	}

	var s *Snapshot
	if err := netns.Do(p.B, func() error {
		s = Collect(context.Background(), Options{Sources: []Source{nftablesSource{}}})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"ip ndb input":             "(handle " + m[1] + ")",
		"ip ndb input policy drop": "keeps no counters",
	}
	for _, u := range s.Unavailable {
		if frag, ok := want[u.Object]; ok && u.Source == NetlinkNftables && strings.Contains(u.Reason, frag) {
			delete(want, u.Object)
		}
	}
	if len(want) > 0 {
		t.Errorf("missing blind-spot entries %v; got %+v", want, s.Unavailable)
	}
	for _, c := range s.Counters {
		if strings.HasPrefix(c.Object, "ip ndb input") {
			t.Errorf("counter for an uncounted rule or policy: %+v", c)
		}
	}
}

// TestNftRuleTextMatchesNft loads rules of the common shapes, with nft and
// with iptables-nft, and checks that each drop or reject rule is named as
// `nft -a list ruleset` shows it: family, table, chain, handle and the
// rule's text (counter values left out).
func TestNftRuleTextMatchesNft(t *testing.T) {
	ktNeed(t, "nft")
	p := ktNewPair(t)
	const ruleset = `table inet ndtext {
  chain input {
    type filter hook input priority 0; policy accept;
    udp dport 9999 counter drop
    tcp dport { 22, 80 } counter reject
    ip saddr 10.1.2.3 counter drop comment "block host"
    iifname "veth0" meta l4proto icmp counter drop
    ct state invalid counter drop
    ip6 daddr ::1 udp sport 53 counter drop
    tcp dport 1000-2000 counter reject with tcp reset
    meta mark 0x00000010 counter drop
    ip saddr 10.0.0.0/8 counter drop
    tcp dport != 22 counter drop
    ct state established,related counter accept
  }
}
table ip ndtext4 {
  chain c {
    type filter hook input priority 0;
    udp dport 7 counter drop
    ip protocol udp counter drop
    ip daddr 10.0.0.1 tcp dport 80 counter reject with icmp host-unreachable
  }
}
`
	f := filepath.Join(t.TempDir(), "rules.nft")
	if err := os.WriteFile(f, []byte(ruleset), 0o644); err != nil {
		t.Fatal(err)
	}
	ktRun(t, "ip", "netns", "exec", p.B, "nft", "-f", f)
	iptNft := false
	if out, _ := exec.Command("iptables", "-V").CombinedOutput(); strings.Contains(string(out), "nf_tables") {
		iptNft = true
		for _, r := range [][]string{
			{"-A", "INPUT", "-p", "udp", "--dport", "9998", "-j", "DROP"},
			{"-A", "INPUT", "-s", "10.9.9.9", "-i", "eth0", "-j", "REJECT"},
			{"-A", "INPUT", "-m", "conntrack", "--ctstate", "INVALID", "-j", "DROP"},
			{"-A", "INPUT", "-p", "tcp", "--dport", "443", "-m", "comment", "--comment", "no https", "-j", "DROP"},
		} {
			ktRun(t, "ip", append([]string{"netns", "exec", p.B, "iptables"}, r...)...)
		}
	}

	// nft's text, by "family table chain handle N".
	want := map[string]string{}
	counter := regexp.MustCompile(`counter packets \d+ bytes \d+`)
	handle := regexp.MustCompile(`^(.*?)\s*# handle (\d+)$`)
	var table, chain string
	for _, line := range strings.Split(ktRun(t, "ip", "netns", "exec", p.B, "nft", "-a", "list", "ruleset"), "\n") {
		line = strings.TrimSpace(line)
		f := strings.Fields(line)
		switch {
		case len(f) >= 3 && f[0] == "table":
			table = f[1] + " " + f[2]
		case len(f) >= 2 && f[0] == "chain":
			chain = f[1]
		default:
			if m := handle.FindStringSubmatch(line); m != nil && chain != "" {
				text := strings.Join(strings.Fields(counter.ReplaceAllString(m[1], "counter")), " ")
				want[table+" "+chain+" handle "+m[2]] = text
			}
		}
	}
	s := ktCollect(t, p.B, nftablesSource{})
	seen := 0
	for _, c := range s.Counters {
		if c.Source != NetlinkNftables || strings.Contains(c.Object, "policy") {
			continue
		}
		id, text, ok := strings.Cut(c.Object, ": ")
		if !ok {
			t.Errorf("%q: no rule text", c.Object)
			continue
		}
		seen++
		w := want[id]
		if strings.Contains(text, "no https") {
			// nft prints the x_tables comment match as nothing; ours
			// names it, where it stands in the rule.
			w = strings.Replace(w, "tcp dport 443 counter", `tcp dport 443 comment "no https" counter`, 1)
		}
		if text != w {
			t.Errorf("%s:\n  netdrop %q\n  nft     %q", id, text, w)
		}
	}
	wantSeen := 13
	if iptNft {
		wantSeen += 4
	}
	if seen != wantSeen {
		t.Errorf("%d drop and reject rules named, want %d:\n%v", seen, wantSeen, s.Counters)
	}
}

// TestHTBClassMatchesTC: an htb shaper whose class 1:10 (1 Mbit/s, ceil
// 2 Mbit/s) has a pfifo leaf of 20 packets. A burst overflows the leaf: the
// class's drops and the root's must equal what tc -s shows, and the class's
// rate and ceil what tc shows. (fq_codel's statistics have unit tests only:
// this kernel has no fq_codel.)
func TestHTBClassMatchesTC(t *testing.T) {
	ktNeed(t, "tc")
	p := ktNewPair(t)
	ktRun(t, "tc", "-n", p.A, "qdisc", "add", "dev", p.VA, "root", "handle", "1:", "htb", "default", "10")
	ktRun(t, "tc", "-n", p.A, "class", "add", "dev", p.VA, "parent", "1:", "classid", "1:10", "htb", "rate", "1mbit", "ceil", "2mbit")
	ktRun(t, "tc", "-n", p.A, "qdisc", "add", "dev", p.VA, "parent", "1:10", "handle", "10:", "pfifo", "limit", "20")

	ktSendUDP(t, p.A, p.IPB, 9001, 200, 1000)
	after := ktCollect(t, p.A, qdiscSource{})

	var qs []struct {
		Kind  string `json:"kind"`
		Drops uint64 `json:"drops"`
	}
	out := ktRun(t, "tc", "-n", p.A, "-s", "-j", "qdisc", "show", "dev", p.VA)
	if err := json.Unmarshal([]byte(out), &qs); err != nil {
		t.Fatalf("tc -j qdisc: %v\n%s", err, out)
	}
	// tc prints htb classes as text only (no -j): "rate 1Mbit ceil
	// 2Mbit", "(dropped N, overlimits M …)".
	cout := ktRun(t, "tc", "-n", p.A, "-s", "class", "show", "dev", p.VA)
	if !strings.Contains(cout, "rate 1Mbit ceil 2Mbit") {
		t.Fatalf("tc class show does not show the class as set:\n%s", cout)
	}
	m := regexp.MustCompile(`dropped (\d+)`).FindStringSubmatch(cout)
	if m == nil {
		t.Fatalf("no drop count in tc -s class:\n%s", cout)
	}
	classDrops, _ := strconv.ParseUint(m[1], 10, 64)
	cls := []struct{ Drops, Rate, Ceil uint64 }{{classDrops, 125000, 250000}}
	var root uint64
	for _, q := range qs {
		if q.Kind == "htb" {
			root = q.Drops
			if got := ktValue(t, after, NetlinkQdisc, p.VA+" htb 1:", "drops"); got != q.Drops {
				t.Errorf("htb drops = %d, tc shows %d", got, q.Drops)
			}
		}
	}
	obj := p.VA + " htb class 1:10"
	for field, want := range map[string]uint64{"drops": cls[0].Drops, "rate": cls[0].Rate, "ceil": cls[0].Ceil} {
		if got := ktValue(t, after, NetlinkQdisc, obj, field); got != want {
			t.Errorf("class 1:10 %s = %d, tc shows %d", field, got, want)
		}
	}
	if cls[0].Drops == 0 || root == 0 {
		t.Errorf("a 200-datagram burst into a 20-packet leaf under 1 Mbit/s dropped nothing: root %d, class %d", root, cls[0].Drops)
	}
	t.Logf("htb root drops %d, class 1:10 drops %d (tc -s); netdrop %d", root, cls[0].Drops, ktValue(t, after, NetlinkQdisc, obj, "drops"))
}

// TestDevSNMP6MatchesFiles: the per-interface IPv6 counters equal
// /proc/net/dev_snmp6/IF field by field, in a namespace of its own where
// only the test's traffic moves them: UDP to a closed port on ::1, which
// lo counts (its file is read), and a veth pair left down, whose
// statistics are all zero in the link dump (its files are not read).
func TestDevSNMP6MatchesFiles(t *testing.T) {
	ktNeed(t, "ip")
	if _, err := os.Stat("/proc/net/dev_snmp6"); err != nil {
		t.Skipf("no IPv6 on this kernel: %v", err)
	}
	ns := fmt.Sprintf("ndtest-ctrnl-%d-%d6", os.Getpid(), ktSeq.Add(1))
	ktRun(t, "ip", "netns", "add", ns)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v\n%s", ns, err, out)
		}
	})
	ktRun(t, "ip", "-n", ns, "link", "set", "lo", "up")
	// The kernel gives a link IPv6 statistics when it registers it, up
	// or not; down, nothing moves them while the test compares.
	ktRun(t, "ip", "-n", ns, "link", "add", "v6a", "type", "veth", "peer", "name", "v6b")
	var files map[string]uint64
	var s *Snapshot
	if err := netns.Do(ns, func() error {
		c, err := net.ListenPacket("udp6", "[::1]:0")
		if err != nil {
			return err
		}
		for range 100 {
			_, _ = c.WriteTo(make([]byte, 100), &net.UDPAddr{IP: net.IPv6loopback, Port: 9})
		}
		c.Close()
		files = map[string]uint64{}
		dir := "/proc/thread-self/net/dev_snmp6"
		ents, err := os.ReadDir(dir)
		if err != nil {
			return err
		}
		for _, e := range ents {
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				return err
			}
			for _, line := range strings.Split(string(b), "\n") {
				f := strings.Fields(line)
				for _, keep := range devSNMP6Fields {
					if len(f) == 2 && strings.Replace(keep, ":", "", 1) == f[0] {
						v, err := strconv.ParseUint(f[1], 10, 64)
						if err != nil {
							return err
						}
						files[e.Name()+" "+keep] = v
					}
				}
			}
		}
		s = Collect(context.Background(), Options{Netns: ns, Sources: []Source{devSNMP6Source{}}})
		links, err := dumpLinks(dialRaw)
		if err != nil {
			return err
		}
		// Both paths ran: lo's file was read, the veths' were not.
		want := map[string]ipv6State{"lo": ipv6Counted, "v6a": ipv6Zero, "v6b": ipv6Zero}
		for _, l := range links {
			if l.IPv6 != want[l.Name] {
				t.Errorf("%s: IPv6 state %d in the link dump, want %d", l.Name, l.IPv6, want[l.Name])
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(s.Unavailable) > 0 {
		t.Errorf("unavailable: %+v", s.Unavailable)
	}
	got := map[string]uint64{}
	for _, c := range s.Counters {
		got[c.Object+" "+c.Field] = c.Value
	}
	if diff := cmp.Diff(files, got); diff != "" {
		t.Errorf("netdrop against /proc/net/dev_snmp6 (-files +netdrop):\n%s", diff)
	}
	if got["lo Ip6:InReceives"] < 100 || len(files) != 3*len(devSNMP6Fields) {
		t.Errorf("lo received %d IPv6 packets (want ≥ 100), %d fields in the files (want %d for lo, v6a and v6b): the test compares too little",
			got["lo Ip6:InReceives"], len(files), 3*len(devSNMP6Fields))
	}
}
