package droptrace

import (
	"testing"

	"github.com/cilium/ebpf/btf"
)

// btfSpec builds a BTF spec from types, as a kernel's would hold them.
func btfSpec(t *testing.T, types ...btf.Type) *btf.Spec {
	t.Helper()
	b, err := btf.NewBuilder(types, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := b.Spec()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func enum(name string, vals ...btf.EnumValue) *btf.Enum {
	return &btf.Enum{Name: name, Size: 4, Values: vals}
}

// TestReasonsFromBTF uses enums shaped like the kernel's since 6.4: the core
// enum, the subsystem enum, and openvswitch's per-subsystem enum in its
// module BTF, values (SUBSYS << 16) | n.
func TestReasonsFromBTF(t *testing.T) {
	core := enum("skb_drop_reason",
		btf.EnumValue{Name: "SKB_NOT_DROPPED_YET", Value: 0},
		btf.EnumValue{Name: "SKB_CONSUMED", Value: 1},
		btf.EnumValue{Name: "SKB_DROP_REASON_NOT_SPECIFIED", Value: 2},
		btf.EnumValue{Name: "SKB_DROP_REASON_NO_SOCKET", Value: 3},
		btf.EnumValue{Name: "SKB_DROP_REASON_NETFILTER_DROP", Value: 12},
		btf.EnumValue{Name: "SKB_DROP_REASON_MAX", Value: 128},
		btf.EnumValue{Name: "SKB_DROP_REASON_SUBSYS_MASK", Value: 0xffff0000},
	)
	sub := enum("skb_drop_reason_subsys",
		btf.EnumValue{Name: "SKB_DROP_REASON_SUBSYS_CORE", Value: 0},
		btf.EnumValue{Name: "SKB_DROP_REASON_SUBSYS_MAC80211_UNUSABLE", Value: 1},
		btf.EnumValue{Name: "SKB_DROP_REASON_SUBSYS_MAC80211_MONITOR", Value: 2},
		btf.EnumValue{Name: "SKB_DROP_REASON_SUBSYS_OPENVSWITCH", Value: 3},
		btf.EnumValue{Name: "SKB_DROP_REASON_SUBSYS_NUM", Value: 4},
	)
	// An unrelated flags enum with a value in the high bits must not be
	// taken for a subsystem reason.
	flags := enum("netdev_priv_flags", btf.EnumValue{Name: "IFF_LIVE_ADDR_CHANGE", Value: 0x30001})
	ovs := enum("ovs_drop_reason",
		btf.EnumValue{Name: "__OVS_DROP_REASON", Value: 3 << 16},
		btf.EnumValue{Name: "OVS_DROP_LAST_ACTION", Value: 3<<16 | 1},
		btf.EnumValue{Name: "OVS_DROP_ACTION_ERROR", Value: 3<<16 | 2},
	)
	r, err := ReasonsFromBTF(btfSpec(t, core, sub, flags), btfSpec(t, ovs))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		code uint32
		want string
	}{
		{0, "NOT_DROPPED_YET"},
		{1, "CONSUMED"},
		{2, "NOT_SPECIFIED"},
		{3, "NO_SOCKET"},
		{12, "NETFILTER_DROP"},
		{13, "REASON_13"},
		{3<<16 | 1, "OVS_DROP_LAST_ACTION"},
		{3<<16 | 9, "OPENVSWITCH:9"},
		{1<<16 | 5, "MAC80211_UNUSABLE:5"},
		{9<<16 | 5, "SUBSYS_9:5"},
		{0x30001, "OVS_DROP_LAST_ACTION"},
	}
	for _, tt := range tests {
		if got := r.Name(tt.code); got != tt.want {
			t.Errorf("Name(%#x) = %q, want %q", tt.code, got, tt.want)
		}
	}
	if r.Source != "btf" {
		t.Errorf("source %q", r.Source)
	}
	if c, ok := r.Code("netfilter_drop"); !ok || c != 12 {
		t.Errorf("Code(netfilter_drop) = %d, %v", c, ok)
	}
	if _, ok := r.Code("NO_SUCH_REASON"); ok {
		t.Error("Code accepted an unknown name")
	}
	if _, err := ReasonsFromBTF(btfSpec(t, sub)); err == nil {
		t.Error("a spec without skb_drop_reason gave no error")
	}
}
