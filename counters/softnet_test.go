package counters

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSoftnetSource(t *testing.T) {
	tests := []struct {
		fixture string
		cpus    int
		want    map[string]uint64
		absent  []string
	}{
		{"linux-2.6.32", 2, map[string]uint64{
			"cpu0 processed": 123456, "cpu0 dropped": 3, "cpu0 time_squeeze": 42, "cpu0 cpu_collision": 5,
			"cpu1 processed": 16,
		}, []string{"cpu0 received_rps", "cpu0 flow_limit_count", "cpu0 backlog_len"}},
		{"linux-3.10", 2, map[string]uint64{
			"cpu0 received_rps": 7, "cpu1 processed": 0xffffffff, "cpu0 cpu_collision": 0,
		}, []string{"cpu0 flow_limit_count"}},
		{"linux-4.19", 2, map[string]uint64{
			"cpu0 dropped": 9, "cpu0 flow_limit_count": 4, "cpu0 received_rps": 7,
		}, []string{"cpu0 backlog_len", "cpu0 input_qlen"}},
		{"linux-5.10", 3, map[string]uint64{
			// Column 13 names the CPU: the third line is cpu3 (cpu2 offline).
			"cpu0 backlog_len": 2, "cpu1 processed": 16, "cpu3 processed": 32, "cpu3 dropped": 1,
		}, []string{"cpu2 processed", "cpu0 cpu_collision", "cpu0 input_qlen"}},
		{"linux-6.18", 2, map[string]uint64{
			"cpu0 processed": 0x12, "cpu1 processed": 0x844, "cpu0 input_qlen": 0, "cpu1 process_qlen": 0,
		}, []string{"cpu0 cpu_collision"}},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			s, err := collectOne(t, tt.fixture, SoftnetSource{})
			if err != nil {
				t.Fatal(err)
			}
			got := values(s, ProcNetSoftnetStat)
			if diff := cmp.Diff(tt.want, pick(got, tt.want)); diff != "" {
				t.Errorf("values (-want +got):\n%s", diff)
			}
			for _, a := range tt.absent {
				if _, ok := got[a]; ok {
					t.Errorf("%s present, the layout has no such column", a)
				}
			}
			if s.CPUs != tt.cpus {
				t.Errorf("CPUs = %d, want %d", s.CPUs, tt.cpus)
			}
			for _, c := range s.Counters {
				if !c.HostWide || c.Bits != 32 {
					t.Errorf("%s: HostWide %v Bits %d, want true 32", c.Name(), c.HostWide, c.Bits)
				}
				wantGauge := strings.HasSuffix(c.Field, "_len") || strings.HasSuffix(c.Field, "_qlen")
				if c.Gauge != wantGauge {
					t.Errorf("%s: Gauge %v", c.Name(), c.Gauge)
				}
			}
		})
	}
}

func TestSoftnetWrap(t *testing.T) {
	// A 32-bit column that wrapped between two reads still gives the
	// number of drops in between.
	a := &Snapshot{Counters: softnetCounters([]softnetCPU{{CPU: 0, Columns: 15, Dropped: 0xfffffff0}})}
	b := &Snapshot{Counters: softnetCounters([]softnetCPU{{CPU: 0, Columns: 15, Dropped: 0x10}})}
	d := Delta(a, b)
	if v, _ := d.Value(ProcNetSoftnetStat, "cpu0", "dropped"); v != 0x20 {
		t.Errorf("wrapped delta = %d, want 32", v)
	}
}

func TestSoftnetBroken(t *testing.T) {
	s, err := collectOne(t, "broken", SoftnetSource{})
	if err != nil {
		t.Fatalf("good lines must be kept: %v", err)
	}
	got := values(s, ProcNetSoftnetStat)
	want := map[string]uint64{"cpu0 processed": 0x1e240, "cpu3 processed": 0x20, "cpu3 process_qlen": 2}
	if diff := cmp.Diff(want, pick(got, want)); diff != "" {
		t.Errorf("values (-want +got):\n%s", diff)
	}
	if len(got) != 16 {
		t.Errorf("%d counters, want 8 for each of the 2 good lines", len(got))
	}
	rs := unavailable(s, ProcNetSoftnetStat)
	if len(rs) != 1 || !strings.Contains(rs[0], "line 2") || !strings.Contains(rs[0], "line 3") || !strings.Contains(rs[0], string(ProcNetSoftnetStat)) {
		t.Errorf("unavailable = %q, want one reason naming the file, lines 2 and 3", rs)
	}
}

func TestParseSoftnetErrors(t *testing.T) {
	for _, in := range []string{
		"00000001 00000002\n",
		strings.Repeat("100000000 ", 9) + "\n",
		strings.Repeat("0000000g ", 15) + "\n",
	} {
		_, err := parseSoftnet(strings.NewReader(in))
		if err == nil {
			t.Errorf("parseSoftnet(%q): no error", in)
		}
	}
}

func FuzzParseSoftnet(f *testing.F) {
	seedFiles(f, "proc/net/softnet_stat")
	f.Fuzz(func(t *testing.T, in string) {
		rows, _ := parseSoftnet(strings.NewReader(in))
		for _, r := range rows {
			if r.Columns < 9 || r.Processed > 0xffffffff {
				t.Fatalf("impossible row %+v", r)
			}
		}
	})
}
