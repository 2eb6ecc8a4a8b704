package probe

import "math/bits"

// Tracker accounts one stream of 64-bit sequence numbers exactly: every
// arriving sequence number is exactly one of new (in order or reordered),
// duplicate, late, or out of window, and every sequence number below the
// highest seen is exactly one of received, lost or pending.
//
// It keeps a bitmap of the last Window sequence numbers. A missing number is
// "pending" (in flight, or reordered and still coming) until it is finalised
// as lost: when it falls out of the bitmap, or when the receiver decides its
// reorder window has passed (Finalize). Once lost, always lost: a copy that
// arrives afterwards is counted as late, never subtracted from the loss.
// That is what keeps loss from going negative or above 100% under reordering
// and duplication, the accounting errors iperf3 is known for (its late packet
// decrements loss, which duplicates then drive negative).
//
// Reordering follows RFC 4737 section 3: a packet is reordered when its
// sequence number is below NextExp, the highest seen plus one; only first
// copies count, duplicates are not reordered.
type Tracker struct {
	mask uint64 // Window-1
	bits []uint64
	// base is the lowest sequence number not yet final; everything below it
	// has been counted as received or lost.
	base uint64
	// next is NextExp of RFC 4737: highest sequence seen + 1.
	next uint64
	// inWindow counts set bits in [base, next).
	inWindow uint64
	// jumpLimit: a sequence number this far above next is suspect (a forged
	// or stray frame) until the number after it confirms the jump, the
	// probation RFC 3550 appendix A.1 applies to large jumps.
	jumpLimit uint64
	candidate uint64
	hasCand   bool

	Counts TrackerCounts
}

// TrackerCounts are the tracker's totals.
type TrackerCounts struct {
	Received   uint64 `json:"received"`   // first copies of sequence numbers
	Lost       uint64 `json:"lost"`       // final: never arrived within the reorder window
	Reordered  uint64 `json:"reordered"`  // first copies that arrived below NextExp (RFC 4737)
	Duplicates uint64 `json:"duplicates"` // exact repeats of a sequence number already received
	// Late are copies that arrived after their sequence number was final
	// (counted lost, or a duplicate of one counted received too long ago to
	// tell). They are not added to received and not subtracted from lost.
	Late uint64 `json:"late"`
	// OutOfWindow are frames whose sequence number jumped implausibly far
	// ahead without confirmation, or lies beyond what the sender says it
	// sent: forged or stray frames with a valid CRC.
	OutOfWindow uint64 `json:"out_of_window"`
	// MaxReorderExtent is the largest NextExp-1-seq seen for a reordered
	// packet: how far back in the stream a late packet belonged.
	MaxReorderExtent uint64 `json:"max_reorder_extent"`
}

// Result says how one arriving sequence number was counted.
type Result uint8

const (
	InOrder Result = iota
	Reordered
	Duplicate
	Late
	OutOfWindow
)

// DefaultWindow is the duplicate and reorder bitmap size: 64 Ki sequence
// numbers (8 KiB), 50 ms at 1.3 M packets/s.
const DefaultWindow = 1 << 16

// NewTracker returns a tracker with a bitmap of window sequence numbers,
// rounded up to a power of two of at least 64.
func NewTracker(window int) *Tracker {
	w := uint64(64)
	for w < uint64(window) {
		w <<= 1
	}
	return &Tracker{mask: w - 1, bits: make([]uint64, w/64), jumpLimit: w}
}

// Window is the bitmap size in sequence numbers.
func (t *Tracker) Window() uint64 { return t.mask + 1 }

// Next is NextExp: the highest sequence number received plus one.
func (t *Tracker) Next() uint64 { return t.next }

// Base is the lowest sequence number not yet final.
func (t *Tracker) Base() uint64 { return t.base }

// Pending is the number of sequence numbers below Next that have not arrived
// and are not yet final: the "in flight" of the invariant
// received + lost + pending = Next.
func (t *Tracker) Pending() uint64 { return t.next - t.base - t.inWindow }

func (t *Tracker) test(seq uint64) bool {
	i := seq & t.mask
	return t.bits[i>>6]&(1<<(i&63)) != 0
}

