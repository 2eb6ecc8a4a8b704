package counters

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
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

// sysctlPaths are SysctlNames as paths below /proc/sys, made once.
var sysctlPaths = sync.OnceValue(func() []string {
	out := make([]string, len(SysctlNames))
	for i, name := range SysctlNames {
		out[i] = strings.ReplaceAll(name, ".", "/")
	}
	return out
})

// SysctlSource reads SysctlNames from /proc/sys into Snapshot.Sysctls.
// A setting this kernel or namespace does not have (conntrack not loaded,
// IPv6 disabled) is simply absent.
type SysctlSource struct{}

// ID implements Source.
func (SysctlSource) ID() SourceID { return ProcSys }

// Collect implements Source. The files are opened relative to one
// descriptor of /proc/sys, which spares the kernel the walk from / for
// each of them; when /proc/sys itself cannot be opened, each file is
// opened by its full path, so every error names the file as before.
func (SysctlSource) Collect(_ context.Context, r *Reading, s *Snapshot) error {
	fsys := r.FS
	if s.Sysctls == nil {
		s.Sysctls = make(map[string]string, len(SysctlNames))
	}
	root := fsys.ProcPath("sys")
	dir := unix.AT_FDCWD
	if fd, err := fsys.openDir(root); err == nil {
		defer unix.Close(fd)
		dir = fd
	}
	var errs []error
	read := 0
	buf := make([]byte, maxSysctl)
	paths := sysctlPaths()
	for i, name := range SysctlNames {
		rel := paths[i]
		if dir == unix.AT_FDCWD {
			rel = root + "/" + rel
		}
		v, err := readSysctlAt(dir, rel, root, paths[i], name, buf)
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
		s.Fail(ProcSys, err)
	}
	return nil
}

// maxSysctl is the most of a sysctl file that is read, as parseSysctl
// reads it.
const maxSysctl = 4096

// readSysctlAt reads the sysctl file rel below the directory descriptor
// dir (or AT_FDCWD with a full path); root/file names it in errors. Open
// errors are *fs.PathError as FS.Open returns them; read and parse errors
// are named after the setting, as readSource names them. A read shorter than
// asked is the whole value: proc_sys_call_handler hands the handler the
// whole count at once, and the next read would only report the end of the
// file. buf, of maxSysctl bytes, is reused from one file to the next.
func readSysctlAt(dir int, rel, root, file, name string, buf []byte) (string, error) {
	fd, err := openat(dir, rel, unix.O_RDONLY|unix.O_CLOEXEC)
	if err != nil {
		return "", &fs.PathError{Op: "open", Path: root + "/" + file, Err: err}
	}
	defer unix.Close(fd)
	n := 0
	for n < len(buf) {
		m, err := unix.Read(fd, buf[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return "", fileError(name, &fs.PathError{Op: "read", Path: root + "/" + file, Err: err})
		}
		if m == 0 {
			break
		}
		n += m
		if n < len(buf) && buf[n-1] == '\n' {
			break
		}
	}
	v, err := parseSysctlBytes(buf[:n])
	return v, fileError(name, err)
}

// parseSysctl reads one sysctl file. The value is kept as the kernel prints
// it, without the trailing newline (several values stay separated by tabs,
// as in "4096\t131072\t6291456"); a file of more than one line is not a
// sysctl netdrop knows how to show.
func parseSysctl(r io.Reader) (string, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxSysctl))
	if err != nil {
		return "", err
	}
	return parseSysctlBytes(b)
}

// parseSysctlBytes is parseSysctl of what was read.
func parseSysctlBytes(b []byte) (string, error) {
	v := bytes.TrimRight(b, "\n")
	if bytes.ContainsAny(v, "\n\x00") {
		return "", lineError(2, "a sysctl holds one line, got %q", v)
	}
	return string(bytes.TrimSpace(v)), nil
}
