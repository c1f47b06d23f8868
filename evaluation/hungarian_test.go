package evaluation

import (
	"math"
	"math/rand/v2"
	"testing"
)

// bruteForceMin returns the least total cost of a perfect matching of the
// square matrix cost, trying every permutation.
func bruteForceMin(cost [][]float64) float64 {
	n := len(cost)
	perm := make([]int, n)
	for i := range perm {
		perm[i] = i
	}
	best := math.Inf(1)
	var rec func(i int, sum float64)
	rec = func(i int, sum float64) {
		if i == n {
			best = min(best, sum)
			return
		}
		for j := i; j < n; j++ {
			perm[i], perm[j] = perm[j], perm[i]
			rec(i+1, sum+cost[i][perm[i]])
			perm[i], perm[j] = perm[j], perm[i]
		}
	}
	rec(0, 0)
	return best
}

func TestHungarianBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(6, 6))
	for _, tc := range []struct {
		name  string
		size  int
		count int
		entry func() float64
	}{
		{"6×6 uniform", 6, 50, rng.Float64},
		{"6×6 negative", 6, 20, func() float64 { return -100 * rng.Float64() }},
		// Small integers make many optimal matchings.
		{"6×6 small integers", 6, 50, func() float64 { return float64(rng.IntN(3)) }},
		{"5×5 uniform", 5, 20, rng.Float64},
		{"1×1", 1, 3, rng.NormFloat64},
		{"2×2", 2, 10, rng.NormFloat64},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for range tc.count {
				cost := make([][]float64, tc.size)
				for i := range cost {
					cost[i] = make([]float64, tc.size)
					for j := range cost[i] {
						cost[i][j] = tc.entry()
					}
				}
				match := hungarian(cost)
				seen := make([]bool, tc.size)
				total := 0.0
				for i, j := range match {
					if j < 0 || j >= tc.size || seen[j] {
						t.Fatalf("match %v is not a permutation", match)
					}
					seen[j] = true
					total += cost[i][j]
				}
				if want := bruteForceMin(cost); math.Abs(total-want) > 1e-9 {
					t.Fatalf("cost %v: hungarian total %v, brute force %v", cost, total, want)
				}
			}
		})
	}
	if got := hungarian(nil); len(got) != 0 {
		t.Errorf("hungarian(nil) = %v, want empty", got)
	}
}
