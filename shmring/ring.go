//go:build linux

package shmring

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Magic identifies a shmring segment; Version is the layout version this
// code reads and writes. A segment with another version is refused with
// ErrVersion rather than misread.
const (
	Magic   uint64 = 0x474e524d4853444e // "NDSHMRNG" read as a little-endian uint64
	Version uint32 = 1

	headerSize = 512
	lenSize    = 4          // record length prefix
	padMarker  = 0xFFFFFFFF // record length meaning "skip to offset 0"

	// MinCapacity and MaxCapacity bound the data area. The upper bound keeps
	// every record length inside a uint32 with room for padMarker.
	MinCapacity = 4096
	MaxCapacity = 1 << 31

	// futex(2) operations; golang.org/x/sys/unix has the system call number
	// but not these. Without FUTEX_PRIVATE_FLAG (128) on purpose.
	futexWaitOp = 0
	futexWakeOp = 1
)

// Errors returned by this package. They are sentinels so callers can test
// them with errors.Is; the returned errors wrap them with the numbers.
var (
	ErrFull         = errors.New("shmring: ring full")
	ErrEmpty        = errors.New("shmring: ring empty")
	ErrTooLarge     = errors.New("shmring: message larger than the ring's maximum")
	ErrShortBuffer  = errors.New("shmring: buffer shorter than the next message")
	ErrVersion      = errors.New("shmring: segment has another layout version")
	ErrNotSegment   = errors.New("shmring: not a shmring segment")
	ErrCorrupt      = errors.New("shmring: segment corrupt")
	ErrClosed       = io.EOF
	ErrProducerDead = errors.New("shmring: producer died")
	ErrBusy         = errors.New("shmring: another consumer has the segment open")
	ErrCapacity     = errors.New("shmring: capacity must be a power of two between 4 KiB and 2 GiB")
)

// header is the first 512 bytes of a segment; see the package doc for why
// it is laid out in 128-byte blocks each written by one side.
type header struct {
	// block 0: written once by the producer before the segment is published.
	magic       uint64
	version     uint32
	hdrSize     uint32
	capacity    uint64
	generation  uint64
	producerPID uint32
	_           uint32
	createdNano int64
	_           [128 - 48]byte

	// block 1: producer liveness.
	heartbeat uint64 // CLOCK_MONOTONIC ns
	closed    uint32
	_         [128 - 12]byte

	// block 2: producer index and its wait state.
	tail        uint64
	prodWaiting uint32 // producer sleeps on spaceSeq
	dataSeq     uint32 // futex word the consumer sleeps on
	_           [128 - 16]byte

	// block 3: consumer index and its wait state.
	head        uint64
	consWaiting uint32 // consumer sleeps on dataSeq
	spaceSeq    uint32 // futex word the producer sleeps on
	_           [128 - 16]byte
}

// Options tunes a ring. The zero value is usable.
type Options struct {
	// Capacity of the data area in bytes, a power of two; default 1 MiB.
	// The largest message is Capacity/2 - 4.
	Capacity int
	// Spin is how long a blocking Send or Recv polls before sleeping on the
	// futex; default 50µs. Negative means sleep at once.
	Spin time.Duration
	// Heartbeat is how often the producer refreshes its heartbeat; default
	// 10ms.
	Heartbeat time.Duration
	// StaleAfter is how old a heartbeat may be before the consumer declares
	// the producer dead, where the segment's flock cannot tell (see the
	// package doc); default 500ms.
	StaleAfter time.Duration
}

func (o Options) withDefaults() Options {
	if o.Capacity == 0 {
		o.Capacity = 1 << 20
	}
	if o.Spin == 0 {
		o.Spin = 50 * time.Microsecond
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = 10 * time.Millisecond
	}
	if o.StaleAfter <= 0 {
		o.StaleAfter = 500 * time.Millisecond
	}
	return o
}

// MaxMessage returns the largest message a ring of the given capacity
// carries.
func MaxMessage(capacity int) int { return capacity/2 - lenSize }

