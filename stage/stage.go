// Package stage is netdrop's vocabulary of the packet path: the places on a
// Linux host where a packet can be lost, in the order a packet meets them.
//
// Stage IDs are a public contract. They appear in JSON output, in metric
// labels and in the lab's expected results, so they never change spelling;
// a new stage is added only with a comment saying why the existing ones do not
// fit. This package imports nothing of netdrop's so that every other package
// can depend on it.
package stage

// ID names one stage of the packet path, e.g. "socket-rcvbuf".
type ID string

// The stages, receive path first, then the transmit path. The comments name
// the kind of evidence that points at each one; counters/ and droptrace/ hold
// the full mapping.
const (
	NIC          ID = "nic"           // link, MAC, PHY: CRC, frame and length errors
	RxRing       ID = "rx-ring"       // NIC receive descriptor ring full, driver out of buffers
	XDP          ID = "xdp"           // XDP programs (native in the driver, or generic) returning XDP_DROP
	Softirq      ID = "softirq"       // NAPI budget, per-CPU backlog, RPS, flow limit
	TCIngress    ID = "tc-ingress"    // tc ingress / clsact classifiers and actions, tcx programs
	Bridge       ID = "bridge"        // a Linux bridge refusing a frame: port state, VLAN filter, MAC checks
	IP           ID = "ip"            // IP receive and routing, rp_filter, reassembly
	Netfilter    ID = "netfilter"     // iptables / nftables DROP and REJECT rules
	Conntrack    ID = "conntrack"     // connection tracking table full or clashing
	Tunnel       ID = "tunnel"        // tunnel decapsulation (vxlan, GRE, IPIP): bad header, unknown VNI
	NoSocket     ID = "no-socket"     // nobody listening on the destination port
	SocketRcvbuf ID = "socket-rcvbuf" // socket receive queue full: small buffer or slow reader
	TCPListen    ID = "tcp-listen"    // SYN queue and accept queue of listeners
	TCP          ID = "tcp"           // TCP protocol-level discards
	Ports        ID = "ports"         // TIME_WAIT buckets and ephemeral-port exhaustion
	TxSocket     ID = "tx-socket"     // socket send buffer full
	Qdisc        ID = "qdisc"         // traffic-control queue overflow or shaping
	Neighbor     ID = "neighbor"      // ARP / NDP resolution failed or table full
	TxRing       ID = "tx-ring"       // NIC transmit ring, driver, carrier
)

// The receive-side hooks (XDP, TCIngress) and the L2/L3 devices in the path
// (Bridge, Tunnel) were added after the first fifteen stages because drops
// there were folded into stages that name the wrong direction: a tc ingress
// program's TC_ACT_SHOT was read as the transmit qdisc overflowing, whose fix
// (a bigger egress queue) cannot help and replaces the host's egress qdisc.
// Each sits where the kernel runs it: XDP in the driver before an skb exists
// (native) or first thing in the receive softirq (generic); tc ingress in
// __netif_receive_skb_core after the backlog; the bridge's rx_handler after
// tc ingress; tunnel decapsulation in the encapsulating UDP/IP socket, after
// the IP layer and netfilter of the outer packet.

// Path says on which direction of traffic a stage lies.
type Path int

const (
	RX Path = iota
	TX
)

// Info describes one stage for people: where it is and what it means.
type Info struct {
	ID    ID
	Path  Path
	Title string // short phrase, e.g. "socket receive buffer"
	Where string // one sentence: where on the host this stage is
}

var all = []Info{
	{NIC, RX, "NIC / link", "the link, MAC and PHY of a network interface: frames arriving corrupt"},
	{RxRing, RX, "NIC RX ring", "the NIC's receive descriptor ring: the driver did not refill it in time"},
	{XDP, RX, "XDP program", "an XDP program on an interface (in the driver, or generic mode) that returned XDP_DROP or XDP_ABORTED"},
	{Softirq, RX, "softirq backlog", "the per-CPU backlog and NAPI budget of the NET_RX softirq"},
	{TCIngress, RX, "tc ingress", "tc ingress / clsact filters, actions and tcx programs on an interface's receive side that returned TC_ACT_SHOT"},
	{Bridge, RX, "bridge", "a Linux bridge refusing a frame on a port: STP state, VLAN filtering, invalid or local MAC"},
	{IP, RX, "IP layer", "IP receive and routing: bad headers, no route, reverse-path filter, reassembly"},
	{Netfilter, RX, "netfilter rules", "iptables / nftables rules that DROP or REJECT"},
	{Conntrack, RX, "conntrack table", "the connection tracking table: full, or insert clashes"},
	{Tunnel, RX, "tunnel decapsulation", "a tunnel device (vxlan, GRE, IPIP) refusing an encapsulated packet: bad header, unknown VNI, looped MAC"},
	{NoSocket, RX, "no socket", "datagrams or segments for a port nobody listens on"},
	{SocketRcvbuf, RX, "socket receive buffer", "a socket's receive queue: buffer too small or the application reads too slowly"},
	{TCPListen, RX, "TCP listen queue", "the SYN queue and accept queue of a listening socket"},
	{TCP, RX, "TCP protocol", "TCP segments discarded as invalid or by policy"},
	{Ports, TX, "ports / TIME_WAIT", "TIME_WAIT buckets and the ephemeral port range"},
	{TxSocket, TX, "socket send buffer", "a socket's send buffer: the application writes faster than the path drains"},
	{Qdisc, TX, "qdisc", "the traffic-control queue of an interface"},
	{Neighbor, TX, "neighbour table", "ARP / NDP resolution: table full or no answer"},
	{TxRing, TX, "NIC TX ring", "the NIC's transmit ring and driver, carrier and FIFO errors"},
}

// All returns every stage, receive path first, in packet order.
func All() []Info {
	out := make([]Info, len(all))
	copy(out, all)
	return out
}

// IDs returns every stage ID in packet order (RX then TX): the values a
// --stage flag or a metric label may take.
func IDs() []ID {
	out := make([]ID, len(all))
	for i, s := range all {
		out[i] = s.ID
	}
	return out
}

// OnPath returns the stages of one direction in packet order.
func OnPath(p Path) []ID {
	var out []ID
	for _, s := range all {
		if s.Path == p {
			out = append(out, s.ID)
		}
	}
	return out
}

// Lookup returns the description of id and whether id is a known stage.
func Lookup(id ID) (Info, bool) {
	for _, s := range all {
		if s.ID == id {
			return s, true
		}
	}
	return Info{}, false
}

// Valid reports whether id is one of the stages above.
func Valid(id ID) bool {
	_, ok := Lookup(id)
	return ok
}

// Index is the position of id on the whole path (RX then TX), -1 if unknown.
// It orders stages in tables and breaks ties in rankings.
func Index(id ID) int {
	for i, s := range all {
		if s.ID == id {
			return i
		}
	}
	return -1
}
