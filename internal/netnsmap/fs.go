package netnsmap

import (
	"io/fs"
	"os"
	"path/filepath"
)

// FS is where Discover reads the host: /proc and the mount table. Tests point
// it at fixtures copied from real hosts (DirFS), so a layout can be checked
// without the processes, containers or privilege that made it.
type FS interface {
	// ReadFile reads a whole file, as /proc/PID/cgroup.
	ReadFile(name string) ([]byte, error)
	// ReadDir lists a directory, as /proc.
	ReadDir(name string) ([]fs.DirEntry, error)
	// Readlink reads a symbolic link, as /proc/PID/ns/net ("net:[INODE]").
	Readlink(name string) (string, error)
}

// DirFS reads absolute paths below root: DirFS("/") is the running host,
// DirFS("testdata/host") a fixture laid out as proc/1/cgroup, ….
type DirFS string

// ReadFile implements FS.
func (d DirFS) ReadFile(name string) ([]byte, error) { return os.ReadFile(d.path(name)) }

// ReadDir implements FS.
func (d DirFS) ReadDir(name string) ([]fs.DirEntry, error) { return os.ReadDir(d.path(name)) }

// Readlink implements FS.
func (d DirFS) Readlink(name string) (string, error) { return os.Readlink(d.path(name)) }

func (d DirFS) path(name string) string {
	if d == "" || d == "/" {
		return name
	}
	return filepath.Join(string(d), name)
}
