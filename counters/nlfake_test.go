package counters

// Fake-connection tests of the netlink dumps: a fake kernel takes the
// request datagram a source sends, checks it byte for byte, and answers
// with replies built here, so the request encoding, the reply decoding and
// the errno paths of the link, qdisc (with htb classes), dev_snmp6 and
// nftables sources run without root and without touching the host's
// interfaces.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/mdlayher/netlink"
	"github.com/mdlayher/netlink/nltest"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/netdrop/netdrop/stage"
)

// fakeKernel answers netlink requests with an nltest.Func. Each request
// datagram is decoded into its message and handed to fn; each message fn
// returns becomes one reply datagram, as a kernel splits a long dump.
type fakeKernel struct {
	t      *testing.T
	fn     nltest.Func
	dials  []int // the protocols dialled, in order
	closes int   // sockets closed
}

// fakeConn is one socket of a fakeKernel.
type fakeConn struct {
	k     *fakeKernel
	queue [][]byte
}

func (k *fakeKernel) dial(proto int) (dumpConn, error) {
	k.dials = append(k.dials, proto)
	return &fakeConn{k: k}, nil
}

func (c *fakeConn) send(req []byte) error {
	var m netlink.Message
	if err := m.UnmarshalBinary(req); err != nil {
		c.k.t.Errorf("request is not one netlink message: %v", err)
		return err
	}
	replies, err := c.k.fn([]netlink.Message{m})
	if err != nil {
		return err
	}
	for _, r := range replies {
		b, err := r.MarshalBinary()
		if err != nil {
			c.k.t.Fatalf("reply: %v", err)
		}
		c.queue = append(c.queue, b)
	}
	return nil
}

func (c *fakeConn) recv(buf []byte) (int, bool, error) {
	if len(c.queue) == 0 {
		return 0, false, errors.New("fake kernel: read past the end of the reply (NLMSG_DONE not seen)")
	}
	b := c.queue[0]
	c.queue = c.queue[1:]
	copy(buf, b)
	return len(b), true, nil
}

func (c *fakeConn) close() error { c.k.closes++; return nil }

// reply builds a reply message of the dump req with data.
func reply(req netlink.Message, typ uint16, flags netlink.HeaderFlags, data []byte) netlink.Message {
	return netlink.Message{
		Header: netlink.Header{
			Length:   uint32(unix.NLMSG_HDRLEN + len(data)),
			Type:     netlink.HeaderType(typ),
			Flags:    flags,
			Sequence: req.Header.Sequence,
		},
		Data: data,
	}
}

// dumpReply is a whole multi-part dump reply: the messages, then
// NLMSG_DONE with status 0.
func dumpReply(req netlink.Message, typ uint16, datas ...[]byte) []netlink.Message {
	var out []netlink.Message
	for _, d := range datas {
		out = append(out, reply(req, typ, netlink.Multi, d))
	}
	out = append(out, reply(req, unix.NLMSG_DONE, netlink.Multi, make([]byte, 4)))
	return out
}

// wantDumpRequest checks a request against the dump request the kernel
// documents: one message of type typ with NLM_F_REQUEST|NLM_F_DUMP, a
// nonzero sequence, port ID 0, and the fixed header body.
func wantDumpRequest(t *testing.T, reqs []netlink.Message, typ uint16, body []byte) {
	t.Helper()
	if len(reqs) != 1 {
		t.Fatalf("%d messages in one request, want 1", len(reqs))
	}
	h := reqs[0].Header
	if h.Type != netlink.HeaderType(typ) || h.Flags != netlink.Request|netlink.Dump || h.Sequence == 0 || h.PID != 0 {
		t.Errorf("request header %+v, want type %d, flags request|dump, a sequence, pid 0", h, typ)
	}
	if h.Length != uint32(unix.NLMSG_HDRLEN+len(body)) {
		t.Errorf("request length %d, want %d", h.Length, unix.NLMSG_HDRLEN+len(body))
	}
	if diff := cmp.Diff(body, reqs[0].Data); diff != "" {
		t.Errorf("request body (-want +got):\n%s", diff)
	}
}

