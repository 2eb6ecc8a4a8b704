package netnsmap

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// nsMount is one bind mount of a network namespace file: what `ip netns add`
// leaves under /run/netns, and what CNI plugins and runtimes leave under
// /run/netns, /var/run/netns or /run/docker/netns.
type nsMount struct {
	Inode uint64
	Path  string
}

// parseNetnsMounts reads the network namespace bind mounts out of a
// mountinfo file (proc(5)): fstype nsfs whose root is "net:[INODE]". Reading
// the mount table rather than stat-ing files under /run/netns finds every
// bind mount wherever it lives, and needs no privilege.
func parseNetnsMounts(b []byte) ([]nsMount, error) {
	var out []nsMount
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			if strings.TrimSpace(line) == "" {
				continue
			}
			return nil, fmt.Errorf("mountinfo line %q: no separator", line)
		}
		if fstype, _, _ := strings.Cut(post, " "); fstype != "nsfs" {
			continue
		}
		f := strings.Fields(pre)
		if len(f) < 5 {
			return nil, fmt.Errorf("mountinfo line %q: %d fields before the separator, want 5 or more", line, len(f))
		}
		ino, ok := nsInode(f[3], "net")
		if !ok {
			continue // another kind of namespace (ipc, mnt, …)
		}
		out = append(out, nsMount{Inode: ino, Path: unescapeMount(f[4])})
	}
	return out, sc.Err()
}

// nsInode reads "KIND:[INODE]", as /proc/PID/ns/KIND links and nsfs mount
// roots spell a namespace.
func nsInode(s, kind string) (uint64, bool) {
	rest, ok := strings.CutPrefix(s, kind+":[")
	if !ok {
		return 0, false
	}
	num, ok := strings.CutSuffix(rest, "]")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(num, 10, 64)
	return n, err == nil
}

// unescapeMount undoes mountinfo's octal escapes of space, tab, newline and
// backslash (\040, \011, \012, \134).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
