package exporter

import (
	"encoding/binary"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/netdrop/netdrop/internal/netns"
	"github.com/netdrop/netdrop/internal/testnet"
)

// sendUnknownEtherType writes n Ethernet frames of an EtherType no
// protocol handles (0x88b5, IEEE local experimental) out of dev in ns: the
// peer's __netif_receive_skb_core finds no handler and counts each in the
// peer's rx_dropped.
func sendUnknownEtherType(t *testing.T, ns, dev string, n int) {
	t.Helper()
	err := netns.Do(ns, func() error {
		ifi, err := net.InterfaceByName(dev)
		if err != nil {
			return err
		}
		const etherType = 0x88b5
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, int(htons(etherType)))
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		frame := make([]byte, 60)
		copy(frame[0:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
		copy(frame[6:12], ifi.HardwareAddr)
		binary.BigEndian.PutUint16(frame[12:14], etherType)
		sa := &unix.SockaddrLinklayer{Ifindex: ifi.Index, Protocol: htons(etherType), Halen: 6}
		copy(sa.Addr[:], frame[0:6])
		for i := 0; i < n; i++ {
			if err := unix.Sendto(fd, frame, 0, sa); err != nil {
				return fmt.Errorf("sendto: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// procNetDev reads /proc/net/dev in ns as node_exporter does: per device,
// the receive and transmit columns by name.
func procNetDev(t *testing.T, ns string) map[string]map[string]uint64 {
	t.Helper()
	out := testnet.In(t, ns, "cat", "/proc/net/dev")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	cols := strings.Fields(strings.Split(lines[1], "|")[1])
	m := map[string]map[string]uint64{}
	for _, l := range lines[2:] {
		dev, rest, _ := strings.Cut(l, ":")
		f := strings.Fields(rest)
		row := map[string]uint64{}
		for i, c := range cols {
			row["receive_"+c], _ = strconv.ParseUint(f[i], 10, 64)
			row["transmit_"+c], _ = strconv.ParseUint(f[i+len(cols)], 10, 64)
		}
		m[strings.TrimSpace(dev)] = row
	}
	return m
}

// TestNetdevMatchesProcNetDev: frames no protocol handles are dropped on
// receive by a veth; netdrop_network_receive_drop_total and the packet
// counts agree with /proc/net/dev's columns (what node_exporter reads) for every
// device of the namespace, and --exclude-interfaces leaves out exactly the
// devices it names (veths made in the namespace: this kernel has no dummy).
func TestNetdevMatchesProcNetDev(t *testing.T) {
	testnet.RequireRoot(t)
	p := testnet.NewPair(t, "netdev")
	for i := 0; i < 5; i++ {
		testnet.MustRun(t, "ip", "-n", p.B, "link", "add", fmt.Sprintf("ndx%d", i), "type", "veth", "peer", "name", fmt.Sprintf("ndy%d", i))
	}
	const frames = 300
	sendUnknownEtherType(t, p.A, "a0", frames)

	opts := Options{Netns: netns.Named(p.B), NoSockets: true, Interfaces: Filter{Exclude: regexp.MustCompile(`^nd[xy][0-2]$`)}}
	reg, _, err := NewRegistry(opts)
	if err != nil {
		t.Fatal(err)
	}
	// Packets keep arriving (IPv6 neighbour discovery on the new
	// links), so each value must lie between /proc/net/dev read just
	// before and just after the scrape.
	lo := procNetDev(t, p.B)
	text := scrapeText(t, Handler(reg, opts))
	ref := procNetDev(t, p.B)
	if ref["b0"]["receive_drop"] < frames {
		t.Fatalf("/proc/net/dev: b0 dropped %d frames, want at least %d: the fault did not happen", ref["b0"]["receive_drop"], frames)
	}
	num := func(series string) uint64 {
		v, err := strconv.ParseFloat(sample(t, text, series), 64)
		if err != nil {
			t.Fatal(err)
		}
		return uint64(v)
	}
	for dev, row := range ref {
		re := regexp.MustCompile(`(?m)^netdrop_network_receive_drop_total\{device="` + regexp.QuoteMeta(dev) + `"\}`)
		if regexp.MustCompile(`^nd[xy][0-2]$`).MatchString(dev) {
			if re.MatchString(text) || strings.Contains(text, `device="`+dev+`"`) {
				t.Errorf("%s is excluded but has series", dev)
			}
			continue
		}
		checks := []struct{ series, col string }{
			{`netdrop_network_receive_drop_total{device="` + dev + `"}`, "receive_drop"},
			{`netdrop_network_receive_packets_total{device="` + dev + `",stage=""}`, "receive_packets"},
			{`netdrop_network_transmit_packets_total{device="` + dev + `",stage=""}`, "transmit_packets"},
			{`netdrop_network_receive_errs_total{device="` + dev + `",stage=""}`, "receive_errs"},
			{`netdrop_network_receive_fifo_total{device="` + dev + `",stage="rx-ring"}`, "receive_fifo"},
		}
		for _, c := range checks {
			if got := num(c.series); got < lo[dev][c.col] || got > row[c.col] {
				t.Errorf("%s = %d, /proc/net/dev %s %s = %d before the scrape, %d after", c.series, got, dev, c.col, lo[dev][c.col], row[c.col])
			}
		}
	}
}
