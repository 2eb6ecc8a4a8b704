package probe

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/netdrop/netdrop/counters"
	"github.com/netdrop/netdrop/frame"
)

// ServerConfig says how a receiver behaves.
type ServerConfig struct {
	// Clock is which send time to compare with (ClockNone: jitter only).
	Clock Clock
	// Window is the duplicate and reorder bitmap size in frames
	// (DefaultWindow when 0).
	Window int
	// ReorderWindow is how long a missing frame stays "in flight" before it
	// is final as lost (default 200 ms), and how long the receiver waits
	// after the sender's Fin before its final report.
	ReorderWindow time.Duration
	// ReaderDelay sleeps after every batch read: a deliberately slow reader.
	ReaderDelay time.Duration
	// Batch is how many datagrams one recvmmsg may return (default 64).
	Batch int
	// RcvBuf sets the socket receive buffer in bytes (0: leave the default).
	RcvBuf int
	// GRO enables UDP_GRO: coalesced datagrams arrive as one buffer, which
	// cuts the receiver's per-frame cost. Off by default because a queue
	// overflow then drops a whole coalesced buffer while the kernel's drop
	// counter may count it once, so per-frame drop attribution is exact
	// only without it.
	GRO bool
	// Interval between progress reports (default 1 s); OnInterval gets them.
	Interval   time.Duration
	OnInterval func(Interval)
	// OnReport gets each finished run's report.
	OnReport func(Report)
	// Once makes Serve return after the first finished run (and a short
	// linger that resends the report to a client that did not get it).
	Once bool
	// MaxConns bounds the TCP connections served at once (default 64). A
	// connection beyond it is closed at once and counted in Stray.Refused:
	// peers that never finish cannot pile up, and the bound keeps what they
	// cost (a goroutine and a read buffer each) small.
	MaxConns int
	// HelloTimeout is how long a new TCP connection may take to start a run
	// (default 3 s, what a client waits for its HelloAck); IdleTimeout is
	// how long a connection in a run may stay silent (default 15 s). A peer
	// past either is closed and counted in Stray.TimedOut. TCP connections
	// are served concurrently, so a stalled or garbage peer never holds up
	// another client while it waits for its deadline.
	HelloTimeout time.Duration
	IdleTimeout  time.Duration
	// OnStray gets the totals of traffic outside any run (Stray) when they
	// changed, at most once per StrayEvery (default 10 s), and once more
	// when Serve returns: a server flooded with garbage says so without
	// writing a line per datagram.
	StrayEvery time.Duration
	OnStray    func(Stray)
	// The callbacks (OnInterval, OnReport, OnStray) are called by one
	// goroutine at a time, also when a TCP server serves several runs.

	// Collect reads the kernel counters at the start and end of a run, in
	// the receiver's namespace. Runs of concurrent TCP connections call it
	// one at a time. Nil reads the current namespace with
	// counters.CollectIn; tests and `--netns` read another.
	Collect func(context.Context) *counters.Snapshot
	// Tracer, when set, is a drop tracer started in the receiver's
	// namespace (TraceOptions with the listening port): each UDP run
	// counts the frames of its own flow the host freed, at their stage
	// and reason, exactly. TraceUnavailable says why there is none, for
	// the report. Host identifies the namespace (HostOf).
	Tracer           Tracer
	TraceUnavailable string
	Host             *HostID
}

func (c *ServerConfig) defaults() {
	if c.Window <= 0 {
		c.Window = DefaultWindow
	}
	if c.ReorderWindow <= 0 {
		c.ReorderWindow = 200 * time.Millisecond
	}
	if c.Batch <= 0 {
		c.Batch = 64
	}
	if c.Interval <= 0 {
		c.Interval = time.Second
	}
	if c.MaxConns <= 0 {
		c.MaxConns = 64
	}
	if c.HelloTimeout <= 0 {
		c.HelloTimeout = 3 * time.Second
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 15 * time.Second
	}
	if c.StrayEvery <= 0 {
		c.StrayEvery = 10 * time.Second
	}
	if c.Collect == nil {
		c.Collect = func(ctx context.Context) *counters.Snapshot {
			s, err := counters.CollectIn(ctx, counters.CurrentNetns(), counters.Options{})
			if err != nil {
				return counters.Unreadable(counters.CurrentNetns(), err)
			}
			return s
		}
	}
}

// UDPServer receives probe runs on one UDP socket, one run at a time.
type UDPServer struct {
	conn  *net.UDPConn
	cfg   ServerConfig
	stray strayCounter
	// idleDrops is the socket's drop counter when last read outside a
	// run (valid when haveIdleDrops): drops between runs are stray too.
	idleDrops     uint64
	haveIdleDrops bool
}

