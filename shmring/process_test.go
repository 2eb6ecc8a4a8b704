//go:build linux

package shmring

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// pinCPU pins the calling thread (locked to its goroutine) to cpu. The
// benchmarks pin the two ends apart: two spinning threads that the
// scheduler puts on one CPU wait for each other's time slice.
func pinCPU(cpu int) error {
	var set unix.CPUSet
	set.Set(cpu)
	return unix.SchedSetaffinity(0, &set)
}

// The test binary re-executes itself as the peer process: TestMain checks
// this variable and, when set, runs the peer role instead of the tests.
const peerEnv = "SHMRING_TEST_PEER"

func TestMain(m *testing.M) {
	if role := os.Getenv(peerEnv); role != "" {
		if err := runPeer(role); err != nil {
			fmt.Fprintf(os.Stderr, "shmring peer %s: %v\n", role, err)
			os.Exit(3)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func envInt(name string) int {
	v, _ := strconv.Atoi(os.Getenv(name))
	return v
}

// runPeer is the other process.
//
//	produce: create SHMRING_A and send SHMRING_COUNT pattern messages
//	         (0: until killed, at most 60s), then close.
//	echo:    read SHMRING_A, send each message back on SHMRING_B.
//	sink:    read SHMRING_A until EOF, then send the count on SHMRING_B.
func runPeer(role string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	spin := time.Duration(envInt("SHMRING_SPIN"))
	capacity := envInt("SHMRING_CAP")
	if cpu := os.Getenv("SHMRING_CPU"); cpu != "" {
		runtime.LockOSThread()
		if err := pinCPU(envInt("SHMRING_CPU")); err != nil {
			return err
		}
	}
	switch role {
	case "produce":
		p, err := CreateOrReplace(os.Getenv("SHMRING_A"), Options{Capacity: capacity, Spin: spin})
		if err != nil {
			return err
		}
		count := uint64(envInt("SHMRING_COUNT"))
		for i := uint64(0); count == 0 || i < count; i++ {
			if err := p.Send(ctx, pattern(i, sizeFor(i, p.MaxMessage()))); err != nil {
				return err
			}
		}
		return p.Close()
	case "echo", "sink":
		c, err := openWait(ctx, os.Getenv("SHMRING_A"), Options{Spin: spin})
		if err != nil {
			return err
		}
		defer c.Close()
		p, err := CreateOrReplace(os.Getenv("SHMRING_B"), Options{Capacity: capacity, Spin: spin})
		if err != nil {
			return err
		}
		defer p.Close()
		buf := make([]byte, c.MaxMessage())
		var count uint64
		for {
			n, err := c.Recv(ctx, buf)
			if err == io.EOF {
				break
			}
			if err != nil {
				return err
			}
			count++
			if role == "echo" {
				if err := p.Send(ctx, buf[:n]); err != nil {
					return err
				}
			}
		}
		if role == "sink" {
			return p.Send(ctx, binary.LittleEndian.AppendUint64(nil, count))
		}
		return nil
	}
	return fmt.Errorf("unknown role %q", role)
}

// openWait opens the segment at path once its producer has published it.
func openWait(ctx context.Context, path string, opts Options) (*Consumer, error) {
	for {
		c, err := Open(path, opts)
		if err == nil {
			return c, nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for %s: %w", path, ctx.Err())
		case <-time.After(time.Millisecond):
		}
	}
}

// startPeer re-executes the test binary in role with env, killed on cleanup.
func startPeer(t testing.TB, role string, env ...string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), append([]string{peerEnv + "=" + role}, env...)...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd
}

// mix is a 64-bit hash (splitmix64 finaliser) for test patterns.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

// sizeFor picks message seq's size: every size class from 1 byte to max
// appears, the two extremes regularly.
func sizeFor(seq uint64, max int) int {
	switch r := mix(seq); {
	case seq%997 == 0:
		return max
	case seq%997 == 1:
		return 1
	case r%16 == 0:
		return 1 + int((r>>8)%uint64(max))
	default:
		return 1 + int((r>>8)%256)
	}
}

// pattern is message seq's content: every byte depends on seq and its
// position, so a torn, lost, duplicated or reordered message cannot pass.
func pattern(seq uint64, n int) []byte {
	b := make([]byte, n)
	h := mix(seq + 1)
	for i := range b {
		if i%8 == 0 {
			h = mix(h + uint64(i))
		}
		b[i] = byte(h >> (8 * (i % 8)))
	}
	return b
}

// validate reads messages from c and checks they are exactly seq from,
// from+1, … with sizes size(seq), until count messages (count 0: until the
// stream ends). It returns how many were valid and the error that ended the
// stream (io.EOF or ErrProducerDead are returned as is).
func validate(ctx context.Context, c *Consumer, from, count uint64, size func(uint64) int) error {
	_, err := validateN(ctx, c, from, count, size, nil)
	if count > 0 && err == nil {
		buf := make([]byte, c.MaxMessage())
		if _, err := c.Recv(ctx, buf); err != io.EOF {
			return fmt.Errorf("after %d messages: got %v, want io.EOF", count, err)
		}
	}
	return err
}

func validateN(ctx context.Context, c *Consumer, from, count uint64, size func(uint64) int, progress *atomic.Uint64) (uint64, error) {
	buf := make([]byte, c.MaxMessage())
	seq := from
	for count == 0 || seq < from+count {
		n, err := c.Recv(ctx, buf)
		if err != nil {
			return seq - from, err
		}
		want := pattern(seq, size(seq))
		if !bytes.Equal(buf[:n], want) {
			return seq - from, fmt.Errorf("message %d: got %d bytes %x…, want %d bytes %x… (torn, lost, duplicated or reordered)",
				seq, n, buf[:min(n, 8)], len(want), want[:min(len(want), 8)])
		}
		seq++
		if progress != nil {
			progress.Store(seq - from)
		}
	}
	return seq - from, nil
}

// TestCrossProcess streams messages of 1 byte to the ring's maximum from a
// producer process through a small ring, so both sides wait on each other
// often, and checks every message in order.
func TestCrossProcess(t *testing.T) {
	const capacity, count = 64 << 10, 60000
	path := segPath(t, "xproc")
	cmd := startPeer(t, "produce", "SHMRING_A="+path, "SHMRING_CAP="+itoa(capacity), "SHMRING_COUNT="+itoa(count))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := openWait(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	max := c.MaxMessage()
	if err := validate(ctx, c, 0, count, func(s uint64) int { return sizeFor(s, max) }); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("producer: %v", err)
	}
}

// TestProducerKilled kills the producer with SIGKILL mid-stream, checks the
// consumer reads only whole messages and then reports the death, that a
// fresh consumer of the orphaned segment detects it too, and that after the
// producer restarts (CreateOrReplace on the same path) the consumer
// reattaches and reads the new stream from its first message.
func TestProducerKilled(t *testing.T) {
	const capacity = 64 << 10
	path := segPath(t, "kill")
	opts := Options{StaleAfter: 150 * time.Millisecond}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	first := startPeer(t, "produce", "SHMRING_A="+path, "SHMRING_CAP="+itoa(capacity), "SHMRING_COUNT=0")
	c, err := openWait(ctx, path, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { c.Close() }()
	gen1 := c.Generation()
	max := c.MaxMessage()
	size := func(s uint64) int { return sizeFor(s, max) }

	var progress atomic.Uint64
	go func() {
		for progress.Load() < 20000 && ctx.Err() == nil {
			time.Sleep(time.Millisecond)
		}
		first.Process.Signal(syscall.SIGKILL)
	}()
	got, err := validateN(ctx, c, 0, 0, size, &progress)
	if !errors.Is(err, ErrProducerDead) {
		t.Fatalf("after %d messages: got %v, want ErrProducerDead", got, err)
	}
	if got < 20000 {
		t.Fatalf("only %d messages before the producer died", got)
	}
	t.Logf("read %d whole messages from the killed producer", got)
	if c.ProducerAlive() {
		t.Error("ProducerAlive after SIGKILL")
	}
	ws, _ := first.Process.Wait()
	if ws != nil && ws.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Errorf("producer ended with %v, not SIGKILL", ws)
	}

	// A consumer attaching to the orphaned segment detects the dead
	// producer; it takes over from the first (one consumer at a time).
	c.Close()
	orphan, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	c = orphan
	if orphan.ProducerAlive() {
		t.Error("fresh consumer of an orphaned segment: ProducerAlive = true")
	}
	if _, err := orphan.Recv(ctx, make([]byte, max)); !errors.Is(err, ErrProducerDead) {
		t.Errorf("fresh consumer of an orphaned segment: got %v, want ErrProducerDead", err)
	}

	const count = 5000
	second := startPeer(t, "produce", "SHMRING_A="+path, "SHMRING_CAP="+itoa(capacity), "SHMRING_COUNT="+itoa(count))
	if err := c.Reattach(ctx); err != nil {
		t.Fatal(err)
	}
	if c.Generation() == gen1 {
		t.Fatalf("reattached to the same generation %x", gen1)
	}
	if err := validate(ctx, c, 0, count, size); err != nil {
		t.Fatal(err)
	}
	if err := second.Wait(); err != nil {
		t.Fatalf("restarted producer: %v", err)
	}
}

// TestProducerStopped stops the producer with SIGSTOP for several times
// StaleAfter: its heartbeat goes stale, but it holds the segment's lock,
// so the consumer must wait rather than declare it dead, and after SIGCONT
// the stream completes in order.
func TestProducerStopped(t *testing.T) {
	const capacity, count = 64 << 10, 20000
	path := segPath(t, "stop")
	opts := Options{StaleAfter: 50 * time.Millisecond}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := startPeer(t, "produce", "SHMRING_A="+path, "SHMRING_CAP="+itoa(capacity), "SHMRING_COUNT="+itoa(count))
	c, err := openWait(ctx, path, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	max := c.MaxMessage()
	size := func(s uint64) int { return sizeFor(s, max) }
	got, err := validateN(ctx, c, 0, 5000, size, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped, cancelStopped := context.WithTimeout(ctx, 300*time.Millisecond)
	more, err := validateN(stopped, c, got, 0, size, nil)
	cancelStopped()
	cmd.Process.Signal(syscall.SIGCONT)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("while the producer was stopped: got %v, want to keep waiting", err)
	}
	if !c.ProducerAlive() {
		t.Error("ProducerAlive = false for a stopped producer")
	}
	got += more
	if err := validate(ctx, c, got, count-got, size); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("producer: %v", err)
	}
}
