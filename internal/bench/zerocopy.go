package bench

import (
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// MSG_ZEROCOPY (kernel Documentation/networking/msg_zerocopy.rst): the
// kernel pins the user pages instead of copying them, and tells the sender
// on the socket's error queue when it is done with a range of sends. A
// completion whose ee_code has SO_EE_CODE_ZEROCOPY_COPIED set means the
// kernel had to copy after all; for a packet looped to a local socket it
// always does, so the share of copied completions is the honest figure on
// loopback.

// zcStats counts completions over one stream.
type zcStats struct {
	completions, copied atomic.Int64
}

func (z *zcStats) reset() { z.completions.Store(0); z.copied.Store(0) }

func (z *zcStats) fill(res *Result) {
	n, c := z.completions.Load(), z.copied.Load()
	res.ZCSends = n
	if n > 0 {
		res.ZCCopied = float64(c) / float64(n)
		res.Note = fmt.Sprintf("kernel copied %.0f%% of %d completions", 100*res.ZCCopied, n)
	}
}

// zcState is the per-socket count of sends and completions.
type zcState struct {
	sent, done uint32
}

func newZeroCopy() (measurer, error) {
	z := &zcStats{}
	m := &sockMeasurer{
		conn: func() (int, int, error) {
			c, s, err := tcpPair()
			if err != nil {
				return c, s, err
			}
			for _, fd := range []int{c, s} {
				if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ZEROCOPY, 1); err != nil {
					unix.Close(c)
					unix.Close(s)
					return -1, -1, fmt.Errorf("MSG_ZEROCOPY not supported here: setsockopt SO_ZEROCOPY: %w", err)
				}
			}
			return c, s, nil
		},
		zc: z,
		extra: "zerocopy: MSG_ZEROCOPY to a socket on this host (loopback or veth) is always copied by the kernel " +
			"(deferred copy, SO_EE_CODE_ZEROCOPY_COPIED in each completion), so here it only adds the cost of " +
			"pinning pages and reading completions; it saves CPU only when sending to another host, for writes above ~10 KB",
	}
	m.send = func(size int) (sender, func(), error) {
		var mu sync.Mutex
		states := map[int]*zcState{}
		state := func(fd int) *zcState {
			mu.Lock()
			defer mu.Unlock()
			st := states[fd]
			if st == nil {
				st = &zcState{}
				states[fd] = st
			}
			return st
		}
		send := func(fd int, msg []byte) error {
			st := state(fd)
			for len(msg) > 0 {
				n, err := unix.SendmsgN(fd, msg, nil, nil, unix.MSG_ZEROCOPY)
				switch err {
				case nil:
				case unix.EINTR:
					continue
				case unix.ENOBUFS:
					// Too many completions outstanding (optmem): reap some.
					if err := zcDrain(fd, st, z, st.done+(st.sent-st.done)/2+1, time.Second); err != nil {
						return err
					}
					continue
				default:
					return fmt.Errorf("sendmsg MSG_ZEROCOPY: %w", err)
				}
				st.sent++
				msg = msg[n:]
			}
			// Reap what is ready; wait only when far behind.
			var want uint32
			if st.sent-st.done > 4096 {
				want = st.sent - 2048
			}
			return zcDrain(fd, st, z, want, time.Second)
		}
		finish := func() {
			mu.Lock()
			defer mu.Unlock()
			for fd, st := range states {
				zcDrain(fd, st, z, st.sent, 200*time.Millisecond)
			}
		}
		return send, finish, nil
	}
	return m, nil
}

// zcDrain reads completions from fd's error queue until st.done reaches
// want (0: only what is ready), waiting at most wait.
func zcDrain(fd int, st *zcState, z *zcStats, want uint32, wait time.Duration) error {
	var oob [256]byte
	deadline := time.Time{}
	for {
		_, oobn, _, _, err := unix.Recvmsg(fd, nil, oob[:], unix.MSG_ERRQUEUE|unix.MSG_DONTWAIT)
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			if int32(st.done-want) >= 0 || want == 0 {
				return nil
			}
			if deadline.IsZero() {
				deadline = time.Now().Add(wait)
			} else if time.Now().After(deadline) {
				return fmt.Errorf("MSG_ZEROCOPY: %d completions outstanding after %s", st.sent-st.done, wait)
			}
			pfd := []unix.PollFd{{Fd: int32(fd)}} // POLLERR is always reported
			unix.Poll(pfd, 10)
			continue
		}
		if err != nil {
			return fmt.Errorf("recvmsg MSG_ERRQUEUE: %w", err)
		}
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil {
			return fmt.Errorf("MSG_ERRQUEUE control message: %w", err)
		}
		for _, m := range msgs {
			lo, hi, copied, ok := parseZerocopyCmsg(m)
			if !ok {
				continue
			}
			n := int64(hi - lo + 1)
			st.done += uint32(n)
			z.completions.Add(n)
			if copied {
				z.copied.Add(n)
			}
		}
	}
}

// parseZerocopyCmsg decodes a struct sock_extended_err carried in an
// IP_RECVERR / IPV6_RECVERR control message: ee_errno u32, ee_origin u8,
// ee_type u8, ee_code u8, ee_pad u8, ee_info u32, ee_data u32. For
// zerocopy completions [ee_info, ee_data] is the range of send calls done.
func parseZerocopyCmsg(m unix.SocketControlMessage) (lo, hi uint32, copied, ok bool) {
	isV4 := m.Header.Level == unix.SOL_IP && m.Header.Type == unix.IP_RECVERR
	isV6 := m.Header.Level == unix.SOL_IPV6 && m.Header.Type == unix.IPV6_RECVERR
	if (!isV4 && !isV6) || len(m.Data) < 16 {
		return 0, 0, false, false
	}
	d := m.Data
	if d[4] != unix.SO_EE_ORIGIN_ZEROCOPY {
		return 0, 0, false, false
	}
	lo = binary.NativeEndian.Uint32(d[8:])
	hi = binary.NativeEndian.Uint32(d[12:])
	return lo, hi, d[6]&unix.SO_EE_CODE_ZEROCOPY_COPIED != 0, true
}
