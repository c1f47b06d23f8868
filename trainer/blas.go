package trainer

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"gonum.org/v1/gonum/blas"
	G "gorgonia.org/gorgonia"

	"github.com/latent-ai/latent/trainer/internal/kernels"
)

// float is the element type of the trainer's custom ops: float32 for
// training, float64 for the finite-difference gradient test.
type float interface{ ~float32 | ~float64 }

// gemmSplit is whether gemm splits large products across goroutines
// itself, for a BLAS that runs each call on one thread.
var gemmSplit = false

// blasThreaded is whether the BLAS runs each call on several threads of its
// own that spin while they wait (OpenBLAS with OPENBLAS_NUM_THREADS > 1):
// then the ops call it from one goroutine at a time.
var blasThreaded = false

// gemmWorkers is the number of goroutines among which an op shares n items
// of work that call gemmCall, grain at least each.
func gemmWorkers(n, grain int) int {
	if blasThreaded {
		return 1
	}
	return workers(n, grain)
}

// gemmGrain is the least number of multiply-adds worth a goroutine.
const gemmGrain = 1 << 18

// gemm computes C = op(A)·op(B) + beta·C with the BLAS that Gorgonia uses
// (G.WhichBLAS: gonum's pure-Go BLAS by default, OpenBLAS with the openblas
// build tag), or, for the float32 products that gemmPart hands it, with the
// trainer's own kernel, where op(X) is X or Xᵀ. C is m×n, op(A) m×k, op(B) k×n, all
// row-major with leading dimensions lda, ldb and ldc. With gemmSplit, the
// rows or the columns of C are shared among goroutines; every value of C is
// still computed by one call, so the result does not depend on the split.
func gemm[T float](transA, transB bool, m, n, k int, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int) {
	gemmThen(transA, transB, m, n, k, a, lda, b, ldb, beta, c, ldc, nil)
}

// gemmThen is gemm, and then, with then non-nil, calls then(r0, r1, c0, c1)
// on blocks of C (rows [r0, r1), columns [c0, c1)) that cover it once. Where
// gemm shares the product among goroutines, each block is one goroutine's
// part, passed to then on that goroutine as soon as its gemm call returns,
// while the block is in that core's cache; else C is shared among
// goroutines after the one call. Either way, with n >= m every block holds
// whole columns, else whole rows.
func gemmThen[T float](transA, transB bool, m, n, k int, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int, then func(r0, r1, c0, c1 int)) {
	if m == 0 || n == 0 {
		return
	}
	parts := 1
	if gemmSplit {
		parts = min(workPool.size(), m*n*k/gemmGrain, max(m, n)/8)
	}
	if parts <= 1 {
		gemmPart(transA, transB, m, n, k, a, lda, b, ldb, beta, c, ldc)
		if then != nil {
			if n >= m {
				parallelFor(n, max(1, grain/m), func(lo, hi int) { then(0, m, lo, hi) })
			} else {
				parallelFor(m, max(1, grain/n), func(lo, hi int) { then(lo, hi, 0, n) })
			}
		}
		return
	}
	if then == nil {
		then = func(int, int, int, int) {}
	}
	if n >= m {
		parallelParts(n, parts, func(_, lo, hi int) {
			bj := lo // the columns of op(B) from lo
			if transB {
				bj = lo * ldb
			}
			gemmPart(transA, transB, m, hi-lo, k, a, lda, b[bj:], ldb, beta, c[lo:], ldc)
			then(0, m, lo, hi)
		})
		return
	}
	parallelParts(m, parts, func(_, lo, hi int) {
		ai := lo * lda // the rows of op(A) from lo
		if transA {
			ai = lo
		}
		gemmPart(transA, transB, hi-lo, n, k, a[ai:], lda, b, ldb, beta, c[lo*ldc:], ldc)
		then(lo, hi, 0, n)
	})
}

// ownGemm is whether gemm runs the float32 products it can on the
// trainer's own kernel, kernels.Sgemm, instead of the BLAS: those with A
// not transposed and beta 0, on a CPU with AVX-512 (see gemmPart).
var ownGemm = kernels.Vector

