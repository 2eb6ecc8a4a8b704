package counters

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
)

// TestHooksOf lists an XDP program and tc filters of two interfaces as
// the link dump and netlink decode them, in interface, point and preference order.
func TestHooksOf(t *testing.T) {
	eth0 := linkInfo{Index: 2, Name: "eth0", XDPAttached: nl.XDP_ATTACHED_DRV, XDPProgID: 31}
	veth := linkInfo{Index: 5, Name: "lxc1"}
	bpfIn := &netlink.BpfFilter{FilterAttrs: netlink.FilterAttrs{LinkIndex: 5, Priority: 1, Handle: 1}, Id: 77, Name: "cil_from_container", DirectAction: true}
	u32 := &netlink.U32{FilterAttrs: netlink.FilterAttrs{LinkIndex: 5, Priority: 49152, Handle: 0x800}}
	bpfOut := &netlink.BpfFilter{FilterAttrs: netlink.FilterAttrs{LinkIndex: 9, Priority: 2}, Id: 78, Name: "to"}
	got := hooksOf([]linkInfo{eth0, veth}, map[int][]tcFilterAt{
		5: {{HookTCIngress, u32}, {HookTCIngress, bpfIn}},
		9: {{HookTCEgress, bpfOut}},
	})
	want := []Hook{
		{Ifname: "eth0", Ifindex: 2, Point: HookXDP, Mode: "native", ProgID: 31},
		{Ifname: "ifindex9", Ifindex: 9, Point: HookTCEgress, Kind: "bpf", Pref: 2, ProgID: 78, ProgName: "to"},
		{Ifname: "lxc1", Ifindex: 5, Point: HookTCIngress, Kind: "bpf", Pref: 1, Handle: 1, ProgID: 77, ProgName: "cil_from_container", Mode: "direct-action"},
		{Ifname: "lxc1", Ifindex: 5, Point: HookTCIngress, Kind: "u32", Pref: 49152, Handle: 0x800},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("hooksOf (-want +got):\n%s", diff)
	}
	if l := got[2].Label(); l != "lxc1 tc-ingress bpf pref 1 prog 77 cil_from_container (direct-action)" {
		t.Errorf("Label = %q", l)
	}
	// Run counts become counters only where statistics are on.
	got[0].RunStats, got[0].RunCount = true, 1234
	cs := hookCounters(got)
	if len(cs) != 1 || cs[0].Object != "eth0 xdp prog 31" || cs[0].Value != 1234 || cs[0].Stage != "" {
		t.Errorf("hookCounters = %+v", cs)
	}
}
