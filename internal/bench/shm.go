package bench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"time"

	"github.com/netdrop/netdrop/shmring"
	"golang.org/x/sys/unix"
)

// Messages to the shmring peer are told apart by their first byte.
const (
	shmData  = 'D' // count it
	shmPing  = 'P' // send it back
	shmStart = 'S' // 1 byte: start of a stream, reset the counters, unpin
	shmPin   = 'L' // 1 byte: latency phase next, pin to PeerOptions.CPU
	shmEnd   = 'E' // 1 byte: end of a stream, reply with the counters
)

// PeerOptions tunes ServeShmPeer.
type PeerOptions struct {
	// ReportCPU says whether to report this process's CPU time; false when
	// the peer runs inside the measuring process, which counts it already.
	ReportCPU bool
	// CPU is where the serving thread is pinned during latency phases;
	// -1 leaves it free.
	CPU int
	// Spin is shmring.Options.Spin for both rings (negative: sleep at once).
	Spin time.Duration
}

// ServeShmPeer is the other end of the shmring transport: it reads the
// ring at toPeer (waiting for it to appear), creates the ring fromPeer,
// echoes ping messages, counts data messages, and after each stream replies
// with (messages, bytes, CPU ns of this process during the stream). It
// returns when the ring at toPeer is closed.
func ServeShmPeer(ctx context.Context, toPeer, fromPeer string, po PeerOptions) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	unpin := func() {}
	defer func() { unpin() }()
	ownCPU := po.ReportCPU
	var c *shmring.Consumer
	for {
		var err error
		c, err = shmring.Open(toPeer, shmring.Options{Spin: po.Spin})
		if err == nil {
			break
		}
		if !errors.Is(err, os.ErrNotExist) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
	defer c.Close()
	capacity := 1 << bits.Len(uint(2*c.MaxMessage()+3)) // same size as the ring in
	p, err := shmring.CreateOrReplace(fromPeer, shmring.Options{Capacity: capacity, Spin: po.Spin})
	if err != nil {
		return err
	}
	defer p.Close()
	buf := make([]byte, c.MaxMessage())
	var msgs, bytes uint64
	var cpu0 time.Duration
	for {
		// Peek to see the kind; data is then copied out with Recv, like
		// read(2) copies into the reader's buffer, and a ping is echoed
		// from the ring in place, as a relay using shmring would.
		msg, err := c.Peek(ctx)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		n := len(msg)
		switch {
		case n == 0:
			c.Release()
		case msg[0] == shmData:
			if _, err := c.TryRecv(buf); err != nil {
				return err
			}
			msgs++
			bytes += uint64(n)
		case msg[0] == shmPing:
			err := p.Send(ctx, msg)
			c.Release()
			if err != nil {
				return err
			}
		case n == 1 && msg[0] == shmPin:
			c.Release()
			if po.CPU >= 0 {
				unpin()
				restore, err := pinThread(po.CPU)
				if err != nil {
					return err
				}
				unpin = restore
			}
		case n == 1 && msg[0] == shmStart:
			c.Release()
			unpin()
			unpin = func() {}
			msgs, bytes = 0, 0
			if ownCPU {
				cpu0 = cpuTime()
			}
		case n == 1 && msg[0] == shmEnd:
			c.Release()
			var cpu time.Duration
			if ownCPU {
				cpu = cpuTime() - cpu0
			}
			reply := binary.LittleEndian.AppendUint64(nil, msgs)
			reply = binary.LittleEndian.AppendUint64(reply, bytes)
			reply = binary.LittleEndian.AppendUint64(reply, uint64(cpu))
			if err := p.Send(ctx, reply); err != nil {
				return err
			}
		default:
			c.Release()
		}
	}
}

type shmMeasurer struct {
	p       *shmring.Producer
	c       *shmring.Consumer
	cmd     *exec.Cmd
	done    chan error
	cancel  context.CancelFunc
	paths   []string
	where   string
	max     int
	ownPeer bool
	cpu     int // this end's CPU, -1 unpinned
	peerCPU int
	spin    time.Duration
}