func recordSize(n int) uint64 { return uint64(lenSize+n+7) &^ 7 }

// segment is a mapped segment, shared by Producer and Consumer.
type segment struct {
	f    *os.File
	mem  []byte
	h    *header
	data []byte
	cap  uint64
	mask uint64
	max  int
}

func mapSegment(f *os.File, size int) (*segment, error) {
	mem, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mmap %s: %w", f.Name(), err)
	}
	s := &segment{f: f, mem: mem, h: (*header)(unsafe.Pointer(&mem[0]))}
	return s, nil
}

func (s *segment) setCapacity(c uint64) {
	s.cap = c
	s.mask = c - 1
	s.data = s.mem[headerSize : headerSize+int(c)]
	s.max = MaxMessage(int(c))
}

func (s *segment) close() error {
	var err error
	if s.mem != nil {
		err = unix.Munmap(s.mem)
		s.mem, s.h, s.data = nil, nil, nil
	}
	if s.f != nil {
		if cerr := s.f.Close(); err == nil {
			err = cerr
		}
	}
	return err
}

func monoNow() uint64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return uint64(ts.Nano())
}

// Producer writes messages into a segment. It is not safe for concurrent
// use: one goroutine sends.
type Producer struct {
	seg        *segment
	opts       Options
	tail       uint64
	cachedHead uint64
	stop       chan struct{}
	wg         sync.WaitGroup
	closeOnce  sync.Once
	path       string
}

// CreateOrReplace creates a segment at path (normally under /dev/shm),
// replacing whatever is there, and returns its producer. The new segment is
// built in a temporary file and renamed over path, so a consumer of the old
// segment keeps its pages and a consumer opening path never sees a partial
// header. A producer still alive on the old segment is not stopped: it and
// its consumer keep the old pages, and consumers that open path from now on
// get the new segment.
func CreateOrReplace(path string, opts Options) (*Producer, error) {
	opts = opts.withDefaults()
	if err := checkCapacity(opts.Capacity); err != nil {
		return nil, err
	}
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	tmp := filepath.Join(filepath.Dir(path), fmt.Sprintf(".%s.%d.%x.tmp", filepath.Base(path), os.Getpid(), rnd))
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create segment: %w", err)
	}
	p, err := newProducer(f, opts)
	if err != nil {
		os.Remove(tmp)
		return nil, err
	}
	if err := os.Rename(tmp, path); err != nil {
		p.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("publish segment: %w", err)
	}
	p.path = path
	return p, nil
}

// CreateMemfd creates an anonymous segment (memfd_create). Hand File() to
// the peer (exec.Cmd.ExtraFiles or SCM_RIGHTS) and open it there with
// OpenFile.
func CreateMemfd(name string, opts Options) (*Producer, error) {
	opts = opts.withDefaults()
	if err := checkCapacity(opts.Capacity); err != nil {
		return nil, err
	}
	fd, err := unix.MemfdCreate(name, 0)
	if err != nil {
		return nil, fmt.Errorf("memfd_create: %w", err)
	}
	return newProducer(os.NewFile(uintptr(fd), "memfd:"+name), opts)
}

func checkCapacity(c int) error {
	if c < MinCapacity || c > MaxCapacity || bits.OnesCount(uint(c)) != 1 {
		return fmt.Errorf("%w (got %d)", ErrCapacity, c)
	}
	return nil
}

