package sockets

import (
	"cmp"
	"container/heap"
	"net/netip"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/netdrop/netdrop/internal/netns"
)

// DefaultTop is how many rows each table keeps when Options.Top is zero.
const DefaultTop = 10

// DefaultNearFull is the receive-queue fill (RmemAlloc / Rcvbuf) from which
// a socket counts as about to drop.
const DefaultNearFull = 0.8

// Share thresholds of the ephemeral range that one destination may use
// before it is flagged.
const (
	ShareWarning  = 0.5
	ShareCritical = 0.9
)

// Target is the network namespace sockets are read in, the same type as
// counters.Target: the zero value is the caller's own namespace; build
// others with NamedNetns, NetnsAtPath, NetnsOfPID or ParseTarget. An alias,
// so a program outside this module can name and build one although the
// implementation lives in an internal package.
type Target = netns.Target

// Namespace targets, as in counters.
var (
	NamedNetns  = netns.Named
	NetnsAtPath = netns.AtPath
	NetnsOfPID  = netns.OfPID
)

// ParseTarget reads a target as users type it: "" for the current
// namespace, pid:N, a path (anything with a slash) or a name under
// /run/netns.
func ParseTarget(spec string) (Target, error) { return netns.Parse(spec) }

// Options select what Summarize reads and keeps.
type Options struct {
	// Netns is the namespace to read; the zero Target is the current
	// one.
	Netns Target
	// ProcRoot is the procfs mount, "/proc" when empty.
	ProcRoot string
	// States limits the sockets read; 0 means all. The kernel applies it.
	States StateSet
	// Port keeps sockets whose local or remote port is Port; 0 keeps all.
	Port uint16
	// Process keeps the sockets of matching processes only (which
	// excludes TIME_WAIT and request sockets: no process owns them).
	Process ProcessFilter
	// Owners names the processes that own the listeners and the sockets
	// under pressure, by one walk of /proc/*/fd after the dump.
	Owners bool
	// Top is how many rows each table keeps: 0 means DefaultTop, a
	// negative value keeps all (memory then grows with the rows).
	Top int
	// NearFull is the receive-queue fill that counts as near full; 0 means
	// DefaultNearFull.
	NearFull float64
}

func (o Options) top() int {
	switch {
	case o.Top == 0:
		return DefaultTop
	case o.Top < 0:
		return int(^uint(0) >> 1)
	}
	return o.Top
}

// Summary is what Summarize found.
type Summary struct {
	Netns    string   `json:"netns"`
	Settings Settings `json:"settings"`
	// Total is how many sockets matched the filters.
	Total  int          `json:"total"`
	Counts []StateCount `json:"counts"`
	// TimeWait splits TIME_WAIT by which side closed first.
	TimeWait TimeWaitSides `json:"time_wait"`
	// ServerTimeWait is TIME_WAIT per local listening port, most first:
	// where this host, as the server, closes connections first.
	ServerTimeWait []PortCount `json:"server_time_wait"`
	// Destinations are the TCP client sockets (TIME_WAIT included) per
	// remote address and port, most used share of the ephemeral range
	// first; DestinationsTotal counts them before the Top cut.
	Destinations      []Destination `json:"destinations"`
	DestinationsTotal int           `json:"destinations_total"`
	// Listeners are the TCP listeners, fullest accept queue first.
	Listeners      []Listener `json:"listeners"`
	ListenersTotal int        `json:"listeners_total"`
	// Pressure are the sockets that dropped packets or whose receive
	// queue is near its buffer, most drops first.
	Pressure      []PressuredSocket `json:"pressure"`
	PressureTotal int               `json:"pressure_total"`
	// Unavailable lists what could not be read, and why.
	Unavailable []string `json:"unavailable"`
}

// StateCount is the number of sockets of one family, protocol and state.
type StateCount struct {
	Family   string `json:"family"`   // "ipv4" or "ipv6"
	Protocol string `json:"protocol"` // "tcp" or "udp"
	State    State  `json:"state"`
	Count    int    `json:"count"`
}

// TimeWaitSides splits TIME_WAIT sockets by who closed first. A TIME_WAIT
// whose local port is a listening port belongs to a connection this host
// accepted and then closed first (the server closes): each holds kernel
// memory for 60 s, and under load the server's tw buckets overflow. Any other
// TIME_WAIT belongs to a connection this host opened (a client closing
// first), and holds one ephemeral port toward its destination for 60 s.
type TimeWaitSides struct {
	Total  int `json:"total"`
	Server int `json:"server"`
	Client int `json:"client"`
}

// PortCount is a count of sockets on one local port.
type PortCount struct {
	Port  uint16 `json:"port"`
	Count int    `json:"count"`
}

