package diagnose

import "github.com/netdrop/netdrop/counters"

// Severity thresholds. This table is the one place that decides how bad a
// count is; every rule grades its counts through lossSeverity,
// eventSeverity or severityOf, and README.md ("How severe") points here.
//
// A count is graded by its unit (counters.Unit): packets lost are loss;
// events (a failed neighbour resolution, a conntrack eviction) and
// near-drops (a receive queue collapsed, a softirq budget run out) are not,
// and only matter when they are sustained. Each grade has a floor in the
// interval (a count) and a rate (per second), both of which must be reached,
// so that one stray event never pages anyone and a short interval does not
// turn a handful into a high rate. Totals since boot (--once) are history:
// loss is a warning at most and events are information.
var (
	// lossCritical: packets are being lost now.
	lossCritical = floor{Count: 10, Rate: 1}
	// lossWarning: a few packets lost; below it (a single packet) the
	// finding is information.
	lossWarning = floor{Count: 3}
	// eventWarning: events or near-drops sustained over the interval.
	// TcpExt TCPToZeroWindowAdv +30 in 5 s (a reader pausing) stays
	// information; a neighbour failing ten resolutions a second does not.
	eventWarning = floor{Count: 50, Rate: 10}
	// othersIdleShare: receive work concentrated on one CPU is a warning
	// only while every other CPU spends at least this share of the
	// interval idle (/proc/stat idle and iowait); when they are busy too,
	// spreading the work helps nothing.
	othersIdleShare = 0.5
	// disagreement is the relative difference between a stage's counters
	// and the drop tracer above which a finding says they disagree.
	disagreement = 0.05
)

// floor is a threshold: at least Count in the interval and at least Rate
// per second over it.
type floor struct {
	Count uint64
	Rate  float64
}

// reached reports whether n over the input's interval meets f. In totals
// since boot there is no rate, and only the count is compared.
func (in *input) reached(f floor, n uint64) bool {
	if n == 0 || n < f.Count {
		return false
	}
	return in.once() || in.rate(n) >= f.Rate
}

// lossSeverity grades packets lost at a stage.
func (in *input) lossSeverity(drops uint64) Severity {
	switch {
	case !in.reached(lossWarning, drops):
		return Info
	case in.once():
		return Warning
	case in.reached(lossCritical, drops):
		return Critical
	default:
		return Warning
	}
}

// eventSeverity grades events and near-drops: a warning only when sustained
// over the interval, never from totals since boot.
func (in *input) eventSeverity(n uint64) Severity {
	if in.once() || !in.reached(eventWarning, n) {
		return Info
	}
	return Warning
}

// severityOf grades a count of the given unit. Levels are graded by the
// rules that know their limits (a table 90% full), not here.
func (in *input) severityOf(u counters.Unit, n uint64) Severity {
	if u == counters.Drops {
		return in.lossSeverity(n)
	}
	if u == counters.Level {
		return Info
	}
	return in.eventSeverity(n)
}

// atMost caps s: loss that is often intended (firewall rules) or that the
// protocol recovers (TCP discards) is a warning at most.
func atMost(s, max Severity) Severity {
	if s > max {
		return max
	}
	return s
}

// byUnit splits counters into those that count packets dropped and the
// rest (events and near-drops).
func byUnit(cs []counters.Counter) (drops, events []counters.Counter) {
	for _, c := range cs {
		if c.Unit() == counters.Drops {
			drops = append(drops, c)
		} else {
			events = append(events, c)
		}
	}
	return drops, events
}
