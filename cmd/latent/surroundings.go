package main

import (
	"errors"
	"io/fs"
	"syscall"
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
