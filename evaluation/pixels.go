package evaluation

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/latent-ai/latent/evaluation/internal/dots"
)

// The pixel-space searches (PrecisionRecall, PixelKNN) compare every
// query with every reference row by brute force. Squared distances are
// taken as ‖a‖² + ‖b‖² − 2a·b, the dot products a tile at a time with the
// float32 kernels of package dots on all cores, the norms in float64.
// Such a value can be off by rounding, by at most margin(a, b), so every
// decision it leaves open (a distance within the margin of a radius, a
// neighbour within the margin of the k-th) is taken again with the exact
// squared distance: exactDist2, in float64. The results are therefore
// those of exactDist2 alone, the scalar reference, on every CPU.
//
// The rows are centred on the mean of a set before the products, which
// changes no distance but shrinks the norms, and with them the margins:
// a set of near-copies of one image (a collapsed generator) then still
// needs few exact distances.

// exactDist2 returns Σₖ(aₖ−bₖ)², summed in float64 in order: the squared
// distance that every decision of the pixel-space searches follows.
func exactDist2(a, b []float32) float64 {
	b = b[:len(a)]
	var s float64
	for k, v := range a {
		e := float64(v) - float64(b[k])
		s += float64(e * e) // the conversion keeps Go from fusing the multiply-add
	}
	return s
}

// maxSquaredNorm bounds the squared norm of a row (after centring): above
// it the kernels' float32 sums could overflow.
const maxSquaredNorm = 1e30

// rowSet is n rows of d values: float32 values, which the kernels see
// less a centre, or pixel bytes (b/255, not centred).
type rowSet struct {
	n, d   int
	orig   []float32 // the caller's values, n×d, or nil for bytes
	centre []float32 // d values, or nil for none
	bytes  []uint8   // pixel bytes, n×d, or nil
	sq     []float64 // squared norm of each row as the kernels see it
	norm   []float64 // its square root
	maxSq  float64   // the largest of sq
}

// checkRows checks that x holds n rows of d finite values.
func checkRows(what string, x []float32, n, d int) error {
	if d <= 0 {
		return fmt.Errorf("%s: row size d = %d, want > 0", what, d)
	}
	if n <= 0 {
		return fmt.Errorf("%s: %d rows, want at least 1", what, n)
	}
	if len(x) != n*d {
		return fmt.Errorf("%s: %d values, want %d rows of %d = %d", what, len(x), n, d, n*d)
	}
	for i, v := range x {
		if f := float64(v); math.IsNaN(f) || math.IsInf(f, 0) {
			return fmt.Errorf("%s: row %d holds %v", what, i/d, v)
		}
	}
	return nil
}

// mean returns the mean row of x, n rows of d values, in float32.
func mean(x []float32, n, d int) []float32 {
	sum := make([]float64, d)
	for i := range n {
		for k, v := range x[i*d : (i+1)*d] {
			sum[k] += float64(v)
		}
	}
	m := make([]float32, d)
	for k, s := range sum {
		m[k] = float32(s / float64(n))
	}
	return m
}

// newRows returns x (n rows of d finite values, checked by the caller),
// seen by the kernels less centre (nil for none). It keeps x and centre.
func newRows(what string, x []float32, n, d int, centre []float32) (*rowSet, error) {
	r := &rowSet{n: n, d: d, orig: x, centre: centre}
	if err := r.norms(what); err != nil {
		return nil, err
	}
	return r, nil
}

// newByteRows returns the pixel bytes x, n rows of d, which it keeps.
func newByteRows(x []uint8, n, d int) *rowSet {
	r := &rowSet{n: n, d: d, bytes: x}
	r.norms("")
	return r
}

// norms fills sq, norm and maxSq.
func (r *rowSet) norms(what string) error {
	r.sq, r.norm = make([]float64, r.n), make([]float64, r.n)
	d := r.d
	for i := range r.n {
		var s float64
		switch {
		case r.bytes != nil:
			for _, b := range r.bytes[i*d : (i+1)*d] {
				v := float64(dots.ByteValue(b))
				s += v * v
			}
		case r.centre != nil:
			for k, v := range r.orig[i*d : (i+1)*d] {
				c := float64(v - r.centre[k]) // rounded as Pack rounds it
				s += c * c
			}
		default:
			for _, v := range r.orig[i*d : (i+1)*d] {
				s += float64(v) * float64(v)
			}
		}
		if s > maxSquaredNorm {
			return fmt.Errorf("%s: row %d has values too large (squared norm %.3g about the mean, over %g)", what, i, s, maxSquaredNorm)
		}
		r.sq[i], r.norm[i] = s, math.Sqrt(s)
		r.maxSq = max(r.maxSq, s)
	}
	return nil
}

