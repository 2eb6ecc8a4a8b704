package sockets

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Settings are the namespace's sysctls that decide whether short-lived
// connections run out of ports. They live under /proc/sys/net, which shows
// the namespace of the thread that opens the file, so they are read on the
// thread that entered the namespace.
type Settings struct {
	// PortLow and PortHigh are net.ipv4.ip_local_port_range (which also
	// governs IPv6): the ports connect() picks from.
	PortLow  int `json:"port_low"`
	PortHigh int `json:"port_high"`
	// TwReuse is net.ipv4.tcp_tw_reuse: 0 off, 1 on, 2 loopback only
	// (the default since Linux 4.20).
	TwReuse int `json:"tcp_tw_reuse"`
	// Timestamps is net.ipv4.tcp_timestamps; reuse of a TIME_WAIT port
	// needs it (RFC 7323 PAWS keeps old segments out of the new connection).
	Timestamps int `json:"tcp_timestamps"`
}

// PortRangeSize is how many ephemeral ports one (source address,
// destination address, destination port) can use at once.
func (s Settings) PortRangeSize() int {
	if s.PortHigh < s.PortLow {
		return 0
	}
	return s.PortHigh - s.PortLow + 1
}

// InRange says whether port is an ephemeral port.
func (s Settings) InRange(port uint16) bool {
	return int(port) >= s.PortLow && int(port) <= s.PortHigh
}

// DefaultSettings are the kernel defaults, used for a sysctl that cannot be
// read (and said so).
var DefaultSettings = Settings{PortLow: 32768, PortHigh: 60999, TwReuse: 2, Timestamps: 1}

// ReadSettings reads the sysctls below procRoot ("/proc" on a live system).
// A file that cannot be read keeps its default and is reported in the
// returned list of problems; the settings are always usable.
func ReadSettings(procRoot string) (Settings, []string) {
	s := DefaultSettings
	var problems []string
	dir := filepath.Join(procRoot, "sys", "net", "ipv4")
	if lo, hi, err := readPortRange(filepath.Join(dir, "ip_local_port_range")); err != nil {
		problems = append(problems, err.Error())
	} else {
		s.PortLow, s.PortHigh = lo, hi
	}
	for _, f := range []struct {
		name string
		v    *int
	}{{"tcp_tw_reuse", &s.TwReuse}, {"tcp_timestamps", &s.Timestamps}} {
		n, err := readInt(filepath.Join(dir, f.name))
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		*f.v = n
	}
	return s, problems
}

func readPortRange(path string) (int, int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, fmt.Errorf("ephemeral port range: %w", err)
	}
	return parsePortRange(string(b))
}

// parsePortRange reads "32768\t60999\n".
func parsePortRange(s string) (int, int, error) {
	f := strings.Fields(s)
	if len(f) != 2 {
		return 0, 0, fmt.Errorf("ip_local_port_range: want two numbers, got %q", s)
	}
	lo, err1 := strconv.Atoi(f[0])
	hi, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil || lo < 1 || hi > 65535 || lo > hi {
		return 0, 0, fmt.Errorf("ip_local_port_range: bad range %q", strings.TrimSpace(s))
	}
	return lo, hi, nil
}

func readInt(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("sysctl: %w", err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("sysctl %s: %w", filepath.Base(path), err)
	}
	return n, nil
}