func newProducer(f *os.File, opts Options) (*Producer, error) {
	size := headerSize + opts.Capacity
	if err := f.Truncate(int64(size)); err != nil {
		f.Close()
		return nil, fmt.Errorf("size segment: %w", err)
	}
	// Reserve the pages now: on a full tmpfs a sparse segment would fail
	// later with SIGBUS on first touch instead of this clear ENOSPC.
	if err := unix.Fallocate(int(f.Fd()), 0, 0, int64(size)); err != nil && err != unix.EOPNOTSUPP {
		f.Close()
		return nil, fmt.Errorf("reserve %d bytes for the segment: %w", size, err)
	}
	seg, err := mapSegment(f, size)
	if err != nil {
		f.Close()
		return nil, err
	}
	seg.setCapacity(uint64(opts.Capacity))
	// The producer holds an exclusive flock on the segment for its whole
	// life; the kernel drops it when the process dies, however it dies,
	// which is how a consumer tells a dead producer from a starved one.
	// Where flock is not supported the heartbeat alone decides.
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil && err != unix.ENOLCK && err != unix.EINVAL && err != unix.EOPNOTSUPP {
		seg.close()
		return nil, fmt.Errorf("lock segment: %w", err)
	}
	h := seg.h
	var g [8]byte
	for binary.LittleEndian.Uint64(g[:]) == 0 {
		if _, err := rand.Read(g[:]); err != nil {
			seg.close()
			return nil, fmt.Errorf("generation: %w", err)
		}
	}
	h.version = Version
	h.hdrSize = headerSize
	h.capacity = uint64(opts.Capacity)
	h.generation = binary.LittleEndian.Uint64(g[:])
	h.producerPID = uint32(os.Getpid())
	h.createdNano = time.Now().UnixNano()
	atomic.StoreUint64(&h.heartbeat, monoNow())
	// The magic goes last: a reader that sees it sees the whole header.
	atomic.StoreUint64(&h.magic, Magic)

	p := &Producer{seg: seg, opts: opts, stop: make(chan struct{})}
	p.wg.Add(1)
	go p.beat()
	return p, nil
}

func (p *Producer) beat() {
	defer p.wg.Done()
	t := time.NewTicker(p.opts.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			atomic.StoreUint64(&p.seg.h.heartbeat, monoNow())
		}
	}
}

// File returns the segment's file, to hand to the peer.
func (p *Producer) File() *os.File { return p.seg.f }

// Generation returns the segment's random generation.
func (p *Producer) Generation() uint64 { return p.seg.h.generation }

// MaxMessage returns the largest message this ring carries.
func (p *Producer) MaxMessage() int { return p.seg.max }

// TrySend copies msg into the ring and publishes it, or returns an error
// wrapping ErrFull or ErrTooLarge without blocking.
func (p *Producer) TrySend(msg []byte) error {
	err := p.trySend(msg)
	if err == ErrFull {
		s := p.seg
		return fmt.Errorf("%w: %d of %d bytes free, a %d-byte message needs up to %d", ErrFull,
			s.cap-(p.tail-p.cachedHead), s.cap, len(msg), 2*recordSize(len(msg)))
	}
	return err
}

// trySend is TrySend returning the bare ErrFull, so that spinning in Send
// does not allocate an error per poll.
func (p *Producer) trySend(msg []byte) error {
	s := p.seg
	n := len(msg)
	if n > s.max {
		return fmt.Errorf("%w: %d bytes, maximum %d", ErrTooLarge, n, s.max)
	}
	rec := recordSize(n)
	pos := p.tail & s.mask
	room := s.cap - pos
	need := rec
	if rec > room {
		need = room + rec
	}
	if s.cap-(p.tail-p.cachedHead) < need {
		p.cachedHead = atomic.LoadUint64(&s.h.head)
		if s.cap-(p.tail-p.cachedHead) < need {
			return ErrFull
		}
	}
	tail := p.tail
	if rec > room {
		binary.LittleEndian.PutUint32(s.data[pos:], padMarker)
		tail += room
		pos = 0
	}
	binary.LittleEndian.PutUint32(s.data[pos:], uint32(n))
	copy(s.data[pos+lenSize:], msg)
	tail += rec
	p.tail = tail
	atomic.StoreUint64(&s.h.tail, tail)
	if atomic.LoadUint32(&s.h.consWaiting) != 0 && atomic.CompareAndSwapUint32(&s.h.consWaiting, 1, 0) {
		atomic.AddUint32(&s.h.dataSeq, 1)
		futexWake(&s.h.dataSeq)
	}
	return nil
}

