package sockets

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ErrNotSupported says the kernel or the platform lacks what was asked.
var ErrNotSupported = errors.New("not supported")

// Process is a process that holds a socket open.
type Process struct {
	PID  int    `json:"pid"`
	Comm string `json:"comm"`
}

func (p Process) String() string { return fmt.Sprintf("%s(%d)", p.Comm, p.PID) }

// ProcessFilter selects processes by pid or by command name, as --process
// takes it. The zero value selects every process.
type ProcessFilter struct {
	PID  int
	Comm string
}

// ParseProcessFilter reads "1234" as a pid and anything else as a command
// name (the comm of /proc/PID/comm, at most 15 characters).
func ParseProcessFilter(s string) (ProcessFilter, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return ProcessFilter{}, errors.New("empty process filter")
	}
	if pid, err := strconv.Atoi(s); err == nil {
		if pid <= 0 {
			return ProcessFilter{}, fmt.Errorf("process filter: pid must be positive (got %d)", pid)
		}
		return ProcessFilter{PID: pid}, nil
	}
	return ProcessFilter{Comm: s}, nil
}

// IsZero says whether the filter selects every process.
func (f ProcessFilter) IsZero() bool { return f.PID == 0 && f.Comm == "" }

// OwnerScan is what one walk of /proc found.
type OwnerScan struct {
	// Owners maps a socket inode to the processes holding it open
	// (several after fork or SCM_RIGHTS).
	Owners map[uint32][]Process
	// Processes is how many processes were looked at; Unreadable how
	// many of them could not be read (exited meanwhile, or no permission).
	Processes  int
	Unreadable int
}

// ScanOwners walks procRoot/PID/fd (procRoot is "/proc" on a live system, a
// fixture tree in tests) and records which process holds which socket. It
// reads every file descriptor of every selected process, which is costly on
// a busy host, so callers ask for it only when they need names: want limits
// the inodes recorded (nil records every socket), filter limits the
// processes read. Socket inodes are unique across network namespaces, so one
// walk serves any namespace.
func ScanOwners(procRoot string, filter ProcessFilter, want func(inode uint32) bool) (*OwnerScan, error) {
	ents, err := os.ReadDir(procRoot)
	if err != nil {
		return nil, fmt.Errorf("process lookup: %w", err)
	}
	scan := &OwnerScan{Owners: map[uint32][]Process{}}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 0 {
			continue
		}
		if filter.PID != 0 && pid != filter.PID {
			continue
		}
		dir := filepath.Join(procRoot, e.Name())
		comm := ""
		if filter.Comm != "" {
			comm = readComm(dir)
			if comm != filter.Comm {
				continue
			}
		}
		scan.Processes++
		fds, err := os.ReadDir(filepath.Join(dir, "fd"))
		if err != nil {
			scan.Unreadable++
			continue
		}
		for _, fd := range fds {
			target, err := os.Readlink(filepath.Join(dir, "fd", fd.Name()))
			if err != nil {
				continue // closed meanwhile
			}
			inode, ok := socketInode(target)
			if !ok || (want != nil && !want(inode)) {
				continue
			}
			if comm == "" {
				comm = readComm(dir)
			}
			p := Process{PID: pid, Comm: comm}
			if !containsProcess(scan.Owners[inode], p) {
				scan.Owners[inode] = append(scan.Owners[inode], p)
			}
		}
	}
	return scan, nil
}

// socketInode reads the inode from a /proc/PID/fd link target,
// "socket:[12345]".
func socketInode(target string) (uint32, bool) {
	s, ok := strings.CutPrefix(target, "socket:[")
	if !ok {
		return 0, false
	}
	s, ok = strings.CutSuffix(s, "]")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, false
	}
	return uint32(n), true
}

func readComm(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, "comm"))
	if err != nil {
		return "?"
	}
	return strings.TrimSuffix(string(b), "\n")
}

func containsProcess(ps []Process, p Process) bool {
	for _, q := range ps {
		if q == p {
			return true
		}
	}
	return false
}
