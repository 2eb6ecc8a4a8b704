package lab

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// WriteSysfs writes a file under /sys as seen from inside n's namespace,
// e.g. "class/net/ndlab-rcv/queues/rx-0/rps_cpus".
//
// sysfs shows the network devices of the namespace that mounted it, not of
// the calling thread, so the host's /sys cannot reach a device inside a lab
// namespace. Like `ip netns exec`, this enters the namespace, unshares the
// mount namespace and mounts a fresh sysfs there. All of that happens on a
// thread that is never unlocked: the runtime retires it afterwards, and its
// private mount namespace (with the extra sysfs mount) goes with it, so
// nothing is ever mounted on the host.
func (n *Node) WriteSysfs(rel, value string) error {
	return onThrowawayThread(func() error {
		f, err := os.Open(n.path())
		if err != nil {
			return err
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("enter %s: %w", n.NS, err)
		}
		if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
			return fmt.Errorf("unshare mount namespace: %w", err)
		}
		// Stop mount events from propagating back to the host.
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, ""); err != nil {
			return fmt.Errorf("make mounts private: %w", err)
		}
		if err := unix.Mount("sysfs", "/sys", "sysfs", 0, ""); err != nil {
			return fmt.Errorf("mount sysfs for %s: %w", n.NS, err)
		}
		p := filepath.Join("/sys", rel)
		if err := os.WriteFile(p, []byte(value), 0o644); err != nil {
			return fmt.Errorf("write %s in %s: %w", p, n.NS, err)
		}
		return nil
	})
}

// path is the file that pins the node's namespace.
func (n *Node) path() string { return filepath.Join("/run/netns", n.NS) }