// Send is TrySend that waits for room: it spins for Options.Spin, then
// sleeps on the segment's futex until the consumer frees space or ctx ends.
func (p *Producer) Send(ctx context.Context, msg []byte) error {
	err := p.trySend(msg)
	if err != ErrFull {
		return err
	}
	h := p.seg.h
	deadline := time.Now().Add(p.opts.Spin)
	for i := 0; ; i++ {
		if err = p.trySend(msg); err != ErrFull {
			return err
		}
		if i&63 != 63 {
			continue
		}
		if time.Now().Before(deadline) {
			spinYield(i)
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		seq := atomic.LoadUint32(&h.spaceSeq)
		atomic.StoreUint32(&h.prodWaiting, 1)
		if err = p.trySend(msg); err != ErrFull {
			atomic.StoreUint32(&h.prodWaiting, 0)
			return err
		}
		futexWait(&h.spaceSeq, seq, 20*time.Millisecond)
		// Disarm: a flag left set after a timeout would cost the consumer a
		// needless wake-up system call.
		atomic.StoreUint32(&h.prodWaiting, 0)
	}
}

// Close marks the segment closed (the consumer gets io.EOF once it has read
// everything), stops the heartbeat and unmaps. The file stays: the
// consumer may still be draining it; remove it with os.Remove.
func (p *Producer) Close() error {
	var err error
	p.closeOnce.Do(func() {
		close(p.stop)
		p.wg.Wait()
		h := p.seg.h
		atomic.StoreUint32(&h.closed, 1)
		atomic.AddUint32(&h.dataSeq, 1)
		futexWake(&h.dataSeq)
		err = p.seg.close()
	})
	return err
}

// Consumer reads messages from a segment. It is not safe for concurrent
// use: one goroutine receives.
type Consumer struct {
	seg        *segment
	opts       Options
	head       uint64 // next byte to read
	published  uint64 // head as last stored in the segment
	cachedTail uint64
	path       string
	generation uint64
	probe      bool // the segment's flock tells whether the producer lives
	peeked     bool // a message was returned by TryPeek and not released
	peekHead   uint64
}

// Open maps the segment at path for reading. It fails with ErrNotSegment or
// ErrVersion for a file that is not a segment of this layout. A segment
// whose producer is dead opens fine: Recv returns what was published, then
// ErrProducerDead.
func Open(path string, opts Options) (*Consumer, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("open segment: %w", err)
	}
	c, err := OpenFile(f, opts)
	if err != nil {
		return nil, err
	}
	c.path = path
	return c, nil
}

