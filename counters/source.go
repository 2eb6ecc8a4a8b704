package counters

// SourceID names where a value was read, as a user could read it again: a
// path such as "/proc/net/snmp", or a query such as "netlink qdisc" or
// "ethtool -S". It is the key of a counter's identity (Key), of the
// unavailable list and of the registry, and what diagnose's rules match
// on. Every source has a constant below; code elsewhere names a source
// only through its constant, so renaming one breaks the build instead of
// silently matching nothing.
type SourceID string

// The sources of counters. Files under /proc are named by their path;
// netlink and ioctl queries by the tool a user would run for the same
// numbers.
const (
	// ProcNetSNMP, ProcNetNetstat and ProcNetSNMP6 are the SNMP MIB
	// files of the namespace (snmp.go).
	ProcNetSNMP    SourceID = "/proc/net/snmp"
	ProcNetNetstat SourceID = "/proc/net/netstat"
	ProcNetSNMP6   SourceID = "/proc/net/snmp6"
	// ProcNetDevSNMP6 is the per-interface IPv6 statistics,
	// /proc/net/dev_snmp6/IF (devsnmp6.go).
	ProcNetDevSNMP6 SourceID = "/proc/net/dev_snmp6"
	// ProcNetSoftnetStat is the per-CPU backlog statistics (softnet.go).
	ProcNetSoftnetStat SourceID = "/proc/net/softnet_stat"
	// ProcNetSockstat and ProcNetSockstat6 are socket usage levels
	// (sockstat.go).
	ProcNetSockstat  SourceID = "/proc/net/sockstat"
	ProcNetSockstat6 SourceID = "/proc/net/sockstat6"
	// ProcNetUDP and ProcNetUDP6 are the UDP socket tables, for
	// per-socket drop counts (udpsock.go).
	ProcNetUDP  SourceID = "/proc/net/udp"
	ProcNetUDP6 SourceID = "/proc/net/udp6"
	// ProcNetStatConntrack is conntrack's per-CPU statistics;
	// ProcSysConntrackCount and ProcSysConntrackMax its table size and
	// limit (conntrack.go).
	ProcNetStatConntrack  SourceID = "/proc/net/stat/nf_conntrack"
	ProcSysConntrackCount SourceID = "/proc/sys/net/netfilter/nf_conntrack_count"
	ProcSysConntrackMax   SourceID = "/proc/sys/net/netfilter/nf_conntrack_max"
	// ProcNetStatARPCache and ProcNetStatNDiscCache are the neighbour
	// tables' statistics, host-wide (neigh.go).
	ProcNetStatARPCache   SourceID = "/proc/net/stat/arp_cache"
	ProcNetStatNDiscCache SourceID = "/proc/net/stat/ndisc_cache"
	// ProcStat is per-CPU time (cpustat.go).
	ProcStat SourceID = "/proc/stat"
	// ProcInterrupts and ProcSoftirqs are per-CPU interrupt and softirq
	// counts (interrupts.go).
	ProcInterrupts SourceID = "/proc/interrupts"
	ProcSoftirqs   SourceID = "/proc/softirqs"
	// ProcSys is the settings the fixes refer to (sysctl.go); it gives
	// Snapshot.Sysctls, not counters.
	ProcSys SourceID = "/proc/sys"
	// NetlinkLinkStats is struct rtnl_link_stats64 of every interface
	// (link.go).
	NetlinkLinkStats SourceID = "netlink link stats64"
	// NetlinkQdisc is the statistics of every qdisc (qdisc.go).
	NetlinkQdisc SourceID = "netlink qdisc"
	// NetlinkHooks is the XDP programs and tc filters attached to each
	// interface, which give Snapshot.Hooks; BPFProgStats their programs'
	// run counts with kernel.bpf_stats_enabled (hooks.go).
	NetlinkHooks SourceID = "netlink hooks"
	BPFProgStats SourceID = "bpf prog stats"
	// NetlinkNftables is nftables rule and base-chain policy counters
	// (nftables.go).
	NetlinkNftables SourceID = "netlink nftables"
	// EthtoolStats is the drivers' private statistics; EthtoolRing,
	// EthtoolChannels and EthtoolCoalesce the layout queries, which give
	// Snapshot.NICs (ethtool.go). The reader as a whole is EthtoolStats.
	EthtoolStats    SourceID = "ethtool -S"
	EthtoolRing     SourceID = "ethtool -g"
	EthtoolChannels SourceID = "ethtool -l"
	EthtoolCoalesce SourceID = "ethtool -c"
	// NICLayout is the sysfs and netlink receive layout of each NIC
	// (nic.go); it gives Snapshot.NICs.
	NICLayout SourceID = "nic layout"
	// IptablesLegacy, Ip6tablesLegacy and ArptablesLegacy are x_tables
	// rules netdrop does not read; they appear only in the unavailable
	// list (nftables.go).
	IptablesLegacy  SourceID = "iptables-legacy"
	Ip6tablesLegacy SourceID = "ip6tables-legacy"
	ArptablesLegacy SourceID = "arptables-legacy"
)
