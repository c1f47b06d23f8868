package trainer

import (
	"runtime"
	"sync"
	"testing"
)

// TestParallelPartsCoversEachIndexOnce calls parallelParts from several
// goroutines at once, so that some calls use the worker pool and others
// fall back to new goroutines, and checks that every call visits each
// index of [0, n) exactly once, in the ranges it promises.
func TestParallelPartsCoversEachIndexOnce(t *testing.T) {
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
