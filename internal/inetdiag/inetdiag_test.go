package inetdiag

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"

	"golang.org/x/sys/unix"
)

// TestDecodeSkmemWord checks the words of INET_DIAG_SKMEMINFO as a kernel
// of each age sends them: none, fewer than SK_MEMINFO_DROPS, all of them;
// and that a broken reply says ErrMalformed. sockets and counters test the
// rest of the decoder on recorded and faked replies.
func TestDecodeSkmemWord(t *testing.T) {
	msg := func(words int) []byte {
		b := make([]byte, MsgLen)
		b[0] = unix.AF_INET
		b[1] = 7
		binary.BigEndian.PutUint16(b[4:], 53)
		copy(b[8:12], []byte{127, 0, 0, 1})
		if words < 0 {
			return b
		}
		a := make([]byte, 4+4*words)
		binary.NativeEndian.PutUint16(a[0:], uint16(len(a)))
		binary.NativeEndian.PutUint16(a[2:], AttrSkmeminfo)
		for i := range words {
			binary.NativeEndian.PutUint32(a[4+4*i:], uint32(100+i))
		}
		return append(b, a...)
	}
	tests := []struct {
		name      string
		in        []byte
		wantDrops uint32
		wantOK    bool
		wantErr   bool
	}{
		{name: "no attribute", in: msg(-1)},
		{name: "before SK_MEMINFO_DROPS", in: msg(unix.SK_MEMINFO_DROPS)},
		{name: "every word", in: msg(unix.SK_MEMINFO_VARS), wantDrops: 100 + unix.SK_MEMINFO_DROPS, wantOK: true},
		{name: "short", in: msg(-1)[:MsgLen-1], wantErr: true},
		{name: "trailing bytes", in: append(msg(-1), 0, 0), wantErr: true},
	}
	for _, tt := range tests {
		m, err := Decode(tt.in)
		if tt.wantErr {
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("%s: error %v, want ErrMalformed", tt.name, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if want := netip.MustParseAddrPort("127.0.0.1:53"); m.Local != want || m.State != 7 {
			t.Errorf("%s: local %v state %d, want %v state 7", tt.name, m.Local, m.State, want)
		}
		if d, ok := m.SkmemWord(unix.SK_MEMINFO_DROPS); d != tt.wantDrops || ok != tt.wantOK {
			t.Errorf("%s: drops %d, %v; want %d, %v", tt.name, d, ok, tt.wantDrops, tt.wantOK)
		}
	}
}
