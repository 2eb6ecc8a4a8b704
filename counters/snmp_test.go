package counters

import (
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/netdrop/netdrop/stage"
)

func TestSNMPSource(t *testing.T) {
	tests := []struct {
		fixture string
		source  SourceID
		want    map[string]uint64
	}{
		{"linux-6.18", ProcNetSNMP, map[string]uint64{
			"Ip:Forwarding": 2, "Udp:RcvbufErrors": 198, "Udp:InErrors": 198, "Udp:MemErrors": 0,
			"Tcp:MaxConn": 1<<64 - 1, "IcmpMsg:InType3": 1, "Ip:OutTransmits": 1976,
		}},
		{"linux-6.18", ProcNetNetstat, map[string]uint64{
			"TcpExt:ListenOverflows": 0, "TcpExt:TCPZeroWindowDrop": 0, "IpExt:InCsumErrors": 0,
			"MPTcpExt:MPCurrEstab": 0,
		}},
		{"linux-6.18", ProcNetSNMP6, map[string]uint64{
			"Ip6:InReceives": 51, "Udp6:RcvbufErrors": 48, "Icmp6:OutType135": 4, "UdpLite6:MemErrors": 0,
		}},
		{"linux-4.19", ProcNetSNMP, map[string]uint64{"Udp:RcvbufErrors": 198, "Udp:InErrors": 198}},
		{"linux-4.19", ProcNetNetstat, map[string]uint64{"TcpExt:ListenOverflows": 0, "IpExt:InNoRoutes": 0}},
	}
	for _, tt := range tests {
		t.Run(tt.fixture+string(tt.source), func(t *testing.T) {
			s, err := collectOne(t, tt.fixture, SNMPSource{})
			if err != nil {
				t.Fatal(err)
			}
			got := values(s, tt.source)
			if diff := cmp.Diff(tt.want, pick(got, tt.want)); diff != "" {
				t.Errorf("values (-want +got):\n%s", diff)
			}
			// Every field of the file is read, counted independently.
			if n := fieldCount(t, tt.fixture, tt.source); len(got) != n {
				t.Errorf("%d counters, the file has %d fields", len(got), n)
			}
		})
	}
}

// fieldCount counts the fields of a fixture independently of the parser:
// every other line's words minus the group for snmp/netstat, lines for snmp6.
func fieldCount(t *testing.T, fixture string, source SourceID) int {
	t.Helper()
	b, err := os.ReadFile("testdata/" + fixture + string(source))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if source == ProcNetSNMP6 {
		return len(lines)
	}
	n := 0
	for i := 1; i < len(lines); i += 2 {
		n += len(strings.Fields(lines[i])) - 1
	}
	return n
}

