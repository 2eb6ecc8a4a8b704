package tune

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/safchain/ethtool"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/netdrop/netdrop/diagnose"
	"github.com/netdrop/netdrop/internal/netns"
)

// Kernel reads and writes the running kernel's settings inside one network
// namespace. Sysctls go through /proc/sys on a thread that entered the
// namespace (/proc/sys/net shows the namespace of the thread that opens the
// file); txqueuelen through rtnetlink; ring and channel sizes through the
// ethtool ioctl; RPS masks through sysfs.
type Kernel struct {
	// Netns is the namespace whose settings are read and written; the
	// zero Target is the current one.
	Netns netns.Target
	// Proc and Sys are the procfs and sysfs mounts; "/proc" and "/sys"
	// when empty.
	Proc, Sys string
}

func (k Kernel) proc() string {
	if k.Proc == "" {
		return "/proc"
	}
	return k.Proc
}

func (k Kernel) sys() string {
	if k.Sys == "" {
		return "/sys"
	}
	return k.Sys
}

func (k Kernel) where() string {
	if k.Netns.IsCurrent() {
		return "this namespace"
	}
	return "namespace " + k.Netns.String()
}

// kernelApplier is the kernel half of a kind's applier: how to read, check
// and write a setting of that kind, each run where the kind lives
// (netns.Do for sysctls and links, the namespace's own sysfs for RPS
// masks). The other half, risk and refusals, is kinds in kinds.go.
type kernelApplier struct {
	read  func(k Kernel, s Setting) (string, error)
	check func(k Kernel, s Setting) error
	write func(k Kernel, s Setting, v string) error
}

var kernelAppliers = map[diagnose.ChangeKind]kernelApplier{
	diagnose.ChangeSysctl:     inNetns(Kernel.readSysctl, Kernel.checkSysctl, Kernel.writeSysctl),
	diagnose.ChangeTxQueueLen: inNetns(Kernel.readTxQLen, Kernel.checkLink, Kernel.writeTxQLen),
	diagnose.ChangeRing:       inNetns(Kernel.readEthtool, Kernel.checkEthtool, Kernel.writeEthtool),
	diagnose.ChangeChannels:   inNetns(Kernel.readEthtool, Kernel.checkEthtool, Kernel.writeEthtool),
	diagnose.ChangeRPSCPUs: {
		read: func(k Kernel, s Setting) (out string, err error) {
			err = k.sysfs(func(sys string) error {
				out, err = k.readRPS(s, sys)
				return err
			})
			return out, err
		},
		check: func(k Kernel, s Setting) error {
			return k.sysfs(func(sys string) error { return k.checkRPS(s, sys) })
		},
		write: func(k Kernel, s Setting, v string) error {
			return k.sysfs(func(sys string) error {
				if err := k.checkRPS(s, sys); err != nil {
					return err
				}
				return k.writeFile(s, rpsPath(sys, s), v)
			})
		},
	},
}

// inNetns makes an applier whose operations run inside the namespace on a
// locked thread.
func inNetns(read func(Kernel, Setting) (string, error), check func(Kernel, Setting) error, write func(Kernel, Setting, string) error) kernelApplier {
	return kernelApplier{
		read: func(k Kernel, s Setting) (out string, err error) {
			err = k.Netns.Do(func() error {
				out, err = read(k, s)
				return err
			})
			return out, err
		},
		check: func(k Kernel, s Setting) error {
			return k.Netns.Do(func() error { return check(k, s) })
		},
		write: func(k Kernel, s Setting, v string) error {
			return k.Netns.Do(func() error { return write(k, s, v) })
		},
	}
}

func applierOf(s Setting) (kernelApplier, error) {
	a, ok := kernelAppliers[s.Kind]
	if !ok {
		return kernelApplier{}, fmt.Errorf("%w: kind %s", ErrUnknown, s.Kind)
	}
	return a, nil
}

// Read implements System.
func (k Kernel) Read(s Setting) (string, error) {
	a, err := applierOf(s)
	if err != nil {
		return "", err
	}
	return a.read(k, s)
}

// Check implements System.
func (k Kernel) Check(s Setting) error {
	a, err := applierOf(s)
	if err != nil {
		return err
	}
	return a.check(k, s)
}

// Write implements System.
func (k Kernel) Write(s Setting, v string) error {
	a, err := applierOf(s)
	if err != nil {
		return err
	}
	return a.write(k, s, v)
}

