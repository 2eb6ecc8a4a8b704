package counters

// Rule text as `nft list ruleset` shows it, rendered from the expressions
// google/nftables decodes, so a firewall finding names the rule a user can
// find and change: "udp dport 9999 counter drop". The common expressions
// are covered — meta, payload (IPv4, IPv6, TCP, UDP headers), cmp and
// ranges, anonymous and named set lookups, ct state, counter, named objects
// (`counter name "dropped"`), verdicts, reject, comments, and the xt matches iptables-nft uses (comment,
// conntrack state) — following nft's own spelling, including its removal of
// implied dependencies (`meta l4proto udp` before `udp dport`). Anything
// else shows as the expression's name in angle brackets, never silently
// left out. Counter values are left out so the text is the same in every
// snapshot.

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"reflect"
	"strconv"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/xt"
	"golang.org/x/sys/unix"
)

// nftSetElems returns the keys of an anonymous set's elements, for
// rendering "{ 22, 80 }"; nil when unknown.
type nftSetElems func(name string) [][]byte

// nftLoad is what a register holds: a meta key, a payload field or a ct key,
// with the mask a bitwise expression applied to it.
type nftLoad struct {
	kind   string // "meta", "payload", "ct"
	meta   expr.MetaKey
	base   expr.PayloadBase
	offset uint32
	len    uint32
	ct     expr.CtKey
	mask   []byte
}

// renderNftRule writes a rule's expressions as nft prints them.
func renderNftRule(family uint8, r *nftables.Rule, sets nftSetElems) string {
	var out []string
	var l4, l3 string // protocol a dependency established: "udp", "ip"
	if family == unix.NFPROTO_IPV4 {
		l3 = "ip"
	} else if family == unix.NFPROTO_IPV6 {
		l3 = "ip6"
	}
	loads := map[uint32]*nftLoad{}
	exprs := r.Exprs
	for i := 0; i < len(exprs); i++ {
		switch e := exprs[i].(type) {
		case *expr.Meta:
			if !e.SourceRegister {
				loads[e.Register] = &nftLoad{kind: "meta", meta: e.Key}
			}
		case *expr.Payload:
			if e.OperationType == expr.PayloadLoad {
				loads[e.DestRegister] = &nftLoad{kind: "payload", base: e.Base, offset: e.Offset, len: e.Len}
			}
		case *expr.Ct:
			if !e.SourceRegister {
				loads[e.Register] = &nftLoad{kind: "ct", ct: e.Key}
			}
		case *expr.Bitwise:
			if l := loads[e.SourceRegister]; l != nil {
				c := *l
				c.mask = e.Mask
				loads[e.DestRegister] = &c
			}
		case *expr.Cmp:
			l := loads[e.Register]
			if l == nil {
				out = append(out, "<cmp>")
				continue
			}
			// A range is two comparisons of one load: >= low, <= high.
			if e.Op == expr.CmpOpGte && i+1 < len(exprs) {
				if n, ok := exprs[i+1].(*expr.Cmp); ok && n.Op == expr.CmpOpLte && n.Register == e.Register {
					out = append(out, l.field(l3, l4)+" "+l.value(e.Data, l4)+"-"+l.value(n.Data, l4))
					i++
					continue
				}
			}
			// Dependencies nft leaves out: the layer 4 protocol before a
			// transport header field, the family before a network one.
			next := nextPayload(exprs[i+1:])
			switch {
			case l.isMeta(expr.MetaKeyL4PROTO) && e.Op == expr.CmpOpEq && next != nil && next.Base == expr.PayloadBaseTransportHeader,
				l.kind == "payload" && l.base == expr.PayloadBaseNetworkHeader && l3 == "ip" && l.offset == 9 && l.len == 1 &&
					e.Op == expr.CmpOpEq && next != nil && next.Base == expr.PayloadBaseTransportHeader,
				l.kind == "payload" && l.base == expr.PayloadBaseNetworkHeader && l3 == "ip6" && l.offset == 6 && l.len == 1 &&
					e.Op == expr.CmpOpEq && next != nil && next.Base == expr.PayloadBaseTransportHeader:
				l4 = protoName(firstByte(e.Data))
				continue
			case l.isMeta(expr.MetaKeyNFPROTO) && e.Op == expr.CmpOpEq && next != nil && next.Base == expr.PayloadBaseNetworkHeader:
				switch firstByte(e.Data) {
				case unix.NFPROTO_IPV4:
					l3 = "ip"
				case unix.NFPROTO_IPV6:
					l3 = "ip6"
				}
				continue
			}
			if l.kind == "ct" && l.ct == expr.CtKeySTATE && l.mask != nil && e.Op == expr.CmpOpNeq && isZero(e.Data) {
				out = append(out, "ct state "+ctStates(uint32(binary.NativeEndian.Uint32(pad4(l.mask)))))
				continue
			}
			out = append(out, l.field(l3, l4)+" "+cmpOp(e.Op)+l.value(e.Data, l4))
		case *expr.Lookup:
			l := loads[e.SourceRegister]
			field := "<lookup>"
			if l != nil {
				field = l.field(l3, l4)
			}
			neg := ""
			if e.Invert {
				neg = "!= "
			}
			set := "@" + e.SetName
			if strings.HasPrefix(e.SetName, "__set") && sets != nil && l != nil {
				if keys := sets(e.SetName); keys != nil {
					var vs []string
					for _, k := range keys {
						vs = append(vs, l.value(k, l4))
					}
					set = "{ " + strings.Join(vs, ", ") + " }"
				}
			}
			out = append(out, field+" "+neg+set)
		case *expr.Counter:
			out = append(out, "counter")
		case *expr.Objref:
			out = append(out, objrefText(e))
		case *expr.Verdict:
			out = append(out, verdictText(e))
		case *expr.Reject:
			out = append(out, rejectText(family, l3, e))
		case *expr.Log:
			out = append(out, "log")
		case *expr.Limit:
			out = append(out, "limit")
		case *expr.Match:
			out = append(out, xtMatchText(e))
		case *expr.Target:
			switch e.Name {
			case "REJECT":
				out = append(out, "reject")
			case "DROP":
				out = append(out, "drop")
			default:
				out = append(out, fmt.Sprintf("xt target %q", e.Name))
			}
		default:
			out = append(out, "<"+strings.ToLower(reflect.TypeOf(e).Elem().Name())+">")
		}
	}
	if c := nftComment(r.UserData); c != "" {
		out = append(out, fmt.Sprintf("comment %q", c))
	}
	return strings.Join(out, " ")
}

