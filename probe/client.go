package probe

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/netdrop/netdrop/counters"
	"github.com/netdrop/netdrop/frame"
)

// ClientConfig says what a sender sends.
type ClientConfig struct {
	// Rate in frames per second; 0 means as fast as the host allows
	// (--rate max).
	Rate float64
	// Size is the UDP payload of each datagram, frame header included
	// (as iperf3 -l counts it); at least frame.HeaderLen.
	Size int
	// Duration and Count bound the run; the first reached ends it. At
	// least one must be set.
	Duration time.Duration
	Count    uint64
	// Batch is how many datagrams one sendmmsg carries (default 64, or
	// 512 with GSO).
	Batch int
	// GSO sends up to 64 datagrams per sendmmsg entry with UDP_SEGMENT
	// (Linux 4.18): the stack is traversed once per 64 frames instead of once
	// per frame. The datagrams on the wire are the same.
	GSO bool
	// SndBuf sets the socket send buffer (0: leave).
	SndBuf int
	// Interval and OnInterval report the sender's progress.
	Interval   time.Duration
	OnInterval func(SendStats)
	// ReportTimeout is how long to wait for the receiver's report after the
	// last frame (default 5 s).
	ReportTimeout time.Duration
	// Sender is the run's sender id; random when 0.
	Sender uint32
	// Collect, when set, reads the sending host's counters before and after
	// the run so that loss the receiver cannot explain can be attributed to
	// the sender's transmit path (AttributeSender). Leave it nil when both
	// ends share a host: the receiver already read the same counters.
	Collect func(context.Context) *counters.Snapshot
	// Tracer, when set, is a drop tracer started in the sender's namespace
	// (TraceOptions): the frames of the run's own flow the sending host
	// freed are counted at their stage and reason, exactly, instead of
	// inferred from Collect's counters. TraceUnavailable says why there is
	// none (no privileges, no BPF), for the report.
	Tracer           Tracer
	TraceUnavailable string
	// Via are the hosts in between (their netdrop exporters), read before
	// and after the run: what neither end explains is given to the hop
	// and stage whose drops moved.
	Via []Hop
	// Host identifies the sender's namespace (HostOf). When the receiver's
	// report names the same one, the sender adds nothing: the receiver
	// already counted that namespace's drops.
	Host *HostID
}

func (c *ClientConfig) defaults() error {
	if c.Size == 0 {
		c.Size = 64
	}
	if c.Size < frame.HeaderLen || c.Size > maxDatagram-28 {
		return fmt.Errorf("size %d out of range: a datagram carries the %d-byte frame header and at most %d bytes", c.Size, frame.HeaderLen, maxDatagram-28)
	}
	if c.Rate < 0 {
		return fmt.Errorf("rate %v must be positive or max", c.Rate)
	}
	if c.Duration <= 0 && c.Count == 0 {
		return errors.New("a run needs a duration or a count")
	}
	if c.Batch <= 0 {
		c.Batch = 64
		if c.GSO {
			c.Batch = 8 * maxGSOSegments
		}
	}
	if c.Interval <= 0 {
		c.Interval = time.Second
	}
	if c.ReportTimeout <= 0 {
		c.ReportTimeout = 5 * time.Second
	}
	for c.Sender == 0 {
		c.Sender = rand.Uint32()
	}
	return nil
}

// DialUDP opens the sending socket, connected to addr, in the current
// network namespace.
func DialUDP(addr string) (*net.UDPConn, error) {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("probe client: %w", err)
	}
	c, err := net.DialUDP("udp", nil, ua)
	if err != nil {
		return nil, fmt.Errorf("probe client: %w", err)
	}
	return c, nil
}

// RunUDP runs one probe over conn: hello, data, fin, and returns the
// receiver's report with the sender's statistics added.
func RunUDP(ctx context.Context, conn *net.UDPConn, cfg ClientConfig) (Report, error) {
	if err := cfg.defaults(); err != nil {
		return Report{}, err
	}
	if cfg.SndBuf > 0 {
		if err := setSndbuf(conn, cfg.SndBuf); err != nil {
			return Report{}, fmt.Errorf("probe client: set send buffer: %w", err)
		}
	}
	flow := FlowOf(conn.LocalAddr(), conn.RemoteAddr())
	win := openClientWindow(ctx, cfg, flow)
	if _, err := exchange(ctx, conn, frame.Hello, cfg.Sender, 0, frame.HelloAck, 200*time.Millisecond, 3*time.Second); err != nil {
		return Report{}, fmt.Errorf("probe client: no answer from a probe server at %s: %w", conn.RemoteAddr(), err)
	}
	st, err := Send(ctx, conn, cfg)
	if err != nil {
		return Report{}, err
	}
	payload, err := exchange(context.WithoutCancel(ctx), conn, frame.Fin, cfg.Sender, st.Sent, frame.Report, 100*time.Millisecond, cfg.ReportTimeout)
	if err != nil {
		return Report{}, fmt.Errorf("probe client: no report from %s after the run: %w", conn.RemoteAddr(), err)
	}
	rep, err := decodeReport(payload)
	if err != nil {
		return Report{}, fmt.Errorf("probe client: bad report from %s: %w", conn.RemoteAddr(), err)
	}
	rep.Send = &st
	win.attributeRest(context.WithoutCancel(ctx), &rep, cfg, flow, TrafficOf(rep.Proto, conn.RemoteAddr()))
	return rep, nil
}

