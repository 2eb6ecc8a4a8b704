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

// TestTrustCatalog checks the bridge scenario exists on its stage with its
// reference check.
func TestTrustCatalog(t *testing.T) {
	for name, st := range map[string]string{"bridge-port-blocking": "bridge"} {
		s, ok := scenarios[name]
		if !ok || string(s.Stage) != st {
			t.Errorf("scenario %s: registered %v, stage %q; want stage %q", name, ok, s.Stage, st)
		}
		if _, ok := references[name]; !ok {
			t.Errorf("scenario %s has no reference check", name)
		}
	}
}
