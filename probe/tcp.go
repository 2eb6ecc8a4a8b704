package probe

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/netdrop/netdrop/counters"
	"github.com/netdrop/netdrop/frame"
)

// Over TCP nothing is lost or reordered short of a broken connection; what a
// TCP probe measures is latency (which includes the time frames wait in
// socket buffers under back-pressure), frames damaged by a middlebox or a
// buggy stack (the CRC catches them and the stream scanner resynchronises),
// and the connection's own drops, which TCP repairs with retransmissions.

// TCPServer receives probe runs over TCP, one connection at a time.
type TCPServer struct {
	l   *net.TCPListener
	cfg ServerConfig
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

// Serve accepts connections until ctx ends (or after the first finished run
// with Once).
func (s *TCPServer) Serve(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { s.l.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	for {
		c, err := s.l.AcceptTCP()
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return fmt.Errorf("probe server: accept: %w", err)
		}
		rep, done := s.serveConn(ctx, c)
		c.Close()
		if done && s.cfg.OnReport != nil {
			s.cfg.OnReport(rep)
		}
		if done && s.cfg.Once {
			return nil
		}
	}
}

func (s *TCPServer) serveConn(ctx context.Context, c *net.TCPConn) (Report, bool) {
	cfg := &s.cfg
	if cfg.RcvBuf > 0 {
		c.SetReadBuffer(cfg.RcvBuf)
	}
	stop := context.AfterFunc(ctx, func() { c.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	sc := frame.NewScanner(c, 256<<10)
	var r *run
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
				writeFrame(c, frame.HelloAck, h.Sender, nil)
				continue
			case frame.Data:
				r = s.startRun(ctx, c, now, h.Sender)
			default:
				continue
			}
		}
		r.acc.Datagrams++
		r.acc.Bytes += uint64(h.Len())
		if r.acc.Frame(h, now.UnixNano(), monoNs(now)) {
			switch {
			case h.Type == frame.Hello && h.Sender == r.acc.Sender:
				writeFrame(c, frame.HelloAck, h.Sender, nil)
			case h.Type == frame.Fin && h.Sender == r.acc.Sender:
				// TCP delivers in order: when the Fin is read, every frame
				// sent before it has been read too; no reorder window.
				r.finSent, r.finAt = h.Seq, now
				rep := s.finish(ctx, c, r)
				payload, _ := json.Marshal(rep)
				writeFrame(c, frame.Report, r.acc.Sender, payload)
				return rep, true
			}
			continue
		}
		frames++
		if cfg.ReaderDelay > 0 && frames%64 == 0 {
			time.Sleep(cfg.ReaderDelay)
		}
		if now.Sub(lastTick) >= 50*time.Millisecond {
			tick(cfg, r, now)
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
	r.before = s.cfg.Collect(ctx)
	if d, err := socketDrops(c); err == nil {
		r.drops0 = d
	}
	return r
}

func (s *TCPServer) finish(ctx context.Context, c *net.TCPConn, r *run) Report {
	r.acc.Tracker.Finish(r.finSent)
	after := s.cfg.Collect(ctx)
	var drops uint64
	if d, err := socketDrops(c); err == nil && d >= r.drops0 {
		drops = d - r.drops0
	}
	return buildReport(r.traffic, r.acc, r.finSent, drops, 0, 1, r.start, r.finAt, r.before, after)
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
	var rep Report
	if err := json.Unmarshal(p, &rep); err != nil {
		return Report{}, fmt.Errorf("probe client: bad report from %s: %w", conn.RemoteAddr(), err)
	}
	rep.Send = &st
	senderShare(context.WithoutCancel(ctx), &rep, cfg, before, conn.RemoteAddr())
	return rep, nil
}
