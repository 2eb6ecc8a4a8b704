package frame

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func encode(t testing.TB, h Header, payload []byte) []byte {
	t.Helper()
	b := make([]byte, HeaderLen+len(payload))
	if _, err := Encode(b, &h, payload); err != nil {
		t.Fatalf("encode: %v", err)
	}
	return b
}

func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name    string
		h       Header
		payload []byte
	}{
		{"empty data", Header{Type: Data, Sender: 7, Seq: 0}, nil},
		{"max values", Header{Type: Fin, Flags: 0xffff, Sender: 0xffffffff, Seq: ^uint64(0), WallNs: -1, MonoNs: 1<<63 - 1}, []byte("x")},
		{"payload", Header{Type: Data, Sender: 1, Seq: 42, WallNs: 1700000000123456789, MonoNs: 987654321}, bytes.Repeat([]byte{0xab}, 1000)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := encode(t, tt.h, tt.payload)
			h, p, err := Decode(b)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			want := tt.h
			want.Length = uint32(len(tt.payload))
			if diff := cmp.Diff(want, h); diff != "" {
				t.Errorf("header (-want +got):\n%s", diff)
			}
			if !bytes.Equal(p, tt.payload) {
				t.Errorf("payload = %x, want %x", p, tt.payload)
			}
		})
	}
}

// TestLayout pins the documented byte layout: a change here is a wire change
// and needs a new version.
func TestLayout(t *testing.T) {
	h := Header{Type: Data, Flags: 0x0102, Sender: 0x03040506, Seq: 0x0708090a0b0c0d0e, WallNs: 0x1112131415161718, MonoNs: 0x2122232425262728}
	b := encode(t, h, []byte{0xee, 0xff})
	want := []byte{
		'N', 'D', 'P', 'F', 1, 1, 0x01, 0x02,
		0x03, 0x04, 0x05, 0x06, 0, 0, 0, 2,
		0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e,
		0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18,
		0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28,
	}
	if diff := cmp.Diff(want, b[:40]); diff != "" {
		t.Errorf("header bytes (-want +got):\n%s", diff)
	}
	if got := b[HeaderLen:]; !bytes.Equal(got, []byte{0xee, 0xff}) {
		t.Errorf("payload bytes = %x", got)
	}
}

func TestDecodeErrors(t *testing.T) {
	good := encode(t, Header{Type: Data, Sender: 9, Seq: 5}, []byte("payload"))
	mut := func(f func(b []byte) []byte) []byte {
		b := append([]byte(nil), good...)
		return f(b)
	}
	tests := []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrShort},
		{"magic prefix only", good[:3], ErrShort},
		{"header cut", good[:HeaderLen-1], ErrShort},
		{"payload cut", good[:len(good)-1], ErrShort},
		{"garbage short", []byte("hello"), ErrBadMagic},
		{"bad magic", mut(func(b []byte) []byte { b[0] = 'X'; return b }), ErrBadMagic},
		{"bad version", mut(func(b []byte) []byte { b[offVersion] = 2; return b }), ErrBadVersion},
		{"trailing bytes", append(append([]byte(nil), good...), 0), ErrLength},
		{"length too big", mut(func(b []byte) []byte { b[offLength] = 0xff; return b }), ErrLength},
		{"flipped payload bit", mut(func(b []byte) []byte { b[len(b)-1] ^= 1; return b }), ErrCRC},
		{"flipped seq bit", mut(func(b []byte) []byte { b[offSeq+7] ^= 0x80; return b }), ErrCRC},
		{"flipped crc bit", mut(func(b []byte) []byte { b[offCRC] ^= 1; return b }), ErrCRC},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := Decode(tt.b)
			if err != tt.want {
				t.Errorf("Decode = %v, want %v", err, tt.want)
			}
		})
	}
	if !IsCorrupt(ErrCRC) || IsCorrupt(ErrBadMagic) {
		t.Error("IsCorrupt must be true only for ErrCRC")
	}
}

