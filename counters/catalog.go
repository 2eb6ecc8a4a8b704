package counters

import (
	"strings"
	"sync"

	"github.com/netdrop/netdrop/stage"
)

// FieldInfo is what netdrop knows about one counter field: the stage of the
// packet path it is evidence for, what it means in one line, and how it
// relates to other counters.
type FieldInfo struct {
	// Stage is "" for context: totals, activity counts and gauges that are
	// not drops themselves.
	Stage   stage.ID
	Meaning string
	// Gauge marks levels (table sizes, queue lengths) rather than events.
	Gauge bool
	// IncludedIn names the counter that already counts every event of this
	// one (IpExt:InCsumErrors is also counted in Ip:InHdrErrors), so that a
	// sum over a stage does not count a packet twice.
	IncludedIn string
	// Unit says what one increment is: a packet dropped, an event, a
	// near-drop or (for gauges) a level. Only drops are lost packets.
	Unit Unit
}

// Unit is what a counter counts. A diagnosis says "lost N packets" only for
// Drops; events and near-drops are reported as what they are (a failed
// neighbour resolution is not a packet, a receive window closed to zero is
// TCP flow control at work), and severity grades each unit on its own
// thresholds.
type Unit uint8

const (
	// Drops counts packets (datagrams, segments, connection requests)
	// the kernel discarded: each increment is one packet lost.
	Drops Unit = iota + 1
	// Events counts occurrences that are not packets lost: packets
	// handled, retransmissions, failed neighbour resolutions, conntrack
	// evictions, qdisc requeues and overlimits.
	Events
	// NearDrops counts times the kernel came close to dropping and did
	// something costly instead: a receive queue collapsed or pruned, a
	// softirq budget run out, a SYN answered with a cookie.
	NearDrops
	// Level is a gauge: a table size or queue length now, not a count.
	Level
)

// String names the unit as reports show it.
func (u Unit) String() string {
	switch u {
	case Drops:
		return "packets dropped"
	case Events:
		return "events"
	case NearDrops:
		return "near-drops"
	case Level:
		return "level"
	}
	return "unknown"
}

// MarshalText makes units appear as words in JSON.
func (u Unit) MarshalText() ([]byte, error) { return []byte(u.String()), nil }

// Unit returns what c counts: the catalog's unit for its source and field;
// for counters outside the catalog (driver statistics, interface stats, nft
// rule counters), a level for gauges, drops for counters a reader put on a
// stage, and events for the rest.
func (c Counter) Unit() Unit {
	if c.Gauge {
		return Level
	}
	if fi, ok := LookupCounter(c.Source, c.Field); ok && fi.Unit != 0 {
		return fi.Unit
	}
	if c.Stage != "" {
		return Drops
	}
	return Events
}

// Describe returns the stage and the one-line meaning of a counter field as
// the readers name it ("Udp:RcvbufErrors", "dropped", "insert_failed"),
// and whether the field is known. `netdrop counters` shows the meaning next
// to each value.
func Describe(field string) (stage.ID, string, bool) {
	fi, ok := LookupField(field)
	return fi.Stage, fi.Meaning, ok
}

// LookupField returns everything the catalog knows about a field.
func LookupField(field string) (FieldInfo, bool) {
	if fi, ok := catalog()[field]; ok {
		return fi, true
	}
	// /proc/interrupts counters are named by CPU ("cpu3"); see interrupts.go.
	if n, ok := strings.CutPrefix(field, "cpu"); ok && n != "" && strings.Trim(n, "0123456789") == "" {
		return FieldInfo{Unit: Events, Meaning: "interrupts of this IRQ line handled by CPU " + n + " (an imbalance shows as one CPU taking them all)"}, true
	}
	return FieldInfo{}, false
}

// LookupCounter returns what the catalog knows about a field read from a
// given source: the precise entry when the field's name is shared by
// several sources ("entries", "drops"), else the field's entry.
func LookupCounter(source SourceID, field string) (FieldInfo, bool) {
	if fi, ok := bySource()[source][field]; ok {
		return fi, true
	}
	return LookupField(field)
}

// catalogNames maps every catalog field to the catalog's own copy of its
// name, so that a reader that builds "Group:Field" in a scratch buffer can
// look it up without allocating and keep one shared string per name.
var catalogNames = sync.OnceValue(func() map[string]namedField {
	c := catalog()
	m := make(map[string]namedField, len(c))
	for k, fi := range c {
		m[k] = namedField{k, fi}
	}
	return m
})

// namedField is a catalog entry with its name.
type namedField struct {
	name string
	info FieldInfo
}

// lookupFieldBytes returns the field named by b and what the catalog knows of
// it as read from source, as LookupCounter(source, string(b)) would: the
// catalog's string when it knows the name (no allocation), else a new
// string.
func lookupFieldBytes(source SourceID, b []byte) (string, FieldInfo) {
	if name, fi, ok := lookupKnownBytes(source, b); ok {
		return name, fi
	}
	return lookupField(source, string(b))
}

