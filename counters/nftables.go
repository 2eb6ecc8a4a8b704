package counters

// nftables DROP/REJECT rule counters and base-chain policy counters, read over
// nfnetlink (NFNL_SUBSYS_NFTABLES, include/uapi/linux/netfilter/nf_tables.h):
// the NFTA_COUNTER_PACKETS of a rule's "counter" expression (struct
// nft_counter in net/netfilter/nft_counter.c) or of the named counter object
// it counts into ("counter name \"dropped\"", an objref expression whose
// count lives in the object, read with NFT_MSG_GETOBJ), and the
// NFTA_CHAIN_COUNTERS a base chain carries when it was created with counters
// (iptables-nft does so for its built-in chains; `nft` does not).
// iptables-nft rules are nftables rules and are read here; the legacy
// x_tables backend is not.
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
	var named []nftNamedDrop
	refs := nftObjRefs{}
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
		scan := nftRuleCounters(ch, rules, anonSets(conn, t))
		s.Add(scan.Counters...)
		named = append(named, scan.Named...)
		refs.add(scan.Refs)
		if len(scan.Uncounted) > 0 {
			s.Unavailable = append(s.Unavailable, Unavailable{
				Source: NetlinkNftables, Object: ch.object(),
				Reason: fmt.Sprintf("drop or reject rules without a counter (handle %s): what they drop is not counted; add \"counter\" before the verdict", joinUints(scan.Uncounted)),
			})
		}
		if len(scan.MapCounted) > 0 {
			s.Unavailable = append(s.Unavailable, Unavailable{
				Source: NetlinkNftables, Object: ch.object(),
				Reason: fmt.Sprintf("drop or reject rules that count into a counter map (handle %s): each packet goes to the counter its map element names, which netdrop does not read; `nft list counters table %s %s` shows them, or add \"counter\" before the verdict", joinUints(scan.MapCounted), nftFamilyName(ch.Family), ch.Table),
			})
		}
	}
	if len(named) == 0 {
		return nil
	}
	// Only a ruleset with drop rules that count into named counters
	// pays for the object dump.
	objs, err := dumpNftCounterObjs(r.dialer())
	if err != nil {
		// The rules' own counters are in s already: only the named
		// counters are missing, each said so by name (failing the whole
		// source would read as "nftables unreadable").
		seen := map[nftObjKey]bool{}
		for _, d := range named {
			if !seen[d.Counter] {
				seen[d.Counter] = true
				s.FailObject(NetlinkNftables, fmt.Sprintf("%s %s counter %q", nftFamilyName(d.Counter.Family), d.Counter.Table, d.Counter.Name),
					fmt.Errorf("nft_msg_getobj dump: %w", err))
			}
		}
		return nil
	}
	cs, unav := nftNamedCounters(named, refs, objs)
	s.Add(cs...)
	s.Unavailable = append(s.Unavailable, unav...)
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

// nftRuleScan is what the rules of one chain say about drops.
type nftRuleScan struct {
	// Counters is the counter of each drop or reject rule that has an
	// anonymous "counter" expression.
	Counters []Counter
	// Uncounted is the handles of drop or reject rules that keep no
	// counter at all (their drops are invisible to counters).
	Uncounted []uint64
	// Named is the drop or reject rules that count into a named counter
	// object ("counter name \"dropped\""), resolved against the object
	// dump by nftNamedCounters.
	Named []nftNamedDrop
	// MapCounted is the handles of drop or reject rules that count into
	// a counter picked from a map ("counter name ip saddr map { … }").
	MapCounted []uint64
	// Refs counts, per counter object, the rules of the chain that name
	// it, drop or not.
	Refs nftObjRefs
}

// nftObjKey is a named object: they live in a table, and a rule can only
// name one of its own table's.
type nftObjKey struct {
	Family uint8
	Table  string
	Name   string
}

// nftObjRefs counts rules naming each counter object.
type nftObjRefs map[nftObjKey]int

func (r nftObjRefs) add(o nftObjRefs) {
	for k, n := range o {
		r[k] += n
	}
}

// nftNamedDrop is a drop or reject rule counting into a named counter.
type nftNamedDrop struct {
	Counter nftObjKey
	// Chain and Handle say where the rule is; Object is the rule as
	// nftRuleCounters names rules: "inet t input handle 3: udp dport
	// 9999 counter name \"dropped\" drop".
	Chain  string
	Handle uint64
	Object string
}

