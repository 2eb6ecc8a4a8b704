package counters

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
)

// The SNMP MIB files of a network namespace. snmp and netstat print pairs of
// lines, a header naming the fields of a group and a line of values
// ("Udp: InDatagrams NoPorts …" then "Udp: 27 0 …"); snmp6 prints one
// "Ip6InReceives <tab> 1" line per field. They are parsed generically, as
// nstat does, so every field the kernel prints becomes a counter, including
// fields newer than this code.

func init() { register(SNMPSource{}) }

// SNMPSource reads /proc/net/snmp, /proc/net/netstat and /proc/net/snmp6 of
// the current network namespace. Fields are named "Group:Field" as nstat
// names them without the colon: "Udp:RcvbufErrors",
// "TcpExt:ListenOverflows", "Udp6:RcvbufErrors".
type SNMPSource struct{}

// ID implements Source.
func (SNMPSource) ID() SourceID { return ProcNetSNMP }

// Collect implements Source. snmp6 is missing when IPv6 is disabled; that is
// recorded as unavailable, the IPv4 files are still read.
func (SNMPSource) Collect(_ context.Context, r *Reading, s *Snapshot) error {
	fs := r.FS
	files := []struct {
		name  SourceID
		path  string
		parse func([]snmpValue, io.Reader) ([]snmpValue, error)
	}{
		{ProcNetSNMP, fs.NetPath("snmp"), parseSNMPInto},
		{ProcNetNetstat, fs.NetPath("netstat"), parseSNMPInto},
		{ProcNetSNMP6, fs.NetPath("snmp6"), parseSNMP6Into},
	}
	// One array of values serves the three files in turn: their values
	// are copied into counters before the next file is read.
	vbuf := make([]snmpValue, 0, 256)
	var errs []error
	read := 0
	if cap(s.Counters) == 0 {
		// Room for the three files of a recent kernel (about 400
		// values) at once.
		s.Counters = make([]Counter, 0, 512)
	}
	for _, f := range files {
		// As collectCounters, but the counters go straight into s.
		vs, err := readSource(fs, f.name, f.path, func(r io.Reader) ([]snmpValue, error) {
			return f.parse(vbuf[:0], &seqFileReader{r: r})
		})
		if len(vs) == 0 && err == nil {
			err = fileError(string(f.name), fmt.Errorf("%w: no values", ErrFileParse))
		}
		if len(vs) > 0 {
			s.Counters = appendSNMPCounters(s.Counters, f.name, vs)
			vbuf = vs[:0]
			s.index = nil
			if err != nil {
				s.Fail(f.name, err)
			}
			err = nil
		}
		if err != nil {
			if f.name != ProcNetSNMP {
				s.Fail(f.name, err)
				continue
			}
			errs = append(errs, err)
			continue
		}
		read++
	}
	if read == 0 {
		return errors.Join(errs...)
	}
	for _, err := range errs {
		s.Fail(ProcNetSNMP, err)
	}
	return nil
}

// snmpValue is one field of an SNMP file.
type snmpValue struct {
	Group, Field string
	Value        uint64
}

// Name is the field as counters name it: "Udp:RcvbufErrors".
func (v snmpValue) Name() string {
	if v.Group == "" {
		return v.Field
	}
	return v.Group + ":" + v.Field
}

func snmpCounters(source SourceID, vs []snmpValue) []Counter {
	return appendSNMPCounters(make([]Counter, 0, len(vs)), source, vs)
}

// appendSNMPCounters appends the counters of vs to out. Each name is
// built in a scratch buffer and looked up in the catalog without
// allocating; the names the catalog does not know (fields newer than this
// code) are built together in one string, one allocation per file
// instead of one per name.
func appendSNMPCounters(out []Counter, source SourceID, vs []snmpValue) []Counter {
	var scratch [64]byte
	name := func(v snmpValue) []byte {
		b := scratch[:0]
		if v.Group != "" {
			b = append(append(b, v.Group...), ':')
		}
		return append(b, v.Field...)
	}
	start, unknown := len(out), 0
	for _, v := range vs {
		c := Counter{Source: source, Value: v.Value}
		if n, fi, ok := lookupKnownBytes(source, name(v)); ok {
			c.Field, c.Stage, c.Gauge = n, fi.Stage, fi.Gauge
		} else {
			unknown += len(v.Group) + 1 + len(v.Field)
		}
		out = append(out, c)
	}
	if unknown == 0 {
		return out
	}
	var all strings.Builder
	all.Grow(unknown)
	for i, v := range vs {
		if out[start+i].Field == "" {
			all.Write(name(v))
		}
	}
	names, off := all.String(), 0
	for i, v := range vs {
		c := &out[start+i]
		if c.Field != "" {
			continue
		}
		n := len(name(v))
		c.Field = names[off : off+n]
		off += n
		_, fi := lookupField(source, c.Field)
		c.Stage, c.Gauge = fi.Stage, fi.Gauge
	}
	return out
}

