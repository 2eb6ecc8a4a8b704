//go:build linux

package sockets

// Fake-connection tests of Dump: an nltest connection stands in for the
// kernel, so the request bytes, the decoding of replies recorded from a
// real kernel and the errno mapping are checked without root.

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/mdlayher/netlink"
	"github.com/mdlayher/netlink/nltest"
	"golang.org/x/sys/unix"
)

// inetDiagSkmeminfo is INET_DIAG_SKMEMINFO (linux/inet_diag.h); idiag_ext
// asks for attribute n with bit n-1.
const inetDiagSkmeminfo = 7

// ssRequestBody is the inet_diag_req_v2 ss sent for `ss -tan` (family
// fam: the first request is AF_INET, the second AF_INET6), with idiag_ext
// asking for SKMEMINFO only, as Dump does.
func ssRequestBody(t *testing.T, fam uint8) []byte {
	t.Helper()
	reqs := straceRequests(t, filepath.Join("testdata", "ss-tan-request.strace"))
	i := 0
	if fam == unix.AF_INET6 {
		i = 1
	}
	var m netlink.Message
	if err := m.UnmarshalBinary(reqs[i]); err != nil {
		t.Fatal(err)
	}
	if m.Data[0] != fam {
		t.Fatalf("ss request %d is for family %d, want %d", i, m.Data[0], fam)
	}
	m.Data[2] = 1 << (inetDiagSkmeminfo - 1)
	return m.Data
}

// recordedReplies is the reply the kernel sent to a dump of d, with its
// sequence numbers changed to req's.
func recordedReplies(t *testing.T, name string, req netlink.Message) []netlink.Message {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "scenario-"+name+".nl"))
	if err != nil {
		t.Fatal(err)
	}
	msgs := splitMessages(t, raw)
	if len(msgs) == 0 || msgs[len(msgs)-1].Header.Type != netlink.Done {
		// The recorder kept the sockets only; the kernel ends a dump
		// with NLMSG_DONE and status 0.
		msgs = append(msgs, netlink.Message{
			Header: netlink.Header{Length: unix.NLMSG_HDRLEN + 4, Type: netlink.Done, Flags: netlink.Multi},
			Data:   make([]byte, 4),
		})
	}
	for i := range msgs {
		msgs[i].Header.Sequence = req.Header.Sequence
		msgs[i].Header.PID = req.Header.PID
	}
	return msgs
}

// kernelError is the NLMSG_ERROR the kernel answers a refused request
// with (netlink_ack): flags 0, struct nlmsgerr holding -errno and the
// request message itself. nltest.Error copies the request's flags, and
// NLM_F_DUMP shares its bit with NLM_F_ACK_TLVS, which would make the
// library look for extended-ack attributes the kernel did not send.
func kernelError(t *testing.T, errno unix.Errno, req netlink.Message) []netlink.Message {
	t.Helper()
	b, err := req.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	data := binary.NativeEndian.AppendUint32(nil, uint32(-int32(errno)))
	data = append(data, b...)
	return []netlink.Message{{
		Header: netlink.Header{
			Length:   uint32(unix.NLMSG_HDRLEN + len(data)),
			Type:     netlink.Error,
			Sequence: req.Header.Sequence,
			PID:      req.Header.PID,
		},
		Data: data,
	}}
}

// fakeDiag answers each request with the recorded reply of the dump it
// asks for, after checking the request against ss's. It answers
// TCPDIAG_GETSOCK (DumpTCP) with the TCP sockets of both families, as the
// kernel does.
func fakeDiag(t *testing.T) *Conn {
	return &Conn{c: nltest.Dial(fakeKernel(t, true))}
}

