package counters

// Driver statistics and ring layout over the SIOCETHTOOL ioctl
// (include/uapi/linux/ethtool.h): ETHTOOL_GSTRINGS/ETHTOOL_GSTATS for the
// driver's private counters (`ethtool -S`), struct ethtool_ringparam
// (ETHTOOL_GRINGPARAM, `ethtool -g`), struct ethtool_channels
// (ETHTOOL_GCHANNELS, `ethtool -l`) and struct ethtool_coalesce
// (ETHTOOL_GCOALESCE, `ethtool -c`). The ioctl socket is opened in the calling
// thread, so interface names resolve in the namespace that thread entered.

import (
	"context"
	"errors"
	"strings"
	"sync"
	"unsafe"

	"github.com/safchain/ethtool"
	"golang.org/x/sys/unix"

	"github.com/netdrop/netdrop/stage"
)

func init() { register(ethtoolSource{}) }

// ethtoolSource reads driver statistics and ring layout of every interface.
type ethtoolSource struct{}

func (ethtoolSource) ID() SourceID { return EthtoolStats }

func (ethtoolSource) Collect(ctx context.Context, r *Reading, s *Snapshot) error {
	links, err := r.linkDump()
	if err != nil {
		return err
	}
	e, err := ethtool.NewEthtool()
	if err != nil {
		return err
	}
	defer e.Close()
	for _, l := range links {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		stats, err := ethtoolStats(e, l.Name)
		switch {
		case err == nil:
			s.Add(ethtoolStatCounters(l.Name, stats)...)
		case !ethtoolUnsupported(err):
			s.FailObject(EthtoolStats, l.Name, err)
		}

		// Ring, channels and coalescing: each is optional per driver.
		// veth and lo answer no ring query; a veth does answer channels,
		// but a NIC entry is only made for interfaces with a device or a
		// ring, so virtual links do not pose as NICs.
		var lay ethtoolLayout
		if r, err := e.GetRing(l.Name); err == nil {
			lay.Ring = &r
		} else if !ethtoolUnsupported(err) {
			s.FailObject(EthtoolRing, l.Name, err)
		}
		if lay.Ring == nil && l.ParentDev == "" {
			continue
		}
		if c, err := e.GetChannels(l.Name); err == nil {
			lay.Channels = &c
		} else if !ethtoolUnsupported(err) {
			s.FailObject(EthtoolChannels, l.Name, err)
		}
		if c, err := e.GetCoalesce(l.Name); err == nil {
			lay.Coalesce = &c
		} else if !ethtoolUnsupported(err) {
			s.FailObject(EthtoolCoalesce, l.Name, err)
		}
		lay.apply(nicEntry(s, l.Name))
	}
	return nil
}

// ethtoolBufs are the fixed-size GSTRINGS and GSTATS buffers the library
// fills (1 MiB and 256 KiB). Its own Stats takes them from a sync.Pool,
// which is emptied by every garbage collection, so most snapshots
// allocated and zeroed them again: the largest allocation of a snapshot.
// One pair is kept for the process, in an anonymous mapping outside the Go
// heap: it costs only the pages the kernel writes (a few hundred bytes per
// driver), and the 1.3 MB do not count toward the heap's first collection
// target (4 MB), which `netdrop counters` otherwise reached, a collection
// that cost more than the snapshot (225 page faults of its mark workers).
// Both structures hold no pointers, so memory the collector does not know
// is fine for them.
//
// Why one pair for the process and not one per reading: a mapping made and
// unmapped per snapshot costs 100–200 µs of the ethtool source
// (BenchmarkCollectEach/ethtool 183–285 → 287–657 µs; BenchmarkCollectAll
// CPU median 1.94 → 2.19 ms on two vCPUs; most likely the munmap, whose
// TLB shootdown reaches every CPU the process ran on), and per-reading
// heap buffers doubled
// BenchmarkSnapshotVsTools (2.4–3.2 → 5.0–8.4 ms).
//
// Why it is safe: the mutex is held for one interface's three ioctls and
// the library's copy of the result into a new map (names copied as
// strings), so concurrent snapshots (the exporter's namespaces, diagnose
// --all-netns) take turns per interface and nothing refers to the buffers
// once it is released. The buffers are never cleared: each call reads only
// the n_stats entries the kernel has just written for its interface.
var ethtoolBufs struct {
	sync.Mutex
	gstrings *ethtool.EthtoolGStrings
	stats    *ethtool.EthtoolStats
}

// ethtoolStats is e.Stats(ifname) with the process's buffers.
func ethtoolStats(e *ethtool.Ethtool, ifname string) (map[string]uint64, error) {
	ethtoolBufs.Lock()
	defer ethtoolBufs.Unlock()
	if ethtoolBufs.gstrings == nil {
		ethtoolBufs.gstrings, ethtoolBufs.stats = mapEthtoolBufs()
	}
	return e.StatsWithBuffer(ifname, ethtoolBufs.gstrings, ethtoolBufs.stats)
}

