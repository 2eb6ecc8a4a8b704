package diagnose

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestChangesOf(t *testing.T) {
	tests := []struct {
		fix  string
		want []Change
	}{
		{"sysctl -w net.core.rmem_max=26214400 (now 212992)   # the ceiling for SO_RCVBUF",
			[]Change{{Kind: "sysctl", Target: "net.core.rmem_max", Current: "212992", Proposed: "26214400"}}},
		{`sysctl -w net.ipv4.ip_local_port_range="1024 65535" (now "32768 60999", 28232 ports)`,
			[]Change{{Kind: "sysctl", Target: "net.ipv4.ip_local_port_range", Current: "32768 60999", Proposed: "1024 65535"}}},
		{`sysctl -w net.ipv4.udp_mem="2 4 6" (now "1 2 3")   # pages`,
			[]Change{{Kind: "sysctl", Target: "net.ipv4.udp_mem", Current: "1 2 3", Proposed: "2 4 6"}}},
		{"sysctl -w net.core.netdev_max_backlog=10000",
			[]Change{{Kind: "sysctl", Target: "net.core.netdev_max_backlog", Proposed: "10000"}}},
		{"ethtool -G eth0 rx 4096 (now 256)", []Change{{Kind: "ring", Target: "eth0", Param: "rx", Current: "256", Proposed: "4096"}}},
		{"ethtool -L eth0 combined 8 (now 2)   # spread", []Change{{Kind: "channels", Target: "eth0", Param: "combined", Current: "2", Proposed: "8"}}},
		{"ip link set dev veth0 txqueuelen 10000 (now 1000)", []Change{{Kind: "txqueuelen", Target: "veth0", Current: "1000", Proposed: "10000"}}},
		{"echo 3 > /sys/class/net/eth0/queues/rx-0/rps_cpus (now 0)   # RPS", []Change{{Kind: "rps_cpus", Target: "eth0 rx-0", Current: "0", Proposed: "3"}}},
		{"nft -a list ruleset   # find the rule", nil},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, changesOf([]string{tt.fix})); diff != "" {
			t.Errorf("changesOf(%q) (-want +got):\n%s", tt.fix, diff)
		}
	}
}