func nextPayload(es []expr.Any) *expr.Payload {
	for _, e := range es {
		switch e := e.(type) {
		case *expr.Payload:
			return e
		case *expr.Meta, *expr.Ct:
			return nil
		}
	}
	return nil
}

func (l *nftLoad) isMeta(k expr.MetaKey) bool { return l.kind == "meta" && l.meta == k }

// field names the loaded value as nft does ("udp dport", "ip saddr",
// "iifname", "meta mark").
func (l *nftLoad) field(l3, l4 string) string {
	switch l.kind {
	case "meta":
		switch l.meta {
		case expr.MetaKeyIIFNAME:
			return "iifname"
		case expr.MetaKeyOIFNAME:
			return "oifname"
		case expr.MetaKeyIIF:
			return "iif"
		case expr.MetaKeyOIF:
			return "oif"
		case expr.MetaKeyPKTTYPE:
			return "pkttype"
		}
		return "meta " + metaName(l.meta)
	case "ct":
		return "ct " + ctKeyName(l.ct)
	}
	switch l.base {
	case expr.PayloadBaseNetworkHeader:
		if l3 == "ip6" {
			switch l.offset {
			case 6:
				return "ip6 nexthdr"
			case 7:
				return "ip6 hoplimit"
			case 8:
				return "ip6 saddr"
			case 24:
				return "ip6 daddr"
			}
		} else {
			switch l.offset {
			case 8:
				return "ip ttl"
			case 9:
				return "ip protocol"
			case 12:
				return "ip saddr"
			case 16:
				return "ip daddr"
			}
		}
		return fmt.Sprintf("@nh,%d,%d", l.offset*8, l.len*8)
	case expr.PayloadBaseTransportHeader:
		proto := l4
		if proto == "" {
			proto = "th"
		}
		switch {
		case (proto == "tcp" || proto == "udp" || proto == "th") && l.offset == 0 && l.len == 2:
			return proto + " sport"
		case (proto == "tcp" || proto == "udp" || proto == "th") && l.offset == 2 && l.len == 2:
			return proto + " dport"
		case (proto == "icmp" || proto == "ipv6-icmp") && l.offset == 0 && l.len == 1:
			if proto == "ipv6-icmp" {
				return "icmpv6 type"
			}
			return "icmp type"
		}
		return fmt.Sprintf("@th,%d,%d", l.offset*8, l.len*8)
	}
	return fmt.Sprintf("@ll,%d,%d", l.offset*8, l.len*8)
}

