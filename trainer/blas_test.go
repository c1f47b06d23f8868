package trainer

import (
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// TestParallelPartsCoversEachIndexOnce calls parallelParts from several
// goroutines at once, so that some calls use the worker pool and others
// fall back to new goroutines, and checks that every call visits each
// index of [0, n) exactly once, in the ranges it promises.
func TestParallelPartsCoversEachIndexOnce(t *testing.T) {
	workPool.size() // started, if not yet, at the process's GOMAXPROCS
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	var wg sync.WaitGroup
	for g := range 6 {
		wg.Go(func() {
			for i := range 300 {
				n, parts := 1+(i*7+g)%97, 1+(i+g)%5
				seen := make([]int32, n)
				parallelParts(n, parts, func(w, lo, hi int) {
					p := max(1, min(parts, n))
					if lo != w*n/p || hi != (w+1)*n/p {
						t.Errorf("n=%d parts=%d: worker %d got [%d, %d)", n, parts, w, lo, hi)
					}
					for j := lo; j < hi; j++ {
						seen[j]++
					}
				})
				for j, c := range seen {
					if c != 1 {
						t.Fatalf("n=%d parts=%d: index %d visited %d times", n, parts, j, c)
					}
				}
			}
		})
	}
	wg.Wait()
}

// TestGemmMatchesGonum checks that the products of the BLAS the trainer
// runs (OpenBLAS with the kernels its constructor or $OPENBLAS_CORETYPE
// chose, or gonum's) agree with gonum's pure-Go Sgemm, within the error
// bound of float32 sums of k products, on shapes with remainders, every
// transposition, and through gemm's split among goroutines.
func TestGemmMatchesGonum(t *testing.T) {
	t.Logf("BLAS: %s", BLAS())
	rng := rand.New(rand.NewPCG(1, 2))
	for _, sh := range []struct{ m, n, k int }{{64, 512, 784}, {784, 512, 64}, {17, 33, 65}, {1, 1568, 128}, {300, 7, 1000}} {
		for _, tr := range [][2]bool{{false, false}, {true, false}, {false, true}, {true, true}} {
			tA, tB := tr[0], tr[1]
			a, b := make([]float32, sh.m*sh.k), make([]float32, sh.k*sh.n)
			for i := range a {
				a[i] = float32(rng.NormFloat64())
			}
			for i := range b {
				b[i] = float32(rng.NormFloat64())
			}
			lda, ldb := sh.k, sh.n
			if tA {
				lda = sh.m
			}
			if tB {
				ldb = sh.k
			}
			got, want := make([]float32, sh.m*sh.n), make([]float32, sh.m*sh.n)
			gemm(tA, tB, sh.m, sh.n, sh.k, a, lda, b, ldb, 0, got, sh.n)
			op := func(t bool) blas.Transpose {
				if t {
					return blas.Trans
				}
				return blas.NoTrans
			}
			gonum.Implementation{}.Sgemm(op(tA), op(tB), sh.m, sh.n, sh.k, 1, a, lda, b, ldb, 0, want, sh.n)
			at := func(x []float32, ld int, t bool, r, c int) float64 {
				if t {
					return float64(x[c*ld+r])
				}
				return float64(x[r*ld+c])
			}
			gamma := float64(sh.k) * 0x1p-24 / (1 - float64(sh.k)*0x1p-24)
			for i := range sh.m {
				for j := range sh.n {
					abs := 0.0
					for p := range sh.k {
						abs += math.Abs(at(a, lda, tA, i, p) * at(b, ldb, tB, p, j))
					}
					if d := math.Abs(float64(got[i*sh.n+j]) - float64(want[i*sh.n+j])); d > 2*gamma*abs {
						t.Fatalf("%+v trans %v: C[%d][%d] = %v, gonum %v: %.3g apart, more than the bound %.3g",
							sh, tr, i, j, got[i*sh.n+j], want[i*sh.n+j], d, 2*gamma*abs)
					}
				}
			}
		}
	}
}

// TestPoolSparesAProcessor checks that a graph's run keeps GOMAXPROCS one
// above the pool's size in a build with cgo, and as it is in pure Go (see
// workPool): after a step, again after GOMAXPROCS was set back to the
// pool's size (as the testing package does before a benchmark's timed
// runs), and not where it was set lower. The pool's size stays as it was
// when it started, whatever GOMAXPROCS becomes.
func TestPoolSparesAProcessor(t *testing.T) {
	const batch = 64
	images, _ := benchImages(batch)
	tr := notebookTrainer(t, "classic")
	step := func() {
		t.Helper()
		if _, err := tr.Step(images[:batch*784], batch); err != nil {
			t.Fatal(err)
		}
	}
	step()
	size := workPool.size()
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	spare := size
	if spareProc {
		spare++
	}
	for _, c := range []struct {
		name      string
		set, want int
	}{
		{"after a step", 0, spare},
		{"set back to the pool's size", size, spare},
		{"set lower", max(1, size-1), max(1, size-1)},
		{"set higher", size + 3, size + 3},
	} {
		if c.set > 0 {
			runtime.GOMAXPROCS(c.set)
		}
		step()
		if got := runtime.GOMAXPROCS(0); got != c.want {
			t.Errorf("%s: GOMAXPROCS %d with a pool of %d goroutines, want %d (spareProc %v)", c.name, got, size, c.want, spareProc)
		}
		if got := workPool.size(); got != size {
			t.Errorf("%s: the pool's size went from %d to %d", c.name, size, got)
		}
		if got := workers(1<<20, 1); got != size {
			t.Errorf("%s: workers(2^20, 1) = %d, want the pool's %d", c.name, got, size)
		}
	}
}

// TestBacklogRunsEachTaskOnce queues tasks on the pool's backlog in two
// groups, from two goroutines that also call parallelParts meanwhile, and
// checks that finish returns only once each of its group's tasks has run,
// that every task runs exactly once, and on a goroutine w of the pool.
func TestBacklogRunsEachTaskOnce(t *testing.T) {
	size := workPool.size()
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	var wg sync.WaitGroup
	for g := range 2 {
		wg.Go(func() {
			for round := range 50 {
				const n = 40
				var ran [n]atomic.Int32
				var left atomic.Int32
				tasks := make([]func(int), n)
				for i := range tasks {
					tasks[i] = func(w int) {
						if w < 0 || w >= size {
							t.Errorf("task ran as w=%d, want [0, %d)", w, size)
						}
						for j := 0; j < 2000*(i%3); j++ { // tasks of uneven length
							_ = math.Sqrt(float64(j))
						}
						ran[i].Add(1)
					}
				}
				workPool.later(&left, tasks[:n/2]...)
				seen := make([]int32, 97)
				parallelParts(len(seen), 2, func(_, lo, hi int) {
					for j := lo; j < hi; j++ {
						seen[j]++
					}
				})
				workPool.later(&left, tasks[n/2:]...)
				workPool.finish(&left)
				for i := range ran {
					if c := ran[i].Load(); c != 1 {
						t.Fatalf("goroutine %d, round %d: task %d ran %d times by the time finish returned", g, round, i, c)
					}
				}
				for j, c := range seen {
					if c != 1 {
						t.Fatalf("parallelParts beside the backlog: index %d visited %d times", j, c)
					}
				}
			}
		})
	}
	wg.Wait()
}
