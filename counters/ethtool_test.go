package counters

import (
	"sort"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/safchain/ethtool"

	"github.com/netdrop/netdrop/stage"
)

// The names below are real `ethtool -S` names of common drivers (virtio_net
// on this machine's kernel 6.18, veth, ixgbe, i40e, mlx5, igb, e1000e).
func TestEthtoolStage(t *testing.T) {
	tests := []struct {
		name     string
		selected bool
		stage    stage.ID
	}{
		// virtio_net
		{"rx_drops", true, ""},
		{"rx0_drops", true, ""},
		{"rx_xdp_drops", true, stage.XDP},
		{"rx_kicks", false, ""},
		{"tx_tx_timeouts", true, stage.TxRing},
		{"tx0_xdp_tx_drops", true, stage.TxRing},
		// veth
		{"rx_queue_0_xdp_drops", true, stage.XDP},
		{"rx_queue_0_xdp_tx_errors", true, stage.XDP},
		{"rx_queue_0_xdp_packets", false, ""},
		{"tx_queue_0_xdp_xmit_errors", true, stage.TxRing},
		{"peer_ifindex", false, ""},
		// ixgbe / igb / e1000e
		{"rx_missed_errors", true, stage.RxRing},
		{"rx_no_buffer_count", true, stage.RxRing},
		{"rx_fifo_errors", true, stage.RxRing},
		{"rx_over_errors", true, stage.RxRing},
		{"rx_crc_errors", true, stage.NIC},
		{"rx_length_errors", true, stage.NIC},
		{"rx_long_length_errors", true, stage.NIC},
		{"rx_align_errors", true, stage.NIC},
		{"alloc_rx_buff_failed", true, stage.RxRing},
		{"tx_restart_queue", true, stage.TxRing},
		{"tx_busy", true, stage.TxRing},
		{"tx_timeout_count", true, stage.TxRing},
		{"tx_carrier_errors", true, stage.TxRing},
		{"rx_packets", false, ""},
		{"tx_queue_0_packets", false, ""},
		// "interrupt" contains "err" but is not an error count
		{"rx_queue_0_interrupts", false, ""},
		// i40e / ice
		{"port.rx_dropped", true, ""},
		{"port.rx_discards", true, stage.RxRing},
		{"port.tx_dropped_link_down", true, stage.TxRing},
		{"rx_symbol_error", true, stage.NIC},
		// mlx5
		{"rx_out_of_buffer", true, stage.RxRing},
		{"rx_discards_phy", true, stage.RxRing},
		{"rx_buff_alloc_err", true, stage.RxRing},
		{"rx_wqe_err", true, ""},
		{"rx_fcs_errors_phy", true, stage.NIC},
		// no direction in the name
		{"restart_queue", true, ""},
		{"dropped_smbus", true, ""},
	}
	for _, tt := range tests {
		if got := ethtoolSelected(tt.name); got != tt.selected {
			t.Errorf("ethtoolSelected(%q) = %v, want %v", tt.name, got, tt.selected)
		}
		if got := ethtoolStage(tt.name); tt.selected && got != tt.stage {
			t.Errorf("ethtoolStage(%q) = %q, want %q", tt.name, got, tt.stage)
		}
	}
}

func TestEthtoolStatCounters(t *testing.T) {
	stats := map[string]uint64{
		"rx_drops": 3, "rx_kicks": 298, "tx_tx_timeouts": 1, "rx_missed_errors": 12, "rx_packets": 99,
	}
	got := ethtoolStatCounters("eth0", stats)
	sort.Slice(got, func(i, j int) bool { return got[i].Field < got[j].Field })
	want := []Counter{
		{Source: EthtoolStats, Object: "eth0", Field: "rx_drops", Value: 3},
		{Source: EthtoolStats, Object: "eth0", Field: "rx_missed_errors", Value: 12, Stage: stage.RxRing},
		{Source: EthtoolStats, Object: "eth0", Field: "tx_tx_timeouts", Value: 1, Stage: stage.TxRing},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ethtoolStatCounters (-want +got):\n%s", diff)
	}
}

func TestEthtoolLayoutApply(t *testing.T) {
	// The sysfs reader filled its part first; ethtool adds its own.
	n := NIC{Name: "eth0", Driver: "virtio_net", RxQueues: 1, TxQueues: 1}
	ethtoolLayout{
		Ring:     &ethtool.Ring{RxPending: 256, RxMaxPending: 256, TxPending: 256, TxMaxPending: 256},
		Channels: &ethtool.Channels{MaxCombined: 1, CombinedCount: 1},
		Coalesce: &ethtool.Coalesce{RxCoalesceUsecs: 8, UseAdaptiveRxCoalesce: 1},
	}.apply(&n)
	want := NIC{
		Name: "eth0", Driver: "virtio_net", RxQueues: 1, TxQueues: 1,
		CombinedChannels: 1, MaxCombinedChannels: 1,
		RxRing: 256, RxRingMax: 256, TxRing: 256, TxRingMax: 256,
		RxUsecs: 8, AdaptiveRx: true,
	}
	if diff := cmp.Diff(want, n); diff != "" {
		t.Errorf("apply (-want +got):\n%s", diff)
	}

	// A driver without ring or coalescing support changes nothing of those.
	m := NIC{Name: "veth0", RxRing: 7}
	ethtoolLayout{Channels: &ethtool.Channels{MaxRx: 2, RxCount: 1}}.apply(&m)
	if diff := cmp.Diff(NIC{Name: "veth0", RxRing: 7, RxChannels: 1, MaxRxChannels: 2}, m); diff != "" {
		t.Errorf("apply channels only (-want +got):\n%s", diff)
	}
}

func TestNICEntryMerges(t *testing.T) {
	s := &Snapshot{}
	nicEntry(s, "eth0").Driver = "ixgbe"
	nicEntry(s, "eth1").Driver = "i40e"
	nicEntry(s, "eth0").RxRing = 512
	want := []NIC{{Name: "eth0", Driver: "ixgbe", RxRing: 512}, {Name: "eth1", Driver: "i40e"}}
	if diff := cmp.Diff(want, s.NICs); diff != "" {
		t.Errorf("NICs (-want +got):\n%s", diff)
	}
}
