package counters

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/mdlayher/netlink"
	"github.com/mdlayher/netlink/nltest"
	"github.com/netdrop/netdrop/internal/inetdiag"
	"golang.org/x/sys/unix"
)

// udpDiagMsg is the reply for one socket: an inet_diag_msg and, unless
// skmem is nil, INET_DIAG_SKMEMINFO with those words.
func udpDiagMsg(k UDPSocket, skmem []uint32) []byte {
	b := make([]byte, inetdiag.MsgLen)
	if k.Local.Addr().Is4() {
		b[0] = unix.AF_INET
	} else {
		b[0] = unix.AF_INET6
	}
	b[1] = k.State
	id := b[4:]
	binary.BigEndian.PutUint16(id[0:], k.Local.Port())
	binary.BigEndian.PutUint16(id[2:], k.Remote.Port())
	src, dst := k.Local.Addr().AsSlice(), k.Remote.Addr().AsSlice()
	copy(id[4:20], src)
	copy(id[20:36], dst)
	rest := b[4+inetdiag.SockIDLen:]
	binary.NativeEndian.PutUint32(rest[4:], uint32(k.RxQueue))
	binary.NativeEndian.PutUint32(rest[8:], uint32(k.TxQueue))
	binary.NativeEndian.PutUint32(rest[12:], k.UID)
	binary.NativeEndian.PutUint32(rest[16:], uint32(k.Inode))
	if skmem != nil {
		a := make([]byte, 4+4*len(skmem))
		binary.NativeEndian.PutUint16(a[0:], uint16(len(a)))
		binary.NativeEndian.PutUint16(a[2:], inetdiag.AttrSkmeminfo)
		for i, w := range skmem {
			binary.NativeEndian.PutUint32(a[4+4*i:], w)
		}
		b = append(b, a...)
	}
	return b
}

// skmem is an SK_MEMINFO array (9 words, as kernels since 4.x send) with
// sk_drops set.
func skmem(drops uint32) []uint32 {
	w := make([]uint32, unix.SK_MEMINFO_VARS)
	w[unix.SK_MEMINFO_RMEM_ALLOC] = 768
	w[unix.SK_MEMINFO_DROPS] = drops
	return w
}

// TestUDPDiagFake checks the two dump requests (IPv4, then IPv6: UDP,
// every state, INET_DIAG_SKMEMINFO) and that the replies read as the
// /proc lines of the same sockets would.
func TestUDPDiagFake(t *testing.T) {
	want := []UDPSocket{
		{Proto: "udp", Local: netip.MustParseAddrPort("127.0.0.1:5353"), Remote: netip.MustParseAddrPort("0.0.0.0:0"), State: 7, RxQueue: 768, UID: 0, Inode: 4242, Drops: 17},
		{Proto: "udp", Local: netip.MustParseAddrPort("10.0.0.2:40000"), Remote: netip.MustParseAddrPort("10.0.0.1:53"), State: 1, TxQueue: 5, UID: 1000, Inode: 4243},
		{Proto: "udp6", Local: netip.MustParseAddrPort("[::1]:123"), Remote: netip.MustParseAddrPort("[::]:0"), State: 7, UID: 101, Inode: 4244, Drops: 3},
	}
	var families []uint8
	k := &fakeKernel{t: t}
	k.fn = func(reqs []netlink.Message) ([]netlink.Message, error) {
		family := reqs[0].Data[0]
		families = append(families, family)
		wantDumpRequest(t, reqs, sockDiagByFam, udpDiagRequest(family))
		var datas [][]byte
		for _, s := range want {
			if (family == unix.AF_INET) == (s.Proto == "udp") {
				datas = append(datas, udpDiagMsg(s, skmem(uint32(s.Drops))))
			}
		}
		return dumpReply(reqs[0], sockDiagByFam, datas...), nil
	}
	got, err := readUDPDiag(k.dial)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(want, got) {
		t.Errorf("sockets\n got %+v\nwant %+v", got, want)
	}
	if !slices.Equal(families, []uint8{unix.AF_INET, unix.AF_INET6}) || !slices.Equal(k.dials, []int{unix.NETLINK_SOCK_DIAG, unix.NETLINK_SOCK_DIAG}) {
		t.Errorf("asked families %v over protocols %v, want IPv4 then IPv6 over NETLINK_SOCK_DIAG", families, k.dials)
	}
	// The request body, byte for byte: inet_diag_req_v2.
	body := udpDiagRequest(unix.AF_INET6)
	wantBody := []byte{unix.AF_INET6, unix.IPPROTO_UDP, 1 << 6, 0, 0xff, 0xff, 0xff, 0xff}
	wantBody = append(wantBody, make([]byte, 48)...)
	if !slices.Equal(body, wantBody) {
		t.Errorf("request body % x, want % x", body, wantBody)
	}

	// Through the source: the sockets that dropped become counters.
	s := &Snapshot{}
	readSourceInto(context.Background(), newReading(DefaultFS(), k.dial), UDPSource{}, s)
	var names []string
	for _, c := range s.Counters {
		names = append(names, fmt.Sprintf("%s=%d", c.Name(), c.Value))
	}
	if wantNames := []string{"udp 127.0.0.1:5353 inode 4242 drops=17", "udp6 [::1]:123 inode 4244 drops=3"}; !slices.Equal(names, wantNames) || len(s.Unavailable) != 0 {
		t.Errorf("counters %q, unavailable %v; want %q", names, s.Unavailable, wantNames)
	}
}

