package counters

import (
	"encoding/binary"
	"errors"
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"

	"github.com/netdrop/netdrop/stage"
)

func TestQdiscObject(t *testing.T) {
	tests := []struct {
		ifname, kind   string
		handle, parent uint32
		want           string
	}{
		{"veth0", "tbf", 0x10000, netlink.HANDLE_ROOT, "veth0 tbf 1:"},
		{"lo", "noqueue", 0, netlink.HANDLE_ROOT, "lo noqueue 0:"},
		{"eth0", "fq_codel", 0, 0x3, "eth0 fq_codel 0: parent :3"},
		{"eth0", "fq_codel", 0, 0x80010003, "eth0 fq_codel 0: parent 8001:3"},
		{"eth0", "ingress", 0xffff0000, netlink.HANDLE_INGRESS, "eth0 ingress ffff:"},
		{"eth0", "sfq", 0x100000, 0x10010, "eth0 sfq 10:"},
		{"eth0", "pfifo", 0, 0x10000, "eth0 pfifo 0: parent 1:"},
	}
	for _, tt := range tests {
		if got := qdiscObject(tt.ifname, tt.kind, tt.handle, tt.parent); got != tt.want {
			t.Errorf("qdiscObject(%q, %q, %#x, %#x) = %q, want %q", tt.ifname, tt.kind, tt.handle, tt.parent, got, tt.want)
		}
	}
}

func TestQdiscCounters(t *testing.T) {
	tbf := &netlink.Tbf{QdiscAttrs: netlink.QdiscAttrs{
		LinkIndex: 4, Handle: 0x10000, Parent: netlink.HANDLE_ROOT,
		Statistics: &netlink.QdiscStatistics{Queue: &netlink.GnetStatsQueue{
			Qlen: 3, Backlog: 3000, Drops: 4294967295, Requeues: 2, Overlimits: 77,
		}},
	}}
	noStats := &netlink.Ingress{QdiscAttrs: netlink.QdiscAttrs{LinkIndex: 4, Handle: 0xffff0000, Parent: netlink.HANDLE_INGRESS}}
	generic := &netlink.GenericQdisc{QdiscType: "cake", QdiscAttrs: netlink.QdiscAttrs{
		LinkIndex: 9, Handle: 0x20000, Parent: netlink.HANDLE_ROOT,
		Statistics: &netlink.QdiscStatistics{Queue: &netlink.GnetStatsQueue{Drops: 5}},
	}}
	// A leaf under the tbf: its drops are also in the tbf's, so it is
	// context, not evidence.
	leaf := &netlink.GenericQdisc{QdiscType: "pfifo", QdiscAttrs: netlink.QdiscAttrs{
		LinkIndex: 4, Handle: 0x100000, Parent: 0x10001,
		Statistics: &netlink.QdiscStatistics{Queue: &netlink.GnetStatsQueue{Drops: 11}},
	}}
	// A clsact qdisc's drops are its filters' TC_ACT_SHOT verdicts: the
	// tc-ingress stage, not the transmit queue.
	clsact := &netlink.GenericQdisc{QdiscType: "clsact", QdiscAttrs: netlink.QdiscAttrs{
		LinkIndex: 4, Handle: 0xffff0000, Parent: netlink.HANDLE_CLSACT,
		Statistics: &netlink.QdiscStatistics{Queue: &netlink.GnetStatsQueue{Drops: 42}},
	}}
	got := qdiscCounters(map[int]string{4: "veth0"}, []netlink.Qdisc{tbf, noStats, generic, leaf, clsact})
	mk := func(st stage.ID) func(obj, field string, v uint64, gauge bool) Counter {
		return func(obj, field string, v uint64, gauge bool) Counter {
			c := Counter{Source: NetlinkQdisc, Object: obj, Field: field, Value: v, Stage: st, Gauge: gauge}
			if !gauge {
				c.Bits = 32
			}
			return c
		}
	}
	q, child, ing := mk(stage.Qdisc), mk(""), mk(stage.TCIngress)
	want := []Counter{
		q("veth0 tbf 1:", "drops", 4294967295, false),
		q("veth0 tbf 1:", "overlimits", 77, false),
		q("veth0 tbf 1:", "requeues", 2, false),
		q("veth0 tbf 1:", "backlog", 3000, true),
		q("veth0 tbf 1:", "qlen", 3, true),
		// The interface disappeared between the link and qdisc dumps.
		q("ifindex9 cake 2:", "drops", 5, false),
		q("ifindex9 cake 2:", "overlimits", 0, false),
		q("ifindex9 cake 2:", "requeues", 0, false),
		q("ifindex9 cake 2:", "backlog", 0, true),
		q("ifindex9 cake 2:", "qlen", 0, true),
		child("veth0 pfifo 10:", "drops", 11, false),
		child("veth0 pfifo 10:", "overlimits", 0, false),
		child("veth0 pfifo 10:", "requeues", 0, false),
		child("veth0 pfifo 10:", "backlog", 0, true),
		child("veth0 pfifo 10:", "qlen", 0, true),
		ing("veth0 clsact ffff:", "drops", 42, false),
		ing("veth0 clsact ffff:", "overlimits", 0, false),
		ing("veth0 clsact ffff:", "requeues", 0, false),
		ing("veth0 clsact ffff:", "backlog", 0, true),
		ing("veth0 clsact ffff:", "qlen", 0, true),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("qdiscCounters (-want +got):\n%s", diff)
	}
	// The counters are __u32 in struct gnet_stats_queue: a wrap is a delta.
	if d := Diff(4294967295, 4, 32); d != 5 {
		t.Errorf("wrapped qdisc drop delta = %d, want 5", d)
	}
}