func (t *Tracker) set(seq uint64) {
	i := seq & t.mask
	t.bits[i>>6] |= 1 << (i & 63)
}

// Add counts one arriving sequence number.
func (t *Tracker) Add(seq uint64) Result {
	if seq < t.base {
		t.Counts.Late++
		return Late
	}
	if seq >= t.next {
		if seq-t.next >= t.jumpLimit {
			if !(t.hasCand && seq == t.candidate+1) {
				t.candidate, t.hasCand = seq, true
				t.Counts.OutOfWindow++
				return OutOfWindow
			}
			// Two consecutive numbers confirm the jump: the candidate was
			// real after all.
			t.hasCand = false
			t.Counts.OutOfWindow--
			t.advance(seq - 1)
			t.set(seq - 1)
			t.inWindow++
			t.Counts.Received++
			t.next = seq
		}
		t.advance(seq)
		t.set(seq)
		t.inWindow++
		t.Counts.Received++
		t.next = seq + 1
		return InOrder
	}
	if t.test(seq) {
		t.Counts.Duplicates++
		return Duplicate
	}
	t.set(seq)
	t.inWindow++
	t.Counts.Received++
	t.Counts.Reordered++
	if ext := t.next - 1 - seq; ext > t.Counts.MaxReorderExtent {
		t.Counts.MaxReorderExtent = ext
	}
	return Reordered
}

// advance makes room in the bitmap for seq by finalising what falls out.
func (t *Tracker) advance(seq uint64) {
	if seq-t.base > t.mask {
		t.finalize(seq - t.mask)
	}
}

// Finalize declares every sequence number below upTo (and below Next) final:
// those not received are lost. The receiver calls it with the Next it saw a
// reorder window ago.
func (t *Tracker) Finalize(upTo uint64) {
	t.finalize(min(upTo, t.next))
}

// finalize moves base to upTo, counting unset bits as lost and clearing the
// bitmap behind it. upTo may exceed next (tail loss at the end of a run).
func (t *Tracker) finalize(upTo uint64) {
	if upTo <= t.base {
		return
	}
	w := t.mask + 1
	if upTo-t.base >= w {
		// Everything in the bitmap becomes final; beyond it nothing was
		// ever received.
		set := uint64(0)
		for i, x := range t.bits {
			set += uint64(bits.OnesCount64(x))
			t.bits[i] = 0
		}
		t.Counts.Lost += (upTo - t.base) - set
		t.inWindow -= set
		t.base = upTo
		return
	}
	s := t.base
	for s < upTo {
		i := s & t.mask
		if i&63 == 0 && upTo-s >= 64 {
			x := t.bits[i>>6]
			n := uint64(bits.OnesCount64(x))
			t.Counts.Lost += 64 - n
			t.inWindow -= n
			t.bits[i>>6] = 0
			s += 64
			continue
		}
		m := uint64(1) << (i & 63)
		if t.bits[i>>6]&m != 0 {
			t.bits[i>>6] &^= m
			t.inWindow--
		} else {
			t.Counts.Lost++
		}
		s++
	}
	t.base = upTo
}

// Finish ends the stream when the sender says it sent n sequence numbers
// (0 .. n-1): numbers still pending become lost, and first copies at or
// above n, which the sender never sent, move from received to out of window.
// It returns the number of sequence numbers the counts cover: n, unless
// numbers at or above n were already final (a Fin that contradicts frames
// received a reorder window before it: only a forged or stray frame does
// that), which then stay counted and the count is the final ones'.
func (t *Tracker) Finish(n uint64) uint64 {
	n = max(n, t.base)
	if t.next > n {
		for s := max(n, t.base); s < t.next; s++ {
			if t.test(s) {
				i := s & t.mask
				t.bits[i>>6] &^= 1 << (i & 63)
				t.inWindow--
				t.Counts.Received--
				t.Counts.OutOfWindow++
			}
		}
		t.next = max(n, t.base)
	}
	if n > t.next {
		t.advance(n - 1)
		t.next = n
	}
	t.finalize(n)
	return n
}
