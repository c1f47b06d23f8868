package evaluation

// kdLeafSize is the most codes in a leaf of a kdTree.
const kdLeafSize = 16

// kdTree is a k-d tree over n codes of size d: each inner node splits the
// codes of its cell at the median of the axis along which they spread the
// most, until at most kdLeafSize codes remain. It is read-only once built
// and may be searched by several goroutines.
type kdTree struct {
	d      int
	points []float64 // the codes, n×d, in tree order
	index  []int32   // index[i]: the index in the input of code i of points
	nodes  []kdNode  // nodes[0] is the root
	keys   []float32 // scratch for build
}

// kdNode is a node of a kdTree.
type kdNode struct {
	dim         int     // split axis, or -1 for a leaf
	split       float64 // codes in left have x[dim] <= split, in right >= split
	left, right int32   // children of an inner node
	lo, hi      int32   // a leaf holds codes lo to hi-1 of points
}

// newKDTree builds a tree over the len(codes)/d codes of size d in codes,
// which it copies. There must be fewer than 2³¹ codes.
func newKDTree(codes []float32, d int) *kdTree {
	n := len(codes) / d
	t := &kdTree{d: d, index: make([]int32, n)}
	for i := range t.index {
		t.index[i] = int32(i)
	}
	t.keys = make([]float32, n)
	t.build(codes, 0, n)
	t.keys = nil
	t.points = make([]float64, n*d)
	for i, src := range t.index {
		for j := range d {
			t.points[i*d+j] = float64(codes[int(src)*d+j])
		}
	}
	return t
}

// build adds the node of codes t.index[lo:hi] and its subtree, and returns
// its number.
func (t *kdTree) build(codes []float32, lo, hi int) int32 {
	id := int32(len(t.nodes))
	t.nodes = append(t.nodes, kdNode{dim: -1, lo: int32(lo), hi: int32(hi)})
	if hi-lo <= kdLeafSize {
		return id
	}
	d := t.d
	dim, spread := -1, float32(0)
	for j := range d {
		mn, mx := codes[int(t.index[lo])*d+j], codes[int(t.index[lo])*d+j]
		for _, i := range t.index[lo:hi] {
			v := codes[int(i)*d+j]
			mn, mx = min(mn, v), max(mx, v)
		}
		if mx-mn > spread {
			dim, spread = j, mx-mn
		}
	}
	if dim < 0 {
		return id // all codes equal
	}
	idx := t.index[lo:hi]
	keys := t.keys[lo:hi]
	for i, src := range idx {
		keys[i] = codes[int(src)*d+dim]
	}
	mid := (hi - lo) / 2
	selectNth(keys, idx, mid)
	split := float64(keys[mid])
	mid += lo
	left := t.build(codes, lo, mid)
	right := t.build(codes, mid, hi)
	t.nodes[id] = kdNode{dim: dim, split: split, left: left, right: right}
	return id
}

// selectNth reorders keys, and idx along with it, so that keys[nth] is the
// key that sorting would put there, with no greater key before it and no
// smaller one after. It is Hoare's quickselect with a median-of-three pivot.
func selectNth(keys []float32, idx []int32, nth int) {
	lo, hi := 0, len(keys)-1
	swap := func(i, j int) {
		keys[i], keys[j] = keys[j], keys[i]
		idx[i], idx[j] = idx[j], idx[i]
	}
	for lo < hi {
		// Order keys[lo], keys[m], keys[hi] and pivot on the middle one.
		m := lo + (hi-lo)/2
		if keys[m] < keys[lo] {
			swap(m, lo)
		}
		if keys[hi] < keys[lo] {
			swap(hi, lo)
		}
		if keys[hi] < keys[m] {
			swap(hi, m)
		}
		pivot := keys[m]
		i, j := lo, hi
		for i <= j {
			for keys[i] < pivot {
				i++
			}
			for keys[j] > pivot {
				j--
			}
			if i <= j {
				swap(i, j)
				i++
				j--
			}
		}
		// Now keys[lo:j+1] <= pivot <= keys[i:hi+1], and keys[j+1:i] == pivot.
		switch {
		case nth <= j:
			hi = j
		case nth >= i:
			lo = i
		default:
			return
		}
	}
}
