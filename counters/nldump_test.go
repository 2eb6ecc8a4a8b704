package counters

import (
	"encoding/binary"
	"errors"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// nlMsg builds one netlink message as the kernel sends it.
func nlMsg(typ, flags uint16, seq uint32, data []byte) []byte {
	l := unix.NLMSG_HDRLEN + len(data)
	b := make([]byte, unix.NLMSG_HDRLEN, (l+3)&^3)
	binary.NativeEndian.PutUint32(b[0:], uint32(l))
	binary.NativeEndian.PutUint16(b[4:], typ)
	binary.NativeEndian.PutUint16(b[6:], flags)
	binary.NativeEndian.PutUint32(b[8:], seq)
	b = append(b, data...)
	return b[:cap(b)]
}

func errnoData(e int32) []byte {
	return binary.NativeEndian.AppendUint32(nil, uint32(e))
}

func TestWalkNetlink(t *testing.T) {
	type got struct {
		Types      []uint16
		Datas      []string
		Done, Intr bool
		ErrIs      string
	}
	run := func(b []byte) got {
		var g got
		done, intr, err := walkNetlink(b, 7, func(typ uint16, data []byte) error {
			g.Types = append(g.Types, typ)
			g.Datas = append(g.Datas, string(data))
			return nil
		})
		g.Done, g.Intr = done, intr
		switch {
		case err == nil:
		case errors.Is(err, ErrFileParse):
			g.ErrIs = "parse"
		case errors.Is(err, unix.EPERM):
			g.ErrIs = "EPERM"
		default:
			g.ErrIs = err.Error()
		}
		return g
	}
	cat := func(ms ...[]byte) []byte { return slices.Concat(ms...) }
	tests := []struct {
		name string
		in   []byte
		want got
	}{
		{"two messages, more to come",
			cat(nlMsg(16, unix.NLM_F_MULTI, 7, []byte("abc")), nlMsg(16, unix.NLM_F_MULTI, 7, []byte("defgh"))),
			got{Types: []uint16{16, 16}, Datas: []string{"abc", "defgh"}}},
		{"other request's message skipped, then done",
			cat(nlMsg(16, 0, 6, []byte("x")), nlMsg(16, 0, 7, []byte("y")), nlMsg(unix.NLMSG_DONE, 0, 7, errnoData(0))),
			got{Types: []uint16{16}, Datas: []string{"y"}, Done: true}},
		{"interrupted dump still delivers",
			cat(nlMsg(16, unix.NLM_F_DUMP_INTR, 7, []byte("z")), nlMsg(unix.NLMSG_DONE, 0, 7, errnoData(0))),
			got{Types: []uint16{16}, Datas: []string{"z"}, Done: true, Intr: true}},
		{"error status", nlMsg(unix.NLMSG_ERROR, 0, 7, errnoData(-int32(unix.EPERM))),
			got{Done: true, ErrIs: "EPERM"}},
		{"done with an error", nlMsg(unix.NLMSG_DONE, 0, 7, errnoData(-int32(unix.EPERM))),
			got{Done: true, ErrIs: "EPERM"}},
		{"length beyond the datagram", nlMsg(16, 0, 7, []byte("abcd"))[:18],
			got{Done: true, ErrIs: "parse"}},
		{"noop ignored", nlMsg(unix.NLMSG_NOOP, 0, 7, nil), got{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, run(tt.in)); diff != "" {
				t.Errorf("walkNetlink (-want +got):\n%s", diff)
			}
		})
	}
}

func FuzzWalkNetlink(f *testing.F) {
	f.Add(nlMsg(16, 0, 7, []byte("abc")))
	f.Add(nlMsg(unix.NLMSG_ERROR, 0, 7, errnoData(-1)))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _, _ = walkNetlink(b, 7, func(uint16, []byte) error { return nil })
	})
}

// TestDumpLinksMatchesLibrary compares the blocking-socket dump with the
// library's, on this host (RTM_GETLINK needs no privilege).
func TestDumpLinksMatchesLibrary(t *testing.T) {
	got, err := dumpLinks(dialRaw)
	if err != nil {
		t.Fatal(err)
	}
	want, err := dumpLinksLib()
	if err != nil {
		t.Fatal(err)
	}
	// Byte counters move between the two dumps; compare the rest.
	for i := range got {
		got[i].Stats64 = nil
	}
	for i := range want {
		want[i].Stats64 = nil
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("dumpLinks (-library +got):\n%s", diff)
	}
	if len(got) == 0 {
		t.Error("no links dumped (every namespace has lo)")
	}
}

func TestDumpNftChainsMatchesLibrary(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("nfnetlink dumps need CAP_NET_ADMIN: run as root")
	}
	got, err := dumpNftChains(dialRaw)
	if err != nil {
		t.Fatal(err)
	}
	want, err := dumpNftChainsLib()
	if err != nil {
		t.Fatal(err)
	}
	for _, cs := range [][]nftChain{got, want} {
		for i := range cs {
			cs[i].Packets = 0 // moves between the dumps
		}
	}
	if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("dumpNftChains (-library +got):\n%s", diff)
	}
}

func TestIsHex(t *testing.T) {
	for _, s := range []string{"", "0", "00000000", "deadBEEF", "0x12", "12g4", "-1", "+1", "1_0", " 1"} {
		_, err := strconv.ParseUint(s, 16, 64)
		if got, want := isHex(s), err == nil; got != want {
			t.Errorf("isHex(%q) = %v, ParseUint says %v", s, got, want)
		}
	}
}

func TestReadDirNames(t *testing.T) {
	dir := "testdata/nic/sys/class/net/eth1/queues"
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, e := range ents {
		want = append(want, e.Name())
	}
	got, err := readDirNames(dir)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("readDirNames (-os.ReadDir +got):\n%s", diff)
	}
	if _, err := readDirNames("testdata/no-such-dir"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing directory: err = %v, want ErrNotExist", err)
	}
}

// TestDumpQdiscsMatchesLibrary compares the counters made from the
// blocking-socket dump with those made from QdiscList, on this host. The
// values of a busy interface may move between the two dumps: the test
// compares every counter's identity and kind, and the values of the idle
// ones.
func TestDumpQdiscsMatchesLibrary(t *testing.T) {
	got, err := dumpQdiscs(dialRaw)
	if err != nil {
		t.Fatal(err)
	}
	want, err := netlink.QdiscList(nil)
	if err != nil {
		t.Fatal(err)
	}
	names := map[int]string{}
	links, err := dumpLinks(dialRaw)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range links {
		names[l.Index] = l.Name
	}
	strip := func(cs []Counter) []Counter {
		for i := range cs {
			if cs[i].Object != "" && !strings.HasPrefix(cs[i].Object, "lo ") {
				cs[i].Value = 0
			}
		}
		return cs
	}
	// QdiscList does not read fq_codel's extended statistics.
	xstats := map[string]bool{"drop_overlimit": true, "drop_overmemory": true, "ecn_mark": true, "new_flow_count": true, "memory_usage": true}
	var mine []Counter
	for _, c := range qdiscCounters(names, got) {
		if !xstats[c.Field] {
			mine = append(mine, c)
		}
	}
	if diff := cmp.Diff(strip(qdiscCounters(names, want)), strip(mine)); diff != "" {
		t.Errorf("qdisc counters (-QdiscList +dumpQdiscs):\n%s", diff)
	}
}

func FuzzParseQdiscMessage(f *testing.F) {
	f.Add(make([]byte, 20))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = parseQdiscMessage(b)
	})
}
