//go:build !cgo

package trainer

// spareProc is false in pure Go, which makes no long C calls (see
// workPool).
const spareProc = false
