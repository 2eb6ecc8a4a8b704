package counters

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestDevSNMP6 reads dev_snmp6 files copied from a 6.18 host (lo and
// eth0): each kept field must be the file's own line, per interface, with
// no stage (the namespace's snmp6 carries it).
func TestDevSNMP6(t *testing.T) {
	root := "testdata/devsnmp6"
	s := &Snapshot{}
	r := NewReading(FS{Proc: root, ProcNet: root, Sys: root})
	if err := (devSNMP6Source{}).Collect(context.Background(), r, s); err != nil {
		t.Fatal(err)
	}
	if len(s.Unavailable) != 0 {
		t.Errorf("unavailable: %v", s.Unavailable)
	}
	// The expected values, read from the files line by line.
	want := map[string]uint64{}
	for _, ifname := range []string{"eth0", "lo"} {
		f, err := os.Open(filepath.Join(root, "dev_snmp6", ifname))
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fl := strings.Fields(sc.Text())
			g, fd := splitSNMP6(fl[0])
			name := g + ":" + fd
			for _, keep := range devSNMP6Fields {
				if keep == name {
					v, _ := strconv.ParseUint(fl[1], 10, 64)
					want[ifname+" "+name] = v
				}
			}
		}
		f.Close()
	}
	got := map[string]uint64{}
	for _, c := range s.Counters {
		if c.Source != ProcNetDevSNMP6 || c.Stage != "" {
			t.Errorf("counter %+v: want source %s and no stage", c, ProcNetDevSNMP6)
		}
		got[c.Object+" "+c.Field] = c.Value
	}
	if len(want) != 2*len(devSNMP6Fields) {
		t.Errorf("the fixtures hold %d of the %d kept fields per interface", len(want)/2, len(devSNMP6Fields))
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("dev_snmp6 counters (-file +got):\n%s", d)
	}
	if got["lo Ip6:InReceives"] == 0 {
		t.Error("lo's Ip6:InReceives is 0 in the fixture: the test compares nothing")
	}

	// Without IPv6 there is no directory, and nothing to report.
	s = &Snapshot{}
	empty := t.TempDir()
	if err := (devSNMP6Source{}).Collect(context.Background(), NewReading(FS{Proc: empty, ProcNet: empty, Sys: empty}), s); err != nil || len(s.Counters)+len(s.Unavailable) != 0 {
		t.Errorf("no dev_snmp6: err %v, %d counters, unavailable %v", err, len(s.Counters), s.Unavailable)
	}
}
