package evaluation

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/latent-ai/latent/evaluation/internal/dots"
)

// The searches are checked against a scalar brute force that computes
// every squared distance as Σ(aₖ−bₖ)² in float64, in order: the results
// must be equal, not close, whichever kernel runs (each kernel of this
// CPU is tried), since every close call is decided with that distance.

// refDist2 is the reference squared distance, written out again.
func refDist2(a, b []float32) float64 {
	var s float64
	for k := range a {
		e := float64(a[k]) - float64(b[k])
		s += float64(e * e)
	}
	return s
}

// refNearest returns the k nearest rows of r to q (by refDist2, then
// index), leaving out row skip.
func refNearest(q, r []float32, n, d, k, skip int) []candidate {
	var all []candidate
	for j := range n {
		if j != skip {
			all = append(all, candidate{refDist2(q, r[j*d:(j+1)*d]), int32(j)})
		}
	}
	slices.SortFunc(all, byDistThenIndex)
	return all[:k]
}

// refRadii returns the squared distance of each row of x to its k-th
// nearest other row.
func refRadii(x []float32, n, d, k int) []float64 {
	radii := make([]float64, n)
	for i := range n {
		radii[i] = refNearest(x[i*d:(i+1)*d], x, n, d, k, i)[k-1].dist
	}
	return radii
}

// refPrecisionRecall is Kynkäänniemi et al.'s definition, by brute force.
func refPrecisionRecall(real, fake []float32, nr, nf, d, k int) (float64, float64) {
	rr, rf := refRadii(real, nr, d, k), refRadii(fake, nf, d, k)
	in := func(x []float32, nx int, y []float32, ny int, ry []float64) float64 {
		c := 0
		for i := range nx {
			for j := range ny {
				if refDist2(x[i*d:(i+1)*d], y[j*d:(j+1)*d]) <= ry[j] {
					c++
					break
				}
			}
		}
		return float64(c) / float64(nx)
	}
	return in(fake, nf, real, nr, rr), in(real, nr, fake, nf, rf)
}

// gaussian returns n rows of d values from N(shift, scale²).
func gaussian(rng *rand.Rand, n, d int, shift, scale float64) []float32 {
	x := make([]float32, n*d)
	for i := range x {
		x[i] = float32(shift + scale*rng.NormFloat64())
	}
	return x
}

// pixels returns n rows of d pixel values b/255 from bytes drawn from
// levels levels, many zero: few levels give many tied distances.
func pixels(rng *rand.Rand, n, d, levels int) ([]float32, []uint8) {
	b := make([]uint8, n*d)
	x := make([]float32, n*d)
	for i := range b {
		if rng.IntN(3) > 0 {
			b[i] = uint8(rng.IntN(levels) * 255 / max(levels-1, 1))
		}
		x[i] = float32(b[i]) / 255
	}
	return x, b
}

// eachKernel runs f with each kernel of this build and CPU.
func eachKernel(t *testing.T, f func(t *testing.T)) {
	for _, k := range dots.All() {
		t.Run(k.Name, func(t *testing.T) {
			old := kernel
			kernel = k
			defer func() { kernel = old }()
			f(t)
		})
	}
}

// TestPrecisionRecallAgainstReference compares precision, recall, density
// and coverage with their brute-force definitions, on every kernel.
func TestPrecisionRecallAgainstReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	px := func(n, d, levels int) []float32 { x, _ := pixels(rng, n, d, levels); return x }
	tests := []struct {
		name       string
		real, fake []float32
		nr, nf     int
		d, k       int
	}{
		{"gaussians overlapping", gaussian(rng, 300, 20, 0, 1), gaussian(rng, 250, 20, 0.3, 1.2), 300, 250, 20, 3},
		{"one dimension", gaussian(rng, 200, 1, 0, 1), gaussian(rng, 200, 1, 1, 0.5), 200, 200, 1, 3},
		{"k = 1", gaussian(rng, 100, 5, 0, 1), gaussian(rng, 90, 5, 0.5, 1), 100, 90, 5, 1},
		{"k = 7", gaussian(rng, 150, 12, 0, 1), gaussian(rng, 150, 12, 0, 2), 150, 150, 12, 7},
		// Pixels of 3 levels in 6 dimensions: many equal distances, to
		// radii too.
		{"tied pixels", px(300, 6, 3), px(280, 6, 3), 300, 280, 6, 3},
		{"pixels, several tiles", px(700, 64, 256), px(530, 64, 256), 700, 530, 64, 3},
		{"two points more than k", gaussian(rng, 5, 3, 0, 1), gaussian(rng, 4, 3, 0, 1), 5, 4, 3, 3},
		{"large offset", gaussian(rng, 120, 8, 1000, 1), gaussian(rng, 120, 8, 1000.5, 1), 120, 120, 8, 3},
	}
	for _, tt := range tests {
		wantP, wantR := refPrecisionRecall(tt.real, tt.fake, tt.nr, tt.nf, tt.d, tt.k)
		wantD, wantC := refDensityCoverage(tt.real, tt.fake, tt.nr, tt.nf, tt.d, tt.k)
		t.Run(tt.name, func(t *testing.T) {
			eachKernel(t, func(t *testing.T) {
				p, r, err := PrecisionRecall(tt.real, tt.fake, tt.nr, tt.nf, tt.d, tt.k)
				if err != nil {
					t.Fatal(err)
				}
				if p != wantP || r != wantR {
					t.Errorf("precision %v, recall %v; the reference's %v, %v", p, r, wantP, wantR)
				}
				ctx := context.Background()
				rm, err := NewManifold(ctx, tt.real, tt.nr, tt.d, tt.k)
				if err != nil {
					t.Fatal(err)
				}
				fm, err := NewManifold(ctx, tt.fake, tt.nf, tt.d, tt.k)
				if err != nil {
					t.Fatal(err)
				}
				dens, cov, err := ManifoldDensityCoverage(ctx, rm, fm)
				if err != nil {
					t.Fatal(err)
				}
				if math.Abs(dens-wantD) > 1e-12 || cov != wantC {
					t.Errorf("density %v, coverage %v; the reference's %v, %v", dens, cov, wantD, wantC)
				}
			})
		})
	}
}

