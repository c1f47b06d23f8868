package evaluation

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
)

// kmeansMaxIterations caps the Lloyd iterations of one k-means run.
const kmeansMaxIterations = 300

// kmeansTol is the convergence threshold of a k-means run, relative to the
// mean variance of the coordinates of the codes (as in scikit-learn).
const kmeansTol = 1e-4

// kmeansBlock is the number of codes per block of the parallel assignment.
const kmeansBlock = 1024

// kmeansStream is the second PCG word of the generator that KMeans seeds.
const kmeansStream = 0x9e3779b97f4a7c15

// KMeans clusters the n codes of size d in codes (row-major, n·d values)
// into k clusters with Lloyd's algorithm from a k-means++ initialisation.
// It makes restarts independent runs, drawing from one PCG generator
// (math/rand/v2) seeded with seed, and returns the run with the lowest
// inertia: assign[i] in [0, k) is the cluster of code i, and inertia is the
// sum of the squared Euclidean distances of the codes to the centres of
// their clusters. The result depends only on the arguments.
//
// A run stops when no code changes cluster, when the centres moved by a
// total squared distance of at most kmeansTol times the mean variance of the
// coordinates of the codes (the rule of scikit-learn), or after
// kmeansMaxIterations iterations; the assignment returned is that to the
// final centres. A cluster left empty is moved to the code farthest from its
// centre. Codes are assigned to the nearest centre, the lowest-numbered of
// equally near ones. The assignment runs over fixed blocks of codes in
// runtime.GOMAXPROCS(0) goroutines, which does not change the result.
//
// It is an error for n or d to be less than 1, for len(codes) to differ
// from n·d, for k to be outside [1, n], for restarts to be less than 1 or
// for a code to hold a NaN or an infinity.
func KMeans(codes []float32, n, d, k, restarts int, seed uint64) (assign []int, inertia float64, err error) {
	switch {
	case n < 1:
		return nil, 0, fmt.Errorf("k-means: n = %d codes, want > 0", n)
	case d < 1:
		return nil, 0, fmt.Errorf("k-means: code size d = %d, want > 0", d)
	case len(codes) != n*d:
		return nil, 0, fmt.Errorf("k-means: %d code values, want n·d = %d·%d", len(codes), n, d)
	case k < 1 || k > n:
		return nil, 0, fmt.Errorf("k-means: k = %d outside [1, %d], the number of codes", k, n)
	case restarts < 1:
		return nil, 0, fmt.Errorf("k-means: %d restarts, want > 0", restarts)
	}
	if err := checkFinite("k-means", codes, d); err != nil {
		return nil, 0, err
	}
	x := toFloat64(codes)
	rng := rand.New(rand.NewPCG(seed, kmeansStream))

	r := &kmeansRun{
		x: x, n: n, d: d, k: k,
		tol:        kmeansTol * meanVariance(x, n, d),
		centres:    make([]float64, k*d),
		old:        make([]float64, k*d),
		assign:     make([]int, n),
		dist:       make([]float64, n),
		counts:     make([]int, k),
		blockMoved: make([]int, (n+kmeansBlock-1)/kmeansBlock),
		blockSum:   make([]float64, (n+kmeansBlock-1)/kmeansBlock),
	}
	inertia = math.Inf(1)
	for range restarts {
		r.init(rng)
		if in := r.lloyd(); in < inertia {
			inertia = in
			assign = append(assign[:0], r.assign...)
		}
	}
	return assign, inertia, nil
}

// kmeansRun holds the state of one k-means run over the n codes of size d
// in x. Its buffers are reused between restarts.
type kmeansRun struct {
	x       []float64
	n, d, k int
	tol     float64   // threshold of the total squared shift of the centres
	centres []float64 // k×d
	old     []float64 // centres before the update step
	assign  []int     // cluster of each code
	dist    []float64 // squared distance of each code to its centre
	counts  []int     // codes in each cluster

	blockMoved []int     // codes that changed cluster, per block
	blockSum   []float64 // inertia per block
}

// meanVariance returns the mean over the d coordinates of the variance of
// the n codes in x.
func meanVariance(x []float64, n, d int) float64 {
	mean := make([]float64, d)
	for i, v := range x {
		mean[i%d] += v
	}
	for j := range mean {
		mean[j] /= float64(n)
	}
	v := 0.0
	for i, xv := range x {
		t := xv - mean[i%d]
		v += t * t
	}
	return v / float64(n*d)
}

