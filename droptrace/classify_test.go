package droptrace

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/netdrop/netdrop/stage"
)

// TestClassify is the reason/location -> stage table. Locations are those
// seen on 6.18 (the drop reasons this kernel reports) and, for the
// reasonless rows, what kernels before 5.17 report.
func TestClassify(t *testing.T) {
	tests := []struct {
		reason, fn string
		want       Class
	}{
		{"NETFILTER_DROP", "nft_do_chain", st(stage.Netfilter)},
		{"NETFILTER_DROP", "nf_hook_slow", Class{Stage: stage.Netfilter, Alt: stage.Conntrack, Class: ClassStage}},
		{"NETFILTER_DROP", "nf_conntrack_in", st(stage.Conntrack)},
		{"NETFILTER_DROP", "__nf_conntrack_confirm", st(stage.Conntrack)},
		{"NO_SOCKET", "__udp4_lib_rcv", st(stage.NoSocket)},
		{"NO_SOCKET", "tcp_v4_rcv", st(stage.NoSocket)},
		{"SOCKET_RCVBUFF", "__udp_enqueue_schedule_skb", st(stage.SocketRcvbuf)},
		{"SOCKET_BACKLOG", "tcp_add_backlog", st(stage.SocketRcvbuf)},
		{"PROTO_MEM", "udp_queue_rcv_one_skb", st(stage.SocketRcvbuf)},
		{"TCP_ZEROWINDOW", "tcp_data_queue", st(stage.SocketRcvbuf)},
		{"TCP_LISTEN_OVERFLOW", "tcp_conn_request", st(stage.TCPListen)},
		{"TCP_INVALID_SEQUENCE", "tcp_validate_incoming", st(stage.TCP)},
		{"TCP_CSUM", "tcp_v4_rcv", st(stage.TCP)},
		{"QDISC_DROP", "__dev_queue_xmit", st(stage.Qdisc)},
		{"QDISC_OVERLIMIT", "tbf_enqueue", st(stage.Qdisc)},
		{"TC_EGRESS", "sch_handle_egress", st(stage.Qdisc)},
		{"CPU_BACKLOG", "enqueue_to_backlog", st(stage.Softirq)},
		{"IP_RPFILTER", "ip_rcv_finish_core", st(stage.IP)},
		{"IP_INNOROUTES", "ip_route_input_slow", st(stage.IP)},
		{"OTHERHOST", "ip_rcv_core", st(stage.IP)},
		{"NEIGH_FAILED", "neigh_invalidate", st(stage.Neighbor)},
		{"NEIGH_QUEUEFULL", "__neigh_event_send", st(stage.Neighbor)},
		{"FULL_RING", "veth_xdp_rcv", st(stage.RxRing)},
		{"DEV_READY", "__dev_queue_xmit", st(stage.TxRing)},
		// Noise: not loss.
		{"NOT_SPECIFIED", "ip6_mc_input", noise},
		{"NOT_SPECIFIED", "skb_queue_purge_reason", noise},
		{"NOT_SPECIFIED", "unix_release_sock", noise},
		{"NOT_SPECIFIED", "udp_destruct_common", noise},
		{"QUEUE_PURGE", "skb_queue_purge_reason", noise},
		{"SOCKET_CLOSE", "tcp_close", noise},
		{"CONSUMED", "anything", noise},
		// NOT_SPECIFIED elsewhere, and kernels without reasons: by location.
		{"NOT_SPECIFIED", "enqueue_to_backlog", st(stage.Softirq)},
		{"NOT_SPECIFIED", "__dev_forward_skb2", Class{Class: ClassOther}},
		{"", "nf_hook_slow", Class{Stage: stage.Netfilter, Alt: stage.Conntrack, Class: ClassStage}},
		{"", "__udp4_lib_rcv", st(stage.NoSocket)},
		{"", "__udp_enqueue_schedule_skb", st(stage.SocketRcvbuf)},
		{"", "tcp_v4_rcv", st(stage.TCP)},
		{"", "skb_queue_purge", noise},
		{"REASON_999", "neigh_invalidate", st(stage.Neighbor)},
		// The receive-side hooks and devices.
		{"TC_INGRESS", "sch_handle_ingress", st(stage.TCIngress)},
		{"TC_INGRESS", "__netif_receive_skb_core", st(stage.TCIngress)},
		{"TC_CHAIN_NOTFOUND", "sch_handle_ingress", st(stage.TCIngress)},
		{"TC_CHAIN_NOTFOUND", "sch_handle_egress", st(stage.Qdisc)},
		{"TC_EGRESS", "__dev_queue_xmit", st(stage.Qdisc)},
		{"XDP", "do_xdp_generic", st(stage.XDP)},
		{"NOT_SPECIFIED", "do_xdp_generic", st(stage.XDP)},
		{"NOT_SPECIFIED", "veth_xdp_rcv_skb", st(stage.XDP)},
		{"VXLAN_INVALID_HDR", "vxlan_rcv", st(stage.Tunnel)},
		{"VXLAN_VNI_NOT_FOUND", "vxlan_rcv", st(stage.Tunnel)},
		{"NOT_SPECIFIED", "br_handle_frame", st(stage.Bridge)},
		{"BRIDGE_INGRESS_STP_STATE", "br_handle_frame_finish", st(stage.Bridge)},
		{"NO_TX_TARGET", "vxlan_xmit_one", st(stage.TxRing)},
		// Outside the stages: shown with their reason, never noise.
		{"SECURITY_HOOK", "selinux_ip_postroute", Class{Class: ClassPolicy}},
		{"CAN_RX_INVALID_FRAME", "can_rcv", Class{Class: ClassOther}},
		// Unknown to the table: by prefix, conservatively.
		{"OVS_DROP_LAST_ACTION", "ovs_execute_actions", Class{Class: ClassOther}},
		{"TCP_SOMETHING_NEW", "tcp_v4_rcv", st(stage.TCP)},
		{"IPV6_SOMETHING_NEW", "ip6_rcv_core", st(stage.IP)},
		{"SOMETHING_NEW", "ip_rcv_core", Class{Class: ClassOther}},
		{"TC_SOMETHING_NEW", "sch_handle_ingress", Class{Class: ClassOther}},
	}
	for _, tt := range tests {
		got := Classify(tt.reason, tt.fn)
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("Classify(%q, %q) (-want +got):\n%s", tt.reason, tt.fn, diff)
		}
		if got.Stage != "" && !stage.Valid(got.Stage) || got.Alt != "" && !stage.Valid(got.Alt) {
			t.Errorf("Classify(%q, %q) = %+v: not a stage ID", tt.reason, tt.fn, got)
		}
	}
}

