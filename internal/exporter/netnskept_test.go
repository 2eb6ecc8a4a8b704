package exporter

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/netdrop/netdrop/counters"
	"github.com/netdrop/netdrop/internal/netnsmap"
	"github.com/netdrop/netdrop/stage"
)

// scriptedSource is a counter source whose readings a test writes: one
// list of counters per reading, the last repeated.
type scriptedSource struct {
	readings [][]counters.Counter
	n        int
}

func (s *scriptedSource) ID() counters.SourceID { return counters.ProcNetSNMP }

func (s *scriptedSource) Collect(_ context.Context, _ *counters.Reading, snap *counters.Snapshot) error {
	snap.Add(s.readings[min(s.n, len(s.readings)-1)]...)
	s.n++
	return nil
}

// mib is a scripted MIB counter with its catalog stage.
func mib(field string, v uint64) counters.Counter {
	fi, _ := counters.LookupCounter(counters.ProcNetSNMP, field)
	return counters.Counter{Source: counters.ProcNetSNMP, Field: field, Value: v, Stage: fi.Stage}
}

// conntrackLevel is the conntrack table's use and limit, as gauges.
func conntrackLevel(count, max uint64) []counters.Counter {
	return []counters.Counter{
		{Source: counters.ProcSysConntrackCount, Field: "nf_conntrack_count", Value: count, Gauge: true},
		{Source: counters.ProcSysConntrackMax, Field: "nf_conntrack_max", Value: max, Gauge: true},
	}
}

// scrapeNetns runs one update of c and returns its per-namespace series as
// "name{label=value,…} value" lines, sorted.
func scrapeNetns(t *testing.T, c *netnsCollector) []string {
	t.Helper()
	ch := make(chan prometheus.Metric, 256)
	if err := c.update(context.Background(), nil, ch); err != nil {
		t.Fatal(err)
	}
	close(ch)
	var out []string
	for m := range ch {
		var pb dto.Metric
		if err := m.Write(&pb); err != nil {
			t.Fatal(err)
		}
		name := m.Desc().String()
		name = name[strings.Index(name, `fqName: "`)+9:]
		name = name[:strings.IndexByte(name, '"')]
		if !strings.HasPrefix(name, "netdrop_netns_stage") && !strings.HasPrefix(name, "netdrop_netns_findings") {
			continue
		}
		var labels []string
		for _, l := range pb.GetLabel() {
			labels = append(labels, l.GetName()+"="+l.GetValue())
		}
		v := pb.GetGauge().GetValue() + pb.GetCounter().GetValue()
		out = append(out, fmt.Sprintf("%s{%s} %g", name, strings.Join(labels, ","), v))
	}
	sort.Strings(out)
	return out
}

// TestNetnsCollectorQuietReadings scrapes one namespace whose readings
// stay the same, then move, then stay again, and checks each scrape's
// series against what diagnose finds comparing the two readings itself:
// a quiet namespace, answered from what was kept, says what a fresh
// analysis says.
func TestNetnsCollectorQuietReadings(t *testing.T) {
	full := conntrackLevel(60000, 65536) // over 90%: a finding from levels alone
	reading := func(noPorts uint64, level []counters.Counter) []counters.Counter {
		return append([]counters.Counter{mib("Udp:InDatagrams", 100), mib("Udp:NoPorts", noPorts)}, level...)
	}
	src := &scriptedSource{readings: [][]counters.Counter{
		reading(5, full), reading(5, full), reading(5, full), // quiet
		reading(9, full),                   // 4 datagrams to no socket
		reading(9, full), reading(9, full), // quiet again
		reading(9, conntrackLevel(100, 65536)), // the table drains
		reading(9, conntrackLevel(100, 65536)),
	}}
	clock := time.Unix(1_800_000_000, 0)
	c := hostOnlyCollector(src, &clock)
	const interval = 15 * time.Second
	// want is what the series must be: the drop total so far, and the
	// findings diagnose makes of the two readings at hand.
	want := func(drops uint64, before, after []counters.Counter) []string {
		a := c.analysis(&counters.Snapshot{Netns: "current", Counters: before}, &counters.Snapshot{Netns: "current", Counters: after}, interval)
		var out []string
		labels := "container=,netns=host,pod=,pod_namespace="
		if drops > 0 {
			out = append(out, fmt.Sprintf("netdrop_netns_stage_drops_total{%s,stage=%s} %d", labels, stage.NoSocket, drops))
		}
		for k, v := range a.findings {
			out = append(out, fmt.Sprintf("netdrop_netns_findings{%s,severity=%s,stage=%s} %d", labels, k.sev, k.stage, v))
		}
		sort.Strings(out)
		return out
	}
	low := conntrackLevel(100, 65536)
	steps := []struct {
		name  string
		want  []string
		quiet bool // answered from the kept analysis
	}{
		{"first reading", nil, false},
		{"quiet", want(0, reading(5, full), reading(5, full)), false},
		{"quiet again", want(0, reading(5, full), reading(5, full)), true},
		{"moved", want(4, reading(5, full), reading(9, full)), false},
		{"quiet after the move", want(4, reading(9, full), reading(9, full)), false},
		{"quiet still", want(4, reading(9, full), reading(9, full)), true},
		{"levels changed", want(4, reading(9, full), reading(9, low)), false},
		{"quiet at the new level", want(4, reading(9, low), reading(9, low)), false},
	}
	var prevQuiet *netnsAnalysis
	for i, step := range steps {
		clock = clock.Add(interval)
		got := scrapeNetns(t, c)
		if !slices.Equal(got, step.want) {
			t.Errorf("scrape %d (%s):\n got %q\nwant %q", i, step.name, got, step.want)
		}
		st := c.state[hostOnlyInode]
		if reused := st.quiet != nil && st.quiet == prevQuiet; reused != step.quiet {
			t.Errorf("scrape %d (%s): kept analysis reused = %v, want %v", i, step.name, reused, step.quiet)
		}
		prevQuiet = st.quiet
	}
	if len(want(0, reading(5, full), reading(5, full))) == 0 {
		t.Fatal("no finding from the conntrack level: the quiet scrapes tested nothing")
	}
}

