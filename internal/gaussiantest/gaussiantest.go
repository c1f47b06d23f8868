// Package gaussiantest makes the samples that the tests of pca and
// latentstats fit and check: 3-D Gaussians of known covariance.
package gaussiantest

import (
	"math"
	"math/rand/v2"
)

// Rotation returns a 3-D rotation matrix (rows) from three angles.
func Rotation(a, b, c float64) [3][3]float64 {
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

// Gaussian draws n samples of mean + R·diag(std)·z.
func Gaussian(rng *rand.Rand, n int, mean, std [3]float64, r [3][3]float64) []float32 {
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

// Dot is the dot product of a and b.
func Dot(a, b []float64) float64 {
	s := 0.0
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}
