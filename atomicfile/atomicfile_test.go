package atomicfile

import (
	"errors"
	"os"
	"path/filepath"
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
