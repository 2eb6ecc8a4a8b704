package counters

import (
	"bufio"
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/mdlayher/netlink"
	"github.com/mdlayher/netlink/nltest"
	"golang.org/x/sys/unix"
)

// afSpecIPv6 encodes an IFLA_AF_SPEC payload as the kernel sends it: an
// AF_INET nest (its devconf, which must be passed over), then the AF_INET6
// nest with IFLA_INET6_STATS and IFLA_INET6_ICMP6STATS, each led by its
// length in words. set puts a 1 in one word of the IPv6 array (0: none).
func afSpecIPv6(set int) []byte {
	words := func(n, set int) []byte {
		b := binary.NativeEndian.AppendUint64(nil, uint64(n))
		for i := 1; i < n; i++ {
			v := uint64(0)
			if i == set {
				v = 1
			}
			b = binary.NativeEndian.AppendUint64(b, v)
		}
		return b
	}
	inet := nltest.MustMarshalAttributes([]netlink.Attribute{{Type: 1 /* IFLA_INET_CONF */, Data: make([]byte, 4*33)}})
	inet6 := nltest.MustMarshalAttributes([]netlink.Attribute{
		{Type: unix.IFLA_INET6_FLAGS, Data: make([]byte, 4)},
		{Type: unix.IFLA_INET6_STATS, Data: words(38, set)},
		{Type: unix.IFLA_INET6_ICMP6STATS, Data: words(7, 0)},
	})
	return nltest.MustMarshalAttributes([]netlink.Attribute{
		{Type: unix.AF_INET | unix.NLA_F_NESTED, Data: inet},
		{Type: unix.AF_INET6 | unix.NLA_F_NESTED, Data: inet6},
	})
}

// TestDevSNMP6 reads dev_snmp6 files copied from a 6.18 host (lo and
// eth0): each kept field must be the file's own line, per interface, with
// no stage (the namespace's snmp6 carries it). The interfaces come from a
// fake link dump: lo and eth0 have IPv6 statistics that are not all zero,
// so their files are read; zero0's are all zero, so it gets every field at
// 0 without a file (the fixture has none); nov6 has no IPv6 and gets
// nothing. When the link dump fails, the directory's listing is read.
func TestDevSNMP6(t *testing.T) {
	root := "testdata/devsnmp6"
	fsys := FS{Proc: root, ProcNet: root, Sys: root}
	k := routeKernel(t, []testLink{
		{index: 1, name: "lo", stats64: make([]uint64, 25), afSpec: afSpecIPv6(1)},
		{index: 2, name: "eth0", stats64: make([]uint64, 25), afSpec: afSpecIPv6(37)},
		{index: 3, name: "zero0", stats64: make([]uint64, 25), afSpec: afSpecIPv6(0)},
		{index: 4, name: "nov6", stats64: make([]uint64, 25)},
	}, nil)
	s := &Snapshot{}
	if err := (devSNMP6Source{}).Collect(context.Background(), newReading(fsys, k.dial), s); err != nil {
		t.Fatal(err)
	}
	fromDir := &Snapshot{}
	if err := (devSNMP6Source{}).Collect(context.Background(), newReading(fsys, errnoKernel(t, unix.EPERM).dial), fromDir); err != nil {
		t.Fatal(err)
	}
	if len(s.Unavailable)+len(fromDir.Unavailable) != 0 {
		t.Errorf("unavailable: %v %v", s.Unavailable, fromDir.Unavailable)
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
	counts := func(s *Snapshot) map[string]uint64 {
		m := map[string]uint64{}
		for _, c := range s.Counters {
			if c.Source != ProcNetDevSNMP6 || c.Stage != "" {
				t.Errorf("counter %+v: want source %s and no stage", c, ProcNetDevSNMP6)
			}
			m[c.Object+" "+c.Field] = c.Value
		}
		return m
	}
	got := counts(s)
	if len(want) != 2*len(devSNMP6Fields) {
		t.Errorf("the fixtures hold %d of the %d kept fields per interface", len(want)/2, len(devSNMP6Fields))
	}
	if d := cmp.Diff(want, counts(fromDir)); d != "" {
		t.Errorf("dev_snmp6 counters without the link dump (-file +got):\n%s", d)
	}
	for _, f := range devSNMP6Fields {
		want["zero0 "+f] = 0
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
	if err := (devSNMP6Source{}).Collect(context.Background(), newReading(FS{Proc: empty, ProcNet: empty, Sys: empty}, errnoKernel(t, unix.EPERM).dial), s); err != nil || len(s.Counters)+len(s.Unavailable) != 0 {
		t.Errorf("no dev_snmp6: err %v, %d counters, unavailable %v", err, len(s.Counters), s.Unavailable)
	}
}

// TestIPv6StateOf: only two whole arrays of zeros skip a file; anything
// that does not decode, or lacks an array, has the file read.
func TestIPv6StateOf(t *testing.T) {
	inet6 := func(attrs ...netlink.Attribute) []byte {
		return nltest.MustMarshalAttributes([]netlink.Attribute{{Type: unix.AF_INET6 | unix.NLA_F_NESTED, Data: nltest.MustMarshalAttributes(attrs)}})
	}
	zeros := func(n int) []byte {
		b := make([]byte, 8*n)
		binary.NativeEndian.PutUint64(b, uint64(n)) // word 0: the length
		return b
	}
	for _, tt := range []struct {
		name   string
		afSpec []byte
		want   ipv6State
	}{
		{"zero", afSpecIPv6(0), ipv6Zero},
		{"first statistic", afSpecIPv6(1), ipv6Counted},
		{"last statistic", afSpecIPv6(37), ipv6Counted},
		{"no AF_INET6", nltest.MustMarshalAttributes([]netlink.Attribute{{Type: unix.AF_INET, Data: make([]byte, 8)}}), ipv6None},
		{"empty", []byte{}, ipv6None},
		{"no ICMP6 array", inet6(netlink.Attribute{Type: unix.IFLA_INET6_STATS, Data: zeros(38)}), ipv6Counted},
		{"ICMP6 not zero", inet6(netlink.Attribute{Type: unix.IFLA_INET6_STATS, Data: zeros(38)},
			netlink.Attribute{Type: unix.IFLA_INET6_ICMP6STATS, Data: append(zeros(6), 1, 0, 0, 0, 0, 0, 0, 0)}), ipv6Counted},
		{"broken family nest", []byte{8, 0, 10, 0, 1}, ipv6Counted},
		{"broken AF_INET6 nest", nltest.MustMarshalAttributes([]netlink.Attribute{{Type: unix.AF_INET6, Data: []byte{9, 0, 3, 0}}}), ipv6Counted},
	} {
		if got := ipv6StateOf(tt.afSpec); got != tt.want {
			t.Errorf("%s: %d, want %d", tt.name, got, tt.want)
		}
	}
}
