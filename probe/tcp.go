package probe

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/netdrop/netdrop/counters"
	"github.com/netdrop/netdrop/frame"
)

// Over TCP nothing is lost or reordered short of a broken connection; what a
// TCP probe measures is latency (which includes the time frames wait in
// socket buffers under back-pressure), frames damaged by a middlebox or a
// buggy stack (the CRC catches them and the stream scanner resynchronises),
// and the connection's own drops, which TCP repairs with retransmissions.

// TCPServer receives probe runs over TCP, each connection concurrently with
// the others up to ServerConfig.MaxConns, each with a Hello deadline and an
// idle deadline.
type TCPServer struct {
	l     *net.TCPListener
	cfg   ServerConfig
	stray strayCounter
	// cb serialises the callbacks of concurrent connections; collect their
	// counter reads, so that two runs starting together do not read the
	// same counters twice at once.
	cb      sync.Mutex
	collect sync.Mutex
}

// ListenTCP opens the listening socket in the current network namespace.
func ListenTCP(addr string, cfg ServerConfig) (*TCPServer, error) {
	cfg.defaults()
	ta, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("probe server: %w", err)
	}
	l, err := net.ListenTCP("tcp", ta)
	if err != nil {
		return nil, fmt.Errorf("probe server: %w", err)
	}
	return &TCPServer{l: l, cfg: cfg}, nil
}

// Addr is the address the server listens on.
func (s *TCPServer) Addr() *net.TCPAddr { return s.l.Addr().(*net.TCPAddr) }

// Close closes the listener.
func (s *TCPServer) Close() error { return s.l.Close() }

// Stray returns the totals of traffic outside any run since the server
// started. It is safe to call while Serve runs.
func (s *TCPServer) Stray() Stray { return s.stray.get() }

// writeTimeout bounds a write to a peer: one that does not read must not
// hold its connection's goroutine forever either.
const writeTimeout = 5 * time.Second

