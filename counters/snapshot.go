// Package counters reads every drop-related counter of a Linux host into a
// Snapshot and computes the difference between two snapshots.
//
// Each kernel source lives in its own file (snmp.go, softnet.go, …) with a
// pure parser that takes an io.Reader and a reader that goes through an FS,
// so every parser is tested on fixtures copied from real kernels. Sources that
// cannot be read become Unavailable entries with a reason; they never make the
// whole snapshot fail. This package knows nothing of findings or rankings:
// that is diagnose's job.
package counters

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
	"time"

	"github.com/netdrop/netdrop/stage"
)

// ErrFileParse wraps every parse error so callers can tell a malformed file
// from a missing one.
var ErrFileParse = errors.New("malformed kernel file")

// Counter is one value read from the kernel.
type Counter struct {
	// Source says where the value was read (see SourceID).
	Source SourceID `json:"source"`
	// Object qualifies the value when the source has many: an interface,
	// a CPU ("cpu1"), a qdisc ("veth0 tbf 1:"), an nft rule. Empty for
	// host- or namespace-wide values.
	Object string `json:"object,omitempty"`
	// Field is the kernel's own name for the value, e.g. "Udp:RcvbufErrors"
	// for SNMP counters (group and field as nstat prints them, with a colon),
	// "dropped" for softnet_stat.
	Field string `json:"field"`
	Value uint64 `json:"value"`
	// Stage is the stage of the packet path the value is evidence for, or ""
	// when the value is context (totals, gauges that are not drops).
	Stage stage.ID `json:"stage,omitempty"`
	// Gauge marks values that are levels, not event counts (queue lengths,
	// table sizes). Deltas of gauges are not drops; Delta keeps the new level.
	Gauge bool `json:"gauge,omitempty"`
	// HostWide marks values that belong to the whole host, not to the
	// network namespace being diagnosed (softnet_stat, interrupts, NICs).
	HostWide bool `json:"host_wide,omitempty"`
	// Bits is the width of a counter that wraps: 32 for the hex columns of
	// softnet_stat. Zero means 64.
	Bits uint8 `json:"-"`
}

// Name is the counter's display name: Object and Field joined.
func (c Counter) Name() string {
	if c.Object == "" {
		return c.Field
	}
	return c.Object + " " + c.Field
}

// Key identifies a counter across two snapshots.
type Key struct {
	Source        SourceID
	Object, Field string
}

// Key returns c's identity.
func (c Counter) Key() Key { return Key{c.Source, c.Object, c.Field} }

// Unavailable says why a source, or one object of it (an interface, a
// chain), could not be read, and what that costs.
type Unavailable struct {
	Source SourceID `json:"source"`
	// Object is the interface, chain or table the reason is about; empty
	// when it is about the whole source.
	Object string `json:"object,omitempty"`
	Reason string `json:"reason"`
}

// Where is the source and object as one line of text shows them:
// "ethtool -g eth0".
func (u Unavailable) Where() string {
	if u.Object == "" {
		return string(u.Source)
	}
	return string(u.Source) + " " + u.Object
}

// Snapshot is everything read from one host (or one network namespace) at one
// moment.
type Snapshot struct {
	Time        time.Time     `json:"time"`
	Netns       string        `json:"netns"`
	Counters    []Counter     `json:"counters"`
	Unavailable []Unavailable `json:"unavailable"`
	// Sysctls holds the settings the fixes refer to, by dotted name
	// ("net.core.rmem_max"), as the kernel prints them.
	Sysctls map[string]string `json:"sysctls,omitempty"`
	// NICs is the receive layout of each interface that has one.
	NICs []NIC `json:"nics,omitempty"`
	// CPUs is the number of online CPUs seen in per-CPU files.
	CPUs int `json:"cpus"`
	// Hooks are the XDP programs and tc filters attached to interfaces
	// (hooks.go): who to ask when the xdp or tc-ingress stage drops.
	Hooks []Hook `json:"hooks,omitempty"`
	// BridgePorts are the bridge ports with their STP state: why a bridge
	// drops what arrives on a port (BRIDGE_INGRESS_STP_STATE).
	BridgePorts []BridgePort `json:"bridge_ports,omitempty"`

	index map[Key]int
}