// st is a classification on stage s.
func st(s stage.ID) Class { return Class{Stage: s, Class: ClassStage} }

// noise is the classification of frees that are not loss.
var noise = Class{Noise: true, Class: ClassNoise}

// TestReasonTable checks the table itself: every row has a meaning, a
// stage exactly when its class is ClassStage, and a real stage; no name is
// listed twice (reasonIndex panics on that when first used).
func TestReasonTable(t *testing.T) {
	for _, ri := range reasonTable {
		if ri.Meaning == "" || strings.Contains(ri.Meaning, "\n") {
			t.Errorf("%s: want a one-line meaning, got %q", ri.Name, ri.Meaning)
		}
		if (ri.Class == ClassStage) != (ri.Stage != "") {
			t.Errorf("%s: class %q with stage %q", ri.Name, ri.Class, ri.Stage)
		}
		if ri.Stage != "" && !stage.Valid(ri.Stage) {
			t.Errorf("%s: %q is not a stage", ri.Name, ri.Stage)
		}
		if ri.Fallback {
			t.Errorf("%s: a table row marked as fallback", ri.Name)
		}
	}
	for _, name := range []string{"OVS_DROP_LAST_ACTION", "REASON_200", "OPENVSWITCH:3", "BRAND_NEW"} {
		ri := LookupReason(name)
		if !ri.Fallback || ri.Meaning == "" || ri.Class == "" {
			t.Errorf("LookupReason(%q) = %+v: want a described fallback", name, ri)
		}
	}
	// The receive-side hooks of the path are named by their reasons.
	for reason, want := range map[string]stage.ID{"TC_INGRESS": stage.TCIngress, "XDP": stage.XDP,
		"VXLAN_VNI_NOT_FOUND": stage.Tunnel, "BRIDGE_INGRESS_STP_STATE": stage.Bridge} {
		if got := LookupReason(reason).Stage; got != want {
			t.Errorf("%s: stage %q, want %q", reason, got, want)
		}
	}
}

func TestDelta(t *testing.T) {
	k1 := rowKey{location: 1, reason: 12, netns: 5}
	k2 := rowKey{location: 2, reason: 3, netns: 5}
	prev := Snapshot{
		Rows:       []Row{{Count: 10, Reason: "NETFILTER_DROP", key: k1, Flows: []Flow{{Proto: "udp", Src: "a", Dst: "b", Count: 10}}}},
		Noise:      []Row{{Count: 4, Reason: "NOT_SPECIFIED", key: k2, Noise: true}},
		LostEvents: 3,
	}
	cur := Snapshot{
		Rows: []Row{
			{Count: 25, Reason: "NETFILTER_DROP", key: k1, Flows: []Flow{{Proto: "udp", Src: "a", Dst: "b", Count: 20}, {Proto: "udp", Src: "c", Dst: "b", Count: 5}}},
			{Count: 7, Reason: "NO_SOCKET", key: rowKey{location: 3, reason: 3}},
		},
		Noise:      []Row{{Count: 4, Reason: "NOT_SPECIFIED", key: k2, Noise: true}},
		LostEvents: 8,
	}
	d := Delta(prev, cur)
	want := []Row{
		{Count: 15, Reason: "NETFILTER_DROP", key: k1, Flows: []Flow{{Proto: "udp", Src: "a", Dst: "b", Count: 10}, {Proto: "udp", Src: "c", Dst: "b", Count: 5}}},
		{Count: 7, Reason: "NO_SOCKET", key: rowKey{location: 3, reason: 3}},
	}
	if diff := cmp.Diff(want, d.Rows, cmp.AllowUnexported(Row{}, rowKey{})); diff != "" {
		t.Errorf("rows (-want +got):\n%s", diff)
	}
	if len(d.Noise) != 0 || d.LostEvents != 5 || d.Drops() != 22 {
		t.Errorf("noise %v lost %d drops %d; want none, 5, 22", d.Noise, d.LostEvents, d.Drops())
	}
	top := TopFlows(d, 1)
	if len(top.Rows[0].Flows) != 1 || len(d.Rows[0].Flows) != 2 {
		t.Errorf("TopFlows trimmed to %d (source now %d), want 1 (source untouched 2)", len(top.Rows[0].Flows), len(d.Rows[0].Flows))
	}
}

