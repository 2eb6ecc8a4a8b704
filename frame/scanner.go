package frame

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
)

// Scanner reads frames from a byte stream (a TCP connection, a pipe) and
// resynchronises after damage: when a frame fails its checks, Next returns
// the error once and the scanner then searches forward for the next magic,
// so one corrupt frame costs that frame and not the rest of the stream.
//
// A length field cannot be trusted once a frame is known to be damaged, so
// after a CRC mismatch the scanner does not skip "length" bytes; it restarts
// the search one byte after the bad frame's magic. A false magic inside a
// payload is then rejected by its own CRC and the search moves on.
type Scanner struct {
	r   io.Reader
	buf []byte
	// buf[start:end] holds bytes read but not yet consumed.
	start, end int
	err        error // sticky read error
	// Skipped counts bytes discarded while resynchronising.
	Skipped uint64
}

var magicBytes = func() []byte {
	var m [4]byte
	binary.BigEndian.PutUint32(m[:], Magic)
	return m[:]
}()

// NewScanner reads frames from r with a buffer of size bytes (at least one
// maximal frame is allocated on demand if a frame is larger than size).
func NewScanner(r io.Reader, size int) *Scanner {
	if size < 2*HeaderLen {
		size = 64 << 10
	}
	return &Scanner{r: r, buf: make([]byte, size)}
}

// Next returns the next frame. The payload is valid until the next call.
// Errors ErrBadMagic, ErrBadVersion, ErrLength and ErrCRC report damage that
// the scanner has already stepped over: call Next again to continue. At the
// end of the stream Next returns io.EOF, or io.ErrUnexpectedEOF when the
// stream ends inside a frame; other read errors are returned as they are and
// are final.
func (s *Scanner) Next() (Header, []byte, error) {
	if err := s.fill(HeaderLen); err != nil {
		return Header{}, nil, s.endErr(err)
	}
	h, err := DecodeHeader(s.buf[s.start:s.end])
	switch err {
	case nil:
	case ErrBadMagic:
		s.resync(0)
		return h, nil, ErrBadMagic
	default: // ErrBadVersion, ErrLength
		s.resync(1)
		return h, nil, err
	}
	n := h.Len()
	if err := s.fill(n); err != nil {
		return Header{}, nil, s.endErr(err)
	}
	b := s.buf[s.start : s.start+n]
	if binary.BigEndian.Uint32(b[offCRC:]) != checksum(b) {
		s.resync(1)
		return h, nil, ErrCRC
	}
	s.start += n
	return h, b[HeaderLen:], nil
}

// resync discards bytes from s.start+from up to the next possible magic.
// A partial magic at the very end is kept, as the rest may still arrive.
func (s *Scanner) resync(from int) {
	b := s.buf[s.start+from : s.end]
	skip := from
	if i := bytes.Index(b, magicBytes); i >= 0 {
		skip += i
	} else {
		// Keep the longest tail that is a prefix of the magic.
		keep := 0
		for k := min(len(magicBytes)-1, len(b)); k > 0; k-- {
			if bytes.Equal(b[len(b)-k:], magicBytes[:k]) {
				keep = k
				break
			}
		}
		skip += len(b) - keep
	}
	if skip == 0 {
		skip = 1 // never loop on the same byte
	}
	s.start += skip
	s.Skipped += uint64(skip)
}

// fill makes at least n unread bytes available.
func (s *Scanner) fill(n int) error {
	if s.end-s.start >= n {
		return nil
	}
	if n > len(s.buf) {
		nb := make([]byte, n)
		copy(nb, s.buf[s.start:s.end])
		s.end -= s.start
		s.start = 0
		s.buf = nb
	} else if len(s.buf)-s.start < n {
		copy(s.buf, s.buf[s.start:s.end])
		s.end -= s.start
		s.start = 0
	}
	for s.end-s.start < n {
		if s.err != nil {
			return s.err
		}
		m, err := s.r.Read(s.buf[s.end:])
		s.end += m
		if err != nil {
			s.err = err
		}
	}
	return nil
}

func (s *Scanner) endErr(err error) error {
	if errors.Is(err, io.EOF) {
		if s.end > s.start {
			s.Skipped += uint64(s.end - s.start)
			s.start = s.end
			return io.ErrUnexpectedEOF
		}
		return io.EOF
	}
	return err
}