// Serve accepts connections until ctx ends (or after the first finished run
// with Once) and serves each in its own goroutine; it returns when all of
// them have ended.
func (s *TCPServer) Serve(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { s.l.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
		s.emitStray(time.Now(), true)
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.strayTicker(ctx)
	}()
	slots := make(chan struct{}, s.cfg.MaxConns)
	for {
		c, err := s.l.AcceptTCP()
		if ctx.Err() != nil {
			if c != nil {
				c.Close()
			}
			return nil
		}
		if err != nil {
			if transientAccept(err) {
				// Out of descriptors or memory, or a peer that reset
				// before accept: not a reason to stop serving.
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return fmt.Errorf("probe server: accept: %w", err)
		}
		select {
		case slots <- struct{}{}:
		default:
			s.stray.add(func(t *Stray) { t.Refused++ }, c.RemoteAddr())
			c.SetLinger(0) // a reset, at once, rather than an orderly close
			c.Close()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			rep, done := s.serveConn(ctx, c)
			c.Close()
			if !done {
				return
			}
			s.callback(func() {
				if s.cfg.OnReport != nil {
					s.cfg.OnReport(rep)
				}
			})
			if s.cfg.Once {
				cancel()
			}
		}()
	}
}

// transientAccept reports whether an accept error says the server may try
// again.
func transientAccept(err error) bool {
	for _, e := range []error{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// callback runs fn while no other connection runs a callback.
func (s *TCPServer) callback(fn func()) {
	s.cb.Lock()
	defer s.cb.Unlock()
	fn()
}

func (s *TCPServer) strayTicker(ctx context.Context) {
	t := time.NewTicker(min(s.cfg.StrayEvery, time.Second))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			s.emitStray(now, false)
		}
	}
}

func (s *TCPServer) emitStray(now time.Time, force bool) {
	if s.cfg.OnStray == nil {
		return
	}
	if st, ok := s.stray.due(now, s.cfg.StrayEvery, force); ok {
		s.callback(func() { s.cfg.OnStray(st) })
	}
}

// deadlineReader reads a connection under the server's deadlines: before a
// run starts, a fixed one (the Hello deadline); in a run, one that moves
// with every read (the idle deadline). It counts the bytes it read.
type deadlineReader struct {
	c        *net.TCPConn
	ctx      context.Context
	fixed    time.Time
	idle     time.Duration // 0 until a run starts
	n        uint64
	timedOut bool
}

func (d *deadlineReader) Read(p []byte) (int, error) {
	dl := d.fixed
	if d.idle > 0 {
		dl = time.Now().Add(d.idle)
	}
	d.c.SetReadDeadline(dl)
	if d.ctx.Err() != nil {
		// Serve is stopping: its AfterFunc may have set a past deadline
		// just before this one replaced it.
		d.c.SetReadDeadline(time.Unix(1, 0))
	}
	n, err := d.c.Read(p)
	d.n += uint64(n)
	if errors.Is(err, os.ErrDeadlineExceeded) && d.ctx.Err() == nil {
		d.timedOut = true
	}
	return n, err
}

func (s *TCPServer) serveConn(ctx context.Context, c *net.TCPConn) (rep Report, done bool) {
	cfg := &s.cfg
	if cfg.RcvBuf > 0 {
		c.SetReadBuffer(cfg.RcvBuf)
	}
	rd := &deadlineReader{c: c, ctx: ctx, fixed: time.Now().Add(cfg.HelloTimeout)}
	stop := context.AfterFunc(ctx, func() { c.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	var r *run
	defer func() {
		if done || (r == nil && rd.n == 0 && !rd.timedOut) {
			return // a run, or a connection closed at once (a port check)
		}
		s.stray.add(func(t *Stray) {
			if r == nil {
				t.Conns++
				t.ConnBytes += rd.n
			}
			if rd.timedOut {
				t.TimedOut++
			}
		}, c.RemoteAddr())
	}()
	sc := frame.NewScanner(rd, 256<<10)
	var frames uint64
	var lastTick time.Time
	for {
		h, _, err := sc.Next()
		now := time.Now()
		switch {
		case err == nil:
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, os.ErrDeadlineExceeded), isNetErr(err):
			return Report{}, false
		default:
			if r != nil {
				r.acc.Datagrams++
				r.acc.Bad(err)
			}
			continue
		}
		if r == nil {
			switch h.Type {
			case frame.Hello:
				r = s.startRun(ctx, c, now, h.Sender)
				r.hello = true
				rd.idle = cfg.IdleTimeout
				replyTCP(c, frame.HelloAck, h.Sender, nil)
				continue
			case frame.Data:
				r = s.startRun(ctx, c, now, h.Sender)
				rd.idle = cfg.IdleTimeout
			default:
				continue
			}
		}
		r.acc.Datagrams++
		r.acc.Bytes += uint64(h.Len())
		if r.acc.Frame(h, now.UnixNano(), monoNs(now)) {
			switch {
			case h.Type == frame.Hello && h.Sender == r.acc.Sender:
				replyTCP(c, frame.HelloAck, h.Sender, nil)
			case h.Type == frame.Fin && h.Sender == r.acc.Sender:
				// TCP delivers in order: when the Fin is read, every frame
				// sent before it has been read too; no reorder window.
				r.finSent, r.finAt = h.Seq, now
				rep := s.finish(ctx, c, r)
				rep.Stray = forReport(s.stray.get())
				payload, _ := json.Marshal(rep)
				replyTCP(c, frame.Report, r.acc.Sender, payload)
				return rep, true
			}
			continue
		}
		frames++
		if cfg.ReaderDelay > 0 && frames%64 == 0 {
			time.Sleep(cfg.ReaderDelay)
		}
		if now.Sub(lastTick) >= 50*time.Millisecond {
			s.callback(func() { tick(cfg, r, now) })
			lastTick = now
		}
	}
}

func isNetErr(err error) bool {
	var ne *net.OpError
	return errors.As(err, &ne)
}

func (s *TCPServer) startRun(ctx context.Context, c *net.TCPConn, now time.Time, sender uint32) *run {
	r := &run{acc: NewAccount(s.cfg.Window, s.cfg.Clock), start: now, ivlAt: now, lastData: now, traffic: TrafficOf("tcp", c.RemoteAddr())}
	r.acc.Lock(sender)
	s.collect.Lock()
	r.before = s.cfg.Collect(ctx)
	s.collect.Unlock()
	if d, err := socketDrops(c); err == nil {
		r.drops0 = d
	}
	return r
}

func (s *TCPServer) finish(ctx context.Context, c *net.TCPConn, r *run) Report {
	r.finSent = r.acc.Tracker.Finish(r.finSent)
	s.collect.Lock()
	after := s.cfg.Collect(ctx)
	s.collect.Unlock()
	var drops uint64
	if d, err := socketDrops(c); err == nil && d >= r.drops0 {
		drops = d - r.drops0
	}
	return buildReport(r.traffic, r.acc, r.finSent, drops, 0, 1, r.start, r.finAt, r.before, after)
}

// replyTCP writes one frame to a peer within writeTimeout.
func replyTCP(c *net.TCPConn, t frame.Type, sender uint32, payload []byte) error {
	c.SetWriteDeadline(time.Now().Add(writeTimeout))
	return writeFrame(c, t, sender, payload)
}

func writeFrame(w io.Writer, t frame.Type, sender uint32, payload []byte) error {
	_, err := w.Write(frame.Append(nil, &frame.Header{Type: t, Sender: sender}, payload))
	return err
}

// DialTCP connects the sending socket to addr in the current namespace.
func DialTCP(addr string) (*net.TCPConn, error) {
	ta, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("probe client: %w", err)
	}
	c, err := net.DialTCP("tcp", nil, ta)
	if err != nil {
		return nil, fmt.Errorf("probe client: %w", err)
	}
	return c, nil
}

// RunTCP runs one probe over a TCP connection: hello, data, fin, report.
func RunTCP(ctx context.Context, conn *net.TCPConn, cfg ClientConfig) (Report, error) {
	cfg.GSO = false
	if err := cfg.defaults(); err != nil {
		return Report{}, err
	}
	if cfg.SndBuf > 0 {
		conn.SetWriteBuffer(cfg.SndBuf)
	}
	sc := frame.NewScanner(conn, 64<<10)
	await := func(want frame.Type, timeout time.Duration) ([]byte, error) {
		conn.SetReadDeadline(time.Now().Add(timeout))
		defer conn.SetReadDeadline(time.Time{})
		for {
			h, p, err := sc.Next()
			if err != nil {
				if err == frame.ErrCRC || err == frame.ErrBadMagic || err == frame.ErrBadVersion || err == frame.ErrLength {
					continue
				}
				return nil, err
			}
			if h.Type == want && h.Sender == cfg.Sender {
				return append([]byte(nil), p...), nil
			}
		}
	}
	var before *counters.Snapshot
	if cfg.Collect != nil {
		before = cfg.Collect(ctx)
	}
	if err := writeFrame(conn, frame.Hello, cfg.Sender, nil); err != nil {
		return Report{}, fmt.Errorf("probe client: %w", err)
	}
	if _, err := await(frame.HelloAck, 3*time.Second); err != nil {
		return Report{}, fmt.Errorf("probe client: no answer from a probe server at %s: %w", conn.RemoteAddr(), err)
	}
	buf := make([]byte, cfg.Batch*cfg.Size)
	slot := func(i int) []byte { return buf[i*cfg.Size : (i+1)*cfg.Size] }
	payload := make([]byte, cfg.Size-frame.HeaderLen)
	for i := range cfg.Batch {
		if _, err := frame.Encode(slot(i), &frame.Header{Type: frame.Data, Sender: cfg.Sender}, payload); err != nil {
			return Report{}, err
		}
	}
	st, err := pace(ctx, cfg, slot, func(n int, _ *SendStats) error {
		if _, err := conn.Write(buf[:n*cfg.Size]); err != nil {
			return fmt.Errorf("probe client: send: %w", err)
		}
		return nil
	})
	if err != nil {
		return Report{}, err
	}
	fin := frame.Append(nil, &frame.Header{Type: frame.Fin, Sender: cfg.Sender, Seq: st.Sent, Flags: 1}, nil)
	if _, err := conn.Write(fin); err != nil {
		return Report{}, fmt.Errorf("probe client: send fin: %w", err)
	}
	p, err := await(frame.Report, cfg.ReportTimeout)
	if err != nil {
		return Report{}, fmt.Errorf("probe client: no report from %s after the run: %w", conn.RemoteAddr(), err)
	}
	rep, err := decodeReport(p)
	if err != nil {
		return Report{}, fmt.Errorf("probe client: bad report from %s: %w", conn.RemoteAddr(), err)
	}
	rep.Send = &st
	// TCP recovers what it loses: the sender's counters are all the
	// evidence there is (no tracer, no hops).
	if cfg.Collect != nil && before != nil {
		rep.Attribution = AttributeSender(rep.Attribution, counters.Delta(before, cfg.Collect(context.WithoutCancel(ctx))), TrafficOf(rep.Proto, conn.RemoteAddr()))
	}
	return rep, nil
}
