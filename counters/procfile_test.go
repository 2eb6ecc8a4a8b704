package counters

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/netdrop/netdrop/stage"
)

// fixture returns an FS over testdata/<name>.
func fixture(name string) FS { return NewFS(filepath.Join("testdata", name)) }

// collectOne runs one source over a fixture tree.
func collectOne(t *testing.T, fixtureName string, src Source) (*Snapshot, error) {
	t.Helper()
	s := &Snapshot{Sysctls: map[string]string{}}
	err := src.Collect(context.Background(), NewReading(fixture(fixtureName)), s)
	return s, err
}

// values maps Name() to Value for the counters of one source.
func values(s *Snapshot, source SourceID) map[string]uint64 {
	out := map[string]uint64{}
	for _, c := range s.Counters {
		if c.Source == source {
			out[c.Name()] = c.Value
		}
	}
	return out
}

// pick keeps the keys of want that are present in got, so a test can state
// the values it cares about and cmp.Diff shows missing ones too.
func pick(got map[string]uint64, want map[string]uint64) map[string]uint64 {
	out := map[string]uint64{}
	for k := range want {
		if v, ok := got[k]; ok {
			out[k] = v
		}
	}
	return out
}

// unavailable returns the reasons recorded for source.
func unavailable(s *Snapshot, source SourceID) []string {
	var out []string
	for _, u := range s.Unavailable {
		if u.Source == source {
			out = append(out, u.Reason)
		}
	}
	return out
}

// seedFiles adds every fixture file with the given base name as a fuzz seed.
func seedFiles(f *testing.F, rel string) {
	f.Helper()
	paths, _ := filepath.Glob(filepath.Join("testdata", "*", rel))
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
}