// TwReuse says what net.ipv4.tcp_tw_reuse does for one destination.
type TwReuse string

const (
	// TwReuseNone: no TIME_WAIT toward this destination, nothing to reuse.
	TwReuseNone TwReuse = ""
	// TwReuseActive: connect() may already take over a TIME_WAIT port
	// toward this destination (tcp_tw_reuse=1, or =2 and loopback), when
	// the connection used TCP timestamps and the TIME_WAIT is over 1 s old.
	TwReuseActive TwReuse = "active"
	// TwReuseWouldHelp: enabling tcp_tw_reuse=1 would let connect() reuse
	// these ports; it is off, or on for loopback only.
	TwReuseWouldHelp TwReuse = "would-help"
	// TwReuseNoTimestamps: tcp_tw_reuse cannot work, tcp_timestamps is 0.
	TwReuseNoTimestamps TwReuse = "needs-timestamps"
)

// Destination is what this host's TCP clients hold toward one remote
// address and port.
type Destination struct {
	Remote      netip.AddrPort `json:"remote"`
	Sockets     int            `json:"sockets"`
	TimeWait    int            `json:"time_wait"`
	Established int            `json:"established"`
	// Sources is how many local addresses connect to it. Ports are
	// unique per (local address, destination), so each source has the
	// whole range.
	Sources int `json:"sources"`
	// EphemeralInUse is the busiest source's sockets whose local port is
	// in the ephemeral range; Share is that over the range size.
	EphemeralInUse int     `json:"ephemeral_in_use"`
	Share          float64 `json:"share"`
	// Severity is "critical" above ShareCritical, "warning" above
	// ShareWarning, else "".
	Severity string  `json:"severity,omitempty"`
	TwReuse  TwReuse `json:"tw_reuse,omitempty"`
}

// Listener is one TCP listening socket and its accept queue.
type Listener struct {
	Family string         `json:"family"`
	Local  netip.AddrPort `json:"local"`
	// Queued is how many connections wait in the accept queue
	// (idiag_rqueue); Backlog its limit (idiag_wqueue, the listen()
	// backlog capped by net.core.somaxconn). The kernel admits one more
	// than Backlog, then drops (sk_acceptq_is_full).
	Queued  uint32  `json:"queued"`
	Backlog uint32  `json:"backlog"`
	Fill    float64 `json:"fill"`
	Full    bool    `json:"full"`
	// Drops is the listener's sk_drops: handshakes dropped because the
	// accept or SYN queue overflowed (tcp_listendrop).
	Drops     uint32    `json:"drops"`
	Inode     uint32    `json:"inode"`
	Cookie    uint64    `json:"cookie"`
	Processes []Process `json:"processes,omitempty"`
}

// PressuredSocket is a socket that dropped packets or whose receive queue
// is near its buffer.
type PressuredSocket struct {
	Family   string         `json:"family"`
	Protocol string         `json:"protocol"`
	State    State          `json:"state"`
	Local    netip.AddrPort `json:"local"`
	Remote   netip.AddrPort `json:"remote"`
	// Drops is sk_drops since the socket was created.
	Drops uint32 `json:"drops"`
	// RmemAlloc is the memory queued for reading, Rcvbuf its limit,
	// Fill the ratio.
	RmemAlloc uint32    `json:"rmem_alloc"`
	Rcvbuf    uint32    `json:"rcvbuf"`
	Fill      float64   `json:"fill"`
	RQueue    uint32    `json:"rqueue"`
	Inode     uint32    `json:"inode"`
	Cookie    uint64    `json:"cookie"`
	Processes []Process `json:"processes,omitempty"`
}

// aggregator folds a stream of sockets into a Summary in memory bounded by
// the number of destinations and listening ports, never by the number of
// sockets.
type aggregator struct {
	opts      Options
	settings  Settings
	listening portSet // every local TCP listening port, unfiltered
	keep      func(*Socket) bool

	total     int
	counts    [2][2][16]int // family, protocol, state
	tw        TimeWaitSides
	serverTW  map[uint16]int
	dests     map[netip.AddrPort]*destAgg
	listeners []Listener
	pressure  pressureHeap
	pressureN int
}

type destAgg struct {
	Destination
	// perSource counts, per local address, the sockets with an
	// ephemeral local port. Values are pointers so that a socket costs
	// one map lookup, not a lookup and a store.
	perSource map[netip.Addr]*int
}

// portSet is a set of ports as a bitmap: the aggregator asks it once or
// twice per socket, and an array index is a fraction of a map lookup's
// cost (hashing was a third of a 100k-socket summary's user time).
type portSet [65536 / 64]uint64