// The request bodies, laid out from the uapi structs. struct ifinfomsg
// (linux/rtnetlink.h): family, pad, type, index, flags, change: 16 bytes,
// all zero for "every link of every family". struct tcmsg
// (linux/rtnetlink.h): family, pads, ifindex, handle, parent, info: 20
// bytes, all zero for "every qdisc". struct nfgenmsg
// (linux/netfilter/nfnetlink.h): family AF_UNSPEC, version NFNETLINK_V0,
// res_id 0.
var (
	ifinfomsgAll = make([]byte, 16)
	tcmsgAll     = make([]byte, 20)
	nfgenmsgAll  = []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, 0}
)

// testLink is one interface the fake kernel reports.
type testLink struct {
	index   int32
	name    string
	mac     []byte
	stats64 []uint64 // struct rtnl_link_stats64, word by word
	afSpec  []byte   // IFLA_AF_SPEC's payload; none when nil
}

// newlinkMsg encodes an RTM_NEWLINK body: struct ifinfomsg, then IFLA_*.
func newlinkMsg(l testLink) []byte {
	hdr := make([]byte, 16)
	binary.NativeEndian.PutUint32(hdr[4:], uint32(l.index))
	var stats []byte
	for _, v := range l.stats64 {
		stats = binary.NativeEndian.AppendUint64(stats, v)
	}
	u32 := func(v uint32) []byte { return binary.NativeEndian.AppendUint32(nil, v) }
	attrs := []netlink.Attribute{
		{Type: unix.IFLA_IFNAME, Data: append([]byte(l.name), 0)},
		{Type: unix.IFLA_TXQLEN, Data: u32(1000)},
		{Type: unix.IFLA_NUM_TX_QUEUES, Data: u32(2)},
		{Type: unix.IFLA_NUM_RX_QUEUES, Data: u32(2)},
		{Type: unix.IFLA_STATS64, Data: stats},
	}
	if l.mac != nil {
		attrs = append(attrs, netlink.Attribute{Type: unix.IFLA_ADDRESS, Data: l.mac})
	}
	if l.afSpec != nil {
		attrs = append(attrs, netlink.Attribute{Type: unix.IFLA_AF_SPEC | unix.NLA_F_NESTED, Data: l.afSpec})
	}
	return append(hdr, nltest.MustMarshalAttributes(attrs)...)
}

// testQdisc is one qdisc the fake kernel reports.
type testQdisc struct {
	ifindex        int32
	handle, parent uint32
	kind           string
	// struct gnet_stats_queue: qlen, backlog, drops, requeues, overlimits.
	queue [5]uint32
}

// TC_H_ROOT and TC_H_INGRESS of linux/pkt_sched.h: the parent of a root
// qdisc and of the ingress and clsact qdiscs.
const (
	netlinkHandleRoot    = 0xffffffff
	netlinkHandleIngress = 0xfffffff1
)

// tcaStatsQueue is TCA_STATS_QUEUE of enum in linux/gen_stats.h.
const tcaStatsQueue = 3

// newqdiscMsg encodes an RTM_NEWQDISC body: struct tcmsg, TCA_KIND and
// TCA_STATS2 with TCA_STATS_QUEUE, as the kernel sends them.
func newqdiscMsg(q testQdisc) []byte {
	hdr := make([]byte, 20)
	binary.NativeEndian.PutUint32(hdr[4:], uint32(q.ifindex))
	binary.NativeEndian.PutUint32(hdr[8:], q.handle)
	binary.NativeEndian.PutUint32(hdr[12:], q.parent)
	var queue []byte
	for _, v := range q.queue {
		queue = binary.NativeEndian.AppendUint32(queue, v)
	}
	stats2 := nltest.MustMarshalAttributes([]netlink.Attribute{{Type: tcaStatsQueue, Data: queue}})
	return append(hdr, nltest.MustMarshalAttributes([]netlink.Attribute{
		{Type: unix.TCA_KIND, Data: append([]byte(q.kind), 0)},
		{Type: unix.TCA_STATS2 | unix.NLA_F_NESTED, Data: stats2},
	})...)
}

