package atomicfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestWriteReplacesOrLeavesAlone(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f.txt")
	if err := WriteBytes(path, []byte("first"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteBytes(path, []byte("second"), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "second" {
		t.Fatalf("content %q, want second", b)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode().Perm())
	}

	// A fill that fails half-way leaves the old content and no temporary file.
	boom := errors.New("disk full")
	err := Write(path, 0o644, func(f *os.File) error {
		f.Write([]byte("par"))
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("error %v, want %v", err, boom)
	}
	if b, _ := os.ReadFile(path); string(b) != "second" {
		t.Errorf("content %q after a failed write, want second", b)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("%d files in the folder, want 1: %v", len(entries), entries)
	}
}

func TestWriteMissingFolder(t *testing.T) {
	err := WriteBytes(filepath.Join(t.TempDir(), "no", "such", "f"), []byte("x"), 0o644)
	if err == nil {
		t.Fatal("wrote into a folder that does not exist")
	}
}

// checkOnly fails unless dir holds exactly the files in want, with that
// content: no temporary file may be left behind.
func checkOnly(t *testing.T, dir string, want map[string]string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if _, ok := want[e.Name()]; !ok {
			t.Errorf("%s left in the folder", e.Name())
		}
	}
	for name, content := range want {
		if b, err := os.ReadFile(filepath.Join(dir, name)); err != nil || string(b) != content {
			t.Errorf("%s holds %q (%v), want %q", name, b, err, content)
		}
	}
}

func TestWriteFailures(t *testing.T) {
	tests := []struct {
		name string
		fill func(f *os.File) error
		want error // that the error wraps
	}{
		{"write fails", func(f *os.File) error {
			f.Write([]byte("half"))
			return &fs.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC}
		}, syscall.ENOSPC},
		{"file size limit", func(f *os.File) error {
			return &fs.PathError{Op: "write", Path: f.Name(), Err: syscall.EFBIG}
		}, syscall.EFBIG},
		// Closing the file in fill makes the steps after it (chmod, sync,
		// close) fail.
		{"a later step fails", func(f *os.File) error {
			f.Write([]byte("all"))
			return f.Close()
		}, os.ErrClosed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "f")
			if err := WriteBytes(path, []byte("old"), 0o644); err != nil {
				t.Fatal(err)
			}
			err := Write(path, 0o644, tt.fill)
			if !errors.Is(err, tt.want) {
				t.Fatalf("error %v, want one wrapping %v", err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "write "+path+": ") || strings.Contains(err.Error(), ".tmp-") {
				t.Errorf("error %q should name %s and not the temporary file", err, path)
			}
			checkOnly(t, dir, map[string]string{"f": "old"})
		})
	}
}

func TestWritePanic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	if err := WriteBytes(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("the panic in fill did not reach the caller")
			}
		}()
		Write(path, 0o644, func(f *os.File) error {
			f.Write([]byte("half"))
			panic("boom")
		})
	}()
	checkOnly(t, dir, map[string]string{"f": "old"})
}

func TestWriteRenameFails(t *testing.T) {
	dir := t.TempDir()
	// A folder that is not empty cannot be replaced by a file.
	path := filepath.Join(dir, "d")
	if err := os.MkdirAll(filepath.Join(path, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	err := WriteBytes(path, []byte("new"), 0o644)
	if err == nil {
		t.Fatal("replaced a folder with a file")
	}
	if strings.Contains(err.Error(), ".tmp-") {
		t.Errorf("error %q names the temporary file", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || entries[0].Name() != "d" || !entries[0].IsDir() {
		t.Errorf("folder holds %v, want only d/", entries)
	}
}

func TestWriteUnwritableFolder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "no", "such", "f")
	err := WriteBytes(path, []byte("x"), 0o644)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("error %v, want one wrapping fs.ErrNotExist", err)
	}
	if want := "write " + path + ": no such file or directory"; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
}

func TestPrepareCommitDiscard(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	if err := WriteBytes(a, []byte("old a"), 0o644); err != nil {
		t.Fatal(err)
	}

	// Prepared but discarded: nothing changes.
	pa, err := PrepareBytes(a, []byte("new a"), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	pb, err := PrepareBytes(b, []byte("new b"), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if pa.Path() != a {
		t.Errorf("Path() = %s, want %s", pa.Path(), a)
	}
	pa.Discard()
	pb.Discard()
	pb.Discard()
	checkOnly(t, dir, map[string]string{"a": "old a"})
	if err := pa.Commit(); err == nil {
		t.Error("Commit after Discard succeeded")
	}

	// Prepared, then committed together.
	pa, err = PrepareBytes(a, []byte("new a"), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer pa.Discard()
	pb, err = PrepareBytes(b, []byte("new b"), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer pb.Discard()
	if b, _ := os.ReadFile(a); string(b) != "old a" {
		t.Errorf("a holds %q before Commit, want the old content", b)
	}
	for _, p := range []*Pending{pa, pb} {
		if err := p.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	if err := pa.Commit(); err == nil {
		t.Error("a second Commit succeeded")
	}
	checkOnly(t, dir, map[string]string{"a": "new a", "b": "new b"})
	if st, _ := os.Stat(b); st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode().Perm())
	}
}