// gemmPart is gemmCall, on kernels.Sgemm where ownGemm allows: at batch 64
// the Linear layers' products (forward, and input gradient with B
// transposed) run faster on it than on OpenBLAS, which packs both operands
// for every call. Its sums run in its own order (one chain of fused
// multiply-adds a value, over k in order) on every CPU with AVX-512,
// whichever kernels the BLAS picked.
func gemmPart[T float](transA, transB bool, m, n, k int, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int) {
	if ownGemm && !transA && beta == 0 {
		if a32, ok := any(a).([]float32); ok &&
			kernels.Sgemm(transB, m, n, k, a32, lda, any(b).([]float32), ldb, any(c).([]float32), ldc) {
			return
		}
	}
	gemmCall(transA, transB, m, n, k, a, lda, b, ldb, beta, c, ldc)
}

func gemmCall[T float](transA, transB bool, m, n, k int, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int) {
	tA, tB := blas.NoTrans, blas.NoTrans
	if transA {
		tA = blas.Trans
	}
	if transB {
		tB = blas.Trans
	}
	switch a := any(a).(type) {
	case []float32:
		G.WhichBLAS().Sgemm(tA, tB, m, n, k, 1, a, lda, any(b).([]float32), ldb, float32(beta), any(c).([]float32), ldc)
	case []float64:
		G.WhichBLAS().Dgemm(tA, tB, m, n, k, 1, a, lda, any(b).([]float64), ldb, float64(beta), any(c).([]float64), ldc)
	}
}

// parallelFor calls body(lo, hi) on contiguous parts of [0, n) that cover
// it, concurrently on up to workPool.size() goroutines when n is at least twice
// grain. Each index is handled by exactly one call, so bodies that write
// only to the indices they are given stay deterministic.
func parallelFor(n, grain int, body func(lo, hi int)) {
	parallelParts(n, workers(n, grain), func(_, lo, hi int) { body(lo, hi) })
}

// workers is the number of goroutines that parallelFor uses for n items.
func workers(n, grain int) int {
	return max(1, min(workPool.size(), n/max(grain, 1)))
}

// parallelParts splits [0, n) into parts contiguous ranges and calls
// body(w, lo, hi) for range w, range 0 on the caller's goroutine and the
// others on the worker pool's (or on new goroutines while the pool is busy
// with another call).
func parallelParts(n, parts int, body func(w, lo, hi int)) {
	parts = max(1, min(parts, n))
	if parts == 1 {
		body(0, 0, n)
		return
	}
	if workPool.run(n, parts, body) {
		return
	}
	var wg sync.WaitGroup
	wg.Add(parts - 1)
	for w := 1; w < parts; w++ {
		go func() {
			defer wg.Done()
			body(w, w*n/parts, (w+1)*n/parts)
		}()
	}
	body(0, 0, n/parts)
	wg.Wait()
}

// workPool is the goroutines that take the parts of parallelParts: one
// fewer than GOMAXPROCS when the pool started (the trainer's first step),
// the caller being the other (size).
//
// In a build with cgo (the C kernels, OpenBLAS) each run of a graph then
// keeps GOMAXPROCS one above that (keepSpare), a processor left idle:
// while every processor (P) is in a long C call, the Go runtime's monitor takes one from its
// goroutine and wakes a thread to look for other work, and the goroutine
// waits for a processor when its call returns. With a P to spare the
// monitor leaves calls of under 10 ms alone. On a 2-vCPU machine, with the
// graphs run on the caller's goroutine (tape), that made training steps
// 19% (classic) and 14% (conv) faster; see "A processor to spare" in the
// README.
//
// A training step hands out work some forty times, a few hundred
// microseconds apiece. A goroutine started for each part, or a worker
// blocked on a channel, waits for its thread to be woken, which on a
// virtual machine takes tens of microseconds and left a core idle for a
// quarter of a step. So a worker spins for up to workerSpin after its last
// part before it blocks, as OpenMP's and OpenBLAS's threads do, and the
// caller spins for up to callerSpin while it waits for the parts to finish.
var workPool pool

// workerSpin is how long an idle worker keeps looking for work before it
// blocks: longer than the gaps within a step, short enough that an idle
// trainer gives the CPU back at once.
const workerSpin = 200 * time.Microsecond

// callerSpin is how long the caller spins for its workers to finish their
// parts before it blocks.
const callerSpin = 50 * time.Microsecond