// pin pins the calling (locked) thread to m.cpu, if set.
func (m *shmMeasurer) pin() func() {
	if m.cpu < 0 {
		return func() {}
	}
	restore, err := pinThread(m.cpu)
	if err != nil {
		return func() {}
	}
	return restore
}

func newShm(opts Options, spin time.Duration) (measurer, error) {
	maxSize := 0
	for _, s := range opts.Sizes {
		maxSize = max(maxSize, s)
	}
	capacity := max(1<<20, 1<<bits.Len(uint(2*maxSize+3)))
	if capacity > shmring.MaxCapacity {
		return nil, fmt.Errorf("shmring: %d-byte messages need a ring over %d bytes", maxSize, shmring.MaxCapacity)
	}
	tag := fmt.Sprintf("netdrop-bench-%d-%d", os.Getpid(), time.Now().UnixNano())
	to, from := filepath.Join(opts.ShmDir, tag+"-a"), filepath.Join(opts.ShmDir, tag+"-b")
	m := &shmMeasurer{paths: []string{to, from}, done: make(chan error, 1), cpu: -1, peerCPU: -1}
	// Two spinning ends on one CPU wait for each other's time slice; on a
	// busy host the scheduler does put them together. Pin them apart for
	// latency measurements. Ends that never spin are left free, like the
	// socket transports.
	if a, b, ok := twoCPUs(); ok && spin >= 0 {
		m.cpu, m.peerCPU = a, b
	}
	var err error
	m.spin = spin
	m.p, err = shmring.CreateOrReplace(to, shmring.Options{Capacity: capacity, Spin: spin})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	if opts.ShmPeer != nil {
		m.where = "peer in another process"
		m.cmd = opts.ShmPeer(to, from, PeerOptions{ReportCPU: true, CPU: m.peerCPU, Spin: spin})
		m.cmd.Stderr = os.Stderr
		if err := m.cmd.Start(); err != nil {
			m.close()
			return nil, fmt.Errorf("start shmring peer: %w", err)
		}
		go func() { m.done <- m.cmd.Wait() }()
	} else {
		m.where = "peer in a goroutine of this process"
		m.ownPeer = true
		go func() { m.done <- ServeShmPeer(ctx, to, from, PeerOptions{CPU: m.peerCPU, Spin: spin}) }()
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		m.c, err = shmring.Open(from, shmring.Options{Spin: spin})
		if err == nil {
			break
		}
		select {
		case perr := <-m.done:
			m.done <- perr
			m.close()
			return nil, fmt.Errorf("shmring peer ended before it was ready: %v", perr)
		default:
		}
		if !errors.Is(err, os.ErrNotExist) || time.Now().After(deadline) {
			m.close()
			return nil, fmt.Errorf("shmring peer ring: %w", err)
		}
		time.Sleep(time.Millisecond)
	}
	m.max = m.p.MaxMessage()
	return m, nil
}