// refDensityCoverage is Naeem et al.'s definition, by brute force.
func refDensityCoverage(real, fake []float32, nr, nf, d, k int) (float64, float64) {
	rr := refRadii(real, nr, d, k)
	count, covered := 0, 0
	for j := range nr {
		hit := false
		for i := range nf {
			if refDist2(fake[i*d:(i+1)*d], real[j*d:(j+1)*d]) <= rr[j] {
				count++
				hit = true
			}
		}
		if hit {
			covered++
		}
	}
	return float64(count) / float64(k*nf), float64(covered) / float64(nr)
}

// TestDensityCoverageOutliers checks that real outliers cannot lift a
// collapsed set of samples as they lift precision (the values against the
// reference: TestPrecisionRecallAgainstReference).
func TestDensityCoverageOutliers(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	// 500 real points near 0 and 5 far outliers; samples all at the origin
	// lie in the outliers' big balls, so precision is 1, but they add
	// little density, and cover a sliver of the real points.
	const d = 4
	real := gaussian(rng, 505, d, 0, 1)
	for i := 500; i < 505; i++ {
		for j := range d {
			real[i*d+j] = 40 + float32(i)
		}
	}
	fake := make([]float32, 100*d)
	for i := range fake {
		fake[i] = float32(rng.NormFloat64() * 1e-3)
	}
	p, _, err := PrecisionRecall(real, fake, 505, 100, d, 3)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	r, _ := NewManifold(ctx, real, 505, d, 3)
	f, _ := NewManifold(ctx, fake, 100, d, 3)
	dens, cov, err := ManifoldDensityCoverage(ctx, r, f)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("collapsed samples: precision %.3f, density %.3f, coverage %.3f", p, dens, cov)
	if p != 1 || cov > 0.05 {
		t.Errorf("collapsed samples: precision %v, coverage %v; want 1 and below 0.05", p, cov)
	}
}

// TestManifoldRadii checks every radius against the reference, with ties.
func TestManifoldRadii(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	x, _ := pixels(rng, 400, 10, 4)
	want := refRadii(x, 400, 10, 3)
	eachKernel(t, func(t *testing.T) {
		m, err := NewManifold(context.Background(), x, 400, 10, 3)
		if err != nil {
			t.Fatal(err)
		}
		if m.Len() != 400 || m.K() != 3 {
			t.Fatalf("Len %d, K %d", m.Len(), m.K())
		}
		for i, w := range want {
			if got := m.Radius(i); got != math.Sqrt(w) {
				t.Fatalf("radius %d: %v, want %v", i, got, math.Sqrt(w))
			}
		}
	})
}

func TestPrecisionRecallProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	const n, d = 500, 784
	real, _ := pixels(rng, n, d, 256)
	check := func(t *testing.T, name string, fake []float32, nf int, wantP, wantR func(float64) bool) {
		t.Helper()
		before := stats.fallbacks.Load()
		p, r, err := PrecisionRecall(real, fake, n, nf, d, 3)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !wantP(p) || !wantR(r) {
			t.Errorf("%s: precision %v, recall %v", name, p, r)
		}
		if f := stats.fallbacks.Load() - before; f != 0 {
			t.Errorf("%s: %d queries needed every exact distance", name, f)
		}
	}
	one := func(v float64) bool { return v == 1 }
	zero := func(v float64) bool { return v == 0 }

	check(t, "identical sets", slices.Clone(real), n, one, one)

	far := slices.Clone(real)
	for i := range far {
		far[i] += 10
	}
	check(t, "far apart", far, n, zero, zero)

	// Every fake a copy of real image 0: all of them in the real manifold,
	// and only real image 0 in theirs, balls of radius 0.
	collapsed := make([]float32, 0, n*d)
	for range n {
		collapsed = append(collapsed, real[:d]...)
	}
	check(t, "collapsed onto one real image", collapsed, n, one, func(r float64) bool { return r == 1.0/n })

	// Near-copies of real image 0, within 1e-4 of it: distances far below
	// float32's rounding of MNIST-sized norms, which the centring handles
	// without falling back to every exact distance.
	near := slices.Clone(collapsed)
	for i := range near {
		near[i] += float32(1e-4 * rng.NormFloat64())
	}
	wantP, wantR := refPrecisionRecall(real, near, n, n, d, 3)
	check(t, "near-copies of one real image", near, n, func(p float64) bool { return p == wantP }, func(r float64) bool { return r == wantR && r <= 2.0/n })
}

func TestPrecisionRecallBadInput(t *testing.T) {
	x := []float32{0, 1, 2, 3, 4, 5, 6, 7, 8, 9} // 5 rows of 2
	nan := slices.Clone(x)
	nan[3] = float32(math.NaN())
	inf := slices.Clone(x)
	inf[9] = float32(math.Inf(-1))
	big := slices.Clone(x)
	big[0] = 1e20
	tests := []struct {
		name       string
		real, fake []float32
		nr, nf     int
		d, k       int
		want       string
	}{
		{"real length", x[:9], x, 5, 5, 2, 3, "real samples: 9 values, want 5 rows of 2 = 10"},
		{"fake length", x, x, 5, 4, 2, 3, "fake samples: 10 values, want 4 rows of 2 = 8"},
		{"k = n", x, x, 5, 5, 2, 5, "k = 5 outside [1, 4]"},
		{"k = 0", x, x, 5, 5, 2, 0, "k = 0 outside"},
		{"d = 0", x, x, 5, 5, 0, 3, "row size d = 0"},
		{"no rows", nil, x, 0, 5, 2, 3, "real samples: 0 rows"},
		{"NaN", x, nan, 5, 5, 2, 3, "fake samples: row 1 holds NaN"},
		{"Inf", inf, x, 5, 5, 2, 3, "real samples: row 4 holds -Inf"},
		{"too large", big, x, 5, 5, 2, 3, "real samples: row 0 has values too large"},
	}
	for _, tt := range tests {
		_, _, err := PrecisionRecall(tt.real, tt.fake, tt.nr, tt.nf, tt.d, tt.k)
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "evaluation: precision and recall: ") {
			t.Errorf("%s: error %v, want one with %q", tt.name, err, tt.want)
		}
	}
	a, _ := NewManifold(context.Background(), x, 5, 2, 3)
	b, _ := NewManifold(context.Background(), x, 2, 5, 1)
	if _, _, err := ManifoldPrecisionRecall(context.Background(), a, b); err == nil || !strings.Contains(err.Error(), "real points of 2 values, fake ones of 5") {
		t.Errorf("manifolds of other sizes: %v", err)
	}
}

func TestPrecisionRecallCancelled(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	x := gaussian(rng, 600, 50, 0, 1)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := PrecisionRecallContext(ctx, x, x, 600, 600, 50, 3); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
	if _, err := (&PixelKNN{train: newByteRows(make([]uint8, 50), 1, 50), labels: []uint8{0}, k: 1}).ClassifyContext(ctx, x[:50], 1); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled k-NN: %v", err)
	}
}

// refClassify is the k-NN vote by brute force.
func refClassify(train []float32, labels []uint8, q []float32, n, d, k int) []uint8 {
	out := make([]uint8, n)
	for i := range n {
		nb := refNearest(q[i*d:(i+1)*d], train, len(labels), d, k, -1)
		count := map[uint8]int{}
		best := 0
		for _, c := range nb {
			count[labels[c.idx]]++
			best = max(best, count[labels[c.idx]])
		}
		for _, c := range nb { // the nearest of the tied labels
			if count[labels[c.idx]] == best {
				out[i] = labels[c.idx]
				break
			}
		}
	}
	return out
}

func TestPixelKNNAgainstReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	tests := []struct {
		name          string
		n, m, d, k    int
		levels, class int
	}{
		{"tied pixels, k = 3", 500, 300, 8, 3, 3, 10},
		{"k = 1", 300, 200, 16, 1, 256, 4},
		{"k = 4, even votes", 400, 300, 12, 4, 5, 3},
		{"several tiles", 900, 500, 100, 3, 256, 10},
		{"k = n", 7, 20, 3, 7, 4, 3},
	}
	for _, tt := range tests {
		train, bytes := pixels(rng, tt.n, tt.d, tt.levels)
		labels := make([]uint8, tt.n)
		for i := range labels {
			labels[i] = uint8(rng.IntN(tt.class))
		}
		q, _ := pixels(rng, tt.m, tt.d, tt.levels)
		// Some queries off the pixel grid, some copies of training images.
		for i := 0; i < tt.m; i += 3 {
			q[i*tt.d] += 0.001
		}
		copy(q[tt.d:2*tt.d], train[:tt.d])
		want := refClassify(train, labels, q, tt.m, tt.d, tt.k)
		t.Run(tt.name, func(t *testing.T) {
			eachKernel(t, func(t *testing.T) {
				c, err := NewPixelKNN(bytes, labels, tt.d, tt.k)
				if err != nil {
					t.Fatal(err)
				}
				got, err := c.Classify(q, tt.m)
				if err != nil {
					t.Fatal(err)
				}
				for i := range want {
					if got[i] != want[i] {
						t.Fatalf("query %d: label %d, the reference's %d", i, got[i], want[i])
					}
				}
			})
		})
	}
}

// TestVoteTies: three neighbours of three labels take the nearest's;
// two against one take the two's, even when the one is nearest.
func TestVoteTies(t *testing.T) {
	// Training images of one pixel: values 0, 2, 3, 5, 6 (in 255ths).
	train := []uint8{0, 2, 3, 5, 6}
	labels := []uint8{7, 8, 9, 8, 1}
	c, err := NewPixelKNN(train, labels, 1, 3)
	if err != nil {
		t.Fatal(err)
	}
	q := []float32{1.9 / 255, 0.1 / 255, 6.0 / 255}
	got, err := c.Classify(q, 3)
	if err != nil {
		t.Fatal(err)
	}
	// 1.9: neighbours 2 (8), 3 (9), 0 (7): one each, the nearest's 8.
	// 0.1: 0 (7), 2 (8), 3 (9): 7. 6: 6 (1), 5 (8), 3 (9): 1.
	if want := []uint8{8, 7, 1}; !slices.Equal(got, want) {
		t.Errorf("labels %v, want %v", got, want)
	}
	c4, _ := NewPixelKNN(train, labels, 1, 4)
	// 2.6: 3 (9), 2 (8), 5 (8), 0 (7): 8 twice.
	if got, _ := c4.Classify([]float32{2.6 / 255}, 1); got[0] != 8 {
		t.Errorf("two of four: %d, want 8", got[0])
	}
	if c.K() != 3 || c.Classes() != 10 {
		t.Errorf("K %d, Classes %d", c.K(), c.Classes())
	}
}

func TestPixelKNNBadInput(t *testing.T) {
	px := make([]uint8, 12)
	labels := []uint8{0, 1, 2}
	for _, tt := range []struct {
		name       string
		px, labels []uint8
		d, k       int
		want       string
	}{
		{"pixels", px[:11], labels, 4, 1, "11 pixel bytes for 3 labels"},
		{"no images", nil, nil, 4, 1, "no training images"},
		{"d", px, labels, 0, 1, "image size d = 0"},
		{"k > n", px, labels, 4, 4, "k = 4 outside [1, 3]"},
		{"k = 0", px, labels, 4, 0, "k = 0 outside"},
	} {
		if _, err := NewPixelKNN(tt.px, tt.labels, tt.d, tt.k); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.want)
		}
	}
	c, _ := NewPixelKNN(px, labels, 4, 1)
	if _, err := c.Classify(make([]float32, 7), 2); err == nil || !strings.Contains(err.Error(), "7 values, want 2 rows of 4") {
		t.Errorf("queries of the wrong length: %v", err)
	}
	if _, err := c.Classify([]float32{0, 0, float32(math.NaN()), 0}, 1); err == nil || !strings.Contains(err.Error(), "row 0 holds NaN") {
		t.Errorf("NaN query: %v", err)
	}
}

func TestAccuracyAndShares(t *testing.T) {
	if a, err := Accuracy([]uint8{1, 2, 3, 4}, []uint8{1, 2, 0, 4}); err != nil || a != 0.75 {
		t.Errorf("Accuracy: %v, %v", a, err)
	}
	if _, err := Accuracy([]uint8{1}, nil); err == nil {
		t.Error("Accuracy of mismatched lengths: no error")
	}
	if s := ClassShares([]uint8{0, 2, 2, 1, 2, 9}, 3); !slices.Equal(s, []float64{1. / 6, 1. / 6, 3. / 6}) {
		t.Errorf("ClassShares: %v", s)
	}
	if s := ClassShares(nil, 3); s != nil {
		t.Errorf("ClassShares of nothing: %v", s)
	}
}
