// Package bench measures, on this host, the same-host transports a
// developer usually chooses between from blog posts: plain read/write over
// TCP loopback, sendfile from a file, a splice proxy (and the read/write
// proxy it replaces), MSG_ZEROCOPY, a Unix domain socket, and the shared
// memory ring of package shmring.
//
// For each transport and message size it reports throughput (GB/s and
// messages/s over a one-way stream), ping-pong latency (one way = round
// trip / 2, p50 and p99, the sockperf convention) and CPU seconds spent per
// GB moved (getrusage of both ends). Both ends of every socket transport run
// in this process, each on its own OS thread with blocking system calls, so
// the figures are what the kernel path costs and not what Go's netpoller
// adds; the shmring peer is a separate process when Options.ShmPeer is set.
//
// It is not a network benchmark: everything stays on loopback, and the
// report says where that makes a figure meaningless (MSG_ZEROCOPY to a
// local socket is always copied by the kernel).
package bench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Transport names, in report order. They appear in JSON and in the plot.
const (
	TCP         = "tcp"          // read+write over TCP loopback
	Unix        = "unix"         // read+write over a Unix stream socket
	Sendfile    = "sendfile"     // sendfile(2) file -> TCP socket
	ProxyCopy   = "proxy-copy"   // TCP -> read/write relay -> TCP
	ProxySplice = "proxy-splice" // TCP -> splice socket->pipe->socket -> TCP
	ZeroCopy    = "zerocopy"     // send(MSG_ZEROCOPY) over TCP loopback
	Shmring     = "shmring"      // package shmring
	// ShmringFutex is shmring with spinning off: every message finds the
	// other end asleep on the futex, so its latency is the wake-up cost.
	ShmringFutex = "shmring-futex"
)

// Transports lists every transport Run knows, in report order.
var Transports = []string{TCP, Unix, Sendfile, ProxyCopy, ProxySplice, ZeroCopy, Shmring, ShmringFutex}

// DefaultSizes are the message sizes measured when none are given.
var DefaultSizes = []int{64, 1 << 10, 16 << 10, 64 << 10, 1 << 20}

// Options says what to measure.
type Options struct {
	Sizes      []int         // message sizes in bytes; DefaultSizes if empty
	Duration   time.Duration // per measurement (each transport, size and phase); default 500ms
	Transports []string      // subset of Transports; all if empty
	// ShmPeer returns the command of the process that serves the shmring
	// end: ServeShmPeer(toPeer, fromPeer, po) with po.ReportCPU set. Nil
	// serves it from a goroutine of this process, which the report then
	// says.
	ShmPeer func(toPeer, fromPeer string, po PeerOptions) *exec.Cmd
	// ShmDir is where the shmring segments go; default /dev/shm.
	ShmDir string
	// Progress, when set, is told before each measurement.
	Progress func(done, total int, what string)
}

// Result is one transport at one message size.
type Result struct {
	Transport  string  `json:"transport"`
	Size       int     `json:"size_bytes"`
	GBps       float64 `json:"throughput_gb_per_s"`
	MsgsPerSec float64 `json:"messages_per_s"`
	P50        float64 `json:"latency_p50_us"` // one way, microseconds
	P99        float64 `json:"latency_p99_us"`
	RoundTrips int     `json:"round_trips"`
	CPUPerGB   float64 `json:"cpu_seconds_per_gb"`
	Bytes      int64   `json:"stream_bytes"`
	StreamSecs float64 `json:"stream_seconds"`
	ZCSends    int64   `json:"zerocopy_completions,omitempty"`
	ZCCopied   float64 `json:"zerocopy_copied_share,omitempty"` // 0..1
	Note       string  `json:"note,omitempty"`
	Error      string  `json:"error,omitempty"`
}

// BreakEven is a size at which one transport overtakes another on a
// metric, interpolated on a log scale between the two measured sizes
// around the crossing.
type BreakEven struct {
	Metric string  `json:"metric"` // "throughput" or "latency"
	Faster string  `json:"faster_above"`
	Slower string  `json:"slower_above"`
	Size   float64 `json:"size_bytes"`
	Lo     int     `json:"between_lo"`
	Hi     int     `json:"between_hi"`
}

// Ratio compares shmring with TCP loopback at one size, both measured in
// the same run: how many times lower shmring's p50 one-way latency is and
// how many times higher its message rate.
type Ratio struct {
	Size       int     `json:"size_bytes"`
	Latency    float64 `json:"latency_p50_ratio"`
	Throughput float64 `json:"messages_per_s_ratio"`
}

