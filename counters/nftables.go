package counters

// nftables DROP/REJECT rule counters and base-chain policy counters, read over
// nfnetlink (NFNL_SUBSYS_NFTABLES, include/uapi/linux/netfilter/nf_tables.h):
// the NFTA_COUNTER_PACKETS of a rule's "counter" expression (struct
// nft_counter in net/netfilter/nft_counter.c), and the NFTA_CHAIN_COUNTERS a
// base chain carries when it was created with counters (iptables-nft does so
// for its built-in chains; `nft` does not). iptables-nft rules are nftables
// rules and are read here; the legacy x_tables backend is not.
//
// google/nftables decodes rules and their expressions; its Chain type has no
// counters, so chains are dumped with a small NFT_MSG_GETCHAIN request of our
// own. Every socket is opened in the calling thread, whose namespace is read.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/netdrop/netdrop/stage"
)

func init() { register(nftablesSource{}) }

// nftablesSource reads the counters of rules that drop or reject.
type nftablesSource struct{}

func (nftablesSource) ID() SourceID { return NetlinkNftables }

func (nftablesSource) Collect(ctx context.Context, r *Reading, s *Snapshot) error {
	fs := r.FS
	s.Unavailable = append(s.Unavailable, legacyXtables(fs)...)

	chains, err := dumpNftChains(r.dialer())
	if err != nil {
		if nftPermission(err) {
			s.Unavailable = append(s.Unavailable, Unavailable{
				Source: NetlinkNftables,
				Reason: "needs CAP_NET_ADMIN: nfnetlink refuses every request without it (" + err.Error() + ")",
			})
			return nil
		}
		return fmt.Errorf("nft_msg_getchain dump: %w", err)
	}
	pc, missing := nftPolicyCounters(chains)
	s.Add(pc...)
	for _, m := range missing {
		s.Unavailable = append(s.Unavailable, Unavailable{
			Source: NetlinkNftables, Object: m,
			Reason: "base chain policy is drop but the chain keeps no counters (nft counts policy drops only for chains created with counters, as iptables-nft does); add a final \"counter drop\" rule to count them",
		})
	}
	if len(chains) == 0 {
		return nil
	}

	conn, err := nftables.New(nftables.AsLasting())
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	defer conn.CloseLasting()
	for _, ch := range chains {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		t := &nftables.Table{Name: ch.Table, Family: nftables.TableFamily(ch.Family)}
		rules, err := conn.GetRules(t, &nftables.Chain{Name: ch.Name, Table: t})
		if err != nil {
			s.FailObject(NetlinkNftables, ch.object(), err)
			continue
		}
		cs, blind := nftRuleCounters(ch, rules, anonSets(conn, t))
		s.Add(cs...)
		if len(blind) > 0 {
			s.Unavailable = append(s.Unavailable, Unavailable{
				Source: NetlinkNftables, Object: ch.object(),
				Reason: fmt.Sprintf("drop or reject rules without a counter (handle %s): what they drop is not counted; add \"counter\" before the verdict", joinUints(blind)),
			})
		}
	}
	return nil
}

// anonSets reads the elements of a table's anonymous sets when a rule
// refers to one ("tcp dport { 22, 80 }"), once per table. Interval sets
// are left as their name: their elements are range ends.
func anonSets(conn *nftables.Conn, t *nftables.Table) nftSetElems {
	var byName map[string][][]byte
	return func(name string) [][]byte {
		if byName == nil {
			byName = map[string][][]byte{}
			sets, err := conn.GetSets(t)
			if err != nil {
				return nil
			}
			for _, s := range sets {
				if !s.Anonymous || s.Interval {
					continue
				}
				els, err := conn.GetSetElements(s)
				if err != nil {
					continue
				}
				var keys [][]byte
				for _, e := range els {
					keys = append(keys, e.Key)
				}
				slices.SortFunc(keys, bytes.Compare)
				byName[s.Name] = keys
			}
		}
		return byName[name]
	}
}

// joinUints prints rule handles as "2, 5".
func joinUints(v []uint64) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.FormatUint(x, 10)
	}
	return strings.Join(s, ", ")
}

