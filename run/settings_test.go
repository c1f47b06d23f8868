package run

import (
	"testing"

	"github.com/latent-ai/latent/checkpoint"
	"github.com/latent-ai/latent/models"
)

// TestReportSettings checks how the report names a run's optimizer and
// loss.
func TestReportSettings(t *testing.T) {
	for _, tc := range []struct {
		meta checkpoint.Meta
		want string
	}{
		{checkpoint.Meta{LR: 1e-3}, "Adam, lr 0.001"},
		{checkpoint.Meta{LR: 3e-3, WeightDecay: 0.1, Schedule: &checkpoint.Schedule{Kind: "cosine", Warmup: 500}},
			"AdamW (decay 0.1), lr 0.003, cosine schedule after 500 warm-up steps"},
		{checkpoint.Meta{LR: 1e-3, Schedule: &checkpoint.Schedule{Kind: "step", Every: 2, Gamma: 0.5}}, "Adam, lr 0.001, step schedule"},
	} {
		if got := optimizer(tc.meta); got != tc.want {
			t.Errorf("optimizer(%+v) = %q, want %q", tc.meta, got, tc.want)
		}
	}
	for kind, want := range map[string]string{
		"conv":        "mean squared error",
		"classic-vae": "binary cross-entropy summed over each image + 0.5·KL (a VAE)",
	} {
		a, err := models.New(kind, 10)
		if err != nil {
			t.Fatal(err)
		}
		if got := lossName(&checkpoint.Model{Arch: a, Meta: checkpoint.Meta{Beta: 0.5}}); got != want {
			t.Errorf("%s: loss %q, want %q", kind, got, want)
		}
	}
}
