// Package safefile creates and reads the files netdrop keeps for itself
// (ready files, rollback files, the lab journal) so that another user on the
// same host cannot turn them against a netdrop running as root.
//
// Writing never follows a symlink: the bytes go to a new file created with
// O_CREAT|O_EXCL|O_NOFOLLOW in the target's own directory, synced, and then
// renamed onto the target. rename(2) replaces a symlink planted at the
// target instead of writing through it, and the temporary name cannot be
// pre-empted because O_EXCL refuses any existing name.
//
// Reading a file netdrop will act on (a rollback file names settings to
// write as root) opens it without following a symlink and checks the open
// file: a regular file, owned by the user netdrop runs as, writable by
// nobody else, and with a single name (a hard link elsewhere could be
// replayed after this name is marked used).
//
// It does not lock, and it does not judge the content; callers do both.
package safefile

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

var (
	// ErrNotOwned: the file belongs to another user than the one running
	// netdrop.
	ErrNotOwned = errors.New("not owned by the user running netdrop")
	// ErrWritable: group or others may write the file (or the directory).
	ErrWritable = errors.New("writable by group or others")
	// ErrNotRegular: a symlink, directory, device or pipe where a regular
	// file was expected.
	ErrNotRegular = errors.New("not a regular file")
	// ErrLinked: the file has more than one name.
	ErrLinked = errors.New("has more than one hard link")
)

// Write replaces path with data atomically and without following a
// symlink at path: readers see the old file or the new one, never half,
// and a symlink planted at path is replaced, not written through. The file
// gets mode perm exactly (the umask does not apply) and is synced, with
// its directory, before Write returns.
func Write(path string, data []byte, perm fs.FileMode) error {
	return write(path, data, perm, false)
}

// Create is Write for a file that must not exist yet: it fails with an
// error matching fs.ErrExist when path names anything, a symlink included,
// and never replaces it.
func Create(path string, data []byte, perm fs.FileMode) error {
	return write(path, data, perm, true)
}

func write(path string, data []byte, perm fs.FileMode, exclusive bool) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	if base == "" || base == "." || base == ".." {
		return fmt.Errorf("%s: not a file name", path)
	}
	tmp, f, err := createTemp(dir, base, perm)
	if err != nil {
		return err
	}
	done := false
	defer func() {
		if !done {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	// The mode is set on the descriptor: the umask applied at creation,
	// and a chmod by name could be redirected.
	if err := f.Chmod(perm); err != nil {
		return fmt.Errorf("chmod %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	if exclusive {
		err = renameNoReplace(tmp, path)
	} else {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		done = true
		return err
	}
	done = true
	syncDir(dir)
	return nil
}

// createTemp makes a new file next to the target, named after it so a
// person who finds a leftover knows what it was for.
func createTemp(dir, base string, perm fs.FileMode) (string, *os.File, error) {
	var rnd [6]byte
	for range 100 {
		if _, err := rand.Read(rnd[:]); err != nil {
			return "", nil, err
		}
		name := filepath.Join(dir, "."+base+".tmp-"+hex.EncodeToString(rnd[:]))
		f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, perm&0o600)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return "", nil, fmt.Errorf("create a temporary file in %s: %w", dir, err)
		}
		return name, f, nil
	}
	return "", nil, fmt.Errorf("create a temporary file in %s: every name taken", dir)
}

// renameNoReplace renames old to new unless new exists (renameat2
// RENAME_NOREPLACE, Linux 3.15; a hard link and an unlink where the
// filesystem lacks it: link(2) fails on any existing name as well).
func renameNoReplace(oldpath, newpath string) error {
	err := unix.Renameat2(unix.AT_FDCWD, oldpath, unix.AT_FDCWD, newpath, unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) {
		if err = unix.Link(oldpath, newpath); err == nil {
			return os.Remove(oldpath)
		}
	}
	if err != nil {
		return &fs.PathError{Op: "create", Path: newpath, Err: err}
	}
	return nil
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// ReadOwned reads a file netdrop will act on, at most max bytes. It opens
// path without following a symlink and checks the open file (not the name,
// which could change in between) with CheckOwned.
func ReadOwned(path string, max int64) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, unix.ELOOP) {
			return nil, fmt.Errorf("%s: %w (a symlink)", path, ErrNotRegular)
		}
		return nil, err
	}
	defer f.Close()
	if err := CheckOwned(f); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, max)
	}
	return b, nil
}

// CheckOwned says whether f is a regular file with one name, owned by the
// effective user, and not writable by group or others: a file only this
// user (root, for the files that matter) can have written.
func CheckOwned(f *os.File) error {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return err
	}
	return checkStat(&st, false)
}

// CheckDir says whether dir is a directory owned by the effective user and
// not writable by group or others, so nobody else can rename or replace
// the files in it.
func CheckDir(dir string) error {
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return &fs.PathError{Op: "lstat", Path: dir, Err: err}
	}
	if err := checkStat(&st, true); err != nil {
		return fmt.Errorf("%s: %w", dir, err)
	}
	return nil
}

func checkStat(st *unix.Stat_t, dir bool) error {
	switch {
	case dir && st.Mode&unix.S_IFMT != unix.S_IFDIR:
		return errors.New("not a directory")
	case !dir && st.Mode&unix.S_IFMT != unix.S_IFREG:
		return ErrNotRegular
	case st.Uid != uint32(os.Geteuid()):
		return fmt.Errorf("%w (owner uid %d, netdrop runs as uid %d)", ErrNotOwned, st.Uid, os.Geteuid())
	case st.Mode&0o022 != 0:
		return fmt.Errorf("%w (mode %04o)", ErrWritable, st.Mode&0o7777)
	case !dir && st.Nlink != 1:
		return fmt.Errorf("%w (%d names)", ErrLinked, st.Nlink)
	}
	return nil
}