// Report is the outcome of Run.
type Report struct {
	Kernel    string        `json:"kernel"`
	CPUs      int           `json:"cpus"`
	Duration  string        `json:"duration_per_measurement"`
	Sizes     []int         `json:"sizes"`
	Results   []Result      `json:"results"`
	BreakEven []BreakEven   `json:"break_even"`
	ShmVsTCP  []Ratio       `json:"shmring_vs_tcp,omitempty"`
	Notes     []string      `json:"notes"`
	Elapsed   time.Duration `json:"-"`
}

// Run measures every selected transport at every size. A transport that
// fails at one size records the error in its Result and the run goes on;
// Run itself fails only on bad options or a cancelled context.
func Run(ctx context.Context, opts Options) (*Report, error) {
	if len(opts.Sizes) == 0 {
		opts.Sizes = DefaultSizes
	}
	for _, s := range opts.Sizes {
		if s < 1 || s > 64<<20 {
			return nil, fmt.Errorf("message size %d out of range 1..64M", s)
		}
	}
	if opts.Duration <= 0 {
		opts.Duration = 500 * time.Millisecond
	}
	if opts.ShmDir == "" {
		opts.ShmDir = "/dev/shm"
	}
	names := opts.Transports
	if len(names) == 0 {
		names = Transports
	}
	for _, n := range names {
		if !slices.Contains(Transports, n) {
			return nil, fmt.Errorf("unknown transport %q (known: %s)", n, strings.Join(Transports, ", "))
		}
	}
	start := time.Now()
	r := &Report{CPUs: runtime.NumCPU(), Duration: opts.Duration.String(), Sizes: opts.Sizes}
	var uts unix.Utsname
	if unix.Uname(&uts) == nil {
		r.Kernel = unix.ByteSliceToString(uts.Release[:])
	}
	total := 2 * len(names) * len(opts.Sizes)
	done := 0
	for _, name := range names {
		m, err := newMeasurer(name, opts)
		if err != nil {
			for _, size := range opts.Sizes {
				r.Results = append(r.Results, Result{Transport: name, Size: size, Error: err.Error()})
			}
			done += 2 * len(opts.Sizes)
			continue
		}
		for _, size := range opts.Sizes {
			res := Result{Transport: name, Size: size}
			for _, phase := range []string{"throughput", "latency"} {
				if err := ctx.Err(); err != nil {
					m.close()
					return nil, err
				}
				if opts.Progress != nil {
					opts.Progress(done, total, fmt.Sprintf("%s %s %s", name, FormatSize(size), phase))
				}
				done++
				if res.Error != "" {
					continue
				}
				var err error
				if phase == "throughput" {
					err = m.stream(ctx, size, opts.Duration, &res)
				} else {
					err = m.latency(ctx, size, opts.Duration, &res)
				}
				if err != nil {
					res.Error = err.Error()
				}
			}
			r.Results = append(r.Results, res)
		}
		if n := m.note(); n != "" {
			r.Notes = append(r.Notes, n)
		}
		m.close()
	}
	if opts.Progress != nil {
		opts.Progress(total, total, "done")
	}
	r.BreakEven = breakEvens(r.Results, TCP)
	r.ShmVsTCP = ratios(r.Results)
	r.Elapsed = time.Since(start)
	return r, nil
}

// measurer measures one transport; stream and latency fill res.
type measurer interface {
	stream(ctx context.Context, size int, d time.Duration, res *Result) error
	latency(ctx context.Context, size int, d time.Duration, res *Result) error
	note() string
	close()
}

// fillLatency turns round-trip samples (ns) into one-way p50/p99 (µs).
func fillLatency(res *Result, rtt []int64) error {
	if len(rtt) == 0 {
		return errors.New("no round trip completed")
	}
	slices.Sort(rtt)
	res.P50 = float64(rtt[len(rtt)/2]) / 2 / 1e3
	res.P99 = float64(rtt[(len(rtt)*99)/100]) / 2 / 1e3
	res.RoundTrips = len(rtt)
	return nil
}

// fillStream turns a stream's bytes, wall time and CPU time into rates.
func fillStream(res *Result, size int, bytes int64, wall, cpu time.Duration) {
	res.Bytes = bytes
	res.StreamSecs = wall.Seconds()
	if wall > 0 {
		res.GBps = float64(bytes) / wall.Seconds() / 1e9
		res.MsgsPerSec = float64(bytes) / float64(size) / wall.Seconds()
	}
	if bytes > 0 {
		res.CPUPerGB = cpu.Seconds() / (float64(bytes) / 1e9)
	}
}

