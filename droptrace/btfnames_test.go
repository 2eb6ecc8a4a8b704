package droptrace

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/cilium/ebpf/btf"
	"github.com/google/go-cmp/cmp"
)

// TestBTFNamesWithSuffix marshals BTF in both byte orders, with the names a
// kernel has (the enums, a struct member and a function named like them),
// and wants the enum names that end in the suffix: the member and the bare
// suffix are not types the tracer needs, and a name is listed once.
func TestBTFNamesWithSuffix(t *testing.T) {
	u32 := &btf.Int{Name: "unsigned int", Size: 4}
	types := []btf.Type{
		enum("skb_drop_reason", btf.EnumValue{Name: "SKB_DROP_REASON_NOT_SPECIFIED", Value: 2}),
		enum("ovs_drop_reason", btf.EnumValue{Name: "OVS_DROP_LAST_ACTION", Value: 3<<16 | 1}),
		enum("netdev_priv_flags", btf.EnumValue{Name: "IFF_LIVE_ADDR_CHANGE", Value: 0x30001}),
		&btf.Struct{Name: "sk_skb_cb", Size: 4, Members: []btf.Member{{Name: "drop_reason", Type: u32}}},
		&btf.Typedef{Name: "ovs_drop_reason", Type: u32},
	}
	b, err := btf.NewBuilder(types, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, bo := range []binary.ByteOrder{binary.LittleEndian, binary.BigEndian} {
		raw, err := b.Marshal(nil, &btf.MarshalOptions{Order: bo})
		if err != nil {
			t.Fatal(err)
		}
		got, err := btfNamesWithSuffix(bytes.NewReader(raw), "drop_reason")
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{"ovs_drop_reason", "skb_drop_reason"}, got); diff != "" {
			t.Errorf("%v: names (-want +got):\n%s", bo, diff)
		}
	}
	if _, err := btfNamesWithSuffix(bytes.NewReader([]byte("not btf at all, just text....")), "x"); err == nil {
		t.Error("text taken for BTF")
	}
}