// routeKernel answers RTM_GETLINK with links and RTM_GETQDISC with qdiscs,
// checking each request.
func routeKernel(t *testing.T, links []testLink, qdiscs []testQdisc) *fakeKernel {
	k := &fakeKernel{t: t}
	k.fn = func(reqs []netlink.Message) ([]netlink.Message, error) {
		switch reqs[0].Header.Type {
		case unix.RTM_GETLINK:
			wantDumpRequest(t, reqs, unix.RTM_GETLINK, ifinfomsgAll)
			var datas [][]byte
			for _, l := range links {
				datas = append(datas, newlinkMsg(l))
			}
			return dumpReply(reqs[0], unix.RTM_NEWLINK, datas...), nil
		case unix.RTM_GETQDISC:
			wantDumpRequest(t, reqs, unix.RTM_GETQDISC, tcmsgAll)
			var datas [][]byte
			for _, q := range qdiscs {
				datas = append(datas, newqdiscMsg(q))
			}
			return dumpReply(reqs[0], unix.RTM_NEWQDISC, datas...), nil
		}
		t.Errorf("unexpected request type %d", reqs[0].Header.Type)
		return nltest.Error(int(unix.EINVAL), reqs)
	}
	return k
}

// errnoKernel answers every request with the status -errno.
func errnoKernel(t *testing.T, errno unix.Errno) *fakeKernel {
	return &fakeKernel{t: t, fn: func(reqs []netlink.Message) ([]netlink.Message, error) {
		return nltest.Error(int(errno), reqs)
	}}
}

// collectFake reads src through a Reading whose netlink sockets are k's,
// over an empty file tree, the way Collect reads one source.
func collectFake(t *testing.T, k *fakeKernel, src Source) *Snapshot {
	t.Helper()
	r := newReading(NewFS(t.TempDir()), k.dial)
	s := &Snapshot{}
	readSourceInto(context.Background(), r, src, s)
	return s
}

func TestLinkDumpFake(t *testing.T) {
	// rtnl_link_stats64 word by word: word i holds 100+i, so every
	// counter shows which word it was read from. 25 words is the 6.0
	// struct (rx_otherhost_dropped last).
	stats := make([]uint64, 25)
	for i := range stats {
		stats[i] = uint64(100 + i)
	}
	k := routeKernel(t, []testLink{
		{index: 1, name: "lo", stats64: stats},
		// A 4.5 kernel's shorter struct (23 words): no rx_nohandler,
		// no rx_otherhost_dropped, and nothing invented for them.
		{index: 7, name: "veth0", mac: []byte{2, 0, 0, 0, 0, 7}, stats64: stats[:23]},
	}, nil)
	s := collectFake(t, k, linkSource{})
	if diff := cmp.Diff([]int{unix.NETLINK_ROUTE}, k.dials); diff != "" {
		t.Errorf("sockets dialled (-want +got):\n%s", diff)
	}
	var want []Counter
	for _, l := range []struct {
		name  string
		words int
	}{{"lo", 25}, {"veth0", 23}} {
		for _, f := range linkStats {
			if f.Index < l.words {
				want = append(want, Counter{Source: NetlinkLinkStats, Object: l.name, Field: f.Name, Value: uint64(100 + f.Index), Stage: f.Stage})
			}
		}
	}
	if diff := cmp.Diff(want, s.Counters); diff != "" {
		t.Errorf("link counters (-want +got):\n%s", diff)
	}
	if len(s.Unavailable) != 0 {
		t.Errorf("unavailable: %+v", s.Unavailable)
	}
	// The decode of what the hooks, ethtool and NIC sources share.
	links, err := dumpLinks(routeKernel(t, []testLink{{index: 7, name: "veth0", mac: []byte{2, 0, 0, 0, 0, 7}, stats64: stats}}, nil).dial)
	if err != nil {
		t.Fatal(err)
	}
	for i := range links {
		links[i].Stats64 = nil
	}
	wantLinks := []linkInfo{{Index: 7, Name: "veth0", MAC: "02:00:00:00:00:07", TxQLen: 1000, NumTxQueues: 2, NumRxQueues: 2, PortState: -1, STP: -1}}
	if diff := cmp.Diff(wantLinks, links); diff != "" {
		t.Errorf("dumpLinks (-want +got):\n%s", diff)
	}
}