// value prints compared data as the field's type: a port, an address (with
// a prefix when fewer bytes were loaded than the address has), a protocol,
// an interface name, a hex mark.
func (l *nftLoad) value(b []byte, l4 string) string {
	switch l.kind {
	case "meta":
		switch l.meta {
		case expr.MetaKeyIIFNAME, expr.MetaKeyOIFNAME:
			return strconv.Quote(strings.TrimRight(string(b), "\x00"))
		case expr.MetaKeyL4PROTO:
			return protoName(firstByte(b))
		case expr.MetaKeyNFPROTO:
			switch firstByte(b) {
			case unix.NFPROTO_IPV4:
				return "ipv4"
			case unix.NFPROTO_IPV6:
				return "ipv6"
			}
		case expr.MetaKeyMARK:
			return fmt.Sprintf("0x%08x", binary.NativeEndian.Uint32(pad4(b)))
		case expr.MetaKeyIIF, expr.MetaKeyOIF, expr.MetaKeySKUID, expr.MetaKeySKGID:
			return strconv.FormatUint(uint64(binary.NativeEndian.Uint32(pad4(b))), 10)
		}
		return hexBytes(b)
	case "ct":
		return hexBytes(b)
	}
	if l.base == expr.PayloadBaseNetworkHeader {
		switch {
		case l.offset == 9 && l.len == 1, l.offset == 6 && l.len == 1 && len(b) == 1:
			return protoName(firstByte(b))
		case (l.offset == 12 || l.offset == 16) && l.len <= 4:
			return prefixText(b, 4, l.len, l.mask)
		case (l.offset == 8 || l.offset == 24) && l.len <= 16 && l.len > 1:
			return prefixText(b, 16, l.len, l.mask)
		}
	}
	if len(b) == 2 {
		return strconv.Itoa(int(binary.BigEndian.Uint16(b)))
	}
	if len(b) == 1 {
		return strconv.Itoa(int(b[0]))
	}
	return hexBytes(b)
}

// prefixText prints an address of size bytes compared on its first n bytes
// (nft loads only the prefix's bytes for a byte-aligned prefix) or under a
// mask: "10.0.0.0/8".
func prefixText(b []byte, size int, n uint32, mask []byte) string {
	full := make([]byte, size)
	copy(full, b[:min(int(n), len(b))])
	bits := int(n) * 8
	if mask != nil {
		bits = 0
		for _, m := range mask {
			for i := 7; i >= 0 && m&(1<<i) != 0; i-- {
				bits++
			}
		}
	}
	a, _ := netip.AddrFromSlice(full)
	if bits == size*8 {
		return a.String()
	}
	return fmt.Sprintf("%s/%d", a, bits)
}

func cmpOp(op expr.CmpOp) string {
	switch op {
	case expr.CmpOpNeq:
		return "!= "
	case expr.CmpOpLt:
		return "< "
	case expr.CmpOpLte:
		return "<= "
	case expr.CmpOpGt:
		return "> "
	case expr.CmpOpGte:
		return ">= "
	}
	return ""
}

func protoName(p byte) string {
	switch p {
	case unix.IPPROTO_ICMP:
		return "icmp"
	case unix.IPPROTO_TCP:
		return "tcp"
	case unix.IPPROTO_UDP:
		return "udp"
	case unix.IPPROTO_ICMPV6:
		return "ipv6-icmp"
	case unix.IPPROTO_SCTP:
		return "sctp"
	case unix.IPPROTO_UDPLITE:
		return "udplite"
	}
	return strconv.Itoa(int(p))
}

func metaName(k expr.MetaKey) string {
	switch k {
	case expr.MetaKeyMARK:
		return "mark"
	case expr.MetaKeyL4PROTO:
		return "l4proto"
	case expr.MetaKeyNFPROTO:
		return "nfproto"
	case expr.MetaKeyPROTOCOL:
		return "protocol"
	case expr.MetaKeySKUID:
		return "skuid"
	case expr.MetaKeySKGID:
		return "skgid"
	case expr.MetaKeyLEN:
		return "length"
	case expr.MetaKeyPRIORITY:
		return "priority"
	}
	return fmt.Sprintf("key%d", k)
}

func ctKeyName(k expr.CtKey) string {
	switch k {
	case expr.CtKeySTATE:
		return "state"
	case expr.CtKeySTATUS:
		return "status"
	case expr.CtKeyMARK:
		return "mark"
	case expr.CtKeyDIRECTION:
		return "direction"
	}
	return fmt.Sprintf("key%d", k)
}

// ctStates names the bits of a ct state mask as nft does
// (include/uapi/linux/netfilter/nf_conntrack_common.h: the bit of
// IP_CT_ESTABLISHED and its kin shifted by one, INVALID bit 0, UNTRACKED 6).
func ctStates(mask uint32) string {
	var s []string
	for _, st := range []struct {
		bit  uint32
		name string
	}{{1, "invalid"}, {2, "established"}, {4, "related"}, {8, "new"}, {64, "untracked"}} {
		if mask&st.bit != 0 {
			s = append(s, st.name)
		}
	}
	if len(s) == 0 {
		return fmt.Sprintf("0x%x", mask)
	}
	return strings.Join(s, ",")
}

