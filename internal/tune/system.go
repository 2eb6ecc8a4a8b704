package tune

import (
	"fmt"
	"strings"
)

// System reads and writes settings. Kernel is the real one; tests also use
// an in-memory one to drive failures that a kernel will not produce on
// demand.
type System interface {
	// Read returns the setting's value exactly as the kernel prints it
	// (for a sysctl, the file's bytes with the trailing newline), so that
	// writing it back restores the same bytes.
	Read(s Setting) (string, error)
	// Check says whether the setting can be written here: ErrReadOnly,
	// ErrUnknown or ErrNotSupported when it cannot.
	Check(s Setting) error
	// Write sets the value.
	Write(s Setting, value string) error
}

// validSysctlName accepts dotted sysctl names as sysctl(8) prints them, and
// the slash form it also takes (needed when an interface name holds a dot,
// as VLANs do: net/ipv4/conf/eth0.100/rp_filter): letters, digits, '_' and
// '-' with at least one separator, not leading.
func validSysctlName(name string) bool {
	if name == "" || name[0] == '.' || name[0] == '/' || !strings.ContainsAny(name, "./") {
		return false
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_-./", r)) {
			return false
		}
	}
	return true
}

// sysctlPath returns the file below /proc/sys for a sysctl name.
func sysctlPath(name string) (string, error) {
	if !validSysctlName(name) {
		return "", fmt.Errorf("%w: %q is not a sysctl name", ErrUnknown, name)
	}
	rel := name
	if !strings.Contains(name, "/") {
		rel = strings.ReplaceAll(name, ".", "/")
	}
	for _, part := range strings.Split(rel, "/") {
		if part == "" || part == "." || part == ".." {
			return "", fmt.Errorf("%w: %q is not a sysctl name", ErrUnknown, name)
		}
	}
	return rel, nil
}

// validIfaceName accepts Linux interface names (IFNAMSIZ-1 bytes, no slash
// or whitespace), so a target can never walk out of /sys/class/net.
func validIfaceName(name string) bool {
	return len(name) > 0 && len(name) <= 15 && !strings.ContainsAny(name, "/ \t\n\f\r")
}

// validQueue accepts a receive queue name, "rx-N".
func validQueue(q string) bool {
	n, ok := strings.CutPrefix(q, "rx-")
	if !ok || n == "" {
		return false
	}
	for _, r := range n {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// splitQueue splits an rps_cpus target "eth0 rx-3".
func splitQueue(target string) (ifname, queue string, err error) {
	f := strings.Fields(target)
	if len(f) != 2 || !validIfaceName(f[0]) || f[0] == "." || f[0] == ".." || !validQueue(f[1]) {
		return "", "", fmt.Errorf("%w: rps_cpus target %q is not \"IFACE rx-N\"", ErrUnknown, target)
	}
	return f[0], f[1], nil
}
