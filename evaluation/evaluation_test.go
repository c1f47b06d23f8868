package evaluation_test

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/latent-ai/latent/evaluation"
)

// blobs returns n codes of size d in classes Gaussian blobs of standard
// deviation spread around the centres scale·e_c (classes <= d), so that
// centres are scale·√2 apart, with code i in blob i mod classes.
func blobs(rng *rand.Rand, n, d, classes int, spread, scale float64) ([]float32, []uint8) {
	codes := make([]float32, n*d)
	labels := make([]uint8, n)
	for i := range n {
		c := i % classes
		labels[i] = uint8(c)
		for j := range d {
			v := spread * rng.NormFloat64()
			if j == c {
				v += scale
			}
			codes[i*d+j] = float32(v)
		}
	}
	return codes, labels
}

// noise returns n codes of size d drawn from N(0, I) and labels drawn
// uniformly from 0..classes-1, independently of the codes.
func noise(rng *rand.Rand, n, d, classes int) ([]float32, []uint8) {
	codes := make([]float32, n*d)
	for i := range codes {
		codes[i] = float32(rng.NormFloat64())
	}
	labels := make([]uint8, n)
	for i := range labels {
		labels[i] = uint8(rng.IntN(classes))
	}
	return codes, labels
}

func TestSeparatedBlobs(t *testing.T) {
	const d, classes = 10, 10
	rng := rand.New(rand.NewPCG(1, 1))
	trainCodes, trainLabels := blobs(rng, 2000, d, classes, 0.01, 10)
	testCodes, testLabels := blobs(rng, 500, d, classes, 0.01, 10)

	for _, k := range []int{1, 5, 15} {
		acc, err := evaluation.KNNAccuracy(trainCodes, trainLabels, testCodes, testLabels, d, k)
		if err != nil {
			t.Fatalf("KNNAccuracy(k=%d): %v", k, err)
		}
		if acc != 1 {
			t.Errorf("KNNAccuracy(k=%d) = %v, want 1", k, acc)
		}
	}

	acc, err := evaluation.LinearProbeAccuracy(trainCodes, trainLabels, testCodes, testLabels, d)
	if err != nil {
		t.Fatalf("LinearProbeAccuracy: %v", err)
	}
	if acc != 1 {
		t.Errorf("LinearProbeAccuracy = %v, want 1", acc)
	}

	assign, inertia, err := evaluation.KMeans(testCodes, len(testLabels), d, classes, 5, 0)
	if err != nil {
		t.Fatalf("KMeans: %v", err)
	}
	// Each code is about 0.01·√10 from its centre.
	if want := 500 * 10 * 0.01 * 0.01; inertia > 2*want {
		t.Errorf("KMeans inertia = %v, want about %v", inertia, want)
	}
	// The cluster ids of k-means are a permutation of the labels, and so
	// are those of perm below.
	perm := []int{7, 3, 9, 0, 1, 8, 2, 6, 4, 5}
	permuted := make([]int, len(testLabels))
	for i, l := range testLabels {
		permuted[i] = perm[l]
	}
	for _, tc := range []struct {
		name   string
		assign []int
	}{
		{"k-means", assign},
		{"permuted labels", permuted},
	} {
		acc, err := evaluation.ClusterAccuracy(tc.assign, testLabels)
		if err != nil {
			t.Fatalf("%s: ClusterAccuracy: %v", tc.name, err)
		}
		if math.Abs(acc-1) > 1e-9 {
			t.Errorf("%s: ClusterAccuracy = %v, want 1", tc.name, acc)
		}
		nmi, err := evaluation.NMI(tc.assign, testLabels)
		if err != nil {
			t.Fatalf("%s: NMI: %v", tc.name, err)
		}
		if math.Abs(nmi-1) > 1e-9 {
			t.Errorf("%s: NMI = %v, want 1", tc.name, nmi)
		}
	}

	rep, err := evaluation.Evaluate(
		evaluation.Split{Codes: trainCodes, Labels: trainLabels},
		evaluation.Split{Codes: testCodes, Labels: testLabels},
		d, evaluation.Options{})
	if err != nil {
		t.Fatalf("Evaluate: %v", err)
	}
	want := evaluation.Report{KNNAccuracy: 1, KNNK: 5, LinearProbeAccuracy: 1, KMeansAccuracy: 1, KMeansNMI: 1, KMeansRestarts: 5}
	rep.KMeansNMI = math.Round(rep.KMeansNMI*1e9) / 1e9
	if *rep != want {
		t.Errorf("Evaluate = %+v, want %+v", *rep, want)
	}
}