// OpenFile maps a segment from an open file, such as a memfd received from
// the producer. The consumer owns f from now on.
func OpenFile(f *os.File, opts Options) (*Consumer, error) {
	opts = opts.withDefaults()
	// Probe the producer's lock through an open file description of our
	// own: one shared with the producer (an inherited or passed fd) would
	// hold the producer's lock itself. Reopening through /proc gives a new
	// one; without /proc the heartbeat alone decides.
	probe := false
	name := f.Name()
	if nf, err := os.OpenFile(fmt.Sprintf("/proc/self/fd/%d", f.Fd()), os.O_RDWR, 0); err == nil {
		f.Close()
		f, probe = nf, true
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("stat segment: %w", err)
	}
	if fi.Size() < headerSize {
		f.Close()
		return nil, fmt.Errorf("%w: %s is %d bytes, shorter than the %d-byte header", ErrNotSegment, name, fi.Size(), headerSize)
	}
	seg, err := mapSegment(f, int(fi.Size()))
	if err != nil {
		f.Close()
		return nil, err
	}
	h := seg.h
	// Copy the header fields before deciding: the error paths unmap.
	magic, version, hsize, capacity := atomic.LoadUint64(&h.magic), h.version, h.hdrSize, h.capacity
	switch {
	case magic != Magic:
		seg.close()
		return nil, fmt.Errorf("%w: %s has magic %#x", ErrNotSegment, name, magic)
	case version != Version:
		seg.close()
		return nil, fmt.Errorf("%w: %s is version %d, this code reads version %d", ErrVersion, name, version, Version)
	case hsize != headerSize || checkCapacity(int(capacity)) != nil || fi.Size() != int64(headerSize)+int64(capacity):
		seg.close()
		return nil, fmt.Errorf("%w: %s header size %d, capacity %d, file size %d", ErrCorrupt, name, hsize, capacity, fi.Size())
	}
	// One consumer at a time: a second one would race the first on head.
	// An OFD record lock on byte 1 (the producer's flock is separate) marks
	// the consumer; the kernel drops it with the consumer's open file
	// description, on Close or death.
	if probe {
		lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: 1, Len: 1}
		switch err := unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &lk); err {
		case nil:
		case unix.EAGAIN, unix.EACCES:
			seg.close()
			return nil, fmt.Errorf("%w: %s", ErrBusy, name)
		default:
			// No OFD locks here (an old kernel or an odd file system):
			// single consumer by convention only.
		}
	}
	seg.setCapacity(h.capacity)
	c := &Consumer{seg: seg, opts: opts, generation: h.generation, probe: probe}
	c.head = atomic.LoadUint64(&h.head)
	c.published, c.cachedTail = c.head, c.head
	return c, nil
}

// Generation returns the generation of the segment being read.
func (c *Consumer) Generation() uint64 { return c.generation }

// MaxMessage returns the largest message this ring carries.
func (c *Consumer) MaxMessage() int { return c.seg.max }

// ProducerAlive reports whether the producer has not closed the segment
// and has not died.
func (c *Consumer) ProducerAlive() bool {
	if atomic.LoadUint32(&c.seg.h.closed) != 0 {
		return false
	}
	return c.producerDead() == nil
}

// producerDead returns why the producer is known dead, or nil. The flock
// the producer holds is exact: free means the process is gone, even if its
// heartbeat is fresh, and held means it lives, even if it is starved of CPU
// and its heartbeat is late. The heartbeat decides only where flock does
// not work.
func (c *Consumer) producerDead() error {
	if c.probe {
		fd := int(c.seg.f.Fd())
		switch err := unix.Flock(fd, unix.LOCK_SH|unix.LOCK_NB); err {
		case nil:
			unix.Flock(fd, unix.LOCK_UN)
			return fmt.Errorf("%w: generation %x, its lock on the segment was released", ErrProducerDead, c.generation)
		case unix.EWOULDBLOCK:
			return nil
		}
	}
	hb := atomic.LoadUint64(&c.seg.h.heartbeat)
	if now := monoNow(); now > hb && time.Duration(now-hb) > c.opts.StaleAfter {
		return fmt.Errorf("%w: generation %x, no heartbeat for %s", ErrProducerDead, c.generation, time.Duration(now-hb).Round(time.Millisecond))
	}
	return nil
}

// TryRecv copies the next message into buf and returns its length. It
// returns ErrEmpty itself when no message is published, io.EOF when the
// producer closed and everything was read, and ErrShortBuffer (the message
// stays in the ring) when buf is too small. A message taken with TryPeek
// and not yet released is returned again.
func (c *Consumer) TryRecv(buf []byte) (int, error) {
	msg, head, err := c.next()
	if err != nil {
		return 0, err
	}
	if len(msg) > len(buf) {
		return len(msg), fmt.Errorf("%w: message of %d bytes, buffer of %d", ErrShortBuffer, len(msg), len(buf))
	}
	copy(buf, msg)
	c.advance(head)
	return len(msg), nil
}

