package probe

import (
	"math"
	"math/bits"
	"time"
)

// Histogram records non-negative durations in nanoseconds in log-linear
// buckets: 32 linear sub-buckets per power of two, so any percentile is within
// about 3% of the true value, with a fixed 16 KiB array and no allocation per
// sample. The maximum is kept exactly. Nearest-rank percentiles over raw
// samples would need memory that grows with the run; this does not, and unlike
// a fixed-count sample it does not collapse p99.9 on short runs.
type Histogram struct {
	counts [histBuckets]uint64
	n      uint64
	max    uint64
	min    uint64
	sum    float64
}

const (
	subBits     = 5
	subCount    = 1 << subBits
	histBuckets = (64 - subBits + 1) * subCount
)

func bucketOf(v uint64) int {
	if v < subCount {
		return int(v)
	}
	shift := bits.Len64(v) - 1 - subBits
	sub := (v >> uint(shift)) & (subCount - 1)
	return (shift+1)<<subBits + int(sub)
}

// bucketMid is a representative value of bucket i: its middle.
func bucketMid(i int) uint64 {
	if i < subCount {
		return uint64(i)
	}
	shift := uint(i>>subBits) - 1
	sub := uint64(i & (subCount - 1))
	lo := (subCount + sub) << shift
	return lo + (uint64(1)<<shift)/2
}

// Record adds one sample.
func (h *Histogram) Record(ns uint64) {
	h.counts[bucketOf(ns)]++
	if h.n == 0 || ns < h.min {
		h.min = ns
	}
	h.n++
	if ns > h.max {
		h.max = ns
	}
	h.sum += float64(ns)
}

// Count is the number of samples.
func (h *Histogram) Count() uint64 { return h.n }

// Max is the largest sample.
func (h *Histogram) Max() uint64 { return h.max }

// Reset forgets every sample.
func (h *Histogram) Reset() { *h = Histogram{} }

// Merge adds o's samples to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	h.n += o.n
	h.max = max(h.max, o.max)
	h.sum += o.sum
}

// Quantile returns the value at quantile q (0..1) by nearest rank, clamped to
// the exact minimum and maximum.
func (h *Histogram) Quantile(q float64) uint64 {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	if rank < 1 {
		rank = 1
	}
	if rank >= h.n {
		return h.max
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return min(max(bucketMid(i), h.min), h.max)
		}
	}
	return h.max
}

// Summary is a histogram as people read it.
type Summary struct {
	Count uint64        `json:"count"`
	Min   time.Duration `json:"min_ns"`
	Mean  time.Duration `json:"mean_ns"`
	P50   time.Duration `json:"p50_ns"`
	P90   time.Duration `json:"p90_ns"`
	P99   time.Duration `json:"p99_ns"`
	P999  time.Duration `json:"p99_9_ns"`
	Max   time.Duration `json:"max_ns"`
}

// Summary computes the percentiles netdrop reports.
func (h *Histogram) Summary() Summary {
	if h.n == 0 {
		return Summary{}
	}
	return Summary{
		Count: h.n,
		Min:   time.Duration(h.min),
		Mean:  time.Duration(h.sum / float64(h.n)),
		P50:   time.Duration(h.Quantile(0.50)),
		P90:   time.Duration(h.Quantile(0.90)),
		P99:   time.Duration(h.Quantile(0.99)),
		P999:  time.Duration(h.Quantile(0.999)),
		Max:   time.Duration(h.max),
	}
}
