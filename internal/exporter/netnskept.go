package exporter

import (
	"hash/maphash"
	"maps"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/netdrop/netdrop/counters"
)

// keptReading is what the per-namespace collector keeps of a namespace's
// last reading until the next scrape: its values, and its counters'
// identities and kinds as a layout shared with every namespace that has the
// same counters (on a node, pods' namespaces hold the same MIB counters and
// one lo and eth0 each). A full snapshot of 500 counters is some 40 kB; two
// hundred of them were most of the exporter's heap, and the garbage
// collector scanned them all on every cycle.
type keptReading struct {
	time        time.Time
	netns       string
	layout      *counterLayout
	values      []uint64
	unavailable []counters.Unavailable
	sysctls     map[string]string
	nics        []counters.NIC
	hooks       []counters.Hook
	bridgePorts []counters.BridgePort
	cpus        int
}

// counterLayout is the counters of a reading with their values zeroed.
type counterLayout struct {
	hash     uint64
	counters []counters.Counter
}

// layouts interns counter layouts: namespaces with the same counters share
// one.
type layouts struct {
	mu   sync.Mutex
	seed maphash.Seed
	by   map[uint64][]*counterLayout
}

func newLayouts() *layouts {
	return &layouts{seed: maphash.MakeSeed(), by: map[uint64][]*counterLayout{}}
}

// of returns the interned layout of cs.
func (l *layouts) of(cs []counters.Counter) *counterLayout {
	var h maphash.Hash
	h.SetSeed(l.seed)
	for _, c := range cs {
		h.WriteString(string(c.Source))
		h.WriteByte(0)
		h.WriteString(c.Object)
		h.WriteByte(0)
		h.WriteString(c.Field)
		h.WriteByte(0)
		h.WriteString(string(c.Stage))
		h.WriteByte(0)
		h.WriteByte(flagBits(c))
	}
	sum := h.Sum64()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, have := range l.by[sum] {
		if sameLayout(have.counters, cs) {
			return have
		}
	}
	lay := &counterLayout{hash: sum, counters: make([]counters.Counter, len(cs))}
	for i, c := range cs {
		c.Value = 0
		lay.counters[i] = c
	}
	l.by[sum] = append(l.by[sum], lay)
	return lay
}

// keep forgets every layout but those in use, so that layouts of
// namespaces that are gone (and of the host's namespace as veths come and
// go) do not pile up.
func (l *layouts) keep(inUse func(yield func(*counterLayout) bool)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	by := map[uint64][]*counterLayout{}
	for lay := range inUse {
		if !slices.Contains(by[lay.hash], lay) {
			by[lay.hash] = append(by[lay.hash], lay)
		}
	}
	l.by = by
}

// flagBits packs a counter's kind flags and width for hashing.
func flagBits(c counters.Counter) byte {
	b := c.Bits
	if c.Gauge {
		b |= 1 << 7
	}
	if c.HostWide {
		b |= 1 << 6
	}
	return b
}

// sameLayout reports whether cs has layout's counters, values aside.
func sameLayout(layout, cs []counters.Counter) bool {
	if len(layout) != len(cs) {
		return false
	}
	for i, c := range cs {
		c.Value = 0
		if c != layout[i] {
			return false
		}
	}
	return true
}

// keptFields are the fields of counters.Snapshot a keptReading keeps
// (TestKeptReadingEveryField fails when Snapshot gains one it does not).
var keptFields = []string{"Time", "Netns", "Counters", "Unavailable", "Sysctls", "NICs", "CPUs", "Hooks", "BridgePorts"}

// keepReading copies what s, a worker's scratch snapshot, holds. prev is
// the namespace's last reading, nil for a new one: its layout is taken
// without hashing when the counters are the same ones, as they mostly are.
func keepReading(l *layouts, prev *keptReading, s *counters.Snapshot) *keptReading {
	var layout *counterLayout
	if prev != nil && sameLayout(prev.layout.counters, s.Counters) {
		layout = prev.layout
	} else {
		layout = l.of(s.Counters)
	}
	k := &keptReading{
		time:        s.Time,
		netns:       s.Netns,
		layout:      layout,
		values:      make([]uint64, len(s.Counters)),
		unavailable: slices.Clone(s.Unavailable),
		sysctls:     maps.Clone(s.Sysctls),
		nics:        slices.Clone(s.NICs),
		hooks:       slices.Clone(s.Hooks),
		bridgePorts: slices.Clone(s.BridgePorts),
		cpus:        s.CPUs,
	}
	for i, c := range s.Counters {
		k.values[i] = c.Value
	}
	return k
}

// same reports whether s holds what k holds: every counter and value,
// setting, interface layout, hook and unavailable source. Between two such
// readings nothing happened that diagnose could see.
func (k *keptReading) same(s *counters.Snapshot) bool {
	if k.netns != s.Netns || k.cpus != s.CPUs || len(k.values) != len(s.Counters) {
		return false
	}
	for i, c := range s.Counters {
		if c.Value != k.values[i] {
			return false
		}
	}
	return sameLayout(k.layout.counters, s.Counters) &&
		slices.Equal(k.unavailable, s.Unavailable) &&
		maps.Equal(k.sysctls, s.Sysctls) &&
		reflect.DeepEqual(k.nics, s.NICs) &&
		reflect.DeepEqual(k.hooks, s.Hooks) &&
		reflect.DeepEqual(k.bridgePorts, s.BridgePorts)
}

// snapshot rebuilds the reading k keeps, for diagnose to compare with.
func (k *keptReading) snapshot() *counters.Snapshot {
	cs := slices.Clone(k.layout.counters)
	for i := range cs {
		cs[i].Value = k.values[i]
	}
	return &counters.Snapshot{
		Time:        k.time,
		Netns:       k.netns,
		Counters:    cs,
		Unavailable: k.unavailable,
		Sysctls:     k.sysctls,
		NICs:        k.nics,
		CPUs:        k.cpus,
		Hooks:       k.hooks,
		BridgePorts: k.bridgePorts,
	}
}