// BridgePort is one port of a Linux bridge and the STP settings of its
// bridge, as `bridge link` and `ip -d link show BRIDGE` print them.
type BridgePort struct {
	Port   string    `json:"port"`
	Bridge string    `json:"bridge,omitempty"`
	State  PortState `json:"state"`
	// STP is the bridge's stp_state: 0 off, 1 the kernel's STP, 2 a
	// user-space daemon's (mstpd); -1 unknown.
	STP int `json:"stp"`
	// ForwardDelay is how long STP holds a new port in listening, and
	// again in learning, before it forwards.
	ForwardDelay time.Duration `json:"forward_delay,omitempty"`
}

// PortState is a bridge port's STP state (BR_STATE_* of
// include/uapi/linux/if_bridge.h).
type PortState uint8

// The port states, in the kernel's numbering (`bridge link set dev X state N`).
const (
	PortDisabled PortState = iota
	PortListening
	PortLearning
	PortForwarding
	PortBlocking
)

var portStateNames = [...]string{"disabled", "listening", "learning", "forwarding", "blocking"}

func (p PortState) String() string {
	if int(p) < len(portStateNames) {
		return portStateNames[p]
	}
	return fmt.Sprintf("state %d", uint8(p))
}

// NIC is the receive and transmit layout of one interface: what the fixes for
// a full ring or a hot CPU are computed from. Zero values mean "not reported
// by the driver".
type NIC struct {
	Name     string `json:"name"`
	Driver   string `json:"driver,omitempty"`
	RxQueues int    `json:"rx_queues,omitempty"`
	TxQueues int    `json:"tx_queues,omitempty"`
	// Channels as ethtool -l reports them.
	CombinedChannels    uint32 `json:"combined_channels,omitempty"`
	MaxCombinedChannels uint32 `json:"max_combined_channels,omitempty"`
	RxChannels          uint32 `json:"rx_channels,omitempty"`
	MaxRxChannels       uint32 `json:"max_rx_channels,omitempty"`
	// Ring sizes as ethtool -g reports them.
	RxRing    uint32 `json:"rx_ring,omitempty"`
	RxRingMax uint32 `json:"rx_ring_max,omitempty"`
	TxRing    uint32 `json:"tx_ring,omitempty"`
	TxRingMax uint32 `json:"tx_ring_max,omitempty"`
	// Interrupt coalescing as ethtool -c reports it.
	RxUsecs    uint32 `json:"rx_usecs,omitempty"`
	AdaptiveRx bool   `json:"adaptive_rx,omitempty"`
	TxQueueLen int    `json:"tx_queue_len,omitempty"`
	// IRQs of the interface's queues with their affinity (CPU list as in
	// /proc/irq/N/smp_affinity_list).
	IRQs []IRQ `json:"irqs,omitempty"`
	// RPS and XPS masks per queue, as hex strings from sysfs; "0" is off,
	// "" unknown (the file is missing or could not be read).
	RPSCPUs []string `json:"rps_cpus,omitempty"`
	XPSCPUs []string `json:"xps_cpus,omitempty"`
}

// IRQ is one interrupt line of a NIC.
type IRQ struct {
	Number   int    `json:"irq"`
	Name     string `json:"name"`
	Affinity string `json:"affinity,omitempty"`
}

// Add appends counters to the snapshot.
func (s *Snapshot) Add(cs ...Counter) {
	s.Counters = append(s.Counters, cs...)
	s.index = nil
}

// adopt appends counters that the caller made for s and no longer uses:
// the first batch becomes s.Counters itself instead of being copied.
func (s *Snapshot) adopt(cs []Counter) {
	if cap(s.Counters) == 0 {
		s.Counters = cs
		s.index = nil
		return
	}
	s.Add(cs...)
}

// Fail records that source could not be read. Errors that say "not found"
// and "permission denied" are turned into reasons a user can act on.
func (s *Snapshot) Fail(source SourceID, err error) {
	s.FailObject(source, "", err)
}

