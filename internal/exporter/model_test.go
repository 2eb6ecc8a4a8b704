package exporter

import (
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/netdrop/netdrop/counters"
)

// TestOneUnitPerFamily: the generic families hold one counters.Unit each,
// CPU time never lands in a packet family, and no level (gauge) ends up in
// a counter family. Every counter of the fixture trees is placed.
func TestOneUnitPerFamily(t *testing.T) {
	m := newModel()
	snap := counters.Collect(t.Context(), counters.Options{FS: counters.NewFS("testdata/later"), Sources: fixtureSources()})
	if len(snap.Counters) < 500 {
		t.Fatalf("fixture snapshot has %d counters; the trees or sources are broken", len(snap.Counters))
	}
	units := map[string]map[counters.Unit]bool{}
	placed := 0
	for _, k := range snap.Counters {
		p, ok := m.place(k)
		if !ok {
			if !k.Gauge && !(k.Source == counters.ProcStat) {
				t.Errorf("counter %s %s %s left out; only levels and /proc/stat's idle and total may be", k.Source, k.Object, k.Field)
			}
			continue
		}
		placed++
		name := p.fam.desc.String()
		if k.Gauge != (p.fam.typ.ToDTO().String() == "GAUGE") {
			t.Errorf("%s %s %s (gauge %v) placed in %s", k.Source, k.Object, k.Field, k.Gauge, name)
		}
		if units[name] == nil {
			units[name] = map[counters.Unit]bool{}
		}
		units[name][k.Unit()] = true
		if k.Source == counters.ProcStat && !strings.Contains(name, "cpu_seconds_total") {
			t.Errorf("CPU time %s %s placed in %s", k.Object, k.Field, name)
		}
	}
	for _, g := range []string{famKernelDrops, famKernelEvents, famKernelNearDrops} {
		if n := len(units[m.fams[g].desc.String()]); n != 1 {
			t.Errorf("%s holds %d units, want 1", g, n)
		}
	}
	if placed == 0 {
		t.Fatal("nothing placed")
	}
}

// TestEveryFamilyDescribed: every family name is a valid, promtool-style
// snake_case name with _total exactly on counters.
func TestEveryFamilyDescribed(t *testing.T) {
	valid := regexp.MustCompile(`^netdrop_[a-zA-Z0-9_]+$`)
	camel := regexp.MustCompile(`[a-z][A-Z]`)
	for name, f := range newModel().fams {
		full := namespace + "_" + name
		if !valid.MatchString(full) || camel.MatchString(full) {
			t.Errorf("family %s: not a snake_case metric name", full)
		}
		counter := f.typ.ToDTO().String() == "COUNTER"
		if counter != strings.HasSuffix(full, "_total") {
			t.Errorf("family %s: counter %v but _total suffix %v", full, counter, !counter)
		}
	}
}

// TestFiltersAndSeriesCap: --exclude-interfaces and --include-irqs remove
// exactly the series they name, and --max-series cuts the per-object series
// and counts what it cut, scrape after scrape.
func TestFiltersAndSeriesCap(t *testing.T) {
	base := Options{FS: counters.NewFS("testdata/later"), Sources: fixtureSources(), NoSockets: true}
	scrape := func(o Options) string {
		reg, _, err := NewRegistry(o)
		if err != nil {
			t.Fatal(err)
		}
		return scrapeText(t, Handler(reg, o))
	}
	count := func(text, prefix string) int {
		n := 0
		for _, l := range strings.Split(text, "\n") {
			if strings.HasPrefix(l, prefix) {
				n++
			}
		}
		return n
	}
	all := scrape(base)
	if count(all, `netdrop_network_receive_packets_total{device="lo"`) != 1 || count(all, `netdrop_network_receive_packets_total{device="eth0"`) != 1 {
		t.Fatalf("fixture lacks lo or eth0:\n%s", all)
	}

	o := base
	o.Interfaces.Exclude = regexp.MustCompile(`^lo$`)
	o.IRQs.Include = regexp.MustCompile(`virtio3-`)
	got := scrape(o)
	if n := count(got, `netdrop_network_receive_packets_total{device="lo"`); n != 0 {
		t.Errorf("excluded lo still has %d series", n)
	}
	if n := count(got, `netdrop_qdisc_drops_total{device="lo"`); n != 0 {
		t.Errorf("excluded lo still has %d qdisc series", n)
	}
	if n := count(got, `netdrop_network_receive_packets_total{device="eth0"`); n != 1 {
		t.Errorf("eth0: %d series, want 1", n)
	}
	var irqs []string
	for _, l := range strings.Split(got, "\n") {
		if m := regexp.MustCompile(`^netdrop_interrupts_total\{devices="([^"]+)"`).FindStringSubmatch(l); m != nil {
			irqs = append(irqs, m[1])
		}
	}
	if diff := cmp.Diff([]string{"virtio3-event", "virtio3-rx", "virtio3-tx"}, irqs); diff != "" {
		t.Errorf("IRQs kept by --include-irqs virtio3- (-want +got):\n%s", diff)
	}
	// The diagnosis still sees every interface: the stage totals are
	// the same with and without the filters.
	if a, b := count(all, "netdrop_stage_drops_total"), count(got, "netdrop_stage_drops_total"); a != b || a == 0 {
		t.Errorf("stage totals: %d series unfiltered, %d filtered", a, b)
	}

	// The cap: count the kernel series the counters collector serves
	// unbounded, then allow ten fewer.
	kernel := 0
	for _, l := range strings.Split(all, "\n") {
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		name := l[:strings.IndexAny(l, "{ ")]
		if _, ok := newModel().fams[strings.TrimPrefix(name, namespace+"_")]; ok {
			kernel++
		}
	}
	o = base
	o.MaxSeries = kernel - 10
	reg, _, _ := NewRegistry(o)
	h := Handler(reg, o)
	first := scrapeText(t, h)
	if got := sample(t, first, "netdrop_exporter_series_dropped_total"); got != "10" {
		t.Errorf("series dropped after one scrape = %s, want 10", got)
	}
	second := scrapeText(t, h)
	if got := sample(t, second, "netdrop_exporter_series_dropped_total"); got != "20" {
		t.Errorf("series dropped after two scrapes = %s, want 20", got)
	}
	// Namespace-wide series survive the cut; per-object ones go.
	if count(second, `netdrop_kernel_drops_total{field="Udp:RcvbufErrors"`) != 1 {
		t.Error("the cap cut a namespace-wide series")
	}
	if sample(t, all, "netdrop_exporter_series_dropped_total") != "0" {
		t.Error("no cap reached, yet series dropped")
	}
}