// attemptsBefore is how many earlier copies of a control frame the sender
// sent: it numbers its attempts from 1 in the flags.
func attemptsBefore(h frame.Header) uint64 {
	if h.Flags > 1 {
		return uint64(h.Flags - 1)
	}
	return 0
}

// idleTakeover is how long a run must be silent before a Hello of another
// sender may replace it.
const idleTakeover = 2 * time.Second

// onceLinger is how long a server with Once keeps answering Fins after its
// report, in case the report datagram was lost.
const onceLinger = 3 * time.Second

// maxDatagram is the receive buffer per datagram: the largest UDP payload,
// so no datagram is ever truncated by netdrop itself.
const maxDatagram = 65535

// ListenUDP opens the receiving socket in the current network namespace.
func ListenUDP(addr string, cfg ServerConfig) (*UDPServer, error) {
	cfg.defaults()
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("probe server: %w", err)
	}
	c, err := net.ListenUDP("udp", ua)
	if err != nil {
		return nil, fmt.Errorf("probe server: %w", err)
	}
	if err := enableRxqOvfl(c); err != nil {
		c.Close()
		return nil, fmt.Errorf("probe server: enable SO_RXQ_OVFL: %w", err)
	}
	if cfg.GRO {
		if err := enableGRO(c); err != nil {
			c.Close()
			return nil, fmt.Errorf("probe server: enable UDP_GRO (needs Linux 5.0): %w", err)
		}
	}
	if cfg.RcvBuf > 0 {
		if err := setRcvbuf(c, cfg.RcvBuf); err != nil {
			c.Close()
			return nil, fmt.Errorf("probe server: set receive buffer: %w", err)
		}
	}
	return &UDPServer{conn: c, cfg: cfg}, nil
}

// SetTracer sets ServerConfig.Tracer and TraceUnavailable once the server
// listens, for a tracer filtered to the port it got; call it before Serve.
func (s *UDPServer) SetTracer(t Tracer, unavailable string) {
	s.cfg.Tracer, s.cfg.TraceUnavailable = t, unavailable
}

// Addr is the address the server listens on.
func (s *UDPServer) Addr() *net.UDPAddr { return s.conn.LocalAddr().(*net.UDPAddr) }

// Close closes the socket.
func (s *UDPServer) Close() error { return s.conn.Close() }

// Stray returns the totals of datagrams outside any run since the server
// started. It is safe to call while Serve runs.
func (s *UDPServer) Stray() Stray { return s.stray.get() }

// strayDatagram counts one datagram (or GRO segment) of n bytes that
// arrived outside a run and started none.
func (s *UDPServer) strayDatagram(n int, from *net.UDPAddr) {
	s.stray.add(func(t *Stray) { t.Datagrams++; t.Bytes += uint64(n) }, nilIfNone(from))
}

// nilIfNone keeps a nil *net.UDPAddr a nil net.Addr.
func nilIfNone(a *net.UDPAddr) net.Addr {
	if a == nil {
		return nil
	}
	return a
}

// countIdleDrops adds the socket's drops since the last reading outside a
// run to Stray.SocketDrops, and starts a new reading.
func (s *UDPServer) countIdleDrops() {
	d, err := socketDrops(s.conn)
	if err != nil {
		return
	}
	if s.haveIdleDrops && d > s.idleDrops {
		s.stray.add(func(t *Stray) { t.SocketDrops += d - s.idleDrops }, nil)
	}
	s.idleDrops, s.haveIdleDrops = d, true
}

func (s *UDPServer) emitStray(now time.Time, force bool) {
	if s.cfg.OnStray == nil {
		return
	}
	if st, ok := s.stray.due(now, s.cfg.StrayEvery, force); ok {
		s.cfg.OnStray(st)
	}
}

// run is the state of one probe run on the server.
type run struct {
	acc         *Account
	start       time.Time
	before      *counters.Snapshot
	drops0      uint64
	ovfl0       uint32
	ovflLast    uint32
	haveOvfl    bool
	marks       []mark
	finSent     uint64
	finAt       time.Time
	finAddr     *net.UDPAddr
	hasFin      bool
	finMissed   uint64 // Fin attempts sent before the first that arrived
	helloMissed uint64 // likewise for the Hello that started the run
	lastData    time.Time
	hello       bool // the run began with a Hello handshake
	traffic     Traffic
	flow        FlowKey
	trace       *traceWindow
	report      []byte // encoded Report frame once finished
	ivlAt       time.Time
	ivlOvfl     uint32
	prevCount   TrackerCounts
	prevCorr    uint64
	prevInv     uint64
}