// nftPermission reports a refused request. google/nftables formats some
// errors with %v, which loses the errno, so the text is checked as well.
func nftPermission(err error) bool {
	return errors.Is(err, os.ErrPermission) || errors.Is(err, unix.EPERM) ||
		strings.Contains(err.Error(), syscall.EPERM.Error())
}

// nftChain is one chain from an NFT_MSG_GETCHAIN dump.
type nftChain struct {
	Family uint8
	Table  string
	Name   string
	// Base is true for chains attached to a hook (NFTA_CHAIN_HOOK).
	Base bool
	// Policy is NFTA_CHAIN_POLICY (NF_DROP 0, NF_ACCEPT 1); valid only
	// when HasPolicy.
	Policy    uint32
	HasPolicy bool
	// Packets is NFTA_CHAIN_COUNTERS/NFTA_COUNTER_PACKETS; valid only when
	// HasCounters.
	Packets     uint64
	HasCounters bool
}

// object names a chain as `nft list` would find it: "ip filter INPUT".
func (c nftChain) object() string {
	return nftFamilyName(c.Family) + " " + c.Table + " " + c.Name
}

// nftFamilyName spells a family as nft does.
func nftFamilyName(f uint8) string {
	switch f {
	case unix.NFPROTO_IPV4:
		return "ip"
	case unix.NFPROTO_IPV6:
		return "ip6"
	case unix.NFPROTO_INET:
		return "inet"
	case unix.NFPROTO_ARP:
		return "arp"
	case unix.NFPROTO_BRIDGE:
		return "bridge"
	case unix.NFPROTO_NETDEV:
		return "netdev"
	default:
		return fmt.Sprintf("family%d", f)
	}
}

// dumpNftChains lists every chain of every family, with netlinkDump (and
// mdlayher/netlink when a reply does not fit its buffer).
func dumpNftChains(dial dialer) ([]nftChain, error) {
	const typ = unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETCHAIN
	// struct nfgenmsg: family (all), version, resource id.
	nfgen := []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, 0}
	var out []nftChain
	err := netlinkDump(dial, unix.NETLINK_NETFILTER, typ, nfgen, func(t uint16, m []byte) error {
		if t != typ&0xff00|unix.NFT_MSG_NEWCHAIN {
			return nil
		}
		ch, err := parseNftChain(m)
		if err != nil {
			return err
		}
		out = append(out, ch)
		return nil
	})
	switch {
	case errors.Is(err, errDumpTruncated):
		return dumpNftChainsLib()
	case errors.Is(err, errDumpInterrupted):
		// A chain changed meanwhile: the rest is still right, and the
		// next snapshot sees the change.
		return out, nil
	}
	return out, err
}

// dumpNftChainsLib is dumpNftChains through mdlayher/netlink.
func dumpNftChainsLib() ([]nftChain, error) {
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, nil)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	req := netlink.Message{
		Header: netlink.Header{
			Type:  netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETCHAIN),
			Flags: netlink.Request | netlink.Dump,
		},
		// struct nfgenmsg: family (all), version, resource id.
		Data: []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, 0},
	}
	msgs, err := c.Execute(req)
	if err != nil {
		return nil, err
	}
	out := make([]nftChain, 0, len(msgs))
	for _, m := range msgs {
		ch, err := parseNftChain(m.Data)
		if err != nil {
			return nil, err
		}
		out = append(out, ch)
	}
	return out, nil
}

// parseNftChain decodes the payload of one NFT_MSG_NEWCHAIN message: struct
// nfgenmsg then big-endian NFTA_CHAIN_* attributes.
func parseNftChain(b []byte) (nftChain, error) {
	if len(b) < 4 {
		return nftChain{}, fmt.Errorf("%w: nft chain message: %d bytes, shorter than nfgenmsg", ErrFileParse, len(b))
	}
	ch := nftChain{Family: b[0]}
	ad, err := netlink.NewAttributeDecoder(b[4:])
	if err != nil {
		return nftChain{}, fmt.Errorf("%w: nft chain attributes: %w", ErrFileParse, err)
	}
	ad.ByteOrder = binary.BigEndian
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_CHAIN_TABLE:
			ch.Table = ad.String()
		case unix.NFTA_CHAIN_NAME:
			ch.Name = ad.String()
		case unix.NFTA_CHAIN_HOOK:
			ch.Base = true
		case unix.NFTA_CHAIN_POLICY:
			ch.Policy, ch.HasPolicy = ad.Uint32(), true
		case unix.NFTA_CHAIN_COUNTERS:
			ad.Nested(func(nd *netlink.AttributeDecoder) error {
				for nd.Next() {
					if nd.Type() == unix.NFTA_COUNTER_PACKETS {
						ch.Packets, ch.HasCounters = nd.Uint64(), true
					}
				}
				return nil
			})
		}
	}
	if err := ad.Err(); err != nil {
		return nftChain{}, fmt.Errorf("%w: nft chain attributes: %w", ErrFileParse, err)
	}
	if ch.Table == "" || ch.Name == "" {
		return nftChain{}, fmt.Errorf("%w: nft chain message without table or name", ErrFileParse)
	}
	return ch, nil
}

