package latentstats_test

import (
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/latent-ai/latent/latentstats"
	"github.com/latent-ai/latent/pca"
)

// rotation returns a 3-D rotation matrix (rows) from three angles.
func rotation(a, b, c float64) [3][3]float64 {
	rz := [3][3]float64{{math.Cos(a), -math.Sin(a), 0}, {math.Sin(a), math.Cos(a), 0}, {0, 0, 1}}
	ry := [3][3]float64{{math.Cos(b), 0, math.Sin(b)}, {0, 1, 0}, {-math.Sin(b), 0, math.Cos(b)}}
	rx := [3][3]float64{{1, 0, 0}, {0, math.Cos(c), -math.Sin(c)}, {0, math.Sin(c), math.Cos(c)}}
	mul := func(p, q [3][3]float64) (r [3][3]float64) {
		for i := 0; i < 3; i++ {
			for j := 0; j < 3; j++ {
				for k := 0; k < 3; k++ {
					r[i][j] += p[i][k] * q[k][j]
				}
			}
		}
		return r
	}
	return mul(mul(rz, ry), rx)
}

// gaussian draws n samples of mean + R·diag(std)·z.
func gaussian(rng *rand.Rand, n int, mean, std [3]float64, r [3][3]float64) []float32 {
	out := make([]float32, 0, 3*n)
	for i := 0; i < n; i++ {
		var z [3]float64
		for k := range z {
			z[k] = rng.NormFloat64() * std[k]
		}
		for a := 0; a < 3; a++ {
			v := mean[a]
			for k := 0; k < 3; k++ {
				v += r[a][k] * z[k]
			}
			out = append(out, float32(v))
		}
	}
	return out
}

func dot(a, b []float64) float64 {
	s := 0.0
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

func TestSampleMatchesFit(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	s, err := pca.Fit(gaussian(rng, 50_000, [3]float64{0, 1, 2}, [3]float64{2, 0.5, 0.1}, rotation(0.3, 0.2, 0.1)), 50_000, 3)
	if err != nil {
		t.Fatal(err)
	}
	samples := s.Sample(rand.New(rand.NewPCG(5, 6)), 100_000)
	flat := make([]float32, 0, 3*len(samples))
	for _, c := range samples {
		for _, v := range c {
			flat = append(flat, float32(v))
		}
	}
	again, err := pca.Fit(flat, len(samples), 3)
	if err != nil {
		t.Fatal(err)
	}
	for a := 0; a < 3; a++ {
		if math.Abs(again.Mean[a]-s.Mean[a]) > 0.03 {
			t.Errorf("mean of samples [%d] = %.4f, want %.4f", a, again.Mean[a], s.Mean[a])
		}
		for b := 0; b < 3; b++ {
			if math.Abs(again.Cov[a][b]-s.Cov[a][b]) > 0.05*s.Eigenvalues[0] {
				t.Errorf("cov of samples [%d][%d] = %.4f, want %.4f", a, b, again.Cov[a][b], s.Cov[a][b])
			}
		}
	}
	// The same seed gives the same samples.
	x := s.Sample(rand.New(rand.NewPCG(7, 8)), 3)
	y := s.Sample(rand.New(rand.NewPCG(7, 8)), 3)
	for i := range x {
		for j := range x[i] {
			if x[i][j] != y[i][j] {
				t.Fatalf("Sample is not deterministic for a fixed seed: %v vs %v", x, y)
			}
		}
	}
	if got := s.Sample(nil, 2); len(got) != 2 {
		t.Fatalf("Sample(nil, 2) gave %d codes", len(got))
	}
}

func TestAlongAndGrid(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	s, err := pca.Fit(gaussian(rng, 20_000, [3]float64{1, 2, 3}, [3]float64{2, 1, 0.5}, rotation(1, 2, 3)), 20_000, 3)
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.Along(1, -2)
	if err != nil {
		t.Fatal(err)
	}
	d := make([]float64, 3)
	for j := range d {
		d[j] = c[j] - s.Mean[j]
	}
	if got, want := dot(d, s.Eigenvectors[1]), -2*math.Sqrt(s.Eigenvalues[1]); math.Abs(got-want) > 1e-9 {
		t.Errorf("Along(1, -2) projects to %g on q_1, want %g", got, want)
	}
	if got := dot(d, s.Eigenvectors[0]); math.Abs(got) > 1e-9 {
		t.Errorf("Along(1, -2) projects to %g on q_0, want 0", got)
	}

	g, err := s.Grid2(0, 1, 5, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(g) != 25 {
		t.Fatalf("Grid2 gave %d codes, want 25", len(g))
	}
	centre := g[12]
	for j := range centre {
		if math.Abs(centre[j]-s.Mean[j]) > 1e-9 {
			t.Fatalf("grid centre %v, want the mean %v", centre, s.Mean)
		}
	}
	first, _ := s.Along(0, -2)
	corner := g[2] // row 0 (-2 along q0), column 2 (0 along q1)
	for j := range corner {
		if math.Abs(corner[j]-first[j]) > 1e-9 {
			t.Fatalf("grid[2] = %v, want Along(0, -2) = %v", corner, first)
		}
	}

	for _, tc := range []struct {
		name        string
		i, j, steps int
	}{
		{"same component", 1, 1, 3},
		{"negative", -1, 0, 3},
		{"too large", 0, 3, 3},
		{"one step", 0, 1, 1},
	} {
		if _, err := s.Grid2(tc.i, tc.j, tc.steps, 2); err == nil {
			t.Errorf("Grid2 %s: no error", tc.name)
		}
	}
	if _, err := s.Along(3, 1); err == nil {
		t.Error("Along(3) on 3-D stats: no error")
	}
}

func TestSaveLoad(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	s, err := pca.Fit(gaussian(rng, 1000, [3]float64{}, [3]float64{1, 2, 3}, rotation(0, 0, 0)), 1000, 3)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, latentstats.FileName)
	if err := s.Save(path); err != nil {
		t.Fatal(err)
	}
	got, err := latentstats.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := s.JSON()
	b, _ := got.JSON()
	if string(a) != string(b) {
		t.Fatalf("round trip changed the stats:\n%s\n%s", a, b)
	}

	bad := map[string]string{
		"not json":      "{",
		"empty":         "{}",
		"short mean":    `{"n":2,"dim":2,"mean":[0],"cov":[[1,0],[0,1]],"eigenvalues":[1,1],"eigenvectors":[[1,0],[0,1]]}`,
		"ascending":     `{"n":2,"dim":2,"mean":[0,0],"cov":[[1,0],[0,2]],"eigenvalues":[1,2],"eigenvectors":[[1,0],[0,1]]}`,
		"not unit":      `{"n":2,"dim":2,"mean":[0,0],"cov":[[1,0],[0,1]],"eigenvalues":[1,1],"eigenvectors":[[2,0],[0,1]]}`,
		"ragged":        `{"n":2,"dim":2,"mean":[0,0],"cov":[[1],[0,1]],"eigenvalues":[1,1],"eigenvectors":[[1,0],[0,1]]}`,
		"one code only": `{"n":1,"dim":2,"mean":[0,0],"cov":[[1,0],[0,1]],"eigenvalues":[1,1],"eigenvectors":[[1,0],[0,1]]}`,
	}
	for name, content := range bad {
		p := filepath.Join(dir, "bad.json")
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := latentstats.Load(p); err == nil {
			t.Errorf("Load %s: no error", name)
		}
	}
	if _, err := latentstats.Load(filepath.Join(dir, "missing.json")); err == nil {
		t.Error("Load of a missing file: no error")
	}
}
