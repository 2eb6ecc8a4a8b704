package frame

import (
	"io"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// streamPart is one piece of a FuzzScannerStream stream: a frame, or garbage
// between frames.
type streamPart struct {
	h       Header
	payload []byte
	garbage []byte
}

// buildStream turns fuzz bytes into a TCP probe stream. Each part is a kind
// byte, a length byte and that many bytes: an even kind is a frame of type
// kind/2 whose payload is the bytes (sender and sequence number from the
// kind and the position), an odd kind garbage, with 'N' replaced so that it
// holds no frame magic and no prefix of one.
func buildStream(b []byte) (stream []byte, parts []streamPart) {
	for len(b) >= 2 {
		kind, n := b[0], min(int(b[1]), len(b)-2)
		data := append([]byte(nil), b[2:2+n]...)
		b = b[2+n:]
		if kind%2 == 1 {
			for i := range data {
				if data[i] == 'N' {
					data[i] = 'n'
				}
			}
			if len(data) == 0 {
				continue
			}
			stream = append(stream, data...)
			if k := len(parts) - 1; k >= 0 && parts[k].garbage != nil {
				parts[k].garbage = append(parts[k].garbage, data...) // one stretch
				continue
			}
			parts = append(parts, streamPart{garbage: data})
			continue
		}
		h := Header{Type: Type(kind / 2 % 8), Flags: uint16(kind), Sender: uint32(kind) * 7, Seq: uint64(len(parts)), WallNs: int64(len(stream)), MonoNs: -1}
		stream = Append(stream, &h, data)
		parts = append(parts, streamPart{h: h, payload: data})
	}
	return stream, parts
}

// FuzzScannerStream: a stream of frames with garbage between them, read in
// chunks of any size (as TCP delivers it), gives back every frame exactly and
// in order, reports nothing but bad magic for the garbage (once or more per
// stretch, as the chunks fall), counts every garbage byte as skipped, and
// ends cleanly after a last frame.
func FuzzScannerStream(f *testing.F) {
	f.Add([]byte{2, 0, 8, 3, 'a', 'b', 'c', 1, 5, 'h', 'e', 'l', 'l', 'o', 2, 0}, uint8(0))
	f.Add([]byte{1, 20, 'G', 'E', 'T', ' ', '/', ' ', 'H', 'T', 'T', 'P', '/', '1', '.', '1', '\r', '\n', '\r', '\n', 'x', 'y', 4, 0, 3, 2, 'z', 'z'}, uint8(6))
	f.Add([]byte{2, 255}, uint8(43))
	f.Fuzz(func(t *testing.T, b []byte, chunk uint8) {
		stream, parts := buildStream(b)
		var want []streamPart
		var garbage uint64
		for _, p := range parts {
			if p.garbage != nil {
				garbage += uint64(len(p.garbage))
			} else {
				want = append(want, p)
			}
		}
		s := NewScanner(&chunkReader{b: stream, n: int(chunk) + 1}, 2*HeaderLen)
		var got []streamPart
		var end error
		for range len(stream) + 2 {
			h, payload, err := s.Next()
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				end = err
				break
			}
			if err == ErrBadMagic && garbage > 0 {
				continue
			}
			if err != nil {
				t.Fatalf("after %d frames: %v", len(got), err)
			}
			got = append(got, streamPart{h: h, payload: append([]byte{}, payload...)})
		}
		if end == nil {
			t.Fatal("the scanner did not reach the end of the stream")
		}
		if diff := cmp.Diff(want, got, cmp.AllowUnexported(streamPart{}), cmpEmptyIsNil); diff != "" {
			t.Fatalf("frames (-sent +read):\n%s", diff)
		}
		if endsInFrame := len(parts) == 0 || parts[len(parts)-1].garbage == nil; endsInFrame && end != io.EOF {
			t.Fatalf("stream ending with a whole frame: %v", end)
		}
		if s.Skipped != garbage {
			t.Fatalf("skipped %d bytes, garbage was %d", s.Skipped, garbage)
		}
	})
}

var cmpEmptyIsNil = cmp.Transformer("bytes", func(b []byte) string { return string(b) })
