package safefile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// TestWriteReplacesSymlink plants a symlink where netdrop writes, as
// another user would in /tmp: the file it points to keeps its content and
// the symlink is replaced by netdrop's file.
func TestWriteReplacesSymlink(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim")
	if err := os.WriteFile(victim, []byte("precious\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(dir, "ready")
	if err := os.Symlink(victim, target); err != nil {
		t.Fatal(err)
	}
	if err := Write(target, []byte("127.0.0.1:9\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "precious\n" {
		t.Errorf("the symlink's target was written: %q", b)
	}
	fi, err := os.Lstat(target)
	if err != nil {
		t.Fatal(err)
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o644 {
		t.Errorf("target is %v, want a regular file with mode 0644", fi.Mode())
	}
	if b, _ := os.ReadFile(target); string(b) != "127.0.0.1:9\n" {
		t.Errorf("target holds %q", b)
	}
	assertNoTemp(t, dir, 2)
}

// TestCreateRefusesExisting: Create never replaces anything, a dangling
// symlink included (O_EXCL alone would, rightly, refuse it too).
func TestCreateRefusesExisting(t *testing.T) {
	dir := t.TempDir()
	link := filepath.Join(dir, "rollback.json")
	if err := os.Symlink(filepath.Join(dir, "nowhere"), link); err != nil {
		t.Fatal(err)
	}
	if err := Create(link, []byte("x"), 0o600); !errors.Is(err, fs.ErrExist) {
		t.Errorf("Create over a symlink: %v, want fs.ErrExist", err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "nowhere")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the symlink was followed: %v", err)
	}
	fresh := filepath.Join(dir, "new.json")
	if err := Create(fresh, []byte("{}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Create(fresh, []byte("other"), 0o600); !errors.Is(err, fs.ErrExist) {
		t.Errorf("second Create: %v, want fs.ErrExist", err)
	}
	if b, _ := os.ReadFile(fresh); string(b) != "{}\n" {
		t.Errorf("Create replaced an existing file: %q", b)
	}
	assertNoTemp(t, dir, 2)
}

func assertNoTemp(t *testing.T, dir string, want int) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != want {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("directory holds %v, want %d entries (a temporary file left?)", names, want)
	}
}

func TestReadOwned(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	if err := Write(good, []byte("ok"), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := ReadOwned(good, 10); err != nil || string(b) != "ok" {
		t.Fatalf("ReadOwned(good) = %q, %v", b, err)
	}
	if _, err := ReadOwned(good, 1); err == nil {
		t.Error("a file above the size limit was read")
	}

	writable := filepath.Join(dir, "writable")
	if err := Write(writable, []byte("x"), 0o666); err != nil {
		t.Fatal(err)
	}
	groupw := filepath.Join(dir, "groupw")
	if err := Write(groupw, []byte("x"), 0o620); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(good, link); err != nil {
		t.Fatal(err)
	}
	hard := filepath.Join(dir, "hard")
	if err := os.Link(good, hard); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path string
		want error
	}{
		{writable, ErrWritable},
		{groupw, ErrWritable},
		{link, ErrNotRegular},
		{hard, ErrLinked},
		{dir, ErrNotRegular},
	}
	if os.Geteuid() == 0 {
		other := filepath.Join(dir, "other")
		if err := Write(other, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(other, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		tests = append(tests, struct {
			path string
			want error
		}{other, ErrNotOwned})
	}
	for _, tt := range tests {
		if _, err := ReadOwned(tt.path, 100); !errors.Is(err, tt.want) {
			t.Errorf("ReadOwned(%s) = %v, want %v", filepath.Base(tt.path), err, tt.want)
		}
	}
}

func TestCheckDir(t *testing.T) {
	dir := t.TempDir()
	if err := CheckDir(dir); err != nil {
		t.Errorf("a private directory: %v", err)
	}
	open := filepath.Join(dir, "open")
	if err := os.Mkdir(open, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := CheckDir(open); !errors.Is(err, ErrWritable) {
		t.Errorf("a world-writable directory: %v, want ErrWritable", err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	if err := CheckDir(link); err == nil {
		t.Error("a symlink to a directory passed as a directory")
	}
}