// TryPeek returns the next message in place, without copying it: the slice
// points into the shared ring and stays valid until Release, which gives
// its space back to the producer. Errors are those of TryRecv. Peeking
// again before Release returns the same message.
func (c *Consumer) TryPeek() ([]byte, error) {
	msg, head, err := c.next()
	if err != nil {
		return nil, err
	}
	c.peeked, c.peekHead = true, head
	return msg, nil
}

// Release consumes the message returned by the last TryPeek or Peek; the
// slice must not be used after. Without a peeked message it does nothing.
func (c *Consumer) Release() {
	if c.peeked {
		c.advance(c.peekHead)
	}
}

// next locates the next message without consuming it and returns its
// payload in the ring and the head after it.
func (c *Consumer) next() ([]byte, uint64, error) {
	s := c.seg
	if c.head == c.cachedTail {
		c.cachedTail = atomic.LoadUint64(&s.h.tail)
		if c.head == c.cachedTail {
			if c.published != c.head {
				c.publish()
			}
			return nil, 0, c.emptyErr()
		}
	}
	if c.cachedTail-c.head > s.cap {
		return nil, 0, fmt.Errorf("%w: tail %d is %d bytes ahead of head %d", ErrCorrupt, c.cachedTail, c.cachedTail-c.head, c.head)
	}
	pos := c.head & s.mask
	head := c.head
	n := binary.LittleEndian.Uint32(s.data[pos:])
	if n == padMarker {
		head += s.cap - pos
		pos = 0
		n = binary.LittleEndian.Uint32(s.data[pos:])
	}
	if int64(n) > int64(s.max) || head+recordSize(int(n)) > c.cachedTail {
		return nil, 0, fmt.Errorf("%w: record of %d bytes at %d (tail %d, maximum %d)", ErrCorrupt, n, head, c.cachedTail, s.max)
	}
	return s.data[pos+lenSize : pos+lenSize+uint64(n) : pos+lenSize+uint64(n)], head + recordSize(int(n)), nil
}

// advance consumes up to head.
func (c *Consumer) advance(head uint64) {
	c.head = head
	c.peeked = false
	if head == c.cachedTail || head-c.published >= c.seg.cap/4 {
		c.publish()
	}
}

// publish stores head in the segment, freeing the space read so far, and
// wakes the producer if it sleeps. The consumer publishes when it has read
// everything it knew to be there, or a quarter of the ring: a consumer that
// keeps up publishes after every message (latency), one that has fallen
// behind publishes once per many messages and so catches up faster (one
// locked store per batch), and a consumer that has read all that was
// published has always given all the space back.
func (c *Consumer) publish() {
	h := c.seg.h
	c.published = c.head
	atomic.StoreUint64(&h.head, c.head)
	if atomic.LoadUint32(&h.prodWaiting) != 0 && atomic.CompareAndSwapUint32(&h.prodWaiting, 1, 0) {
		atomic.AddUint32(&h.spaceSeq, 1)
		futexWake(&h.spaceSeq)
	}
}

func (c *Consumer) emptyErr() error {
	h := c.seg.h
	if atomic.LoadUint32(&h.closed) != 0 {
		// Closed is stored after the last tail store; re-read tail so a
		// message published just before Close is not missed.
		if atomic.LoadUint64(&h.tail) != c.head {
			return ErrEmpty
		}
		return ErrClosed
	}
	return ErrEmpty
}

// Recv is TryRecv that waits for a message: it spins for Options.Spin,
// then sleeps on the segment's futex. It returns ErrProducerDead once the
// producer has died and everything it published has been read, and
// ctx.Err() when ctx ends first.
func (c *Consumer) Recv(ctx context.Context, buf []byte) (int, error) {
	n, err := c.TryRecv(buf)
	if err != ErrEmpty {
		return n, err
	}
	err = c.wait(ctx, func() error {
		n, err = c.TryRecv(buf)
		return err
	})
	return n, err
}

