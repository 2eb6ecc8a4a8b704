package droptrace

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/netdrop/netdrop/stage"
)

// TestClassify is the reason/location -> stage table. Locations are those
// seen on 6.18 (see /work/shared/reference/kfree_skb.md) and, for the
// reasonless rows, what kernels before 5.17 report.
func TestClassify(t *testing.T) {
	tests := []struct {
		reason, fn string
		want       Class
	}{
		{"NETFILTER_DROP", "nft_do_chain", Class{Stage: stage.Netfilter}},
		{"NETFILTER_DROP", "nf_hook_slow", Class{Stage: stage.Netfilter, Alt: stage.Conntrack}},
		{"NETFILTER_DROP", "nf_conntrack_in", Class{Stage: stage.Conntrack}},
		{"NETFILTER_DROP", "__nf_conntrack_confirm", Class{Stage: stage.Conntrack}},
		{"NO_SOCKET", "__udp4_lib_rcv", Class{Stage: stage.NoSocket}},
		{"NO_SOCKET", "tcp_v4_rcv", Class{Stage: stage.NoSocket}},
		{"SOCKET_RCVBUFF", "__udp_enqueue_schedule_skb", Class{Stage: stage.SocketRcvbuf}},
		{"SOCKET_BACKLOG", "tcp_add_backlog", Class{Stage: stage.SocketRcvbuf}},
		{"PROTO_MEM", "udp_queue_rcv_one_skb", Class{Stage: stage.SocketRcvbuf}},
		{"TCP_ZEROWINDOW", "tcp_data_queue", Class{Stage: stage.SocketRcvbuf}},
		{"TCP_LISTEN_OVERFLOW", "tcp_conn_request", Class{Stage: stage.TCPListen}},
		{"TCP_INVALID_SEQUENCE", "tcp_validate_incoming", Class{Stage: stage.TCP}},
		{"TCP_CSUM", "tcp_v4_rcv", Class{Stage: stage.TCP}},
		{"QDISC_DROP", "__dev_queue_xmit", Class{Stage: stage.Qdisc}},
		{"QDISC_OVERLIMIT", "tbf_enqueue", Class{Stage: stage.Qdisc}},
		{"TC_EGRESS", "sch_handle_egress", Class{Stage: stage.Qdisc}},
		{"CPU_BACKLOG", "enqueue_to_backlog", Class{Stage: stage.Softirq}},
		{"IP_RPFILTER", "ip_rcv_finish_core", Class{Stage: stage.IP}},
		{"IP_INNOROUTES", "ip_route_input_slow", Class{Stage: stage.IP}},
		{"OTHERHOST", "ip_rcv_core", Class{Stage: stage.IP}},
		{"NEIGH_FAILED", "neigh_invalidate", Class{Stage: stage.Neighbor}},
		{"NEIGH_QUEUEFULL", "__neigh_event_send", Class{Stage: stage.Neighbor}},
		{"FULL_RING", "veth_xdp_rcv", Class{Stage: stage.RxRing}},
		{"DEV_READY", "__dev_queue_xmit", Class{Stage: stage.TxRing}},
		// Noise: not loss.
		{"NOT_SPECIFIED", "ip6_mc_input", Class{Noise: true}},
		{"NOT_SPECIFIED", "skb_queue_purge_reason", Class{Noise: true}},
		{"NOT_SPECIFIED", "unix_release_sock", Class{Noise: true}},
		{"NOT_SPECIFIED", "udp_destruct_common", Class{Noise: true}},
		{"QUEUE_PURGE", "skb_queue_purge_reason", Class{Noise: true}},
		{"SOCKET_CLOSE", "tcp_close", Class{Noise: true}},
		{"CONSUMED", "anything", Class{Noise: true}},
		// NOT_SPECIFIED elsewhere, and kernels without reasons: by location.
		{"NOT_SPECIFIED", "enqueue_to_backlog", Class{Stage: stage.Softirq}},
		{"NOT_SPECIFIED", "__dev_forward_skb2", Class{}},
		{"", "nf_hook_slow", Class{Stage: stage.Netfilter, Alt: stage.Conntrack}},
		{"", "__udp4_lib_rcv", Class{Stage: stage.NoSocket}},
		{"", "__udp_enqueue_schedule_skb", Class{Stage: stage.SocketRcvbuf}},
		{"", "tcp_v4_rcv", Class{Stage: stage.TCP}},
		{"", "skb_queue_purge", Class{Noise: true}},
		{"REASON_999", "neigh_invalidate", Class{Stage: stage.Neighbor}},
		// Reasons without a stage stay without one.
		{"VXLAN_INVALID_HDR", "vxlan_rcv", Class{}},
		{"OVS_DROP_LAST_ACTION", "ovs_execute_actions", Class{}},
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
	for r, s := range reasonStage {
		if !stage.Valid(s) {
			t.Errorf("reasonStage[%s] = %q is not a stage", r, s)
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
