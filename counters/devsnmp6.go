package counters

// Per-interface IPv6 statistics: /proc/net/dev_snmp6/IF, one file per
// interface with IPv6, in snmp6's "Name value" layout plus an ifIndex line.
// The namespace-wide /proc/net/snmp6 is their sum and carries the stages;
// these say on which interface IPv6 packets were discarded, so they are
// context (no stage) and a drop is never counted twice.
//
// A file costs its open, the kernel's formatting of ~100 lines and a close:
// 30–45 µs an interface. The snapshot's RTM_GETLINK dump already carries
// the same numbers (IFLA_AF_SPEC, AF_INET6: IFLA_INET6_STATS and
// IFLA_INET6_ICMP6STATS, filled from the same per-interface MIBs) but
// unnamed, in arrays laid out by enum IPSTATS_MIB_*, which kernels have
// reordered (6.18's layout is not the uapi header of older releases), so
// netdrop cannot name them safely. What it can tell without names is
// whether every one is zero: then so is every field of the file, and the
// file is not read. Interfaces that are down, or that never carried IPv6,
// cost nothing; the others are read as before.

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"io/fs"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

func init() { register(devSNMP6Source{}) }

// devSNMP6Source reads the drop and error fields of every interface's
// /proc/net/dev_snmp6 file.
type devSNMP6Source struct{}

func (devSNMP6Source) ID() SourceID { return ProcNetDevSNMP6 }

// devSNMP6Fields are the fields kept per interface: the packets the
// interface received (to judge a rate against) and every discard or error,
// not the byte and multicast counts (60 of the file's 70 lines, on hosts
// with hundreds of interfaces).
var devSNMP6Fields = []string{
	"Ip6:InReceives", "Ip6:InHdrErrors", "Ip6:InTooBigErrors", "Ip6:InNoRoutes", "Ip6:InAddrErrors",
	"Ip6:InUnknownProtos", "Ip6:InTruncatedPkts", "Ip6:InDiscards", "Ip6:OutDiscards", "Ip6:OutNoRoutes",
	"Ip6:ReasmFails", "Ip6:FragFails", "Icmp6:InErrors", "Icmp6:OutErrors", "Icmp6:InCsumErrors",
}

// Collect implements Source. A namespace without IPv6 has no dev_snmp6
// directory: nothing to read, and snmp6 already reports IPv6 missing.
func (devSNMP6Source) Collect(ctx context.Context, r *Reading, s *Snapshot) error {
	links, err := r.linkDump()
	if err != nil {
		// Without the dump, which interfaces have IPv6 is the
		// directory's listing, and every file is read.
		return collectDevSNMP6Dir(ctx, r, s)
	}
	for _, l := range links {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		switch l.IPv6 {
		case ipv6None:
			continue // no inet6_dev, so no file either
		case ipv6Zero:
			s.Counters = slices.Grow(s.Counters, len(devSNMP6Fields))
			for _, f := range devSNMP6Fields {
				s.Counters = append(s.Counters, Counter{Source: ProcNetDevSNMP6, Object: l.Name, Field: f})
			}
			s.index = nil
			continue
		}
		readDevSNMP6(r, s, l.Name)
	}
	return nil
}

// collectDevSNMP6Dir reads the file of every interface the dev_snmp6
// directory lists.
func collectDevSNMP6Dir(ctx context.Context, r *Reading, s *Snapshot) error {
	names, err := readDirNames(r.FS.NetPath("dev_snmp6"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	slices.Sort(names)
	for _, ifname := range names {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		readDevSNMP6(r, s, ifname)
	}
	return nil
}

// readDevSNMP6 adds one interface's file to s; a file that is gone (the
// interface went away, or never had IPv6) adds nothing.
func readDevSNMP6(r *Reading, s *Snapshot, ifname string) {
	cs, err := readSource(r.FS, ProcNetDevSNMP6, r.FS.NetPath("dev_snmp6", ifname), func(rd io.Reader) ([]Counter, error) {
		return parseDevSNMP6(ifname, &seqFileReader{r: rd})
	})
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	if err != nil {
		s.FailObject(ProcNetDevSNMP6, ifname, err)
	}
	s.Add(cs...)
}

// ipv6State is what an interface's link dump entry says of its IPv6
// statistics.
type ipv6State uint8

const (
	// ipv6None: no AF_INET6 statistics, the interface has no inet6_dev
	// and so no dev_snmp6 file.
	ipv6None ipv6State = iota
	// ipv6Counted: some statistic is not zero; the file says which.
	ipv6Counted
	// ipv6Zero: every IPv6 and ICMPv6 statistic is zero.
	ipv6Zero
)

// ipv6StateOf reads an IFLA_AF_SPEC payload (one nest per address family,
// whose type is the family). Only zeros are trusted without a name: an
// AF_INET6 nest that does not decode, or that lacks either array, is
// ipv6Counted, so its file is read.
func ipv6StateOf(afSpec []byte) ipv6State {
	var fbuf [8]rtAttr
	families, err := appendRtAttrs(fbuf[:0], afSpec)
	if err != nil {
		return ipv6Counted
	}
	for _, fam := range families {
		if fam.Type != unix.AF_INET6 {
			continue
		}
		var abuf [16]rtAttr
		attrs, err := appendRtAttrs(abuf[:0], fam.Value)
		if err != nil {
			return ipv6Counted
		}
		arrays := 0
		for _, a := range attrs {
			if a.Type != unix.IFLA_INET6_STATS && a.Type != unix.IFLA_INET6_ICMP6STATS {
				continue
			}
			arrays++
			// Word 0 is the number of words, not a statistic.
			for i := 8; i+8 <= len(a.Value); i += 8 {
				if binary.NativeEndian.Uint64(a.Value[i:]) != 0 {
					return ipv6Counted
				}
			}
		}
		if arrays == 2 {
			return ipv6Zero
		}
		return ipv6Counted
	}
	return ipv6None
}

// devSNMP6Names maps each kept field as the file spells it
// ("Ip6InDiscards") to its counter name ("Ip6:InDiscards").
var devSNMP6Names = func() map[string]string {
	m := map[string]string{}
	for _, n := range devSNMP6Fields {
		m[strings.Replace(n, ":", "", 1)] = n
	}
	return m
}()

// parseDevSNMP6 reads one interface's file, keeping the fields of
// devSNMP6Fields: the others are skipped by name before anything is
// allocated for them.
func parseDevSNMP6(ifname string, r io.Reader) ([]Counter, error) {
	buf := getFields()
	defer func() { putFields(buf) }()
	out := make([]Counter, 0, len(devSNMP6Fields))
	err := scanLines(r, func(n int, line string) error {
		fields := appendFields(buf[:0], line)
		buf = fields
		if len(fields) == 0 {
			return nil
		}
		name, ok := devSNMP6Names[fields[0]]
		if !ok {
			return nil
		}
		if len(fields) != 2 {
			return lineError(n, "want \"name value\", got %q", line)
		}
		v, err := parseSigned(fields[1])
		if err != nil {
			return lineError(n, "%s: %q is not a number", fields[0], fields[1])
		}
		out = append(out, Counter{Source: ProcNetDevSNMP6, Object: ifname, Field: name, Value: v})
		return nil
	})
	return out, err
}
