package counters

import (
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/netdrop/netdrop/stage"
)

// linkMessage builds the payload of an RTM_NEWLINK message as the kernel
// sends it: ifinfomsg, then attributes. words is the stats64 struct, one
// value per u64 field; nil leaves IFLA_STATS64 out.
func linkMessage(t *testing.T, index int32, name, kind string, words []uint64) []byte {
	t.Helper()
	hdr := nl.NewIfInfomsg(unix.AF_UNSPEC)
	hdr.Index = index
	b := hdr.Serialize()
	b = append(b, nl.NewRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(name)).Serialize()...)
	b = append(b, nl.NewRtAttr(unix.IFLA_ADDRESS, []byte{2, 0, 0, 0, 1, 2}).Serialize()...)
	b = append(b, nl.NewRtAttr(unix.IFLA_TXQLEN, nl.Uint32Attr(1000)).Serialize()...)
	b = append(b, nl.NewRtAttr(unix.IFLA_NUM_TX_QUEUES, nl.Uint32Attr(4)).Serialize()...)
	b = append(b, nl.NewRtAttr(unix.IFLA_NUM_RX_QUEUES, nl.Uint32Attr(2)).Serialize()...)
	if kind != "" {
		li := nl.NewRtAttr(unix.IFLA_LINKINFO, nil)
		li.AddRtAttr(unix.IFLA_INFO_KIND, nl.NonZeroTerminated(kind))
		b = append(b, li.Serialize()...)
	} else {
		b = append(b, nl.NewRtAttr(unix.IFLA_PARENT_DEV_NAME, nl.ZeroTerminated("0000:00:03.0")).Serialize()...)
	}
	if words != nil {
		raw := make([]byte, 8*len(words))
		for i, w := range words {
			binary.NativeEndian.PutUint64(raw[8*i:], w)
		}
		b = append(b, nl.NewRtAttr(unix.IFLA_STATS64, raw).Serialize()...)
	}
	return b
}

// stats64Words returns a struct rtnl_link_stats64 of n fields where field i
// holds 1000+i, so every value shows which field it came from.
func stats64Words(n int) []uint64 {
	w := make([]uint64, n)
	for i := range w {
		w[i] = uint64(1000 + i)
	}
	return w
}

func TestParseLinkMessage(t *testing.T) {
	tests := []struct {
		name string
		msg  []byte
		want linkInfo
	}{
		{
			name: "veth",
			msg:  linkMessage(t, 7, "veth0", "veth", nil),
			want: linkInfo{Index: 7, Name: "veth0", Kind: "veth", MAC: "02:00:00:00:01:02", TxQLen: 1000, NumTxQueues: 4, NumRxQueues: 2, PortState: -1, STP: -1},
		},
		{
			name: "nic with parent device",
			msg:  linkMessage(t, 2, "eth0", "", nil),
			want: linkInfo{Index: 2, Name: "eth0", ParentDev: "0000:00:03.0", MAC: "02:00:00:00:01:02", TxQLen: 1000, NumTxQueues: 4, NumRxQueues: 2, PortState: -1, STP: -1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseLinkMessage(tt.msg)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("parseLinkMessage (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseLinkMessageErrors(t *testing.T) {
	hdr := nl.NewIfInfomsg(unix.AF_UNSPEC)
	hdr.Index = 3
	noName := hdr.Serialize()
	badAttr := append(hdr.Serialize(), 0xff, 0xff, 1, 0) // length 65535 past the end
	for name, msg := range map[string][]byte{
		"short":    {1, 2, 3},
		"no name":  noName,
		"bad attr": badAttr,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := parseLinkMessage(msg)
			if !errors.Is(err, ErrFileParse) {
				t.Fatalf("parseLinkMessage = %v, want an error wrapping ErrFileParse", err)
			}
		})
	}
}

func TestLinkStatsCounters(t *testing.T) {
	c := func(field string, idx int, st stage.ID) Counter {
		return Counter{Source: NetlinkLinkStats, Object: "eth0", Field: field, Value: uint64(1000 + idx), Stage: st}
	}
	base := []Counter{
		c("rx_packets", 0, ""), c("tx_packets", 1, ""), c("rx_errors", 4, ""), c("tx_errors", 5, ""),
		c("rx_dropped", 6, stage.Softirq), c("tx_dropped", 7, stage.TxRing),
		c("rx_length_errors", 10, stage.NIC), c("rx_over_errors", 11, stage.RxRing),
		c("rx_crc_errors", 12, stage.NIC), c("rx_frame_errors", 13, stage.NIC),
		c("rx_fifo_errors", 14, stage.RxRing), c("rx_missed_errors", 15, stage.RxRing),
		c("tx_aborted_errors", 16, stage.TxRing), c("tx_carrier_errors", 17, stage.TxRing),
		c("tx_fifo_errors", 18, stage.TxRing),
	}
	tests := []struct {
		name  string
		words int
		want  []Counter
	}{
		// Before 4.6 the struct ended at tx_compressed (23 fields).
		{"linux 4.5", 23, base},
		// 4.6 added rx_nohandler.
		{"linux 4.6", 24, append(append([]Counter{}, base...), c("rx_nohandler", 23, stage.Softirq))},
		// 6.0 added rx_otherhost_dropped.
		{"linux 6.0", 25, append(append([]Counter{}, base...), c("rx_nohandler", 23, stage.Softirq), c("rx_otherhost_dropped", 24, stage.IP))},
		// A future kernel with more fields: the known ones are still read.
		{"longer", 30, append(append([]Counter{}, base...), c("rx_nohandler", 23, stage.Softirq), c("rx_otherhost_dropped", 24, stage.IP))},
		// No IFLA_STATS64 at all: nothing, not zeros.
		{"none", 0, []Counter{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var words []uint64
			if tt.words > 0 {
				words = stats64Words(tt.words)
			}
			l, err := parseLinkMessage(linkMessage(t, 2, "eth0", "", words))
			if err != nil {
				t.Fatal(err)
			}
			got := linkStatsCounters(l)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("linkStatsCounters (-want +got):\n%s", diff)
			}
		})
	}
}

func FuzzParseLinkMessage(f *testing.F) {
	hdr := nl.NewIfInfomsg(unix.AF_UNSPEC)
	seed := append(hdr.Serialize(), nl.NewRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated("eth0")).Serialize()...)
	seed = append(seed, nl.NewRtAttr(unix.IFLA_STATS64, make([]byte, 200)).Serialize()...)
	f.Add(seed)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := parseLinkMessage(b)
		if err == nil {
			_ = linkStatsCounters(l)
		}
	})
}

