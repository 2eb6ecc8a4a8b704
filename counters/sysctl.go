package counters

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"strings"
)

func init() { register(SysctlSource{}) }

// SysctlNames are the settings the fixes refer to, read into
// Snapshot.Sysctls so a fix can say "raise net.core.rmem_max (now 212992)".
// Most of net.* is per network namespace; the net.core buffer limits,
// netdev_* and nf_conntrack_max are global.
var SysctlNames = []string{
	// Receive path and socket buffers.
	"net.core.rmem_max", "net.core.rmem_default", "net.core.wmem_max", "net.core.wmem_default",
	"net.core.netdev_max_backlog", "net.core.netdev_budget", "net.core.netdev_budget_usecs",
	"net.core.somaxconn", "net.core.rps_sock_flow_entries", "net.core.flow_limit_table_len",
	"net.core.flow_limit_cpu_bitmap",
	// TCP and UDP memory and queues.
	"net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem", "net.ipv4.tcp_mem", "net.ipv4.udp_mem",
	"net.ipv4.udp_rmem_min", "net.ipv4.tcp_max_syn_backlog", "net.ipv4.tcp_syncookies",
	"net.ipv4.tcp_abort_on_overflow",
	// Ports and TIME_WAIT.
	"net.ipv4.ip_local_port_range", "net.ipv4.tcp_tw_reuse", "net.ipv4.tcp_max_tw_buckets",
	"net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_max_orphans",
	// IP.
	"net.ipv4.ip_forward", "net.ipv4.conf.all.rp_filter", "net.ipv4.conf.default.rp_filter",
	"net.ipv4.ipfrag_high_thresh", "net.ipv4.ipfrag_time",
	"net.ipv6.conf.all.disable_ipv6", "net.ipv6.conf.default.disable_ipv6",
	// Conntrack.
	"net.netfilter.nf_conntrack_max", "net.netfilter.nf_conntrack_buckets",
	"net.netfilter.nf_conntrack_tcp_be_liberal",
	// Neighbour tables.
	"net.ipv4.neigh.default.gc_thresh1", "net.ipv4.neigh.default.gc_thresh2",
	"net.ipv4.neigh.default.gc_thresh3", "net.ipv4.neigh.default.unres_qlen_bytes",
	"net.ipv6.neigh.default.gc_thresh3",
}

// SysctlSource reads SysctlNames from /proc/sys into Snapshot.Sysctls.
// A setting this kernel or namespace does not have (conntrack not loaded,
// IPv6 disabled) is simply absent.
type SysctlSource struct{}

// Name implements Source.
func (SysctlSource) Name() string { return "/proc/sys" }

// Collect implements Source.
func (SysctlSource) Collect(_ context.Context, fsys FS, s *Snapshot) error {
	if s.Sysctls == nil {
		s.Sysctls = map[string]string{}
	}
	var errs []error
	read := 0
	for _, name := range SysctlNames {
		path := fsys.ProcPath(append([]string{"sys"}, strings.Split(name, ".")...)...)
		v, err := readSource(fsys, name, path, parseSysctl)
		switch {
		case err == nil:
			s.Sysctls[name] = v
			read++
		case errors.Is(err, fs.ErrNotExist):
		default:
			errs = append(errs, err)
		}
	}
	if read == 0 && len(errs) > 0 {
		return errors.Join(errs...)
	}
	for _, err := range errs {
		s.Fail("/proc/sys", err)
	}
	return nil
}

// parseSysctl reads one sysctl file. The value is kept as the kernel prints
// it, without the trailing newline (several values stay separated by tabs,
// as in "4096\t131072\t6291456"); a file of more than one line is not a
// sysctl netdrop knows how to show.
func parseSysctl(r io.Reader) (string, error) {
	b, err := io.ReadAll(io.LimitReader(r, 4096))
	if err != nil {
		return "", err
	}
	v := strings.TrimRight(string(b), "\n")
	if strings.ContainsAny(v, "\n\x00") {
		return "", lineError(2, "a sysctl holds one line, got %q", v)
	}
	return strings.TrimSpace(v), nil
}
