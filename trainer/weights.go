package trainer

import (
	"fmt"
	"math/rand/v2"

	"github.com/latent-ai/latent/checkpoint"
	"github.com/latent-ai/latent/models"
)

// Weights holds the trainable values of an architecture in the trainer's
// layout, one slice per models.Param in Arch.Params() order. The layout is
// PyTorch's except for Linear weights, which the trainer keeps transposed,
// [in, out], so that a layer is x·W + b with no transpose on the hot path.
type Weights struct {
	Arch   models.Arch
	Params []models.Param
	Values [][]float32
}

// NewWeights returns zeroed weights for arch.
func NewWeights(arch models.Arch) *Weights {
	w := &Weights{Arch: arch, Params: arch.Params()}
	for _, p := range w.Params {
		w.Values = append(w.Values, make([]float32, p.Size()))
	}
	return w
}

// Init fills the weights with PyTorch's default initialisation, drawn from a
// PCG generator seeded with seed: every value of a layer's weight and bias is
// uniform in ±1/sqrt(fan-in) (see models.Layer.FanIn). The same seed gives
// the same weights.
func Init(arch models.Arch, seed int64) *Weights {
	rng := rand.New(rand.NewPCG(uint64(seed), 0x6c6174656e74)) // "latent"
	w := NewWeights(arch)
	for i, p := range w.Params {
		bound := p.Layer.InitBound()
		torch := make([]float32, p.Size())
		for j := range torch {
			torch[j] = float32((2*rng.Float64() - 1) * bound)
		}
		w.setTorch(i, torch)
	}
	return w
}

// isLinearWeight reports whether parameter i is stored transposed.
func (w *Weights) isLinearWeight(i int) bool {
	return w.Params[i].Layer.Op == models.Linear && !w.Params[i].Bias
}

// setTorch stores parameter i from PyTorch layout.
func (w *Weights) setTorch(i int, v []float32) {
	if !w.isLinearWeight(i) {
		copy(w.Values[i], v)
		return
	}
	out, in := w.Params[i].Shape[0], w.Params[i].Shape[1]
	dst := w.Values[i]
	for o := 0; o < out; o++ {
		for k := 0; k < in; k++ {
			dst[k*out+o] = v[o*in+k]
		}
	}
}

// torch returns parameter i in PyTorch layout, in a new slice.
func (w *Weights) torch(i int) []float32 {
	src := w.Values[i]
	if !w.isLinearWeight(i) {
		return append([]float32(nil), src...)
	}
	out, in := w.Params[i].Shape[0], w.Params[i].Shape[1]
	v := make([]float32, len(src))
	for o := 0; o < out; o++ {
		for k := 0; k < in; k++ {
			v[o*in+k] = src[k*out+o]
		}
	}
	return v
}

// Model converts the weights to a checkpoint model (PyTorch layout).
func (w *Weights) Model() *checkpoint.Model {
	m := &checkpoint.Model{Arch: w.Arch, Params: make(map[string][]float32)}
	for i, p := range w.Params {
		m.Params[p.Name] = w.torch(i)
	}
	return m
}

// FromModel converts a checkpoint model to the trainer's layout.
func FromModel(m *checkpoint.Model) (*Weights, error) {
	w := NewWeights(m.Arch)
	for i, p := range w.Params {
		v, ok := m.Params[p.Name]
		if !ok || len(v) != p.Size() {
			return nil, fmt.Errorf("model has no %s of %d values", p.Name, p.Size())
		}
		w.setTorch(i, v)
	}
	return w, nil
}

// byName returns a map from state-dict name to slices in PyTorch layout.
func (w *Weights) byName(values [][]float32) map[string][]float32 {
	m := make(map[string][]float32)
	for i, p := range w.Params {
		tmp := &Weights{Arch: w.Arch, Params: w.Params, Values: values}
		m[p.Name] = tmp.torch(i)
	}
	return m
}