// row returns the original values of row i, in buf's memory where it must
// convert bytes.
func (r *rowSet) row(buf []float32, i int) []float32 {
	d := r.d
	if r.bytes == nil {
		return r.orig[i*d : (i+1)*d]
	}
	if cap(buf) < d {
		buf = make([]float32, d)
	}
	buf = buf[:d]
	for k, b := range r.bytes[i*d : (i+1)*d] {
		buf[k] = dots.ByteValue(b)
	}
	return buf
}

// pack packs rows [lo, hi) as the kernels see them into panels of w rows.
func (r *rowSet) pack(dst []float32, lo, hi, w int) []float32 {
	d := r.d
	if r.bytes != nil {
		return dots.PackBytes(dst, r.bytes[lo*d:hi*d], hi-lo, d, w)
	}
	return dots.Pack(dst, r.orig[lo*d:hi*d], r.centre, hi-lo, d, w)
}

// bounds holds the terms of margin for rows of d values.
type bounds struct{ g, h float64 }

func newBounds(d int) bounds {
	const u = 0x1p-24
	// The kernel's dot product of the centred rows a', b' is within
	// γ_d·‖a'‖‖b'‖ of the exact one, so the squared distance is within
	// twice that of the centred rows' exact one; that one is within
	// about 2u(‖a'‖+‖b'‖)² of the distance of the original rows (the
	// rounding of the centring), and exactDist2 within d·2⁻⁵³ times it
	// of the same. The float64 sums around them round by less still.
	return bounds{g: 2 * dots.ErrorFactor(d) * (1 + 1e-6), h: 3 * u}
}

// margin bounds |approximate − exactDist2| for rows of norms na and nb
// (after centring), for the rows' values being finite and small enough
// (maxSquaredNorm).
func (b bounds) margin(na, nb float64) float64 {
	if math.IsInf(b.g, 1) { // rows of 2²⁴ values or more: every call is close
		return b.g
	}
	s := na + nb
	return b.g*na*nb + b.h*s*s + 1e-35
}

// kernel is the kernel of the searches: the fastest, but for tests.
var kernel = dots.Best()

// Tile sizes of the searches, in panels of the kernel.
const (
	queryPanels = 20 // query rows of a tile
	refPanels   = 8  // reference rows of a tile, and of a worker's chunk
)

// tileVisitor takes the tiles of one worker of scan.
type tileVisitor interface {
	// tile gets the dot products of queries [i0, i1) and references
	// [j0, j1): c[(i−i0)·ldc + j−j0].
	tile(i0, i1, j0, j1 int, c []float32, ldc int)
}

// scan computes the kernel's dot product of every row of q with every
// row of r, a tile at a time, in runtime.GOMAXPROCS(0) goroutines. The
// queries are packed once; the goroutines take chunks of references from
// a shared counter, pack each once and multiply it with every block of
// queries. Each goroutine calls newVisitor once, with its number, and
// gives that visitor its tiles, so that a visitor may keep state for all
// the queries and the references of its chunks. It stops at the first
// tile after ctx is done and returns ctx's error.
func scan(ctx context.Context, q, r *rowSet, newVisitor func(w int) tileVisitor) error {
	k := kernel
	qb, rb := queryPanels*k.MR, refPanels*k.NR
	qp := q.pack(nil, 0, q.n, k.MR)
	chunks := (r.n + rb - 1) / rb
	workers := min(runtime.GOMAXPROCS(0), chunks)
	var next atomic.Int64
	var stop atomic.Bool
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v := newVisitor(w)
			var bp []float32
			c := make([]float32, qb*rb)
			for !stop.Load() {
				j0 := int(next.Add(int64(rb))) - rb
				if j0 >= r.n {
					return
				}
				j1 := min(j0+rb, r.n)
				bp = r.pack(bp, j0, j1, k.NR)
				for i0 := 0; i0 < q.n; i0 += qb {
					if err := ctx.Err(); err != nil {
						errs[w] = err
						stop.Store(true)
						return
					}
					i1 := min(i0+qb, q.n)
					k.Tile(qp[i0*q.d:], i1-i0, bp, j1-j0, q.d, c, rb)
					v.tile(i0, i1, j0, j1, c, rb)
				}
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return ctx.Err()
}

// parallel calls body(lo, hi) on blocks of [0, n) from a shared counter
// in runtime.GOMAXPROCS(0) goroutines, and returns ctx's error if ctx is
// done before the last block.
func parallel(ctx context.Context, n, block int, body func(lo, hi int)) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), (n+block-1)/block) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				lo := int(next.Add(int64(block))) - block
				if lo >= n {
					return
				}
				body(lo, min(lo+block, n))
			}
		}()
	}
	wg.Wait()
	return ctx.Err()
}

