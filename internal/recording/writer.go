package recording

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"syscall"
	"time"

	"github.com/klauspost/compress/zstd"
)

// Options configures a Writer.
type Options struct {
	// MaxSize bounds the recording on disk, in bytes; 0 means unbounded.
	// When the file reaches half of it, it is renamed to FILE.1 (replacing
	// an older FILE.1) and a new FILE starts with its own header and a full
	// snapshot, so the two files together stay near MaxSize and each can
	// be read alone.
	MaxSize int64
}

// Writer appends intervals to a recording. It is not safe for concurrent
// use.
type Writer struct {
	path string
	opts Options
	hdr  Header
	enc  *zstd.Encoder
	f    *os.File
	size int64
	// Rotations counts the files written before the current one.
	rotations int

	st writerState
	// buf is reused for each record's JSON.
	buf bytes.Buffer
}

// writerState is what the next interval is written against; a new file
// starts from the zero value.
type writerState struct {
	keys   map[slot]int
	order  []int
	values []uint64 // by key number
	netns  *string
	cpus   *int
	raw    map[string][]byte // last JSON of unavailable, sysctls, nics, hooks, sockets
	// socketsAt is when the last view written was read.
	socketsAt time.Time
	wrote     bool
}

// slot is a key and its occurrence in one snapshot: a snapshot that holds
// the same key twice keeps both values.
type slot struct {
	key
	n int
}

// Create starts a recording at path (replacing a file there, never
// following a symlink) and writes its header.
func Create(path string, h Header, opts Options) (*Writer, error) {
	// One frame per record, compressed on this goroutine: a worker pool
	// would cost more than the record.
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithEncoderCRC(true),
		zstd.WithWindowSize(1<<20), zstd.WithZeroFrames(true))
	if err != nil {
		return nil, fmt.Errorf("zstd encoder: %w", err)
	}
	h.Format, h.Version = Format, Version
	w := &Writer{path: path, opts: opts, hdr: h, enc: enc}
	if err := w.open(); err != nil {
		return nil, err
	}
	return w, nil
}

// open creates the file and writes the header.
func (w *Writer) open() error {
	f, err := os.OpenFile(w.path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o644)
	if err != nil {
		return fmt.Errorf("create recording: %w", err)
	}
	w.f, w.size, w.st = f, 0, writerState{}
	h := w.hdr
	h.Part = w.rotations
	return w.put(record{Type: typeHeader, Header: &h})
}

// Path is the file being written.
func (w *Writer) Path() string { return w.path }

// Size is the size of the current file in bytes.
func (w *Writer) Size() int64 { return w.size }

// Rotations is how many times the file was rotated (see Options.MaxSize).
func (w *Writer) Rotations() int { return w.rotations }

// Write appends one interval. Each interval is one write(2) of one whole
// zstd frame: a process killed at any moment leaves a file that reads up
// to the last interval written whole.
func (w *Writer) Write(iv Interval) error {
	if w.opts.MaxSize > 0 && w.st.wrote && w.size >= w.opts.MaxSize/2 {
		if err := w.rotate(); err != nil {
			return err
		}
	}
	rec, err := w.st.diff(iv)
	if err != nil {
		return err
	}
	return w.put(rec)
}

// rotate keeps the current file as FILE.1 and starts a new one.
func (w *Writer) rotate() error {
	if err := w.f.Sync(); err != nil {
		return fmt.Errorf("sync recording: %w", err)
	}
	if err := w.f.Close(); err != nil {
		return fmt.Errorf("close recording: %w", err)
	}
	if err := os.Rename(w.path, w.path+".1"); err != nil {
		return fmt.Errorf("rotate recording: %w", err)
	}
	w.rotations++
	return w.open()
}

// put compresses one record into one frame and writes it.
func (w *Writer) put(rec record) error {
	w.buf.Reset()
	enc := json.NewEncoder(&w.buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(rec); err != nil { // Encode ends the line with '\n'
		return fmt.Errorf("encode record: %w", err)
	}
	frame := w.enc.EncodeAll(w.buf.Bytes(), nil)
	n, err := w.f.Write(frame)
	w.size += int64(n)
	if err != nil {
		return fmt.Errorf("write recording: %w", err)
	}
	return nil
}

// Close syncs and closes the file.
func (w *Writer) Close() error {
	err := w.f.Sync()
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	w.enc.Close()
	return err
}

// diff turns iv into a record against the state, and moves the state on.
func (st *writerState) diff(iv Interval) (record, error) {
	s := iv.Counters
	rec := record{Type: typeInterval, Time: iv.Time.UTC()}
	if st.keys == nil {
		st.keys = map[slot]int{}
		st.raw = map[string][]byte{}
	}
	order := make([]int, 0, len(s.Counters))
	seen := make(map[key]int, len(s.Counters))
	for _, c := range s.Counters {
		k := slot{key: keyOf(c)}
		k.n = seen[k.key]
		seen[k.key]++
		i, ok := st.keys[k]
		if !ok {
			i = len(st.keys)
			st.keys[k] = i
			rec.Keys = append(rec.Keys, k.key)
			st.values = append(st.values, 0)
		}
		order = append(order, i)
		if !ok || !st.wrote || st.values[i] != c.Value {
			rec.Set = append(rec.Set, [2]uint64{uint64(i), c.Value})
			st.values[i] = c.Value
		}
	}
	if !st.wrote || !slices.Equal(order, st.order) {
		rec.Order = runs(order)
		st.order = order
	}
	if !st.wrote || st.netns == nil || *st.netns != s.Netns {
		v := s.Netns
		rec.Netns, st.netns = &v, &v
	}
	if !st.wrote || st.cpus == nil || *st.cpus != s.CPUs {
		v := s.CPUs
		rec.CPUs, st.cpus = &v, &v
	}
	parts := []struct {
		name string
		v    any
		dst  *json.RawMessage
	}{
		{"unavailable", s.Unavailable, &rec.Unavailable},
		{"sysctls", s.Sysctls, &rec.Sysctls},
		{"nics", s.NICs, &rec.NICs},
		{"hooks", s.Hooks, &rec.Hooks},
		{"bridge_ports", s.BridgePorts, &rec.BridgePorts},
	}
	if iv.Sockets != nil {
		parts = append(parts, struct {
			name string
			v    any
			dst  *json.RawMessage
		}{"sockets", iv.Sockets, &rec.Sockets})
	} else if st.raw["sockets"] != nil {
		// No view this time: say so, so the reader does not carry the
		// previous one forward.
		rec.Sockets = json.RawMessage("null")
		st.raw["sockets"] = nil
	}
	for _, p := range parts {
		b, err := json.Marshal(p.v)
		if err != nil {
			return record{}, fmt.Errorf("encode %s: %w", p.name, err)
		}
		if !st.wrote || !bytes.Equal(b, st.raw[p.name]) {
			*p.dst = b
			st.raw[p.name] = b
		}
	}
	if iv.Sockets != nil {
		at := iv.SocketsAt
		if at.IsZero() {
			at = iv.Time
		}
		at = at.UTC()
		if !at.Equal(st.socketsAt) {
			rec.SocketsAt, st.socketsAt = &at, at
		}
	} else {
		st.socketsAt = time.Time{}
	}
	rec.Trace = iv.Trace
	st.wrote = true
	return rec, nil
}