// lookupKnownBytes is lookupFieldBytes for names the catalog holds, without
// allocating; ok is false for any other name.
func lookupKnownBytes(source SourceID, b []byte) (string, FieldInfo, bool) {
	e, ok := catalogNames()[string(b)]
	if !ok {
		return "", FieldInfo{}, false
	}
	if over, ok := bySource()[source]; ok {
		if fi, ok := over[e.name]; ok {
			return e.name, fi, true
		}
	}
	return e.name, e.info, true
}

// lookupField is the entry of a name the catalog may not hold: the
// source's own meaning, else LookupField's.
func lookupField(source SourceID, name string) (string, FieldInfo) {
	if over, ok := bySource()[source]; ok {
		if fi, ok := over[name]; ok {
			return name, fi
		}
	}
	fi, _ := LookupField(name)
	return name, fi
}

// stageOf is the stage a reader stamps on a counter it reads.
func stageOf(source SourceID, field string) stage.ID {
	fi, _ := LookupCounter(source, field)
	return fi.Stage
}

// bySource holds the entries for field names that mean different things in
// different sources, each with its unit. Built on first use, like catalog.
var bySource = sync.OnceValue(func() map[SourceID]map[string]FieldInfo {
	m := map[SourceID]map[string]FieldInfo{
		ProcNetStatConntrack:  {"entries": {Stage: stage.Conntrack, Gauge: true, Meaning: "connections tracked now (the table's size, not summed over CPUs)"}},
		ProcNetStatARPCache:   {"entries": {Stage: stage.Neighbor, Gauge: true, Meaning: "ARP neighbour entries now (compared with net.ipv4.neigh.default.gc_thresh3)"}},
		ProcNetStatNDiscCache: {"entries": {Stage: stage.Neighbor, Gauge: true, Meaning: "NDP neighbour entries now (compared with net.ipv6.neigh.default.gc_thresh3)"}},
		ProcNetUDP:            {"drops": {Stage: stage.SocketRcvbuf, Meaning: "datagrams this UDP socket dropped: receive buffer full (SK_MEMINFO_DROPS)"}},
		ProcNetUDP6:           {"drops": {Stage: stage.SocketRcvbuf, Meaning: "datagrams this UDP socket dropped: receive buffer full (SK_MEMINFO_DROPS)"}},
		// A qdisc's requeues (the driver refused a packet that is retried) and
		// overlimits (a shaper held a packet back) are not drops.
		NetlinkQdisc: {
			"drops":           {Stage: stage.Qdisc, Unit: Drops, Meaning: "packets this qdisc dropped: its queue was full or a policy discarded them"},
			"overlimits":      {Stage: stage.Qdisc, Unit: Events, Meaning: "times this qdisc held a packet back because it was over its rate or limit (not a drop)"},
			"requeues":        {Stage: stage.Qdisc, Unit: Events, Meaning: "packets the driver refused and the qdisc queued again (not a drop)"},
			"backlog":         {Stage: stage.Qdisc, Unit: Level, Gauge: true, Meaning: "bytes queued in this qdisc now"},
			"qlen":            {Stage: stage.Qdisc, Unit: Level, Gauge: true, Meaning: "packets queued in this qdisc now"},
			"rate":            {Unit: Level, Gauge: true, Meaning: "a shaper's (tbf, htb class) configured rate, bytes per second"},
			"ceil":            {Unit: Level, Gauge: true, Meaning: "an htb class's ceiling: the rate it may borrow up to, bytes per second"},
			"burst":           {Unit: Level, Gauge: true, Meaning: "a shaper's (tbf) bucket size, bytes"},
			"limit":           {Unit: Level, Gauge: true, Meaning: "a shaper's (tbf) queue limit, bytes: what waits for tokens beyond it is dropped"},
			"packet_limit":    {Unit: Level, Gauge: true, Meaning: "an fq_codel's queue limit, packets: a packet arriving beyond it is dropped (drop_overlimit)"},
			"memory_limit":    {Unit: Level, Gauge: true, Meaning: "an fq_codel's memory limit, bytes (drop_overmemory beyond it)"},
			"memory_usage":    {Unit: Level, Gauge: true, Meaning: "bytes of memory an fq_codel's queued packets use now"},
			"drop_overlimit":  {Unit: Drops, Meaning: "packets an fq_codel dropped because its queue held packet_limit packets (part of its drops)"},
			"drop_overmemory": {Unit: Drops, Meaning: "packets an fq_codel dropped because its queued packets used memory_limit bytes (part of its drops)"},
			"ecn_mark":        {Unit: Events, Meaning: "packets an fq_codel marked with ECN CE instead of dropping them (not a drop)"},
			"new_flow_count":  {Unit: Events, Meaning: "flows an fq_codel started tracking as new (sparse flows served first)"},
		},
	}
	for _, fields := range m {
		for k, fi := range fields {
			if fi.Unit == 0 {
				fi.Unit = defaultUnit(fi)
				fields[k] = fi
			}
		}
	}
	return m
})

