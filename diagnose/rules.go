package diagnose

import (
	"time"

	"github.com/netdrop/netdrop/counters"
)

// input is what every rule sees: both snapshots and their delta.
type input struct {
	before, after, delta *counters.Snapshot
	interval           time.Duration
}

// rate converts a count over the interval to a per-second rate.
func (in *input) rate(n uint64) float64 {
	if in.interval <= 0 {
		return 0
	}
	return float64(n) / in.interval.Seconds()
}

// A rule looks at the input and returns the findings of one stage.
type rule func(in *input) []Finding

// rules are applied in packet-path order.
var rules []rule