func TestRandomLabels(t *testing.T) {
	const d, classes = 10, 10
	rng := rand.New(rand.NewPCG(2, 2))
	trainCodes, trainLabels := noise(rng, 4000, d, classes)
	testCodes, testLabels := noise(rng, 2000, d, classes)

	knn, err := evaluation.KNNAccuracy(trainCodes, trainLabels, testCodes, testLabels, d, 5)
	if err != nil {
		t.Fatalf("KNNAccuracy: %v", err)
	}
	probe, err := evaluation.LinearProbeAccuracy(trainCodes, trainLabels, testCodes, testLabels, d)
	if err != nil {
		t.Fatalf("LinearProbeAccuracy: %v", err)
	}
	for _, tc := range []struct {
		name string
		acc  float64
	}{{"KNNAccuracy", knn}, {"LinearProbeAccuracy", probe}} {
		if math.Abs(tc.acc-0.1) > 0.05 {
			t.Errorf("%s = %v, want 0.1 ± 0.05 (chance)", tc.name, tc.acc)
		}
	}

	assign, _, err := evaluation.KMeans(testCodes, len(testLabels), d, classes, 2, 7)
	if err != nil {
		t.Fatalf("KMeans: %v", err)
	}
	nmi, err := evaluation.NMI(assign, testLabels)
	if err != nil {
		t.Fatalf("NMI: %v", err)
	}
	if nmi < 0 || nmi > 0.05 {
		t.Errorf("NMI = %v, want in [0, 0.05]", nmi)
	}
	t.Logf("chance level: k-NN %.3f, probe %.3f, NMI %.4f", knn, probe, nmi)
}

func TestKNNTies(t *testing.T) {
	for _, tc := range []struct {
		name        string
		train       []float32 // d = 1
		trainLabels []uint8
		query       float32
		k           int
		want        uint8
	}{
		{
			name:  "majority beats nearest",
			train: []float32{1, 2, 3, 4}, trainLabels: []uint8{3, 7, 7, 1},
			query: 0, k: 3, want: 7,
		},
		{
			name:  "label tie goes to nearest",
			train: []float32{2, 1, 3}, trainLabels: []uint8{7, 3, 9},
			query: 0, k: 2, want: 3,
		},
		{
			name: "label tie goes to nearest tied label",
			// Neighbours by distance: 9 (1), 3 (2), 5 (3), 3 (4), 5 (5).
			train: []float32{1, 2, 3, 4, 5}, trainLabels: []uint8{9, 3, 5, 3, 5},
			query: 0, k: 5, want: 3,
		},
		{
			name:  "distance tie goes to lower index",
			train: []float32{1, -1, 5}, trainLabels: []uint8{4, 2, 2},
			query: 0, k: 1, want: 4,
		},
		{
			name:  "distance tie at the k-th neighbour",
			train: []float32{-1, 3, 1, 1}, trainLabels: []uint8{6, 8, 8, 6},
			query: 0, k: 2, want: 6,
		},
		{
			name:  "k = n",
			train: []float32{1, 2, 3, 4, 5}, trainLabels: []uint8{0, 1, 1, 0, 1},
			query: 0, k: 5, want: 1,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			acc, err := evaluation.KNNAccuracy(tc.train, tc.trainLabels, []float32{tc.query}, []uint8{tc.want}, 1, tc.k)
			if err != nil {
				t.Fatal(err)
			}
			if acc != 1 {
				t.Errorf("prediction is not %d", tc.want)
			}
		})
	}
}