// sysfs runs fn with the root of a sysfs that shows the namespace's
// interfaces. /sys/class/net lists the interfaces of the namespace sysfs
// was mounted in, not the thread's, so for another namespace a sysfs is
// mounted for the occasion, as ip netns exec does: on a locked thread that
// gets a private mount namespace, enters the network namespace and mounts
// sysfs on a temporary directory. The thread is never unlocked, so the
// runtime discards it with its mount namespace when fn returns.
func (k Kernel) sysfs(fn func(sys string) error) error {
	if k.Netns.IsCurrent() {
		return fn(k.sys())
	}
	path := k.Netns.Path()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		errc <- func() error {
			target, err := os.Open(path)
			if err != nil {
				return fmt.Errorf("netns %q: %w", k.Netns, err)
			}
			defer target.Close()
			if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
				return fmt.Errorf("sysfs of %s: private mount namespace: %w", k.where(), err)
			}
			// Keep the mount below from propagating to the host.
			if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
				return fmt.Errorf("sysfs of %s: make mounts private: %w", k.where(), err)
			}
			if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
				return fmt.Errorf("netns %q: setns: %w", k.Netns, err)
			}
			dir, err := os.MkdirTemp("", "netdrop-sysfs-")
			if err != nil {
				return err
			}
			defer os.Remove(dir)
			if err := unix.Mount("sysfs", dir, "sysfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
				return fmt.Errorf("sysfs of %s: mount: %w", k.where(), err)
			}
			defer unix.Unmount(dir, unix.MNT_DETACH)
			return fn(dir)
		}()
	}()
	return <-errc
}

func rpsPath(sys string, s Setting) string {
	ifn, q, _ := splitQueue(s.Target)
	return filepath.Join(sys, "class", "net", ifn, "queues", q, "rps_cpus")
}

func (k Kernel) readRPS(s Setting, sys string) (string, error) {
	if _, _, err := splitQueue(s.Target); err != nil {
		return "", err
	}
	b, err := os.ReadFile(rpsPath(sys, s))
	if err != nil {
		return "", k.fileErr(s, "read", err)
	}
	return string(b), nil
}

func (k Kernel) checkRPS(s Setting, sys string) error {
	if _, _, err := splitQueue(s.Target); err != nil {
		return err
	}
	return k.checkFile(s, rpsPath(sys, s))
}

func (k Kernel) path(s Setting) (string, error) {
	rel, err := sysctlPath(s.Target)
	if err != nil {
		return "", err
	}
	return filepath.Join(k.proc(), "sys", rel), nil
}

func (k Kernel) fileErr(s Setting, op string, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%w: no %s in %s", ErrUnknown, s, k.where())
	case (errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM)) && os.Geteuid() != 0:
		return fmt.Errorf("%s: changing it needs root: %w", s, os.ErrPermission)
	case errors.Is(err, unix.EACCES), errors.Is(err, unix.EPERM), errors.Is(err, unix.EROFS):
		return fmt.Errorf("%w: %s cannot be written in %s (%v)", ErrReadOnly, s, k.where(), err)
	case errors.Is(err, unix.EINVAL):
		return fmt.Errorf("%s %s: the kernel rejected the value: %w", op, s, err)
	}
	return fmt.Errorf("%s %s: %w", op, s, err)
}

func (k Kernel) readSysctl(s Setting) (string, error) {
	p, err := k.path(s)
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return "", k.fileErr(s, "read", err)
	}
	return string(b), nil
}

func (k Kernel) checkSysctl(s Setting) error {
	p, err := k.path(s)
	if err != nil {
		return err
	}
	return k.checkFile(s, p)
}

func (k Kernel) writeSysctl(s Setting, v string) error {
	if err := k.checkSysctl(s); err != nil {
		return err
	}
	p, _ := k.path(s)
	return k.writeFile(s, p, v)
}

func (k Kernel) readTxQLen(s Setting) (string, error) {
	l, err := k.link(s)
	if err != nil {
		return "", err
	}
	return strconv.Itoa(l.Attrs().TxQLen), nil
}

func (k Kernel) checkLink(s Setting) error {
	_, err := k.link(s)
	return err
}

func (k Kernel) writeTxQLen(s Setting, v string) error {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 0 {
		return fmt.Errorf("txqueuelen %s: %q is not a queue length", s.Target, v)
	}
	l, err := k.link(s)
	if err != nil {
		return err
	}
	if err := netlink.LinkSetTxQLen(l, n); err != nil {
		return fmt.Errorf("set %s: %w", s, err)
	}
	return nil
}

func (k Kernel) readEthtool(s Setting) (string, error) {
	v, _, err := k.ethtoolGet(s)
	if err != nil {
		return "", err
	}
	return strconv.FormatUint(uint64(v), 10), nil
}

func (k Kernel) checkEthtool(s Setting) error {
	_, _, err := k.ethtoolGet(s)
	return err
}

func (k Kernel) writeEthtool(s Setting, v string) error {
	n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
	if err != nil {
		return fmt.Errorf("%s: %q is not a count", s, v)
	}
	return k.ethtoolSet(s, uint32(n))
}

