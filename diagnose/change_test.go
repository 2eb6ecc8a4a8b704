package diagnose

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestChangeCommand(t *testing.T) {
	tests := []struct {
		c    Change
		want string
	}{
		{Change{Kind: ChangeSysctl, Target: "net.core.rmem_max", Current: "212992", Proposed: "26214400"}, "sysctl -w net.core.rmem_max=26214400"},
		{Change{Kind: ChangeSysctl, Target: "net.ipv4.tcp_rmem", Proposed: "4096 131072 6291456"}, `sysctl -w net.ipv4.tcp_rmem="4096 131072 6291456"`},
		{Change{Kind: ChangeSysctl, Target: "net.ipv4.ip_local_port_range", Proposed: "1024 65535"}, `sysctl -w net.ipv4.ip_local_port_range="1024 65535"`},
		{Change{Kind: ChangeRing, Target: "eth0", Param: "rx", Proposed: "4096"}, "ethtool -G eth0 rx 4096"},
		{Change{Kind: ChangeChannels, Target: "eth0", Param: "combined", Proposed: "8"}, "ethtool -L eth0 combined 8"},
		{Change{Kind: ChangeTxQueueLen, Target: "veth0", Proposed: "10000"}, "ip link set dev veth0 txqueuelen 10000"},
		{Change{Kind: ChangeRPSCPUs, Target: "eth0 rx-0", Proposed: "3"}, "echo 3 > /sys/class/net/eth0/queues/rx-0/rps_cpus"},
		// An interface name may hold characters a shell expands.
		{Change{Kind: ChangeTxQueueLen, Target: "we$ird", Proposed: "10000"}, "ip link set dev 'we$ird' txqueuelen 10000"},
	}
	for _, tt := range tests {
		if got := tt.c.Command(); got != tt.want {
			t.Errorf("%+v.Command() = %q, want %q", tt.c, got, tt.want)
		}
	}
}

// TestChangeKinds checks every kind has a name that reads back, renders a
// command, and that unknown names are refused (rollback files rely on it).
func TestChangeKinds(t *testing.T) {
	if len(ChangeKinds()) != len(changeKinds) {
		t.Fatalf("ChangeKinds lists %d kinds, the table has %d: the constants must be consecutive", len(ChangeKinds()), len(changeKinds))
	}
	for _, k := range ChangeKinds() {
		b, err := json.Marshal(Change{Kind: k, Target: "x", Param: "rx", Proposed: "1"})
		if err != nil {
			t.Fatal(err)
		}
		var back Change
		if err := json.Unmarshal(b, &back); err != nil || back.Kind != k {
			t.Errorf("kind %s: %s reads back as %v (%v)", k, b, back.Kind, err)
		}
		if (Change{Kind: k, Target: "eth0 rx-0", Param: "rx", Proposed: "1"}).Command() == "" {
			t.Errorf("kind %s renders no command", k)
		}
	}
	var k ChangeKind
	if err := k.UnmarshalText([]byte("sysctls")); err == nil {
		t.Error("an unknown kind name was accepted")
	}
	if _, err := json.Marshal(Change{}); err == nil {
		t.Error("a change without a kind was marshalled")
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"net.core.rmem_max":   "net.core.rmem_max",
		"4096 131072 6291456": `"4096 131072 6291456"`,
		"":                    "''",
		"a'b":                 `'a'\''b'`,
		"$(reboot)":           "'$(reboot)'",
		"10.0.0.1:53":         "10.0.0.1:53",
	} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestChangesOf(t *testing.T) {
	c := Change{Kind: ChangeSysctl, Target: "net.core.rmem_max", Current: "212992", Proposed: "26214400"}
	fixes := []Fix{
		setting(c, "the ceiling for SO_RCVBUF"),
		inspect("nft -a list ruleset", "find the rule"),
		advice("read faster"),
		appFix(AppChange{Param: AppRcvbuf, Value: 1}, ""),
	}
	if diff := cmp.Diff([]Change{c}, changesOf(fixes)); diff != "" {
		t.Errorf("changesOf (-want +got):\n%s", diff)
	}
	if fixes[0].Now != "212992" || fixes[0].Command != "sysctl -w net.core.rmem_max=26214400" {
		t.Errorf("setting fix = %+v", fixes[0])
	}
}