// stats counts the exact work of the searches, for the tests: the
// queries of nearest that fell back to every row, and the pairs that
// cover decided with exactDist2.
var stats struct{ fallbacks, exact atomic.Int64 }

// candidate is a reference row found by a nearest search.
type candidate struct {
	dist float64 // squared distance: approximate while scanning, then exactDist2
	idx  int32
}

func byDistThenIndex(a, b candidate) int {
	if c := cmp.Compare(a.dist, b.dist); c != 0 {
		return c
	}
	return cmp.Compare(a.idx, b.idx)
}

// spareCandidates is how many more candidates than k a nearest search
// keeps for the exact ranking.
const spareCandidates = 8

// nearest returns, for each row i of q, the k rows of r nearest to it by
// exactDist2, nearest first, among rows at the same distance the lower
// index first, leaving out row i of r when self (q and r are then the
// same set): their indices and squared distances, k per query. valueOnly
// says that only the k-th distance is wanted: the rows and the other
// distances are then those of some k nearest rows, not always of the
// lowest indices among ties.
//
// The scan keeps the k+spareCandidates nearest rows by the approximate
// distance, then ranks them exactly. That is the exact answer unless a
// row left out could be nearer than the k-th, which the margins tell; for
// such a query (near-ties at the k-th distance) it takes the exact
// distance to every row.
func nearest(ctx context.Context, q, r *rowSet, k int, self, valueOnly bool) (idx []int32, dist []float64, err error) {
	avail := r.n
	if self {
		avail--
	}
	if k < 1 || k > avail {
		return nil, nil, fmt.Errorf("k = %d outside [1, %d]", k, avail)
	}
	if r.n > math.MaxInt32 {
		return nil, nil, fmt.Errorf("%d reference rows, want at most %d", r.n, math.MaxInt32)
	}
	keep := min(k+spareCandidates, avail)
	var visitors []*nearestVisitor
	var mu sync.Mutex
	err = scan(ctx, q, r, func(int) tileVisitor {
		v := &nearestVisitor{q: q, rsq: r.sq, keep: keep, self: self, cands: make([]candidate, q.n*keep), count: make([]int, q.n)}
		mu.Lock()
		visitors = append(visitors, v)
		mu.Unlock()
		return v
	})
	if err != nil {
		return nil, nil, err
	}

	// Merge the workers' candidates, rank them exactly, and check.
	idx, dist = make([]int32, q.n*k), make([]float64, q.n*k)
	b := newBounds(q.d)
	maxNorm := math.Sqrt(r.maxSq)
	err = parallel(ctx, q.n, 64, func(lo, hi int) {
		var list, all []candidate
		var qbuf, rbuf []float32
		for i := lo; i < hi; i++ {
			list = list[:0]
			for _, v := range visitors {
				list = append(list, v.cands[i*keep:i*keep+v.count[i]]...)
			}
			slices.SortFunc(list, byDistThenIndex)
			list = list[:keep]
			worst := list[keep-1].dist // the approximate distance that cut off the rest
			qbuf = q.row(qbuf, i)
			for c := range list {
				rbuf = r.row(rbuf, int(list[c].idx))
				list[c].dist = exactDist2(qbuf, rbuf)
			}
			slices.SortFunc(list, byDistThenIndex)
			kth := list[k-1].dist
			// Every row left out is at least worst − its margin away. Ties
			// at the k-th distance need all the rows unless only the
			// distance counts; a k-th distance of 0 (copies) cannot be
			// undercut.
			lower := worst - b.margin(q.norm[i], maxNorm)
			if !(keep == avail || lower > kth || (valueOnly && (lower >= kth || kth == 0))) {
				all = all[:0]
				for j := range r.n {
					if !self || j != i {
						rbuf = r.row(rbuf, j)
						all = append(all, candidate{exactDist2(qbuf, rbuf), int32(j)})
					}
				}
				slices.SortFunc(all, byDistThenIndex)
				list = all
				stats.fallbacks.Add(1)
			}
			for c := range k {
				idx[i*k+c], dist[i*k+c] = list[c].idx, list[c].dist
			}
		}
	})
	if err != nil {
		return nil, nil, err
	}
	return idx, dist, nil
}

