package counters

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/netdrop/netdrop/stage"
)

func TestReadUDPSockets(t *testing.T) {
	got, err := ReadUDPSockets(fixture("linux-6.18"))
	if err != nil {
		t.Fatal(err)
	}
	ap := netip.MustParseAddrPort
	want := []UDPSocket{
		{Proto: "udp", Local: ap("127.0.0.1:46869"), Remote: ap("0.0.0.0:0"), State: 7, RxQueue: 0x680, Inode: 19341, Drops: 198},
		{Proto: "udp", Local: ap("127.0.0.1:35714"), Remote: ap("127.0.0.1:46869"), State: 1, Inode: 19343},
		{Proto: "udp", Local: ap("0.0.0.0:36860"), Remote: ap("0.0.0.0:0"), State: 7, Inode: 19342},
		{Proto: "udp6", Local: ap("[::1]:39067"), Remote: ap("[::1]:58231"), State: 1, Inode: 19345},
		{Proto: "udp6", Local: ap("[::1]:58231"), Remote: ap("[::]:0"), State: 7, RxQueue: 0x680, Inode: 19344, Drops: 48},
		{Proto: "udp6", Local: ap("[::]:49688"), Remote: ap("[::]:0"), State: 7, Inode: 19346},
	}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
		t.Errorf("ReadUDPSockets (-want +got):\n%s", diff)
	}
}

func TestUDPSource(t *testing.T) {
	s, err := collectOne(t, "linux-6.18", UDPSource{})
	if err != nil {
		t.Fatal(err)
	}
	want := []Counter{
		{Source: ProcNetUDP, Object: "udp 127.0.0.1:46869 inode 19341", Field: "drops", Value: 198, Stage: stage.SocketRcvbuf},
		{Source: ProcNetUDP6, Object: "udp6 [::1]:58231 inode 19344", Field: "drops", Value: 48, Stage: stage.SocketRcvbuf},
	}
	if diff := cmp.Diff(want, s.Counters); diff != "" {
		t.Errorf("counters (-want +got):\n%s", diff)
	}
}

func TestUDPBroken(t *testing.T) {
	s, err := collectOne(t, "broken", UDPSource{})
	if err != nil {
		t.Fatal(err)
	}
	got := values(s, ProcNetUDP)
	want := map[string]uint64{"udp 127.0.0.1:46869 inode 19341 drops": 198, "udp 0.0.0.0:5353 inode 19342 drops": 7}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("values (-want +got):\n%s", diff)
	}
	rs := unavailable(s, ProcNetUDP)
	if len(rs) != 1 || !strings.Contains(rs[0], "line 3") || !strings.Contains(rs[0], "line 4: ") || !strings.Contains(rs[0], string(ProcNetUDP)+": ") {
		t.Errorf("unavailable = %q", rs)
	}
}

func TestParseHexAddrPort(t *testing.T) {
	for in, want := range map[string]string{
		"0100007F:0035":                         "127.0.0.1:53",
		"00000000:14E9":                         "0.0.0.0:5353",
		"0000000000000000FFFF00000100007F:0035": "[::ffff:127.0.0.1]:53",
		"B80D0120000000000000000001000000:01BB": "[2001:db8::1]:443",
	} {
		got, err := parseHexAddrPort(in)
		if err != nil || got.String() != want {
			t.Errorf("parseHexAddrPort(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
	for _, in := range []string{"0100007F", "0100007F:XYZ", "01007F:0035", "0100007G:0035"} {
		if _, err := parseHexAddrPort(in); err == nil {
			t.Errorf("parseHexAddrPort(%q): no error", in)
		}
	}
}

func FuzzParseUDPSockets(f *testing.F) {
	seedFiles(f, "proc/net/udp")
	seedFiles(f, "proc/net/udp6")
	f.Fuzz(func(t *testing.T, in string) {
		socks, _ := parseUDPSockets(strings.NewReader(in))
		for _, k := range socks {
			if !k.Local.IsValid() || !k.Remote.IsValid() {
				t.Fatalf("invalid address in %+v", k)
			}
		}
	})
}