func TestByStage(t *testing.T) {
	s := Snapshot{Rows: []Row{
		{Count: 5, Reason: "VXLAN_INVALID_HDR", Location: "vxlan_rcv+0x10"},
		{Count: 100, Reason: "NETFILTER_DROP", Location: "nft_do_chain+0x3e8", Stage: stage.Netfilter, Netns: 7, Ifname: "b0", Protocol: "ipv4", L4: "udp"},
		{Count: 50, Reason: "NO_SOCKET", Location: "__udp4_lib_rcv+0x4bc", Stage: stage.NoSocket},
		{Count: 30, Reason: "NETFILTER_DROP", Location: "nf_hook_slow+0x7d", Stage: stage.Netfilter, AltStage: stage.Conntrack, Ifindex: 3},
	}}
	got := ByStage(s, Hints{})
	var stages []stage.ID
	var drops []uint64
	for _, g := range got {
		stages = append(stages, g.Stage)
		drops = append(drops, g.Drops)
	}
	if diff := cmp.Diff([]stage.ID{stage.Netfilter, stage.NoSocket, ""}, stages); diff != "" {
		t.Errorf("stages (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]uint64{130, 50, 5}, drops); diff != "" {
		t.Errorf("drops (-want +got):\n%s", diff)
	}
	if got[0].Rows[0].Count != 100 {
		t.Errorf("netfilter rows not sorted: %+v", got[0].Rows)
	}
	if e := got[0].Rows[0].Evidence(); e != "NETFILTER_DROP at nft_do_chain+0x3e8 (netns 7, b0, ipv4/udp)" {
		t.Errorf("Evidence = %q", e)
	}
	if e := got[0].Rows[1].Evidence(); e != "NETFILTER_DROP at nf_hook_slow+0x7d (ifindex 3)" {
		t.Errorf("Evidence = %q", e)
	}
	// With conntrack's own drop counters moving, nf_hook_slow is conntrack.
	got = ByStage(s, Hints{ConntrackDrops: 30})
	stages = nil
	drops = nil
	for _, g := range got {
		stages = append(stages, g.Stage)
		drops = append(drops, g.Drops)
	}
	if diff := cmp.Diff([]stage.ID{stage.Netfilter, stage.Conntrack, stage.NoSocket, ""}, stages); diff != "" {
		t.Errorf("stages with conntrack drops (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]uint64{100, 30, 50, 5}, drops); diff != "" {
		t.Errorf("drops with conntrack drops (-want +got):\n%s", diff)
	}
	if got[1].Rows[0].Stage != stage.Conntrack {
		t.Errorf("row regrouped under conntrack keeps stage %q", got[1].Rows[0].Stage)
	}
}

func TestDeltaStacks(t *testing.T) {
	k := rowKey{location: 1}
	prev := Snapshot{Rows: []Row{{Count: 10, key: k, Stacks: []Stack{{ID: 1, Samples: 8}}}}}
	cur := Snapshot{Rows: []Row{{Count: 300, key: k, Stacks: []Stack{{ID: 1, Samples: 9}, {ID: 2, Samples: 3}}}}}
	d := Delta(prev, cur)
	want := []Stack{{ID: 2, Samples: 3}, {ID: 1, Samples: 1}}
	if diff := cmp.Diff(want, d.Rows[0].Stacks); diff != "" {
		t.Errorf("stacks (-want +got):\n%s", diff)
	}
}

// TestNoiseCodes checks the reasons the BPF program skips flows and stacks
// for, on 6.18's values: exactly the noise of the reason table, and none
// without reasons.
func TestNoiseCodes(t *testing.T) {
	r, err := ReasonsFromFormat(readFormatFixture(t, "linux-6.18.format"))
	if err != nil {
		t.Fatal(err)
	}
	got := noiseCodes(r)
	// SOCKET_CLOSE 4, UNIX_DISCONNECT 7, UNIX_SKIP_OOB 8, QUEUE_PURGE 104.
	if diff := cmp.Diff([]uint32{4, 7, 8, 104}, got); diff != "" {
		t.Errorf("noiseCodes (-want +got):\n%s", diff)
	}
	if len(got) > maxNoise {
		t.Errorf("%d noise reasons, the program takes %d", len(got), maxNoise)
	}
	if got := noiseCodes(nil); got != nil {
		t.Errorf("noiseCodes(nil) = %v", got)
	}
}