// TestKNNBruteForce checks KNNAccuracy against a direct sort of all the
// distances, on data with many equal distances (small integer codes).
func TestKNNBruteForce(t *testing.T) {
	const d, n, m, classes = 3, 300, 200, 4
	rng := rand.New(rand.NewPCG(3, 3))
	gen := func(n int) ([]float32, []uint8) {
		codes := make([]float32, n*d)
		for i := range codes {
			codes[i] = float32(rng.IntN(4))
		}
		labels := make([]uint8, n)
		for i := range labels {
			labels[i] = uint8(rng.IntN(classes))
		}
		return codes, labels
	}
	trainCodes, trainLabels := gen(n)
	for _, k := range []int{1, 2, 5, 10, n} {
		testCodes, testLabels := gen(m)
		// Relabel each test code with the brute-force prediction.
		for q := range m {
			idx := make([]int, n)
			dist := make([]float64, n)
			for i := range n {
				idx[i] = i
				for j := range d {
					t := float64(trainCodes[i*d+j] - testCodes[q*d+j])
					dist[i] += t * t
				}
			}
			slices.SortStableFunc(idx, func(a, b int) int {
				switch {
				case dist[a] < dist[b]:
					return -1
				case dist[a] > dist[b]:
					return 1
				}
				return 0
			})
			counts := make([]int, classes)
			for _, i := range idx[:k] {
				counts[trainLabels[i]]++
			}
			best := slices.Max(counts)
			for _, i := range idx[:k] {
				if counts[trainLabels[i]] == best {
					testLabels[q] = trainLabels[i]
					break
				}
			}
		}
		acc, err := evaluation.KNNAccuracy(trainCodes, trainLabels, testCodes, testLabels, d, k)
		if err != nil {
			t.Fatal(err)
		}
		if acc != 1 {
			t.Errorf("k=%d: accuracy against brute-force predictions = %v, want 1", k, acc)
		}
	}
}

func TestLinearProbe(t *testing.T) {
	const d = 2
	for _, tc := range []struct {
		name        string
		train       []float32
		trainLabels []uint8
		test        []float32
		testLabels  []uint8
		want        float64
	}{
		{
			name:  "one class",
			train: []float32{0, 0, 1, 1}, trainLabels: []uint8{4, 4},
			test: []float32{5, 5, 6, 6, 7, 7}, testLabels: []uint8{4, 1, 4},
			want: 2.0 / 3,
		},
		{
			name: "two classes split by the first coordinate",
			// The second coordinate is constant: it has no spread to
			// standardise by.
			train: []float32{-2, 3, -1, 3, 1, 3, 2, 3}, trainLabels: []uint8{0, 0, 200, 200},
			test: []float32{-5, 3, 5, 3, 0.5, 3}, testLabels: []uint8{0, 200, 200},
			want: 1,
		},
		{
			name:  "test label unseen in training",
			train: []float32{-1, 0, 1, 0}, trainLabels: []uint8{0, 1},
			test: []float32{-1, 0, 1, 0}, testLabels: []uint8{0, 2},
			want: 0.5,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			acc, err := evaluation.LinearProbeAccuracy(tc.train, tc.trainLabels, tc.test, tc.testLabels, d)
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(acc-tc.want) > 1e-12 {
				t.Errorf("accuracy = %v, want %v", acc, tc.want)
			}
		})
	}
}

func TestKMeans(t *testing.T) {
	const d = 10
	rng := rand.New(rand.NewPCG(4, 4))
	codes, _ := noise(rng, 1000, d, 1)
	n := len(codes) / d

	a1, in1, err := evaluation.KMeans(codes, n, d, 8, 1, 42)
	if err != nil {
		t.Fatal(err)
	}
	a5, in5, err := evaluation.KMeans(codes, n, d, 8, 5, 42)
	if err != nil {
		t.Fatal(err)
	}
	again, inAgain, err := evaluation.KMeans(codes, n, d, 8, 5, 42)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(a5, again) || in5 != inAgain {
		t.Errorf("KMeans is not deterministic for a seed: inertia %v then %v", in5, inAgain)
	}
	// The first of the 5 runs is the single run.
	if in5 > in1 {
		t.Errorf("inertia with 5 restarts %v > with 1 restart %v", in5, in1)
	}

	// The means of the clusters are the centres that minimise the inertia
	// of an assignment, so the inertia to them is at most the reported
	// one, and close to it for a converged run.
	for _, run := range []struct {
		assign  []int
		inertia float64
	}{{a1, in1}, {a5, in5}} {
		means := make([]float64, 8*d)
		counts := make([]int, 8)
		for i, c := range run.assign {
			if c < 0 || c >= 8 {
				t.Fatalf("cluster %d out of range", c)
			}
			counts[c]++
			for j := range d {
				means[c*d+j] += float64(codes[i*d+j])
			}
		}
		for c := range counts {
			if counts[c] == 0 {
				t.Fatalf("cluster %d is empty", c)
			}
			for j := range d {
				means[c*d+j] /= float64(counts[c])
			}
		}
		inertia := 0.0
		for i, c := range run.assign {
			for j := range d {
				e := float64(codes[i*d+j]) - means[c*d+j]
				inertia += e * e
			}
		}
		if inertia > run.inertia*(1+1e-12) || inertia < run.inertia*(1-1e-3) {
			t.Errorf("reported inertia %v, inertia to the cluster means %v", run.inertia, inertia)
		}
	}
}