// decodeReport reads the server's report. It comes from the network, so it
// is checked against the invariants every report of a netdrop server keeps
// before the client adds to it and prints it: a report that breaks them (a
// buggy or hostile server) is an error, not numbers.
func decodeReport(p []byte) (Report, error) {
	var rep Report
	if err := json.Unmarshal(p, &rep); err != nil {
		return Report{}, err
	}
	if rep.Proto != "udp" && rep.Proto != "tcp" {
		return Report{}, fmt.Errorf("protocol %q", rep.Proto)
	}
	if rep.Lost > rep.Sent || rep.Sent-rep.Lost != rep.Received {
		return Report{}, fmt.Errorf("received %d + lost %d is not sent %d", rep.Received, rep.Lost, rep.Sent)
	}
	if rep.LossPercent < 0 || rep.LossPercent > 100 {
		return Report{}, fmt.Errorf("loss of %v%%", rep.LossPercent)
	}
	a := rep.Attribution
	if a.Lost != rep.Lost {
		return Report{}, fmt.Errorf("attribution of %d lost frames in a report of %d", a.Lost, rep.Lost)
	}
	left := a.Lost
	for _, s := range a.Stages {
		if s.Frames > left {
			return Report{}, fmt.Errorf("stages explain more than the %d lost frames", a.Lost)
		}
		left -= s.Frames
	}
	if left != a.Unaccounted {
		return Report{}, fmt.Errorf("stages and unaccounted do not add up to the %d lost frames", a.Lost)
	}
	rep.Send = nil // the client's own, added by the client
	return rep, nil
}

// exchange sends a control frame every retry until the answer of type want
// for this sender comes back, and returns its payload.
func exchange(ctx context.Context, conn *net.UDPConn, t frame.Type, sender uint32, seq uint64, want frame.Type, retry, timeout time.Duration) ([]byte, error) {
	buf := make([]byte, maxDatagram)
	deadline := time.Now().Add(timeout)
	defer conn.SetReadDeadline(time.Time{})
	// Flags carry the attempt number, so the receiver knows how many
	// earlier copies never reached it: those are socket drops of control
	// frames, not of data, and must not be attributed to data loss.
	for attempt := uint16(1); time.Now().Before(deadline); attempt = min(attempt+1, 0xffff) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		req := frame.Append(nil, &frame.Header{Type: t, Flags: attempt, Sender: sender, Seq: seq}, nil)
		if _, err := conn.Write(req); err != nil && !errors.Is(err, syscall.ECONNREFUSED) {
			return nil, err
		}
		conn.SetReadDeadline(time.Now().Add(retry))
		for {
			n, err := conn.Read(buf)
			if err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, syscall.ECONNREFUSED) {
					if errors.Is(err, syscall.ECONNREFUSED) {
						time.Sleep(retry)
					}
					break
				}
				return nil, err
			}
			h, p, err := frame.Decode(buf[:n])
			if err == nil && h.Type == want && h.Sender == sender {
				return append([]byte(nil), p...), nil
			}
		}
	}
	return nil, fmt.Errorf("timed out after %s", timeout)
}