// objrefText names a stateful object a rule refers to as nft does:
// `counter name "dropped"`. google/nftables decodes only the immediate form,
// so a map of objects ("counter name ip saddr map { … }") shows as
// "<objref map>".
func objrefText(o *expr.Objref) string {
	if o.Name == "" {
		return "<objref map>"
	}
	kinds := map[int]string{unix.NFT_OBJECT_COUNTER: "counter name", unix.NFT_OBJECT_QUOTA: "quota name", unix.NFT_OBJECT_LIMIT: "limit name",
		unix.NFT_OBJECT_SYNPROXY: "synproxy name", unix.NFT_OBJECT_CT_HELPER: "ct helper set", unix.NFT_OBJECT_CT_TIMEOUT: "ct timeout set",
		unix.NFT_OBJECT_CT_EXPECT: "ct expectation set", unix.NFT_OBJECT_SECMARK: "meta secmark set"}
	kind, ok := kinds[o.Type]
	if !ok {
		kind = fmt.Sprintf("object %d", o.Type)
	}
	return fmt.Sprintf("%s %q", kind, o.Name)
}

func verdictText(v *expr.Verdict) string {
	switch v.Kind {
	case expr.VerdictDrop:
		return "drop"
	case expr.VerdictAccept:
		return "accept"
	case expr.VerdictReturn:
		return "return"
	case expr.VerdictContinue:
		return "continue"
	case expr.VerdictJump:
		return "jump " + v.Chain
	case expr.VerdictGoto:
		return "goto " + v.Chain
	case expr.VerdictQueue:
		return "queue"
	}
	return fmt.Sprintf("verdict %d", v.Kind)
}

// rejectText follows nft: plain "reject" for each family's default (ICMP
// port unreachable; in inet and bridge tables the ICMPx one), else "with".
func rejectText(family uint8, l3 string, r *expr.Reject) string {
	switch r.Type {
	case unix.NFT_REJECT_TCP_RST:
		return "reject with tcp reset"
	case unix.NFT_REJECT_ICMPX_UNREACH:
		names := []string{"no-route", "port-unreachable", "host-unreachable", "admin-prohibited"}
		if r.Code == unix.NFT_REJECT_ICMPX_PORT_UNREACH {
			return "reject"
		}
		if int(r.Code) < len(names) {
			return "reject with icmpx " + names[r.Code]
		}
		return fmt.Sprintf("reject with icmpx %d", r.Code)
	}
	if family == unix.NFPROTO_IPV6 || l3 == "ip6" {
		names := []string{"no-route", "admin-prohibited", "", "addr-unreachable", "port-unreachable", "policy-fail", "reject-route"}
		if r.Code == 4 && family == unix.NFPROTO_IPV6 {
			return "reject"
		}
		if int(r.Code) < len(names) && names[r.Code] != "" {
			return "reject with icmpv6 " + names[r.Code]
		}
		return fmt.Sprintf("reject with icmpv6 %d", r.Code)
	}
	names := map[uint8]string{0: "net-unreachable", 1: "host-unreachable", 2: "prot-unreachable", 3: "port-unreachable",
		9: "net-prohibited", 10: "host-prohibited", 13: "admin-prohibited"}
	if r.Code == 3 && family == unix.NFPROTO_IPV4 {
		return "reject"
	}
	if n, ok := names[r.Code]; ok {
		return "reject with icmp " + n
	}
	return fmt.Sprintf("reject with icmp %d", r.Code)
}

// xtMatchText renders the x_tables matches iptables-nft puts in rules.
func xtMatchText(m *expr.Match) string {
	switch info := m.Info.(type) {
	case *xt.Comment:
		return fmt.Sprintf("comment %q", string(*info))
	case *xt.ConntrackMtinfo1:
		return "ct state " + ctStates(uint32(info.StateMask))
	case *xt.ConntrackMtinfo2:
		return "ct state " + ctStates(uint32(info.StateMask))
	case *xt.ConntrackMtinfo3:
		return "ct state " + ctStates(uint32(info.StateMask))
	}
	return fmt.Sprintf("xt match %q", m.Name)
}

// nftComment reads the comment of a rule's user data: type-length-value
// records, the comment being type 0 (NFTNL_UDATA_RULE_COMMENT), a
// NUL-terminated string.
func nftComment(ud []byte) string {
	for len(ud) >= 2 {
		t, n := ud[0], int(ud[1])
		if 2+n > len(ud) {
			return ""
		}
		if t == 0 {
			return strings.TrimRight(string(ud[2:2+n]), "\x00")
		}
		ud = ud[2+n:]
	}
	return ""
}

func firstByte(b []byte) byte {
	if len(b) == 0 {
		return 0
	}
	return b[0]
}

func isZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

func pad4(b []byte) []byte {
	if len(b) >= 4 {
		return b[:4]
	}
	p := make([]byte, 4)
	copy(p, b)
	return p
}

func hexBytes(b []byte) string { return fmt.Sprintf("0x%x", b) }