func TestKMeansDegenerate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		codes []float32 // d = 2
		k     int
		want  float64 // inertia
	}{
		{"identical codes", []float32{1, 1, 1, 1, 1, 1, 1, 1}, 3, 0},
		{"two distinct codes, three clusters", []float32{0, 0, 0, 0, 2, 0, 2, 0}, 3, 0},
		{"one cluster", []float32{0, 0, 2, 0, 0, 2, 2, 2}, 1, 8}, // 4 codes at 2 from (1, 1)
		{"k = n", []float32{0, 0, 2, 0, 0, 2, 2, 2}, 4, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assign, inertia, err := evaluation.KMeans(tc.codes, len(tc.codes)/2, 2, tc.k, 3, 1)
			if err != nil {
				t.Fatal(err)
			}
			if len(assign) != len(tc.codes)/2 {
				t.Fatalf("%d assignments for %d codes", len(assign), len(tc.codes)/2)
			}
			if math.Abs(inertia-tc.want) > 1e-12 {
				t.Errorf("inertia = %v, want %v", inertia, tc.want)
			}
		})
	}
}

func TestClusterAccuracy(t *testing.T) {
	for _, tc := range []struct {
		name   string
		assign []int
		labels []uint8
		want   float64
	}{
		{"equal", []int{0, 1, 2}, []uint8{0, 1, 2}, 1},
		{"renamed", []int{5, 5, -3, 9}, []uint8{1, 1, 2, 0}, 1},
		// Matching 0→0 (2 codes) and 1→1 (2) beats 0→1 (1) and 1→0 (0).
		{"one wrong", []int{0, 0, 0, 1, 1}, []uint8{0, 0, 1, 1, 1}, 4.0 / 5},
		// Two clusters for three labels: one label is left unmatched.
		{"fewer clusters", []int{0, 0, 1, 1, 1, 1}, []uint8{0, 1, 2, 2, 2, 0}, 4.0 / 6},
		// Three clusters for two labels: one cluster is left unmatched.
		{"more clusters", []int{0, 1, 2, 2, 1, 0}, []uint8{3, 3, 4, 4, 3, 4}, 4.0 / 6},
		// Greedy matching would give cluster 0 label 0 (3 codes), then
		// cluster 1 label 1 (0 codes): 3/7; the best is 0→1 (2 codes) and
		// 1→0 (2 codes): 4/7.
		{"greedy is wrong", []int{0, 0, 0, 0, 0, 1, 1}, []uint8{0, 0, 0, 1, 1, 0, 0}, 4.0 / 7},
		{"single", []int{3}, []uint8{8}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := evaluation.ClusterAccuracy(tc.assign, tc.labels)
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(got-tc.want) > 1e-12 {
				t.Errorf("ClusterAccuracy = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestNMI(t *testing.T) {
	for _, tc := range []struct {
		name string
		u, v []uint8
		want float64
	}{
		// Contingency table (rows u, columns v):
		//	      v=0 v=1 v=2
		//	u=0    2   1   0
		//	u=1    0   1   2
		// H(U) = ln 2, H(V) = ln 3,
		// I = 2/6·ln((2/6)/(3/6·2/6))·2 + 1/6·ln((1/6)/(3/6·2/6))·2
		//   = 2/3·ln 2 + 1/3·ln 1 = 2/3·ln 2,
		// NMI = (2/3·ln 2) / ((ln 2 + ln 3)/2) = 4·ln 2 / (3·ln 6) ≈ 0.51580.
		{"hand", []uint8{0, 0, 0, 1, 1, 1}, []uint8{0, 0, 1, 1, 2, 2}, 4 * math.Ln2 / (3 * math.Log(6))},
		// Table [[1 1] [1 1]]: I = 0.
		{"independent", []uint8{0, 0, 1, 1}, []uint8{0, 1, 0, 1}, 0},
		{"renamed", []uint8{0, 0, 1, 2}, []uint8{7, 7, 3, 1}, 1},
		{"both single", []uint8{4, 4, 4}, []uint8{0, 0, 0}, 1},
		// H(U) = 0 and I = 0.
		{"one single", []uint8{4, 4, 4, 4}, []uint8{0, 1, 0, 1}, 0},
		// Table [[2 0] [1 1]] over n = 4: H(U) = ln 2,
		// H(V) = -(3/4·ln(3/4) + 1/4·ln(1/4)),
		// I = 2/4·ln((2/4)/(2/4·3/4)) + 1/4·ln((1/4)/(2/4·3/4)) + 1/4·ln((1/4)/(2/4·1/4))
		//   = 1/2·ln(4/3) + 1/4·ln(2/3) + 1/4·ln 2.
		{
			"unbalanced", []uint8{0, 0, 1, 1}, []uint8{0, 0, 0, 1},
			(0.5*math.Log(4.0/3) + 0.25*math.Log(2.0/3) + 0.25*math.Ln2) /
				((math.Ln2 - (0.75*math.Log(0.75) + 0.25*math.Log(0.25))) / 2),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			toInt := func(s []uint8) []int {
				out := make([]int, len(s))
				for i, v := range s {
					out[i] = int(v)
				}
				return out
			}
			uv, err := evaluation.NMI(toInt(tc.u), tc.v)
			if err != nil {
				t.Fatal(err)
			}
			vu, err := evaluation.NMI(toInt(tc.v), tc.u)
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(uv-tc.want) > 1e-12 {
				t.Errorf("NMI(u, v) = %v, want %v", uv, tc.want)
			}
			if math.Abs(uv-vu) > 1e-12 {
				t.Errorf("NMI(u, v) = %v but NMI(v, u) = %v", uv, vu)
			}
		})
	}
}

func TestPSNR(t *testing.T) {
	for _, tc := range []struct {
		mse, want float64
	}{
		{0.01, 20},
		{1, 0},
		{1e-4, 40},
		{0.1, 10},
		{0, math.Inf(1)},
		{-1, math.NaN()},
		{math.NaN(), math.NaN()},
	} {
		got := evaluation.PSNR(tc.mse)
		if math.IsNaN(tc.want) != math.IsNaN(got) || (!math.IsNaN(got) && math.Abs(got-tc.want) > 1e-12 && got != tc.want) {
			t.Errorf("PSNR(%v) = %v, want %v", tc.mse, got, tc.want)
		}
	}
}

// tooManyClusters returns MaxClusters+1 distinct cluster ids.
func tooManyClusters() []int {
	ids := make([]int, evaluation.MaxClusters+1)
	for i := range ids {
		ids[i] = i
	}
	return ids
}

func TestBadInputs(t *testing.T) {
	good := []float32{0, 0, 1, 1, 2, 2} // 3 codes, d = 2
	labels := []uint8{0, 1, 0}
	withNaN := []float32{0, 0, float32(math.NaN()), 1, 2, 2}
	withInf := []float32{0, 0, 1, float32(math.Inf(-1)), 2, 2}
	knn := func(tr []float32, trl []uint8, te []float32, tel []uint8, d, k int) func() error {
		return func() error {
			_, err := evaluation.KNNAccuracy(tr, trl, te, tel, d, k)
			return err
		}
	}
	probe := func(tr []float32, trl []uint8, te []float32, tel []uint8, d int) func() error {
		return func() error {
			_, err := evaluation.LinearProbeAccuracy(tr, trl, te, tel, d)
			return err
		}
	}
	kmeans := func(codes []float32, n, d, k, restarts int) func() error {
		return func() error {
			_, _, err := evaluation.KMeans(codes, n, d, k, restarts, 0)
			return err
		}
	}
	clusterAcc := func(a []int, l []uint8) func() error {
		return func() error { _, err := evaluation.ClusterAccuracy(a, l); return err }
	}
	nmi := func(a []int, l []uint8) func() error {
		return func() error { _, err := evaluation.NMI(a, l); return err }
	}
	evaluate := func(train, test evaluation.Split, opts evaluation.Options) func() error {
		return func() error { _, err := evaluation.Evaluate(train, test, 2, opts); return err }
	}
	split := evaluation.Split{Codes: good, Labels: labels}

	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"knn: k = 0", knn(good, labels, good, labels, 2, 0)},
		{"knn: k > n", knn(good, labels, good, labels, 2, 4)},
		{"knn: negative k", knn(good, labels, good, labels, 2, -1)},
		{"knn: d = 0", knn(good, labels, good, labels, 0, 1)},
		{"knn: codes not a multiple of d", knn(good, labels, good[:5], labels, 2, 1)},
		{"knn: train labels short", knn(good, labels[:2], good, labels, 2, 1)},
		{"knn: test labels long", knn(good, labels, good, append(labels, 0), 2, 1)},
		{"knn: empty train", knn(nil, nil, good, labels, 2, 1)},
		{"knn: empty test", knn(good, labels, nil, nil, 2, 1)},
		{"knn: NaN in train", knn(withNaN, labels, good, labels, 2, 1)},
		{"knn: Inf in test", knn(good, labels, withInf, labels, 2, 1)},
		{"probe: d = -1", probe(good, labels, good, labels, -1)},
		{"probe: length mismatch", probe(good, labels[:1], good, labels, 2)},
		{"probe: empty train", probe(nil, nil, good, labels, 2)},
		{"probe: empty test", probe(good, labels, []float32{}, []uint8{}, 2)},
		{"probe: NaN in test", probe(good, labels, withNaN, labels, 2)},
		{"kmeans: k = 0", kmeans(good, 3, 2, 0, 1)},
		{"kmeans: k > n", kmeans(good, 3, 2, 4, 1)},
		{"kmeans: no restarts", kmeans(good, 3, 2, 2, 0)},
		{"kmeans: n = 0", kmeans(nil, 0, 2, 1, 1)},
		{"kmeans: d = 0", kmeans(good, 3, 0, 1, 1)},
		{"kmeans: length mismatch", kmeans(good, 2, 2, 1, 1)},
		{"kmeans: NaN", kmeans(withNaN, 3, 2, 2, 1)},
		{"kmeans: Inf", kmeans(withInf, 3, 2, 2, 1)},
		{"cluster accuracy: length mismatch", clusterAcc([]int{0, 1}, labels)},
		{"cluster accuracy: empty", clusterAcc(nil, nil)},
		{"cluster accuracy: too many clusters", clusterAcc(tooManyClusters(), make([]uint8, 1025))},
		{"NMI: length mismatch", nmi([]int{0, 1, 2, 3}, labels)},
		{"NMI: empty", nmi([]int{}, []uint8{})},
		{"evaluate: negative K", evaluate(split, split, evaluation.Options{K: -1})},
		{"evaluate: K > n", evaluate(split, split, evaluation.Options{K: 4})},
		{"evaluate: more clusters than test codes", evaluate(split, split, evaluation.Options{K: 1, Clusters: 10})},
		{"evaluate: empty test", evaluate(split, evaluation.Split{}, evaluation.Options{K: 1, Clusters: 1})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if err == nil {
				t.Fatal("no error")
			}
			t.Log(err)
		})
	}
}

