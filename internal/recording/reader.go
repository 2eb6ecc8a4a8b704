package recording

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/netdrop/netdrop/counters"
	"github.com/netdrop/netdrop/sockets"
)

// Reader reads a recording interval by interval.
type Reader struct {
	// Header is the file's first record.
	Header Header

	f   io.Closer
	dec *zstd.Decoder
	br  *bufio.Reader
	// n counts the intervals returned.
	n int
	// truncated says the file ends in a partial record (see Truncated).
	truncated error
	// parts are the files of the recording still to read after this
	// one, oldest first (OpenAll); part is the header's Part of the file
	// being read.
	parts []string
	part  int

	keys      []key
	order     []int
	values    []uint64
	netns     string
	cpus      int
	unavail   []counters.Unavailable
	sysctls   map[string]string
	nics      []counters.NIC
	hooks     []counters.Hook
	bridges   []counters.BridgePort
	sockets   *sockets.Summary
	socketsAt time.Time
}

// Open opens the recording at path and reads its header.
func Open(path string) (*Reader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open recording: %w", err)
	}
	r, err := NewReader(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	r.f = f
	return r, nil
}

// NewReader reads a recording from src; Close does not close src.
func NewReader(src io.Reader) (*Reader, error) {
	dec, err := zstd.NewReader(src, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(1<<24))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFormat, err)
	}
	r := &Reader{dec: dec, br: bufio.NewReaderSize(dec, 1<<16)}
	rec, err := r.next()
	if err != nil {
		dec.Close()
		if errors.Is(err, io.EOF) {
			err = fmt.Errorf("%w: empty file", ErrFormat)
		}
		return nil, err
	}
	if rec.Type != typeHeader || rec.Header == nil || rec.Header.Format != Format {
		dec.Close()
		return nil, fmt.Errorf("%w: the first record is not a netdrop recording header", ErrFormat)
	}
	if rec.Header.Version != Version {
		dec.Close()
		return nil, fmt.Errorf("%w: format version %d, this netdrop reads version %d", ErrFormat, rec.Header.Version, Version)
	}
	r.Header = *rec.Header
	r.part = r.Header.Part
	return r, nil
}

// OpenAll opens the recording at path together with the part a rotation
// left before it (path.1, see Options.MaxSize), so that Next reads the
// whole recording in time order: path.1's intervals, then path's. path.1
// is read only when it is the part just before path of the same
// recording (same start, host and namespace, Part one less): a path.1
// left by an earlier recording to the same name is not this one's.
func OpenAll(path string) (*Reader, error) {
	cur, err := Open(path)
	if err != nil {
		return nil, err
	}
	prev, err := Open(path + ".1")
	if err != nil {
		// No older part, or not a recording at all (a part of this one
		// would be): path alone. An older part that exists but cannot be
		// read (permissions, an I/O error) would silently cut the
		// recording's first half, so it is an error when path says it
		// is not the first part.
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, ErrFormat) || cur.Header.Part == 0 {
			return cur, nil
		}
		cur.Close()
		return nil, fmt.Errorf("%s is part %d of its recording, and the part before it cannot be read: %w", path, cur.Header.Part, err)
	}
	if !prev.Header.partBefore(cur.Header) {
		prev.Close()
		return cur, nil
	}
	cur.Close()
	prev.parts = []string{path}
	return prev, nil
}

// partBefore says whether h is the part written just before next, of the
// same recording.
func (h Header) partBefore(next Header) bool {
	return h.Started.Equal(next.Started) && h.Host == next.Host && h.Netns == next.Netns && h.Part+1 == next.Part
}

// nextPart moves r on to the next file of the recording. Each file starts
// from a full snapshot, so the reader's state starts afresh; the header
// stays the first part's, and the count of intervals goes on.
func (r *Reader) nextPart() error {
	path := r.parts[0]
	nr, err := Open(path)
	if err != nil {
		return err
	}
	if !(Header{Started: r.Header.Started, Host: r.Header.Host, Netns: r.Header.Netns, Part: r.part}).partBefore(nr.Header) {
		nr.Close()
		return fmt.Errorf("%s: %w: not the part after part %d of the recording started %s (rotated again while it was read?)", path, ErrFormat, r.part, r.Header.Started.Format(time.RFC3339))
	}
	r.dec.Close()
	if r.f != nil {
		r.f.Close()
	}
	hdr, n, parts := r.Header, r.n, r.parts[1:]
	*r = *nr
	r.Header, r.n, r.parts = hdr, n, parts
	return nil
}