func TestQdiscDumpFake(t *testing.T) {
	k := routeKernel(t,
		[]testLink{{index: 1, name: "lo", stats64: make([]uint64, 25)}, {index: 3, name: "eth0", stats64: make([]uint64, 25)}},
		[]testQdisc{
			{ifindex: 3, handle: 0x10000, parent: netlinkHandleRoot, kind: "tbf", queue: [5]uint32{4, 6000, 17, 2, 99}},
			{ifindex: 3, handle: 0xffff0000, parent: netlinkHandleIngress, kind: "ingress", queue: [5]uint32{0, 0, 5, 0, 0}},
			// A link that went away between the two dumps.
			{ifindex: 9, handle: 0, parent: 0x10003, kind: "fq_codel", queue: [5]uint32{1, 2, 3, 4, 5}},
		})
	s := collectFake(t, k, qdiscSource{})
	// The qdisc source names interfaces from the snapshot's link dump.
	if diff := cmp.Diff([]int{unix.NETLINK_ROUTE, unix.NETLINK_ROUTE}, k.dials); diff != "" {
		t.Errorf("sockets dialled (-want +got):\n%s", diff)
	}
	five := func(obj string, stg stage.ID, q [5]uint32) []Counter {
		return []Counter{
			{Source: NetlinkQdisc, Object: obj, Field: "drops", Value: uint64(q[2]), Stage: stg, Bits: 32},
			{Source: NetlinkQdisc, Object: obj, Field: "overlimits", Value: uint64(q[4]), Stage: stg, Bits: 32},
			{Source: NetlinkQdisc, Object: obj, Field: "requeues", Value: uint64(q[3]), Stage: stg, Bits: 32},
			{Source: NetlinkQdisc, Object: obj, Field: "backlog", Value: uint64(q[1]), Stage: stg, Gauge: true},
			{Source: NetlinkQdisc, Object: obj, Field: "qlen", Value: uint64(q[0]), Stage: stg, Gauge: true},
		}
	}
	want := slices.Concat(
		five("eth0 tbf 1:", stage.Qdisc, [5]uint32{4, 6000, 17, 2, 99}),
		five("eth0 ingress ffff:", stage.TCIngress, [5]uint32{0, 0, 5, 0, 0}),
		five("ifindex9 fq_codel 0: parent 1:3", "", [5]uint32{1, 2, 3, 4, 5}),
	)
	if diff := cmp.Diff(want, s.Counters); diff != "" {
		t.Errorf("qdisc counters (-want +got):\n%s", diff)
	}
	if len(s.Unavailable) != 0 {
		t.Errorf("unavailable: %+v", s.Unavailable)
	}
}

// TestDumpInterruptedFake checks that a dump the kernel flags as
// interrupted (a link changed while it was dumped) is still used.
func TestDumpInterruptedFake(t *testing.T) {
	k := &fakeKernel{t: t}
	k.fn = func(reqs []netlink.Message) ([]netlink.Message, error) {
		out := dumpReply(reqs[0], unix.RTM_NEWLINK, newlinkMsg(testLink{index: 1, name: "lo"}))
		out[0].Header.Flags |= netlink.DumpInterrupted
		return out, nil
	}
	links, err := dumpLinks(k.dial)
	if err != nil || len(links) != 1 || links[0].Name != "lo" {
		t.Errorf("interrupted dump: %+v, %v; want lo", links, err)
	}
}