// The benchmarks below time the scores at the size of MNIST: 60,000
// training and 10,000 test codes of size 10, drawn from N(0, I) with random
// labels, which is the hardest case for the k-d tree of KNNAccuracy. Run them
// with
//
//	go test -run '^$' -bench . -benchtime 1x ./evaluation

func mnistSized(b *testing.B) (train, test evaluation.Split) {
	b.Helper()
	rng := rand.New(rand.NewPCG(5, 5))
	train.Codes, train.Labels = noise(rng, 60000, 10, 10)
	test.Codes, test.Labels = noise(rng, 10000, 10, 10)
	return train, test
}

func BenchmarkKNNAccuracy(b *testing.B) {
	train, test := mnistSized(b)
	for b.Loop() {
		if _, err := evaluation.KNNAccuracy(train.Codes, train.Labels, test.Codes, test.Labels, 10, 5); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLinearProbeAccuracy(b *testing.B) {
	train, test := mnistSized(b)
	for b.Loop() {
		if _, err := evaluation.LinearProbeAccuracy(train.Codes, train.Labels, test.Codes, test.Labels, 10); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkKMeans(b *testing.B) {
	_, test := mnistSized(b)
	for b.Loop() {
		if _, _, err := evaluation.KMeans(test.Codes, len(test.Labels), 10, 10, 5, 0); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEvaluate(b *testing.B) {
	train, test := mnistSized(b)
	for b.Loop() {
		if _, err := evaluation.Evaluate(train, test, 10, evaluation.DefaultOptions()); err != nil {
			b.Fatal(err)
		}
	}
}
