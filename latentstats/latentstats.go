// Package latentstats is the Gaussian fitted to the codes that an encoder
// gives a data set: its type, sampling from it, its principal directions,
// and its JSON form. It depends on the standard library alone, so that the
// inference package can sample without linear-algebra libraries; package
// pca fits it.
//
// The fit is the sample mean and covariance of the codes and the
// eigendecomposition of that covariance (a principal component analysis).
// The eigendecomposition is what sampling uses: a code drawn from
// N(mean, cov) is mean + Q·diag(sqrt(λ))·z with z ~ N(0, I), and the k-th
// principal direction is mean + t·sqrt(λ_k)·q_k.
//
// Stats are stored as JSON, in a run folder as latent-stats.json and in the
// metadata of the exported ONNX graphs.
package latentstats

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"

	"github.com/latent-ai/latent/atomicfile"
)

// FileName is the name of the stats file in a run folder.
const FileName = "latent-stats.json"

// MaxDim is the largest code size that pca.Fit accepts and Validate
// allows. The covariance has MaxDim² values.
const MaxDim = 4096

// Stats is a Gaussian fitted to n codes of size Dim.
//
// All slices have Dim values (or Dim rows of Dim values). Eigenvalues are
// sorted in descending order and Eigenvectors[k] is the unit eigenvector of
// Eigenvalues[k]; each eigenvector's sign is fixed so that its largest
// component (by absolute value) is positive. Eigenvalues are those of the
// covariance matrix and so never negative in exact arithmetic; tiny negative
// values from rounding are kept as computed and treated as 0 when sampling.
type Stats struct {
	// N is the number of codes the stats were fitted to.
	N int `json:"n"`
	// Dim is the code size.
	Dim int `json:"dim"`
	// Mean is the mean code.
	Mean []float64 `json:"mean"`
	// Cov is the sample covariance (normalised by N-1), row by row.
	Cov [][]float64 `json:"cov"`
	// Eigenvalues of Cov, descending.
	Eigenvalues []float64 `json:"eigenvalues"`
	// Eigenvectors[k] is the unit eigenvector of Eigenvalues[k].
	Eigenvectors [][]float64 `json:"eigenvectors"`
}

// Std returns the standard deviation along the k-th principal direction,
// sqrt(Eigenvalues[k]), with a negative eigenvalue taken as 0.
func (s *Stats) Std(k int) float64 {
	return math.Sqrt(max(s.Eigenvalues[k], 0))
}

