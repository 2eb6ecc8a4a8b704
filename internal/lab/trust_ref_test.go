package lab

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// The reference checks of the bridge scenario, read with the tools a user
// would run.
func init() {
	references["bridge-port-blocking"] = func(t *testing.T, e *Env) (uint64, bool) {
		// The port is still listening, and every frame the veth received
		// is one the bridge dropped: static neighbours and no IPv6 leave
		// the scenario's datagrams the only frames on the link (the
		// bridge's own BPDUs go out, not in).
		if out := inNS(t, e.Receiver.NS, "bridge", "link", "show", "dev", e.Receiver.Link); !strings.Contains(out, "state listening") {
			t.Errorf("bridge-port-blocking: the port is not listening:\n%s", out)
		}
		return rxPackets(t, e), true
	}
}

func init() {
	references["tcx-ingress-drop"] = func(t *testing.T, e *Env) (uint64, bool) {
		// Like netdrop's finding, the count is the receiver interface's,
		// not the host's: the tcx program on that interface, asked of
		// the kernel inside its namespace (BPF_PROG_QUERY, what
		// `bpftool net show dev` prints from bpftool 7.3), and the
		// packets that interface received (ip -s link), each of which
		// the program judged: static neighbours and no IPv6 leave the
		// scenario's datagrams the only ones. Other tcx links on the
		// host (a CNI's, another test's) are not this scenario's.
		idx, err := e.Receiver.LinkIndex()
		if err != nil {
			t.Fatal(err)
		}
		var progs []link.AttachedProgram
		err = e.Receiver.Do(func() error {
			r, err := link.QueryPrograms(link.QueryOptions{Target: idx, Attach: ebpf.AttachTCXIngress})
			if err == nil {
				progs = r.Programs
			}
			return err
		})
		if err != nil || len(progs) != 1 {
			t.Fatalf("tcx ingress of %s: %v, %d programs, want the scenario's one", e.Receiver.Link, err, len(progs))
		}
		prog := progs[0]
		lid, ok := prog.LinkID()
		if !ok {
			t.Fatalf("tcx program %d on %s hangs on no link", prog.ID, e.Receiver.Link)
		}
		// bpftool lists its link: type tcx, or 11 for a bpftool older
		// than tcx.
		out := run(t, "bpftool", "-j", "link", "show")
		var links []bpfLink
		if err := json.Unmarshal([]byte(out), &links); err != nil {
			t.Fatalf("bpftool link show: %v\n%s", err, out)
		}
		if !slices.ContainsFunc(links, func(l bpfLink) bool {
			return l.ID == uint32(lid) && l.ProgID == uint32(prog.ID) && (l.Type == "tcx" || l.Type == float64(11))
		}) {
			t.Errorf("bpftool link show has no tcx link %d of program %d:\n%s", lid, prog.ID, out)
		}
		if q := inNS(t, e.Receiver.NS, "tc", "qdisc", "show", "dev", e.Receiver.Link); strings.Contains(q, "clsact") {
			t.Errorf("tcx-ingress-drop: a clsact qdisc is on the receiver:\n%s", q)
		}
		rx := rxPackets(t, e)
		if runs := progRuns(t, uint32(prog.ID)); runs != rx {
			t.Errorf("tcx-ingress-drop: the program ran %d times, %s received %d packets", runs, e.Receiver.Link, rx)
		}
		return rx, true
	}
}

// bpfLink is what the reference reads of one link `bpftool -j link show`
// lists; Type is a name, or a number where bpftool does not know the type.
type bpfLink struct {
	ID     uint32 `json:"id"`
	Type   any    `json:"type"`
	ProgID uint32 `json:"prog_id"`
}

