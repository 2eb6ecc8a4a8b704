package tune

import (
	"fmt"
	"regexp"
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

// sysctlName accepts dotted sysctl names as sysctl(8) prints them, and the
// slash form it also takes (needed when an interface name holds a dot, as
// VLANs do: net/ipv4/conf/eth0.100/rp_filter).
var sysctlName = regexp.MustCompile(`^[A-Za-z0-9_\-]+([./][A-Za-z0-9_\-.]*)+$`)

// sysctlPath returns the file below /proc/sys for a sysctl name.
func sysctlPath(name string) (string, error) {
	if !sysctlName.MatchString(name) {
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

// ifaceName accepts Linux interface names (IFNAMSIZ-1 bytes, no slash or
// whitespace), so a target can never walk out of /sys/class/net.
var ifaceName = regexp.MustCompile(`^[^/\s]{1,15}$`)

// splitQueue splits an rps_cpus target "eth0 rx-3".
func splitQueue(target string) (ifname, queue string, err error) {
	f := strings.Fields(target)
	if len(f) != 2 || !ifaceName.MatchString(f[0]) || f[0] == "." || f[0] == ".." || !regexp.MustCompile(`^rx-\d+$`).MatchString(f[1]) {
		return "", "", fmt.Errorf("%w: rps_cpus target %q is not \"IFACE rx-N\"", ErrUnknown, target)
	}
	return f[0], f[1], nil
}