type pool struct {
	busy     atomic.Bool // whether a call owns the pool
	once     sync.Once
	workers  []*poolWorker
	waiting  atomic.Bool   // whether the caller blocks on finished
	finished chan struct{} // capacity 1: the last part is done
	bg       backlog
}

type poolWorker struct {
	id       int // its index for body's w: 1, 2, …
	pool     *pool
	task     atomic.Pointer[poolTask]
	sleeping atomic.Bool
	wake     chan struct{} // capacity 1
}

type poolTask struct {
	pool        *pool
	body        func(w, lo, hi int)
	w, n, parts int
	done        *atomic.Int32 // parts not yet finished
}

// run runs the parts 1..parts-1 of body on the workers and part 0 on the
// caller, and reports whether it could: false if another call is using
// the pool or there are too few workers.
func (p *pool) run(n, parts int, body func(w, lo, hi int)) bool {
	p.once.Do(p.start)
	if parts-1 > len(p.workers) || !p.busy.CompareAndSwap(false, true) {
		return false
	}
	defer p.busy.Store(false)
	var done atomic.Int32
	done.Store(int32(parts - 1))
	for w := 1; w < parts; w++ {
		wk := p.workers[w-1]
		wk.task.Store(&poolTask{pool: p, body: body, w: w, n: n, parts: parts, done: &done})
		if wk.sleeping.Load() {
			select {
			case wk.wake <- struct{}{}:
			default:
			}
		}
	}
	body(0, 0, n/parts)
	p.wait(&done)
	return true
}

// wait returns once done is 0: it spins for up to callerSpin, then blocks
// until the worker that finishes last says so, so that a caller whose
// worker was descheduled (on a busy machine) does not burn a core. While it
// waits it runs tasks of the backlog, if any.
func (p *pool) wait(done *atomic.Int32) {
	start := time.Now()
	for i := 0; done.Load() != 0; i++ {
		if p.bg.runOne(0) {
			start = time.Now()
			continue
		}
		if i%64 == 63 {
			if time.Since(start) > callerSpin {
				break
			}
			runtime.Gosched()
		}
	}
	p.waiting.Store(true)
	for done.Load() != 0 {
		<-p.finished
	}
	p.waiting.Store(false)
	// Drop a word from a worker that finished after the check above.
	select {
	case <-p.finished:
	default:
	}
}

func (p *pool) start() {
	p.finished = make(chan struct{}, 1)
	for i := range runtime.GOMAXPROCS(0) - 1 {
		wk := &poolWorker{id: i + 1, pool: p, wake: make(chan struct{}, 1)}
		p.workers = append(p.workers, wk)
		go wk.loop()
	}
}

func (wk *poolWorker) loop() {
	for {
		t := wk.spin()
		if t == nil {
			wk.sleeping.Store(true)
			// Look once more after saying so: a task, or a backlog, stored
			// before sleeping was set came with no wake-up.
			if t = wk.task.Swap(nil); t == nil {
				if wk.pool.bg.queued.Load() == 0 {
					<-wk.wake
				}
				wk.sleeping.Store(false)
				continue
			}
			wk.sleeping.Store(false)
		}
		t.body(t.w, t.w*t.n/t.parts, (t.w+1)*t.n/t.parts)
		if t.done.Add(-1) == 0 && t.pool.waiting.Load() {
			select {
			case t.pool.finished <- struct{}{}:
			default:
			}
		}
	}
}

// spin looks for a task for up to workerSpin, running the backlog's tasks
// meanwhile.
func (wk *poolWorker) spin() *poolTask {
	start := time.Now()
	for i := 0; ; i++ {
		if t := wk.task.Swap(nil); t != nil {
			return t
		}
		if wk.pool.bg.runOne(wk.id) {
			start = time.Now()
			continue
		}
		if i%256 == 255 {
			if time.Since(start) > workerSpin {
				return nil
			}
			runtime.Gosched()
		}
	}
}

// backlog is work that may run at any time until the caller that queued it
// waits for it (see later): the pool's goroutines take its tasks whenever
// they have no part of parallelParts to run, so that a core that would
// wait for the other fills the gap.
type backlog struct {
	mu     sync.Mutex
	tasks  []backlogTask
	next   int          // tasks[next:] are queued
	queued atomic.Int32 // len(tasks) - next, read without mu
}