// cpuTime is the user+system CPU time of this process so far.
func cpuTime() time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// ParseSizes parses "64,1K,16K,64K,1M" (K = 1024, M = 1024², G = 1024³).
func ParseSizes(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		mult := 1
		switch f[len(f)-1] {
		case 'k', 'K':
			mult = 1 << 10
		case 'm', 'M':
			mult = 1 << 20
		case 'g', 'G':
			mult = 1 << 30
		}
		num := f
		if mult != 1 {
			num = f[:len(f)-1]
		}
		n, err := strconv.Atoi(num)
		if err != nil || n < 1 || n > math.MaxInt32/mult {
			return nil, fmt.Errorf("bad size %q: want a positive number with an optional K, M or G suffix", f)
		}
		out = append(out, n*mult)
	}
	if len(out) == 0 {
		return nil, errors.New("no sizes given")
	}
	return out, nil
}

// ApproxSize prints an interpolated size: bytes below 1K, else two
// significant figures and a K or M suffix ("≈" is the caller's).
func ApproxSize(n float64) string {
	unit, suffix := 1.0, ""
	switch {
	case n >= 1<<20:
		unit, suffix = 1<<20, "M"
	case n >= 1<<10:
		unit, suffix = 1<<10, "K"
	}
	v := n / unit
	if v >= 10 || suffix == "" {
		return strconv.Itoa(int(math.Round(v))) + suffix
	}
	return strings.TrimSuffix(strconv.FormatFloat(v, 'f', 1, 64), ".0") + suffix
}

// FormatSize prints n the way ParseSizes reads it when it is a whole
// number of KiB or MiB.
func FormatSize(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.Itoa(n>>20) + "M"
	case n >= 1<<10 && n%(1<<10) == 0:
		return strconv.Itoa(n>>10) + "K"
	}
	return strconv.Itoa(n)
}

// breakEvens finds, for every transport against base, the sizes between
// two measured ones where the better of the two changes, on throughput
// (higher wins) and on p50 latency (lower wins).
func breakEvens(results []Result, base string) []BreakEven {
	type curve map[int]Result
	curves := map[string]curve{}
	var order []string
	for _, r := range results {
		if r.Error != "" {
			continue
		}
		if curves[r.Transport] == nil {
			curves[r.Transport] = curve{}
			order = append(order, r.Transport)
		}
		curves[r.Transport][r.Size] = r
	}
	bc, ok := curves[base]
	if !ok {
		return nil
	}
	var out []BreakEven
	metrics := []struct {
		name  string
		value func(Result) float64
	}{
		{"throughput", func(r Result) float64 { return r.GBps }},
		{"latency", func(r Result) float64 { return -r.P50 }}, // higher is better
	}
	for _, name := range order {
		if name == base {
			continue
		}
		c := curves[name]
		var sizes []int
		for s := range c {
			if _, ok := bc[s]; ok {
				sizes = append(sizes, s)
			}
		}
		slices.Sort(sizes)
		for _, m := range metrics {
			for i := 1; i < len(sizes); i++ {
				lo, hi := sizes[i-1], sizes[i]
				d0 := m.value(c[lo]) - m.value(bc[lo])
				d1 := m.value(c[hi]) - m.value(bc[hi])
				if d0 == 0 || d1 == 0 || (d0 > 0) == (d1 > 0) {
					continue
				}
				// Interpolate the crossing linearly in log(size).
				f := d0 / (d0 - d1)
				at := math.Exp(math.Log(float64(lo)) + f*(math.Log(float64(hi))-math.Log(float64(lo))))
				be := BreakEven{Metric: m.name, Size: math.Round(at), Lo: lo, Hi: hi, Faster: name, Slower: base}
				if d1 < 0 {
					be.Faster, be.Slower = base, name
				}
				out = append(out, be)
			}
		}
	}
	return out
}

// ratios compares shmring with tcp at every size both measured.
func ratios(results []Result) []Ratio {
	tcp := map[int]Result{}
	for _, r := range results {
		if r.Transport == TCP && r.Error == "" {
			tcp[r.Size] = r
		}
	}
	var out []Ratio
	for _, r := range results {
		t, ok := tcp[r.Size]
		if r.Transport != Shmring || r.Error != "" || !ok || r.P50 <= 0 || t.MsgsPerSec <= 0 {
			continue
		}
		out = append(out, Ratio{Size: r.Size, Latency: t.P50 / r.P50, Throughput: r.MsgsPerSec / t.MsgsPerSec})
	}
	return out
}