// TestNetlinkErrnoFake checks what a refused dump becomes: the errno stays
// detectable in the chain, and the unavailable reason is the one the
// snapshot gives for it (permission: run as root; missing: not present on
// this kernel; the rest as the kernel said it).
func TestNetlinkErrnoFake(t *testing.T) {
	tests := []struct {
		errno unix.Errno
		src   Source
		want  Unavailable
	}{
		{unix.EPERM, linkSource{}, Unavailable{Source: NetlinkLinkStats, Reason: "permission denied: run as root or with CAP_NET_ADMIN (rtm_getlink dump: operation not permitted)"}},
		{unix.ENOENT, linkSource{}, Unavailable{Source: NetlinkLinkStats, Reason: "not present on this kernel or namespace (rtm_getlink dump: no such file or directory)"}},
		{unix.EOPNOTSUPP, linkSource{}, Unavailable{Source: NetlinkLinkStats, Reason: "this kernel cannot answer: the feature is not built in or its module is not loaded (rtm_getlink dump: operation not supported)"}},
		{unix.EPERM, qdiscSource{}, Unavailable{Source: NetlinkQdisc, Reason: "permission denied: run as root or with CAP_NET_ADMIN (rtm_getlink dump: operation not permitted)"}},
		// nfnetlink refuses every request without CAP_NET_ADMIN: the
		// nftables source says so in its own words.
		{unix.EPERM, nftablesSource{}, Unavailable{Source: NetlinkNftables, Reason: "needs CAP_NET_ADMIN: nfnetlink refuses every request without it (operation not permitted)"}},
		{unix.ENOENT, nftablesSource{}, Unavailable{Source: NetlinkNftables, Reason: "not present on this kernel or namespace (nft_msg_getchain dump: no such file or directory)"}},
		{unix.EOPNOTSUPP, nftablesSource{}, Unavailable{Source: NetlinkNftables, Reason: "this kernel cannot answer: the feature is not built in or its module is not loaded (nft_msg_getchain dump: operation not supported)"}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s %s", tt.src.ID(), unix.ErrnoName(tt.errno)), func(t *testing.T) {
			s := collectFake(t, errnoKernel(t, tt.errno), tt.src)
			if diff := cmp.Diff([]Unavailable{tt.want}, s.Unavailable); diff != "" {
				t.Errorf("unavailable (-want +got):\n%s", diff)
			}
			if len(s.Counters) != 0 {
				t.Errorf("%d counters from a refused dump", len(s.Counters))
			}
		})
	}
	// The errno itself survives the wrapping, for callers that test it.
	for _, errno := range []unix.Errno{unix.EPERM, unix.ENOENT, unix.EOPNOTSUPP} {
		_, err := dumpQdiscs(errnoKernel(t, errno).dial)
		if !errors.Is(err, errno) {
			t.Errorf("dumpQdiscs with %s: %v, want the errno in the chain", unix.ErrnoName(errno), err)
		}
	}
}