func TestParsePerCPUStat(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    perCPUStat
		wantErr bool
	}{
		{
			name: "two cpus",
			in:   "entries  a b\n00000002 00000001 0000000a\n00000002 00000003 00000001\n",
			want: perCPUStat{Names: []string{"entries", "a", "b"}, Rows: [][]uint64{{2, 1, 10}, {2, 3, 1}}},
		},
		{
			name:    "short row skipped, next kept",
			in:      "entries a b\n00000002 00000001\n00000002 00000003 00000001\n",
			want:    perCPUStat{Names: []string{"entries", "a", "b"}, Rows: [][]uint64{{2, 3, 1}}},
			wantErr: true,
		},
		{
			name:    "not hex",
			in:      "entries a\n00000002 0000zz01\n00000001 00000002\n",
			want:    perCPUStat{Names: []string{"entries", "a"}, Rows: [][]uint64{{1, 2}}},
			wantErr: true,
		},
		{
			name:    "no header",
			in:      "00000002 00000001\n",
			wantErr: true,
		},
		{
			name:    "empty",
			in:      "",
			wantErr: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parsePerCPUStat(strings.NewReader(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, ErrFileParse) {
				t.Errorf("error %q does not wrap ErrFileParse", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("parsePerCPUStat (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPerCPUStatSums(t *testing.T) {
	tab := perCPUStat{Names: []string{"entries", "drop"}, Rows: [][]uint64{{28229, 3}, {28229, 4}}}
	want := map[string]uint64{"entries": 28229, "drop": 7}
	if diff := cmp.Diff(want, tab.sums("entries")); diff != "" {
		t.Errorf("sums (-want +got):\n%s", diff)
	}
}

func TestCatalog(t *testing.T) {
	tests := []struct {
		source SourceID
		field  string
		want   FieldInfo
	}{
		{ProcNetSNMP, "Udp:RcvbufErrors", FieldInfo{Stage: "socket-rcvbuf", IncludedIn: "Udp:InErrors", Unit: Drops}},
		{ProcNetSNMP, "Udp:InErrors", FieldInfo{Unit: Events}},
		{ProcNetNetstat, "IpExt:InCsumErrors", FieldInfo{Stage: "ip", IncludedIn: "Ip:InHdrErrors", Unit: Drops}},
		{ProcNetSNMP, "Tcp:CurrEstab", FieldInfo{Gauge: true, Unit: Level}},
		{ProcNetSNMP6, "Ip6:ReasmTimeout", FieldInfo{Stage: "ip", IncludedIn: "Ip6:ReasmFails", Unit: Drops}},
		{ProcNetStatConntrack, "entries", FieldInfo{Stage: "conntrack", Gauge: true, Unit: Level}},
		{ProcNetStatARPCache, "entries", FieldInfo{Stage: "neighbor", Gauge: true, Unit: Level}},
		{ProcNetStatConntrack, "insert_failed", FieldInfo{Stage: "conntrack", Unit: Drops}},
		{ProcNetStatConntrack, "early_drop", FieldInfo{Stage: "conntrack", Unit: Events}},
		{ProcNetStatNDiscCache, "table_fulls", FieldInfo{Stage: "neighbor", Unit: Events}},
		{ProcNetStatARPCache, "res_failed", FieldInfo{Stage: "neighbor", Unit: Events}},
		{ProcNetStatARPCache, "unresolved_discards", FieldInfo{Stage: "neighbor", Unit: Drops}},
		{ProcNetNetstat, "TcpExt:TCPToZeroWindowAdv", FieldInfo{Stage: "socket-rcvbuf", Unit: NearDrops}},
		{ProcNetNetstat, "TcpExt:RcvPruned", FieldInfo{Stage: "socket-rcvbuf", Unit: Events}},
		{ProcNetNetstat, "TcpExt:TCPOFODrop", FieldInfo{Stage: "socket-rcvbuf", Unit: Drops}},
		{ProcNetUDP6, "drops", FieldInfo{Stage: "socket-rcvbuf", Unit: Drops}},
		{NetlinkQdisc, "drops", FieldInfo{Stage: "qdisc", Unit: Drops}},
		{NetlinkQdisc, "requeues", FieldInfo{Stage: "qdisc", Unit: Events}},
		{ProcNetSoftnetStat, "flow_limit_count", FieldInfo{Stage: "softirq", IncludedIn: "dropped", Unit: Drops}},
		{ProcNetSoftnetStat, "time_squeeze", FieldInfo{Stage: "softirq", Unit: NearDrops}},
		{ProcInterrupts, "cpu12", FieldInfo{Unit: Events}},
	}
	for _, tt := range tests {
		got, ok := LookupCounter(tt.source, tt.field)
		if !ok || got.Meaning == "" {
			t.Errorf("%s %s: not in the catalog", tt.source, tt.field)
		}
		got.Meaning = ""
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("%s %s (-want +got):\n%s", tt.source, tt.field, diff)
		}
	}
	if _, _, ok := Describe("NoSuchCounter"); ok {
		t.Error("Describe knows a field that does not exist")
	}
	if st, m, ok := Describe("TcpExt:ListenOverflows"); !ok || st != "tcp-listen" || !strings.Contains(m, "accept queue") {
		t.Errorf("Describe(TcpExt:ListenOverflows) = %q, %q, %v", st, m, ok)
	}
}

// TestCatalogConsistent checks the catalog against itself: stages exist,
// and a counter is only included in a counter the catalog knows.
func TestCatalogConsistent(t *testing.T) {
	check := func(name string, fi FieldInfo) {
		if fi.Stage != "" && !stage.Valid(fi.Stage) {
			t.Errorf("%s: unknown stage %q", name, fi.Stage)
		}
		if fi.IncludedIn != "" {
			if _, ok := catalog()[fi.IncludedIn]; !ok {
				t.Errorf("%s: included in unknown %s", name, fi.IncludedIn)
			}
		}
		if fi.Meaning == "" {
			t.Errorf("%s: no meaning", name)
		}
		// Every entry has a unit, and only gauges are levels.
		if fi.Unit < Drops || fi.Unit > Level {
			t.Errorf("%s: no unit", name)
		}
		if fi.Gauge != (fi.Unit == Level) {
			t.Errorf("%s: gauge %v but unit %s", name, fi.Gauge, fi.Unit)
		}
	}
	for name, fi := range catalog() {
		check(name, fi)
	}
	for src, m := range bySource() {
		for name, fi := range m {
			check(string(src)+" "+name, fi)
		}
	}
}
