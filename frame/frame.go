// Package frame is netdrop's framed wire format: a fixed, versioned header
// followed by a payload, protected by a CRC32C. It encodes and decodes frames
// and resynchronises a byte stream after a corrupt frame; it does no I/O of
// its own, so applications can embed it in their own UDP or TCP traffic and
// have netdrop probe's receiver account for it.
//
// # Byte layout (version 1)
//
// All integers are big-endian (network byte order). Offsets in bytes:
//
//	 0  4  magic        "NDPF" (0x4E 0x44 0x50 0x46)
//	 4  1  version      1
//	 5  1  type         Data=1, Hello=2, HelloAck=3, Fin=4, Report=5
//	 6  2  flags        meaning set by the type; 0 for Data
//	 8  4  sender       sender id, chosen at random per run
//	12  4  length       payload length in bytes (0 .. MaxPayload)
//	16  8  seq          sequence number, 64-bit so it never wraps in a run
//	24  8  wall_ns      send time, CLOCK_REALTIME, ns since the Unix epoch
//	32  8  mono_ns      send time, CLOCK_MONOTONIC, ns (meaningful on one host)
//	40  4  crc32c       Castagnoli CRC over bytes 0..39 and then the payload
//	44  -  payload
//
// The length sits before the sequence so a stream reader knows a frame's
// extent as soon as it has the first 16 bytes; the CRC comes last in the
// header so it covers every other header byte and is computed in one pass.
// The two send times exist because wall clocks are comparable across hosts
// whose clocks are synchronised while monotonic clocks are comparable only on
// one host but never jump; the receiver picks the one that applies.
//
// # Errors
//
// Decode and Scanner return one of ErrShort, ErrBadMagic, ErrBadVersion,
// ErrLength or ErrCRC so a receiver can count "not a frame" (the first four)
// apart from "a frame damaged in transit" (ErrCRC). They are plain sentinels,
// returned unwrapped, so the decode path never allocates.
//
// A CRC is not a signature: a forged frame with a correct CRC decodes. The
// receiver in netdrop probe defends its statistics against such frames by
// sender id and sequence window checks, not here.
package frame

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"sync"
)

// Wire constants of version 1.
const (
	// Magic is the first four bytes of every frame, "NDPF".
	Magic uint32 = 0x4E445046
	// Version is the header version this package writes and accepts.
	Version uint8 = 1
	// HeaderLen is the size of the fixed header.
	HeaderLen = 44
	// MaxPayload bounds the length field. It keeps a corrupt length from
	// making a stream reader wait for, or allocate, gigabytes; one MiB is far
	// above any datagram (64 KiB) and any useful probe frame.
	MaxPayload = 1 << 20
)

// Header field offsets, exported for tools that patch frames in place.
const (
	offMagic   = 0
	offVersion = 4
	offType    = 5
	offFlags   = 6
	offSender  = 8
	offLength  = 12
	offSeq     = 16
	offWall    = 24
	offMono    = 32
	offCRC     = 40
)

// Type says what a frame carries.
type Type uint8

// Frame types. Data frames are the probe's traffic; the others are the small
// control protocol netdrop probe runs between its two ends.
const (
	Data     Type = 1 // probe traffic; the payload is filler
	Hello    Type = 2 // a sender announces a run; the receiver resets its statistics
	HelloAck Type = 3 // the receiver is ready for the run announced by Hello
	Fin      Type = 4 // the run is over; Seq holds the number of Data frames sent
	Report   Type = 5 // the receiver's final report; the payload is JSON
)

func (t Type) String() string {
	switch t {
	case Data:
		return "data"
	case Hello:
		return "hello"
	case HelloAck:
		return "hello-ack"
	case Fin:
		return "fin"
	case Report:
		return "report"
	default:
		return "unknown"
	}
}

// Decode errors. Each is distinct so a receiver can count them apart.
var (
	// ErrShort: fewer bytes than a header, or than the header's length says
	// (a datagram truncated by a small read buffer, or a stream cut short).
	ErrShort = errors.New("frame: short")
	// ErrBadMagic: the bytes do not start with "NDPF": not a frame.
	ErrBadMagic = errors.New("frame: bad magic")
	// ErrBadVersion: a frame of a version this package does not read.
	ErrBadVersion = errors.New("frame: bad version")
	// ErrLength: the length field disagrees with the bytes present (a
	// datagram with trailing bytes) or exceeds MaxPayload.
	ErrLength = errors.New("frame: length mismatch")
	// ErrCRC: the CRC32C does not match: the frame was damaged.
	ErrCRC = errors.New("frame: crc mismatch")
)

// castagnoli is built on first use (its tables cost every start of netdrop
// 0.3 ms at package init); crc32 uses the SSE4.2 / ARMv8 CRC instructions
// for this polynomial, which is why CRC32C and not IEEE.
var castagnoli = sync.OnceValue(func() *crc32.Table { return crc32.MakeTable(crc32.Castagnoli) })

// Header is the decoded fixed header of a frame.
type Header struct {
	Type   Type
	Flags  uint16
	Sender uint32
	// Length is the payload length. Encode sets it from the payload.
	Length uint32
	Seq    uint64
	WallNs int64
	MonoNs int64
}

// Len is the total encoded size of a frame with this header.
func (h *Header) Len() int { return HeaderLen + int(h.Length) }

