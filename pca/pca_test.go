package pca

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/latent-ai/latent/internal/gaussiantest"
	"github.com/latent-ai/latent/latentstats"
)

func TestFitKnownCovariance(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	mean := [3]float64{1, -2, 0.5}
	std := [3]float64{3, 1, 0.3}
	r := gaussiantest.Rotation(0.7, -0.4, 1.1)
	const n = 200_000
	s, err := Fit(gaussiantest.Gaussian(rng, n, mean, std, r), n, 3)
	if err != nil {
		t.Fatal(err)
	}
	if s.N != n || s.Dim != 3 {
		t.Fatalf("N, Dim = %d, %d, want %d, 3", s.N, s.Dim, n)
	}
	for j := range mean {
		if math.Abs(s.Mean[j]-mean[j]) > 0.03 {
			t.Errorf("mean[%d] = %.4f, want %.4f", j, s.Mean[j], mean[j])
		}
	}
	for k := 0; k < 3; k++ {
		want := std[k] * std[k]
		if got := s.Eigenvalues[k]; math.Abs(got-want)/want > 0.02 {
			t.Errorf("eigenvalue %d = %.4f, want %.4f (within 2%%)", k, got, want)
		}
		// The k-th true direction is column k of r; compare up to sign.
		col := []float64{r[0][k], r[1][k], r[2][k]}
		if c := math.Abs(gaussiantest.Dot(col, s.Eigenvectors[k])); c < 0.999 {
			t.Errorf("eigenvector %d = %v, |cos| with the true direction %v = %.5f, want > 0.999", k, s.Eigenvectors[k], col, c)
		}
	}
	if err := s.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	// The covariance is reproduced by its decomposition: Q Λ Qᵀ = Cov.
	for a := 0; a < 3; a++ {
		for b := 0; b < 3; b++ {
			v := 0.0
			for k := 0; k < 3; k++ {
				v += s.Eigenvectors[k][a] * s.Eigenvalues[k] * s.Eigenvectors[k][b]
			}
			if math.Abs(v-s.Cov[a][b]) > 1e-9 {
				t.Errorf("(QΛQᵀ)[%d][%d] = %g, Cov = %g", a, b, v, s.Cov[a][b])
			}
		}
	}
}

func TestFitDegenerate(t *testing.T) {
	// All codes identical: zero covariance, sampling returns the mean.
	codes := []float32{1, 2, 1, 2, 1, 2}
	s, err := Fit(codes, 3, 2)
	if err != nil {
		t.Fatal(err)
	}
	for k, l := range s.Eigenvalues {
		if l != 0 {
			t.Errorf("eigenvalue %d = %g, want 0", k, l)
		}
	}
	for _, c := range s.Sample(rand.New(rand.NewPCG(1, 1)), 4) {
		if c[0] != 1 || c[1] != 2 {
			t.Errorf("sample of a point mass = %v, want [1 2]", c)
		}
	}
	// A rank-1 case: tiny negative eigenvalues from rounding are clamped.
	line := make([]float32, 0, 200)
	for i := 0; i < 100; i++ {
		line = append(line, float32(i)*0.1, float32(i)*0.3)
	}
	s, err = Fit(line, 100, 2)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range s.Sample(rand.New(rand.NewPCG(1, 1)), 10) {
		for _, v := range c {
			if math.IsNaN(v) {
				t.Fatalf("sample of a rank-1 fit holds NaN: %v", c)
			}
		}
	}
}

func TestFitErrors(t *testing.T) {
	nan := float32(math.NaN())
	inf := float32(math.Inf(1))
	for _, tc := range []struct {
		name  string
		codes []float32
		n, d  int
		want  string
	}{
		{"one code", []float32{1, 2}, 1, 2, "at least 2"},
		{"no codes", nil, 0, 2, "at least 2"},
		{"zero dim", nil, 2, 0, "code size"},
		{"huge dim", nil, 2, latentstats.MaxDim + 1, "code size"},
		{"short", []float32{1, 2, 3}, 2, 2, "want 4"},
		{"long", []float32{1, 2, 3, 4, 5}, 2, 2, "want 4"},
		{"NaN", []float32{1, 2, nan, 4}, 2, 2, "code 1 holds NaN"},
		{"Inf", []float32{1, inf, 3, 4}, 2, 2, "code 0 holds +Inf"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Fit(tc.codes, tc.n, tc.d)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Fit: error %v, want one containing %q", err, tc.want)
			}
		})
	}
}