// nftRuleCounters scans a chain's rules for drops: the packet counter of
// every rule that ends in drop or reject and counts, the handles of those
// that do not, and the ones that count into named counter objects. An
// anonymous counter is preferred to a named one when a rule has both.
// iptables-nft expresses -j DROP as a drop verdict and -j REJECT as a
// reject expression or, in older versions, the x_tables target "REJECT".
func nftRuleCounters(ch nftChain, rules []*nftables.Rule, sets nftSetElems) nftRuleScan {
	scan := nftRuleScan{Refs: nftObjRefs{}}
	for _, r := range rules {
		var counter *expr.Counter
		var named *expr.Objref
		viaMap, drops := false, false
		for _, e := range r.Exprs {
			switch e := e.(type) {
			case *expr.Counter:
				if counter == nil {
					counter = e
				}
			case *expr.Objref:
				// google/nftables decodes only the immediate form
				// (NFTA_OBJREF_IMM_TYPE and _NAME); the map form has
				// neither, so a nameless objref is a map's.
				switch {
				case e.Name == "":
					viaMap = true
				case e.Type == unix.NFT_OBJECT_COUNTER:
					scan.Refs[nftObjKey{ch.Family, ch.Table, e.Name}]++
					if named == nil {
						named = e
					}
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
		obj := fmt.Sprintf("%s handle %d: %s", ch.object(), r.Handle, renderNftRule(ch.Family, r, sets))
		switch {
		case counter != nil:
			scan.Counters = append(scan.Counters, Counter{
				Source: NetlinkNftables,
				Object: obj,
				Field:  "packets",
				Value:  counter.Packets,
				Stage:  stage.Netfilter,
			})
		case named != nil:
			scan.Named = append(scan.Named, nftNamedDrop{
				Counter: nftObjKey{ch.Family, ch.Table, named.Name},
				Chain:   ch.Name, Handle: r.Handle, Object: obj,
			})
		case viaMap:
			scan.MapCounted = append(scan.MapCounted, r.Handle)
		default:
			scan.Uncounted = append(scan.Uncounted, r.Handle)
		}
	}
	return scan
}

// nftCounterObj is one named counter from an NFT_MSG_GETOBJ dump.
type nftCounterObj struct {
	Key     nftObjKey
	Packets uint64
	// Use is NFTA_OBJ_USE, the kernel's count of what refers to the
	// object: each rule naming it (nft_objref_init) and each map element
	// pointing at it (nft_add_set_elem). Valid only when HasUse.
	Use    uint32
	HasUse bool
}

// nftNamedCounters turns drop rules that count into named counters into
// counters. A named counter is a drop count only when nothing but drop
// rules count into it, which the kernel's use count tells (map elements
// included, which the rules do not show): one such rule gets the object's
// packets under its own name; several share one counter named after the
// object and the rules, so no drop is counted twice. A counter that other
// rules or map elements also count into is not a drop count, and says so.
// refs is the rules naming each object, for kernels whose dump carries no
// use count.
func nftNamedCounters(named []nftNamedDrop, refs nftObjRefs, objs []nftCounterObj) (out []Counter, unav []Unavailable) {
	byKey := make(map[nftObjKey]nftCounterObj, len(objs))
	for _, o := range objs {
		byKey[o.Key] = o
	}
	byObj := map[nftObjKey][]nftNamedDrop{}
	var order []nftObjKey
	for _, d := range named {
		if _, ok := byObj[d.Counter]; !ok {
			order = append(order, d.Counter)
		}
		byObj[d.Counter] = append(byObj[d.Counter], d)
	}
	for _, k := range order {
		ds := byObj[k]
		where := nftFamilyName(k.Family) + " " + k.Table
		o, ok := byKey[k]
		if !ok {
			// Deleted between the rule and the object dump: the next
			// snapshot sees the change.
			continue
		}
		users := refs[k]
		if o.HasUse {
			users = int(o.Use)
		}
		if users > len(ds) {
			var handles []uint64
			for _, d := range ds {
				handles = append(handles, d.Handle)
			}
			unav = append(unav, Unavailable{
				Source: NetlinkNftables, Object: fmt.Sprintf("%s counter %q", where, k.Name),
				Reason: fmt.Sprintf("drop or reject rules (handle %s) count into named counter %q, which %d other rules or map elements also count into: its packets are not only drops; give the drop rules a counter of their own", joinUints(handles), k.Name, users-len(ds)),
			})
			continue
		}
		obj := ds[0].Object
		if len(ds) > 1 {
			rules := make([]string, len(ds))
			for i, d := range ds {
				rules[i] = fmt.Sprintf("%s handle %d", d.Chain, d.Handle)
			}
			obj = fmt.Sprintf("%s counter %q, shared by drop rules %s", where, k.Name, strings.Join(rules, ", "))
		}
		out = append(out, Counter{Source: NetlinkNftables, Object: obj, Field: "packets", Value: o.Packets, Stage: stage.Netfilter})
	}
	return out, unav
}

// dumpNftCounterObjs lists the named counters of every table of every
// family. The dump asks the kernel for counter objects only (NFTA_OBJ_TYPE
// in the request, nf_tables_dump_obj_start); quotas, limits and the rest
// stay in the kernel.
func dumpNftCounterObjs(dial dialer) ([]nftCounterObj, error) {
	const typ = unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETOBJ
	ae := netlink.NewAttributeEncoder()
	ae.ByteOrder = binary.BigEndian
	ae.Uint32(unix.NFTA_OBJ_TYPE, unix.NFT_OBJECT_COUNTER)
	attrs, err := ae.Encode()
	if err != nil {
		return nil, err
	}
	// struct nfgenmsg: family (all), version, resource id.
	req := append([]byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, 0}, attrs...)
	var out []nftCounterObj
	err = netlinkDump(dial, unix.NETLINK_NETFILTER, typ, req, func(t uint16, m []byte) error {
		if t != typ&0xff00|unix.NFT_MSG_NEWOBJ {
			return nil
		}
		o, isCounter, err := parseNftCounterObj(m)
		if err != nil {
			return err
		}
		if isCounter {
			out = append(out, o)
		}
		return nil
	})
	if errors.Is(err, errDumpInterrupted) {
		// An object changed meanwhile: the rest is still right.
		return out, nil
	}
	return out, err
}

// parseNftCounterObj decodes the payload of one NFT_MSG_NEWOBJ message
// (nf_tables_fill_obj_info): struct nfgenmsg then big-endian NFTA_OBJ_*
// attributes, the counter's own in NFTA_OBJ_DATA. isCounter is false for
// an object of another type.
func parseNftCounterObj(b []byte) (o nftCounterObj, isCounter bool, err error) {
	if len(b) < 4 {
		return o, false, fmt.Errorf("%w: nft object message: %d bytes, shorter than nfgenmsg", ErrFileParse, len(b))
	}
	o.Key.Family = b[0]
	ad, err := netlink.NewAttributeDecoder(b[4:])
	if err != nil {
		return o, false, fmt.Errorf("%w: nft object attributes: %w", ErrFileParse, err)
	}
	ad.ByteOrder = binary.BigEndian
	var typ uint32
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_OBJ_TABLE:
			o.Key.Table = ad.String()
		case unix.NFTA_OBJ_NAME:
			o.Key.Name = ad.String()
		case unix.NFTA_OBJ_TYPE:
			typ = ad.Uint32()
		case unix.NFTA_OBJ_USE:
			o.Use, o.HasUse = ad.Uint32(), true
		case unix.NFTA_OBJ_DATA:
			ad.Nested(func(nd *netlink.AttributeDecoder) error {
				for nd.Next() {
					if nd.Type() == unix.NFTA_COUNTER_PACKETS {
						o.Packets = nd.Uint64()
					}
				}
				return nil
			})
		}
	}
	if err := ad.Err(); err != nil {
		return nftCounterObj{}, false, fmt.Errorf("%w: nft object attributes: %w", ErrFileParse, err)
	}
	if o.Key.Table == "" || o.Key.Name == "" {
		return nftCounterObj{}, false, fmt.Errorf("%w: nft object message without table or name", ErrFileParse)
	}
	return o, typ == unix.NFT_OBJECT_COUNTER, nil
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
