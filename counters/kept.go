package counters

import (
	"io"
	"io/fs"

	"golang.org/x/sys/unix"
)

// KeptFiles keeps small kernel files and netlink sockets of one network
// namespace open from one reading to the next. The files are read again
// at offset 0; the sockets (one per netlink protocol) carry the next
// dumps, sparing a socket, its option and its close per dump. A /proc/sys file
// opened inside a namespace stays bound to that namespace's table, and
// every read formats the value anew; opening it is the costly part: each
// lookup under /proc/sys/net walks one dentry per namespace of the host,
// so opening the conntrack sysctls in each of N namespaces costs N². A
// kept file does not keep its namespace alive: once the namespace (or
// nf_conntrack) is gone, reading it fails, and it is opened again. A
// netlink socket does hold its namespace: Close it when the namespace is
// gone.
//
// The zero KeptFiles is ready to use. One reading on one goroutine uses it
// at a time; Close releases its files and sockets.
type KeptFiles struct {
	fds   map[string]int
	socks map[int]dumpConn
}

// Len is the number of files and sockets kept open.
func (k *KeptFiles) Len() int { return len(k.fds) + len(k.socks) }

// Close closes every kept file and socket.
func (k *KeptFiles) Close() error {
	var first error
	for path, fd := range k.fds {
		if err := unix.Close(fd); err != nil && first == nil {
			first = &fs.PathError{Op: "close", Path: path, Err: err}
		}
	}
	for _, c := range k.socks {
		if err := c.close(); err != nil && first == nil {
			first = err
		}
	}
	clear(k.fds)
	clear(k.socks)
	return first
}

// dialer hands out k's socket of a protocol, opened with dial when there
// is none. A dump takes the socket, so that a dump that dials again while
// it runs gets a socket of its own, and gives it back when it closes it,
// unless the dump discarded it.
func (k *KeptFiles) dialer(dial dialer) dialer {
	return func(proto int) (dumpConn, error) {
		c, ok := k.socks[proto]
		if ok {
			delete(k.socks, proto)
		} else {
			var err error
			if c, err = dial(proto); err != nil {
				return nil, err
			}
		}
		return &keptConn{dumpConn: c, k: k, proto: proto}, nil
	}
}

// discarder is a socket that must not be kept: netlinkDump discards one
// after an error.
type discarder interface{ discard() }

// keptConn is a socket of KeptFiles while a dump uses it.
type keptConn struct {
	dumpConn
	k     *KeptFiles
	proto int
	bad   bool
}

func (c *keptConn) discard() { c.bad = true }

func (c *keptConn) close() error {
	if _, have := c.k.socks[c.proto]; c.bad || have {
		return c.dumpConn.close()
	}
	if c.k.socks == nil {
		c.k.socks = map[int]dumpConn{}
	}
	c.k.socks[c.proto] = c.dumpConn
	return nil
}

// readKept is readSource through k: a kept file is read again; one that
// fails (its namespace or module gone) is closed and path opened anew,
// and kept if it parses. A nil k reads as readSource does.
func readKept[T any](k *KeptFiles, fsys FS, name SourceID, path string, parse func(io.Reader) (T, error)) (T, error) {
	if k == nil {
		return readSource(fsys, name, path, parse)
	}
	if fd, ok := k.fds[path]; ok {
		v, err := parse(&preadFile{fd: fd, path: path})
		if err == nil {
			return v, nil
		}
		_ = unix.Close(fd)
		delete(k.fds, path)
	}
	f, err := fsys.Open(path)
	if err != nil {
		var zero T
		return zero, err
	}
	v, err := parse(f)
	raw, isRaw := f.(*rawFile)
	if err != nil || !isRaw {
		f.Close()
		return v, fileError(string(name), err)
	}
	if k.fds == nil {
		k.fds = map[string]int{}
	}
	k.fds[path] = raw.fd
	return v, nil
}

// preadFile reads a kept file from offset 0 with pread(2), leaving the
// file's own offset alone.
type preadFile struct {
	fd   int
	path string
	off  int64
}

func (p *preadFile) Read(b []byte) (int, error) {
	for {
		n, err := unix.Pread(p.fd, b, p.off)
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return 0, &fs.PathError{Op: "pread", Path: p.path, Err: err}
		case n == 0 && len(b) > 0:
			return 0, io.EOF
		}
		p.off += int64(n)
		return n, nil
	}
}