func TestSNMPStagesAndGauges(t *testing.T) {
	s, err := collectOne(t, "linux-6.18", SNMPSource{})
	if err != nil {
		t.Fatal(err)
	}
	type sg struct {
		Stage stage.ID
		Gauge bool
	}
	want := map[string]sg{
		"Udp:RcvbufErrors":       {stage.SocketRcvbuf, false},
		"Udp:InErrors":           {"", false},
		"Udp:NoPorts":            {stage.NoSocket, false},
		"Tcp:RetransSegs":        {"", false},
		"TcpExt:TCPSynRetrans":   {"", false},
		"TcpExt:TCPTimeouts":     {"", false},
		"IpExt:InCsumErrors":     {stage.IP, false},
		"TcpExt:ListenOverflows": {stage.TCPListen, false},
		"Tcp:CurrEstab":          {"", true},
		"Tcp:MaxConn":            {"", true},
		"Udp6:RcvbufErrors":      {stage.SocketRcvbuf, false},
		"TcpExt:TCPBacklogDrop":  {stage.SocketRcvbuf, false},
	}
	got := map[string]sg{}
	for _, c := range s.Counters {
		if _, ok := want[c.Field]; ok {
			got[c.Field] = sg{c.Stage, c.Gauge}
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("stage and gauge (-want +got):\n%s", diff)
	}
}

func TestSNMPBroken(t *testing.T) {
	s, err := collectOne(t, "broken", SNMPSource{})
	if err != nil {
		t.Fatalf("partial files must not fail the source: %v", err)
	}
	want := map[string]uint64{
		// Ip kept; Icmp lost (1 value for 2 names); Tcp keeps the two
		// numeric fields; Udp kept; UdpLite has no value line.
		"Ip:Forwarding": 1, "Ip:DefaultTTL": 64, "Ip:InReceives": 100,
		"Tcp:ActiveOpens": 3, "Tcp:CurrEstab": 2,
		"Udp:InDatagrams": 10, "Udp:NoPorts": 4, "Udp:RcvbufErrors": 2,
	}
	if diff := cmp.Diff(want, values(s, ProcNetSNMP)); diff != "" {
		t.Errorf("snmp (-want +got):\n%s", diff)
	}
	// netstat: TcpExt's value line is cut short, IpExt after it survives.
	ns := values(s, ProcNetNetstat)
	if _, ok := ns["TcpExt:ListenOverflows"]; ok {
		t.Errorf("TcpExt values of a short line must not be matched to names")
	}
	if len(ns) != 18 {
		t.Errorf("netstat: %d counters, want the 18 of IpExt: %v", len(ns), ns)
	}
	want6 := map[string]uint64{"Ip6:InReceives": 12, "Udp6:RcvbufErrors": 7}
	if diff := cmp.Diff(want6, values(s, ProcNetSNMP6)); diff != "" {
		t.Errorf("snmp6 (-want +got):\n%s", diff)
	}
	for _, src := range []SourceID{ProcNetSNMP, ProcNetNetstat, ProcNetSNMP6} {
		rs := unavailable(s, src)
		if len(rs) != 1 {
			t.Errorf("%s: want one unavailable entry, got %q", src, rs)
			continue
		}
		if !strings.Contains(rs[0], string(src)) || !strings.Contains(rs[0], ErrFileParse.Error()) {
			t.Errorf("%s: reason %q does not name the file and the parse error", src, rs[0])
		}
	}
	for _, r := range unavailable(s, ProcNetSNMP) {
		for _, part := range []string{"line 4: Icmp", "line 6: Tcp:InErrs", "line 9: UdpLite"} {
			if !strings.Contains(r, part) {
				t.Errorf("snmp reason %q lacks %q", r, part)
			}
		}
	}
}

func TestSNMPMissing(t *testing.T) {
	// A tree without /proc/net: nothing readable, the source fails as a
	// whole with a not-exist error.
	s := &Snapshot{}
	err := SNMPSource{}.Collect(t.Context(), NewReading(NewFS(t.TempDir())), s)
	if err == nil || !strings.Contains(Reason(err), "not present") {
		t.Errorf("err = %v, want not present", err)
	}
}

func TestParseSNMPErrors(t *testing.T) {
	tests := []struct {
		name, in string
		want     []snmpValue
		errs     int
	}{
		{"ok", "A: x y\nA: 1 -1\n", []snmpValue{{"A", "x", 1}, {"A", "y", 1<<64 - 1}}, 0},
		{"no prefix", "A x y\nB: z\nB: 3\n", []snmpValue{{"B", "z", 3}}, 1},
		{"header then other header", "A: x\nB: z\nB: 3\n", []snmpValue{{"B", "z", 3}}, 1},
		{"too many values", "A: x\nA: 1 2\nB: z\nB: 3\n", []snmpValue{{"B", "z", 3}}, 1},
		{"blank lines", "\nA: x\n\nA: 5\n\n", []snmpValue{{"A", "x", 5}}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseSNMP(strings.NewReader(tt.in))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("parseSNMP (-want +got):\n%s", diff)
			}
			if n := countErrs(err); n != tt.errs {
				t.Errorf("%d errors (%v), want %d", n, err, tt.errs)
			}
		})
	}
}

// countErrs counts the errors joined in err.
func countErrs(err error) int {
	if err == nil {
		return 0
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		n := 0
		for _, e := range j.Unwrap() {
			n += countErrs(e)
		}
		return n
	}
	return 1
}

func TestSplitSNMP6(t *testing.T) {
	for in, want := range map[string][2]string{
		"Ip6InReceives":       {"Ip6", "InReceives"},
		"Icmp6OutType135":     {"Icmp6", "OutType135"},
		"UdpLite6InDatagrams": {"UdpLite6", "InDatagrams"},
		"Weird":               {"", "Weird"},
		"Ends6":               {"", "Ends6"},
	} {
		g, f := splitSNMP6(in)
		if diff := cmp.Diff(want, [2]string{g, f}); diff != "" {
			t.Errorf("splitSNMP6(%q) (-want +got):\n%s", in, diff)
		}
	}
}

func FuzzParseSNMP(f *testing.F) {
	seedFiles(f, "proc/net/snmp")
	seedFiles(f, "proc/net/netstat")
	f.Fuzz(func(t *testing.T, in string) {
		vs, _ := parseSNMP(strings.NewReader(in))
		// Every value needs a name and a number: at most half the words.
		if len(vs) > len(strings.Fields(in))/2 {
			t.Fatalf("%d values from %d words", len(vs), len(strings.Fields(in)))
		}
		for _, v := range vs {
			if v.Field == "" || !strings.Contains(in, v.Group+":") {
				t.Fatalf("value %+v not from the input", v)
			}
		}
	})
}

func FuzzParseSNMP6(f *testing.F) {
	seedFiles(f, "proc/net/snmp6")
	f.Fuzz(func(t *testing.T, in string) {
		vs, err := parseSNMP6(strings.NewReader(in))
		if err == nil && len(vs) != len(strings.Fields(in))/2 {
			t.Fatalf("%d values from %q without an error", len(vs), in)
		}
	})
}
