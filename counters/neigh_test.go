package counters

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestNeighSource(t *testing.T) {
	tests := []struct {
		fixture     string
		want        map[string]uint64
		unavailable []SourceID
	}{
		{"linux-6.18", map[string]uint64{
			"arp_cache:entries": 2, "arp_cache:lookups": 8, "arp_cache:periodic_gc_runs": 32,
			"ndisc_cache:entries": 4, "ndisc_cache:res_failed": 1, "ndisc_cache:table_fulls": 0,
		}, nil},
		{"neigh-full", map[string]uint64{
			"arp_cache:entries": 1024, "arp_cache:table_fulls": 0x30, "arp_cache:forced_gc_runs": 0x60,
			"arp_cache:unresolved_discards": 8, "arp_cache:res_failed": 0x18,
		}, []SourceID{ProcNetStatNDiscCache}},
		{"broken", map[string]uint64{"arp_cache:table_fulls": 1, "arp_cache:res_failed": 1}, []SourceID{ProcNetStatARPCache, ProcNetStatNDiscCache}},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			s, err := collectOne(t, tt.fixture, NeighSource{})
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]uint64{}
			for _, c := range s.Counters {
				got[strings.TrimPrefix(string(c.Source), "/proc/net/stat/")+":"+c.Field] = c.Value
				if !c.HostWide {
					t.Errorf("%s is not marked host-wide", c.Field)
				}
			}
			if diff := cmp.Diff(tt.want, pick(got, tt.want)); diff != "" {
				t.Errorf("values (-want +got):\n%s", diff)
			}
			var srcs []SourceID
			for _, u := range s.Unavailable {
				srcs = append(srcs, u.Source)
			}
			if diff := cmp.Diff(tt.unavailable, srcs); diff != "" {
				t.Errorf("unavailable sources (-want +got):\n%s\n%v", diff, s.Unavailable)
			}
		})
	}
}

func TestNeighOtherNamespace(t *testing.T) {
	// Inside a non-initial namespace /proc/net/stat has no neighbour files.
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "proc", "net", "stat"), 0o755); err != nil {
		t.Fatal(err)
	}
	s := &Snapshot{}
	if err := (NeighSource{}).Collect(t.Context(), NewReading(NewFS(root)), s); err != nil {
		t.Fatal(err)
	}
	if len(s.Unavailable) != 1 || !strings.Contains(s.Unavailable[0].Reason, "initial network namespace") {
		t.Errorf("unavailable = %v", s.Unavailable)
	}
}

func FuzzParseNeighStat(f *testing.F) {
	seedFiles(f, "proc/net/stat/arp_cache")
	seedFiles(f, "proc/net/stat/ndisc_cache")
	f.Fuzz(func(t *testing.T, in string) {
		cs, _ := parseNeighStat(ProcNetStatARPCache, strings.NewReader(in))
		seen := map[string]bool{}
		for _, c := range cs {
			if seen[c.Field] {
				t.Fatalf("field %q twice", c.Field)
			}
			seen[c.Field] = true
		}
	})
}
