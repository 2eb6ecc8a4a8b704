//go:build linux

package shmring

import (
	"context"
	"encoding/binary"
	"runtime"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Benchmarks carry the speed targets (no test asserts a time). Run:
//
//	go test -run '^$' -bench . -benchtime 2s ./shmring
//
// Stream reports messages/s and bytes/s one way; PingPong reports the
// round trip as ns/op and the one-way latency (round trip / 2, as sockperf
// does) as p50/p99 metrics; Wakeup is PingPong with spinning disabled, so
// every message pays a futex sleep and wake.

var benchSeq atomic.Uint64

// peerRings starts a peer process in role ("echo" or "sink") and returns
// the producer of the ring to it and the consumer of the ring back.
func peerRings(b *testing.B, role string, spin time.Duration) (*Producer, *Consumer) {
	b.Helper()
	name := "bench" + strconv.FormatUint(benchSeq.Add(1), 10)
	a, back := segPath(b, name+"a"), segPath(b, name+"b")
	const capacity = 4 << 20
	p, err := CreateOrReplace(a, Options{Capacity: capacity, Spin: spin})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Close() })
	env := []string{"SHMRING_A=" + a, "SHMRING_B=" + back, "SHMRING_CAP=" + itoa(capacity), "SHMRING_SPIN=" + strconv.FormatInt(int64(spin), 10)}
	if role == "echo" && spin >= 0 && runtime.NumCPU() >= 2 {
		env = append(env, "SHMRING_CPU=1")
	}
	startPeer(b, role, env...)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := openWait(ctx, back, Options{Spin: spin})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return p, c
}

// inProcessRings returns two rings whose other ends are served by a
// goroutine of this process (echo or sink), as peerRings does with a
// process.
func inProcessRings(b *testing.B, role string) (*Producer, *Consumer) {
	b.Helper()
	name := "benchin" + strconv.FormatUint(benchSeq.Add(1), 10)
	a, back := segPath(b, name+"a"), segPath(b, name+"b")
	const capacity = 4 << 20
	p, err := CreateOrReplace(a, Options{Capacity: capacity})
	if err != nil {
		b.Fatal(err)
	}
	pa, err := CreateOrReplace(back, Options{Capacity: capacity})
	if err != nil {
		b.Fatal(err)
	}
	ca, err := Open(a, Options{})
	if err != nil {
		b.Fatal(err)
	}
	c, err := Open(back, Options{})
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		ctx := context.Background()
		buf := make([]byte, ca.MaxMessage())
		var count uint64
		for {
			n, err := ca.Recv(ctx, buf)
			if err != nil {
				break
			}
			count++
			if role == "echo" {
				pa.Send(ctx, buf[:n])
			}
		}
		if role == "sink" {
			pa.Send(ctx, binary.LittleEndian.AppendUint64(nil, count))
		}
	}()
	b.Cleanup(func() {
		p.Close()
		<-done
		pa.Close()
		ca.Close()
		c.Close()
	})
	return p, c
}

var benchSizes = []int{64, 1024, 16384}

func BenchmarkStream(b *testing.B) {
	for _, where := range []string{"in-process", "process"} {
		for _, size := range benchSizes {
			b.Run(where+"/"+strconv.Itoa(size), func(b *testing.B) {
				var p *Producer
				var c *Consumer
				if where == "process" {
					p, c = peerRings(b, "sink", 0)
				} else {
					p, c = inProcessRings(b, "sink")
				}
				ctx := context.Background()
				msg := make([]byte, size)
				b.SetBytes(int64(size))
				b.ResetTimer()
				start := time.Now()
				for i := 0; i < b.N; i++ {
					if err := p.Send(ctx, msg); err != nil {
						b.Fatal(err)
					}
				}
				p.Close()
				buf := make([]byte, 8)
				if _, err := c.Recv(ctx, buf); err != nil {
					b.Fatal(err)
				}
				el := time.Since(start)
				b.StopTimer()
				if got := binary.LittleEndian.Uint64(buf); got != uint64(b.N) {
					b.Fatalf("peer received %d messages, sent %d", got, b.N)
				}
				b.ReportMetric(float64(b.N)/el.Seconds()/1e6, "Mmsg/s")
			})
		}
	}
}

// pinMain pins the benchmark goroutine's thread to CPU 0 (the echo peer
// takes CPU 1) until the benchmark ends. Only latency benchmarks pin: two
// spinning ends that the scheduler puts on one CPU wait for each other's
// time slice, tens of µs that measure placement, not the ring. Streams are
// left to the scheduler, which batches well even on one CPU.
func pinMain(b *testing.B) {
	b.Helper()
	if runtime.NumCPU() < 2 {
		return
	}
	runtime.LockOSThread()
	var old unix.CPUSet
	unix.SchedGetaffinity(0, &old)
	if err := pinCPU(0); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		unix.SchedSetaffinity(0, &old)
		runtime.UnlockOSThread()
	})
}

func pingPong(b *testing.B, p *Producer, c *Consumer, size int) {
	ctx := context.Background()
	msg := make([]byte, size)
	buf := make([]byte, size)
	samples := make([]int64, 0, min(b.N, 1<<22))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if err := p.Send(ctx, msg); err != nil {
			b.Fatal(err)
		}
		if _, err := c.Recv(ctx, buf); err != nil {
			b.Fatal(err)
		}
		if len(samples) < cap(samples) {
			samples = append(samples, int64(time.Since(t0)))
		}
	}
	b.StopTimer()
	slices.Sort(samples)
	b.ReportMetric(float64(samples[len(samples)/2])/2, "ns-oneway-p50")
	b.ReportMetric(float64(samples[len(samples)*99/100])/2, "ns-oneway-p99")
}

func BenchmarkPingPong(b *testing.B) {
	for _, where := range []string{"in-process", "process"} {
		for _, size := range []int{64, 1024} {
			b.Run(where+"/"+strconv.Itoa(size), func(b *testing.B) {
				var p *Producer
				var c *Consumer
				if where == "process" {
					pinMain(b)
					p, c = peerRings(b, "echo", 0)
				} else {
					p, c = inProcessRings(b, "echo")
				}
				pingPong(b, p, c, size)
			})
		}
	}
}

// BenchmarkWakeup is a cross-process ping-pong where both sides sleep on
// the futex at once instead of spinning: its one-way latency is the cost of
// a futex sleep + wake between processes.
//
// Neither end is pinned: a sleeping end does not hold a CPU, and a woken
// thread pinned next to another busy process would wait for it.
func BenchmarkWakeup(b *testing.B) {
	p, c := peerRings(b, "echo", -1)
	pingPong(b, p, c, 64)
}