// TestNftChainsFake checks the chain dump's request and that an empty
// ruleset reads as no chains and no unavailable line.
func TestNftChainsFake(t *testing.T) {
	const getchain = unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETCHAIN
	k := &fakeKernel{t: t}
	k.fn = func(reqs []netlink.Message) ([]netlink.Message, error) {
		wantDumpRequest(t, reqs, getchain, nfgenmsgAll)
		return dumpReply(reqs[0], unix.NFNL_SUBSYS_NFTABLES<<8|unix.NFT_MSG_NEWCHAIN), nil
	}
	s := collectFake(t, k, nftablesSource{})
	if diff := cmp.Diff([]int{unix.NETLINK_NETFILTER}, k.dials); diff != "" {
		t.Errorf("sockets dialled (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(&Snapshot{}, s, cmpopts.IgnoreUnexported(Snapshot{}), cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("empty ruleset (-want +got):\n%s", diff)
	}
}

// TestNftCounterObjsFake checks the object dump's request (all families,
// counters only) and that only counter objects come back from it.
func TestNftCounterObjsFake(t *testing.T) {
	const getobj = unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETOBJ
	// nfgenmsg (AF_UNSPEC, NFNETLINK_V0, res_id 0), then NFTA_OBJ_TYPE:
	// length 8, type 3, NFT_OBJECT_COUNTER big-endian.
	body := []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, 0, 8, 0, unix.NFTA_OBJ_TYPE, 0, 0, 0, 0, unix.NFT_OBJECT_COUNTER}
	k := &fakeKernel{t: t}
	k.fn = func(reqs []netlink.Message) ([]netlink.Message, error) {
		wantDumpRequest(t, reqs, getobj, body)
		return dumpReply(reqs[0], unix.NFNL_SUBSYS_NFTABLES<<8|unix.NFT_MSG_NEWOBJ,
			nftCounterObjMessage(t, unix.NFPROTO_INET, "t", "dropped", unix.NFT_OBJECT_COUNTER, 25, 1),
			// A kernel that ignored the type filter: the quota is left out.
			nftCounterObjMessage(t, unix.NFPROTO_INET, "t", "q", unix.NFT_OBJECT_QUOTA, 0, 0),
			nftCounterObjMessage(t, unix.NFPROTO_IPV4, "filter", "seen", unix.NFT_OBJECT_COUNTER, 7, 3)), nil
	}
	got, err := dumpNftCounterObjs(k.dial)
	if err != nil {
		t.Fatal(err)
	}
	want := []nftCounterObj{
		{Key: nftObjKey{Family: unix.NFPROTO_INET, Table: "t", Name: "dropped"}, Packets: 25, Use: 1, HasUse: true},
		{Key: nftObjKey{Family: unix.NFPROTO_IPV4, Table: "filter", Name: "seen"}, Packets: 7, Use: 3, HasUse: true},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("dumpNftCounterObjs (-want +got):\n%s", diff)
	}
	if _, err := dumpNftCounterObjs(errnoKernel(t, unix.EPERM).dial); !errors.Is(err, unix.EPERM) {
		t.Errorf("dumpNftCounterObjs with EPERM: %v, want the errno in the chain", err)
	}
}

