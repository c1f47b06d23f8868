// Package modeltest makes models with seeded random weights, for the tests
// of the packages that export, encode or serve them.
package modeltest

import (
	"math/rand/v2"
	"testing"

	"github.com/latent-ai/latent/checkpoint"
	"github.com/latent-ai/latent/models"
)

// Random returns a model of kind with a bottleneck of b, trained on
// "mnist" by its metadata, whose weights are drawn uniformly within each
// layer's initialisation bound from a PCG seeded with seed. It fails t on
// an unknown kind or bottleneck.
func Random(t testing.TB, kind string, b int, seed uint64) *checkpoint.Model {
	t.Helper()
	a, err := models.New(kind, b)
	if err != nil {
		t.Fatal(err)
	}
	m := checkpoint.NewModel(a)
	m.Meta.Dataset = "mnist"
	rng := rand.New(rand.NewPCG(seed, 1))
	for _, p := range a.Params() {
		bound := p.Layer.InitBound()
		for i := range m.Params[p.Name] {
			m.Params[p.Name][i] = float32((2*rng.Float64() - 1) * bound)
		}
	}
	return m
}
