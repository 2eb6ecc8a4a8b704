package counters

import (
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"
)

// shortReader returns at most n bytes per read, as seq_file returns at
// most a page.
type shortReader struct {
	r io.Reader
	n int
}

func (s shortReader) Read(p []byte) (int, error) {
	if len(p) > s.n {
		p = p[:s.n]
	}
	return s.r.Read(p)
}

func TestSeqFileReader(t *testing.T) {
	line := strings.Repeat("x", 127) + "\n"
	for name, tt := range map[string]struct {
		in    string
		chunk int
	}{
		"one short page": {strings.Repeat(line, 3), 4096},
		"full pages":     {strings.Repeat(line, 100), 4096},
		"exactly a page": {strings.Repeat(line, 32), 4096},
		"empty":          {"", 4096},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := io.ReadAll(&seqFileReader{r: shortReader{strings.NewReader(tt.in), tt.chunk}})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.in, string(got)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	// After a short read it reports the end without reading again.
	r := &seqFileReader{r: iotest.ErrReader(io.ErrUnexpectedEOF)}
	if _, err := r.Read(make([]byte, 8)); err != io.ErrUnexpectedEOF {
		t.Errorf("read error = %v, want it passed on", err)
	}
	r = &seqFileReader{r: strings.NewReader("abc")}
	buf := make([]byte, 64)
	if n, err := r.Read(buf); n != 3 || err != nil {
		t.Fatalf("first read = %d, %v", n, err)
	}
	if n, err := r.Read(buf); n != 0 || err != io.EOF {
		t.Errorf("second read = %d, %v, want the end", n, err)
	}
}

// TestReadUDPSocketsManyPages opens enough UDP sockets that /proc/net/udp
// and udp6 take several reads (a page holds 32 lines), and checks that
// every socket is read, as the file read whole by os.ReadFile shows them.
func TestReadUDPSocketsManyPages(t *testing.T) {
	_, want4, want6 := openLoopbackUDP(t, 150)
	fs := DefaultFS()
	socks, err := ReadUDPSockets(fs)
	if err != nil {
		t.Fatal(err)
	}
	count := func(file string) int {
		b, err := os.ReadFile(fs.NetPath(file))
		if err != nil {
			return 0
		}
		return strings.Count(string(b), "\n") - 1 // the header
	}
	got := map[string]int{}
	for _, s := range socks {
		got[s.Proto]++
	}
	// Other sockets may come and go between the reads; ours stay.
	if got["udp"] < want4 || got["udp6"] < want6 {
		t.Errorf("read %d udp and %d udp6 sockets, opened %d and %d", got["udp"], got["udp6"], want4, want6)
	}
	if n := count("udp"); got["udp"] < n-5 || got["udp"] > n+5 {
		t.Errorf("read %d udp sockets, /proc/net/udp has %d lines", got["udp"], n)
	}
	if n := count("udp6"); got["udp6"] < n-5 || got["udp6"] > n+5 {
		t.Errorf("read %d udp6 sockets, /proc/net/udp6 has %d lines", got["udp6"], n)
	}
}

// openLoopbackUDP opens n UDP sockets on 127.0.0.1 and n on ::1 (none where
// IPv6 is disabled), interleaved, closed when the test ends: enough for
// /proc/net/udp and udp6 to take several pages.
func openLoopbackUDP(t *testing.T, n int) (conns []net.PacketConn, n4, n6 int) {
	t.Helper()
	for range n {
		for _, nw := range []string{"udp4", "udp6"} {
			addr := "127.0.0.1:0"
			if nw == "udp6" {
				addr = "[::1]:0"
			}
			c, err := net.ListenPacket(nw, addr)
			if err != nil {
				if nw == "udp6" {
					continue // IPv6 disabled: udp4 still counts
				}
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			conns = append(conns, c)
			if nw == "udp4" {
				n4++
			} else {
				n6++
			}
		}
	}
	return conns, n4, n6
}
