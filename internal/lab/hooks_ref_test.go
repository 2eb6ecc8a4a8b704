package lab

import (
	"encoding/json"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
)

// The reference checks of the receive-side hook scenarios: the kernel's own
// counters for each hook, read with the tools a user would use. Their
// traffic is the only traffic on the receiver (static neighbours, IPv6 off),
// so every packet the hook judged was one the scenario sent to be dropped
// and the counts must be equal.
func init() {
	globalSysctls = append(globalSysctls, "kernel.bpf_stats_enabled")
	references["tc-ingress-drop"] = func(t *testing.T, e *Env) (uint64, bool) {
		// The clsact qdisc counts its filters' TC_ACT_SHOT verdicts.
		out := inNS(t, e.Receiver.NS, "tc", "-s", "qdisc", "show", "dev", e.Receiver.Link, "ingress")
		if !strings.Contains(out, "clsact") {
			t.Errorf("tc-ingress-drop: no clsact qdisc on the receiver:\n%s", out)
		}
		return firstUint(t, regexp.MustCompile(`dropped (\d+)`), out), true
	}
	references["xdp-drop"] = func(t *testing.T, e *Env) (uint64, bool) {
		id := xdpProgID(t, e, 2) // XDP_ATTACHED_SKB: generic
		return progRuns(t, id), true
	}
	references["tunnel-vni-mismatch"] = func(t *testing.T, e *Env) (uint64, bool) {
		// The receiver's VXLAN socket counts every encapsulated datagram
		// as delivered before decapsulation drops it; no other UDP
		// reaches the receiver.
		if out := inNS(t, e.Receiver.NS, "ip", "-d", "link", "show", "dev", vxlanLink); !strings.Contains(out, "vxlan id 100") {
			t.Errorf("tunnel-vni-mismatch: receiver's vxlan is not VNI 100:\n%s", out)
		}
		return nstat(t, e.Receiver.NS, "UdpInDatagrams"), true
	}
	references["xdp-native-drop"] = func(t *testing.T, e *Env) (uint64, bool) {
		xdpProgID(t, e, 1) // XDP_ATTACHED_DRV: native
		out := inNS(t, e.Receiver.NS, "ethtool", "-S", e.Receiver.Link)
		var n uint64
		for _, m := range regexp.MustCompile(`rx_queue_\d+_xdp_drops: (\d+)`).FindAllStringSubmatch(out, -1) {
			n += firstUint(t, regexp.MustCompile(`(\d+)`), m[1])
		}
		return n, true
	}
}

// xdpProgID returns the id of the XDP program on the receiver's link as `ip
// -d -j link` shows it, and checks it is attached in mode (IFLA_XDP_ATTACHED:
// 1 native, 2 generic).
func xdpProgID(t *testing.T, e *Env, mode int) uint32 {
	t.Helper()
	out := inNS(t, e.Receiver.NS, "ip", "-d", "-j", "link", "show", "dev", e.Receiver.Link)
	var links []struct {
		XDP struct {
			Mode int `json:"mode"`
			Prog struct {
				ID uint32 `json:"id"`
			} `json:"prog"`
		} `json:"xdp"`
	}
	if err := json.Unmarshal([]byte(out), &links); err != nil || len(links) != 1 {
		t.Fatalf("ip -d -j link: %v\n%s", err, out)
	}
	if links[0].XDP.Mode != mode {
		t.Errorf("XDP attached in mode %d, want %d:\n%s", links[0].XDP.Mode, mode, out)
	}
	id := links[0].XDP.Prog.ID
	if id == 0 {
		t.Fatalf("no XDP program id in:\n%s", out)
	}
	return id
}

// progRuns is the program's run count as bpftool shows it (kernel.
// bpf_stats_enabled was on while the scenario ran); without bpftool, the
// same bpf_prog_info field read directly.
func progRuns(t *testing.T, id uint32) uint64 {
	t.Helper()
	if _, err := exec.LookPath("bpftool"); err == nil {
		out := run(t, "bpftool", "-j", "prog", "show", "id", strconv.FormatUint(uint64(id), 10))
		var p struct {
			RunCnt uint64 `json:"run_cnt"`
		}
		if err := json.Unmarshal([]byte(out), &p); err != nil {
			t.Fatalf("bpftool prog show: %v\n%s", err, out)
		}
		return p.RunCnt
	}
	p, err := ebpf.NewProgramFromID(ebpf.ProgramID(id))
	if err != nil {
		t.Fatalf("open program %d: %v", id, err)
	}
	defer p.Close()
	st, err := p.Stats()
	if err != nil {
		t.Fatalf("program %d stats: %v", id, err)
	}
	return st.RunCount
}

// TestHookCatalog checks the hook scenarios exist on their stages.
func TestHookCatalog(t *testing.T) {
	for name, st := range map[string]string{"tc-ingress-drop": "tc-ingress", "xdp-drop": "xdp", "xdp-native-drop": "xdp", "tunnel-vni-mismatch": "tunnel"} {
		s, ok := scenarios[name]
		if !ok || string(s.Stage) != st {
			t.Errorf("scenario %s: registered %v, stage %q; want stage %q", name, ok, s.Stage, st)
		}
		if _, ok := references[name]; !ok {
			t.Errorf("scenario %s has no reference check", name)
		}
	}
}