// mark remembers NextExp at a moment, so that a reorder window later every
// frame below it is final.
type mark struct {
	at   time.Time
	next uint64
}

// Serve receives until ctx ends (or after the first run with Once).
func (s *UDPServer) Serve(ctx context.Context) error {
	cfg := s.cfg
	b := newBatch(cfg.Batch, maxDatagram, true)
	mc, err := newMmsgConn(s.conn, b)
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { s.conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	var r *run
	s.countIdleDrops()
	defer func() {
		if r == nil || r.report != nil {
			s.countIdleDrops()
		}
		s.emitStray(time.Now(), true)
	}()

	var lingerUntil time.Time
	const tickEvery = 50 * time.Millisecond
	nextTick := time.Now().Add(tickEvery)
	s.conn.SetReadDeadline(nextTick)
	for {
		n, err := mc.recv(cfg.Batch)
		now := time.Now()
		if ctx.Err() != nil {
			return nil
		}
		if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			return fmt.Errorf("probe server: receive: %w", err)
		}
		wall, mono := now.UnixNano(), monoNs(now)
		for i := range n {
			d := b.bufs[i][:b.msgLen(i)]
			ci := parseCmsgs(b.oob(i))
			if r != nil && r.report == nil && ci.haveOvfl {
				r.ovflLast, r.haveOvfl = ci.ovfl, true
			}
			if b.truncated(i) {
				if r != nil && r.report == nil {
					r.acc.Datagrams++
					r.acc.Invalid++
				} else {
					s.strayDatagram(len(d), b.addr(i))
				}
				continue
			}
			// With UDP_GRO one buffer holds several datagrams of gsoSize
			// bytes (the last may be shorter); each is one frame.
			step := len(d)
			if ci.gsoSize > 0 && ci.gsoSize < len(d) {
				step = ci.gsoSize
			}
			from := func() *net.UDPAddr { return b.addr(i) }
			for off := 0; off < len(d) || off == 0; off += step {
				r = s.handle(ctx, r, d[off:min(off+step, len(d))], from, now, wall, mono)
				if step == 0 {
					break
				}
			}
		}
		if r != nil && r.report == nil && cfg.ReaderDelay > 0 && n > 0 {
			time.Sleep(cfg.ReaderDelay)
		}
		if now.Before(nextTick) {
			continue
		}
		nextTick = now.Add(tickEvery)
		s.conn.SetReadDeadline(nextTick)
		if r == nil || r.report != nil {
			s.countIdleDrops()
		}
		s.emitStray(now, false)
		if !lingerUntil.IsZero() && now.After(lingerUntil) {
			return nil
		}
		if r == nil || r.report != nil {
			continue
		}
		tick(&s.cfg, r, now)
		if r.hasFin && now.Sub(r.finAt) >= cfg.ReorderWindow {
			rep := s.finish(ctx, r, now)
			if cfg.OnReport != nil {
				cfg.OnReport(rep)
			}
			if cfg.Once {
				// The report datagram may be lost like any other: stay a
				// while to answer the client's repeated Fins with it.
				lingerUntil = now.Add(onceLinger)
			}
		}
	}
}