// TestUDPDiagRefused checks that what the files must answer instead is an
// error: a kernel without udp_diag, a reply without sk_drops, a broken
// message.
func TestUDPDiagRefused(t *testing.T) {
	sock := UDPSocket{Local: netip.MustParseAddrPort("127.0.0.1:9"), Remote: netip.MustParseAddrPort("0.0.0.0:0"), State: 7, Inode: 1}
	tests := []struct {
		name  string
		reply func(req netlink.Message) []netlink.Message
		want  error
	}{
		{"no udp_diag", func(req netlink.Message) []netlink.Message {
			out, _ := nltest.Error(int(unix.ENOENT), []netlink.Message{req})
			return out
		}, unix.ENOENT},
		{"no sk_drops", func(req netlink.Message) []netlink.Message {
			return dumpReply(req, sockDiagByFam, udpDiagMsg(sock, skmem(0)[:unix.SK_MEMINFO_DROPS]))
		}, errUDPDiagNoDrops},
		{"no SKMEMINFO", func(req netlink.Message) []netlink.Message {
			return dumpReply(req, sockDiagByFam, udpDiagMsg(sock, nil))
		}, errUDPDiagNoDrops},
		{"short message", func(req netlink.Message) []netlink.Message {
			return dumpReply(req, sockDiagByFam, udpDiagMsg(sock, skmem(0))[:inetdiag.MsgLen-4])
		}, ErrFileParse},
	}
	for _, tt := range tests {
		k := &fakeKernel{t: t, fn: func(reqs []netlink.Message) ([]netlink.Message, error) { return tt.reply(reqs[0]), nil }}
		if socks, err := readUDPDiag(k.dial); !errors.Is(err, tt.want) || socks != nil {
			t.Errorf("%s: %v, %v; want no sockets and %v", tt.name, socks, err, tt.want)
		}
	}
}

// TestUDPDiagAgreesWithProc opens UDP sockets over several pages of
// /proc/net/udp and udp6, makes one of them drop, and checks that
// sock_diag reads every one of them as the files print it.
func TestUDPDiagAgreesWithProc(t *testing.T) {
	conns, _, _ := openLoopbackUDP(t, 150)
	// A socket with a small buffer that is sent more than it holds.
	full := conns[0].(*net.UDPConn)
	if err := full.SetReadBuffer(1); err != nil {
		t.Fatal(err)
	}
	for range 64 {
		_, _ = conns[2].WriteTo(make([]byte, 1000), full.LocalAddr())
	}
	time.Sleep(10 * time.Millisecond)
	viaDiag, err := readUDPDiag(dialRaw)
	if err != nil {
		t.Skipf("no sock_diag for UDP here: %v", err)
	}
	viaProc, err := ReadUDPSockets(DefaultFS())
	if err != nil {
		t.Fatal(err)
	}
	byInode := func(socks []UDPSocket) map[uint64]UDPSocket {
		m := map[uint64]UDPSocket{}
		for _, s := range socks {
			m[s.Inode] = s
		}
		return m
	}
	d, p := byInode(viaDiag), byInode(viaProc)
	dropped := false
	for _, c := range conns {
		ino := inodeOf(t, c)
		if p[ino] != d[ino] || d[ino].Inode == 0 {
			t.Errorf("socket %s (inode %d):\nproc %+v\ndiag %+v", c.LocalAddr(), ino, p[ino], d[ino])
		}
		dropped = dropped || d[ino].Drops > 0
	}
	if !dropped {
		t.Error("no socket dropped: the drops column was not compared")
	}
}

// inodeOf is the inode of a socket's file descriptor.
func inodeOf(t *testing.T, c net.PacketConn) uint64 {
	t.Helper()
	rc, err := c.(*net.UDPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := rc.Control(func(fd uintptr) { err = unix.Fstat(int(fd), &st) }); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}
