package counters

// The programs and filters attached to an interface's receive-side hooks
// (XDP, tc ingress/clsact) and the clsact egress hook: which program on which
// interface, so that a drop at the xdp or tc-ingress stage can be pinned on
// it. The links' IFLA_XDP attribute (RTM_GETLINK) names the XDP program and
// its mode; an RTM_GETTFILTER dump of each interface that has an ingress or
// clsact qdisc lists its filters (for bpf filters: TCA_BPF_ID, TCA_BPF_NAME,
// direct-action). The program's run statistics (run_cnt, from
// BPF_OBJ_GET_INFO_BY_FD) are kept as a counter when kernel.bpf_stats_enabled
// is on; they are runs, not drops, and stay context. tcx programs (BPF links
// on an interface, kernel 6.6 and later) are listed by BPF_PROG_QUERY per
// interface, as tc-ingress or tc-egress hooks of kind "tcx".

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

func init() { register(hooksSource{}) }

// HookPoint is where on an interface a program or filter is attached.
type HookPoint string

const (
	HookXDP       HookPoint = "xdp"        // XDP, any mode (Hook.Mode says which)
	HookTCIngress HookPoint = "tc-ingress" // ingress or clsact qdisc, receive side
	HookTCEgress  HookPoint = "tc-egress"  // clsact qdisc, transmit side
)

// Hook is one program or filter attached to an interface's hook.
type Hook struct {
	Ifname  string    `json:"ifname"`
	Ifindex int       `json:"ifindex"`
	Point   HookPoint `json:"point"`
	// Mode is the XDP attach mode ("native", "generic", "offload"); for tc,
	// "direct-action" when a bpf filter gives its own verdict.
	Mode string `json:"mode,omitempty"`
	// Kind is the tc classifier ("bpf", "u32", …); "" for XDP.
	Kind string `json:"kind,omitempty"`
	// Pref and Handle identify a tc filter as `tc filter show` prints them.
	Pref   uint16 `json:"pref,omitempty"`
	Handle uint32 `json:"handle,omitempty"`
	// ProgID and ProgName name the BPF program, when there is one; the
	// name is the program's own (bpf_prog_info.name), else the tc filter's
	// TCA_BPF_NAME.
	ProgID   uint32 `json:"prog_id,omitempty"`
	ProgName string `json:"prog_name,omitempty"`
	// RunCount is how often the program ran (bpf_stats_enabled only).
	RunCount uint64 `json:"run_count,omitempty"`
	RunStats bool   `json:"run_stats,omitempty"`
	// LinkID is the BPF link a tcx program hangs on (`bpftool link show id
	// N`), zero when the kernel does not say: a tcx program goes when its
	// link is detached or its last holder closes it, not with tc.
	LinkID uint32 `json:"link_id,omitempty"`
}

// Label names a hook for evidence and findings: "eth0 tc-ingress bpf pref 1
// prog 42 tc_drop_udp (direct-action)".
func (h Hook) Label() string {
	s := h.Ifname + " " + string(h.Point)
	if h.Kind != "" {
		s += " " + h.Kind
	}
	if h.Pref != 0 {
		s += " pref " + strconv.Itoa(int(h.Pref))
	}
	if h.ProgID != 0 {
		s += " prog " + strconv.FormatUint(uint64(h.ProgID), 10)
	}
	if h.ProgName != "" {
		s += " " + h.ProgName
	}
	if h.Mode != "" {
		s += " (" + h.Mode + ")"
	}
	return s
}

// hooksSource reads the hooks of every interface in the namespace of the
// calling thread.
type hooksSource struct{}

func (hooksSource) ID() SourceID { return NetlinkHooks }

func (hooksSource) Collect(ctx context.Context, r *Reading, s *Snapshot) error {
	fsys := r.FS
	// The snapshot's one RTM_GETLINK dump carries IFLA_XDP: no dump of
	// its own.
	links, err := r.linkDump()
	if err != nil {
		return err
	}
	// The qdisc source's dump too: the ingress and clsact qdiscs say
	// where filters hang.
	qs, err := r.qdiscDump()
	if err != nil {
		return err
	}
	filters := map[int][]tcFilterAt{}
	var errs []error
	for _, q := range qs {
		a := q.Attrs()
		if a.Parent != netlink.HANDLE_INGRESS {
			continue
		}
		points := []HookPoint{HookTCIngress}
		if q.Type() == "clsact" {
			points = append(points, HookTCEgress)
		}
		for _, p := range points {
			parent := uint32(netlink.HANDLE_MIN_INGRESS)
			if p == HookTCEgress {
				parent = netlink.HANDLE_MIN_EGRESS
			}
			fs, err := netlink.FilterList(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: a.LinkIndex}}, parent)
			if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
				errs = append(errs, fmt.Errorf("rtm_gettfilter ifindex %d %s: %w", a.LinkIndex, p, err))
				continue
			}
			for _, f := range fs {
				filters[a.LinkIndex] = append(filters[a.LinkIndex], tcFilterAt{p, f})
			}
		}
	}
	hooks := hooksOf(links, filters)
	tcx, err := tcxHooks(links)
	if err != nil {
		errs = append(errs, err)
	}
	hooks = append(hooks, tcx...)
	sortHooks(hooks)
	// Run counts are kept only while statistics are on (the sysctl, or a
	// BPF_ENABLE_STATS descriptor some tool holds, which shows as counts
	// that move); otherwise the kernel reports zeros that mean nothing.
	b, _ := fsys.ReadFile(fsys.ProcPath("sys/kernel/bpf_stats_enabled"))
	statsOn := strings.TrimSpace(string(b)) == "1"
	for i := range hooks {
		if hooks[i].ProgID != 0 {
			progStats(&hooks[i], statsOn)
		}
	}
	s.Hooks = append(s.Hooks, hooks...)
	s.Add(hookCounters(hooks)...)
	return errors.Join(errs...)
}