// handle accounts one datagram (one segment of a GRO buffer) from the peer
// from returns and acts on control frames; it returns the run, which a Hello
// may have replaced.
func (s *UDPServer) handle(ctx context.Context, r *run, d []byte, from func() *net.UDPAddr, now time.Time, wall, mono int64) *run {
	if r == nil || r.report != nil {
		// Between runs: only a Hello (or a Fin asking again for the last
		// report) matters; data starts a run without a Hello, for
		// applications that embed frame without the handshake. Anything
		// else is stray, counted and otherwise ignored.
		h, _, derr := frame.Decode(d)
		switch {
		case derr != nil:
			s.strayDatagram(len(d), from())
			return r
		case h.Type == frame.Hello:
			r = s.startRun(ctx, now, h.Sender, from())
			r.hello = true
			r.helloMissed = attemptsBefore(h)
			s.reply(frame.HelloAck, h.Sender, nil, from())
			return r
		case h.Type == frame.Fin && r != nil && h.Sender == r.acc.Sender:
			// Only to where the run's Fin came from: a forged Fin must not
			// turn the server into a reflector of reports (forty times the
			// Fin's size) towards a spoofed address.
			if a := from(); a != nil && r.finAddr != nil && a.AddrPort() == r.finAddr.AddrPort() {
				s.conn.WriteToUDP(r.report, a)
			} else {
				s.strayDatagram(len(d), a)
			}
			return r
		case h.Type == frame.Data && (r == nil || h.Sender != r.acc.Sender):
			r = s.startRun(ctx, now, h.Sender, from())
		default:
			s.strayDatagram(len(d), from())
			return r
		}
	}
	notOwn := r.acc.Invalid + r.acc.Corrupted + r.acc.Foreign
	h, ctl := r.acc.Datagram(d, wall, mono)
	if !ctl {
		// Only the run's own data frames keep it alive: garbage or
		// another sender's frames must not keep a real client from taking
		// over a run whose sender has gone.
		if r.acc.Invalid+r.acc.Corrupted+r.acc.Foreign == notOwn {
			r.lastData = now
		}
		return r
	}
	switch h.Type {
	case frame.Hello:
		if h.Sender != r.acc.Sender {
			// Another sender takes over only from a run that has gone
			// quiet (its client died), or from one that frames without a
			// handshake started: a stray or forged Hello must not reset a
			// run in progress, and stray data must not lock a client out.
			if r.hello && now.Sub(r.lastData) < idleTakeover {
				return r
			}
			r = s.startRun(ctx, now, h.Sender, from())
			r.hello = true
			r.helloMissed = attemptsBefore(h)
		}
		s.reply(frame.HelloAck, h.Sender, nil, from())
	case frame.Fin:
		if h.Sender == r.acc.Sender && !r.hasFin {
			r.finSent, r.finAt, r.finAddr, r.hasFin = h.Seq, now, from(), true
			r.finMissed = attemptsBefore(h)
		}
	}
	return r
}

func (s *UDPServer) startRun(ctx context.Context, now time.Time, sender uint32, from *net.UDPAddr) *run {
	// Drops up to now were outside the run; from now on they are its own.
	s.countIdleDrops()
	s.haveIdleDrops = false
	r := &run{traffic: TrafficOf("udp", from), acc: NewAccount(s.cfg.Window, s.cfg.Clock), start: now, ivlAt: now, lastData: now}
	r.flow = FlowOf(from, s.conn.LocalAddr())
	r.acc.Lock(sender)
	r.before = s.cfg.Collect(ctx)
	r.trace = openWindow(s.cfg.Tracer)
	if d, err := socketDrops(s.conn); err == nil {
		r.drops0 = d
	}
	r.ovfl0 = uint32(r.drops0)
	r.ovflLast = r.ovfl0
	r.ivlOvfl = r.ovfl0
	return r
}

func (s *UDPServer) reply(t frame.Type, sender uint32, payload []byte, to *net.UDPAddr) {
	if to == nil {
		return
	}
	buf := frame.Append(nil, &frame.Header{Type: t, Sender: sender}, payload)
	s.conn.WriteToUDP(buf, to)
}

// tick finalises frames older than the reorder window and emits the
// per-interval line when one is due.
func tick(cfg *ServerConfig, r *run, now time.Time) {
	r.marks = append(r.marks, mark{now, r.acc.Tracker.Next()})
	k := 0
	for k < len(r.marks) && now.Sub(r.marks[k].at) >= cfg.ReorderWindow {
		k++
	}
	if k > 0 {
		r.acc.Tracker.Finalize(r.marks[k-1].next)
		r.marks = append(r.marks[:0], r.marks[k:]...)
	}
	if now.Sub(r.ivlAt) < cfg.Interval {
		return
	}
	c := r.acc.Tracker.Counts
	dt := now.Sub(r.ivlAt)
	iv := Interval{
		Elapsed:     now.Sub(r.start),
		Received:    c.Received - r.prevCount.Received,
		Lost:        c.Lost - r.prevCount.Lost,
		InFlight:    r.acc.Tracker.Pending(),
		Reordered:   c.Reordered - r.prevCount.Reordered,
		Duplicates:  c.Duplicates - r.prevCount.Duplicates,
		Corrupted:   r.acc.Corrupted - r.prevCorr,
		Invalid:     r.acc.Invalid - r.prevInv,
		SocketDrops: uint64(r.ovflLast - r.ivlOvfl),
		JitterNs:    r.acc.Jitter,

		TotalReceived: c.Received,
		TotalLost:     c.Lost,
		Expected:      r.acc.Tracker.Next(),
	}
	iv.RecvRate = float64(iv.Received) / dt.Seconds()
	if h := &r.acc.IntervalLatency; h.Count() > 0 {
		iv.LatencyP50 = time.Duration(h.Quantile(0.5))
		iv.LatencyP99 = time.Duration(h.Quantile(0.99))
		iv.LatencyMax = time.Duration(h.Max())
		h.Reset()
	}
	r.prevCount, r.prevCorr, r.prevInv, r.ivlOvfl, r.ivlAt = c, r.acc.Corrupted, r.acc.Invalid, r.ovflLast, now
	if cfg.OnInterval != nil {
		cfg.OnInterval(iv)
	}
}