func (r *kmeansRun) code(i int) []float64   { return r.x[i*r.d : (i+1)*r.d] }
func (r *kmeansRun) centre(c int) []float64 { return r.centres[c*r.d : (c+1)*r.d] }

// init chooses the centres by k-means++: the first is a uniformly random
// code and each next one a code drawn with probability proportional to its
// squared distance to the nearest centre chosen so far.
func (r *kmeansRun) init(rng *rand.Rand) {
	copy(r.centre(0), r.code(rng.IntN(r.n)))
	for i := range r.n {
		r.dist[i] = sqDist(r.code(i), r.centre(0))
	}
	for c := 1; c < r.k; c++ {
		total := 0.0
		for _, v := range r.dist {
			total += v
		}
		pick := r.n - 1
		if total == 0 {
			// Every code is on a centre already.
			pick = rng.IntN(r.n)
		} else {
			u := rng.Float64() * total
			cum := 0.0
			for i, v := range r.dist {
				cum += v
				if cum > u {
					pick = i
					break
				}
			}
		}
		copy(r.centre(c), r.code(pick))
		for i := range r.n {
			r.dist[i] = min(r.dist[i], sqDist(r.code(i), r.centre(c)))
		}
	}
}

// lloyd runs Lloyd's algorithm from the current centres and returns the
// inertia of the final assignment.
func (r *kmeansRun) lloyd() float64 {
	for i := range r.assign {
		r.assign[i] = -1
	}
	shift := math.Inf(1)
	for it := 0; ; it++ {
		changed, inertia := r.assignStep()
		if changed == 0 || shift <= r.tol || it == kmeansMaxIterations {
			return inertia
		}
		copy(r.old, r.centres)
		r.updateStep()
		shift = sqDist(r.centres, r.old)
	}
}

// assignStep moves each code to its nearest centre and returns the number
// of codes that changed cluster and the inertia. Blocks of codes are
// assigned in parallel and their sums added in order.
func (r *kmeansRun) assignStep() (changed int, inertia float64) {
	blocks := len(r.blockSum)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), blocks) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				b := int(next.Add(1)) - 1
				if b >= blocks {
					return
				}
				r.blockMoved[b], r.blockSum[b] = r.assignBlock(b*kmeansBlock, min((b+1)*kmeansBlock, r.n))
			}
		}()
	}
	wg.Wait()
	for b := range blocks {
		changed += r.blockMoved[b]
		inertia += r.blockSum[b]
	}
	return changed, inertia
}

// assignBlock assigns codes lo to hi-1 for assignStep.
func (r *kmeansRun) assignBlock(lo, hi int) (changed int, inertia float64) {
	for i := lo; i < hi; i++ {
		x := r.code(i)
		best, bestDist := 0, math.Inf(1)
		for c := range r.k {
			if dd := sqDist(x, r.centre(c)); dd < bestDist {
				best, bestDist = c, dd
			}
		}
		if r.assign[i] != best {
			r.assign[i] = best
			changed++
		}
		r.dist[i] = bestDist
		inertia += bestDist
	}
	return changed, inertia
}

// updateStep moves each centre to the mean of its codes, and each centre of
// an empty cluster to the code farthest from its own centre, a different
// code for each empty cluster.
func (r *kmeansRun) updateStep() {
	clear(r.centres)
	clear(r.counts)
	for i, c := range r.assign {
		r.counts[c]++
		ctr := r.centre(c)
		for j, v := range r.code(i) {
			ctr[j] += v
		}
	}
	for c, cnt := range r.counts {
		ctr := r.centre(c)
		if cnt > 0 {
			for j := range ctr {
				ctr[j] /= float64(cnt)
			}
			continue
		}
		far := 0
		for i, v := range r.dist {
			if v > r.dist[far] {
				far = i
			}
		}
		copy(ctr, r.code(far))
		r.dist[far] = -1 // not chosen again
	}
}

// sqDist returns the squared Euclidean distance between a and b, which
// have the same length.
func sqDist(a, b []float64) float64 {
	s := 0.0
	for j, v := range a {
		t := v - b[j]
		s += t * t
	}
	return s
}
