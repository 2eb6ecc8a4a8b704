package counters

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/netdrop/netdrop/stage"
)

// nftChainMessage encodes an NFT_MSG_NEWCHAIN payload as nf_tables_fill_chain_info
// does: nfgenmsg, then big-endian attributes.
func nftChainMessage(t *testing.T, family uint8, table, name string, base bool, policy uint32, packets *uint64) []byte {
	t.Helper()
	ae := netlink.NewAttributeEncoder()
	ae.ByteOrder = binary.BigEndian
	ae.String(unix.NFTA_CHAIN_TABLE, table)
	ae.Uint64(unix.NFTA_CHAIN_HANDLE, 1)
	ae.String(unix.NFTA_CHAIN_NAME, name)
	if base {
		ae.Nested(unix.NFTA_CHAIN_HOOK, func(nae *netlink.AttributeEncoder) error {
			nae.Uint32(unix.NFTA_HOOK_HOOKNUM, 1)
			nae.Uint32(unix.NFTA_HOOK_PRIORITY, 0)
			return nil
		})
		ae.Uint32(unix.NFTA_CHAIN_POLICY, policy)
		ae.String(unix.NFTA_CHAIN_TYPE, "filter")
		if packets != nil {
			ae.Nested(unix.NFTA_CHAIN_COUNTERS, func(nae *netlink.AttributeEncoder) error {
				nae.Uint64(unix.NFTA_COUNTER_BYTES, *packets*60)
				nae.Uint64(unix.NFTA_COUNTER_PACKETS, *packets)
				return nil
			})
		}
	}
	b, err := ae.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return append([]byte{family, unix.NFNETLINK_V0, 0, 0}, b...)
}

func TestParseNftChain(t *testing.T) {
	seven := uint64(7)
	tests := []struct {
		name string
		msg  []byte
		want nftChain
	}{
		{
			name: "iptables-nft INPUT, policy drop with counters",
			msg:  nftChainMessage(t, unix.NFPROTO_IPV4, "filter", "INPUT", true, 0, &seven),
			want: nftChain{Family: unix.NFPROTO_IPV4, Table: "filter", Name: "INPUT", Base: true, HasPolicy: true, Policy: 0, HasCounters: true, Packets: 7},
		},
		{
			name: "nft base chain without counters",
			msg:  nftChainMessage(t, unix.NFPROTO_INET, "t", "input", true, 1, nil),
			want: nftChain{Family: unix.NFPROTO_INET, Table: "t", Name: "input", Base: true, HasPolicy: true, Policy: 1},
		},
		{
			name: "regular chain",
			msg:  nftChainMessage(t, unix.NFPROTO_IPV6, "filter", "KUBE-SVC-X", false, 0, nil),
			want: nftChain{Family: unix.NFPROTO_IPV6, Table: "filter", Name: "KUBE-SVC-X"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseNftChain(tt.msg)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("parseNftChain (-want +got):\n%s", diff)
			}
		})
	}
	for name, msg := range map[string][]byte{
		"short":      {2, 0},
		"no name":    {2, 0, 0, 0},
		"bad length": {2, 0, 0, 0, 0xff, 0, 1, 0},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := parseNftChain(msg); !errors.Is(err, ErrFileParse) {
				t.Fatalf("parseNftChain = %v, want an error wrapping ErrFileParse", err)
			}
		})
	}
}

func FuzzParseNftChain(f *testing.F) {
	seven := uint64(7)
	f.Add(nftChainMessage(&testing.T{}, unix.NFPROTO_IPV4, "filter", "INPUT", true, 0, &seven))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		if ch, err := parseNftChain(b); err == nil {
			_, _ = nftPolicyCounters([]nftChain{ch})
		}
	})
}