// Encode writes h and payload into dst, which must hold HeaderLen +
// len(payload) bytes, and returns the frame's length. It sets h.Length. It
// never allocates. It fails only when dst is too small or the payload exceeds
// MaxPayload.
func Encode(dst []byte, h *Header, payload []byte) (int, error) {
	n := HeaderLen + len(payload)
	if len(payload) > MaxPayload {
		return 0, ErrLength
	}
	if len(dst) < n {
		return 0, ErrShort
	}
	h.Length = uint32(len(payload))
	putHeader(dst, h)
	copy(dst[HeaderLen:n], payload)
	Seal(dst[:n])
	return n, nil
}

// Append appends the encoded frame to dst and returns the extended slice.
func Append(dst []byte, h *Header, payload []byte) []byte {
	n := HeaderLen + len(payload)
	start := len(dst)
	if cap(dst)-start < n {
		grown := make([]byte, start, start+n)
		copy(grown, dst)
		dst = grown
	}
	dst = dst[:start+n]
	if _, err := Encode(dst[start:], h, payload); err != nil {
		// Only an oversized payload gets here; keep dst unchanged.
		return dst[:start]
	}
	return dst
}

func putHeader(b []byte, h *Header) {
	_ = b[HeaderLen-1]
	binary.BigEndian.PutUint32(b[offMagic:], Magic)
	b[offVersion] = Version
	b[offType] = byte(h.Type)
	binary.BigEndian.PutUint16(b[offFlags:], h.Flags)
	binary.BigEndian.PutUint32(b[offSender:], h.Sender)
	binary.BigEndian.PutUint32(b[offLength:], h.Length)
	binary.BigEndian.PutUint64(b[offSeq:], h.Seq)
	binary.BigEndian.PutUint64(b[offWall:], uint64(h.WallNs))
	binary.BigEndian.PutUint64(b[offMono:], uint64(h.MonoNs))
}

// Stamp rewrites the sequence number and send times of an encoded frame in
// place and recomputes its CRC. A sender keeps one encoded frame per slot and
// stamps it before each send instead of encoding it again.
func Stamp(b []byte, seq uint64, wallNs, monoNs int64) {
	_ = b[HeaderLen-1]
	binary.BigEndian.PutUint64(b[offSeq:], seq)
	binary.BigEndian.PutUint64(b[offWall:], uint64(wallNs))
	binary.BigEndian.PutUint64(b[offMono:], uint64(monoNs))
	Seal(b)
}

// Seal computes the CRC of an encoded frame (header and payload, b being
// exactly the frame) and stores it in the header.
func Seal(b []byte) {
	binary.BigEndian.PutUint32(b[offCRC:], checksum(b))
}

func checksum(b []byte) uint32 {
	t := castagnoli()
	c := crc32.Update(0, t, b[:offCRC])
	return crc32.Update(c, t, b[HeaderLen:])
}

// Decode reads one frame that must fill b exactly, as a datagram does. It
// returns the header and the payload, a sub-slice of b. It never allocates.
func Decode(b []byte) (Header, []byte, error) {
	h, err := DecodeHeader(b)
	if err != nil {
		return h, nil, err
	}
	n := h.Len()
	switch {
	case len(b) < n:
		return h, nil, ErrShort
	case len(b) > n:
		return h, nil, ErrLength
	}
	if binary.BigEndian.Uint32(b[offCRC:]) != checksum(b) {
		return h, nil, ErrCRC
	}
	return h, b[HeaderLen:n], nil
}

// DecodeHeader checks and decodes the fixed header at the start of b without
// looking at the payload or the CRC. A stream reader uses it to learn how many
// bytes the frame needs.
func DecodeHeader(b []byte) (Header, error) {
	var h Header
	if len(b) < HeaderLen {
		// A prefix that is not even the start of a magic is not a frame at
		// all; say so rather than "short" so garbage is counted as garbage.
		if !magicPrefix(b) {
			return h, ErrBadMagic
		}
		return h, ErrShort
	}
	if binary.BigEndian.Uint32(b[offMagic:]) != Magic {
		return h, ErrBadMagic
	}
	if b[offVersion] != Version {
		return h, ErrBadVersion
	}
	h.Type = Type(b[offType])
	h.Flags = binary.BigEndian.Uint16(b[offFlags:])
	h.Sender = binary.BigEndian.Uint32(b[offSender:])
	h.Length = binary.BigEndian.Uint32(b[offLength:])
	h.Seq = binary.BigEndian.Uint64(b[offSeq:])
	h.WallNs = int64(binary.BigEndian.Uint64(b[offWall:]))
	h.MonoNs = int64(binary.BigEndian.Uint64(b[offMono:]))
	if h.Length > MaxPayload {
		return h, ErrLength
	}
	return h, nil
}

// magicPrefix reports whether b is a prefix of the magic (or longer and
// starts with it).
func magicPrefix(b []byte) bool {
	var m [4]byte
	binary.BigEndian.PutUint32(m[:], Magic)
	for i := 0; i < len(b) && i < 4; i++ {
		if b[i] != m[i] {
			return false
		}
	}
	return true
}

// IsCorrupt reports whether err says a frame was damaged in transit (its CRC
// fails) as opposed to the bytes not being a frame at all.
func IsCorrupt(err error) bool { return err == ErrCRC }
