package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// The socket transports use blocking file descriptors and raw system calls
// on goroutines locked to their OS threads: a measurement of the kernel
// path, like sockperf's, without the netpoller's epoll round trips.

// sender sends msg (or, for sendfile, the same bytes from a file) on fd.
type sender func(fd int, msg []byte) error

// connector makes a connected stream pair: client end, server end.
type connector func() (int, int, error)

func tcpPair() (int, int, error) {
	l, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, -1, fmt.Errorf("socket: %w", err)
	}
	defer unix.Close(l)
	if err := unix.Bind(l, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		return -1, -1, fmt.Errorf("bind 127.0.0.1: %w", err)
	}
	if err := unix.Listen(l, 1); err != nil {
		return -1, -1, fmt.Errorf("listen: %w", err)
	}
	sa, err := unix.Getsockname(l)
	if err != nil {
		return -1, -1, fmt.Errorf("getsockname: %w", err)
	}
	c, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, -1, fmt.Errorf("socket: %w", err)
	}
	// On loopback connect completes from the listen backlog, before accept.
	if err := unix.Connect(c, sa); err != nil {
		unix.Close(c)
		return -1, -1, fmt.Errorf("connect: %w", err)
	}
	s, _, err := unix.Accept4(l, unix.SOCK_CLOEXEC)
	if err != nil {
		unix.Close(c)
		return -1, -1, fmt.Errorf("accept: %w", err)
	}
	for _, fd := range []int{c, s} {
		unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	}
	return c, s, nil
}

func unixPair() (int, int, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, -1, fmt.Errorf("socketpair: %w", err)
	}
	return fds[0], fds[1], nil
}

func writeFull(fd int, p []byte) error {
	for len(p) > 0 {
		n, err := unix.Write(fd, p)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("write: %w", err)
		}
		p = p[n:]
	}
	return nil
}

func readFull(fd int, p []byte) error {
	for len(p) > 0 {
		n, err := unix.Read(fd, p)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("read: %w", err)
		}
		if n == 0 {
			return io.EOF
		}
		p = p[n:]
	}
	return nil
}

func plainSend(fd int, msg []byte) error { return writeFull(fd, msg) }

// relay forwards from in to out until EOF, then shuts out's write side.
type relay func(in, out int) error

func copyRelay(in, out int) error {
	buf := make([]byte, 64<<10)
	for {
		n, err := unix.Read(in, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("relay read: %w", err)
		}
		if n == 0 {
			return unix.Shutdown(out, unix.SHUT_WR)
		}
		if err := writeFull(out, buf[:n]); err != nil {
			return err
		}
	}
}

// spliceRelay moves bytes socket -> pipe -> socket without copying them
// through user space.
func spliceRelay(in, out int) error {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return fmt.Errorf("pipe: %w", err)
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	const chunk = 1 << 20
	unix.FcntlInt(uintptr(p[1]), unix.F_SETPIPE_SZ, chunk)
	for {
		n, err := unix.Splice(in, nil, p[1], nil, chunk, unix.SPLICE_F_MOVE|unix.SPLICE_F_MORE)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("splice socket->pipe: %w", err)
		}
		if n == 0 {
			return unix.Shutdown(out, unix.SHUT_WR)
		}
		for n > 0 {
			m, err := unix.Splice(p[0], nil, out, nil, int(n), unix.SPLICE_F_MOVE)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return fmt.Errorf("splice pipe->socket: %w", err)
			}
			n -= m
		}
	}
}

// sockMeasurer measures a socket transport: conn makes the pair, send
// sends, and relay, when set, sits in the middle (a proxy).
type sockMeasurer struct {
	conn  connector
	send  func(size int) (sender, func(), error) // per-size sender and its cleanup
	relay relay
	zc    *zcStats
	extra string
}

// path is a client fd and a server fd, possibly through a relay.
type path struct {
	client, server int
	closers        []int
	wg             sync.WaitGroup
	relayErr       atomic.Value
}

func (m *sockMeasurer) open() (*path, error) {
	c, s, err := m.conn()
	if err != nil {
		return nil, err
	}
	p := &path{client: c, server: s, closers: []int{c, s}}
	if m.relay == nil {
		return p, nil
	}
	// client -> (s) relay (c2) -> server (s2)
	c2, s2, err := m.conn()
	if err != nil {
		p.close()
		return nil, err
	}
	p.server = s2
	p.closers = append(p.closers, c2, s2)
	for _, dir := range [][2]int{{s, c2}, {c2, s}} {
		p.wg.Add(1)
		go func(in, out int) {
			defer p.wg.Done()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			if err := m.relay(in, out); err != nil {
				p.relayErr.Store(err)
			}
		}(dir[0], dir[1])
	}
	return p, nil
}

func (p *path) close() {
	// Shut down first so relays blocked in read or splice return.
	for _, fd := range p.closers {
		unix.Shutdown(fd, unix.SHUT_RDWR)
	}
	p.wg.Wait()
	for _, fd := range p.closers {
		unix.Close(fd)
	}
}

