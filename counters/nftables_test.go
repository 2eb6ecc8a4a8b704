package counters

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
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
	rules := []*nftables.Rule{
		// meta l4proto udp counter drop
		rule(2, &expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1}, &expr.Cmp{Register: 1, Data: []byte{unix.IPPROTO_UDP}},
			&expr.Counter{Packets: 50, Bytes: 2900}, &expr.Verdict{Kind: expr.VerdictDrop}),
		// counter accept: not a drop
		rule(3, &expr.Counter{Packets: 8}, &expr.Verdict{Kind: expr.VerdictAccept}),
		// drop without counter: nothing to report
		rule(4, &expr.Verdict{Kind: expr.VerdictDrop}),
		// counter reject
		rule(5, &expr.Counter{Packets: 3}, &expr.Reject{Type: unix.NFT_REJECT_ICMPX_UNREACH}),
		// iptables-nft -j REJECT: the x_tables target
		rule(6, &expr.Counter{Packets: 4}, &expr.Target{Name: "REJECT"}),
		// jump to another chain is not a drop
		rule(7, &expr.Counter{Packets: 1}, &expr.Verdict{Kind: expr.VerdictJump, Chain: "x"}),
	}
	got, uncounted := nftRuleCounters(ch, rules, nil)
	if diff := cmp.Diff([]uint64{4}, uncounted); diff != "" {
		t.Errorf("uncounted drop rules (-want +got):\n%s", diff)
	}
	c := func(h string, v uint64) Counter {
		return Counter{Source: NetlinkNftables, Object: "inet t input handle " + h, Field: "packets", Value: v, Stage: stage.Netfilter}
	}
	want := []Counter{c("2: meta l4proto udp counter drop", 50), c("5: counter reject with icmpx no-route", 3), c("6: counter reject", 4)}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("nftRuleCounters (-want +got):\n%s", diff)
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
