package onnxmeta

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/latent-ai/latent/checkpoint"
	"github.com/latent-ai/latent/latentstats"
	"github.com/latent-ai/latent/models"
)

func testMetadata(t *testing.T) *Metadata {
	t.Helper()
	arch, err := models.New("classic", 2)
	if err != nil {
		t.Fatal(err)
	}
	stats := &latentstats.Stats{N: 4, Dim: 2, Mean: []float64{1, 2}, Cov: [][]float64{{1, 0}, {0, 0.5}},
		Eigenvalues: []float64{1, 0.5}, Eigenvectors: [][]float64{{1, 0}, {0, 1}}}
	md, err := New(Decoder, arch, checkpoint.Meta{Dataset: "mnist", Epochs: 2, TrainLoss: []float64{0.2, 0.1}, TestLoss: []float64{0.3, 0.2},
		Data: []checkpoint.DataFile{{Split: "train", Path: "a", MD5: "b"}}}, stats)
	if err != nil {
		t.Fatal(err)
	}
	return md
}

func TestPropsParseRoundTrip(t *testing.T) {
	md := testMetadata(t)
	back, err := Parse(md.Props())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, md) {
		t.Errorf("Parse(Props()) = %+v, want %+v", back, md)
	}
	if _, err := Parse(map[string]string{KeyPart: Encoder}); !errors.Is(err, ErrNotLatent) {
		t.Errorf("no format key: %v, want ErrNotLatent", err)
	}
	p := md.Props()
	p[KeyBottleneck] = "3"
	if _, err := Parse(p); err == nil || !strings.Contains(err.Error(), "bottleneck") {
		t.Errorf("bottleneck key against the architecture: %v", err)
	}
	if _, err := New("middle", md.Arch, md.Training, nil); err == nil {
		t.Error("New of an unknown part: no error")
	}
}

// TestCloneIsDeep changes every slice of a clone and checks that the
// original keeps its values.
func TestCloneIsDeep(t *testing.T) {
	md := testMetadata(t)
	want := md.Props()
	c := md.Clone()
	c.Arch.Input[0] = 9
	c.Arch.Encoder[0].Op = models.ReLU
	c.Arch.Decoder[len(c.Arch.Decoder)-1].Shape[0] = 9
	c.Stats.Mean[0], c.Stats.Cov[0][0], c.Stats.Eigenvectors[0][0], c.Stats.Eigenvalues[0] = 9, 9, 9, 9
	c.Training.TrainLoss[0], c.Training.TestLoss[0], c.Training.Data[0].Path = 9, 9, "z"
	if got := md.Props(); !reflect.DeepEqual(got, want) {
		t.Errorf("changing the clone changed the original:\n%v\nwant\n%v", got, want)
	}
}