func (m *sockMeasurer) stream(ctx context.Context, size int, d time.Duration, res *Result) error {
	send, finish, err := m.send(size)
	if err != nil {
		return err
	}
	done := sync.OnceFunc(finish)
	defer done()
	p, err := m.open()
	if err != nil {
		return err
	}
	defer p.close()
	if m.zc != nil {
		m.zc.reset()
	}
	msg := bytes.Repeat([]byte{'D'}, size)
	var stop atomic.Bool
	werr := make(chan error, 1)
	cpu0 := cpuTime()
	start := time.Now()
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		var err error
		for !stop.Load() && err == nil {
			err = send(p.client, msg)
		}
		unix.Shutdown(p.client, unix.SHUT_WR)
		werr <- err
	}()
	timer := time.AfterFunc(d, func() { stop.Store(true) })
	defer timer.Stop()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	buf := make([]byte, max(size, 256<<10))
	var total int64
	var rerr error
	for {
		n, err := unix.Read(p.server, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			rerr = fmt.Errorf("read: %w", err)
			stop.Store(true)
			// The writer may be blocked on a full socket nobody reads.
			unix.Shutdown(p.client, unix.SHUT_RDWR)
			break
		}
		if n == 0 {
			break
		}
		total += int64(n)
	}
	wall := time.Since(start)
	werrV := <-werr // the writer is done with the sender's state from here
	done()          // reap outstanding MSG_ZEROCOPY completions before counting them
	cpu := cpuTime() - cpu0
	if werrV != nil {
		return werrV
	}
	if rerr != nil {
		return rerr
	}
	if err, _ := p.relayErr.Load().(error); err != nil {
		return err
	}
	fillStream(res, size, total, wall, cpu)
	if m.zc != nil {
		m.zc.fill(res)
	}
	return ctx.Err()
}

func (m *sockMeasurer) latency(ctx context.Context, size int, d time.Duration, res *Result) error {
	send, finish, err := m.send(size)
	if err != nil {
		return err
	}
	done := sync.OnceFunc(finish)
	defer done()
	p, err := m.open()
	if err != nil {
		return err
	}
	defer p.close()
	serr := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		buf := make([]byte, size)
		for {
			if err := readFull(p.server, buf); err != nil {
				if err == io.EOF {
					err = nil
				}
				serr <- err
				return
			}
			if err := send(p.server, buf); err != nil {
				serr <- err
				return
			}
		}
	}()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	msg := bytes.Repeat([]byte{'P'}, size)
	buf := make([]byte, size)
	rtt := make([]int64, 0, 1<<16)
	deadline := time.Now().Add(d)
	var err2 error
	for i := 0; ; i++ {
		t0 := time.Now()
		if i > 0 && (!t0.Before(deadline) || ctx.Err() != nil) {
			break
		}
		if err2 = send(p.client, msg); err2 != nil {
			break
		}
		if err2 = readFull(p.client, buf); err2 != nil {
			break
		}
		rtt = append(rtt, int64(time.Since(t0)))
		if i == 0 && !bytes.Equal(buf, msg) {
			err2 = errors.New("echo differs from what was sent")
			break
		}
	}
	if err2 != nil {
		// The server may be blocked writing a reply nobody will read.
		unix.Shutdown(p.client, unix.SHUT_RDWR)
	} else {
		unix.Shutdown(p.client, unix.SHUT_WR)
	}
	if err := <-serr; err != nil && err2 == nil {
		err2 = err
	}
	if err2 != nil {
		return err2
	}
	return fillLatency(res, rtt)
}

func (m *sockMeasurer) note() string { return m.extra }
func (m *sockMeasurer) close()       {}

func plainSender(int) (sender, func(), error) { return plainSend, func() {}, nil }

// fileSender returns a sendfile sender over a temporary file holding size
// bytes of 'D' (the file sits in the page cache after the first read).
func fileSender(size int) (sender, func(), error) {
	f, err := os.CreateTemp("", "netdrop-bench-sendfile-*")
	if err != nil {
		return nil, nil, fmt.Errorf("sendfile source: %w", err)
	}
	os.Remove(f.Name())
	// 'P' so a ping-pong echo compares equal; a stream does not look.
	if _, err := f.Write(bytes.Repeat([]byte{'P'}, size)); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("sendfile source: %w", err)
	}
	ffd := int(f.Fd())
	send := func(fd int, _ []byte) error {
		var off int64
		for off < int64(size) {
			_, err := unix.Sendfile(fd, ffd, &off, size-int(off))
			if err == unix.EINTR || err == unix.EAGAIN {
				continue
			}
			if err != nil {
				return fmt.Errorf("sendfile: %w", err)
			}
		}
		return nil
	}
	return send, func() { f.Close() }, nil
}

func newMeasurer(name string, opts Options) (measurer, error) {
	switch name {
	case TCP:
		return &sockMeasurer{conn: tcpPair, send: plainSender}, nil
	case Unix:
		return &sockMeasurer{conn: unixPair, send: plainSender}, nil
	case Sendfile:
		return &sockMeasurer{conn: tcpPair, send: fileSender}, nil
	case ProxyCopy:
		return &sockMeasurer{conn: tcpPair, send: plainSender, relay: copyRelay}, nil
	case ProxySplice:
		return &sockMeasurer{conn: tcpPair, send: plainSender, relay: spliceRelay}, nil
	case ZeroCopy:
		return newZeroCopy()
	case Shmring:
		return newShm(opts, 0)
	case ShmringFutex:
		return newShm(opts, -1)
	}
	return nil, fmt.Errorf("unknown transport %q", name)
}
