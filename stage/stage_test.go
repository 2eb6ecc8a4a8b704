package stage

import "testing"

// The IDs are a public contract (JSON, metric labels, lab expectations):
// this test fails if one is renamed, dropped or reordered by accident.
func TestVocabularyIsStable(t *testing.T) {
	want := []ID{"nic", "rx-ring", "xdp", "softirq", "tc-ingress", "bridge", "ip", "netfilter", "conntrack", "tunnel",
		"no-socket", "socket-rcvbuf", "tcp-listen", "tcp", "ports", "tx-socket", "qdisc", "neighbor", "tx-ring"}
	got := All()
	if len(got) != len(want) {
		t.Fatalf("%d stages, want %d", len(got), len(want))
	}
	for i, s := range got {
		if s.ID != want[i] {
			t.Errorf("stage %d = %q, want %q", i, s.ID, want[i])
		}
		if s.Title == "" || s.Where == "" {
			t.Errorf("stage %q lacks a description", s.ID)
		}
		if Index(s.ID) != i || !Valid(s.ID) {
			t.Errorf("Index/Valid wrong for %q", s.ID)
		}
	}
	if diff := len(IDs()) - len(want); diff != 0 {
		t.Errorf("IDs() has %d entries, want %d", len(IDs()), len(want))
	}
	for i, id := range IDs() {
		if i < len(want) && id != want[i] {
			t.Errorf("IDs()[%d] = %q, want %q", i, id, want[i])
		}
	}
	if Valid("bogus") || Index("bogus") != -1 {
		t.Error("unknown stage accepted")
	}
	if rx, tx := OnPath(RX), OnPath(TX); len(rx)+len(tx) != len(want) || rx[0] != NIC || tx[len(tx)-1] != TxRing {
		t.Errorf("OnPath: rx=%v tx=%v", rx, tx)
	}
}

// The receive-side hooks must stay on the receive path: a drop there never
// gets a transmit-path fix.
func TestHooksAreReceiveSide(t *testing.T) {
	for _, id := range []ID{XDP, TCIngress, Bridge, Tunnel} {
		s, ok := Lookup(id)
		if !ok || s.Path != RX {
			t.Errorf("stage %q: path %v, found %v; want RX", id, s.Path, ok)
		}
	}
}