// TestHTBClassDumpFake: the classes of every interface with an htb qdisc
// are dumped one interface at a time (tcm_ifindex set, as tc_dump_tclass
// needs), decoded from TCA_STATS2 and the htb options (32-bit rates, and
// the 64-bit attributes above 4 GB/s), classes of other kinds skipped; an
// interface whose dump is refused is named in the error while the others'
// classes are kept.
func TestHTBClassDumpFake(t *testing.T) {
	tcmsgOf := func(ifindex int32, handle, parent uint32) []byte {
		b := make([]byte, 20)
		binary.NativeEndian.PutUint32(b[4:], uint32(ifindex))
		binary.NativeEndian.PutUint32(b[8:], handle)
		binary.NativeEndian.PutUint32(b[12:], parent)
		return b
	}
	u64 := func(v uint64) []byte { return binary.NativeEndian.AppendUint64(nil, v) }
	class := func(ifindex int32, handle uint32, kind string, drops, overlimits uint32, opts []netlink.Attribute) []byte {
		queue := make([]byte, 20) // struct gnet_stats_queue
		binary.NativeEndian.PutUint32(queue[8:], drops)
		binary.NativeEndian.PutUint32(queue[16:], overlimits)
		return append(tcmsgOf(ifindex, handle, 0x10000), nltest.MustMarshalAttributes([]netlink.Attribute{
			{Type: unix.TCA_KIND, Data: append([]byte(kind), 0)},
			{Type: unix.TCA_OPTIONS | unix.NLA_F_NESTED, Data: nltest.MustMarshalAttributes(opts)},
			{Type: unix.TCA_STATS2 | unix.NLA_F_NESTED, Data: nltest.MustMarshalAttributes([]netlink.Attribute{{Type: tcaStatsQueue, Data: queue}})},
		})...)
	}
	// struct tc_htb_opt: rate (struct tc_ratespec, 12 bytes, the rate at
	// byte 8) and ceil (likewise), then buffer, cbuffer, quantum, level,
	// prio.
	parms := func(rate, ceil uint32) netlink.Attribute {
		b := make([]byte, 44)
		binary.NativeEndian.PutUint32(b[8:], rate)
		binary.NativeEndian.PutUint32(b[20:], ceil)
		return netlink.Attribute{Type: nl.TCA_HTB_PARMS, Data: b}
	}
	var asked []int32
	k := &fakeKernel{t: t}
	k.fn = func(reqs []netlink.Message) ([]netlink.Message, error) {
		switch reqs[0].Header.Type {
		case unix.RTM_GETQDISC:
			var datas [][]byte
			for _, q := range []testQdisc{
				{ifindex: 3, handle: 0x10000, parent: netlinkHandleRoot, kind: "htb"},
				{ifindex: 5, handle: 0x10000, parent: netlinkHandleRoot, kind: "htb"},
				{ifindex: 7, handle: 0x10000, parent: netlinkHandleRoot, kind: "tbf"},
				{ifindex: 3, handle: 0x100000, parent: 0x10010, kind: "pfifo"}, // a leaf of 3's htb: no second dump
			} {
				datas = append(datas, newqdiscMsg(q))
			}
			return dumpReply(reqs[0], unix.RTM_NEWQDISC, datas...), nil
		case unix.RTM_GETTCLASS:
			ifindex := int32(binary.NativeEndian.Uint32(reqs[0].Data[4:]))
			asked = append(asked, ifindex)
			wantDumpRequest(t, reqs, unix.RTM_GETTCLASS, tcmsgOf(ifindex, 0, 0))
			if ifindex == 5 {
				return nltest.Error(int(unix.EPERM), reqs)
			}
			return dumpReply(reqs[0], unix.RTM_NEWTCLASS,
				class(3, 0x10010, "htb", 7, 9, []netlink.Attribute{parms(125000, 250000)}),
				class(3, 0x10020, "htb", 0, 1, []netlink.Attribute{parms(0xffffffff, 0xffffffff),
					{Type: nl.TCA_HTB_RATE64, Data: u64(5e9)}, {Type: nl.TCA_HTB_CEIL64, Data: u64(6e9)}}),
				class(3, 0x10030, "hfsc", 4, 4, nil),
			), nil
		}
		t.Errorf("unexpected request type %d", reqs[0].Header.Type)
		return nltest.Error(int(unix.EINVAL), reqs)
	}
	qs, err := dumpQdiscs(k.dial)
	if err != nil {
		t.Fatal(err)
	}
	got, err := dumpHTBClasses(k.dial, qs)
	if diff := cmp.Diff([]int32{3, 5}, asked); diff != "" {
		t.Errorf("interfaces whose classes were dumped (-want +got):\n%s", diff)
	}
	want := []htbClass{
		{LinkIndex: 3, Handle: 0x10010, Parent: 0x10000, Drops: 7, Overlimits: 9, Rate: 125000, Ceil: 250000},
		{LinkIndex: 3, Handle: 0x10020, Parent: 0x10000, Drops: 0, Overlimits: 1, Rate: 5e9, Ceil: 6e9},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("htb classes (-want +got):\n%s", diff)
	}
	if !errors.Is(err, unix.EPERM) || !strings.Contains(fmt.Sprint(err), "rtm_gettclass ifindex 5") {
		t.Errorf("error %v, want EPERM naming ifindex 5", err)
	}
}
