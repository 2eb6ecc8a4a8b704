package droptrace

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
)

// btfNamesWithSuffix returns the distinct strings of a raw BTF blob's string
// section (the format of /sys/kernel/btf/*) that end in suffix, sorted. It
// reads the header and the string section only: the BTF library can look a
// type up by name cheaply, but finding names by suffix through it means
// decoding every type of the kernel (some 45 MB of allocations for vmlinux,
// most of the tracer's peak memory), while the names a suffix matches are
// a handful.
func btfNamesWithSuffix(r io.ReaderAt, suffix string) ([]string, error) {
	var hdr [24]byte
	if _, err := r.ReadAt(hdr[:], 0); err != nil {
		return nil, fmt.Errorf("reading btf header: %w", err)
	}
	var bo binary.ByteOrder
	switch {
	case hdr[0] == 0x9f && hdr[1] == 0xeb:
		bo = binary.LittleEndian
	case hdr[0] == 0xeb && hdr[1] == 0x9f:
		bo = binary.BigEndian
	default:
		return nil, errors.New("not raw btf (bad magic)")
	}
	// struct btf_header: magic, version, flags, hdr_len, type_off,
	// type_len, str_off, str_len; offsets count from the header's end.
	hdrLen, strOff, strLen := bo.Uint32(hdr[4:8]), bo.Uint32(hdr[16:20]), bo.Uint32(hdr[20:24])
	if hdrLen < uint32(len(hdr)) {
		return nil, fmt.Errorf("btf header of %d bytes", hdrLen)
	}
	br := bufio.NewReader(io.NewSectionReader(r, int64(hdrLen)+int64(strOff), int64(strLen)))
	var out []string
	for {
		s, err := br.ReadSlice(0)
		if errors.Is(err, bufio.ErrBufferFull) {
			// A name longer than the buffer: not one of ours; skip it.
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = br.ReadSlice(0)
			}
			continue
		}
		if s = bytes.TrimSuffix(s, []byte{0}); len(s) > len(suffix) && bytes.HasSuffix(s, []byte(suffix)) {
			out = append(out, string(s))
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading btf strings: %w", err)
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}
