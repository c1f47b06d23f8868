// Package atomicfile writes files so that readers see either the old
// content or the new one, never a partial write.
//
// A file is written to a temporary file in the same folder, named
// ".NAME.tmp-RANDOM", synced, and renamed over its destination. Whatever
// fails (creating, writing, syncing, closing or renaming the temporary
// file, or a panic in the caller's code that fills it), the temporary file
// is removed and the destination is left as it was. Errors name the
// destination, not the temporary file, and wrap the underlying error, so
// that errors.Is(err, syscall.ENOSPC) and the like work.
package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Write writes the output of fill to path atomically: it writes a temporary
// file in the same folder, syncs it, and renames it over path. On any error
// the temporary file is removed and path is left as it was.
func Write(path string, perm os.FileMode, fill func(f *os.File) error) error {
	p, err := Prepare(path, perm, fill)
	if err != nil {
		return err
	}
	return p.Commit()
}

// WriteBytes writes data to path atomically.
func WriteBytes(path string, data []byte, perm os.FileMode) error {
	return Write(path, perm, writeBytes(data))
}

// Pending is a file written in full beside its destination but not yet in
// its place. Commit puts it there; Discard removes it. Preparing every file
// of a group before committing any lets a caller write several files that
// belong together (an encoder and its decoder, codes and their labels) so
// that a full disk leaves the old group rather than a mix of old and new.
type Pending struct {
	path string // destination
	tmp  string // temporary file; "" once committed or discarded
}

// Prepare writes the output of fill to a temporary file beside path, with
// permissions perm, syncs and closes it, and returns it as a Pending file;
// path itself is not touched. On error nothing is left behind.
func Prepare(path string, perm os.FileMode, fill func(f *os.File) error) (*Pending, error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return nil, wrap(path, "", "", err)
	}
	name := tmp.Name()
	done := false
	defer func() {
		if !done { // an error or a panic in fill
			tmp.Close()
			os.Remove(name)
		}
	}()
	if err := fill(tmp); err != nil {
		return nil, wrap(path, name, "", err)
	}
	if err := tmp.Chmod(perm); err != nil {
		return nil, wrap(path, name, "", err)
	}
	if err := tmp.Sync(); err != nil {
		return nil, wrap(path, name, "sync", err)
	}
	if err := tmp.Close(); err != nil {
		return nil, wrap(path, name, "close", err)
	}
	done = true
	return &Pending{path: path, tmp: name}, nil
}

// PrepareBytes is Prepare with data as the content.
func PrepareBytes(path string, data []byte, perm os.FileMode) (*Pending, error) {
	return Prepare(path, perm, writeBytes(data))
}

// Path returns the destination of p.
func (p *Pending) Path() string { return p.path }

// Commit renames the temporary file over the destination and syncs the
// folder. On error the temporary file is removed and the destination is
// left as it was. Commit after Commit or Discard is an error.
func (p *Pending) Commit() error {
	if p.tmp == "" {
		return fmt.Errorf("write %s: already committed or discarded", p.path)
	}
	tmp := p.tmp
	p.tmp = ""
	if err := os.Rename(tmp, p.path); err != nil {
		os.Remove(tmp)
		return wrap(p.path, tmp, "", err)
	}
	// Sync the folder so that the rename itself survives a crash.
	if d, err := os.Open(filepath.Dir(p.path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// Discard removes the temporary file. It does nothing after Commit or
// Discard, so that it can be deferred right after Prepare.
func (p *Pending) Discard() {
	if p.tmp != "" {
		os.Remove(p.tmp)
		p.tmp = ""
	}
}

func writeBytes(data []byte) func(f *os.File) error {
	return func(f *os.File) error {
		_, err := f.Write(data)
		return err
	}
}

// wrap returns "write PATH: [step: ]err". When err is a *fs.PathError
// about the temporary file (tmp, or for tmp "" the one os.CreateTemp
// tried to create) or an *os.LinkError from renaming it, it is replaced by
// the error it wraps, so that the message names the destination that the
// caller knows rather than a file that no longer exists; errors.Is still
// sees the underlying error.
func wrap(path, tmp, step string, err error) error {
	if pe, ok := err.(*fs.PathError); ok && (tmp == "" || pe.Path == tmp) {
		err = pe.Err
	} else if le, ok := err.(*os.LinkError); ok && le.Old == tmp {
		err = le.Err
	}
	if step != "" {
		return fmt.Errorf("write %s: %s: %w", path, step, err)
	}
	return fmt.Errorf("write %s: %w", path, err)
}

// MissingDirs returns dir and those of its parents that do not exist,
// deepest first: the folders that os.MkdirAll(dir) would create, and that
// a command removes again when it fails before writing anything into them.
func MissingDirs(dir string) []string {
	var missing []string
	for d := filepath.Clean(dir); ; {
		if _, err := os.Stat(d); !errors.Is(err, fs.ErrNotExist) {
			return missing
		}
		missing = append(missing, d)
		parent := filepath.Dir(d)
		if parent == d {
			return missing
		}
		d = parent
	}
}
