package counters

import (
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/xt"
	"golang.org/x/sys/unix"
)

// TestRenderNftRule renders the expressions the kernel returns for rules
// (as `nft --debug=netlink list ruleset` shows them on kernel 6.18, nft
// 1.1) and expects the text `nft list ruleset` prints for each.
func TestRenderNftRule(t *testing.T) {
	l4 := func(p byte) []expr.Any {
		return []expr.Any{&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1}, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{p}}}
	}
	nf := func(p byte) []expr.Any {
		return []expr.Any{&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1}, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{p}}}
	}
	pl := func(base expr.PayloadBase, off, n uint32) expr.Any {
		return &expr.Payload{OperationType: expr.PayloadLoad, DestRegister: 1, Base: base, Offset: off, Len: n}
	}
	cmpEq := func(d ...byte) expr.Any { return &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: d} }
	th, nh := expr.PayloadBaseTransportHeader, expr.PayloadBaseNetworkHeader
	cnt, drop := &expr.Counter{}, &expr.Verdict{Kind: expr.VerdictDrop}
	cat := func(parts ...[]expr.Any) []expr.Any {
		var out []expr.Any
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	one := func(es ...expr.Any) []expr.Any { return es }
	tests := []struct {
		family uint8
		exprs  []expr.Any
		user   []byte
		sets   map[string][][]byte
		want   string
	}{
		{unix.NFPROTO_INET, cat(l4(unix.IPPROTO_UDP), one(pl(th, 2, 2), cmpEq(0x27, 0x0f), cnt, drop)), nil, nil, "udp dport 9999 counter drop"},
		{unix.NFPROTO_INET, cat(l4(unix.IPPROTO_TCP), one(pl(th, 2, 2), &expr.Lookup{SourceRegister: 1, SetName: "__set0"}, cnt,
			&expr.Reject{Type: unix.NFT_REJECT_ICMPX_UNREACH, Code: unix.NFT_REJECT_ICMPX_PORT_UNREACH})), nil,
			map[string][][]byte{"__set0": {{0, 22}, {0, 80}}}, "tcp dport { 22, 80 } counter reject"},
		{unix.NFPROTO_INET, cat(nf(unix.NFPROTO_IPV4), one(pl(nh, 12, 4), cmpEq(10, 1, 2, 3), cnt, drop)), []byte("\x00\x0bblock host\x00"), nil,
			`ip saddr 10.1.2.3 counter drop comment "block host"`},
		{unix.NFPROTO_INET, cat(one(&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1}, cmpEq('v', 'e', 't', 'h', '0', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)),
			l4(unix.IPPROTO_ICMP), one(cnt, drop)), nil, nil, `iifname "veth0" meta l4proto icmp counter drop`},
		{unix.NFPROTO_INET, one(&expr.Ct{Key: expr.CtKeySTATE, Register: 1},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: []byte{1, 0, 0, 0}, Xor: []byte{0, 0, 0, 0}},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{0, 0, 0, 0}}, cnt, drop), nil, nil, "ct state invalid counter drop"},
		{unix.NFPROTO_INET, cat(nf(unix.NFPROTO_IPV6), one(pl(nh, 24, 16), cmpEq(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1)),
			l4(unix.IPPROTO_UDP), one(pl(th, 0, 2), cmpEq(0, 53), cnt, drop)), nil, nil, "ip6 daddr ::1 udp sport 53 counter drop"},
		{unix.NFPROTO_INET, cat(l4(unix.IPPROTO_TCP), one(pl(th, 2, 2), &expr.Cmp{Op: expr.CmpOpGte, Register: 1, Data: []byte{0x03, 0xe8}},
			&expr.Cmp{Op: expr.CmpOpLte, Register: 1, Data: []byte{0x07, 0xd0}}, cnt, &expr.Reject{Type: unix.NFT_REJECT_TCP_RST})), nil, nil,
			"tcp dport 1000-2000 counter reject with tcp reset"},
		{unix.NFPROTO_INET, one(&expr.Meta{Key: expr.MetaKeyMARK, Register: 1}, cmpEq(0x10, 0, 0, 0), cnt, drop), nil, nil, "meta mark 0x00000010 counter drop"},
		{unix.NFPROTO_INET, cat(nf(unix.NFPROTO_IPV4), one(pl(nh, 12, 1), cmpEq(10), cnt, drop)), nil, nil, "ip saddr 10.0.0.0/8 counter drop"},
		{unix.NFPROTO_INET, cat(l4(unix.IPPROTO_TCP), one(pl(th, 2, 2), &expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{0, 22}}, cnt, drop)), nil, nil,
			"tcp dport != 22 counter drop"},
		{unix.NFPROTO_IPV4, one(pl(nh, 9, 1), cmpEq(unix.IPPROTO_UDP), cnt, drop), nil, nil, "ip protocol udp counter drop"},
		{unix.NFPROTO_IPV4, cat(one(pl(nh, 16, 4), cmpEq(10, 0, 0, 1)), l4(unix.IPPROTO_TCP), one(pl(th, 2, 2), cmpEq(0, 80), cnt,
			&expr.Reject{Type: unix.NFT_REJECT_ICMP_UNREACH, Code: 1})), nil, nil,
			"ip daddr 10.0.0.1 tcp dport 80 counter reject with icmp host-unreachable"},
		// iptables-nft: -s 10.9.9.9 -i eth0 -j REJECT; -m comment; -m conntrack.
		{unix.NFPROTO_IPV4, one(&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1}, cmpEq('e', 't', 'h', '0', 0), pl(nh, 12, 4), cmpEq(10, 9, 9, 9), cnt,
			&expr.Target{Name: "REJECT"}), nil, nil, `iifname "eth0" ip saddr 10.9.9.9 counter reject`},
		{unix.NFPROTO_IPV4, cat(l4(unix.IPPROTO_TCP), one(pl(th, 2, 2), cmpEq(0x01, 0xbb), &expr.Match{Name: "comment", Info: ptr(xt.Comment("no https"))}, cnt, drop)), nil, nil,
			`tcp dport 443 comment "no https" counter drop`},
		{unix.NFPROTO_IPV4, one(&expr.Match{Name: "conntrack", Rev: 3, Info: &xt.ConntrackMtinfo3{ConntrackMtinfo2: xt.ConntrackMtinfo2{StateMask: 1}}}, cnt, drop), nil, nil,
			"ct state invalid counter drop"},
		{unix.NFPROTO_INET, one(&expr.Limit{}, cnt, &expr.Log{}, drop), nil, nil, "limit counter log drop"},
		{unix.NFPROTO_INET, one(&expr.Queue{}), nil, nil, "<queue>"},
		// nft add counter inet t dropped; … udp dport 9999 counter name dropped drop
		{unix.NFPROTO_INET, cat(l4(unix.IPPROTO_UDP), one(pl(th, 2, 2), cmpEq(0x27, 0x0f), &expr.Objref{Type: unix.NFT_OBJECT_COUNTER, Name: "dropped"}, drop)),
			nil, nil, `udp dport 9999 counter name "dropped" drop`},
		{unix.NFPROTO_INET, one(&expr.Objref{Type: unix.NFT_OBJECT_QUOTA, Name: "q"}, drop), nil, nil, `quota name "q" drop`},
		// counter name ip saddr map { … }: google/nftables decodes no name
		{unix.NFPROTO_INET, cat(nf(unix.NFPROTO_IPV4), one(pl(nh, 12, 4), &expr.Objref{}, drop)), nil, nil, "<objref map> drop"},
	}
	for _, tt := range tests {
		r := &nftables.Rule{Exprs: tt.exprs, UserData: tt.user}
		var sets nftSetElems
		if tt.sets != nil {
			sets = func(name string) [][]byte { return tt.sets[name] }
		}
		if got := renderNftRule(tt.family, r, sets); got != tt.want {
			t.Errorf("got  %q\nwant %q", got, tt.want)
		}
	}
}

func ptr[T any](v T) *T { return &v }