func (p *portSet) add(port uint16)      { p[port/64] |= 1 << (port % 64) }
func (p *portSet) has(port uint16) bool { return p[port/64]&(1<<(port%64)) != 0 }

func newAggregator(opts Options, settings Settings, keep func(*Socket) bool) *aggregator {
	if opts.NearFull == 0 {
		opts.NearFull = DefaultNearFull
	}
	return &aggregator{
		opts:     opts,
		settings: settings,
		keep:     keep,
		serverTW: map[uint16]int{},
		dests:    map[netip.AddrPort]*destAgg{},
	}
}

// noteListener records a listening port before the main dump, so that
// TIME_WAIT and client sockets can be told from the server's.
func (a *aggregator) noteListener(s *Socket) { a.listening.add(s.Local.Port()) }

// add folds one socket in.
func (a *aggregator) add(s *Socket) {
	if a.keep != nil && !a.keep(s) {
		return
	}
	a.total++
	fi, pi := 0, 0
	if s.Family == unix.AF_INET6 {
		fi = 1
	}
	if s.Protocol == unix.IPPROTO_UDP {
		pi = 1
	}
	if s.State == NewSynRecv {
		s.State = SynRecv
	}
	a.counts[fi][pi][s.State&15]++

	if s.Protocol == unix.IPPROTO_TCP {
		switch {
		case s.State == Listen:
			a.addListener(s)
		case s.State == TimeWait && a.listening.has(s.Local.Port()):
			a.tw.Total++
			a.tw.Server++
			a.serverTW[s.Local.Port()]++
		case a.listening.has(s.Local.Port()):
			// An accepted connection: it uses no ephemeral port here.
		default:
			if s.State == TimeWait {
				a.tw.Total++
				a.tw.Client++
			}
			a.addClient(s)
		}
	}
	if s.HasMem && s.State != Listen {
		a.addPressure(s)
	}
}

func (a *aggregator) addClient(s *Socket) {
	remote := netip.AddrPortFrom(s.Remote.Addr().Unmap(), s.Remote.Port())
	d := a.dests[remote]
	if d == nil {
		d = &destAgg{Destination: Destination{Remote: remote}, perSource: map[netip.Addr]*int{}}
		a.dests[remote] = d
	}
	d.Sockets++
	switch s.State {
	case TimeWait:
		d.TimeWait++
	case Established:
		d.Established++
	}
	src := s.Local.Addr().Unmap()
	n := d.perSource[src]
	if n == nil {
		n = new(int) // the source is counted even with no ephemeral port
		d.perSource[src] = n
	}
	if a.settings.InRange(s.Local.Port()) {
		*n++
	}
}

func (a *aggregator) addListener(s *Socket) {
	l := Listener{
		Family:  familyName(s.Family),
		Local:   s.Local,
		Queued:  s.RQueue,
		Backlog: s.WQueue,
		Full:    s.RQueue > s.WQueue,
		Inode:   s.Inode,
		Cookie:  s.Cookie,
	}
	if s.WQueue > 0 {
		l.Fill = float64(s.RQueue) / float64(s.WQueue)
	} else if s.RQueue > 0 {
		l.Fill = 1
	}
	if s.HasMem {
		l.Drops = s.Mem.Drops
	}
	a.listeners = append(a.listeners, l)
}

func (a *aggregator) addPressure(s *Socket) {
	m := s.Mem
	fill := 0.0
	if m.Rcvbuf > 0 {
		fill = float64(m.RmemAlloc) / float64(m.Rcvbuf)
	}
	if m.Drops == 0 && fill < a.opts.NearFull {
		return
	}
	a.pressureN++
	p := PressuredSocket{
		Family:    familyName(s.Family),
		Protocol:  protoName(s.Protocol),
		State:     s.State,
		Local:     s.Local,
		Remote:    s.Remote,
		Drops:     m.Drops,
		RmemAlloc: m.RmemAlloc,
		Rcvbuf:    m.Rcvbuf,
		Fill:      fill,
		RQueue:    s.RQueue,
		Inode:     s.Inode,
		Cookie:    s.Cookie,
	}
	// Keep only the Top worst in a min-heap, so memory stays bounded
	// however many sockets are under pressure.
	if a.pressure.Len() < a.opts.top() {
		heap.Push(&a.pressure, p)
	} else if a.pressure.Len() > 0 && worse(p, a.pressure[0]) {
		a.pressure[0] = p
		heap.Fix(&a.pressure, 0)
	}
}

// worse orders pressured sockets: more drops first, then fuller.
func worse(a, b PressuredSocket) bool {
	if a.Drops != b.Drops {
		return a.Drops > b.Drops
	}
	if a.Fill != b.Fill {
		return a.Fill > b.Fill
	}
	return a.Cookie < b.Cookie
}

