package sockets

import (
	"cmp"
	"net/netip"
	"slices"
)

// Dropped is one socket that dropped packets between two summaries: a
// listener (handshakes lost to a full accept or SYN queue, stage tcp-listen)
// or another socket (receive buffer full, stage socket-rcvbuf).
type Dropped struct {
	Listener bool           `json:"listener"`
	Family   string         `json:"family"`
	Protocol string         `json:"protocol"`
	State    State          `json:"state"`
	Local    netip.AddrPort `json:"local"`
	Remote   netip.AddrPort `json:"remote"`
	// Drops happened between the two summaries; TotalDrops since the
	// socket opened.
	Drops      uint32 `json:"drops"`
	TotalDrops uint32 `json:"total_drops"`
	// For a listener, the accept queue at the second summary; for other
	// sockets, the receive memory and its limit.
	Queued    uint32    `json:"queued,omitempty"`
	Backlog   uint32    `json:"backlog,omitempty"`
	RmemAlloc uint32    `json:"rmem_alloc,omitempty"`
	Rcvbuf    uint32    `json:"rcvbuf,omitempty"`
	Processes []Process `json:"processes,omitempty"`
}

// NewDrops lists the sockets whose drop count grew from before to after,
// most drops first, matching sockets by cookie (a socket's identity for its
// lifetime). A socket absent from before counts all its drops: it opened in
// between, or before was cut by Top — so take both summaries with Top -1
// when the per-interval number matters. before may be nil (since boot).
func NewDrops(before, after *Summary) []Dropped {
	prev := map[uint64]uint32{}
	if before != nil {
		for _, l := range before.Listeners {
			prev[l.Cookie] = l.Drops
		}
		for _, p := range before.Pressure {
			prev[p.Cookie] = p.Drops
		}
	}
	var out []Dropped
	for _, l := range after.Listeners {
		// Counters are u32 in the kernel: the subtraction wraps as they do.
		if d := l.Drops - prev[l.Cookie]; d > 0 {
			out = append(out, Dropped{Listener: true, Family: l.Family, Protocol: "tcp", State: Listen, Local: l.Local,
				Drops: d, TotalDrops: l.Drops, Queued: l.Queued, Backlog: l.Backlog, Processes: l.Processes})
		}
	}
	for _, p := range after.Pressure {
		if d := p.Drops - prev[p.Cookie]; d > 0 {
			out = append(out, Dropped{Family: p.Family, Protocol: p.Protocol, State: p.State, Local: p.Local, Remote: p.Remote,
				Drops: d, TotalDrops: p.Drops, RmemAlloc: p.RmemAlloc, Rcvbuf: p.Rcvbuf, Processes: p.Processes})
		}
	}
	slices.SortStableFunc(out, func(a, b Dropped) int { return cmp.Compare(b.Drops, a.Drops) })
	return out
}
