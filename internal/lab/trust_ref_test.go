package lab

import (
	"encoding/json"
	"strings"
	"testing"
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
		return links[0].Stats64.Rx.Packets, true
	}
}

func init() {
	references["tcx-ingress-drop"] = func(t *testing.T, e *Env) (uint64, bool) {
		// The program hangs on a tcx link (bpftool link show: type tcx,
		// or 11 for a bpftool older than tcx) and nothing else is there:
		// no clsact qdisc. Every packet it judged is one the scenario
		// sent to be dropped.
		out := run(t, "bpftool", "-j", "link", "show")
		var links []struct {
			Type   any    `json:"type"`
			ProgID uint32 `json:"prog_id"`
		}
		if err := json.Unmarshal([]byte(out), &links); err != nil {
			t.Fatalf("bpftool link show: %v\n%s", err, out)
		}
		var ids []uint32
		for _, l := range links {
			if l.Type == "tcx" || l.Type == float64(11) {
				ids = append(ids, l.ProgID)
			}
		}
		if len(ids) != 1 {
			t.Fatalf("bpftool link show: %d tcx links, want the scenario's one:\n%s", len(ids), out)
		}
		if q := inNS(t, e.Receiver.NS, "tc", "qdisc", "show", "dev", e.Receiver.Link); strings.Contains(q, "clsact") {
			t.Errorf("tcx-ingress-drop: a clsact qdisc is on the receiver:\n%s", q)
		}
		return progRuns(t, ids[0]), true
	}
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