// rtattr encodes one netlink route attribute, padded to 4 bytes.
func rtattr(typ uint16, v []byte) []byte {
	b := make([]byte, 4, 4+len(v)+3)
	binary.NativeEndian.PutUint16(b[0:], uint16(4+len(v)))
	binary.NativeEndian.PutUint16(b[2:], typ)
	b = append(b, v...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// TestQdiscRequeuesFromStats2: the kernel sends TCA_STATS2 (with requeues)
// and then the old TCA_STATS (without); the newer one must win.
func TestQdiscRequeuesFromStats2(t *testing.T) {
	u32s := func(vs ...uint32) []byte {
		b := make([]byte, 4*len(vs))
		for i, v := range vs {
			binary.NativeEndian.PutUint32(b[4*i:], v)
		}
		return b
	}
	msg := make([]byte, nl.SizeofTcMsg)
	msg = append(msg, rtattr(nl.TCA_KIND, []byte("tbf\x00"))...)
	// gnet_stats_queue: qlen, backlog, drops, requeues, overlimits.
	msg = append(msg, rtattr(nl.TCA_STATS2, rtattr(nl.TCA_STATS_QUEUE, u32s(1, 200, 30, 7, 40)))...)
	// tc_stats: bytes (u64), packets, drops, overlimits, bps, pps, qlen, backlog.
	msg = append(msg, rtattr(nl.TCA_STATS, u32s(0, 0, 99, 30, 40, 0, 0, 1, 200))...)
	q, err := parseQdiscMessage(msg)
	if err != nil {
		t.Fatal(err)
	}
	got := *q.Attrs().Statistics.Queue
	want := netlink.GnetStatsQueue{Qlen: 1, Backlog: 200, Drops: 30, Requeues: 7, Overlimits: 40}
	if got != want {
		t.Errorf("queue stats = %+v, want %+v", got, want)
	}
}

// TestQdiscTbfOptions decodes a tbf's TCA_OPTIONS as the kernel sends them
// (tbf_dump: TCA_TBF_PARMS, and TCA_TBF_RATE64 when the rate does not fit
// 32 bits) into its rate, burst and limit, as tc set them.
func TestQdiscTbfOptions(t *testing.T) {
	// struct tc_tbf_qopt: two struct tc_ratespec (rate at byte 8 of
	// each), then limit, buffer (psched ticks) and mtu.
	parms := func(rate32, limit, buffer uint32) []byte {
		b := make([]byte, 36)
		binary.NativeEndian.PutUint32(b[8:], rate32)
		binary.NativeEndian.PutUint32(b[24:], limit)
		binary.NativeEndian.PutUint32(b[28:], buffer)
		binary.NativeEndian.PutUint32(b[32:], 2047)
		return b
	}
	u64 := func(v uint64) []byte { return binary.NativeEndian.AppendUint64(nil, v) }
	tests := []struct {
		name               string
		opts               []byte
		rate, burst, limit uint64
	}{
		// tc qdisc add … tbf rate 1mbit burst 2k limit 3000: the kernel
		// keeps the burst as 256000 ticks of 64 ns.
		{"1mbit", rtattr(nl.TCA_TBF_PARMS, parms(125000, 3000, 256000)), 125000, 2048, 3000},
		// rate 40gbit: the 32-bit field is saturated, TCA_TBF_RATE64 has it.
		{"40gbit", append(rtattr(nl.TCA_TBF_PARMS, parms(^uint32(0), 1<<20, 2000)), rtattr(nl.TCA_TBF_RATE64, u64(5e9))...), 5e9, 640000, 1 << 20},
	}
	for _, tt := range tests {
		msg := make([]byte, nl.SizeofTcMsg)
		binary.NativeEndian.PutUint32(msg[4:], 4)                    // ifindex
		binary.NativeEndian.PutUint32(msg[8:], 0x10000)              // handle 1:
		binary.NativeEndian.PutUint32(msg[12:], netlink.HANDLE_ROOT) // parent
		msg = append(msg, rtattr(nl.TCA_KIND, []byte("tbf\x00"))...)
		msg = append(msg, rtattr(nl.TCA_OPTIONS, tt.opts)...)
		msg = append(msg, rtattr(nl.TCA_STATS2, rtattr(nl.TCA_STATS_QUEUE, make([]byte, 20)))...)
		q, err := parseQdiscMessage(msg)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		got := map[string]uint64{}
		for _, c := range qdiscCounters(map[int]string{4: "veth0"}, []netlink.Qdisc{q}) {
			if c.Object != "veth0 tbf 1:" {
				t.Errorf("%s: object %q", tt.name, c.Object)
			}
			got[c.Field] = c.Value
		}
		want := map[string]uint64{"drops": 0, "overlimits": 0, "requeues": 0, "backlog": 0, "qlen": 0, "rate": tt.rate, "burst": tt.burst, "limit": tt.limit}
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("%s: counters (-want +got):\n%s", tt.name, d)
		}
	}
	// Options too short for struct tc_tbf_qopt are an error, not zeros.
	msg := make([]byte, nl.SizeofTcMsg)
	msg = append(msg, rtattr(nl.TCA_KIND, []byte("tbf\x00"))...)
	msg = append(msg, rtattr(nl.TCA_OPTIONS, rtattr(nl.TCA_TBF_PARMS, make([]byte, 20)))...)
	if _, err := parseQdiscMessage(msg); !errors.Is(err, ErrFileParse) {
		t.Errorf("short tca_tbf_parms: err = %v, want ErrFileParse", err)
	}
}

func TestTbfBurst(t *testing.T) {
	tests := []struct {
		rate  uint64
		ticks uint32
		want  uint64
	}{
		{125000, 256000, 2048},
		{125000, 0, 0},
		// rate·ticks·64 overflows 64 bits: 2^60 bytes/s for 2^32-1 ticks.
		{1 << 60, ^uint32(0), math.MaxUint64},
		{5e9, 2000, 640000},
	}
	for _, tt := range tests {
		if got := tbfBurst(tt.rate, tt.ticks); got != tt.want {
			t.Errorf("tbfBurst(%d, %d) = %d, want %d", tt.rate, tt.ticks, got, tt.want)
		}
	}
}

// TestFqCodelAndHTBClassMessages decodes an fq_codel's options and
// extended statistics, and an htb class, laid out as the kernel sends them
// (fq_codel_dump, fq_codel_dump_stats; htb_dump_class).
func TestFqCodelAndHTBClassMessages(t *testing.T) {
	u32s := func(vs ...uint32) []byte {
		b := make([]byte, 4*len(vs))
		for i, v := range vs {
			binary.NativeEndian.PutUint32(b[4*i:], v)
		}
		return b
	}
	tcmsg := func(ifindex int32, handle, parent uint32) []byte {
		m := make([]byte, nl.SizeofTcMsg)
		binary.NativeEndian.PutUint32(m[4:], uint32(ifindex))
		binary.NativeEndian.PutUint32(m[8:], handle)
		binary.NativeEndian.PutUint32(m[12:], parent)
		return m
	}
	// fq_codel 10: under class 1:10, limit 20 packets, memory_limit 32 MB;
	// xstats: type 0, maxpacket, drop_overlimit, ecn_mark, new_flow_count,
	// new_flows_len, old_flows_len, ce_mark, memory_usage, drop_overmemory.
	msg := tcmsg(4, 0x100000, 0x10010)
	msg = append(msg, rtattr(nl.TCA_KIND, []byte("fq_codel\x00"))...)
	msg = append(msg, rtattr(nl.TCA_OPTIONS, append(rtattr(nl.TCA_FQ_CODEL_LIMIT, u32s(20)), rtattr(nl.TCA_FQ_CODEL_MEMORY_LIMIT, u32s(32<<20))...))...)
	msg = append(msg, rtattr(nl.TCA_STATS2, append(rtattr(nl.TCA_STATS_QUEUE, u32s(20, 20000, 180, 0, 0)),
		rtattr(nl.TCA_STATS_APP, u32s(0, 1042, 176, 3, 1, 1, 0, 0, 40960, 4))...))...)
	q, err := parseQdiscMessage(msg)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]uint64{}
	for _, c := range qdiscCounters(map[int]string{4: "veth0"}, []netlink.Qdisc{q}) {
		got[c.Object+" "+c.Field] = c.Value
	}
	want := map[string]uint64{
		"veth0 fq_codel 10: drops": 180, "veth0 fq_codel 10: overlimits": 0, "veth0 fq_codel 10: requeues": 0,
		"veth0 fq_codel 10: backlog": 20000, "veth0 fq_codel 10: qlen": 20,
		"veth0 fq_codel 10: packet_limit": 20, "veth0 fq_codel 10: memory_limit": 32 << 20,
		"veth0 fq_codel 10: drop_overlimit": 176, "veth0 fq_codel 10: drop_overmemory": 4, "veth0 fq_codel 10: ecn_mark": 3,
		"veth0 fq_codel 10: new_flow_count": 1, "veth0 fq_codel 10: memory_usage": 40960,
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("fq_codel counters (-want +got):\n%s", d)
	}

	// htb class 1:10, rate 1mbit ceil 2mbit: struct tc_htb_opt's rate and
	// ceil rate fields at bytes 8 and 20.
	parms := make([]byte, 44)
	binary.NativeEndian.PutUint32(parms[8:], 125000)
	binary.NativeEndian.PutUint32(parms[20:], 250000)
	cm := tcmsg(4, 0x10010, 0x10000)
	cm = append(cm, rtattr(nl.TCA_KIND, []byte("htb\x00"))...)
	cm = append(cm, rtattr(nl.TCA_OPTIONS, rtattr(nl.TCA_HTB_PARMS, parms))...)
	cm = append(cm, rtattr(nl.TCA_STATS2, rtattr(nl.TCA_STATS_QUEUE, u32s(0, 0, 180, 0, 95)))...)
	c, ok, err := parseClassMessage(cm)
	if err != nil || !ok {
		t.Fatalf("parseClassMessage: ok %v, %v", ok, err)
	}
	gotc := classCounters(map[int]string{4: "veth0"}, []htbClass{c})
	wantc := []Counter{
		{Source: NetlinkQdisc, Object: "veth0 htb class 1:10", Field: "drops", Value: 180, Bits: 32},
		{Source: NetlinkQdisc, Object: "veth0 htb class 1:10", Field: "overlimits", Value: 95, Bits: 32},
		{Source: NetlinkQdisc, Object: "veth0 htb class 1:10", Field: "rate", Value: 125000, Gauge: true},
		{Source: NetlinkQdisc, Object: "veth0 htb class 1:10", Field: "ceil", Value: 250000, Gauge: true},
	}
	if d := cmp.Diff(wantc, gotc); d != "" {
		t.Errorf("class counters (-want +got):\n%s", d)
	}
	// A class of another kind is skipped, not misread.
	other := append(tcmsg(4, 0x10001, 0x10000), rtattr(nl.TCA_KIND, []byte("prio\x00"))...)
	if _, ok, err := parseClassMessage(other); ok || err != nil {
		t.Errorf("prio class: ok %v, err %v; want skipped", ok, err)
	}
}
