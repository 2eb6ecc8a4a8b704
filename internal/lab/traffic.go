package lab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// Traffic generators are plain sockets opened inside a namespace on a locked
// thread (a socket belongs to the namespace it was created in, whatever
// thread uses it later) and driven with blocking system calls in loops that
// are bounded in count and in time.

// ctxCheckEvery is how many packets a loop sends between looks at its
// context and clock: often enough to stop within milliseconds, rarely enough
// to cost nothing.
const ctxCheckEvery = 64

func sockaddr(ap netip.AddrPort) unix.Sockaddr {
	if ap.Addr().Is6() {
		return &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
	}
	return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
}

// socket opens a socket of the given type inside n's namespace, registers it
// for closing at teardown, and applies opts before returning it.
func (e *Env) socket(n *Node, typ int, opts ...func(fd int) error) (int, error) {
	return e.socketOf(n, unix.AF_INET, typ, opts...)
}

// socketOf is socket for an address family (AF_INET6 for the IPv6
// scenarios).
func (e *Env) socketOf(n *Node, family, typ int, opts ...func(fd int) error) (int, error) {
	fd := -1
	err := n.Do(func() error {
		var err error
		fd, err = unix.Socket(family, typ|unix.SOCK_CLOEXEC, 0)
		return err
	})
	if err != nil {
		return -1, fmt.Errorf("socket in %s: %w", n.NS, err)
	}
	e.CloseFd(fd)
	e.mu.Lock()
	e.apps = append(e.apps, appSocket{node: n, fd: fd, typ: typ &^ (unix.SOCK_NONBLOCK | unix.SOCK_CLOEXEC)})
	e.mu.Unlock()
	for _, o := range opts {
		if err := o(fd); err != nil {
			return -1, fmt.Errorf("socket in %s: %w", n.NS, err)
		}
	}
	return fd, nil
}

// bindTo binds a socket to ap.
func bindTo(ap netip.AddrPort) func(int) error {
	return func(fd int) error {
		if err := unix.Bind(fd, sockaddr(ap)); err != nil {
			return fmt.Errorf("bind %s: %w", ap, err)
		}
		return nil
	}
}

// intOpt sets an integer socket option.
func intOpt(level, opt, v int, what string) func(int) error {
	return func(fd int) error {
		if err := unix.SetsockoptInt(fd, level, opt, v); err != nil {
			return fmt.Errorf("set %s=%d: %w", what, v, err)
		}
		return nil
	}
}

// rcvTimeout bounds every blocking receive on the socket, so a reader never
// outlives its scenario.
func rcvTimeout(d time.Duration) func(int) error {
	return func(fd int) error {
		tv := unix.NsecToTimeval(d.Nanoseconds())
		return unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	}
}

// sndTimeout bounds every blocking send and connect on the socket.
func sndTimeout(d time.Duration) func(int) error {
	return func(fd int) error {
		tv := unix.NsecToTimeval(d.Nanoseconds())
		return unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv)
	}
}

// errNoFault is what a Traffic function wraps when the fault it is there to
// provoke did not happen (no send refused, no connect failed). In a plain
// run that is an error of the lab; in the run after --fix applied the fix
// it is the point.
var errNoFault = errors.New("the fault did not happen")

// sendResult counts what a sending loop did.
type sendResult struct {
	Sent   int // accepted by the kernel
	Errors int // refused with an error the scenario expects (ENOBUFS…)
}

// flood describes a burst of datagrams.
type flood struct {
	Size  int // payload bytes
	Count int // datagrams at most
	// Spread paces the datagrams evenly over this long; zero sends them as
	// fast as the kernel takes them.
	Spread time.Duration
	// Budget bounds the whole burst in time.
	Budget time.Duration
}

