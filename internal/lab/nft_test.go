package lab

import (
	"reflect"
	"testing"

	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// TestMatchExprs pins the rule expressions the scenarios install, word for
// word as nft would build them: `meta l4proto udp udp dport 5000` and
// `meta l4proto tcp tcp dport 5021 tcp flags & rst != 0`, which share the
// destination port match (offset 2 in both headers).
func TestMatchExprs(t *testing.T) {
	dport := func(proto uint8, hi, lo byte) []expr.Any {
		return []expr.Any{
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{hi, lo}},
		}
	}
	tests := []struct {
		name string
		got  []expr.Any
		want []expr.Any
	}{
		{"udp dport", matchUDPDport(5000), dport(unix.IPPROTO_UDP, 0x13, 0x88)},
		{"tcp rst", matchTCPRst(5021), append(dport(unix.IPPROTO_TCP, 0x13, 0x9d),
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 13, Len: 1},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{0x04}, Xor: []byte{0}},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{0}},
		)},
	}
	for _, tt := range tests {
		if !reflect.DeepEqual(tt.got, tt.want) {
			t.Errorf("%s:\n got %#v\nwant %#v", tt.name, tt.got, tt.want)
		}
	}
}