// checkFile says whether a settings file exists and may be written.
func (k Kernel) checkFile(s Setting, p string) error {
	st, err := os.Stat(p)
	if err != nil {
		return k.fileErr(s, "stat", err)
	}
	if st.IsDir() {
		return fmt.Errorf("%w: %s is a directory of settings, not one", ErrUnknown, s)
	}
	if st.Mode().Perm()&0o222 == 0 {
		msg := fmt.Sprintf("%s is read-only in %s", s, k.where())
		if !k.Netns.IsCurrent() {
			msg += " (a host-wide setting seen from a child namespace is read-only there: set it on the host)"
		}
		return fmt.Errorf("%w: %s", ErrReadOnly, msg)
	}
	// access(2) asks the kernel's own permission check (for sysctls,
	// proc_sys_permission), so a user who may not write is told now,
	// at plan time, rather than half-way through an apply.
	if err := unix.Access(p, unix.W_OK); err != nil {
		return k.fileErr(s, "write", err)
	}
	return nil
}

// writeFile writes v in one write(2): procfs and sysfs parse each write
// on its own, and a value split over two writes would be two assignments.
func (k Kernel) writeFile(s Setting, p, v string) error {
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		return k.fileErr(s, "write", err)
	}
	_, werr := f.Write([]byte(v))
	cerr := f.Close()
	if werr != nil {
		return k.fileErr(s, "write", werr)
	}
	if cerr != nil {
		return k.fileErr(s, "write", cerr)
	}
	return nil
}

func (k Kernel) link(s Setting) (netlink.Link, error) {
	if !validIfaceName(s.Target) {
		return nil, fmt.Errorf("%w: %q is not an interface name", ErrUnknown, s.Target)
	}
	l, err := netlink.LinkByName(s.Target)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil, fmt.Errorf("%w: no interface %s in %s", ErrUnknown, s.Target, k.where())
		}
		return nil, fmt.Errorf("%s: %w", s, err)
	}
	return l, nil
}

func (k Kernel) ethtoolErr(s Setting, err error) error {
	switch {
	case errors.Is(err, unix.EOPNOTSUPP):
		return fmt.Errorf("%w: %s (%v)", ErrNotSupported, s, err)
	case errors.Is(err, unix.ENODEV):
		return fmt.Errorf("%w: no interface %s in %s", ErrUnknown, s.Target, k.where())
	case errors.Is(err, unix.EPERM):
		return fmt.Errorf("%s: needs CAP_NET_ADMIN: %w", s, os.ErrPermission)
	}
	return fmt.Errorf("%s: %w", s, err)
}

// ethtoolGet returns the current value and the driver's maximum.
func (k Kernel) ethtoolGet(s Setting) (cur, max uint32, err error) {
	if !validIfaceName(s.Target) {
		return 0, 0, fmt.Errorf("%w: %q is not an interface name", ErrUnknown, s.Target)
	}
	e, err := ethtool.NewEthtool()
	if err != nil {
		return 0, 0, fmt.Errorf("ethtool socket: %w", err)
	}
	defer e.Close()
	switch s.Kind {
	case diagnose.ChangeRing:
		r, err := e.GetRing(s.Target)
		if err != nil {
			return 0, 0, k.ethtoolErr(s, err)
		}
		switch s.Param {
		case "rx":
			return r.RxPending, r.RxMaxPending, nil
		case "tx":
			return r.TxPending, r.TxMaxPending, nil
		}
	case diagnose.ChangeChannels:
		c, err := e.GetChannels(s.Target)
		if err != nil {
			return 0, 0, k.ethtoolErr(s, err)
		}
		switch s.Param {
		case "rx":
			return c.RxCount, c.MaxRx, nil
		case "tx":
			return c.TxCount, c.MaxTx, nil
		case "combined":
			return c.CombinedCount, c.MaxCombined, nil
		case "other":
			return c.OtherCount, c.MaxOther, nil
		}
	}
	return 0, 0, fmt.Errorf("%w: %s parameter %q", ErrUnknown, s.Kind, s.Param)
}

func (k Kernel) ethtoolSet(s Setting, n uint32) error {
	_, max, err := k.ethtoolGet(s)
	if err != nil {
		return err
	}
	if n > max {
		return fmt.Errorf("%s: %d is above the driver's maximum %d", s, n, max)
	}
	e, err := ethtool.NewEthtool()
	if err != nil {
		return fmt.Errorf("ethtool socket: %w", err)
	}
	defer e.Close()
	switch s.Kind {
	case diagnose.ChangeRing:
		r, err := e.GetRing(s.Target)
		if err != nil {
			return k.ethtoolErr(s, err)
		}
		if s.Param == "rx" {
			r.RxPending = n
		} else {
			r.TxPending = n
		}
		if _, err := e.SetRing(s.Target, r); err != nil {
			return k.ethtoolErr(s, err)
		}
	case diagnose.ChangeChannels:
		c, err := e.GetChannels(s.Target)
		if err != nil {
			return k.ethtoolErr(s, err)
		}
		switch s.Param {
		case "rx":
			c.RxCount = n
		case "tx":
			c.TxCount = n
		case "combined":
			c.CombinedCount = n
		case "other":
			c.OtherCount = n
		}
		if _, err := e.SetChannels(s.Target, c); err != nil {
			return k.ethtoolErr(s, err)
		}
	}
	return nil
}
