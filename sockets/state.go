package sockets

import (
	"fmt"
	"strings"
)

// State is a socket state as the kernel numbers it (enum in
// include/net/tcp_states.h). UDP uses two of them: ESTABLISHED for a
// connected socket and CLOSE for an unconnected one.
type State uint8

// The TCP states.
const (
	Established State = 1
	SynSent     State = 2
	SynRecv     State = 3
	FinWait1    State = 4
	FinWait2    State = 5
	TimeWait    State = 6
	Close       State = 7
	CloseWait   State = 8
	LastAck     State = 9
	Listen      State = 10
	Closing     State = 11
	NewSynRecv  State = 12 // request sockets; inet_diag reports them as SynRecv
)

// stateNames spell states as ss does, so the two outputs line up.
var stateNames = map[State]string{
	Established: "ESTAB",
	SynSent:     "SYN-SENT",
	SynRecv:     "SYN-RECV",
	FinWait1:    "FIN-WAIT-1",
	FinWait2:    "FIN-WAIT-2",
	TimeWait:    "TIME-WAIT",
	Close:       "UNCONN",
	CloseWait:   "CLOSE-WAIT",
	LastAck:     "LAST-ACK",
	Listen:      "LISTEN",
	Closing:     "CLOSING",
	NewSynRecv:  "NEW-SYN-RECV",
}

func (s State) String() string {
	if n, ok := stateNames[s]; ok {
		return n
	}
	return fmt.Sprintf("STATE-%d", uint8(s))
}

// MarshalText writes the state's name in JSON.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// StateSet is a set of states as a bit mask: bit n is state n. It is the
// idiag_states field of the request, so a filter on states is applied by the
// kernel and the unwanted sockets never cross to user space.
type StateSet uint32

// Has says whether s is in the set.
func (set StateSet) Has(s State) bool { return set&(1<<s) != 0 }

// ParseStates reads a comma-separated list of state names, in ss spelling
// (time-wait, estab, syn-recv), kernel spelling (TIME_WAIT, established)
// or the groups ss knows: all, connected (all but listen and closed),
// synchronized (connected but syn-sent), bucket (syn-recv and time-wait)
// and big (all but the bucket states).
func ParseStates(list string) (StateSet, error) {
	var set StateSet
	for _, f := range strings.Split(list, ",") {
		name := strings.ToLower(strings.TrimSpace(f))
		name = strings.ReplaceAll(name, "_", "-")
		if name == "" {
			continue
		}
		switch name {
		case "all":
			set |= AllStates
			continue
		case "connected":
			set |= AllStates &^ (1<<Listen | 1<<Close)
			continue
		case "synchronized":
			set |= AllStates &^ (1<<Listen | 1<<Close | 1<<SynSent)
			continue
		case "bucket":
			set |= 1<<SynRecv | 1<<TimeWait
			continue
		case "big":
			set |= AllStates &^ (1<<SynRecv | 1<<TimeWait)
			continue
		}
		found := false
		for st, n := range stateNames {
			if st == NewSynRecv {
				continue
			}
			alias := map[string]string{"established": "estab", "close": "unconn", "closed": "unconn"}[name]
			if strings.ToLower(n) == name || strings.ToLower(n) == alias {
				set |= 1 << st
				found = true
			}
		}
		if !found {
			return 0, fmt.Errorf("unknown socket state %q (want e.g. estab, time-wait, listen, syn-recv, close-wait, unconn, all)", f)
		}
	}
	if set == 0 {
		return 0, fmt.Errorf("no socket state in %q", list)
	}
	return set, nil
}

// UnmarshalText reads a state name back from JSON.
func (s *State) UnmarshalText(b []byte) error {
	for st, n := range stateNames {
		if n == string(b) {
			*s = st
			return nil
		}
	}
	var n uint8
	if _, err := fmt.Sscanf(string(b), "STATE-%d", &n); err == nil {
		*s = State(n)
		return nil
	}
	return fmt.Errorf("unknown socket state %q", b)
}

// StateNames lists the names ParseStates takes, in ss spelling, lowercase:
// the states in kernel order, then the groups. Shells complete --state from
// it and errors list it.
func StateNames() []string {
	var out []string
	for st := Established; st < NewSynRecv; st++ {
		out = append(out, strings.ToLower(stateNames[st]))
	}
	return append(out, "all", "connected", "synchronized", "bucket", "big")
}