// mapEthtoolBufs places the two buffers in one anonymous mapping, the
// statistics page-aligned after the strings; on the heap if mapping fails.
func mapEthtoolBufs() (*ethtool.EthtoolGStrings, *ethtool.EthtoolStats) {
	const page = 4096
	gsize := (unsafe.Sizeof(ethtool.EthtoolGStrings{}) + page - 1) &^ (page - 1)
	mem, err := unix.Mmap(-1, 0, int(gsize+unsafe.Sizeof(ethtool.EthtoolStats{})), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return new(ethtool.EthtoolGStrings), new(ethtool.EthtoolStats)
	}
	return (*ethtool.EthtoolGStrings)(unsafe.Pointer(&mem[0])), (*ethtool.EthtoolStats)(unsafe.Pointer(&mem[gsize]))
}

// ethtoolUnsupported reports errors that mean "this driver has no such
// query" (EOPNOTSUPP) or "the interface went away" (ENODEV): neither is worth
// a line in the unavailable list.
func ethtoolUnsupported(err error) bool {
	return errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENODEV)
}

// ethtoolLayout is what the three layout ioctls returned; nil for a query the
// driver does not support.
type ethtoolLayout struct {
	Ring     *ethtool.Ring
	Channels *ethtool.Channels
	Coalesce *ethtool.Coalesce
}

// apply merges the layout into a NIC entry, leaving fields the driver did not
// report untouched.
func (lay ethtoolLayout) apply(n *NIC) {
	if r := lay.Ring; r != nil {
		n.RxRing, n.RxRingMax = r.RxPending, r.RxMaxPending
		n.TxRing, n.TxRingMax = r.TxPending, r.TxMaxPending
	}
	if c := lay.Channels; c != nil {
		n.CombinedChannels, n.MaxCombinedChannels = c.CombinedCount, c.MaxCombined
		n.RxChannels, n.MaxRxChannels = c.RxCount, c.MaxRx
	}
	if c := lay.Coalesce; c != nil {
		n.RxUsecs = c.RxCoalesceUsecs
		n.AdaptiveRx = c.UseAdaptiveRxCoalesce != 0
	}
}

// ethtoolKeywords select the driver statistics that can show a loss or a
// near-loss. Names are the drivers' own and follow no standard, so the match
// is a substring one. "discard" and "out_of_buf" are added to the usual
// words because mlx5 (rx_discards_phy, rx_out_of_buffer) and i40e/ice
// (rx_discards) report ring overruns under those names.
var ethtoolKeywords = []string{
	"drop", "miss", "err", "fifo", "over", "no_buf", "timeout", "busy",
	"restart", "fail", "discard", "out_of_buf",
}

// ethtoolSelected reports whether a driver statistic is a drop or
// near-drop counter. "interrupt" is removed first: it contains "err".
func ethtoolSelected(name string) bool {
	n := strings.ReplaceAll(strings.ToLower(name), "interrupt", "")
	for _, k := range ethtoolKeywords {
		if strings.Contains(n, k) {
			return true
		}
	}
	return false
}

// ethtoolStagePatterns map a driver statistic to a stage; the first match
// wins. dir is the direction the name starts with ("rx", "tx" or "" when the
// name has none): a counter on the transmit side is the TX ring whatever its
// cause, corrupt frames are the link, and a receive counter is the RX ring
// only for causes that are about ring space. XDP verdicts are the xdp stage.
// Other receive drops (driver "rx_drops") stay context: their cause is not
// known.
var ethtoolStagePatterns = []struct {
	dir   string
	words []string
	stage stage.ID
}{
	{"", []string{"crc", "fcs", "frame", "length", "symbol", "align"}, stage.NIC},
	// XDP verdicts: native XDP frees no skb, so the driver's counters
	// are the only evidence (veth, virtio: rx_queue_N_xdp_drops; mlx5:
	// rx_xdp_drop; XDP_TX that could not be sent: xdp_tx_err[ors]).
	{"", []string{"xdp_drop", "xdp_abort", "xdp_tx_err"}, stage.XDP},
	{"tx", nil, stage.TxRing},
	{"rx", []string{"miss", "no_buf", "fifo", "over", "out_of_buf", "discard", "alloc"}, stage.RxRing},
}

// ethtoolStage maps a driver statistic's name to a stage, or "" for
// context.
func ethtoolStage(name string) stage.ID {
	n := strings.ToLower(name)
	dir := ethtoolDirection(n)
	for _, p := range ethtoolStagePatterns {
		if p.dir != "" && p.dir != dir {
			continue
		}
		if p.words == nil {
			return p.stage
		}
		for _, w := range p.words {
			if strings.Contains(n, w) {
				return p.stage
			}
		}
	}
	return ""
}

// ethtoolDirection returns "rx" or "tx" for the first word of name that
// starts with one of them ("rx0_drops", "port.tx_dropped",
// "alloc_rx_buff_failed"), or "".
func ethtoolDirection(n string) string {
	words := strings.FieldsFunc(n, func(r rune) bool { return r == '_' || r == '.' || r == '-' || r == ' ' })
	for _, w := range words {
		if strings.HasPrefix(w, "rx") {
			return "rx"
		}
		if strings.HasPrefix(w, "tx") {
			return "tx"
		}
	}
	return ""
}

// ethtoolStatCounters keeps the selected driver statistics of one
// interface.
func ethtoolStatCounters(ifname string, stats map[string]uint64) []Counter {
	var out []Counter
	for name, v := range stats {
		if !ethtoolSelected(name) {
			continue
		}
		out = append(out, Counter{
			Source: EthtoolStats,
			Object: ifname,
			Field:  name,
			Value:  v,
			Stage:  ethtoolStage(name),
		})
	}
	return out
}