// TestTunnelLinkErrorsAreTunnelStage: a vxlan device's rx_frame_errors (an
// inner/outer ECN conflict on decapsulation) and its other receive error
// fields are the tunnel stage; the same fields of a NIC stay the NIC's.
func TestTunnelLinkErrorsAreTunnelStage(t *testing.T) {
	stages := func(name, kind string) map[string]stage.ID {
		t.Helper()
		l, err := parseLinkMessage(linkMessage(t, 2, name, kind, stats64Words(25)))
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]stage.ID{}
		for _, c := range linkStatsCounters(l) {
			out[c.Field] = c.Stage
		}
		return out
	}
	vx, nic := stages("vx0", "vxlan"), stages("eth0", "")
	for _, f := range []string{"rx_frame_errors", "rx_crc_errors", "rx_length_errors", "rx_fifo_errors", "rx_over_errors", "rx_missed_errors"} {
		if vx[f] != stage.Tunnel {
			t.Errorf("vxlan %s at stage %q, want tunnel", f, vx[f])
		}
		if nic[f] == stage.Tunnel || nic[f] == "" {
			t.Errorf("NIC %s at stage %q", f, nic[f])
		}
	}
	// The other fields keep their stage on a tunnel device too.
	if vx["rx_dropped"] != stage.Softirq || vx["tx_dropped"] != stage.TxRing {
		t.Errorf("vxlan rx_dropped at %q, tx_dropped at %q", vx["rx_dropped"], vx["tx_dropped"])
	}
}

// TestBridgePorts decodes a bridge's STP settings and its port's STP state
// from an RTM_GETLINK dump as the kernel sends them (IFLA_INFO_DATA of the
// bridge, IFLA_INFO_SLAVE_DATA and IFLA_MASTER of the port), and pairs
// them; a veth that is no port, and a bond's port, are not bridge ports.
func TestBridgePorts(t *testing.T) {
	msg := func(index int32, name string, attrs ...*nl.RtAttr) []byte {
		hdr := nl.NewIfInfomsg(unix.AF_UNSPEC)
		hdr.Index = index
		b := append(hdr.Serialize(), nl.NewRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(name)).Serialize()...)
		for _, a := range attrs {
			b = append(b, a.Serialize()...)
		}
		return b
	}
	u32 := func(v uint32) []byte { return binary.NativeEndian.AppendUint32(nil, v) }
	br := nl.NewRtAttr(unix.IFLA_LINKINFO, nil)
	br.AddRtAttr(unix.IFLA_INFO_KIND, nl.NonZeroTerminated("bridge"))
	data := br.AddRtAttr(unix.IFLA_INFO_DATA, nil)
	data.AddRtAttr(unix.IFLA_BR_FORWARD_DELAY, u32(3000))
	data.AddRtAttr(unix.IFLA_BR_HELLO_TIME, u32(200))
	data.AddRtAttr(unix.IFLA_BR_STP_STATE, u32(1))
	port := nl.NewRtAttr(unix.IFLA_LINKINFO, nil)
	port.AddRtAttr(unix.IFLA_INFO_KIND, nl.NonZeroTerminated("veth"))
	port.AddRtAttr(unix.IFLA_INFO_SLAVE_KIND, nl.NonZeroTerminated("bridge"))
	sd := port.AddRtAttr(unix.IFLA_INFO_SLAVE_DATA, nil)
	sd.AddRtAttr(unix.IFLA_BRPORT_PRIORITY, []byte{32, 0})
	sd.AddRtAttr(unix.IFLA_BRPORT_STATE, []byte{1})
	bondPort := nl.NewRtAttr(unix.IFLA_LINKINFO, nil)
	bondPort.AddRtAttr(unix.IFLA_INFO_SLAVE_KIND, nl.NonZeroTerminated("bond"))
	bondPort.AddRtAttr(unix.IFLA_INFO_SLAVE_DATA, nil).AddRtAttr(1, []byte{1}) // IFLA_BOND_SLAVE_STATE: not a port state
	var links []linkInfo
	for _, m := range [][]byte{
		msg(5, "br0", br),
		msg(6, "veth3", port, nl.NewRtAttr(unix.IFLA_MASTER, u32(5))),
		msg(7, "veth4"),
		msg(8, "eth1", bondPort, nl.NewRtAttr(unix.IFLA_MASTER, u32(9))),
	} {
		l, err := parseLinkMessage(m)
		if err != nil {
			t.Fatal(err)
		}
		links = append(links, l)
	}
	want := []BridgePort{{Port: "veth3", Bridge: "br0", State: PortListening, STP: 1, ForwardDelay: 30 * time.Second}}
	if diff := cmp.Diff(want, bridgePorts(links)); diff != "" {
		t.Errorf("bridge ports (-want +got):\n%s", diff)
	}
	if got := PortBlocking.String(); got != "blocking" {
		t.Errorf("PortBlocking = %q", got)
	}
}