// catalog holds every field the /proc readers know, keyed by Field. Stages
// follow the stage table in stage/stage.go (where each stage says which
// kernel functions drop there); the inclusion
// notes follow the kernel's counting code (a checksum error falls through to
// the header-error counter in ip_rcv_core, tcp_v4_rcv and icmp_rcv; UDP
// increments InErrors after every receive error). Retransmissions and
// timeouts have no stage: they are loss seen from the sender, somewhere on
// the path, which diagnose reports as information. It is built on first
// use, not at package init: `netdrop --help` and commands that read no
// counter do not pay for it.
var catalog = sync.OnceValue(func() map[string]FieldInfo {
	c := map[string]FieldInfo{
		// /proc/net/snmp: Ip
		"Ip:Forwarding":      {Gauge: true, Meaning: "1 when this namespace forwards IPv4 (net.ipv4.ip_forward=1), 2 when it does not"},
		"Ip:DefaultTTL":      {Gauge: true, Meaning: "TTL given to locally generated IPv4 datagrams"},
		"Ip:InReceives":      {Meaning: "IPv4 datagrams received, errors included"},
		"Ip:InHdrErrors":     {Stage: stage.IP, Meaning: "IPv4 datagrams dropped for a bad header: checksum, version, length, options, TTL expired while forwarding"},
		"Ip:InAddrErrors":    {Stage: stage.IP, Meaning: "IPv4 datagrams for an address that is neither local nor forwardable (ip_forward off, invalid or martian address)"},
		"Ip:ForwDatagrams":   {Meaning: "IPv4 datagrams forwarded"},
		"Ip:InUnknownProtos": {Stage: stage.IP, Meaning: "IPv4 datagrams for a transport protocol nothing handles"},
		"Ip:InDiscards":      {Stage: stage.IP, Meaning: "IPv4 datagrams without error dropped on input, e.g. for lack of memory"},
		"Ip:InDelivers":      {Meaning: "IPv4 datagrams delivered to transport protocols"},
		"Ip:OutRequests":     {Meaning: "IPv4 datagrams handed to IP for sending"},
		"Ip:OutDiscards":     {Stage: stage.IP, Meaning: "outgoing IPv4 datagrams without error dropped, e.g. for lack of buffer space"},
		"Ip:OutNoRoutes":     {Stage: stage.IP, Meaning: "IPv4 datagrams dropped because no route matched their destination"},
		"Ip:ReasmTimeout":    {Stage: stage.IP, IncludedIn: "Ip:ReasmFails", Meaning: "IPv4 reassemblies abandoned when ipfrag_time ran out"},
		"Ip:ReasmReqds":      {Meaning: "IPv4 fragments received that needed reassembly"},
		"Ip:ReasmOKs":        {Meaning: "IPv4 datagrams reassembled"},
		"Ip:ReasmFails":      {Stage: stage.IP, Meaning: "IPv4 reassembly failures: timeouts, bad or overlapping fragments, memory over ipfrag_high_thresh"},
		"Ip:FragOKs":         {Meaning: "IPv4 datagrams fragmented"},
		"Ip:FragFails":       {Stage: stage.IP, Meaning: "IPv4 datagrams that had to be fragmented and could not be (DF set): a path MTU problem"},
		"Ip:FragCreates":     {Meaning: "IPv4 fragments created"},
		"Ip:OutTransmits":    {Meaning: "IPv4 datagrams transmitted"},

		// IpExt (/proc/net/netstat)
		"IpExt:InNoRoutes":      {Stage: stage.IP, Meaning: "IPv4 datagrams received for which no route was found"},
		"IpExt:InTruncatedPkts": {Stage: stage.IP, Meaning: "IPv4 datagrams shorter than their header says"},
		"IpExt:InCsumErrors":    {Stage: stage.IP, IncludedIn: "Ip:InHdrErrors", Meaning: "IPv4 header checksum errors"},
		"IpExt:ReasmOverlaps":   {Stage: stage.IP, Meaning: "IPv4 fragments dropped for overlapping another fragment"},
		"IpExt:InOctets":        {Meaning: "IPv4 bytes received"},
		"IpExt:OutOctets":       {Meaning: "IPv4 bytes sent"},

		// Icmp
		"Icmp:InMsgs":              {Meaning: "ICMP messages received"},
		"Icmp:InErrors":            {Stage: stage.IP, Meaning: "ICMP messages received with errors: bad checksum, truncated"},
		"Icmp:InCsumErrors":        {Stage: stage.IP, IncludedIn: "Icmp:InErrors", Meaning: "ICMP messages with a bad checksum"},
		"Icmp:OutMsgs":             {Meaning: "ICMP messages sent"},
		"Icmp:OutErrors":           {Stage: stage.IP, Meaning: "ICMP messages not sent because of an error"},
		"Icmp:OutRateLimitGlobal":  {Meaning: "ICMP messages not sent because of the global ICMP rate limit (icmp_msgs_per_sec)"},
		"Icmp:OutRateLimitHost":    {Meaning: "ICMP messages not sent because of the per-host ICMP rate limit (icmp_ratelimit)"},
		"Icmp:InDestUnreachs":      {Meaning: "ICMP destination unreachable received"},
		"Icmp:OutDestUnreachs":     {Meaning: "ICMP destination unreachable sent (port unreachable answers Udp NoPorts)"},
		"Icmp6:InErrors":           {Stage: stage.IP, Meaning: "ICMPv6 messages received with errors: bad checksum, truncated"},
		"Icmp6:InCsumErrors":       {Stage: stage.IP, IncludedIn: "Icmp6:InErrors", Meaning: "ICMPv6 messages with a bad checksum"},
		"Icmp6:OutErrors":          {Stage: stage.IP, Meaning: "ICMPv6 messages not sent because of an error"},
		"Icmp6:InMsgs":             {Meaning: "ICMPv6 messages received"},
		"Icmp6:OutMsgs":            {Meaning: "ICMPv6 messages sent"},
		"Icmp6:OutRateLimitHost":   {Meaning: "ICMPv6 messages not sent because of the per-host rate limit"},
		"Icmp6:InDestUnreachs":     {Meaning: "ICMPv6 destination unreachable received"},
		"Icmp6:OutDestUnreachs":    {Meaning: "ICMPv6 destination unreachable sent (port unreachable answers Udp6 NoPorts)"},
		"Icmp6:InPktTooBigs":       {Meaning: "ICMPv6 packet too big received: path MTU discovery at work"},
		"Icmp6:InNeighborSolicits": {Meaning: "NDP neighbour solicitations received"},

		// Tcp
		"Tcp:RtoAlgorithm": {Gauge: true, Meaning: "retransmission timeout algorithm (1 = other, as Linux reports)"},
		"Tcp:RtoMin":       {Gauge: true, Meaning: "minimum retransmission timeout, ms"},
		"Tcp:RtoMax":       {Gauge: true, Meaning: "maximum retransmission timeout, ms"},
		"Tcp:MaxConn":      {Gauge: true, Meaning: "connection limit; -1 (stored as 2^64-1) means none"},
		"Tcp:ActiveOpens":  {Meaning: "TCP connections opened by connect()"},
		"Tcp:PassiveOpens": {Meaning: "TCP connections accepted from a listener"},
		"Tcp:AttemptFails": {Meaning: "TCP connection attempts that failed (reset or timed out in SYN states)"},
		"Tcp:EstabResets":  {Meaning: "established TCP connections reset"},
		"Tcp:CurrEstab":    {Gauge: true, Meaning: "TCP connections now ESTABLISHED or CLOSE_WAIT"},
		"Tcp:InSegs":       {Meaning: "TCP segments received, errors included"},
		"Tcp:OutSegs":      {Meaning: "TCP segments sent, retransmissions excluded"},
		"Tcp:RetransSegs":  {Meaning: "TCP segments retransmitted: loss somewhere on the path, not necessarily on this host"},
		"Tcp:InErrs":       {Stage: stage.TCP, Meaning: "TCP segments received in error: bad checksum or header"},
		"Tcp:OutRsts":      {Meaning: "TCP resets sent, including answers to segments for closed ports"},
		"Tcp:InCsumErrors": {Stage: stage.TCP, IncludedIn: "Tcp:InErrs", Meaning: "TCP segments with a bad checksum"},

		// TcpExt (/proc/net/netstat)
		"TcpExt:SyncookiesSent":            {Unit: NearDrops, Stage: stage.TCPListen, Meaning: "SYN cookies sent because a listener's SYN queue was full"},
		"TcpExt:SyncookiesRecv":            {Unit: Events, Stage: stage.TCPListen, Meaning: "valid SYN cookies received back"},
		"TcpExt:SyncookiesFailed":          {Stage: stage.TCPListen, Meaning: "ACKs with an invalid SYN cookie, dropped"},
		"TcpExt:EmbryonicRsts":             {Meaning: "resets received for connections in SYN_RECV"},
		"TcpExt:PruneCalled":               {Unit: NearDrops, Stage: stage.SocketRcvbuf, Meaning: "receive queue pruned because a socket went over its receive buffer (near-drop: data was collapsed)"},
		"TcpExt:RcvPruned":                 {Unit: Events, Stage: stage.SocketRcvbuf, Meaning: "prunes of a receive queue that freed too little: the arriving segment is dropped next and counted in TCPRcvQDrop or TCPOFODrop"},
		"TcpExt:OfoPruned":                 {Unit: Events, Stage: stage.SocketRcvbuf, Meaning: "attempts to prune the out-of-order queue to stay within the receive buffer (the segments pruned are counted by no counter; the tracer's TCP_OFO_QUEUE_PRUNE counts them)"},
		"TcpExt:OutOfWindowIcmps":          {Stage: stage.TCP, Meaning: "ICMP errors dropped because they were outside the window"},
		"TcpExt:LockDroppedIcmps":          {Stage: stage.TCP, Meaning: "ICMP errors dropped because the socket was busy"},
		"TcpExt:TW":                        {Meaning: "TCP sockets that finished TIME_WAIT"},
		"TcpExt:TWRecycled":                {Meaning: "TIME_WAIT sockets reused for a new connection"},
		"TcpExt:TWKilled":                  {Meaning: "TIME_WAIT sockets ended early"},
		"TcpExt:PAWSActive":                {Stage: stage.TCP, Meaning: "SYN-ACKs dropped by the PAWS timestamp check"},
		"TcpExt:PAWSEstab":                 {Stage: stage.TCP, Meaning: "segments dropped by the PAWS timestamp check on established connections"},
		"TcpExt:PAWSOldAck":                {Stage: stage.TCP, Meaning: "old ACKs dropped by the PAWS check"},
		"TcpExt:PAWSTimewait":              {Stage: stage.TCP, Meaning: "segments dropped by the PAWS check in TIME_WAIT"},
		"TcpExt:BeyondWindow":              {Stage: stage.TCP, Meaning: "segments dropped because they lay beyond the receive window"},
		"TcpExt:TSEcrRejected":             {Stage: stage.TCP, Meaning: "segments dropped for an invalid timestamp echo reply"},
		"TcpExt:DelayedACKs":               {Meaning: "delayed ACKs sent"},
		"TcpExt:DelayedACKLost":            {Meaning: "duplicate data received for which a delayed ACK was lost"},
		"TcpExt:ListenOverflows":           {Stage: stage.TCPListen, IncludedIn: "TcpExt:ListenDrops", Meaning: "connections dropped because a listener's accept queue was full (backlog / somaxconn)"},
		"TcpExt:ListenDrops":               {Stage: stage.TCPListen, Meaning: "every SYN or ACK dropped on a listening socket, accept-queue overflows included"},
		"TcpExt:TCPLostRetransmit":         {Meaning: "retransmissions that were lost again"},
		"TcpExt:TCPFastRetrans":            {Meaning: "fast retransmissions"},
		"TcpExt:TCPSlowStartRetrans":       {Meaning: "retransmissions in slow start"},
		"TcpExt:TCPTimeouts":               {Meaning: "retransmission timeouts: loss somewhere on the path"},
		"TcpExt:TCPLossProbes":             {Meaning: "tail loss probes sent"},
		"TcpExt:TCPRcvCollapsed":           {Unit: NearDrops, Stage: stage.SocketRcvbuf, Meaning: "segments collapsed to save receive buffer memory (near-drop)"},
		"TcpExt:TCPBacklogCoalesce":        {Meaning: "segments coalesced in a socket backlog"},
		"TcpExt:TCPAbortOnData":            {Meaning: "connections reset because data arrived after close"},
		"TcpExt:TCPAbortOnClose":           {Meaning: "connections reset because the application closed with unread data"},
		"TcpExt:TCPAbortOnMemory":          {Unit: Events, Stage: stage.SocketRcvbuf, Meaning: "connections reset for lack of TCP memory (tcp_mem or too many orphans)"},
		"TcpExt:TCPAbortOnTimeout":         {Meaning: "connections reset after too many retransmission timeouts"},
		"TcpExt:TCPAbortOnLinger":          {Meaning: "connections reset by the linger timeout"},
		"TcpExt:TCPAbortFailed":            {Meaning: "resets that could not be sent"},
		"TcpExt:TCPMemoryPressures":        {Unit: NearDrops, Stage: stage.SocketRcvbuf, Meaning: "times TCP entered memory pressure (sockstat TCP mem over tcp_mem's second value)"},
		"TcpExt:TCPMemoryPressuresChrono":  {Meaning: "milliseconds spent in TCP memory pressure"},
		"TcpExt:TCPMD5NotFound":            {Stage: stage.TCP, Meaning: "segments dropped: MD5 signature expected but missing"},
		"TcpExt:TCPMD5Unexpected":          {Stage: stage.TCP, Meaning: "segments dropped: MD5 signature present but not expected"},
		"TcpExt:TCPMD5Failure":             {Stage: stage.TCP, Meaning: "segments dropped: wrong MD5 signature"},
		"TcpExt:TCPBacklogDrop":            {Stage: stage.SocketRcvbuf, Meaning: "segments dropped because the socket was busy and its backlog exceeded the buffers"},
		"TcpExt:PFMemallocDrop":            {Stage: stage.TCP, Meaning: "segments from emergency memory reserves dropped for a socket not allowed to use them"},
		"TcpExt:TCPMinTTLDrop":             {Stage: stage.TCP, Meaning: "segments dropped under the socket's IP_MINTTL"},
		"TcpExt:TCPDeferAcceptDrop":        {Stage: stage.TCP, Meaning: "bare ACKs dropped on a TCP_DEFER_ACCEPT listener"},
		"TcpExt:IPReversePathFilter":       {Stage: stage.IP, Meaning: "packets dropped by the reverse-path filter (rp_filter, effective value max(all, interface))"},
		"TcpExt:TCPTimeWaitOverflow":       {Unit: Events, Stage: stage.Ports, Meaning: "TIME_WAIT sockets not created because tcp_max_tw_buckets was reached"},
		"TcpExt:TCPReqQFullDoCookies":      {Unit: NearDrops, Stage: stage.TCPListen, Meaning: "SYN queue full: answered with a SYN cookie"},
		"TcpExt:TCPReqQFullDrop":           {Stage: stage.TCPListen, Meaning: "SYN queue full: SYN dropped (syncookies off)"},
		"TcpExt:TCPRetransFail":            {Meaning: "retransmissions that failed to be sent locally"},
		"TcpExt:TCPOFOQueue":               {Meaning: "segments put in the out-of-order queue"},
		"TcpExt:TCPOFODrop":                {Stage: stage.SocketRcvbuf, Meaning: "out-of-order segments dropped on arrival because the receive buffer was full even after pruning"},
		"TcpExt:TCPChallengeACK":           {Meaning: "challenge ACKs sent (RFC 5961)"},
		"TcpExt:TCPSYNChallenge":           {Meaning: "challenge ACKs sent in answer to a SYN"},
		"TcpExt:TCPFastOpenListenOverflow": {Unit: Events, Stage: stage.TCPListen, Meaning: "TCP Fast Open requests refused because the TFO queue was full"},
		"TcpExt:TCPToZeroWindowAdv":        {Unit: NearDrops, Stage: stage.SocketRcvbuf, Meaning: "times the window was closed to zero: the application is not reading (near-drop)"},
		"TcpExt:TCPFromZeroWindowAdv":      {Meaning: "times the window reopened from zero"},
		"TcpExt:TCPWantZeroWindowAdv":      {Meaning: "times the window would have shrunk to zero"},
		"TcpExt:TCPSynRetrans":             {Meaning: "SYN and SYN-ACK retransmissions: loss or a full listener somewhere on the path"},
		"TcpExt:TCPOrigDataSent":           {Meaning: "segments with new data sent"},
		"TcpExt:TCPKeepAlive":              {Meaning: "keepalive probes sent"},
		"TcpExt:TCPZeroWindowDrop":         {Stage: stage.SocketRcvbuf, Meaning: "segments dropped because the receive window was zero"},
		"TcpExt:TCPRcvQDrop":               {Stage: stage.SocketRcvbuf, Meaning: "segments dropped because the receive queue was over the buffer and memory could not be had"},
		"TcpExt:TCPWqueueTooBig":           {Unit: Events, Stage: stage.TxSocket, Meaning: "sends refused because the write queue grew too large"},
		"TcpExt:TCPMigrateReqFailure":      {Stage: stage.TCPListen, Meaning: "requests that could not move to another SO_REUSEPORT listener and were dropped"},
		"TcpExt:TCPAORequired":             {Stage: stage.TCP, Meaning: "segments dropped: TCP-AO required but missing"},
		"TcpExt:TCPAOBad":                  {Stage: stage.TCP, Meaning: "segments dropped: TCP-AO signature wrong"},
		"TcpExt:TCPAOKeyNotFound":          {Stage: stage.TCP, Meaning: "segments dropped: no TCP-AO key matched"},
		"TcpExt:TCPAODroppedIcmps":         {Stage: stage.TCP, Meaning: "ICMPs dropped on TCP-AO connections"},
		"TcpExt:BusyPollRxPackets":         {Meaning: "packets received by busy polling"},
		"MPTcpExt:MPCurrEstab":             {Gauge: true, Meaning: "MPTCP connections now established"},

		// /proc/net/softnet_stat, per CPU (softnet.go)
		"processed":        {Meaning: "packets this CPU's NET_RX softirq processed"},
		"dropped":          {Stage: stage.Softirq, Meaning: "packets dropped because this CPU's backlog was over netdev_max_backlog (RPS, veth, loopback, non-NAPI drivers), flow-limit drops included"},
		"time_squeeze":     {Unit: NearDrops, Stage: stage.Softirq, Meaning: "times NET_RX stopped with work left because netdev_budget or netdev_budget_usecs ran out (near-drop)"},
		"cpu_collision":    {Meaning: "transmit lock collisions (old kernels; always 0 since 5.10)"},
		"received_rps":     {Meaning: "times this CPU was woken by another to process packets (RPS / RFS)"},
		"flow_limit_count": {Stage: stage.Softirq, IncludedIn: "dropped", Meaning: "packets dropped by the backlog flow limit (flow_limit_cpu_bitmap, flow_limit_table_len)"},
		"backlog_len":      {Stage: stage.Softirq, Gauge: true, Meaning: "packets waiting in this CPU's backlog now"},
		"input_qlen":       {Stage: stage.Softirq, Gauge: true, Meaning: "packets in this CPU's input_pkt_queue now"},
		"process_qlen":     {Stage: stage.Softirq, Gauge: true, Meaning: "packets in this CPU's process_queue now"},

		// /proc/net/stat/nf_conntrack summed over CPUs, and the sysctls (conntrack.go)
		"searched":           {Meaning: "hash table lookups (kernels before 5.9)"},
		"clashres":           {Meaning: "insert clashes resolved without a drop (parallel UDP packets of one flow)"},
		"found":              {Meaning: "lookups that found an entry"},
		"new":                {Meaning: "entries added (always 0 on recent kernels)"},
		"invalid":            {Unit: Events, Stage: stage.Conntrack, Meaning: "packets conntrack could not track (invalid state); rules matching ctstate INVALID drop them"},
		"ignore":             {Meaning: "packets already tracked or untracked (always 0 on recent kernels)"},
		"delete":             {Meaning: "entries deleted (always 0 on recent kernels)"},
		"delete_list":        {Meaning: "entries put on the dying list (kernels before 5.14)"},
		"chainlength":        {Stage: stage.Conntrack, Meaning: "inserts refused because a hash chain grew too long: raise nf_conntrack_buckets"},
		"insert":             {Meaning: "entries inserted"},
		"insert_failed":      {Stage: stage.Conntrack, Meaning: "packets dropped because their entry clashed at confirm time (e.g. the SNAT port race of parallel UDP)"},
		"drop":               {Stage: stage.Conntrack, Meaning: "packets dropped because the table was full and no entry could be evicted"},
		"early_drop":         {Unit: Events, Stage: stage.Conntrack, Meaning: "entries evicted to make room in a full table"},
		"icmp_error":         {Meaning: "ICMP errors that matched no tracked connection"},
		"expect_new":         {Meaning: "expectations added"},
		"expect_create":      {Meaning: "expectations created"},
		"expect_delete":      {Meaning: "expectations deleted"},
		"search_restart":     {Meaning: "lookups restarted because the table changed under them"},
		"nf_conntrack_count": {Stage: stage.Conntrack, Gauge: true, Meaning: "connections tracked in this namespace now (near-drop when close to nf_conntrack_max)"},
		"nf_conntrack_max":   {Stage: stage.Conntrack, Gauge: true, Meaning: "size limit of the conntrack table (one global value)"},

		// /proc/net/sockstat and sockstat6, levels (sockstat.go)
		"sockets:used":   {Gauge: true, Meaning: "sockets of all kinds in use"},
		"TCP:inuse":      {Gauge: true, Meaning: "IPv4 TCP sockets in use, listeners included"},
		"TCP:orphan":     {Stage: stage.Ports, Gauge: true, Meaning: "TCP sockets no longer attached to a file (closed, still sending), limited by tcp_max_orphans"},
		"TCP:tw":         {Stage: stage.Ports, Gauge: true, Meaning: "TCP sockets in TIME_WAIT, limited by tcp_max_tw_buckets"},
		"TCP:alloc":      {Gauge: true, Meaning: "TCP sockets allocated, of any state"},
		"TCP:mem":        {Stage: stage.SocketRcvbuf, Gauge: true, Meaning: "memory used by TCP, in pages; compared with net.ipv4.tcp_mem"},
		"UDP:inuse":      {Gauge: true, Meaning: "IPv4 UDP sockets in use"},
		"UDP:mem":        {Stage: stage.SocketRcvbuf, Gauge: true, Meaning: "memory used by UDP, in pages; compared with net.ipv4.udp_mem"},
		"UDPLITE:inuse":  {Gauge: true, Meaning: "IPv4 UDP-Lite sockets in use"},
		"RAW:inuse":      {Gauge: true, Meaning: "IPv4 raw sockets in use"},
		"FRAG:inuse":     {Gauge: true, Meaning: "IPv4 reassembly queues in use"},
		"FRAG:memory":    {Gauge: true, Meaning: "memory held by IPv4 reassembly, bytes"},
		"TCP6:inuse":     {Gauge: true, Meaning: "IPv6 TCP sockets in use"},
		"UDP6:inuse":     {Gauge: true, Meaning: "IPv6 UDP sockets in use"},
		"UDPLITE6:inuse": {Gauge: true, Meaning: "IPv6 UDP-Lite sockets in use"},
		"RAW6:inuse":     {Gauge: true, Meaning: "IPv6 raw sockets in use"},
		"FRAG6:inuse":    {Gauge: true, Meaning: "IPv6 reassembly queues in use"},
		"FRAG6:memory":   {Gauge: true, Meaning: "memory held by IPv6 reassembly, bytes"},

		// /proc/softirqs and /proc/stat, per CPU (interrupts.go, cpustat.go)
		"NET_RX":  {Meaning: "NET_RX softirqs run on this CPU: where receive processing happens"},
		"NET_TX":  {Meaning: "NET_TX softirqs run on this CPU"},
		"softirq": {Meaning: "time this CPU spent in softirqs, in USER_HZ ticks; a CPU mostly in softirq drops next"},
		"irq":     {Meaning: "time this CPU spent in hard interrupts, in USER_HZ ticks"},
		"idle":    {Meaning: "time this CPU had nothing to run (idle and iowait), in USER_HZ ticks"},
		"total":   {Meaning: "all time of this CPU, in USER_HZ ticks (user, nice, system, idle, iowait, irq, softirq, steal)"},
	}

	// The UDP groups share their fields: Udp and UdpLite in snmp, Udp6 and
	// UdpLite6 in snmp6.
	for _, g := range []string{"Udp", "UdpLite", "Udp6", "UdpLite6"} {
		v := "IPv4"
		if strings.HasSuffix(g, "6") {
			v = "IPv6"
		}
		c[g+":InDatagrams"] = FieldInfo{Meaning: v + " " + g + " datagrams delivered to sockets"}
		c[g+":NoPorts"] = FieldInfo{Stage: stage.NoSocket, Meaning: v + " datagrams for a port nobody listens on"}
		c[g+":InErrors"] = FieldInfo{Meaning: v + " datagrams not delivered: a total of RcvbufErrors, MemErrors, InCsumErrors and other errors (do not add it to them)"}
		c[g+":OutDatagrams"] = FieldInfo{Meaning: v + " datagrams sent"}
		c[g+":RcvbufErrors"] = FieldInfo{Stage: stage.SocketRcvbuf, IncludedIn: g + ":InErrors", Meaning: v + " datagrams dropped because the socket's receive buffer was full (SO_RCVBUF, rmem_max)"}
		c[g+":SndbufErrors"] = FieldInfo{Stage: stage.TxSocket, Meaning: v + " sends that failed with ENOBUFS: send buffer or the queue below it full"}
		c[g+":InCsumErrors"] = FieldInfo{Stage: stage.IP, IncludedIn: g + ":InErrors", Meaning: v + " datagrams with a bad checksum"}
		c[g+":IgnoredMulti"] = FieldInfo{Meaning: v + " broadcast or multicast datagrams no socket wanted (not loss)"}
		c[g+":MemErrors"] = FieldInfo{Stage: stage.SocketRcvbuf, IncludedIn: g + ":InErrors", Meaning: v + " datagrams dropped because UDP memory hit net.ipv4.udp_mem"}
	}

	// Ip6 in snmp6 mirrors Ip.
	for _, f := range []struct{ name, ip4 string }{
		{"InReceives", "Ip:InReceives"}, {"InHdrErrors", "Ip:InHdrErrors"},
		{"InNoRoutes", "IpExt:InNoRoutes"}, {"InAddrErrors", "Ip:InAddrErrors"},
		{"InUnknownProtos", "Ip:InUnknownProtos"}, {"InTruncatedPkts", "IpExt:InTruncatedPkts"},
		{"InDiscards", "Ip:InDiscards"}, {"InDelivers", "Ip:InDelivers"},
		{"OutForwDatagrams", "Ip:ForwDatagrams"}, {"OutRequests", "Ip:OutRequests"},
		{"OutDiscards", "Ip:OutDiscards"}, {"OutNoRoutes", "Ip:OutNoRoutes"},
		{"ReasmTimeout", "Ip:ReasmTimeout"}, {"ReasmReqds", "Ip:ReasmReqds"},
		{"ReasmOKs", "Ip:ReasmOKs"}, {"ReasmFails", "Ip:ReasmFails"},
		{"FragOKs", "Ip:FragOKs"}, {"FragFails", "Ip:FragFails"},
		{"FragCreates", "Ip:FragCreates"}, {"OutTransmits", "Ip:OutTransmits"},
		{"InOctets", "IpExt:InOctets"}, {"OutOctets", "IpExt:OutOctets"},
	} {
		fi := c[f.ip4]
		fi.Meaning = strings.ReplaceAll(fi.Meaning, "IPv4", "IPv6")
		if fi.IncludedIn != "" {
			fi.IncludedIn = "Ip6:" + strings.TrimPrefix(fi.IncludedIn, "Ip:")
		}
		c["Ip6:"+f.name] = fi
	}
	c["Ip6:InTooBigErrors"] = FieldInfo{Stage: stage.IP, Meaning: "IPv6 packets too big for the outgoing link's MTU while forwarding"}

	// /proc/net/stat/arp_cache and ndisc_cache, summed over CPUs (neigh.go).
	for f, fi := range map[string]FieldInfo{
		"allocs":              {Meaning: "neighbour entries allocated"},
		"destroys":            {Meaning: "neighbour entries destroyed"},
		"hash_grows":          {Meaning: "neighbour hash table resizes"},
		"lookups":             {Meaning: "neighbour lookups"},
		"hits":                {Meaning: "neighbour lookups that found an entry"},
		"res_failed":          {Unit: Events, Stage: stage.Neighbor, Meaning: "ARP / NDP resolutions that failed: no answer from the neighbour"},
		"rcv_probes_mcast":    {Meaning: "multicast neighbour probes received"},
		"rcv_probes_ucast":    {Meaning: "unicast neighbour probes received"},
		"periodic_gc_runs":    {Meaning: "periodic neighbour garbage collections"},
		"forced_gc_runs":      {Unit: NearDrops, Stage: stage.Neighbor, Meaning: "forced neighbour garbage collections: the table went over gc_thresh2 or gc_thresh3 (near-drop)"},
		"unresolved_discards": {Stage: stage.Neighbor, Meaning: "packets dropped while waiting for ARP / NDP resolution (unres_qlen_bytes queue full)"},
		"table_fulls":         {Unit: Events, Stage: stage.Neighbor, Meaning: "neighbour table full: no entry could be made (raise gc_thresh3)"},
	} {
		c[f] = fi
	}
	// Names that several sources use: the field alone gives a general
	// meaning; bySource gives the precise one.
	c["entries"] = FieldInfo{Gauge: true, Meaning: "entries in the table now (conntrack or neighbour table)"}
	c["drops"] = FieldInfo{Meaning: "packets this object dropped (a socket's receive queue, a qdisc)"}

	// Every entry carries a unit. Those not set above follow from the
	// rest: a gauge is a level, a counter with a stage counts packets
	// dropped there, and one without (totals, activity) counts events.
	for k, fi := range c {
		if fi.Unit == 0 {
			fi.Unit = defaultUnit(fi)
			c[k] = fi
		}
	}
	return c
})

// defaultUnit is the unit of a catalog entry that does not name one.
func defaultUnit(fi FieldInfo) Unit {
	switch {
	case fi.Gauge:
		return Level
	case fi.Stage != "":
		return Drops
	default:
		return Events
	}
}