func (m *shmMeasurer) stream(ctx context.Context, size int, d time.Duration, res *Result) error {
	// A peer that died would leave Send waiting for space forever.
	ctx, cancel := context.WithTimeout(ctx, d+10*time.Second)
	defer cancel()
	if size > m.max {
		return fmt.Errorf("%d bytes is over the ring's maximum message %d", size, m.max)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	msg := make([]byte, size)
	msg[0] = shmData
	if err := m.p.Send(ctx, []byte{shmStart}); err != nil {
		return err
	}
	cpu0 := cpuTime()
	start := time.Now()
	deadline := start.Add(d)
	var sent int64
	for i := 0; ; i++ {
		if i&255 == 0 && !time.Now().Before(deadline) {
			break
		}
		if err := m.p.Send(ctx, msg); err != nil {
			return err
		}
		sent++
	}
	if err := m.p.Send(ctx, []byte{shmEnd}); err != nil {
		return err
	}
	reply := make([]byte, 24)
	n, err := m.c.Recv(ctx, reply)
	if err != nil {
		return fmt.Errorf("stream end from shmring peer: %w", err)
	}
	wall := time.Since(start)
	cpu := cpuTime() - cpu0
	if n != 24 {
		return fmt.Errorf("shmring peer replied %d bytes, want 24", n)
	}
	got := int64(binary.LittleEndian.Uint64(reply))
	if got != sent {
		return fmt.Errorf("shmring peer counted %d messages, %d were sent", got, sent)
	}
	cpu += time.Duration(binary.LittleEndian.Uint64(reply[16:]))
	fillStream(res, size, int64(binary.LittleEndian.Uint64(reply[8:])), wall, cpu)
	res.Note = m.where
	return nil
}

func (m *shmMeasurer) latency(ctx context.Context, size int, d time.Duration, res *Result) error {
	// A peer that died would leave Send waiting for space forever.
	ctx, cancel := context.WithTimeout(ctx, d+10*time.Second)
	defer cancel()
	if size > m.max {
		return fmt.Errorf("%d bytes is over the ring's maximum message %d", size, m.max)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	// Pinned apart for the latency phase only: two spinning ends that the
	// scheduler puts on one CPU wait for each other's time slice, a
	// placement artefact of tens of µs. Streams are left to the scheduler,
	// which batches well even on one CPU and suffers when pinned next to
	// other busy processes.
	defer m.pin()()
	if err := m.p.Send(ctx, []byte{shmPin}); err != nil {
		return err
	}
	msg := make([]byte, size)
	msg[0] = shmPing
	rtt := make([]int64, 0, 1<<20)
	deadline := time.Now().Add(d)
	for i := 0; ; i++ {
		t0 := time.Now()
		if i > 0 && !t0.Before(deadline) {
			break
		}
		if err := m.p.Send(ctx, msg); err != nil {
			return err
		}
		echo, err := m.c.Peek(ctx) // read in place, the point of shared memory
		if err != nil {
			return fmt.Errorf("echo from shmring peer: %w", err)
		}
		rtt = append(rtt, int64(time.Since(t0)))
		n := len(echo)
		m.c.Release()
		if n != size {
			return fmt.Errorf("echo of %d bytes, sent %d", n, size)
		}
	}
	return fillLatency(res, rtt)
}

func (m *shmMeasurer) note() string {
	pinned := ""
	if m.cpu >= 0 {
		pinned = fmt.Sprintf(", ends pinned to CPUs %d and %d for latency", m.cpu, m.peerCPU)
	}
	if m.spin < 0 {
		return "shmring-futex: spinning off, both ends sleep on the shared futex for every message, " +
			"so its one-way latency is the cost of a futex wake-up between processes" + pinned
	}
	return "shmring: " + m.where + pinned + "; a stream copies each message into the ring and out into the reader's buffer " +
		"(as read(2) does); ping-pong reads the echo in place (Peek), so a hop costs one copy; both ends spin up to 50µs " +
		"before sleeping on a futex, so its CPU per GB includes that polling"
}

func (m *shmMeasurer) close() {
	if m.p != nil {
		m.p.Close() // the peer sees EOF and exits
	}
	if m.cmd != nil || m.ownPeer {
		select {
		case <-m.done:
		case <-time.After(5 * time.Second):
			if m.cmd != nil && m.cmd.Process != nil {
				m.cmd.Process.Kill()
				<-m.done
			}
		}
	}
	if m.cancel != nil {
		m.cancel()
	}
	if m.c != nil {
		m.c.Close()
	}
	for _, p := range m.paths {
		os.Remove(p)
	}
}

// twoCPUs returns two CPUs this process may run on.
func twoCPUs() (int, int, bool) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return -1, -1, false
	}
	var got []int
	for i := 0; i < 1024 && len(got) < 2; i++ {
		if set.IsSet(i) {
			got = append(got, i)
		}
	}
	if len(got) < 2 {
		return -1, -1, false
	}
	return got[0], got[1], true
}

// pinThread pins the calling thread, which must be locked to its
// goroutine, to cpu and returns a function restoring the previous set.
func pinThread(cpu int) (func(), error) {
	var old, set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &old); err != nil {
		return nil, fmt.Errorf("sched_getaffinity: %w", err)
	}
	set.Set(cpu)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return nil, fmt.Errorf("pin to CPU %d: %w", cpu, err)
	}
	return func() { unix.SchedSetaffinity(0, &old) }, nil
}
