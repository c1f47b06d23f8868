package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/latent-ai/latent/atomicfile"
)

// This file holds what the commands share to cope with bad surroundings: a
// full disk, a file size limit, a read-only or unwritable folder.

// retryHint is what to do once the cause of a failure is fixed, unless a
// command says better.
const retryHint = "then run the command again"

// fsHint returns what the user can do about err when it comes from the
// file system (a full disk or quota, a file over the size limit, a
// read-only file system, missing permissions), ending with then, what to
// do once that is fixed; it returns "" for any other error. The error
// message itself already names the path and the cause.
func fsHint(err error, then string) string {
	var fix string
	switch {
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		fix = "free some space on that disk"
	case errors.Is(err, syscall.EFBIG):
		fix = "raise the file size limit (ulimit -f) or write to another disk"
	case errors.Is(err, syscall.EROFS):
		fix = "remount it read-write or use a folder on another disk"
	case errors.Is(err, fs.ErrPermission):
		fix = "check the permissions of that path or use another folder"
	default:
		return ""
	}
	return fix + ", " + then
}

// hinted is an error with what to do about it.
type hinted struct {
	err  error
	hint string
}

func (h *hinted) Error() string { return h.err.Error() + ": " + h.hint }
func (h *hinted) Unwrap() error { return h.err }

// withHint returns err with what to do about it (see fsHint) appended,
// unless it has one already or fsHint knows none.
func withHint(err error, then string) error {
	var h *hinted
	if errors.As(err, &h) {
		return err
	}
	if hint := fsHint(err, then); hint != "" {
		return &hinted{err, hint}
	}
	return err
}

// checkWritable returns an error if no file can be created in dir or, when
// dir does not exist yet, in the nearest parent that does (where dir will
// be created). It creates nothing that it does not remove again. Commands
// call it before their long work, so that a read-only or unwritable folder
// is reported at once rather than after minutes of training or encoding.
func checkWritable(dir string) error {
	d := filepath.Clean(dir)
	if missing := atomicfile.MissingDirs(d); len(missing) > 0 {
		d = filepath.Dir(missing[len(missing)-1])
	}
	f, err := os.CreateTemp(d, ".latent-check-*")
	if err != nil {
		return fmt.Errorf("cannot write into %s: %w", d, pathCause(err))
	}
	f.Close()
	return os.Remove(f.Name())
}

// pathCause returns the cause inside a *fs.PathError, whose message names
// a temporary file that is gone by the time the user reads it, or err.
func pathCause(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// stagingDir creates a hidden temporary folder in dir, named after what,
// for files that are moved into place only once all of them are written.
// The caller removes it.
func stagingDir(dir, what string) (string, error) {
	tmp, err := os.MkdirTemp(dir, "."+what+"-")
	if err != nil {
		return "", fmt.Errorf("%s: cannot write into %s: %w", what, dir, pathCause(err))
	}
	return tmp, nil
}

// stagedError returns err, from writing into a staging folder (see
// stagingDir) the files meant for dst, as "WHAT: cannot write into DST:
// CAUSE" when the system refused the write, so that the message names
// where the files were going rather than a temporary file that is gone;
// any other error is returned as it is.
func stagedError(what, dst string, err error) error {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return fmt.Errorf("%s: cannot write into %s: %w", what, dst, errno)
	}
	return err
}

// replaceDir moves the folder src to dst, which it replaces: a folder
// already at dst is moved aside first, then removed once src is in place,
// or moved back if that fails. src and dst must be on the same disk.
func replaceDir(src, dst string) error {
	aside := src + ".old"
	hadOld := true
	if err := os.Rename(dst, aside); errors.Is(err, fs.ErrNotExist) {
		hadOld = false
	} else if err != nil {
		return fmt.Errorf("replace %s: %w", dst, err)
	}
	if err := os.Rename(src, dst); err != nil {
		if hadOld {
			os.Rename(aside, dst)
		}
		return fmt.Errorf("replace %s: %w", dst, err)
	}
	if hadOld {
		if err := os.RemoveAll(aside); err != nil {
			return fmt.Errorf("replace %s: remove the old one: %w", dst, err)
		}
	}
	return nil
}