// nearestVisitor keeps, for every query, the keep nearest rows of its
// worker's chunks by the approximate distance.
type nearestVisitor struct {
	q     *rowSet
	rsq   []float64 // the references' squared norms
	keep  int
	self  bool
	cands []candidate // keep a query, nearest first
	count []int       // candidates kept so far, a query
}

func (v *nearestVisitor) tile(i0, i1, j0, j1 int, c []float32, ldc int) {
	for i := i0; i < i1; i++ {
		list := v.cands[i*v.keep : (i+1)*v.keep]
		n := v.count[i]
		worst := math.Inf(1)
		if n == v.keep {
			worst = list[n-1].dist
		}
		qsq := v.q.sq[i]
		row := c[(i-i0)*ldc : (i-i0)*ldc+j1-j0]
		for jj, dot := range row {
			d := qsq + v.rsq[j0+jj] - 2*float64(dot)
			if d >= worst || (v.self && j0+jj == i) {
				continue // later rows at the same distance rank after
			}
			// Insert, nearest first; a worker's rows come in order of
			// index.
			p := n
			if n == v.keep {
				p--
			} else {
				n++
			}
			for p > 0 && list[p-1].dist > d {
				list[p] = list[p-1]
				p--
			}
			list[p] = candidate{d, int32(j0 + jj)}
			if n == v.keep {
				worst = list[n-1].dist
			}
		}
		v.count[i] = n
	}
}

// scanAll runs scan with a new visitor from newVisitor for each worker,
// and returns them all, for their results.
func scanAll[V tileVisitor](ctx context.Context, q, r *rowSet, newVisitor func() V) ([]V, error) {
	var mu sync.Mutex
	var visitors []V
	err := scan(ctx, q, r, func(int) tileVisitor {
		v := newVisitor()
		mu.Lock()
		visitors = append(visitors, v)
		mu.Unlock()
		return v
	})
	return visitors, err
}

// balls compares every row of q with every row of r, in one scan: for each
// row i of q, counts[i] is the number of rows j of r with exactDist2(qᵢ,
// rⱼ) ≤ rr[j] (the balls of r that hold it); for each row j of r,
// covered[j] says whether some row of q lies in its ball (squared radius
// rr[j]), and in[j] whether it lies in the ball of some row i of q
// (squared radius rq[i]). Close calls are decided with exact distances.
func balls(ctx context.Context, q, r *rowSet, rq, rr []float64) (counts []int32, covered, in []bool, err error) {
	// Each row of r is written by the worker of its chunk.
	covered, in = make([]bool, r.n), make([]bool, r.n)
	b := newBounds(q.d)
	visitors, err := scanAll(ctx, q, r, func() *ballVisitor {
		return &ballVisitor{q: q, r: r, rq: rq, rr: rr, b: b, counts: make([]int32, q.n), covered: covered, in: in}
	})
	if err != nil {
		return nil, nil, nil, err
	}
	counts = make([]int32, q.n)
	for _, v := range visitors {
		for i, c := range v.counts {
			counts[i] += c
		}
	}
	return counts, covered, in, nil
}

type ballVisitor struct {
	q, r        *rowSet
	rq, rr      []float64
	b           bounds
	counts      []int32 // the worker's own
	covered, in []bool  // shared: a worker writes only the rows of its chunks
	qbuf, rbuf  []float32
}

func (v *ballVisitor) tile(i0, i1, j0, j1 int, c []float32, ldc int) {
	rsq, rnorm := v.r.sq[j0:j1], v.r.norm[j0:j1]
	rr, covered, in := v.rr[j0:j1], v.covered[j0:j1], v.in[j0:j1]
	for i := i0; i < i1; i++ {
		qsq, qnorm, rq := v.q.sq[i], v.q.norm[i], v.rq[i]
		row := c[(i-i0)*ldc : (i-i0)*ldc+j1-j0]
		n := int32(0)
		for jj, dot := range row {
			d := qsq + rsq[jj] - 2*float64(dot)
			m := v.b.margin(qnorm, rnorm[jj])
			lo, hi := d-m, d+m
			inR, inQ := hi <= rr[jj], in[jj] || hi <= rq
			if (!inR && lo <= rr[jj]) || (!inQ && lo <= rq) {
				v.qbuf = v.q.row(v.qbuf, i)
				v.rbuf = v.r.row(v.rbuf, j0+jj)
				e := exactDist2(v.qbuf, v.rbuf)
				stats.exact.Add(1)
				inR, inQ = e <= rr[jj], inQ || e <= rq
			}
			if inR {
				n++
				covered[jj] = true
			}
			in[jj] = inQ
		}
		v.counts[i] += n
	}
}
