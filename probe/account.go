package probe

import (
	"math"

	"github.com/netdrop/netdrop/frame"
)

// Clock says which send timestamp the receiver may compare with its own
// clock.
type Clock int

const (
	// ClockNone: the two ends do not share a clock; only differences of
	// differences mean anything, so the receiver reports IPDV and RFC 3550
	// jitter, never one-way latency.
	ClockNone Clock = iota
	// ClockMonotonic: both ends on one host; CLOCK_MONOTONIC is shared and
	// never jumps, so one-way latency is exact.
	ClockMonotonic
	// ClockWall: the user declares the hosts' wall clocks synchronised
	// (--clock-synced); latency is as good as that synchronisation.
	ClockWall
)

func (c Clock) String() string {
	switch c {
	case ClockMonotonic:
		return "monotonic (same host)"
	case ClockWall:
		return "wall (declared synchronised)"
	default:
		return "none"
	}
}

// Account classifies every datagram that reaches the receiver exactly once:
//
//	datagrams = received + duplicates + late + out_of_window
//	          + corrupted + invalid + foreign + control
//
// and keeps the latency, IPDV and jitter of the frames received. It is not
// safe for concurrent use; the receiver owns it on one goroutine.
type Account struct {
	Tracker *Tracker
	Clock   Clock
	// Sender is the sender id of the run; frames of other senders are
	// counted as foreign. Zero until a Hello or the first data frame.
	Sender uint32
	locked bool

	Datagrams uint64
	Bytes     uint64
	Corrupted uint64 // frames whose CRC failed: damaged in transit
	Invalid   uint64 // not a frame: bad magic, version, length, truncated
	Foreign   uint64 // valid frames of another sender
	Control   uint64 // hello, fin and other control frames
	// NegativeLatency counts frames that arrived "before" they were sent by
	// the clocks compared: the clocks are not as synchronised as declared.
	NegativeLatency uint64

	Latency Histogram // one-way delay, when Clock != ClockNone
	// Interval histograms are reset by the receiver each reporting interval.
	IntervalLatency Histogram
	IPDV            Histogram // |IPDV| of consecutive received frames (RFC 5481)
	// Jitter is the RFC 3550 interarrival jitter estimate, in ns.
	Jitter float64

	prevSend, prevRecv int64
	havePrev           bool
}

// NewAccount returns an account with a tracker of the given window.
func NewAccount(window int, clock Clock) *Account {
	return &Account{Tracker: NewTracker(window), Clock: clock}
}

// Lock fixes the sender id of the run (from a Hello).
func (a *Account) Lock(sender uint32) { a.Sender, a.locked = sender, true }

// Datagram accounts one received datagram. recvWall and recvMono are the
// receive times on the receiver's clocks. For valid control frames it returns
// the header and true so the caller can act on them.
func (a *Account) Datagram(b []byte, recvWall, recvMono int64) (frame.Header, bool) {
	a.Datagrams++
	a.Bytes += uint64(len(b))
	h, _, err := frame.Decode(b)
	if err != nil {
		a.Bad(err)
		return h, false
	}
	return h, a.Frame(h, recvWall, recvMono)
}

// Bad counts a decode error: a CRC mismatch is a corrupted frame, anything
// else is not a frame at all.
func (a *Account) Bad(err error) {
	if err == frame.ErrCRC {
		a.Corrupted++
	} else {
		a.Invalid++
	}
}

// Frame accounts one valid frame (from Decode or a stream Scanner) and
// reports whether it is a control frame the caller must act on.
func (a *Account) Frame(h frame.Header, recvWall, recvMono int64) bool {
	if h.Type != frame.Data {
		a.Control++
		return true
	}
	if !a.locked {
		a.Lock(h.Sender)
	}
	if h.Sender != a.Sender {
		a.Foreign++
		return false
	}
	switch a.Tracker.Add(h.Seq) {
	case InOrder, Reordered:
	default:
		return false
	}
	var lat int64
	switch a.Clock {
	case ClockMonotonic:
		lat = recvMono - h.MonoNs
	case ClockWall:
		lat = recvWall - h.WallNs
	}
	if a.Clock != ClockNone {
		if lat < 0 {
			a.NegativeLatency++
			lat = 0
		}
		a.Latency.Record(uint64(lat))
		a.IntervalLatency.Record(uint64(lat))
	}
	// The sender stamps one time per batch and the receiver reads its clock
	// once per recvmmsg, so frames of one batch share both times and their
	// D is zero: at high rates IPDV's median is 0 and its tail shows the
	// gaps between batches. That is the traffic as sent, not an artefact to
	// hide.
	//
	// RFC 3550 section 6.4.1: D(i,j) = (Rj - Ri) - (Sj - Si) over
	// consecutive arrivals, J += (|D| - J) / 16. The sender's monotonic clock
	// is used for S, so a wall clock step on the sender does not show up as
	// jitter; the offset between the two clocks cancels out.
	if a.havePrev {
		d := (recvMono - a.prevRecv) - (h.MonoNs - a.prevSend)
		ad := math.Abs(float64(d))
		a.Jitter += (ad - a.Jitter) / 16
		a.IPDV.Record(uint64(ad))
	}
	a.prevSend, a.prevRecv, a.havePrev = h.MonoNs, recvMono, true
	return false
}