// FailObject records that one object of source (an interface, a chain)
// could not be read.
func (s *Snapshot) FailObject(source SourceID, object string, err error) {
	s.Unavailable = append(s.Unavailable, Unavailable{Source: source, Object: object, Reason: Reason(err)})
}

// Reason turns an error into a short explanation for the unavailable list.
func Reason(err error) string {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Sprintf("not present on this kernel or namespace (%v)", err)
	case errors.Is(err, fs.ErrPermission), errors.Is(err, os.ErrPermission):
		return fmt.Sprintf("permission denied: run as root or with CAP_NET_ADMIN (%v)", err)
	case errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.EPROTONOSUPPORT):
		// EOPNOTSUPP in words: the kernel knows the request but has
		// nothing to answer it with.
		return fmt.Sprintf("this kernel cannot answer: the feature is not built in or its module is not loaded (%v)", err)
	default:
		return err.Error()
	}
}

// Get returns the counter with the given key.
func (s *Snapshot) Get(k Key) (Counter, bool) {
	if s.index == nil {
		s.index = make(map[Key]int, len(s.Counters))
		for i, c := range s.Counters {
			s.index[c.Key()] = i
		}
	}
	i, ok := s.index[k]
	if !ok {
		return Counter{}, false
	}
	return s.Counters[i], true
}

// Value returns the value of source/object/field, or 0 and false.
func (s *Snapshot) Value(source SourceID, object, field string) (uint64, bool) {
	c, ok := s.Get(Key{source, object, field})
	return c.Value, ok
}

// Sort orders counters by source, object and field so output is stable.
func (s *Snapshot) Sort() {
	slices.SortFunc(s.Counters, func(a, b Counter) int {
		if c := strings.Compare(string(a.Source), string(b.Source)); c != 0 {
			return c
		}
		if c := strings.Compare(a.Object, b.Object); c != 0 {
			return c
		}
		return strings.Compare(a.Field, b.Field)
	})
	s.index = nil
}

// Delta returns, for every counter present in both snapshots, how much it
// moved from a to b. Counters that wrapped are unwrapped by their width;
// a 64-bit counter that went down (a device was re-created, a module reloaded)
// is reported as the new value, as nstat does after a reset. Gauges keep b's
// level. Counters that exist only in b (a new interface) count from zero.
func Delta(a, b *Snapshot) *Snapshot {
	out := &Snapshot{
		Time:        b.Time,
		Netns:       b.Netns,
		Unavailable: b.Unavailable,
		Sysctls:     b.Sysctls,
		NICs:        b.NICs,
		CPUs:        b.CPUs,
		Hooks:       b.Hooks,
		BridgePorts: b.BridgePorts,
		Counters:    make([]Counter, 0, len(b.Counters)),
	}
	for i, cb := range b.Counters {
		d := cb
		if !cb.Gauge {
			if ca, ok := a.at(i, cb); ok {
				d.Value = Diff(ca.Value, cb.Value, cb.Bits)
			}
		}
		out.Counters = append(out.Counters, d)
	}
	return out
}

// at returns the counter of s with c's key, looked for first at index i:
// two snapshots of one namespace mostly hold the same counters in the same
// order, and comparing a key where it is expected spares building the
// index (a map of every key) on each delta. A snapshot holds each key
// once.
func (s *Snapshot) at(i int, c Counter) (Counter, bool) {
	if i < len(s.Counters) {
		if ca := s.Counters[i]; ca.Field == c.Field && ca.Object == c.Object && ca.Source == c.Source {
			return ca, true
		}
	}
	return s.Get(c.Key())
}

// Diff is the increase of a counter from a to b, allowing for a wrap at the
// given width (0 or 64 for 64-bit counters).
func Diff(a, b uint64, bits uint8) uint64 {
	if b >= a {
		return b - a
	}
	if bits > 0 && bits < 64 {
		return (b + (1 << bits)) - a
	}
	// A 64-bit counter went backwards: it was reset, count from zero.
	return b
}