// TestKeptReading checks that a kept reading gives back the snapshot it
// was made from, is the same as it and not as one that differs in any
// part, and shares its layout with a reading of the same counters.
func TestKeptReading(t *testing.T) {
	base := func() *counters.Snapshot {
		return &counters.Snapshot{
			Time:        time.Unix(1000, 0),
			Netns:       "pod-a",
			Counters:    append([]counters.Counter{mib("Udp:NoPorts", 3), {Source: counters.NetlinkLinkStats, Object: "eth0", Field: "rx_dropped", Value: 7}}, conntrackLevel(10, 100)...),
			Unavailable: []counters.Unavailable{{Source: counters.NetlinkNftables, Reason: "no nftables"}},
			Sysctls:     map[string]string{"net.core.rmem_max": "212992"},
		}
	}
	l := newLayouts()
	k := keepReading(l, nil, base())
	if got := k.snapshot(); !reflect.DeepEqual(got, base()) {
		t.Errorf("snapshot() = %+v\nwant %+v", got, base())
	}
	if !k.same(base()) {
		t.Error("a kept reading is not the same as the reading it keeps")
	}
	tests := []struct {
		name   string
		change func(s *counters.Snapshot)
	}{
		{"a value", func(s *counters.Snapshot) { s.Counters[0].Value++ }},
		{"a gauge", func(s *counters.Snapshot) { s.Counters[2].Value++ }},
		{"an object", func(s *counters.Snapshot) { s.Counters[1].Object = "eth1" }},
		{"a stage", func(s *counters.Snapshot) { s.Counters[1].Stage = stage.RxRing }},
		{"a counter more", func(s *counters.Snapshot) { s.Add(mib("Udp:InErrors", 0)) }},
		{"a counter less", func(s *counters.Snapshot) { s.Counters = s.Counters[:3] }},
		{"a setting", func(s *counters.Snapshot) { s.Sysctls["net.core.rmem_max"] = "1" }},
		{"an unavailable source", func(s *counters.Snapshot) { s.Unavailable = nil }},
		{"a NIC", func(s *counters.Snapshot) { s.NICs = []counters.NIC{{Name: "eth0"}} }},
		{"a hook", func(s *counters.Snapshot) { s.Hooks = []counters.Hook{{Ifname: "eth0"}} }},
		{"the CPUs", func(s *counters.Snapshot) { s.CPUs = 4 }},
		{"a bridge port", func(s *counters.Snapshot) { s.BridgePorts = []counters.BridgePort{{Port: "veth0"}} }},
		{"the namespace", func(s *counters.Snapshot) { s.Netns = "pod-b" }},
	}
	for _, tt := range tests {
		s := base()
		tt.change(s)
		if k.same(s) {
			t.Errorf("%s changed: still the same", tt.name)
		}
	}
	other := base()
	other.Counters[0].Value, other.Netns = 42, "pod-b"
	if k2 := keepReading(l, nil, other); k2.layout != k.layout {
		t.Error("two readings of the same counters do not share a layout")
	}
	if k4 := keepReading(l, k, other); k4.layout != k.layout || k4.values[0] != 42 {
		t.Error("a reading of the last reading's counters does not keep its layout and its own values")
	}
	moved := base()
	moved.Counters[1].Object = "eth1"
	k3 := keepReading(l, nil, moved)
	if k3.layout == k.layout {
		t.Error("readings of different counters share a layout")
	}
	l.keep(func(yield func(*counterLayout) bool) { yield(k3.layout) })
	if n := len(l.by); n != 1 {
		t.Errorf("%d layouts kept, want the one in use", n)
	}
}

// TestKeptReadingEveryField fails when counters.Snapshot gains a field that
// keptReading does not keep: a namespace whose new field changed would
// pass for quiet, and diagnose would not see the field.
func TestKeptReadingEveryField(t *testing.T) {
	for _, f := range reflect.VisibleFields(reflect.TypeFor[counters.Snapshot]()) {
		if f.IsExported() && !slices.Contains(keptFields, f.Name) {
			t.Errorf("counters.Snapshot.%s is not kept by keptReading: keep it (keepReading, same, snapshot) and list it in keptFields", f.Name)
		}
	}
}

// hostOnlyInode is the namespace inode hostOnlyCollector reads.
const hostOnlyInode = 4026531840

// hostOnlyCollector is an --all-netns collector whose one namespace is the
// host's, read from src, at the time *clock says when it reads (the test
// moves it).
func hostOnlyCollector(src counters.Source, clock *time.Time) *netnsCollector {
	ns := &netnsmap.Namespace{Inode: hostOnlyInode, Self: true, Host: true}
	return newNetnsCollector(Options{
		Sources: []counters.Source{src},
		Discover: func(context.Context) (*netnsmap.Map, error) {
			return &netnsmap.Map{Namespaces: []*netnsmap.Namespace{ns}}, nil
		},
		Now: func() time.Time { return *clock },
	})
}
