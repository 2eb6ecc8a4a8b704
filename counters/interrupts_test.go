package counters

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestInterruptsSource(t *testing.T) {
	tests := []struct {
		fixture string
		cpus    int
		irqs    map[string]uint64
		softirq map[string]uint64
		absent  []string
	}{
		{"linux-6.18", 2,
			map[string]uint64{"41 virtio3-rx cpu0": 2169, "42 virtio3-tx cpu1": 4537, "24 ACPI:Ged cpu0": 1},
			map[string]uint64{"cpu0 NET_RX": 1357, "cpu1 NET_RX": 1601, "cpu0 NET_TX": 4, "cpu1 NET_TX": 1},
			// Zero counts and the named per-CPU lines are left out.
			[]string{"41 virtio3-rx cpu1", "24 ACPI:Ged cpu1"}},
		{"irq-offline", 3,
			map[string]uint64{
				"0 timer cpu0": 46, "16 ehci_hcd:usb1, eth0 cpu0": 1200, "16 ehci_hcd:usb1, eth0 cpu3": 40,
				"11 arch_timer cpu3": 123456, "56 eth0-TxRx-0 cpu0": 900000, "56 eth0-TxRx-0 cpu1": 3,
				"57 eth0-TxRx-1 cpu1": 800000,
			},
			map[string]uint64{"cpu0 NET_RX": 901198, "cpu3 NET_RX": 800000, "cpu3 NET_TX": 9},
			[]string{"NMI cpu0", "cpu2 NET_RX"}},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			s, err := collectOne(t, tt.fixture, InterruptsSource{})
			if err != nil {
				t.Fatal(err)
			}
			irqs := values(s, ProcInterrupts)
			if diff := cmp.Diff(tt.irqs, pick(irqs, tt.irqs)); diff != "" {
				t.Errorf("interrupts (-want +got):\n%s", diff)
			}
			soft := values(s, ProcSoftirqs)
			if diff := cmp.Diff(tt.softirq, pick(soft, tt.softirq)); diff != "" {
				t.Errorf("softirqs (-want +got):\n%s", diff)
			}
			if len(soft) != 2*tt.cpus {
				t.Errorf("%d softirq counters, want NET_RX and NET_TX for %d CPUs", len(soft), tt.cpus)
			}
			for _, a := range tt.absent {
				if _, ok := irqs[a]; ok {
					t.Errorf("%s present", a)
				}
				if _, ok := soft[a]; ok {
					t.Errorf("%s present", a)
				}
			}
			for _, c := range s.Counters {
				if !c.HostWide || c.Value == 0 && c.Source == ProcInterrupts {
					t.Errorf("%s: HostWide %v value %d", c.Name(), c.HostWide, c.Value)
				}
			}
			if s.CPUs != tt.cpus {
				t.Errorf("CPUs = %d, want %d", s.CPUs, tt.cpus)
			}
		})
	}
}

func TestReadInterrupts(t *testing.T) {
	got, err := ReadInterrupts(fixture("irq-offline"))
	if err != nil {
		t.Fatal(err)
	}
	want := Interrupts{
		CPUs: []int{0, 1, 3},
		Lines: []Interrupt{
			{IRQ: "0", Number: 0, Counts: []uint64{46, 0, 0}, Desc: "IO-APIC   2-edge      timer", Name: "timer"},
			{IRQ: "16", Number: 16, Counts: []uint64{1200, 0, 40}, Desc: "IO-APIC  16-fasteoi   ehci_hcd:usb1, eth0", Name: "ehci_hcd:usb1, eth0"},
			{IRQ: "11", Number: 11, Counts: []uint64{0, 0, 123456}, Desc: "GICv3  27 Level     arch_timer", Name: "arch_timer"},
			{IRQ: "56", Number: 56, Counts: []uint64{900000, 3, 0}, Desc: "IR-PCI-MSI 1048576-edge      eth0-TxRx-0", Name: "eth0-TxRx-0"},
			{IRQ: "57", Number: 57, Counts: []uint64{0, 800000, 0}, Desc: "IR-PCI-MSI 1048577-edge      eth0-TxRx-1", Name: "eth0-TxRx-1"},
			{IRQ: "NMI", Number: -1, Counts: []uint64{1, 2, 3}, Desc: "Non-maskable interrupts"},
			{IRQ: "ERR", Number: -1, Counts: []uint64{0}},
			{IRQ: "MIS", Number: -1, Counts: []uint64{0}},
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ReadInterrupts (-want +got):\n%s", diff)
	}
}

func TestInterruptsBroken(t *testing.T) {
	s, err := collectOne(t, "broken", InterruptsSource{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]uint64{"24 ACPI:Ged cpu0": 1, "41 virtio3-rx cpu0": 1648}
	if diff := cmp.Diff(want, values(s, ProcInterrupts)); diff != "" {
		t.Errorf("interrupts (-want +got):\n%s", diff)
	}
	// softirqs: NET_TX short, NET_RX not a number: nothing network-related
	// survives, so the file's errors are what remains.
	if got := values(s, ProcSoftirqs); len(got) != 0 {
		t.Errorf("softirqs = %v", got)
	}
	ri := unavailable(s, ProcInterrupts)
	if len(ri) != 1 || !strings.Contains(ri[0], "line 3: IRQ 25") || !strings.Contains(ri[0], "line 4") {
		t.Errorf("interrupts unavailable = %q", ri)
	}
	rs := unavailable(s, ProcSoftirqs)
	if len(rs) != 1 || !strings.Contains(rs[0], string(ProcSoftirqs)) || !strings.Contains(rs[0], "NET_RX") {
		t.Errorf("softirqs unavailable = %q", rs)
	}
}

func FuzzParseInterrupts(f *testing.F) {
	seedFiles(f, "proc/interrupts")
	f.Fuzz(func(t *testing.T, in string) {
		tab, _ := parseInterrupts(strings.NewReader(in))
		for _, l := range tab.Lines {
			if len(l.Counts) == 0 || len(l.Counts) > len(tab.CPUs) {
				t.Fatalf("line %+v for %d CPUs", l, len(tab.CPUs))
			}
		}
		interruptCounters(tab)
	})
}

func FuzzParseSoftirqs(f *testing.F) {
	seedFiles(f, "proc/softirqs")
	f.Fuzz(func(t *testing.T, in string) {
		tab, _ := parseSoftirqs(strings.NewReader(in))
		for name, cs := range tab.Counts {
			if len(cs) != len(tab.CPUs) {
				t.Fatalf("%s: %d counts for %d CPUs", name, len(cs), len(tab.CPUs))
			}
		}
		softirqCounters(tab)
	})
}
