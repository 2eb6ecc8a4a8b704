//go:build linux

package shmring

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
	"unsafe"

	"github.com/google/go-cmp/cmp"
)

// segPath returns a segment path under /dev/shm (tmpfs, like production)
// when it exists, else under the test's temp dir, removed on cleanup.
func segPath(t testing.TB, name string) string {
	t.Helper()
	dir := "/dev/shm"
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		dir = t.TempDir()
	}
	p := filepath.Join(dir, "ndtest-shmring-"+name+"-"+itoa(os.Getpid()))
	t.Cleanup(func() { os.Remove(p) })
	return p
}

func itoa(n int) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(b[i:])
		}
	}
}

func TestLayout(t *testing.T) {
	var h header
	got := map[string]uintptr{
		"size":      unsafe.Sizeof(h),
		"heartbeat": unsafe.Offsetof(h.heartbeat),
		"tail":      unsafe.Offsetof(h.tail),
		"head":      unsafe.Offsetof(h.head),
	}
	want := map[string]uintptr{"size": headerSize, "heartbeat": 128, "tail": 256, "head": 384}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("header layout (-want +got):\n%s", d)
	}
}

func pair(t testing.TB, capacity int) (*Producer, *Consumer) {
	t.Helper()
	path := segPath(t, t.Name())
	p, err := CreateOrReplace(path, Options{Capacity: capacity})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	c, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return p, c
}

func TestErrors(t *testing.T) {
	p, c := pair(t, 4096)
	if got, want := p.MaxMessage(), 2044; got != want {
		t.Fatalf("MaxMessage = %d, want %d", got, want)
	}
	if err := p.TrySend(make([]byte, 2045)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversize send: got %v, want ErrTooLarge", err)
	}
	// Fill: records of 1 KiB + 4 rounded to 1032 bytes; three fit in 4096.
	msg := bytes.Repeat([]byte{7}, 1024)
	sent := 0
	for ; sent < 10; sent++ {
		if err := p.TrySend(msg); err != nil {
			if !errors.Is(err, ErrFull) {
				t.Fatalf("send %d: %v", sent, err)
			}
			break
		}
	}
	if sent != 3 {
		t.Errorf("sent %d messages of 1 KiB into 4 KiB before ErrFull, want 3", sent)
	}
	if n, err := c.TryRecv(make([]byte, 10)); !errors.Is(err, ErrShortBuffer) || n != 1024 {
		t.Errorf("short buffer: got (%d, %v), want (1024, ErrShortBuffer)", n, err)
	}
	buf := make([]byte, 2048)
	for i := 0; i < sent; i++ {
		n, err := c.TryRecv(buf)
		if err != nil || !bytes.Equal(buf[:n], msg) {
			t.Fatalf("recv %d: n=%d err=%v", i, n, err)
		}
	}
	if _, err := c.TryRecv(buf); err != ErrEmpty {
		t.Errorf("empty ring: got %v, want ErrEmpty", err)
	}
	p.Close()
	if _, err := c.Recv(context.Background(), buf); err != io.EOF {
		t.Errorf("after producer Close: got %v, want io.EOF", err)
	}
}

func TestCapacityRejected(t *testing.T) {
	for _, c := range []int{100, 4095, 6000, 1 << 32} {
		if _, err := CreateOrReplace(segPath(t, "cap"), Options{Capacity: c}); !errors.Is(err, ErrCapacity) {
			t.Errorf("capacity %d: got %v, want ErrCapacity", c, err)
		}
	}
}

func TestOpenRejects(t *testing.T) {
	path := segPath(t, "ver")
	p, err := CreateOrReplace(path, Options{Capacity: 4096})
	if err != nil {
		t.Fatal(err)
	}
	p.Close()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	write := func(b []byte) {
		t.Helper()
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	other := bytes.Clone(raw)
	other[8] = 9 // version field
	write(other)
	if _, err := Open(path, Options{}); !errors.Is(err, ErrVersion) {
		t.Errorf("version 9: got %v, want ErrVersion", err)
	}
	write(bytes.Repeat([]byte("x"), 8192))
	if _, err := Open(path, Options{}); !errors.Is(err, ErrNotSegment) {
		t.Errorf("junk file: got %v, want ErrNotSegment", err)
	}
	write([]byte("short"))
	if _, err := Open(path, Options{}); !errors.Is(err, ErrNotSegment) {
		t.Errorf("short file: got %v, want ErrNotSegment", err)
	}
	write(raw[:len(raw)-8])
	if _, err := Open(path, Options{}); !errors.Is(err, ErrCorrupt) {
		t.Errorf("truncated segment: got %v, want ErrCorrupt", err)
	}
}

// TestWrapAndSizes pushes every size from 0 to the maximum through a small
// ring, so records wrap at every alignment.
func TestWrapAndSizes(t *testing.T) {
	p, c := pair(t, 4096)
	buf := make([]byte, p.MaxMessage())
	for n := 0; n <= p.MaxMessage(); n++ {
		msg := pattern(uint64(n), n)
		if err := p.TrySend(msg); err != nil {
			t.Fatalf("send %d bytes: %v", n, err)
		}
		got, err := c.TryRecv(buf)
		if err != nil || !bytes.Equal(buf[:got], msg) {
			t.Fatalf("recv %d bytes: got %d, %v", n, got, err)
		}
	}
}

func TestMemfd(t *testing.T) {
	p, err := CreateMemfd("ndtest-shmring", Options{Capacity: 8192})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	f, err := os.Open("/proc/self/fd/" + itoa(int(p.File().Fd())))
	if err != nil {
		t.Fatal(err)
	}
	// Reopen read-write through /proc, as a peer that received the fd would.
	f.Close()
	f, err = os.OpenFile("/proc/self/fd/"+itoa(int(p.File().Fd())), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	c, err := OpenFile(f, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := p.TrySend([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	n, err := c.TryRecv(buf)
	if err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("got %q, %v", buf[:n], err)
	}
	if c.Generation() != p.Generation() {
		t.Errorf("generation %x, producer's %x", c.Generation(), p.Generation())
	}
}

func TestBlockingWake(t *testing.T) {
	// Spin < 0: every wait goes to the futex, so this checks that sleeping
	// sides are woken in both directions.
	path := segPath(t, "wake")
	p, err := CreateOrReplace(path, Options{Capacity: 4096, Spin: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	c, err := Open(path, Options{Spin: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	const count = 2000
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		for i := 0; i < count; i++ {
			if err := p.Send(ctx, pattern(uint64(i), 1000)); err != nil {
				errc <- err
				return
			}
			if i%100 == 0 {
				time.Sleep(time.Millisecond) // let the consumer fall asleep
			}
		}
		errc <- p.Close()
	}()
	if err := validate(ctx, c, 0, count, func(i uint64) int { return 1000 }); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

func TestSecondConsumerRefused(t *testing.T) {
	path := segPath(t, "busy")
	p, err := CreateOrReplace(path, Options{Capacity: 4096})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	c, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path, Options{}); !errors.Is(err, ErrBusy) {
		t.Errorf("second consumer: got %v, want ErrBusy", err)
	}
	c.Close()
	c2, err := Open(path, Options{})
	if err != nil {
		t.Fatalf("consumer after the first closed: %v", err)
	}
	c2.Close()
}