// Sample draws n codes from N(Mean, Cov) using rng: each is
// Mean + Σ_k sqrt(λ_k)·z_k·q_k with z ~ N(0, I). The returned codes are new
// slices of Dim values, owned by the caller. A nil rng uses a randomly
// seeded generator. s must be valid, as pca.Fit, Parse and Load return it.
func (s *Stats) Sample(rng *rand.Rand, n int) [][]float64 {
	if rng == nil {
		rng = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	d := s.Dim
	std := make([]float64, d)
	for k := range std {
		std[k] = s.Std(k)
	}
	out := make([][]float64, n)
	for i := range out {
		c := make([]float64, d)
		copy(c, s.Mean)
		for k := 0; k < d; k++ {
			z := rng.NormFloat64() * std[k]
			q := s.Eigenvectors[k]
			for j := range c {
				c[j] += z * q[j]
			}
		}
		out[i] = c
	}
	return out
}

// Along returns the code t standard deviations from the mean along the k-th
// principal direction: Mean + t·sqrt(λ_k)·q_k. It returns an error if k is
// not in [0, Dim).
func (s *Stats) Along(k int, t float64) ([]float64, error) {
	if k < 0 || k >= s.Dim {
		return nil, fmt.Errorf("latentstats: component %d out of range: want 0 to %d", k, s.Dim-1)
	}
	c := make([]float64, s.Dim)
	step := t * s.Std(k)
	for j := range c {
		c[j] = s.Mean[j] + step*s.Eigenvectors[k][j]
	}
	return c, nil
}

// Grid2 returns steps×steps codes on the plane of principal directions i
// and j, from -span to +span standard deviations along each, row by row:
// code r*steps+c is Mean + a_r·sqrt(λ_i)·q_i + b_c·sqrt(λ_j)·q_j, where a
// runs along rows (direction i) and b along columns (direction j). It needs
// steps >= 2 and i != j.
func (s *Stats) Grid2(i, j, steps int, span float64) ([][]float64, error) {
	switch {
	case i < 0 || i >= s.Dim || j < 0 || j >= s.Dim:
		return nil, fmt.Errorf("latentstats: components %d and %d: want 0 to %d", i, j, s.Dim-1)
	case i == j:
		return nil, fmt.Errorf("latentstats: grid on components %d and %d: want two different components", i, j)
	case steps < 2:
		return nil, fmt.Errorf("latentstats: grid of %d steps: want at least 2", steps)
	}
	si, sj := s.Std(i), s.Std(j)
	out := make([][]float64, 0, steps*steps)
	for r := 0; r < steps; r++ {
		a := span * (2*float64(r)/float64(steps-1) - 1) * si
		for c := 0; c < steps; c++ {
			b := span * (2*float64(c)/float64(steps-1) - 1) * sj
			code := make([]float64, s.Dim)
			for k := range code {
				code[k] = s.Mean[k] + a*s.Eigenvectors[i][k] + b*s.Eigenvectors[j][k]
			}
			out = append(out, code)
		}
	}
	return out, nil
}

// Validate checks that the stats are consistent: every slice of length Dim,
// all values finite, eigenvalues descending, eigenvectors of unit length.
func (s *Stats) Validate() error {
	d := s.Dim
	if d < 1 || d > MaxDim {
		return fmt.Errorf("latentstats: dim %d out of range: want 1 to %d", d, MaxDim)
	}
	if s.N < 2 {
		return fmt.Errorf("latentstats: fitted to %d codes, want at least 2", s.N)
	}
	if len(s.Mean) != d || len(s.Cov) != d || len(s.Eigenvalues) != d || len(s.Eigenvectors) != d {
		return fmt.Errorf("latentstats: mean, cov, eigenvalues and eigenvectors must each have %d entries, have %d, %d, %d and %d",
			d, len(s.Mean), len(s.Cov), len(s.Eigenvalues), len(s.Eigenvectors))
	}
	if err := finite("mean", s.Mean); err != nil {
		return err
	}
	if err := finite("eigenvalues", s.Eigenvalues); err != nil {
		return err
	}
	for k := 0; k < d; k++ {
		if len(s.Cov[k]) != d || len(s.Eigenvectors[k]) != d {
			return fmt.Errorf("latentstats: cov row %d has %d values and eigenvector %d has %d, want %d", k, len(s.Cov[k]), k, len(s.Eigenvectors[k]), d)
		}
		if err := finite(fmt.Sprintf("cov row %d", k), s.Cov[k]); err != nil {
			return err
		}
		if err := finite(fmt.Sprintf("eigenvector %d", k), s.Eigenvectors[k]); err != nil {
			return err
		}
		if k > 0 && s.Eigenvalues[k] > s.Eigenvalues[k-1] {
			return fmt.Errorf("latentstats: eigenvalues not in descending order at %d (%g > %g)", k, s.Eigenvalues[k], s.Eigenvalues[k-1])
		}
		norm := 0.0
		for _, v := range s.Eigenvectors[k] {
			norm += v * v
		}
		if math.Abs(norm-1) > 1e-6 {
			return fmt.Errorf("latentstats: eigenvector %d has squared length %g, want 1", k, norm)
		}
	}
	return nil
}

func finite(what string, v []float64) error {
	for i, x := range v {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return fmt.Errorf("latentstats: %s holds %v at index %d", what, x, i)
		}
	}
	return nil
}

// JSON returns the JSON encoding of the stats, as stored in ONNX metadata
// and in latent-stats.json.
func (s *Stats) JSON() ([]byte, error) {
	b, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("latentstats: %w", err)
	}
	return b, nil
}

// Parse reads stats written by JSON and validates them.
func Parse(data []byte) (*Stats, error) {
	var s Stats
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("latentstats: %w", err)
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return &s, nil
}

// Save writes the stats to path as JSON, atomically.
func (s *Stats) Save(path string) error {
	b, err := json.MarshalIndent(s, "", " ")
	if err != nil {
		return fmt.Errorf("latentstats: save %s: %w", path, err)
	}
	return atomicfile.WriteBytes(path, append(b, '\n'), 0o644)
}

// Load reads and validates stats saved by Save.
func Load(path string) (*Stats, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("latentstats: %w", err)
	}
	s, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}
