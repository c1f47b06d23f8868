//go:build !openblas

package trainer

// biasSigmoid32 sets v[i] = sigmoid32(v[i] + b).
func biasSigmoid32(v []float32, b float32) {
	for i, x := range v {
		v[i] = sigmoid32(x + b)
	}
}