// tcFilterAt is a tc filter and the hook it was listed under.
type tcFilterAt struct {
	point  HookPoint
	filter netlink.Filter
}

// xdpModes names IFLA_XDP_ATTACHED values as `ip link` prints the mode
// (xdp, xdpgeneric, xdpoffload).
var xdpModes = map[uint32]string{
	nl.XDP_ATTACHED_DRV: "native",
	nl.XDP_ATTACHED_SKB: "generic",
	nl.XDP_ATTACHED_HW:  "offload",
}

// hooksOf lists the XDP programs of links and the tc filters of each
// interface, by interface name then point and preference.
func hooksOf(links []linkInfo, filters map[int][]tcFilterAt) []Hook {
	names := map[int]string{}
	var out []Hook
	for _, l := range links {
		names[l.Index] = l.Name
		if l.XDPAttached != 0 && l.XDPProgID != 0 {
			mode := xdpModes[uint32(l.XDPAttached)]
			if mode == "" {
				mode = "mode " + strconv.Itoa(int(l.XDPAttached))
			}
			out = append(out, Hook{Ifname: l.Name, Ifindex: l.Index, Point: HookXDP, Mode: mode, ProgID: l.XDPProgID})
		}
	}
	for idx, fs := range filters {
		name, ok := names[idx]
		if !ok {
			name = "ifindex" + strconv.Itoa(idx)
		}
		for _, f := range fs {
			fa := f.filter.Attrs()
			h := Hook{Ifname: name, Ifindex: idx, Point: f.point, Kind: f.filter.Type(), Pref: fa.Priority, Handle: fa.Handle}
			if b, ok := f.filter.(*netlink.BpfFilter); ok {
				h.ProgID, h.ProgName = uint32(b.Id), b.Name
				if b.DirectAction {
					h.Mode = "direct-action"
				}
			}
			out = append(out, h)
		}
	}
	sortHooks(out)
	return out
}

// sortHooks orders hooks by interface name, then point and preference
// (tcx programs, which have none, after the tc filters of their point).
func sortHooks(hs []Hook) {
	sort.SliceStable(hs, func(i, j int) bool {
		a, b := hs[i], hs[j]
		if a.Ifname != b.Ifname {
			return a.Ifname < b.Ifname
		}
		if a.Point != b.Point {
			return a.Point < b.Point
		}
		if (a.Kind == "tcx") != (b.Kind == "tcx") {
			return b.Kind == "tcx"
		}
		return a.Pref < b.Pref
	})
}

// tcxDirections are the tcx attach points (kernel 6.6 and later: BPF
// programs attached to an interface through a BPF link, without a clsact
// qdisc or a tc filter) and the hook each is.
var tcxDirections = []struct {
	attach ebpf.AttachType
	point  HookPoint
}{
	{ebpf.AttachTCXIngress, HookTCIngress},
	{ebpf.AttachTCXEgress, HookTCEgress},
}

// tcxHooks lists the tcx programs of every link (BPF_PROG_QUERY by ifindex,
// in the calling thread's namespace), in attach order: what `bpftool net
// show` prints as tcx/ingress and tcx/egress. A kernel without tcx answers
// the first query with EINVAL (an unknown attach type): nothing to list
// there, and no error.
func tcxHooks(links []linkInfo) ([]Hook, error) {
	var out []Hook
	for _, l := range links {
		for _, d := range tcxDirections {
			r, err := link.QueryPrograms(link.QueryOptions{Target: l.Index, Attach: d.attach})
			switch {
			case errors.Is(err, unix.EINVAL), errors.Is(err, ebpf.ErrNotSupported):
				return out, nil
			case errors.Is(err, unix.ENODEV):
				continue // the link went away
			case err != nil:
				return out, fmt.Errorf("tcx %s ifindex %d: %w", d.point, l.Index, err)
			}
			for _, p := range r.Programs {
				h := Hook{Ifname: l.Name, Ifindex: l.Index, Point: d.point, Kind: "tcx", ProgID: uint32(p.ID)}
				if id, ok := p.LinkID(); ok {
					h.LinkID = uint32(id)
				}
				out = append(out, h)
			}
		}
	}
	return out, nil
}

// progStats fills in the program's own name and, with statistics on, its
// run count. Without the privilege to open programs by id the names netlink
// gave stay.
func progStats(h *Hook, statsOn bool) {
	p, err := ebpf.NewProgramFromID(ebpf.ProgramID(h.ProgID))
	if err != nil {
		return
	}
	defer p.Close()
	info, err := p.Info()
	if err != nil {
		return
	}
	if info.Name != "" {
		h.ProgName = info.Name
	}
	if st, err := p.Stats(); err == nil && (statsOn || st.RunCount > 0) {
		h.RunCount, h.RunStats = st.RunCount, true
	}
}

// hookCounters turns the run counts of hook programs into counters: runs,
// not drops, so context without a stage.
func hookCounters(hooks []Hook) []Counter {
	var out []Counter
	for _, h := range hooks {
		if !h.RunStats {
			continue
		}
		out = append(out, Counter{Source: BPFProgStats, Object: HookObject(h), Field: "run_cnt", Value: h.RunCount})
	}
	return out
}

// HookObject is the counter Object of a hook program's statistics:
// "eth0 xdp prog 42".
func HookObject(h Hook) string {
	return h.Ifname + " " + string(h.Point) + " prog " + strconv.FormatUint(uint64(h.ProgID), 10)
}
