package tune

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/safchain/ethtool"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/netdrop/netdrop/internal/netns"
)

// Kernel reads and writes the running kernel's settings inside one network
// namespace. Sysctls go through /proc/sys on a thread that entered the
// namespace (/proc/sys/net shows the namespace of the thread that opens the
// file); txqueuelen through rtnetlink; ring and channel sizes through the
// ethtool ioctl; RPS masks through sysfs.
type Kernel struct {
	// Netns names the namespace (internal/netns spelling); "" is the
	// current one.
	Netns string
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
	if k.Netns == "" {
		return "this namespace"
	}
	return "namespace " + k.Netns
}

// Read implements System.
func (k Kernel) Read(s Setting) (string, error) {
	var out string
	err := netns.Do(k.Netns, func() error {
		var err error
		out, err = k.read(s)
		return err
	})
	return out, err
}

// Check implements System.
func (k Kernel) Check(s Setting) error {
	return netns.Do(k.Netns, func() error { return k.check(s) })
}

// Write implements System.
func (k Kernel) Write(s Setting, v string) error {
	return netns.Do(k.Netns, func() error { return k.write(s, v) })
}

func (k Kernel) path(s Setting) (string, error) {
	switch s.Kind {
	case "sysctl":
		rel, err := sysctlPath(s.Target)
		if err != nil {
			return "", err
		}
		return filepath.Join(k.proc(), "sys", rel), nil
	case "rps_cpus":
		if k.Netns != "" {
			// /sys/class/net lists the interfaces of the namespace sysfs
			// was mounted in, not the thread's: another namespace's
			// queues are not reachable here without a new mount.
			return "", fmt.Errorf("%w: rps_cpus of %s: sysfs shows the namespace it was mounted in; run netdrop tune inside that namespace (ip netns exec)", ErrNotSupported, k.where())
		}
		ifn, q, err := splitQueue(s.Target)
		if err != nil {
			return "", err
		}
		return filepath.Join(k.sys(), "class", "net", ifn, "queues", q, "rps_cpus"), nil
	}
	return "", nil
}

func (k Kernel) fileErr(s Setting, op string, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%w: no %s in %s", ErrUnknown, s, k.where())
	case errors.Is(err, unix.EACCES), errors.Is(err, unix.EPERM), errors.Is(err, unix.EROFS):
		return fmt.Errorf("%w: %s cannot be written in %s (%v)", ErrReadOnly, s, k.where(), err)
	case errors.Is(err, unix.EINVAL):
		return fmt.Errorf("%s %s: the kernel rejected the value: %w", op, s, err)
	}
	return fmt.Errorf("%s %s: %w", op, s, err)
}

func (k Kernel) read(s Setting) (string, error) {
	switch s.Kind {
	case "sysctl", "rps_cpus":
		p, err := k.path(s)
		if err != nil {
			return "", err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return "", k.fileErr(s, "read", err)
		}
		return string(b), nil
	case "txqueuelen":
		l, err := k.link(s)
		if err != nil {
			return "", err
		}
		return strconv.Itoa(l.Attrs().TxQLen), nil
	case "ring", "channels":
		v, _, err := k.ethtoolGet(s)
		if err != nil {
			return "", err
		}
		return strconv.FormatUint(uint64(v), 10), nil
	}
	return "", fmt.Errorf("%w: kind %q", ErrUnknown, s.Kind)
}

func (k Kernel) check(s Setting) error {
	switch s.Kind {
	case "sysctl", "rps_cpus":
		p, err := k.path(s)
		if err != nil {
			return err
		}
		st, err := os.Stat(p)
		if err != nil {
			return k.fileErr(s, "stat", err)
		}
		if st.IsDir() {
			return fmt.Errorf("%w: %s is a directory of settings, not one", ErrUnknown, s)
		}
		if st.Mode().Perm()&0o200 == 0 {
			msg := fmt.Sprintf("%s is read-only in %s", s, k.where())
			if k.Netns != "" {
				msg += " (a host-wide setting seen from a child namespace is read-only there: set it on the host)"
			}
			return fmt.Errorf("%w: %s", ErrReadOnly, msg)
		}
		return nil
	case "txqueuelen":
		_, err := k.link(s)
		return err
	case "ring", "channels":
		_, _, err := k.ethtoolGet(s)
		return err
	}
	return fmt.Errorf("%w: kind %q", ErrUnknown, s.Kind)
}

func (k Kernel) write(s Setting, v string) error {
	switch s.Kind {
	case "sysctl", "rps_cpus":
		if err := k.check(s); err != nil {
			return err
		}
		p, _ := k.path(s)
		f, err := os.OpenFile(p, os.O_WRONLY, 0)
		if err != nil {
			return k.fileErr(s, "write", err)
		}
		// One write call: procfs parses each write(2) on its own, and a
		// value split over two writes would be two assignments.
		_, werr := f.Write([]byte(v))
		cerr := f.Close()
		if werr != nil {
			return k.fileErr(s, "write", werr)
		}
		if cerr != nil {
			return k.fileErr(s, "write", cerr)
		}
		return nil
	case "txqueuelen":
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
	case "ring", "channels":
		n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
		if err != nil {
			return fmt.Errorf("%s: %q is not a count", s, v)
		}
		return k.ethtoolSet(s, uint32(n))
	}
	return fmt.Errorf("%w: kind %q", ErrUnknown, s.Kind)
}

func (k Kernel) link(s Setting) (netlink.Link, error) {
	if !ifaceName.MatchString(s.Target) {
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
	if !ifaceName.MatchString(s.Target) {
		return 0, 0, fmt.Errorf("%w: %q is not an interface name", ErrUnknown, s.Target)
	}
	e, err := ethtool.NewEthtool()
	if err != nil {
		return 0, 0, fmt.Errorf("ethtool socket: %w", err)
	}
	defer e.Close()
	switch s.Kind {
	case "ring":
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
	case "channels":
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
	case "ring":
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
	case "channels":
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
