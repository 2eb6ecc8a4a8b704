package sockets

import "testing"

// TestStateNamesParse keeps the list shells complete from in step with
// ParseStates: every name it offers must parse, and every state but the
// request-socket one (reported as syn-recv) must be offered.
func TestStateNamesParse(t *testing.T) {
	offered := map[State]bool{}
	for _, n := range StateNames() {
		set, err := ParseStates(n)
		if err != nil {
			t.Errorf("StateNames offers %q, ParseStates rejects it: %v", n, err)
		}
		for st := range stateNames {
			if set.Has(st) {
				offered[st] = true
			}
		}
	}
	for st, n := range stateNames {
		if st != NewSynRecv && !offered[st] {
			t.Errorf("state %s cannot be asked for by any name StateNames offers", n)
		}
	}
}
