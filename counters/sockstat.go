package counters

import (
	"context"
	"errors"
	"io"
	"strings"
)

// Socket usage levels of a network namespace: how many sockets of each kind
// exist and how much memory TCP and UDP hold, in pages. They are gauges; the
// limits they are compared with are sysctls (tcp_mem, udp_mem,
// tcp_max_orphans, tcp_max_tw_buckets).

func init() { register(SockstatSource{}) }

// SockstatSource reads /proc/net/sockstat and sockstat6 as gauges named
// "TCP:inuse", "TCP:orphan", "TCP:tw", "TCP:mem", "UDP:mem", "TCP6:inuse" ….
type SockstatSource struct{}

// ID implements Source.
func (SockstatSource) ID() SourceID { return ProcNetSockstat }

// Collect implements Source. sockstat6 is absent with IPv6 disabled.
func (SockstatSource) Collect(_ context.Context, r *Reading, s *Snapshot) error {
	fs := r.FS
	err4 := collectCounters(fs, s, ProcNetSockstat, fs.NetPath("sockstat"), parseSockstatFor(ProcNetSockstat))
	err6 := collectCounters(fs, s, ProcNetSockstat6, fs.NetPath("sockstat6"), parseSockstatFor(ProcNetSockstat6))
	if err4 != nil && err6 != nil {
		return errors.Join(err4, err6)
	}
	if err4 != nil {
		s.Fail(ProcNetSockstat, err4)
	}
	if err6 != nil {
		s.Fail(ProcNetSockstat6, err6)
	}
	return nil
}

func parseSockstatFor(source SourceID) func(io.Reader) ([]Counter, error) {
	return func(r io.Reader) ([]Counter, error) {
		vs, err := parseSockstat(r)
		out := make([]Counter, 0, len(vs))
		for _, v := range vs {
			name := v.Name()
			out = append(out, Counter{Source: source, Field: name, Value: v.Value, Stage: stageOf(source, name), Gauge: true})
		}
		return out, err
	}
}

// parseSockstat reads "GROUP: key value key value …" lines
// (net/ipv4/proc.c, sockstat_seq_show). Every pair is kept under the name the
// kernel prints, so fields added later are not lost; a value that is not a
// number costs only its pair, a line with a key but no value is reported.
func parseSockstat(r io.Reader) ([]snmpValue, error) {
	var out []snmpValue
	buf := getFields()
	defer func() { putFields(buf) }()
	err := scanLines(r, func(n int, line string) error {
		if strings.TrimSpace(line) == "" {
			return nil
		}
		group, rest, ok := strings.Cut(line, ":")
		if !ok || group == "" || strings.ContainsAny(group, " \t") {
			return lineError(n, "no \"GROUP:\" prefix in %q", line)
		}
		fields := appendFields(buf[:0], rest)
		buf = fields
		var errs []error
		if len(fields)%2 != 0 {
			errs = append(errs, lineError(n, "%s: %q has no value", group, fields[len(fields)-1]))
			fields = fields[:len(fields)-1]
		}
		for i := 0; i < len(fields); i += 2 {
			v, err := parseSigned(fields[i+1])
			if err != nil {
				errs = append(errs, lineError(n, "%s:%s: %q is not a number", group, fields[i], fields[i+1]))
				continue
			}
			out = append(out, snmpValue{Group: group, Field: fields[i], Value: v})
		}
		return errors.Join(errs...)
	})
	return out, err
}