// fakeKernel is fakeDiag's kernel; without compat it refuses
// TCPDIAG_GETSOCK with EINVAL, as a kernel without the old request would.
func fakeKernel(t *testing.T, compat bool) nltest.Func {
	return func(reqs []netlink.Message) ([]netlink.Message, error) {
		if len(reqs) != 1 {
			// nltest asks with no request when a receive finds
			// nothing queued: the dump read past its end.
			t.Errorf("%d messages in one request", len(reqs))
			return nil, io.EOF
		}
		req := reqs[0]
		if req.Header.Flags != netlink.Request|netlink.Dump {
			t.Errorf("request header %+v, want request|dump", req.Header)
		}
		if req.Header.Type == tcpDiagGetSock {
			if !compat {
				return kernelError(t, unix.EINVAL, req), nil
			}
			want := make([]byte, reqV1Len)
			want[3] = 1 << (inetDiagSkmeminfo - 1)
			binary.NativeEndian.PutUint32(want[52:], uint32(AllStates))
			if diff := cmp.Diff(want, req.Data); diff != "" {
				t.Errorf("inet_diag_req body (-want +got):\n%s", diff)
			}
			// IPv4's sockets, then IPv6's and the one NLMSG_DONE, each
			// of the request's type (the kernel's hash order mixes
			// them; the order is not part of the contract).
			v4 := recordedReplies(t, "tcp4", req)
			msgs := append(v4[:len(v4)-1:len(v4)-1], recordedReplies(t, "tcp6", req)...)
			for i := range msgs {
				if msgs[i].Header.Type != netlink.Done {
					msgs[i].Header.Type = tcpDiagGetSock
				}
			}
			return msgs, nil
		}
		if req.Header.Type != sockDiagByFamily {
			t.Errorf("request type %d, want SOCK_DIAG_BY_FAMILY or TCPDIAG_GETSOCK", req.Header.Type)
		}
		fam, proto := req.Data[0], req.Data[1]
		want := ssRequestBody(t, fam)
		want[1] = proto
		if diff := cmp.Diff(want, req.Data); diff != "" {
			t.Errorf("request body (-ss's +got):\n%s", diff)
		}
		for _, d := range dumpTargets {
			if d.family == fam && d.proto == proto {
				return recordedReplies(t, d.name, req), nil
			}
		}
		t.Errorf("request for family %d protocol %d: no recording", fam, proto)
		return kernelError(t, unix.EINVAL, req), nil
	}
}

// TestDumpTCPFake checks that DumpTCP yields the TCP sockets of both
// families, as ss lists them, whether the kernel answers the old
// TCPDIAG_GETSOCK request (one walk) or refuses it (one dump per family).
func TestDumpTCPFake(t *testing.T) {
	var want []string
	for _, name := range []string{"tcp4", "tcp6"} {
		ssText, err := os.ReadFile(filepath.Join("testdata", "scenario-"+name+".ss"))
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, ssRecords(t, string(ssText))...)
	}
	slices.Sort(want)
	for _, tt := range []struct {
		name   string
		compat bool
	}{{"one walk", true}, {"refused, per family", false}} {
		t.Run(tt.name, func(t *testing.T) {
			c := &Conn{c: nltest.Dial(fakeKernel(t, tt.compat))}
			defer c.Close()
			var got []string
			err := c.DumpTCP(context.Background(), AllStates, func(s *Socket) error {
				if s.Protocol != unix.IPPROTO_TCP {
					t.Errorf("socket of protocol %d in a TCP dump", s.Protocol)
				}
				got = append(got, ssLine(*s))
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			slices.Sort(got)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("sockets (-ss +DumpTCP):\n%s", diff)
			}
			// The connection stays usable.
			n := 0
			if err := c.Dump(context.Background(), unix.AF_INET, unix.IPPROTO_UDP, AllStates, func(*Socket) error { n++; return nil }); err != nil || n == 0 {
				t.Errorf("next dump: err %v, %d sockets", err, n)
			}
		})
	}
}