// nfDrop is the verdict NF_DROP (include/uapi/linux/netfilter.h).
const nfDrop = 0

// nftPolicyCounters returns a counter for each base chain whose policy is
// drop and that keeps counters, and the names of those that keep none.
func nftPolicyCounters(chains []nftChain) (out []Counter, missing []string) {
	for _, c := range chains {
		if !c.Base || !c.HasPolicy || c.Policy != nfDrop {
			continue
		}
		obj := c.object() + " policy drop"
		if !c.HasCounters {
			missing = append(missing, obj)
			continue
		}
		out = append(out, Counter{Source: NetlinkNftables, Object: obj, Field: "packets", Value: c.Packets, Stage: stage.Netfilter})
	}
	return out, missing
}

// nftRuleCounters returns the packet counter of every rule in a chain that
// ends in drop or reject and counts, and the handles of drop or reject rules
// that keep no counter (their drops are invisible to counters). iptables-nft
// expresses -j DROP as a drop verdict and -j REJECT as a reject expression or,
// in older versions, the x_tables target "REJECT".
func nftRuleCounters(ch nftChain, rules []*nftables.Rule, sets nftSetElems) (out []Counter, uncounted []uint64) {
	for _, r := range rules {
		var counter *expr.Counter
		drops := false
		for _, e := range r.Exprs {
			switch e := e.(type) {
			case *expr.Counter:
				if counter == nil {
					counter = e
				}
			case *expr.Verdict:
				drops = drops || e.Kind == expr.VerdictDrop
			case *expr.Reject:
				drops = true
			case *expr.Target:
				drops = drops || e.Name == "REJECT" || e.Name == "DROP"
			}
		}
		if !drops {
			continue
		}
		if counter == nil {
			uncounted = append(uncounted, r.Handle)
			continue
		}
		out = append(out, Counter{
			Source: NetlinkNftables,
			Object: fmt.Sprintf("%s handle %d: %s", ch.object(), r.Handle, renderNftRule(ch.Family, r, sets)),
			Field:  "packets",
			Value:  counter.Packets,
			Stage:  stage.Netfilter,
		})
	}
	return out, uncounted
}

// legacyXtables reports x_tables (iptables-legacy) tables that hold rules
// netdrop does not read. The *_tables_names files in the namespace's
// /proc/net list the tables registered there; they are empty or absent when
// only nftables is in use.
func legacyXtables(fs FS) []Unavailable {
	var out []Unavailable
	for _, f := range []struct {
		file string
		tool SourceID
	}{
		{"ip_tables_names", IptablesLegacy},
		{"ip6_tables_names", Ip6tablesLegacy},
		{"arp_tables_names", ArptablesLegacy},
	} {
		names, err := readTableNames(fs, fs.NetPath(f.file))
		if err != nil || len(names) == 0 {
			continue
		}
		out = append(out, Unavailable{
			Source: f.tool,
			Reason: fmt.Sprintf("%s rules not read: x_tables holds tables %s (%s); netdrop reads nftables only, list them with `%s -nvL`",
				f.tool, strings.Join(names, ", "), fs.NetPath(f.file), f.tool),
		})
	}
	return out
}

// readTableNames reads one table name per line.
func readTableNames(fs FS, path string) ([]string, error) {
	f, err := fs.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	err = scanLines(f, func(_ int, line string) error {
		if n := strings.TrimSpace(line); n != "" {
			out = append(out, n)
		}
		return nil
	})
	return out, err
}