// floodUDP sends f.Count datagrams from fd to dst, within f.Budget, stopping
// early when ctx ends. Datagrams the kernel refuses with ENOBUFS, EAGAIN or
// ECONNREFUSED are counted, not fatal: they are the faults some scenarios
// provoke.
func floodUDP(ctx context.Context, fd int, dst netip.AddrPort, f flood) (sendResult, error) {
	var r sendResult
	buf := make([]byte, f.Size)
	sa := sockaddr(dst)
	start := time.Now()
	deadline := start.Add(f.Budget)
	for i := 0; i < f.Count; i++ {
		if i%ctxCheckEvery == 0 {
			if err := ctx.Err(); err != nil {
				return r, err
			}
			now := time.Now()
			if now.After(deadline) {
				break
			}
			if f.Spread > 0 {
				due := start.Add(time.Duration(int64(f.Spread) * int64(i) / int64(f.Count)))
				if wait := due.Sub(now); wait > 0 {
					if err := sleepCtx(ctx, min(wait, deadline.Sub(now))); err != nil {
						return r, err
					}
				}
			}
		}
		// Vary the first bytes so no layer can treat datagrams as copies.
		buf[0], buf[1] = byte(i), byte(i>>8)
		err := unix.Sendto(fd, buf, 0, sa)
		switch {
		case err == nil:
			r.Sent++
		case errors.Is(err, unix.ENOBUFS), errors.Is(err, unix.EAGAIN), errors.Is(err, unix.ECONNREFUSED):
			r.Errors++
		case errors.Is(err, unix.EINTR):
		default:
			return r, fmt.Errorf("send to %s: %w", dst, err)
		}
	}
	return r, nil
}

// drain reads datagrams from fd, waiting pause after each, until ctx ends or
// max datagrams were read. A socket receive timeout set on fd bounds each
// wait. It returns how many it read.
func drain(ctx context.Context, fd int, pause time.Duration, max int) int {
	buf := make([]byte, 65536)
	n := 0
	for n < max && ctx.Err() == nil {
		_, _, err := unix.Recvfrom(fd, buf, 0)
		if err == nil {
			n++
			if pause > 0 {
				select {
				case <-ctx.Done():
				case <-time.After(pause):
				}
			}
			continue
		}
		if !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EINTR) {
			return n
		}
	}
	return n
}

// pinToCPU runs fn on a thread bound to one CPU.
func pinToCPU(cpu int, fn func() error) error {
	return onThrowawayThread(func() error {
		var set unix.CPUSet
		set.Set(cpu)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			return fmt.Errorf("pin to cpu %d: %w", cpu, err)
		}
		return fn()
	})
}

// onThrowawayThread runs fn on a locked OS thread that is never handed back
// to the Go scheduler: fn may change what cannot be changed back cleanly
// (CPU affinity, namespaces entered with unshare), and the runtime retires
// the thread when fn returns.
//
// The process's main thread is never used. The runtime cannot retire it; it
// would park it for good, and a parked main thread left in a lab namespace
// keeps that namespace alive and makes /proc/net (which follows the main
// thread) show the wrong namespace for the rest of the process.
func onThrowawayThread(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if unix.Gettid() == unix.Getpid() {
			// While this goroutine holds the main thread, the nested
			// call's goroutine cannot be scheduled onto it.
			errc <- onThrowawayThread(fn)
			runtime.UnlockOSThread()
			return
		}
		defer func() {
			if p := recover(); p != nil {
				errc <- fmt.Errorf("panic: %v", p)
			}
		}()
		errc <- fn()
	}()
	return <-errc
}

// goSafe runs fn in a goroutine and delivers its error, turning a panic into
// an error so that teardown still runs in the goroutine that owns the lab.
func goSafe(fn func() error) <-chan error {
	errc := make(chan error, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				errc <- fmt.Errorf("panic: %v", p)
			}
		}()
		errc <- fn()
	}()
	return errc
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// listenTCP opens a TCP listener on at inside n with the given listen()
// backlog; opts are applied before the bind.
func (e *Env) listenTCP(n *Node, at netip.AddrPort, backlog int, opts ...func(fd int) error) (int, error) {
	opts = append([]func(fd int) error{intOpt(unix.SOL_SOCKET, unix.SO_REUSEADDR, 1, "SO_REUSEADDR")}, opts...)
	ln, err := e.socket(n, unix.SOCK_STREAM, append(opts, bindTo(at))...)
	if err != nil {
		return -1, err
	}
	if err := unix.Listen(ln, backlog); err != nil {
		return -1, fmt.Errorf("listen on %s: %w", at, err)
	}
	return ln, nil
}
