package probe

import (
	"time"

	"golang.org/x/sys/unix"
)

// Report is the outcome of one probe run as the receiver saw it, with the
// sender's side added by the client.
type Report struct {
	// Version is the report's format (ReportVersion); 0 is version 1.
	Version int    `json:"version,omitempty"`
	Proto   string `json:"proto"`
	Clock   string `json:"clock"`
	Sender  uint32 `json:"sender_id"`
	// Sent is the number of data frames the sender says it sent (its Fin).
	Sent uint64 `json:"sent"`
	TrackerCounts
	// InFlight is zero in a final report: every frame is received or lost.
	InFlight    uint64  `json:"in_flight"`
	LossPercent float64 `json:"loss_percent"`
	// Datagrams is everything that reached the probe socket, frames or not.
	Datagrams uint64 `json:"datagrams"`
	Corrupted uint64 `json:"corrupted"`
	Invalid   uint64 `json:"invalid"`
	Foreign   uint64 `json:"foreign"`
	Control   uint64 `json:"control"`
	// SocketDrops is how many datagrams the probe socket dropped during the
	// run because its receive queue was full.
	SocketDrops uint64 `json:"socket_drops"`
	// HelloMissed and FinMissed count the sender's Hello and Fin copies
	// that never reached the receiver (the sender numbers its attempts in
	// the flags): lost control frames, which a drop counter also counts but
	// which are not data. Lost Fins fall inside the run, lost Hellos before.
	HelloMissed     uint64        `json:"hello_missed"`
	FinMissed       uint64        `json:"fin_missed"`
	NegativeLatency uint64        `json:"negative_latency,omitempty"`
	Latency         *Summary      `json:"latency,omitempty"`
	IPDV            *Summary      `json:"ipdv,omitempty"`
	JitterNs        float64       `json:"jitter_ns"`
	Duration        time.Duration `json:"duration_ns"`
	RecvRate        float64       `json:"recv_per_s"`
	Attribution     Attribution   `json:"attribution"`
	// Stray is the server's totals since it started of traffic outside any
	// run (none of it is in this run's counts), when there was any.
	Stray *Stray `json:"stray,omitempty"`
	// Host is the receiver's namespace (ServerConfig.Host), so that a
	// client in the same one does not count its drops twice.
	Host *HostID `json:"host,omitempty"`
	// Send is filled in by the client: what the sending side saw.
	Send *SendStats `json:"send,omitempty"`
}

// Interval is one per-second line.
type Interval struct {
	Elapsed     time.Duration `json:"elapsed_ns"`
	Received    uint64        `json:"received"`
	Lost        uint64        `json:"lost"`
	InFlight    uint64        `json:"in_flight"`
	Reordered   uint64        `json:"reordered"`
	Duplicates  uint64        `json:"duplicates"`
	Corrupted   uint64        `json:"corrupted"`
	Invalid     uint64        `json:"invalid"`
	SocketDrops uint64        `json:"socket_drops"`
	RecvRate    float64       `json:"recv_per_s"`
	// Totals since the start of the run, which keep the invariant
	// TotalReceived + TotalLost + InFlight = Expected, Expected being the
	// highest sequence number seen plus one (the receiver learns what was
	// sent only from the sender's Fin).
	TotalReceived uint64        `json:"total_received"`
	TotalLost     uint64        `json:"total_lost"`
	Expected      uint64        `json:"expected"`
	LatencyP50    time.Duration `json:"latency_p50_ns,omitempty"`
	LatencyP99    time.Duration `json:"latency_p99_ns,omitempty"`
	LatencyMax    time.Duration `json:"latency_max_ns,omitempty"`
	JitterNs      float64       `json:"jitter_ns"`
}

// SendStats is the sender's side of a run.
type SendStats struct {
	Sent       uint64        `json:"sent"`
	Batches    uint64        `json:"batches"`
	SendErrors uint64        `json:"send_errors"`
	Elapsed    time.Duration `json:"elapsed_ns"`
	Rate       float64       `json:"sent_per_s"`
}

// The monotonic clock. Go's time.Time carries CLOCK_MONOTONIC internally
// but does not expose it; reading it with clock_gettime per packet would be a
// syscall (x/sys does not use the vDSO). So the offset is read once and every
// later reading is that offset plus time.Since, which Go computes from its
// vDSO monotonic clock. Two processes on one host get comparable values.
var monoBase, monoBaseTime = func() (int64, time.Time) {
	var ts unix.Timespec
	now := time.Now()
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0, now
	}
	return ts.Nano(), now
}()

// monoNs converts t (taken with time.Now) to CLOCK_MONOTONIC nanoseconds.
func monoNs(t time.Time) int64 { return monoBase + int64(t.Sub(monoBaseTime)) }

func lossPercent(lost, received uint64) float64 {
	if lost+received == 0 {
		return 0
	}
	return 100 * float64(lost) / float64(lost+received)
}
