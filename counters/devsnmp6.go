package counters

// Per-interface IPv6 statistics: /proc/net/dev_snmp6/IF, one file per
// interface with IPv6, in snmp6's "Name value" layout plus an ifIndex line.
// The namespace-wide /proc/net/snmp6 is their sum and carries the stages;
// these say on which interface IPv6 packets were discarded, so they are
// context (no stage) and a drop is never counted twice.

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"strings"
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
	dir := r.FS.NetPath("dev_snmp6")
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range ents {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		ifname := e.Name()
		cs, err := readSource(r.FS, ProcNetDevSNMP6, r.FS.NetPath("dev_snmp6", ifname), func(rd io.Reader) ([]Counter, error) {
			return parseDevSNMP6(ifname, &seqFileReader{r: rd})
		})
		if errors.Is(err, fs.ErrNotExist) {
			continue // the interface went away
		}
		if err != nil {
			s.FailObject(ProcNetDevSNMP6, ifname, err)
		}
		s.Add(cs...)
	}
	return nil
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