// Close releases the reader and closes the file Open opened.
func (r *Reader) Close() error {
	r.dec.Close()
	if r.f != nil {
		return r.f.Close()
	}
	return nil
}

// Truncated returns, after Next has returned io.EOF, why the file ended
// before a whole record: a writer killed while writing, a disk that
// filled. Every interval before it was read. It is nil for a file that
// ends cleanly.
func (r *Reader) Truncated() error { return r.truncated }

// next reads one record. A partial record at the end of the file (a
// frame cut short, a line without its newline) is io.EOF with r.truncated
// set; a whole record that does not decode is an error.
func (r *Reader) next() (record, error) {
	line, err := r.br.ReadBytes('\n')
	switch {
	case err == nil:
	case errors.Is(err, io.EOF) && len(line) == 0:
		return record{}, io.EOF
	default:
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		r.truncated = fmt.Errorf("the file ends in a partial record after %d whole intervals (%d bytes of it decoded): %w", r.n, len(line), err)
		return record{}, io.EOF
	}
	var rec record
	dec := json.NewDecoder(bytes.NewReader(line))
	if err := dec.Decode(&rec); err != nil {
		return record{}, fmt.Errorf("%w: record after interval %d: %w", ErrFormat, r.n, err)
	}
	return rec, nil
}

// Next returns the next interval, or io.EOF after the last whole one
// (of the last part, with OpenAll).
func (r *Reader) Next() (*Interval, error) {
	for {
		rec, err := r.next()
		if errors.Is(err, io.EOF) && len(r.parts) > 0 && r.truncated == nil {
			if err := r.nextPart(); err != nil {
				return nil, err
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		if rec.Type != typeInterval {
			continue // a record type of a later version: skipped
		}
		iv, err := r.apply(rec)
		if err != nil {
			return nil, err
		}
		r.n++
		return iv, nil
	}
}

// apply brings the reader's state to rec and returns the full interval.
func (r *Reader) apply(rec record) (*Interval, error) {
	r.keys = append(r.keys, rec.Keys...)
	for len(r.values) < len(r.keys) {
		r.values = append(r.values, 0)
	}
	bad := func(what string, i uint64) error {
		return fmt.Errorf("%w: interval %d: %s names key %d of %d", ErrFormat, r.n, what, i, len(r.keys))
	}
	for _, kv := range rec.Set {
		if kv[0] >= uint64(len(r.keys)) {
			return nil, bad("set", kv[0])
		}
		r.values[kv[0]] = kv[1]
	}
	if rec.Order != nil {
		order := make([]int, 0, len(r.order))
		for _, run := range rec.Order {
			first, n := run[0], run[1]
			if first < 0 || n < 0 || first+n > len(r.keys) {
				return nil, bad("order", uint64(first+n))
			}
			for k := first; k < first+n; k++ {
				order = append(order, k)
			}
		}
		r.order = order
	}
	if rec.Netns != nil {
		r.netns = *rec.Netns
	}
	if rec.CPUs != nil {
		r.cpus = *rec.CPUs
	}
	if rec.SocketsAt != nil {
		r.socketsAt = *rec.SocketsAt
	}
	var err error
	for _, e := range []error{
		fresh(rec.Unavailable, &r.unavail),
		fresh(rec.Sysctls, &r.sysctls),
		fresh(rec.NICs, &r.nics),
		fresh(rec.Hooks, &r.hooks),
		fresh(rec.BridgePorts, &r.bridges),
		fresh(rec.Sockets, &r.sockets),
	} {
		err = errors.Join(err, e)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: interval %d: %w", ErrFormat, r.n, err)
	}
	s := &counters.Snapshot{
		Time:        rec.Time,
		Netns:       r.netns,
		Counters:    make([]counters.Counter, 0, len(r.order)),
		Unavailable: r.unavail,
		Sysctls:     r.sysctls,
		NICs:        r.nics,
		CPUs:        r.cpus,
		Hooks:       r.hooks,
		BridgePorts: r.bridges,
	}
	for _, i := range r.order {
		s.Counters = append(s.Counters, r.keys[i].counter(r.values[i]))
	}
	iv := &Interval{Time: rec.Time, Counters: s, Sockets: r.sockets, Trace: rec.Trace}
	if r.sockets != nil {
		iv.SocketsAt = r.socketsAt
	}
	return iv, nil
}

// fresh decodes raw, when present, into a new value stored in dst:
// intervals handed out earlier keep the values they had.
func fresh[T any](raw json.RawMessage, dst *T) error {
	if raw == nil {
		return nil
	}
	var v T
	if err := json.Unmarshal(raw, &v); err != nil {
		return err
	}
	*dst = v
	return nil
}
