package droptrace

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/cilium/ebpf/btf"
)

// subsysShift is SKB_DROP_REASON_SUBSYS_SHIFT (include/net/dropreason.h,
// since 6.4): the high 16 bits of a drop reason name the subsystem whose
// enum defines the low 16 bits; subsystem 0 is the core enum
// skb_drop_reason.
const subsysShift = 16

// Reasons names drop reason values as the running kernel defines them. The
// values move between kernels (NOT_SPECIFIED was 0 in 5.17 and is 2 today,
// reasons were inserted in the middle), so the table always comes from the
// kernel: its BTF, or the __print_symbolic table of the tracefs format.
type Reasons struct {
	// Source says where the names came from: "btf" or "tracefs".
	Source string
	names  map[uint32]string
	subsys map[uint16]string
}

// Name returns the kernel's name for code without the SKB_DROP_REASON_
// prefix, e.g. "NETFILTER_DROP". A code from a subsystem whose enum is not
// known reads "SUBSYS:low", e.g. "OPENVSWITCH:3"; an unknown core code reads
// "REASON_<n>".
func (r *Reasons) Name(code uint32) string {
	if r != nil {
		if n, ok := r.names[code]; ok {
			return n
		}
	}
	if sub := uint16(code >> subsysShift); sub != 0 {
		name := "SUBSYS_" + strconv.Itoa(int(sub))
		if r != nil && r.subsys[sub] != "" {
			name = r.subsys[sub]
		}
		return name + ":" + strconv.Itoa(int(code&0xffff))
	}
	return "REASON_" + strconv.FormatUint(uint64(code), 10)
}

// Code returns the value of a reason given by name, case-insensitive, with
// or without the SKB_DROP_REASON_ prefix. A plain number is accepted too.
func (r *Reasons) Code(name string) (uint32, bool) {
	if n, err := strconv.ParseUint(name, 0, 32); err == nil {
		return uint32(n), true
	}
	want := strings.ToUpper(strings.TrimPrefix(strings.ToUpper(name), "SKB_DROP_REASON_"))
	for code, n := range r.names {
		if n == want {
			return code, true
		}
	}
	return 0, false
}

// Names returns every known reason name, sorted by value.
func (r *Reasons) Names() []string {
	codes := make([]uint32, 0, len(r.names))
	for c := range r.names {
		codes = append(codes, c)
	}
	sort.Slice(codes, func(i, j int) bool { return codes[i] < codes[j] })
	out := make([]string, len(codes))
	for i, c := range codes {
		out[i] = r.names[c]
	}
	return out
}

// Len is the number of named reasons.
func (r *Reasons) Len() int { return len(r.names) }

// ErrNoReasons means the kernel describes no drop reasons: a kernel before
// 5.17, or BTF without the enum.
var ErrNoReasons = errors.New("kernel has no enum skb_drop_reason")

// ReasonsFromBTF reads enum skb_drop_reason and enum skb_drop_reason_subsys
// from a kernel BTF spec, and the per-subsystem reason enums (types named
// "*drop_reason" whose values carry a subsystem in the high bits, such as
// ovs_drop_reason) from spec and from any module specs given. It decodes
// every type of every spec to find them; the tracer finds them by name
// instead (kernelReasons).
func ReasonsFromBTF(spec *btf.Spec, modules ...*btf.Spec) (*Reasons, error) {
	r, core, err := coreReasonsFromBTF(spec)
	if err != nil {
		return nil, err
	}
	for _, s := range append([]*btf.Spec{spec}, modules...) {
		if s == nil {
			continue
		}
		for typ, err := range s.All() {
			if err != nil {
				return nil, fmt.Errorf("reading btf: %w", err)
			}
			e, ok := typ.(*btf.Enum)
			if !ok || e == core || !strings.HasSuffix(e.Name, "drop_reason") {
				continue
			}
			r.addSubsysEnum(e)
		}
	}
	return r, nil
}

// coreReasonsFromBTF reads enum skb_drop_reason and the subsystem names of
// enum skb_drop_reason_subsys, and returns the core enum too.
func coreReasonsFromBTF(spec *btf.Spec) (*Reasons, *btf.Enum, error) {
	var core *btf.Enum
	if err := spec.TypeByName("skb_drop_reason", &core); err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrNoReasons, err)
	}
	r := &Reasons{Source: "btf", names: map[uint32]string{}, subsys: map[uint16]string{}}
	for _, v := range core.Values {
		if v.Value>>subsysShift != 0 {
			continue // SKB_DROP_REASON_SUBSYS_MASK and the like are not reasons
		}
		r.names[uint32(v.Value)] = reasonName(v.Name)
	}
	var sub *btf.Enum
	if err := spec.TypeByName("skb_drop_reason_subsys", &sub); err == nil {
		for _, v := range sub.Values {
			name := strings.TrimPrefix(v.Name, "SKB_DROP_REASON_SUBSYS_")
			if v.Value == 0 || name == "NUM" || v.Value > 0xffff {
				continue
			}
			r.subsys[uint16(v.Value)] = name
		}
	}
	return r, core, nil
}

// addSubsysEnum names the values of a per-subsystem reason enum whose high
// bits are a known subsystem. Values in subsystem 0 (such as mac80211's
// RX_CONTINUE) are not drop reasons and are ignored.
func (r *Reasons) addSubsysEnum(e *btf.Enum) {
	for _, v := range e.Values {
		sub := uint16(v.Value >> subsysShift)
		if sub == 0 || v.Value>>32 != 0 || r.subsys[sub] == "" || strings.HasPrefix(v.Name, "__") {
			continue
		}
		if _, dup := r.names[uint32(v.Value)]; !dup {
			r.names[uint32(v.Value)] = v.Name
		}
	}
}

// reasonName strips the kernel's prefixes: SKB_DROP_REASON_NO_SOCKET ->
// NO_SOCKET, SKB_CONSUMED -> CONSUMED.
func reasonName(s string) string {
	if t, ok := strings.CutPrefix(s, "SKB_DROP_REASON_"); ok {
		return t
	}
	return strings.TrimPrefix(s, "SKB_")
}

// ReasonsFromFormat reads the __print_symbolic table of the kfree_skb
// format file, the fallback for kernels without BTF. It holds the core
// reasons only (no subsystem enums).
func ReasonsFromFormat(f Format) (*Reasons, error) {
	if _, ok := f.Field("reason"); !ok {
		return nil, fmt.Errorf("%w: tracepoint %s has no reason field", ErrNoReasons, f.Name)
	}
	tab, err := PrintSymbolic(f.PrintFmt, "reason")
	if err != nil {
		return nil, err
	}
	if len(tab) == 0 {
		return nil, fmt.Errorf("%w: no __print_symbolic table for reason in %s", ErrNoReasons, f.Name)
	}
	r := &Reasons{Source: "tracefs", names: map[uint32]string{}, subsys: map[uint16]string{}}
	for v, n := range tab {
		if v > 0xffffffff {
			return nil, fmt.Errorf("%w: reason value %d does not fit 32 bits", ErrFormat, v)
		}
		// The kernel prints names already without SKB_DROP_REASON_; a
		// name such as SKB_CSUM is the reason's full name.
		r.names[uint32(v)] = strings.TrimPrefix(n, "SKB_DROP_REASON_")
	}
	return r, nil
}