type pressureHeap []PressuredSocket

func (h pressureHeap) Len() int           { return len(h) }
func (h pressureHeap) Less(i, j int) bool { return worse(h[j], h[i]) } // min-heap: least bad on top
func (h pressureHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *pressureHeap) Push(x any)        { *h = append(*h, x.(PressuredSocket)) }
func (h *pressureHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// summary finishes the views: ranks every table and cuts it to Top.
func (a *aggregator) summary() *Summary {
	top := a.opts.top()
	s := &Summary{
		Netns:          a.opts.Netns.Spec(),
		Settings:       a.settings,
		Total:          a.total,
		TimeWait:       a.tw,
		Counts:         []StateCount{},
		ServerTimeWait: []PortCount{},
		Destinations:   []Destination{},
		Listeners:      []Listener{},
		Pressure:       []PressuredSocket{},
		Unavailable:    []string{},
	}
	for fi, fam := range []string{"ipv4", "ipv6"} {
		for pi, proto := range []string{"tcp", "udp"} {
			for st, n := range a.counts[fi][pi] {
				if n > 0 {
					s.Counts = append(s.Counts, StateCount{Family: fam, Protocol: proto, State: State(st), Count: n})
				}
			}
		}
	}
	for port, n := range a.serverTW {
		s.ServerTimeWait = append(s.ServerTimeWait, PortCount{Port: port, Count: n})
	}
	slices.SortFunc(s.ServerTimeWait, func(x, y PortCount) int {
		return cmp.Or(cmp.Compare(y.Count, x.Count), cmp.Compare(x.Port, y.Port))
	})
	s.ServerTimeWait = cut(s.ServerTimeWait, top)

	size := a.settings.PortRangeSize()
	for _, d := range a.dests {
		d.Sources = len(d.perSource)
		for _, n := range d.perSource {
			d.EphemeralInUse = max(d.EphemeralInUse, *n)
		}
		if size > 0 {
			d.Share = float64(d.EphemeralInUse) / float64(size)
		}
		switch {
		case d.Share > ShareCritical:
			d.Severity = "critical"
		case d.Share > ShareWarning:
			d.Severity = "warning"
		}
		d.TwReuse = a.twReuse(d.Remote.Addr(), d.TimeWait)
		s.Destinations = append(s.Destinations, d.Destination)
	}
	s.DestinationsTotal = len(s.Destinations)
	slices.SortFunc(s.Destinations, func(x, y Destination) int {
		return cmp.Or(cmp.Compare(y.Share, x.Share), cmp.Compare(y.Sockets, x.Sockets),
			x.Remote.Addr().Compare(y.Remote.Addr()), cmp.Compare(x.Remote.Port(), y.Remote.Port()))
	})
	s.Destinations = cut(s.Destinations, top)

	s.ListenersTotal = len(a.listeners)
	s.Listeners = append(s.Listeners, a.listeners...)
	slices.SortFunc(s.Listeners, func(x, y Listener) int {
		return cmp.Or(boolCmp(y.Full, x.Full), cmp.Compare(y.Drops, x.Drops), cmp.Compare(y.Fill, x.Fill),
			cmp.Compare(x.Local.Port(), y.Local.Port()), x.Local.Addr().Compare(y.Local.Addr()))
	})
	s.Listeners = cut(s.Listeners, top)

	s.PressureTotal = a.pressureN
	s.Pressure = append(s.Pressure, a.pressure...)
	slices.SortFunc(s.Pressure, func(x, y PressuredSocket) int {
		if worse(x, y) {
			return -1
		}
		if worse(y, x) {
			return 1
		}
		return 0
	})
	return s
}

// twReuse says whether net.ipv4.tcp_tw_reuse lets connect() take over this
// destination's TIME_WAIT ports. It acts on outgoing connections only
// (tcp_twsk_unique in net/ipv4/tcp_ipv4.c), needs the connection to have used
// timestamps, and with the value 2 only for loopback traffic.
func (a *aggregator) twReuse(remote netip.Addr, timeWait int) TwReuse {
	if timeWait == 0 {
		return TwReuseNone
	}
	if a.settings.Timestamps == 0 {
		return TwReuseNoTimestamps
	}
	switch a.settings.TwReuse {
	case 1:
		return TwReuseActive
	case 2:
		if remote.IsLoopback() {
			return TwReuseActive
		}
	}
	return TwReuseWouldHelp
}

func cut[T any](s []T, n int) []T {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func boolCmp(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

func familyName(f uint8) string {
	if f == unix.AF_INET6 {
		return "ipv6"
	}
	return "ipv4"
}

func protoName(p uint8) string {
	if p == unix.IPPROTO_UDP {
		return "udp"
	}
	return "tcp"
}
