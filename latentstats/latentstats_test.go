package latentstats_test

import (
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/latent-ai/latent/internal/gaussiantest"
	"github.com/latent-ai/latent/latentstats"
	"github.com/latent-ai/latent/pca"
)

func TestSampleMatchesFit(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	s, err := pca.Fit(gaussiantest.Gaussian(rng, 50_000, [3]float64{0, 1, 2}, [3]float64{2, 0.5, 0.1}, gaussiantest.Rotation(0.3, 0.2, 0.1)), 50_000, 3)
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
	s, err := pca.Fit(gaussiantest.Gaussian(rng, 20_000, [3]float64{1, 2, 3}, [3]float64{2, 1, 0.5}, gaussiantest.Rotation(1, 2, 3)), 20_000, 3)
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
	if got, want := gaussiantest.Dot(d, s.Eigenvectors[1]), -2*math.Sqrt(s.Eigenvalues[1]); math.Abs(got-want) > 1e-9 {
		t.Errorf("Along(1, -2) projects to %g on q_1, want %g", got, want)
	}
	if got := gaussiantest.Dot(d, s.Eigenvectors[0]); math.Abs(got) > 1e-9 {
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
	s, err := pca.Fit(gaussiantest.Gaussian(rng, 1000, [3]float64{}, [3]float64{1, 2, 3}, gaussiantest.Rotation(0, 0, 0)), 1000, 3)
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
