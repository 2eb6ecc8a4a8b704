package counters

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestCPUStatSource(t *testing.T) {
	tests := []struct {
		fixture string
		want    map[string]uint64
		cpus    int
		errs    bool
	}{
		{"linux-6.18", map[string]uint64{
			"cpu0 softirq": 5, "cpu0 irq": 0, "cpu0 idle": 43710 + 24, "cpu0 total": 4942 + 1669 + 43710 + 24 + 5 + 4,
			"cpu1 softirq": 28, "cpu1 total": 5521 + 2268 + 42206 + 320 + 28 + 9,
		}, 2, false},
		// 2.6.32: nine columns (guest, no guest_nice); guest is not added
		// to the total, it is already in user.
		{"linux-2.6.32", map[string]uint64{
			"cpu0 softirq": 2, "cpu0 irq": 1, "cpu0 idle": 50 + 1, "cpu0 total": 5 + 5 + 50 + 1 + 1 + 2, "cpu1 total": 62,
		}, 2, false},
		{"broken", map[string]uint64{
			"cpu0 softirq": 3, "cpu3 softirq": 90, "cpu3 irq": 10, "cpu3 total": 1100,
		}, 2, true},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			s, err := collectOne(t, tt.fixture, CPUStatSource{})
			if err != nil {
				t.Fatal(err)
			}
			got := values(s, ProcStat)
			if diff := cmp.Diff(tt.want, pick(got, tt.want)); diff != "" {
				t.Errorf("values (-want +got):\n%s", diff)
			}
			if len(got) != 4*tt.cpus {
				t.Errorf("%d counters for %d CPUs", len(got), tt.cpus)
			}
			rs := unavailable(s, ProcStat)
			if (len(rs) > 0) != tt.errs {
				t.Errorf("unavailable = %q", rs)
			}
			if tt.errs {
				for _, part := range []string{"line 3: cpu1", "line 4: cpu2: column 6", "line 5"} {
					if !strings.Contains(rs[0], part) {
						t.Errorf("reason %q lacks %q", rs[0], part)
					}
				}
			}
		})
	}
}

func TestParseCPUStatOldLayout(t *testing.T) {
	// 2.6.9: seven columns, up to softirq.
	got, err := parseCPUStat(strings.NewReader("cpu 2 0 2 10 0 0 2\ncpu0 1 0 1 5 0 0 1\n"))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]cpuTime{{CPU: "cpu0", Softirq: 1, Idle: 5, Total: 8}}, got); diff != "" {
		t.Errorf("parseCPUStat (-want +got):\n%s", diff)
	}
}

func FuzzParseCPUStat(f *testing.F) {
	seedFiles(f, "proc/stat")
	f.Fuzz(func(t *testing.T, in string) {
		ts, _ := parseCPUStat(strings.NewReader(in))
		for _, c := range ts {
			if !strings.HasPrefix(c.CPU, "cpu") || len(c.CPU) < 4 {
				t.Fatalf("object %q is not cpuN", c.CPU)
			}
		}
	})
}