// parseSNMP reads /proc/net/snmp or /proc/net/netstat: header and value
// lines in pairs, matched by their "Group:" prefix. A pair whose lengths
// differ is reported and skipped, since its values cannot be matched to
// names; a value that is not a number costs only that field.
func parseSNMP(r io.Reader) ([]snmpValue, error) { return parseSNMPInto(nil, r) }

// parseSNMPInto is parseSNMP appending to out.
func parseSNMPInto(out []snmpValue, r io.Reader) ([]snmpValue, error) {
	var (
		group      string
		names      []string
		headerLine int
		errs       []error
		// Two arrays for the fields of a line, reused: the header's
		// names stay in one while the value line is split into the
		// other. TcpExt has about 130 fields.
		nameBuf = getFields()
		valBuf  = getFields()
	)
	defer func() { putFields(nameBuf); putFields(valBuf) }()
	err := scanLines(r, func(n int, line string) error {
		if strings.TrimSpace(line) == "" {
			return nil
		}
		prefix, rest, ok := strings.Cut(line, ":")
		if !ok || prefix == "" || strings.ContainsAny(prefix, " \t") {
			return lineError(n, "no \"Group:\" prefix in %q", line)
		}
		fields := appendFields(valBuf[:0], rest)
		valBuf = fields
		if names == nil || prefix != group {
			var err error
			if names != nil {
				// A header whose value line never came: report it
				// and take this line as the next header.
				err = lineError(headerLine, "%s: header without a value line", group)
			}
			nameBuf, valBuf = fields, nameBuf
			group, names, headerLine = prefix, fields, n
			if names == nil {
				names = []string{}
			}
			return err
		}
		g, ns := group, names
		group, names = "", nil
		if len(fields) != len(ns) {
			return lineError(n, "%s: %d values for %d names", g, len(fields), len(ns))
		}
		var lineErrs []error
		if cap(out) == 0 {
			// Room for the largest file (netstat) at once.
			out = make([]snmpValue, 0, 256)
		}
		for i, f := range fields {
			v, err := parseSigned(f)
			if err != nil {
				lineErrs = append(lineErrs, lineError(n, "%s:%s: %q is not a number", g, ns[i], f))
				continue
			}
			out = append(out, snmpValue{Group: g, Field: ns[i], Value: v})
		}
		return errors.Join(lineErrs...)
	})
	if err != nil {
		errs = append(errs, err)
	}
	if names != nil {
		errs = append(errs, lineError(headerLine, "%s: header without a value line (file truncated?)", group))
	}
	return out, errors.Join(errs...)
}

// parseSNMP6 reads /proc/net/snmp6: "Name value" lines. The group is the
// name up to its "6" (Ip6, Icmp6, Udp6, UdpLite6), so "Udp6RcvbufErrors"
// becomes Udp6:RcvbufErrors.
func parseSNMP6(r io.Reader) ([]snmpValue, error) { return parseSNMP6Into(nil, r) }

// parseSNMP6Into is parseSNMP6 appending to out.
func parseSNMP6Into(out []snmpValue, r io.Reader) ([]snmpValue, error) {
	buf := getFields()
	defer func() { putFields(buf) }()
	err := scanLines(r, func(n int, line string) error {
		fields := appendFields(buf[:0], line)
		buf = fields
		switch len(fields) {
		case 0:
			return nil
		case 2:
		default:
			return lineError(n, "want \"name value\", got %q", line)
		}
		v, err := parseSigned(fields[1])
		if err != nil {
			return lineError(n, "%s: %q is not a number", fields[0], fields[1])
		}
		g, f := splitSNMP6(fields[0])
		if cap(out) == 0 {
			out = make([]snmpValue, 0, 128)
		}
		out = append(out, snmpValue{Group: g, Field: f, Value: v})
		return nil
	})
	return out, err
}

// splitSNMP6 splits "Icmp6InType1" into "Icmp6" and "InType1".
func splitSNMP6(name string) (group, field string) {
	i := strings.IndexByte(name, '6')
	if i <= 0 || i == len(name)-1 {
		return "", name
	}
	return name[:i+1], name[i+1:]
}
