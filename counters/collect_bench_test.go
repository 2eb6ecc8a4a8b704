package counters

import (
	"context"
	"testing"

	"github.com/safchain/ethtool"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/netdrop/netdrop/internal/netns"
)

// BenchmarkCollectAll reads every registered source once per iteration the
// way diagnose.Snapshot does: in parallel, each worker on a locked thread
// inside the namespace (here the current one). It is the number to profile
// when a snapshot gets slower:
//
//	go test -run '^$' -bench CollectAll -cpuprofile cpu.out ./counters/
func BenchmarkCollectAll(b *testing.B) {
	ctx := context.Background()
	opts := Options{Enter: func(fn func() error) error { return netns.Do("", fn) }}
	b.ReportAllocs()
	for b.Loop() {
		s := Collect(ctx, opts)
		if len(s.Counters) == 0 {
			b.Fatal("nothing read")
		}
	}
}

// BenchmarkCollectEach times each registered source alone, in turn on the
// calling goroutine, to show which one a snapshot waits for.
func BenchmarkCollectEach(b *testing.B) {
	ctx := context.Background()
	fs := DefaultFS()
	for _, src := range DefaultSources() {
		b.Run(string(src.ID()), func(b *testing.B) {
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

// floorRead reads a kernel file whole into buf and throws it away: the
// kernel's part of reading it, without any parsing.
func floorRead(path string, buf []byte) {
	fd, err := openat(unix.AT_FDCWD, path, unix.O_RDONLY|unix.O_CLOEXEC)
	if err != nil {
		return
	}
	for {
		n, err := unix.Read(fd, buf)
		if n <= 0 || err != nil {
			break
		}
	}
	unix.Close(fd)
}

// BenchmarkSnapshotFloor is what the kernel alone costs for one snapshot,
// read in turn on one thread: every /proc and /proc/sys file the sources
// read, read whole without parsing (sysctls with a page-sized read, as the
// sysctl source reads them), the link, qdisc and nftables chain dumps with
// nothing decoded, the ethtool queries of every link, and the sysfs and
// /proc/irq files of the NIC layout. A snapshot read in parallel on two
// CPUs can beat it; parsing and building counters come on top.
//
//	go test -run '^$' -bench 'SnapshotFloor|CollectAll' ./counters/
func BenchmarkSnapshotFloor(b *testing.B) {
	fs := DefaultFS()
	var files []string
	for _, n := range []string{"snmp", "netstat", "snmp6", "udp", "udp6", "sockstat", "sockstat6", "softnet_stat",
		"stat/nf_conntrack", "stat/arp_cache", "stat/ndisc_cache", "ip_tables_names", "ip6_tables_names", "arp_tables_names"} {
		files = append(files, fs.NetPath(n))
	}
	for _, n := range []string{"interrupts", "softirqs", "stat", "sys/net/netfilter/nf_conntrack_count", "sys/net/netfilter/nf_conntrack_max"} {
		files = append(files, fs.ProcPath(n))
	}
	links, err := dumpLinks(dialRaw)
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 64*1024)
	page := buf[:4096]
	nop := func(uint16, []byte) error { return nil }
	irqNames := map[int]string{}
	for b.Loop() {
		for _, f := range files {
			floorRead(f, buf)
		}
		for _, p := range sysctlPaths() {
			floorRead(fs.ProcPath("sys", p), page)
		}
		_ = netlinkDump(dialRaw, unix.NETLINK_ROUTE, unix.RTM_GETLINK, nl.NewIfInfomsg(unix.AF_UNSPEC).Serialize(), nop)
		_ = netlinkDump(dialRaw, unix.NETLINK_ROUTE, unix.RTM_GETQDISC, (&nl.TcMsg{Family: nl.FAMILY_ALL}).Serialize(), nop)
		_ = netlinkDump(dialRaw, unix.NETLINK_NETFILTER, unix.NFNL_SUBSYS_NFTABLES<<8|unix.NFT_MSG_GETCHAIN, []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, 0}, nop)
		if e, err := ethtool.NewEthtool(); err == nil {
			for _, l := range links {
				_, _ = ethtoolStats(e, l.Name)
				if _, err := e.GetRing(l.Name); err == nil || l.ParentDev != "" {
					_, _ = e.GetChannels(l.Name)
					_, _ = e.GetCoalesce(l.Name)
				}
			}
			e.Close()
		}
		for _, l := range links {
			if l.ParentDev != "" && sysfsShowsLink(fs, l) {
				n := NIC{TxQueueLen: 1}
				_ = readNICLayout(fs, l.Name, irqNames, &n)
			}
		}
	}
}