// Send sends the data frames of one run with token-bucket pacing, batch by
// batch with sendmmsg(2), and returns what it sent. Sequence numbers start at
// zero. Frames are encoded once per slot; each send only stamps the sequence
// number and times and recomputes the CRC.
func Send(ctx context.Context, conn *net.UDPConn, cfg ClientConfig) (SendStats, error) {
	if err := cfg.defaults(); err != nil {
		return SendStats{}, err
	}
	bsz := cfg.Batch
	segs := 1
	if cfg.GSO {
		segs = min(maxGSOSegments, bsz)
	}
	msgs := (bsz + segs - 1) / segs
	b := newBatch(msgs, segs*cfg.Size, false)
	if cfg.GSO {
		b.setGSO(cfg.Size)
	}
	// slot returns frame i of the batch: segment i%segs of message i/segs.
	slot := func(i int) []byte {
		o := (i % segs) * cfg.Size
		return b.bufs[i/segs][o : o+cfg.Size]
	}
	payload := make([]byte, cfg.Size-frame.HeaderLen)
	for i := range bsz {
		if _, err := frame.Encode(slot(i), &frame.Header{Type: frame.Data, Sender: cfg.Sender}, payload); err != nil {
			return SendStats{}, err
		}
	}
	mc, err := newMmsgConn(conn, b)
	if err != nil {
		return SendStats{}, err
	}
	flush := func(n int, st *SendStats) error {
		nm := (n + segs - 1) / segs
		for m := range nm {
			b.setSendLen(m, min(segs, n-m*segs)*cfg.Size)
		}
		consecutiveErrs := 0
		for off := 0; off < nm; {
			k, err := mc.send(off, nm-off)
			if err != nil {
				// A refused port (ICMP from an earlier datagram) or a full
				// device queue: the datagram was not sent; try it again, so
				// sequence numbers only ever count frames that left.
				st.SendErrors++
				consecutiveErrs++
				if consecutiveErrs > 1000 {
					return fmt.Errorf("probe client: send: %w", err)
				}
				if errors.Is(err, syscall.ENOBUFS) {
					time.Sleep(100 * time.Microsecond)
				}
				continue
			}
			consecutiveErrs = 0
			off += k
		}
		return nil
	}
	return pace(ctx, cfg, slot, flush)
}

// pace runs the token bucket: it stamps up to cfg.Batch frames in their
// slots and hands them to flush, until the duration or count is reached or
// ctx ends.
func pace(ctx context.Context, cfg ClientConfig, slot func(int) []byte, flush func(n int, st *SendStats) error) (SendStats, error) {
	bsz := cfg.Batch
	var st SendStats
	start := time.Now()
	end := start.Add(cfg.Duration)
	if cfg.Duration <= 0 {
		end = start.Add(100 * 365 * 24 * time.Hour)
	}
	limit := cfg.Count
	if limit == 0 {
		limit = ^uint64(0)
	}
	// The bucket holds one batch or 5 ms of frames, whichever is more: a
	// sender whose sleep overshot (timers on a busy host wake late) catches
	// up, but never with a burst large enough to cause the drops being
	// measured. Between batches the sender sleeps until 200 µs worth of
	// frames (at least one, at most a batch) are due, so a fast rate sends
	// full batches and a slow one sends frame by frame.
	burst := max(float64(bsz), cfg.Rate*0.005)
	want := min(max(cfg.Rate*200e-6, 1), float64(bsz))
	tokens := float64(bsz)
	last := start
	nextIvl := start.Add(cfg.Interval)
	var ivlStart SendStats
	ivlAt := start
	done := ctx.Done()
	var seq uint64
	for seq < limit {
		select {
		case <-done:
			return finishSend(st, start), nil
		default:
		}
		now := time.Now()
		if !now.Before(end) {
			break
		}
		n := bsz
		if cfg.Rate > 0 {
			tokens = min(burst, tokens+now.Sub(last).Seconds()*cfg.Rate)
			last = now
			if tokens < want {
				time.Sleep(time.Duration((want - tokens) / cfg.Rate * float64(time.Second)))
				continue
			}
			n = min(n, int(tokens))
		}
		n = int(min(uint64(n), limit-seq))
		wall, mono := now.UnixNano(), monoNs(now)
		for i := range n {
			frame.Stamp(slot(i), seq+uint64(i), wall, mono)
		}
		if err := flush(n, &st); err != nil {
			return finishSend(st, start), err
		}
		st.Batches++
		seq += uint64(n)
		st.Sent = seq
		if cfg.Rate > 0 {
			tokens -= float64(n)
		}
		if cfg.OnInterval != nil && !now.Before(nextIvl) {
			iv := SendStats{Sent: st.Sent - ivlStart.Sent, Batches: st.Batches - ivlStart.Batches, SendErrors: st.SendErrors - ivlStart.SendErrors, Elapsed: now.Sub(start)}
			iv.Rate = float64(iv.Sent) / now.Sub(ivlAt).Seconds()
			cfg.OnInterval(iv)
			ivlStart, ivlAt = st, now
			nextIvl = nextIvl.Add(cfg.Interval)
		}
	}
	return finishSend(st, start), nil
}

func finishSend(st SendStats, start time.Time) SendStats {
	st.Elapsed = time.Since(start)
	if s := st.Elapsed.Seconds(); s > 0 {
		st.Rate = float64(st.Sent) / s
	}
	return st
}