// finish closes the run: everything pending is final, the counters are read
// again and the loss attributed; the report is sent to the client.
func (s *UDPServer) finish(ctx context.Context, r *run, now time.Time) Report {
	acc := r.acc
	r.finSent = acc.Tracker.Finish(r.finSent)
	after := s.cfg.Collect(ctx)
	drops := uint64(r.ovflLast - r.ovfl0)
	if d, err := socketDrops(s.conn); err == nil && d >= r.drops0 {
		drops = d - r.drops0
		// Drops from now on are outside the run.
		s.idleDrops, s.haveIdleDrops = d, true
	}
	perDrop := uint64(1)
	if s.cfg.GRO {
		perDrop = maxGSOSegments
	}
	rep := buildReport(r.traffic, acc, r.finSent, drops, r.finMissed, perDrop, r.start, r.finAt, r.before, after)
	s.traceShare(&rep, r, drops, perDrop, after)
	rep.HelloMissed = r.helloMissed
	rep.Stray = forReport(s.stray.get())
	payload, _ := json.Marshal(rep)
	r.report = frame.Append(nil, &frame.Header{Type: frame.Report, Sender: acc.Sender}, payload)
	if r.finAddr != nil {
		s.conn.WriteToUDP(r.report, r.finAddr)
	}
	return rep
}

// traceShare redoes the attribution with the tracer's count of the run's
// own flow when the receiver traced, and says how the receiver was watched.
func (s *UDPServer) traceShare(rep *Report, r *run, drops, perDrop uint64, after *counters.Snapshot) {
	rep.Version = ReportVersion
	rep.Host = s.cfg.Host
	place := Place{Side: "receiver"}
	switch {
	case r.trace == nil:
		place.Note = cmpOr(s.cfg.TraceUnavailable, "not traced: the probe socket's drop counter and counters, which other traffic also moves")
	default:
		d, err := r.trace.close()
		if err != nil {
			place.Note = traceNote(err)
			break
		}
		var delta *counters.Snapshot
		if r.before != nil && after != nil {
			delta = counters.Delta(r.before, after)
		}
		dataDrops := drops - min(drops, r.finMissed)
		rep.Attribution = AttributeTraced(rep.Lost, dataDrops, perDrop, r.finMissed, d, r.flow, delta, r.traffic)
		place.Traced, place.Flow = true, true
	}
	rep.Attribution.Places = append(rep.Attribution.Places, place)
}

func buildReport(t Traffic, acc *Account, sent, drops, finMissed, framesPerDrop uint64, start, end time.Time, before, after *counters.Snapshot) Report {
	c := acc.Tracker.Counts
	proto := "tcp"
	if t.UDP {
		proto = "udp"
	}
	rep := Report{
		Proto:           proto,
		Clock:           acc.Clock.String(),
		Sender:          acc.Sender,
		Sent:            sent,
		TrackerCounts:   c,
		InFlight:        acc.Tracker.Pending(),
		LossPercent:     lossPercent(c.Lost, c.Received),
		Datagrams:       acc.Datagrams,
		Corrupted:       acc.Corrupted,
		Invalid:         acc.Invalid,
		Foreign:         acc.Foreign,
		Control:         acc.Control,
		SocketDrops:     drops,
		FinMissed:       finMissed,
		NegativeLatency: acc.NegativeLatency,
		JitterNs:        acc.Jitter,
		Duration:        end.Sub(start),
	}
	if d := rep.Duration.Seconds(); d > 0 {
		rep.RecvRate = float64(c.Received) / d
	}
	if acc.Clock != ClockNone && acc.Latency.Count() > 0 {
		l := acc.Latency.Summary()
		rep.Latency = &l
	}
	if acc.IPDV.Count() > 0 {
		l := acc.IPDV.Summary()
		rep.IPDV = &l
	}
	var delta *counters.Snapshot
	if before != nil && after != nil {
		delta = counters.Delta(before, after)
	}
	// Fin copies that never arrived were, on this host, dropped by the same
	// socket; they are not data frames, so they do not explain data loss.
	dataDrops := drops - min(drops, finMissed)
	rep.Attribution = Attribute(c.Lost, dataDrops, framesPerDrop, delta, t)
	return rep
}
