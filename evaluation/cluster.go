package evaluation

import (
	"fmt"
	"math"
	"slices"
)

// MaxClusters is the most distinct cluster ids that ClusterAccuracy accepts:
// the matching takes O(MaxClusters³) time and O(MaxClusters²) memory.
const MaxClusters = 1024

// ClusterAccuracy returns the accuracy of the clustering assign of labelled
// codes under the best one-to-one matching of clusters to labels: the
// largest number of codes whose cluster is matched to their label, divided
// by the number of codes. Cluster ids are arbitrary ints; when there are
// more clusters than labels (or the reverse) the extra ones stay unmatched
// and their codes count as wrong. The matching is found by the Hungarian
// algorithm in O(max(clusters, labels)³) time.
//
// It is an error for assign and labels to differ in length or be empty, or
// for assign to hold more than MaxClusters distinct ids.
func ClusterAccuracy(assign []int, labels []uint8) (float64, error) {
	t, err := newContingency(assign, labels)
	if err != nil {
		return 0, fmt.Errorf("cluster accuracy: %w", err)
	}
	if len(t.rows) > MaxClusters {
		return 0, fmt.Errorf("cluster accuracy: %d clusters, want at most %d", len(t.rows), MaxClusters)
	}
	// Minimise minus the matched counts over a square matrix padded with
	// zeros.
	size := max(len(t.rows), len(t.cols))
	cost := make([][]float64, size)
	for i := range cost {
		cost[i] = make([]float64, size)
		if i < len(t.rows) {
			for j := range t.cols {
				cost[i][j] = -float64(t.count[i][j])
			}
		}
	}
	matched := 0
	for i, j := range hungarian(cost) {
		if i < len(t.rows) && j < len(t.cols) {
			matched += t.count[i][j]
		}
	}
	return float64(matched) / float64(t.n), nil
}

// NMI returns the normalised mutual information of the clustering assign
// and the labels, with the arithmetic-mean normalisation (the default of
// scikit-learn's normalized_mutual_info_score):
//
//	NMI = I(U; V) / ((H(U) + H(V)) / 2),
//
// with natural logarithms. It is symmetric in its two labelings, 1 for
// labelings equal up to renaming and 0 for independent ones. It is defined
// as 1 when both labelings put every code in a single cluster.
//
// It is an error for assign and labels to differ in length or be empty.
func NMI(assign []int, labels []uint8) (float64, error) {
	t, err := newContingency(assign, labels)
	if err != nil {
		return 0, fmt.Errorf("NMI: %w", err)
	}
	if len(t.rows) == 1 && len(t.cols) == 1 {
		return 1, nil
	}
	n := float64(t.n)
	rowSum := make([]float64, len(t.rows))
	colSum := make([]float64, len(t.cols))
	for i, row := range t.count {
		for j, v := range row {
			rowSum[i] += float64(v)
			colSum[j] += float64(v)
		}
	}
	mi := 0.0
	for i, row := range t.count {
		for j, v := range row {
			if v > 0 {
				nij := float64(v)
				mi += nij / n * math.Log(n*nij/(rowSum[i]*colSum[j]))
			}
		}
	}
	mi = max(mi, 0) // rounding
	hu, hv := entropy(rowSum, n), entropy(colSum, n)
	return mi / ((hu + hv) / 2), nil
}

// entropy returns the entropy in nats of the counts, which sum to n.
func entropy(counts []float64, n float64) float64 {
	h := 0.0
	for _, c := range counts {
		if c > 0 {
			h -= c / n * math.Log(c/n)
		}
	}
	return h
}

// contingency counts the codes of each (cluster, label) pair.
type contingency struct {
	rows  []int   // cluster ids, ascending
	cols  []uint8 // labels, ascending
	count [][]int // count[i][j]: codes in cluster rows[i] with label cols[j]
	n     int     // number of codes
}

func newContingency(assign []int, labels []uint8) (*contingency, error) {
	if len(assign) != len(labels) {
		return nil, fmt.Errorf("%d cluster assignments but %d labels", len(assign), len(labels))
	}
	if len(assign) == 0 {
		return nil, errEmpty
	}
	t := &contingency{n: len(assign)}
	rowOf := make(map[int]int)
	for _, a := range assign {
		if _, ok := rowOf[a]; !ok {
			rowOf[a] = 0
			t.rows = append(t.rows, a)
		}
	}
	slices.Sort(t.rows)
	for i, a := range t.rows {
		rowOf[a] = i
	}
	var present [256]bool
	for _, l := range labels {
		present[l] = true
	}
	var colOf [256]int
	for l, ok := range present {
		if ok {
			colOf[l] = len(t.cols)
			t.cols = append(t.cols, uint8(l))
		}
	}
	t.count = make([][]int, len(t.rows))
	for i := range t.count {
		t.count[i] = make([]int, len(t.cols))
	}
	for i, a := range assign {
		t.count[rowOf[a]][colOf[labels[i]]]++
	}
	return t, nil
}

// hungarian returns a minimum-cost perfect matching of the rows and columns
// of the square matrix cost, whose entries must be finite: row i is matched
// to column match[i]. It is the O(n³) shortest-augmenting-path form of the
// Hungarian algorithm with row and column potentials.
func hungarian(cost [][]float64) (match []int) {
	n := len(cost)
	// Rows and columns are numbered from 1; column 0 is a sentinel.
	u := make([]float64, n+1) // row potentials
	v := make([]float64, n+1) // column potentials
	p := make([]int, n+1)     // p[j]: row matched to column j, 0 for none
	way := make([]int, n+1)   // previous column on the augmenting path
	minv := make([]float64, n+1)
	used := make([]bool, n+1)
	for i := 1; i <= n; i++ {
		p[0] = i
		j0 := 0
		for j := range minv {
			minv[j] = math.Inf(1)
			used[j] = false
		}
		for {
			used[j0] = true
			i0 := p[j0]
			delta, j1 := math.Inf(1), 0
			for j := 1; j <= n; j++ {
				if used[j] {
					continue
				}
				if cur := cost[i0-1][j-1] - u[i0] - v[j]; cur < minv[j] {
					minv[j] = cur
					way[j] = j0
				}
				if minv[j] < delta {
					delta, j1 = minv[j], j
				}
			}
			for j := 0; j <= n; j++ {
				if used[j] {
					u[p[j]] += delta
					v[j] -= delta
				} else {
					minv[j] -= delta
				}
			}
			j0 = j1
			if p[j0] == 0 {
				break
			}
		}
		// Augment along the path back to the sentinel.
		for j0 != 0 {
			j1 := way[j0]
			p[j0] = p[j1]
			j0 = j1
		}
	}
	match = make([]int, n)
	for j := 1; j <= n; j++ {
		match[p[j]-1] = j - 1
	}
	return match
}