type backlogTask struct {
	run  func(w int)
	left *atomic.Int32 // its group's tasks not yet finished
}

// later queues tasks, each run once as run(w) on a goroutine of the pool:
// w is 0 on the goroutine that owns the pool (parallelParts' caller, or
// finish's) and a worker's own index on a worker, as in parallelParts. left counts the tasks not yet finished; later adds
// them, and each task's end takes one off. Wait for the group with
// workPool.finish(left). With no worker (a size of 1), later runs the
// tasks at once.
func (p *pool) later(left *atomic.Int32, tasks ...func(w int)) {
	p.once.Do(p.start)
	if len(p.workers) == 0 {
		for _, t := range tasks {
			t(0)
		}
		return
	}
	left.Add(int32(len(tasks)))
	p.bg.mu.Lock()
	if p.bg.next == len(p.bg.tasks) {
		p.bg.tasks, p.bg.next = p.bg.tasks[:0], 0
	}
	for _, t := range tasks {
		p.bg.tasks = append(p.bg.tasks, backlogTask{run: t, left: left})
	}
	p.bg.queued.Add(int32(len(tasks)))
	p.bg.mu.Unlock()
	for _, wk := range p.workers {
		if wk.sleeping.Load() {
			select {
			case wk.wake <- struct{}{}:
			default:
			}
		}
	}
}

// keepSpare starts the pool if it has not started, and raises GOMAXPROCS
// to the pool's size plus one, in a build with cgo, where it is the pool's
// size. Each run of a graph calls it first: the first raises GOMAXPROCS,
// and the others raise it again where a caller set it back (the testing
// package does so before each benchmark's timed runs). A GOMAXPROCS set
// lower or higher stays as it is.
func (p *pool) keepSpare() {
	if n := p.size(); spareProc && runtime.GOMAXPROCS(0) == n {
		runtime.GOMAXPROCS(n + 1)
	}
}

// size is the number of goroutines that run the pool's work, the caller
// included: the w of parallelParts and later is below it. It is
// GOMAXPROCS as it was when the pool started, on the first call of size,
// run or later, and the trainer computes on that many goroutines from then
// on, whatever GOMAXPROCS becomes: the bands of some of its sums, and so
// their bits, depend on it.
func (p *pool) size() int {
	p.once.Do(p.start)
	return len(p.workers) + 1
}

// finish returns once the tasks that later counted in left have all run.
// Meanwhile it runs queued tasks (its own or others') on the caller, as
// w = 0, if it can own the pool as parallelParts' caller does: two
// goroutines never run tasks as the same w at once, so that a task may
// use a scratch buffer of its w's. Else the pool's owner and workers run
// them.
func (p *pool) finish(left *atomic.Int32) {
	if left.Load() == 0 {
		return
	}
	own := p.busy.CompareAndSwap(false, true)
	for i := 0; left.Load() != 0; i++ {
		if own && p.bg.runOne(0) {
			continue
		}
		if i%64 == 63 {
			runtime.Gosched()
		}
	}
	if own {
		p.busy.Store(false)
	}
}

// runOne runs the next queued task, if any, as w, and reports whether it
// did.
func (q *backlog) runOne(w int) bool {
	if q.queued.Load() == 0 {
		return false
	}
	q.mu.Lock()
	if q.next == len(q.tasks) {
		q.mu.Unlock()
		return false
	}
	t := q.tasks[q.next]
	q.tasks[q.next] = backlogTask{}
	q.next++
	q.queued.Add(-1)
	q.mu.Unlock()
	t.run(w)
	t.left.Add(-1)
	return true
}

// scratchPool holds one scratch buffer per worker of parallelParts, kept by
// an op from run to run.
type scratchPool []any

// grow makes room for parts workers; call it before parallelParts.
func (p *scratchPool) grow(parts int) {
	for len(*p) < parts {
		*p = append(*p, nil)
	}
}

// poolScratch returns n values of worker w's buffer.
func poolScratch[T float](p scratchPool, w, n int) []T { return scratch[T](&p[w], n) }

// Kernels describes the hand-written kernels the trainer runs, for logs and
// "latent version".
func Kernels() string { return kernels.Describe() }