func TestStamp(t *testing.T) {
	b := encode(t, Header{Type: Data, Sender: 3}, make([]byte, 20))
	Stamp(b, 99, 123, 456)
	h, _, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	want := Header{Type: Data, Sender: 3, Length: 20, Seq: 99, WallNs: 123, MonoNs: 456}
	if diff := cmp.Diff(want, h); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestEncodeErrors(t *testing.T) {
	var h Header
	if _, err := Encode(make([]byte, HeaderLen), &h, []byte("x")); err != ErrShort {
		t.Errorf("small dst: %v, want ErrShort", err)
	}
	if _, err := Encode(make([]byte, HeaderLen), &h, make([]byte, MaxPayload+1)); err != ErrLength {
		t.Errorf("big payload: %v, want ErrLength", err)
	}
	if got := Append([]byte("ab"), &h, nil); len(got) != 2+HeaderLen || string(got[:2]) != "ab" {
		t.Errorf("Append = %q", got)
	}
}

func TestNoAllocs(t *testing.T) {
	b := encode(t, Header{Type: Data, Sender: 1}, make([]byte, 64))
	h := Header{Type: Data, Sender: 1}
	payload := make([]byte, 64)
	bad := append([]byte(nil), b...)
	bad[50] ^= 1
	allocs := testing.AllocsPerRun(1000, func() {
		if _, err := Encode(b, &h, payload); err != nil {
			t.Fatal(err)
		}
		Stamp(b, 1, 2, 3)
		if _, _, err := Decode(b); err != nil {
			t.Fatal(err)
		}
		if _, _, err := Decode(bad); err != ErrCRC {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("encode/stamp/decode allocate %v times per frame, want 0", allocs)
	}
}

// chunkReader returns at most n bytes per Read, as a TCP socket may.
type chunkReader struct {
	b []byte
	n int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	k := min(r.n, len(p), len(r.b))
	copy(p, r.b[:k])
	r.b = r.b[k:]
	return k, nil
}

func TestScannerResync(t *testing.T) {
	var stream []byte
	var want []uint64
	frameN := func(seq uint64, size int) []byte {
		return encode(t, Header{Type: Data, Sender: 1, Seq: seq}, bytes.Repeat([]byte{byte(seq)}, size))
	}
	// good 0, garbage, good 1, corrupt 2 (payload bit), good 3, bad version 4,
	// good 5, a frame whose length field is damaged, good 7, a payload that
	// contains a fake magic, good 9, truncated tail.
	add := func(b []byte, good bool, seq uint64) {
		stream = append(stream, b...)
		if good {
			want = append(want, seq)
		}
	}
	add(frameN(0, 10), true, 0)
	add([]byte("garbage garbage"), false, 0)
	add(frameN(1, 100), true, 1)
	c := frameN(2, 50)
	c[HeaderLen+3] ^= 0x10
	add(c, false, 2)
	add(frameN(3, 0), true, 3)
	v := frameN(4, 5)
	v[offVersion] = 9
	add(v, false, 4)
	add(frameN(5, 7), true, 5)
	l := frameN(6, 20)
	l[offLength+3] = 200 // claims more bytes than it has: CRC fails later
	add(l, false, 6)
	add(frameN(7, 300), true, 7)
	fake := encode(t, Header{Type: Data, Sender: 1, Seq: 8}, append([]byte("xxNDPF"), make([]byte, 60)...))
	add(fake, true, 8)
	add(frameN(9, 1), true, 9)
	add(frameN(10, 30)[:20], false, 10)

	for _, chunk := range []int{1, 7, 64, 1 << 20} {
		s := NewScanner(&chunkReader{b: stream, n: chunk}, 128)
		var got []uint64
		errs := map[error]int{}
		for {
			h, _, err := s.Next()
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				errs[err]++
				break
			}
			if err != nil {
				errs[err]++
				if len(errs) > 100 {
					t.Fatal("scanner does not make progress")
				}
				continue
			}
			got = append(got, h.Seq)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("chunk %d: frames (-want +got):\n%s", chunk, diff)
		}
		for _, e := range []error{ErrBadMagic, ErrCRC, ErrBadVersion, io.ErrUnexpectedEOF} {
			if errs[e] == 0 {
				t.Errorf("chunk %d: no %v reported (errors %v)", chunk, e, errs)
			}
		}
	}
}

func TestScannerReadError(t *testing.T) {
	boom := errors.New("boom")
	s := NewScanner(io.MultiReader(bytes.NewReader(encode(t, Header{Type: Data}, nil)), errReader{boom}), 0)
	if _, _, err := s.Next(); err != nil {
		t.Fatalf("first frame: %v", err)
	}
	if _, _, err := s.Next(); !errors.Is(err, boom) {
		t.Fatalf("got %v, want boom", err)
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

func FuzzDecode(f *testing.F) {
	f.Add(encode(f, Header{Type: Data, Sender: 1, Seq: 2}, []byte("abc")))
	f.Add([]byte("NDPF"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, p, err := Decode(b)
		if err != nil {
			return
		}
		// Whatever decodes must re-encode to the same bytes.
		out := make([]byte, HeaderLen+len(p))
		if _, err := Encode(out, &h, p); err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		if !bytes.Equal(out, b) {
			t.Fatalf("re-encoded %x, decoded from %x", out, b)
		}
	})
}

func FuzzScanner(f *testing.F) {
	good := encode(f, Header{Type: Data, Sender: 1, Seq: 2}, []byte("abc"))
	f.Add(append(append([]byte("zz"), good...), good[:10]...), uint8(3))
	f.Fuzz(func(t *testing.T, b []byte, chunk uint8) {
		s := NewScanner(&chunkReader{b: b, n: int(chunk) + 1}, 0)
		for i := 0; i <= len(b)+1; i++ {
			_, p, err := s.Next()
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				return
			}
			if err == nil && len(p) > len(b) {
				t.Fatal("payload longer than input")
			}
		}
		t.Fatal("scanner returned more results than input bytes")
	})
}

func BenchmarkEncode64(b *testing.B) {
	buf := make([]byte, HeaderLen+64)
	h := Header{Type: Data, Sender: 1}
	payload := make([]byte, 64)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		h.Seq = uint64(i)
		if _, err := Encode(buf, &h, payload); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkStamp64(b *testing.B) {
	buf := encode(b, Header{Type: Data, Sender: 1}, make([]byte, 64))
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		Stamp(buf, uint64(i), 1, 2)
	}
}

func BenchmarkDecode64(b *testing.B) {
	buf := encode(b, Header{Type: Data, Sender: 1}, make([]byte, 64))
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := Decode(buf); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkScanner(b *testing.B) {
	one := encode(b, Header{Type: Data, Sender: 1}, make([]byte, 64))
	stream := bytes.Repeat(one, 1000)
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	r := bytes.NewReader(stream)
	s := NewScanner(r, 64<<10)
	for b.Loop() {
		r.Reset(stream)
		s.err = nil
		for {
			_, _, err := s.Next()
			if err != nil {
				break
			}
		}
	}
}