func TestDumpFake(t *testing.T) {
	c := fakeDiag(t)
	defer c.Close()
	for _, d := range dumpTargets {
		t.Run(d.name, func(t *testing.T) {
			var got []string
			err := c.Dump(context.Background(), d.family, d.proto, AllStates, func(s *Socket) error {
				if s.Family != d.family || s.Protocol != d.proto {
					t.Errorf("socket of family %d protocol %d in a dump of %d/%d", s.Family, s.Protocol, d.family, d.proto)
				}
				got = append(got, ssLine(*s))
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			ssText, err := os.ReadFile(filepath.Join("testdata", "scenario-"+d.name+".ss"))
			if err != nil {
				t.Fatal(err)
			}
			want := ssRecords(t, string(ssText))
			slices.Sort(got)
			slices.Sort(want)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("sockets (-ss +Dump):\n%s", diff)
			}
		})
	}
}

// TestDumpFakeStop checks that a callback's error ends the dump with that
// error, and that the rest of the reply is drained so the next dump on the
// connection reads its own reply.
func TestDumpFakeStop(t *testing.T) {
	c := fakeDiag(t)
	defer c.Close()
	stop := errors.New("enough")
	n := 0
	err := c.Dump(context.Background(), unix.AF_INET, unix.IPPROTO_TCP, AllStates, func(*Socket) error {
		n++
		return stop
	})
	if !errors.Is(err, stop) || n != 1 {
		t.Errorf("stopped dump: err %v after %d sockets, want %v after 1", err, n, stop)
	}
	n = 0
	err = c.Dump(context.Background(), unix.AF_INET, unix.IPPROTO_UDP, AllStates, func(s *Socket) error {
		if s.Protocol != unix.IPPROTO_UDP {
			t.Errorf("the next dump got a socket of protocol %d", s.Protocol)
		}
		n++
		return nil
	})
	if err != nil || n == 0 {
		t.Errorf("next dump: err %v, %d sockets", err, n)
	}
}

// TestDumpFakeErrno checks the errors a refused dump becomes: EPERM and
// EACCES are os.ErrPermission; ENOENT (no tcp_diag/udp_diag handler),
// EOPNOTSUPP and EPROTONOSUPPORT are ErrNotSupported, which Summarize
// turns into an unavailable line for UDP; the errno stays in the chain.
func TestDumpFakeErrno(t *testing.T) {
	tests := []struct {
		errno unix.Errno
		is    error
	}{
		{unix.EPERM, os.ErrPermission},
		{unix.EACCES, os.ErrPermission},
		{unix.ENOENT, ErrNotSupported},
		{unix.EOPNOTSUPP, ErrNotSupported},
		{unix.EPROTONOSUPPORT, ErrNotSupported},
		{unix.EINVAL, nil},
	}
	for _, tt := range tests {
		t.Run(unix.ErrnoName(tt.errno), func(t *testing.T) {
			c := &Conn{c: nltest.Dial(func(reqs []netlink.Message) ([]netlink.Message, error) {
				return kernelError(t, tt.errno, reqs[0]), nil
			})}
			defer c.Close()
			called := false
			err := c.Dump(context.Background(), unix.AF_INET, unix.IPPROTO_UDP, AllStates, func(*Socket) error {
				called = true
				return nil
			})
			if err == nil || called {
				t.Fatalf("refused dump: err %v, callback called %v", err, called)
			}
			if !errors.Is(err, tt.errno) {
				t.Errorf("err %v: errno %s not in the chain", err, unix.ErrnoName(tt.errno))
			}
			for _, sentinel := range []error{os.ErrPermission, ErrNotSupported} {
				if got, want := errors.Is(err, sentinel), sentinel == tt.is; got != want {
					t.Errorf("err %v: errors.Is(%v) = %v, want %v", err, sentinel, got, want)
				}
			}
		})
	}
}

// TestParseReplies feeds the recorded replies, as the datagrams a real
// socket receives, to the parser the socket path uses: every socket message
// in order, the end at NLMSG_DONE, and a refused dump's errno mapped like the
// library path's.
func TestParseReplies(t *testing.T) {
	req := netlink.Message{Header: netlink.Header{Length: unix.NLMSG_HDRLEN, Type: sockDiagByFamily, Sequence: 7, PID: 42}}
	for _, d := range dumpTargets {
		t.Run(d.name, func(t *testing.T) {
			msgs := recordedReplies(t, d.name, req)
			var datagram []byte
			for _, m := range msgs {
				b, err := m.MarshalBinary()
				if err != nil {
					t.Fatal(err)
				}
				datagram = append(datagram, b...)
			}
			var got []netlink.Message
			done, err := parseReplies(datagram, func(m netlink.Message) {
				m.Data = slices.Clone(m.Data)
				got = append(got, m)
			})
			if err != nil || !done {
				t.Fatalf("parse: done %v, err %v; want the end without error", done, err)
			}
			want := msgs[:len(msgs)-1] // all but NLMSG_DONE
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("messages (-recorded +parsed):\n%s", diff)
			}
		})
	}
	t.Run("refused", func(t *testing.T) {
		b, err := kernelError(t, unix.ENOENT, req)[0].MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		done, err := parseReplies(b, func(netlink.Message) { t.Error("an error message handed on as a socket") })
		if !done || !errors.Is(mapErrno(err), ErrNotSupported) || !errors.Is(err, unix.ENOENT) {
			t.Errorf("refused dump: done %v, err %v; want the end with ENOENT, mapped to ErrNotSupported", done, err)
		}
	})
}
