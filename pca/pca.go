// Package pca fits the Gaussian of package latentstats to codes: their
// mean, their covariance and its eigendecomposition (a principal component
// analysis), with gonum's symmetric eigensolver.
package pca

import (
	"errors"
	"fmt"
	"math"

	"github.com/latent-ai/latent/latentstats"
	"gonum.org/v1/gonum/mat"
)

// Fit computes the mean, covariance and eigendecomposition of n codes of d
// values each, stored row after row in codes (len(codes) == n*d). It needs at
// least two codes, and every value must be finite. codes is not retained.
func Fit(codes []float32, n, d int) (*latentstats.Stats, error) {
	switch {
	case d < 1 || d > latentstats.MaxDim:
		return nil, fmt.Errorf("pca: code size %d out of range: want 1 to %d", d, latentstats.MaxDim)
	case n < 2:
		return nil, fmt.Errorf("pca: %d codes: need at least 2 to estimate a covariance", n)
	case len(codes) != n*d:
		return nil, fmt.Errorf("pca: %d values for %d codes of size %d, want %d", len(codes), n, d, n*d)
	}
	for i, v := range codes {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return nil, fmt.Errorf("pca: code %d holds %v at index %d: want finite values", i/d, v, i%d)
		}
	}

	mean := make([]float64, d)
	for i := 0; i < n; i++ {
		row := codes[i*d : (i+1)*d]
		for j, v := range row {
			mean[j] += float64(v)
		}
	}
	for j := range mean {
		mean[j] /= float64(n)
	}

	// Accumulate the centred outer products in the upper triangle.
	cov := make([]float64, d*d)
	x := make([]float64, d)
	for i := 0; i < n; i++ {
		row := codes[i*d : (i+1)*d]
		for j, v := range row {
			x[j] = float64(v) - mean[j]
		}
		for a := 0; a < d; a++ {
			xa := x[a]
			if xa == 0 {
				continue
			}
			c := cov[a*d : (a+1)*d]
			for b := a; b < d; b++ {
				c[b] += xa * x[b]
			}
		}
	}
	for a := 0; a < d; a++ {
		for b := a; b < d; b++ {
			v := cov[a*d+b] / float64(n-1)
			cov[a*d+b], cov[b*d+a] = v, v
		}
	}

	s := &latentstats.Stats{N: n, Dim: d, Mean: mean, Cov: make([][]float64, d)}
	for a := range s.Cov {
		s.Cov[a] = cov[a*d : (a+1)*d : (a+1)*d]
	}
	if err := decompose(s); err != nil {
		return nil, err
	}
	return s, nil
}

// decompose fills s.Eigenvalues and Eigenvectors from Cov.
func decompose(s *latentstats.Stats) error {
	d := s.Dim
	flat := make([]float64, 0, d*d)
	for _, row := range s.Cov {
		flat = append(flat, row...)
	}
	var es mat.EigenSym
	if !es.Factorize(mat.NewSymDense(d, flat), true) {
		return errors.New("pca: the eigendecomposition of the covariance did not converge")
	}
	vals := es.Values(nil) // ascending
	var q mat.Dense
	es.VectorsTo(&q) // column k is the eigenvector of vals[k]

	s.Eigenvalues = make([]float64, d)
	s.Eigenvectors = make([][]float64, d)
	for k := 0; k < d; k++ {
		src := d - 1 - k // descending order
		s.Eigenvalues[k] = vals[src]
		v := make([]float64, d)
		big := 0
		for i := range v {
			v[i] = q.At(i, src)
			if math.Abs(v[i]) > math.Abs(v[big]) {
				big = i
			}
		}
		if v[big] < 0 {
			for i := range v {
				v[i] = -v[i]
			}
		}
		s.Eigenvectors[k] = v
	}
	return nil
}