// rxPackets is the packets the receiver's veth received, as ip -s link
// shows them.
func rxPackets(t *testing.T, e *Env) uint64 {
	t.Helper()
	out := inNS(t, e.Receiver.NS, "ip", "-s", "-j", "link", "show", "dev", e.Receiver.Link)
	var links []struct {
		Stats64 struct {
			Rx struct {
				Packets uint64 `json:"packets"`
			} `json:"rx"`
		} `json:"stats64"`
	}
	if err := json.Unmarshal([]byte(out), &links); err != nil || len(links) != 1 {
		t.Fatalf("ip -s -j link: %v\n%s", err, out)
	}
	return links[0].Stats64.Rx.Packets
}

func init() {
	references["tcp-rcv-prune"] = func(t *testing.T, e *Env) (uint64, bool) {
		// Every segment lost is one the out-of-order queue had no
		// room for (TCPOFODrop), after a prune of the receive queue
		// (PruneCalled) that freed too little (RcvPruned): prunes are
		// events, one per segment here, never added to the loss.
		drops := nstat(t, e.Receiver.NS, "TcpExtTCPOFODrop")
		if p := nstat(t, e.Receiver.NS, "TcpExtPruneCalled"); p < drops {
			t.Errorf("tcp-rcv-prune: %d prunes for %d out-of-order drops; each drop follows a prune", p, drops)
		}
		if p := nstat(t, e.Receiver.NS, "TcpExtRcvPruned"); p != drops {
			t.Errorf("tcp-rcv-prune: RcvPruned %d, TCPOFODrop %d: each failed prune drops the segment that asked", p, drops)
		}
		return drops, true
	}
}

// fixWords are words the fixes of a scenario's finding must carry, and
// words they must never carry: the advice that is right for the fault, not
// a generic one.
var fixWords = map[string]struct{ want, never []string }{
	// A port STP holds in listening: the fix is STP's (turn it off where
	// no loop is possible, or shorten the forward delay), not a port
	// state set by hand, which the kernel refuses while its STP runs.
	"bridge-port-blocking": {want: []string{"type bridge stp_state 0", "forward_delay"}, never: []string{"bridge link set"}},
	// A tcx program is a BPF link: tc neither lists nor deletes it.
	"tcx-ingress-drop": {want: []string{"bpftool link show id", "bpftool link detach id"}, never: []string{"tc filter del", "tc -s filter show"}},
}

// checkFixWords checks the fixes of the finding at the scenario's stage
// against fixWords.
func checkFixWords(t *testing.T, s Scenario, r *Result) {
	t.Helper()
	w, ok := fixWords[s.Name]
	if !ok {
		return
	}
	f, ok := findingAt(r.Report, s.Stage)
	if !ok {
		t.Errorf("%s: no %s finding to check the fixes of", s.Name, s.Stage)
		return
	}
	var all []string
	for _, x := range f.Fix {
		all = append(all, x.Command, x.Text, x.Note)
	}
	text := strings.Join(append(all, f.Advice), "\n")
	for _, word := range w.want {
		if !strings.Contains(text, word) {
			t.Errorf("%s: the %s finding's fixes do not say %q:\n%s", s.Name, s.Stage, word, text)
		}
	}
	for _, word := range w.never {
		if strings.Contains(text, word) {
			t.Errorf("%s: the %s finding's fixes say %q:\n%s", s.Name, s.Stage, word, text)
		}
	}
}

// TestTrustCatalog checks the bridge, tcx and TCP prune scenarios exist on
// their stages with their reference checks.
func TestTrustCatalog(t *testing.T) {
	for name, st := range map[string]string{"bridge-port-blocking": "bridge", "tcx-ingress-drop": "tc-ingress", "tcp-rcv-prune": "socket-rcvbuf"} {
		s, ok := scenarios[name]
		if !ok || string(s.Stage) != st {
			t.Errorf("scenario %s: registered %v, stage %q; want stage %q", name, ok, s.Stage, st)
		}
		if _, ok := references[name]; !ok {
			t.Errorf("scenario %s has no reference check", name)
		}
	}
}