// Peek is TryPeek that waits like Recv.
func (c *Consumer) Peek(ctx context.Context) ([]byte, error) {
	msg, err := c.TryPeek()
	if err != ErrEmpty {
		return msg, err
	}
	err = c.wait(ctx, func() error {
		msg, err = c.TryPeek()
		return err
	})
	return msg, err
}

// wait calls try until it returns something other than ErrEmpty: spinning
// for Options.Spin, then sleeping on the futex, waking at least every 20ms
// to check ctx and whether the producer died.
func (c *Consumer) wait(ctx context.Context, try func() error) error {
	h := c.seg.h
	deadline := time.Now().Add(c.opts.Spin)
	timedOut := false
	for i := 0; ; i++ {
		if err := try(); err != ErrEmpty {
			return err
		}
		if i&63 != 63 {
			continue
		}
		if time.Now().Before(deadline) {
			spinYield(i)
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		// Liveness is checked after a sleep that timed out, not before
		// every sleep: a wake-up should not pay for a flock system call.
		if timedOut {
			if dead := c.producerDead(); dead != nil {
				// Everything published before the death is whole and has
				// been read (the ring is empty); a record being written at
				// the time was never published.
				if err := try(); err != ErrEmpty {
					return err
				}
				return dead
			}
		}
		seq := atomic.LoadUint32(&h.dataSeq)
		atomic.StoreUint32(&h.consWaiting, 1)
		if err := try(); err != ErrEmpty {
			atomic.StoreUint32(&h.consWaiting, 0)
			return err
		}
		timedOut = futexWait(&h.dataSeq, seq, 20*time.Millisecond)
		atomic.StoreUint32(&h.consWaiting, 0)
	}
}

// Reattach waits until the segment at the consumer's path has a different
// generation from the one being read and a live producer, then switches to
// it. Messages of the old segment that were not read are abandoned. It
// fails with ErrBusy if another consumer has the new segment.
func (c *Consumer) Reattach(ctx context.Context) error {
	if c.path == "" {
		return errors.New("shmring: reattach needs a consumer opened by path")
	}
	t := time.NewTicker(c.opts.Heartbeat)
	defer t.Stop()
	for {
		// While the path still names the segment we hold, opening it would
		// only find our own consumer lock.
		if fi, err := os.Stat(c.path); err == nil {
			if own, err := c.seg.f.Stat(); err == nil && os.SameFile(fi, own) {
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-t.C:
				}
				continue
			}
		}
		nc, err := Open(c.path, c.opts)
		if err == nil {
			if nc.generation != c.generation && nc.ProducerAlive() {
				c.seg.close()
				*c = *nc
				return nil
			}
			nc.Close()
		} else if !errors.Is(err, os.ErrNotExist) && !errors.Is(err, ErrNotSegment) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Close unmaps the segment.
func (c *Consumer) Close() error { return c.seg.close() }

// spinYield gives the CPU away now and then while spinning: when the peer's
// thread shares this CPU (two spinning processes on a busy host), a pure
// spin would hold the CPU for the whole Spin period before the peer could
// run; sched_yield lets it run at once. The first 1024 polls do not yield,
// so a peer on another CPU is answered without a system call.
func spinYield(i int) {
	if i >= 1024 {
		unix.Syscall(unix.SYS_SCHED_YIELD, 0, 0, 0)
	}
}

// futexWait sleeps while *addr == val, at most d, and reports whether it
// timed out. FUTEX_WAIT without FUTEX_PRIVATE_FLAG: the word is in
// MAP_SHARED memory and the waker is another process.
func futexWait(addr *uint32, val uint32, d time.Duration) bool {
	ts := unix.NsecToTimespec(int64(d))
	_, _, errno := unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(addr)), futexWaitOp, uintptr(val), uintptr(unsafe.Pointer(&ts)), 0, 0)
	return errno == unix.ETIMEDOUT
}

// futexWake wakes the one waiter sleeping on addr, if any.
func futexWake(addr *uint32) {
	unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(addr)), futexWakeOp, 1, 0, 0, 0)
}
