package evaluation

import (
	"cmp"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
)

// KNNAccuracy returns the fraction of test codes whose label is predicted
// correctly by a k-nearest-neighbour vote among the training codes.
//
// trainCodes holds len(trainLabels) codes of size d and testCodes holds
// len(testLabels) codes of size d, both row-major. Neighbours are the k
// training codes nearest in Euclidean distance; among training codes at the
// same distance the one with the lower index is nearer. The predicted label
// is the most frequent label among the neighbours; a tie between labels goes
// to the tied label of the nearest neighbour. It is an error for k to be
// outside [1, len(trainLabels)], for either set to be empty or for a code
// to hold a NaN or an infinity.
//
// The search is exact. It keeps a bounded top-k per query and prunes with a
// k-d tree of the training codes, and it runs over the test codes in
// runtime.GOMAXPROCS(0) goroutines. It needs memory for a float64 copy of
// the codes and the tree, but none that grows with the product of the set
// sizes.
func KNNAccuracy(trainCodes []float32, trainLabels []uint8, testCodes []float32, testLabels []uint8, d, k int) (float64, error) {
	n, err := checkCodes("train", trainCodes, trainLabels, d)
	if err != nil {
		return 0, fmt.Errorf("k-NN accuracy: %w", err)
	}
	m, err := checkCodes("test", testCodes, testLabels, d)
	if err != nil {
		return 0, fmt.Errorf("k-NN accuracy: %w", err)
	}
	if k < 1 || k > n {
		return 0, fmt.Errorf("k-NN accuracy: k = %d outside [1, %d], the number of training codes", k, n)
	}
	if n > math.MaxInt32 {
		return 0, fmt.Errorf("k-NN accuracy: %d training codes, want at most %d", n, math.MaxInt32)
	}
	tree := newKDTree(trainCodes, d)
	test := toFloat64(testCodes)

	// Workers take blocks of test codes from a shared counter, so that a
	// slow core does not hold the others up.
	const block = 64
	workers := min(runtime.GOMAXPROCS(0), (m+block-1)/block)
	correct := make([]int, workers)
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := newSearcher(k, d)
			for {
				start := int(next.Add(block)) - block
				if start >= m {
					return
				}
				for q := start; q < min(start+block, m); q++ {
					s.search(tree, test[q*d:(q+1)*d])
					if s.vote(trainLabels) == testLabels[q] {
						correct[w]++
					}
				}
			}
		}()
	}
	wg.Wait()

	total := 0
	for _, c := range correct {
		total += c
	}
	return float64(total) / float64(m), nil
}

// kdSlack is the relative slack of the cell distances of visit.
const kdSlack = 1e-12

// neighbour is a training code found by a searcher.
type neighbour struct {
	dist float64 // squared Euclidean distance to the query
	idx  int32   // index of the training code
}

// searcher finds the k nearest training codes of a query in a kdTree. It
// keeps them in a max-heap so that the farthest of the k is at the root and
// is replaced in O(log k) time. A searcher is used by one goroutine.
type searcher struct {
	heap   []neighbour
	worst  float64   // distance of the root once the heap is full, else +Inf
	q      []float64 // the query
	off    []float64 // distance from q to the current cell along each axis
	counts [256]int
}

func newSearcher(k, d int) *searcher {
	return &searcher{heap: make([]neighbour, 0, k), off: make([]float64, d)}
}

// search fills s.heap with the k nearest codes of t to q, where
// neighbours are ordered by distance and then by index.
func (s *searcher) search(t *kdTree, q []float64) {
	s.heap = s.heap[:0]
	s.worst = math.Inf(1)
	s.q = q
	clear(s.off)
	s.visit(t, 0, 0)
}

// visit searches node of t, whose cell is at squared distance at least rd
// from the query. A cell is skipped only when strictly farther than the
// k-th neighbour, as a code at the same distance with a lower index would
// replace it, and the bound is loosened by a relative kdSlack against the
// rounding of its incremental computation.
func (s *searcher) visit(t *kdTree, node int32, rd float64) {
	n := &t.nodes[node]
	if n.dim < 0 {
		s.scan(t, n.lo, n.hi)
		return
	}
	diff := s.q[n.dim] - n.split
	near, far := n.left, n.right
	if diff > 0 {
		near, far = far, near
	}
	s.visit(t, near, rd)
	// Arya and Mount's incremental distance: the far cell is at least
	// |diff| away along the split axis, and no less than before along the
	// others.
	old := s.off[n.dim]
	if rd = rd - old*old + diff*diff; rd <= s.worst*(1+kdSlack) {
		s.off[n.dim] = diff
		s.visit(t, far, rd)
		s.off[n.dim] = old
	}
}

// scan offers the codes lo to hi-1 of t to the heap.
func (s *searcher) scan(t *kdTree, lo, hi int32) {
	d := len(s.q)
	q := s.q
	for i := lo; i < hi; i++ {
		x := t.points[int(i)*d:]
		x = x[:len(q)]
		// Partial distance: most codes are already farther than the
		// k-th neighbour after a few coordinates.
		var dist float64
		for j, v := range q {
			e := x[j] - v
			dist += e * e
			if dist > s.worst {
				break
			}
		}
		if dist > s.worst {
			continue
		}
		nb := neighbour{dist, t.index[i]}
		h := s.heap
		if len(h) < cap(h) {
			h = append(h, nb)
			siftUp(h, len(h)-1)
			if len(h) == cap(h) {
				s.worst = h[0].dist
			}
			s.heap = h
			continue
		}
		if !farther(h[0], nb) {
			continue
		}
		h[0] = nb
		siftDown(h, 0)
		s.worst = h[0].dist
	}
}

// farther reports whether a is farther than b from the query.
func farther(a, b neighbour) bool {
	return a.dist > b.dist || (a.dist == b.dist && a.idx > b.idx)
}

func siftUp(h []neighbour, i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !farther(h[i], h[p]) {
			return
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
}

func siftDown(h []neighbour, i int) {
	for {
		c := 2*i + 1
		if c >= len(h) {
			return
		}
		if c+1 < len(h) && farther(h[c+1], h[c]) {
			c++
		}
		if !farther(h[c], h[i]) {
			return
		}
		h[i], h[c] = h[c], h[i]
		i = c
	}
}

// vote returns the majority label of the neighbours found by the last
// search, breaking ties by the label of the nearest tied neighbour. It
// reorders s.heap.
func (s *searcher) vote(labels []uint8) uint8 {
	h := s.heap
	slices.SortFunc(h, func(a, b neighbour) int {
		if c := cmp.Compare(a.dist, b.dist); c != 0 {
			return c
		}
		return cmp.Compare(a.idx, b.idx)
	})
	best := 0
	for _, nb := range h {
		l := labels[nb.idx]
		s.counts[l]++
		best = max(best, s.counts[l])
	}
	label := labels[h[0].idx]
	found := false
	for _, nb := range h {
		l := labels[nb.idx]
		if !found && s.counts[l] == best {
			label, found = l, true
		}
		s.counts[l] = 0
	}
	return label
}
