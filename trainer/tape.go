package trainer

import (
	"fmt"
	"reflect"
	"unsafe"

	G "gorgonia.org/gorgonia"
)

// tape runs a Gorgonia tape machine's program on the calling goroutine.
//
// The machine's own RunAll locks its caller to its OS thread, starts a
// goroutine that runs the program, and blocks until that goroutine ends:
// RunAll is made for CUDA, whose contexts belong to a thread. So every run
// handed the caller's processor to another thread and back, twice a
// training step, and the threads that the Go scheduler woke for those
// hand-offs took cores from the two that compute. On a 2-vCPU virtual
// machine, with the pool's processor to spare (see workPool), classic's
// steps ran 19% faster this way and conv's 14% (see "A processor to
// spare" in the README).
//
// The trainer uses no CUDA and no batched BLAS, which are what RunAll adds
// around the program (its closures run only for BindDualValues, which the
// trainer does not use). So tape calls the machine's runall, the loop
// over the program that RunAll's goroutine runs, itself: Gorgonia does not
// export it, and tapeRunall reaches it by its link name. Gorgonia is
// pinned in go.mod (v0.9.18); a version without that method fails to link,
// and TestTapeRunsAsRunAll compares both ways bit for bit.
type tape struct {
	m    unsafe.Pointer // the *gorgonia.tapeMachine
	errc chan error     // capacity 1: runall's error, if any
	done chan struct{}  // capacity 1: runall ran the whole program
}

// newTape returns the tape of vm, or nil where vm is not a tape machine
// that tape can run (another VM, or a BLAS that batches its calls): run
// those with RunAll.
func newTape(vm G.VM) *tape {
	if fmt.Sprintf("%T", vm) != "*gorgonia.tapeMachine" {
		return nil
	}
	if _, batched := G.WhichBLAS().(interface{ DoWork() }); batched {
		return nil
	}
	return &tape{
		m:    reflect.ValueOf(vm).UnsafePointer(),
		errc: make(chan error, 1),
		done: make(chan struct{}, 1),
	}
}

// run runs the program once, from the machine's current instruction (the
// first, after Reset), and returns the error of the instruction that
// failed, if any.
func (t *tape) run() error {
	tapeRunall(t.m, t.errc, t.done)
	select {
	case err := <-t.errc:
		return err
	case <-t.done:
		return nil
	}
}

// tapeRunall is (*gorgonia.tapeMachine).runall: it runs the program from
// the machine's pc on, then sends on done, or sends the first error on
// errc and returns. Both channels must have room for a value.
//
//go:linkname tapeRunall gorgonia.org/gorgonia.(*tapeMachine).runall
func tapeRunall(m unsafe.Pointer, errc chan error, done chan struct{})
