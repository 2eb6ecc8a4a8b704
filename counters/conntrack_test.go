package counters

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/netdrop/netdrop/stage"
)

func TestConntrackSource(t *testing.T) {
	tests := []struct {
		fixture string
		want    map[string]uint64
		absent  []string
	}{
		{"linux-2.6.32", map[string]uint64{
			// 16 columns with "searched" and "delete_list".
			"entries": 100, "searched": 0x3e8 + 0x100,
			"delete_list": 0x60, "drop": 5, "insert_failed": 1,
			"expect_delete": 0,
		}, []string{"search_restart", "clashres", "chainlength"}},
		{"linux-5.4", map[string]uint64{
			"entries": 28229, "insert_failed": 11,
			"invalid": 8, "search_restart": 3,
		}, []string{"clashres"}},
		{"conntrack-full", map[string]uint64{
			// entries is the table size on every line: 28229, not 2×28229.
			"entries": 28229, "drop": 285448, "early_drop": 4186,
			"clashres": 4, "chainlength": 1, "insert_failed": 3,
			"nf_conntrack_count": 28229, "nf_conntrack_max": 1000,
		}, []string{"searched"}},
		{"linux-6.18", map[string]uint64{
			"drop": 0, "nf_conntrack_count": 0, "nf_conntrack_max": 262144,
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			s, err := collectOne(t, tt.fixture, ConntrackSource{})
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]uint64{}
			for _, c := range s.Counters {
				got[c.Field] = c.Value
			}
			if diff := cmp.Diff(tt.want, pick(got, tt.want)); diff != "" {
				t.Errorf("values (-want +got):\n%s", diff)
			}
			for _, a := range tt.absent {
				if _, ok := got[a]; ok {
					t.Errorf("%s present, the header has no such column", a)
				}
			}
			for _, c := range s.Counters {
				switch c.Field {
				case "entries", "nf_conntrack_count", "nf_conntrack_max":
					if !c.Gauge {
						t.Errorf("%s must be a gauge", c.Field)
					}
				case "drop", "insert_failed", "early_drop":
					if c.Stage != stage.Conntrack || c.Gauge {
						t.Errorf("%s: stage %q gauge %v", c.Field, c.Stage, c.Gauge)
					}
				}
			}
		})
	}
}

func TestConntrackNotLoaded(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "proc", "net", "stat"), 0o755); err != nil {
		t.Fatal(err)
	}
	s := &Snapshot{}
	if err := (ConntrackSource{}).Collect(t.Context(), NewReading(NewFS(root)), s); err != nil {
		t.Fatalf("a missing module is not an error: %v", err)
	}
	if len(s.Counters) != 0 || len(s.Unavailable) != 1 || !strings.Contains(s.Unavailable[0].Reason, "conntrack is not loaded") {
		t.Errorf("counters %v unavailable %v, want one line saying conntrack is not loaded", s.Counters, s.Unavailable)
	}
}

func TestConntrackNoProcfs(t *testing.T) {
	s, err := collectOne(t, "conntrack-noprocfs", ConntrackSource{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]uint64{"nf_conntrack_count": 12, "nf_conntrack_max": 262144}
	got := map[string]uint64{}
	for _, c := range s.Counters {
		got[c.Field] = c.Value
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("values (-want +got):\n%s", diff)
	}
	if rs := unavailable(s, ProcNetStatConntrack); len(rs) != 1 || !strings.Contains(rs[0], "CONFIG_NF_CONNTRACK_PROCFS") {
		t.Errorf("unavailable = %q", rs)
	}
}

func TestConntrackBroken(t *testing.T) {
	s, err := collectOne(t, "broken", ConntrackSource{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]uint64{}
	for _, c := range s.Counters {
		got[c.Field] = c.Value
	}
	// The short first CPU line is lost, the second kept; the count file
	// is not a number, max is.
	want := map[string]uint64{"drop": 6, "invalid": 2, "nf_conntrack_max": 65536}
	if diff := cmp.Diff(want, pick(got, want)); diff != "" {
		t.Errorf("values (-want +got):\n%s", diff)
	}
	if _, ok := got["nf_conntrack_count"]; ok {
		t.Error("nf_conntrack_count read from a file that holds no number")
	}
	stat := unavailable(s, ProcNetStatConntrack)
	if len(stat) != 1 || !strings.Contains(stat[0], "line 2") {
		t.Errorf("stat unavailable = %q", stat)
	}
	count := unavailable(s, ProcSysConntrackCount)
	if len(count) != 1 || !strings.Contains(count[0], string(ProcSysConntrackCount)) || !strings.Contains(count[0], ErrFileParse.Error()) {
		t.Errorf("count unavailable = %q", count)
	}
}

func FuzzParseConntrackStat(f *testing.F) {
	seedFiles(f, "proc/net/stat/nf_conntrack")
	f.Fuzz(func(t *testing.T, in string) {
		cs, err := parseConntrackStat(strings.NewReader(in))
		if err == nil && len(cs) == 0 {
			t.Fatalf("no counters and no error from %q", in)
		}
		for _, c := range cs {
			if !strings.HasPrefix(c.Field, "") {
				t.Fatalf("field %q", c.Field)
			}
		}
	})
}