func TestNftPolicyCounters(t *testing.T) {
	chains := []nftChain{
		{Family: unix.NFPROTO_IPV4, Table: "filter", Name: "INPUT", Base: true, HasPolicy: true, Policy: 0, HasCounters: true, Packets: 7},
		{Family: unix.NFPROTO_IPV4, Table: "filter", Name: "OUTPUT", Base: true, HasPolicy: true, Policy: 1, HasCounters: true, Packets: 9},
		{Family: unix.NFPROTO_INET, Table: "t", Name: "input", Base: true, HasPolicy: true, Policy: 0},
		{Family: unix.NFPROTO_INET, Table: "t", Name: "regular"},
	}
	got, missing := nftPolicyCounters(chains)
	want := []Counter{{Source: NetlinkNftables, Object: "ip filter INPUT policy drop", Field: "packets", Value: 7, Stage: stage.Netfilter}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("counters (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"inet t input policy drop"}, missing); diff != "" {
		t.Errorf("missing (-want +got):\n%s", diff)
	}
}

func TestNftRuleCounters(t *testing.T) {
	ch := nftChain{Family: unix.NFPROTO_INET, Table: "t", Name: "input"}
	rule := func(handle uint64, exprs ...expr.Any) *nftables.Rule {
		return &nftables.Rule{Handle: handle, Exprs: exprs}
	}
	named := func(name string) *expr.Objref { return &expr.Objref{Type: unix.NFT_OBJECT_COUNTER, Name: name} }
	drop := &expr.Verdict{Kind: expr.VerdictDrop}
	rules := []*nftables.Rule{
		// meta l4proto udp counter drop
		rule(2, &expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1}, &expr.Cmp{Register: 1, Data: []byte{unix.IPPROTO_UDP}},
			&expr.Counter{Packets: 50, Bytes: 2900}, drop),
		// counter accept: not a drop
		rule(3, &expr.Counter{Packets: 8}, &expr.Verdict{Kind: expr.VerdictAccept}),
		// drop without counter: nothing to report
		rule(4, drop),
		// counter reject
		rule(5, &expr.Counter{Packets: 3}, &expr.Reject{Type: unix.NFT_REJECT_ICMPX_UNREACH}),
		// iptables-nft -j REJECT: the x_tables target
		rule(6, &expr.Counter{Packets: 4}, &expr.Target{Name: "REJECT"}),
		// jump to another chain is not a drop
		rule(7, &expr.Counter{Packets: 1}, &expr.Verdict{Kind: expr.VerdictJump, Chain: "x"}),
		// counter name "dropped" drop: counts into the object
		rule(8, named("dropped"), drop),
		// counter name "seen" accept: not a drop, but "seen" is named
		rule(9, named("seen"), &expr.Verdict{Kind: expr.VerdictAccept}),
		// counter name ip saddr map { … } drop: the objref's map form,
		// which google/nftables decodes without type or name
		rule(10, &expr.Objref{}, drop),
		// quota name "q" drop: a named object, but no counter
		rule(11, &expr.Objref{Type: unix.NFT_OBJECT_QUOTA, Name: "q"}, drop),
		// both: the anonymous counter is the rule's own
		rule(12, &expr.Counter{Packets: 6}, named("seen"), drop),
	}
	got := nftRuleCounters(ch, rules, nil)
	if diff := cmp.Diff([]uint64{4, 11}, got.Uncounted); diff != "" {
		t.Errorf("uncounted drop rules (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]uint64{10}, got.MapCounted); diff != "" {
		t.Errorf("drop rules counting into a map (-want +got):\n%s", diff)
	}
	c := func(h string, v uint64) Counter {
		return Counter{Source: NetlinkNftables, Object: "inet t input handle " + h, Field: "packets", Value: v, Stage: stage.Netfilter}
	}
	want := []Counter{c("2: meta l4proto udp counter drop", 50), c("5: counter reject with icmpx no-route", 3), c("6: counter reject", 4),
		c(`12: counter counter name "seen" drop`, 6)}
	if diff := cmp.Diff(want, got.Counters); diff != "" {
		t.Errorf("nftRuleCounters (-want +got):\n%s", diff)
	}
	key := func(name string) nftObjKey { return nftObjKey{Family: unix.NFPROTO_INET, Table: "t", Name: name} }
	wantNamed := []nftNamedDrop{{Counter: key("dropped"), Chain: "input", Handle: 8, Object: `inet t input handle 8: counter name "dropped" drop`}}
	if diff := cmp.Diff(wantNamed, got.Named); diff != "" {
		t.Errorf("named counter drops (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(nftObjRefs{key("dropped"): 1, key("seen"): 2}, got.Refs); diff != "" {
		t.Errorf("counter references (-want +got):\n%s", diff)
	}
}

func TestNftNamedCounters(t *testing.T) {
	key := func(table, name string) nftObjKey {
		return nftObjKey{Family: unix.NFPROTO_INET, Table: table, Name: name}
	}
	drop := func(name string, chain string, handle uint64) nftNamedDrop {
		return nftNamedDrop{Counter: key("t", name), Chain: chain, Handle: handle,
			Object: fmt.Sprintf("inet t %s handle %d: udp dport 9999 counter name %q drop", chain, handle, name)}
	}
	obj := func(name string, packets uint64, use uint32) nftCounterObj {
		return nftCounterObj{Key: key("t", name), Packets: packets, Use: use, HasUse: true}
	}
	counter := func(object string, v uint64) Counter {
		return Counter{Source: NetlinkNftables, Object: object, Field: "packets", Value: v, Stage: stage.Netfilter}
	}
	tests := []struct {
		name     string
		named    []nftNamedDrop
		refs     nftObjRefs
		objs     []nftCounterObj
		want     []Counter
		wantUnav []Unavailable
	}{
		{
			name:  "one drop rule, the counter's only user: the rule's drops",
			named: []nftNamedDrop{drop("dropped", "input", 3)},
			refs:  nftObjRefs{key("t", "dropped"): 1},
			objs:  []nftCounterObj{obj("other", 99, 0), obj("dropped", 25, 1)},
			want:  []Counter{counter(`inet t input handle 3: udp dport 9999 counter name "dropped" drop`, 25)},
		},
		{
			name:  "two drop rules share it: one counter, named after the object and both rules",
			named: []nftNamedDrop{drop("dropped", "input", 3), drop("dropped", "forward", 7)},
			refs:  nftObjRefs{key("t", "dropped"): 2},
			objs:  []nftCounterObj{obj("dropped", 40, 2)},
			want:  []Counter{counter(`inet t counter "dropped", shared by drop rules input handle 3, forward handle 7`, 40)},
		},
		{
			name:  "an accept rule counts into it too: not a drop count",
			named: []nftNamedDrop{drop("dropped", "input", 3)},
			refs:  nftObjRefs{key("t", "dropped"): 2},
			objs:  []nftCounterObj{obj("dropped", 40, 2)},
			wantUnav: []Unavailable{{Source: NetlinkNftables, Object: `inet t counter "dropped"`,
				Reason: `drop or reject rules (handle 3) count into named counter "dropped", which 1 other rules or map elements also count into: its packets are not only drops; give the drop rules a counter of their own`}},
		},
		{
			// A map element pointing at the counter is in the kernel's
			// use count, not in the rules.
			name:  "a map element counts into it: the use count tells",
			named: []nftNamedDrop{drop("dropped", "input", 3)},
			refs:  nftObjRefs{key("t", "dropped"): 1},
			objs:  []nftCounterObj{obj("dropped", 30, 2)},
			wantUnav: []Unavailable{{Source: NetlinkNftables, Object: `inet t counter "dropped"`,
				Reason: `drop or reject rules (handle 3) count into named counter "dropped", which 1 other rules or map elements also count into: its packets are not only drops; give the drop rules a counter of their own`}},
		},
		{
			name:  "no use count in the dump: the rules' references decide",
			named: []nftNamedDrop{drop("dropped", "input", 3)},
			refs:  nftObjRefs{key("t", "dropped"): 1},
			objs:  []nftCounterObj{{Key: key("t", "dropped"), Packets: 12}},
			want:  []Counter{counter(`inet t input handle 3: udp dport 9999 counter name "dropped" drop`, 12)},
		},
		{
			name:  "same name in another table is another object; a deleted object is skipped",
			named: []nftNamedDrop{drop("gone", "input", 4)},
			refs:  nftObjRefs{key("t", "gone"): 1},
			objs:  []nftCounterObj{{Key: key("u", "gone"), Packets: 5, Use: 1, HasUse: true}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, unav := nftNamedCounters(tt.named, tt.refs, tt.objs)
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("counters (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantUnav, unav, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("unavailable (-want +got):\n%s", diff)
			}
		})
	}
}

// nftCounterObjMessage encodes an NFT_MSG_NEWOBJ payload as
// nf_tables_fill_obj_info does for a counter: nfgenmsg, then big-endian
// attributes, the counter's in NFTA_OBJ_DATA.
func nftCounterObjMessage(t *testing.T, family uint8, table, name string, typ uint32, packets uint64, use uint32) []byte {
	t.Helper()
	ae := netlink.NewAttributeEncoder()
	ae.ByteOrder = binary.BigEndian
	ae.String(unix.NFTA_OBJ_TABLE, table)
	ae.String(unix.NFTA_OBJ_NAME, name)
	ae.Uint32(unix.NFTA_OBJ_TYPE, typ)
	ae.Nested(unix.NFTA_OBJ_DATA, func(nae *netlink.AttributeEncoder) error {
		nae.Uint64(unix.NFTA_COUNTER_BYTES, packets*60)
		nae.Uint64(unix.NFTA_COUNTER_PACKETS, packets)
		return nil
	})
	ae.Uint32(unix.NFTA_OBJ_USE, use)
	b, err := ae.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return append([]byte{family, unix.NFNETLINK_V0, 0, 0}, b...)
}

func TestParseNftCounterObj(t *testing.T) {
	o, isCounter, err := parseNftCounterObj(nftCounterObjMessage(t, unix.NFPROTO_INET, "t", "dropped", unix.NFT_OBJECT_COUNTER, 25, 1))
	if err != nil || !isCounter {
		t.Fatalf("parseNftCounterObj = %v, counter %v", err, isCounter)
	}
	want := nftCounterObj{Key: nftObjKey{Family: unix.NFPROTO_INET, Table: "t", Name: "dropped"}, Packets: 25, Use: 1, HasUse: true}
	if diff := cmp.Diff(want, o); diff != "" {
		t.Errorf("parseNftCounterObj (-want +got):\n%s", diff)
	}
	if _, isCounter, err := parseNftCounterObj(nftCounterObjMessage(t, unix.NFPROTO_INET, "t", "q", unix.NFT_OBJECT_QUOTA, 0, 0)); err != nil || isCounter {
		t.Errorf("a quota object: err %v, counter %v; want no error, not a counter", err, isCounter)
	}
	for name, msg := range map[string][]byte{
		"short":      {2, 0},
		"no name":    {2, 0, 0, 0},
		"bad length": {2, 0, 0, 0, 0xff, 0, 1, 0},
	} {
		t.Run(name, func(t *testing.T) {
			if _, _, err := parseNftCounterObj(msg); !errors.Is(err, ErrFileParse) {
				t.Fatalf("parseNftCounterObj = %v, want an error wrapping ErrFileParse", err)
			}
		})
	}
}

func TestLegacyXtables(t *testing.T) {
	root := t.TempDir()
	fs := NewFS(root)
	if err := os.MkdirAll(fs.NetPath(), 0o755); err != nil {
		t.Fatal(err)
	}
	if got := legacyXtables(fs); len(got) != 0 {
		t.Errorf("no files: got %v, want nothing", got)
	}
	if err := os.WriteFile(fs.NetPath("ip_tables_names"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if got := legacyXtables(fs); len(got) != 0 {
		t.Errorf("empty file (iptables-nft only): got %v, want nothing", got)
	}
	if err := os.WriteFile(fs.NetPath("ip_tables_names"), []byte("filter\nnat\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got := legacyXtables(fs)
	if len(got) != 1 || got[0].Source != IptablesLegacy ||
		!strings.Contains(got[0].Reason, "iptables-legacy rules not read") ||
		!strings.Contains(got[0].Reason, "filter, nat") ||
		!strings.Contains(got[0].Reason, filepath.Join(root, "proc", "net", "ip_tables_names")) {
		t.Errorf("legacyXtables = %+v, want one iptables-legacy entry naming filter, nat", got)
	}
}
