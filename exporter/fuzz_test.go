package exporter

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/advancedclimatesystems/gonnx/onnx"
	"github.com/latent-ai/latent/checkpoint"
	"github.com/latent-ai/latent/latentstats"
	"github.com/latent-ai/latent/models"
	"github.com/latent-ai/latent/onnxmeta"
	"github.com/latent-ai/latent/pca"
	"google.golang.org/protobuf/proto"
)

// tinyModel returns a model small enough for a fuzz corpus: 4 pixels, a
// code of 2.
func tinyModel() *checkpoint.Model {
	a := models.Arch{Kind: "tiny", Bottleneck: 2, Input: []int{1, 2, 2},
		Encoder: []models.Layer{{Op: models.Flatten}, {Op: models.Linear, In: 4, Out: 2}},
		Decoder: []models.Layer{{Op: models.Linear, In: 2, Out: 4}, {Op: models.Sigmoid}, {Op: models.Unflatten, Shape: []int{1, 2, 2}}}}
	m := checkpoint.NewModel(a)
	for _, p := range a.Params() {
		for i := range m.Params[p.Name] {
			m.Params[p.Name][i] = float32(i%3) - 1
		}
	}
	m.Meta = checkpoint.Meta{Dataset: "mnist", Epochs: 1, TrainLoss: []float64{0.5}, TestLoss: []float64{0.25}, Step: 2}
	return m
}

// tinyStats returns stats of size 2 fitted to four codes.
func tinyStats(t testing.TB) *latentstats.Stats {
	s, err := pca.Fit([]float32{0, 1, 1, 0, 2, 2, -1, 0.5}, 4, 2)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// checkMetadata checks what ParseMetadata promises of the metadata it
// returns, and that writing it and parsing it again gives it back.
func checkMetadata(t *testing.T, md *onnxmeta.Metadata) {
	t.Helper()
	if md.Part != Encoder && md.Part != Decoder {
		t.Fatalf("accepted part %q", md.Part)
	}
	a, err := models.ParseJSON(md.Arch.JSON())
	if err != nil || !a.Equal(md.Arch) {
		t.Fatalf("accepted an architecture that models.Arch.Validate refuses: %v", err)
	}
	if b := md.Arch.Bottleneck; b < 1 || b > models.MaxBottleneck {
		t.Fatalf("accepted bottleneck %d", b)
	}
	if md.Stats != nil {
		if err := md.Stats.Validate(); err != nil {
			t.Fatalf("accepted invalid stats: %v", err)
		}
		if md.Stats.Dim != md.Arch.Bottleneck || len(md.Stats.Mean) != md.Arch.Bottleneck {
			t.Fatalf("accepted stats of size %d for bottleneck %d", md.Stats.Dim, md.Arch.Bottleneck)
		}
	}
	back, err := onnxmeta.Parse(md.Props())
	if err != nil {
		t.Fatalf("ParseMetadata of Props of accepted metadata: %v", err)
	}
	if back.Part != md.Part || back.Dataset != md.Dataset || !back.Arch.Equal(md.Arch) ||
		!reflect.DeepEqual(back.Training, md.Training) || !reflect.DeepEqual(back.Stats, md.Stats) {
		t.Fatalf("round trip: got %+v, want %+v", back, md)
	}
}

// FuzzReadMetadata feeds arbitrary bytes to Parse and to the reading of the
// metadata that ReadMetadata does. Neither may panic; metadata they accept
// passes checkMetadata.
func FuzzReadMetadata(f *testing.F) {
	m := tinyModel()
	for _, part := range []string{Encoder, Decoder} {
		for _, stats := range []*latentstats.Stats{nil, tinyStats(f)} {
			mp, err := Build(m, part, stats)
			if err != nil {
				f.Fatal(err)
			}
			b, err := proto.Marshal(mp)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		mp, err := Parse(data)
		if err != nil {
			return
		}
		if mp.Graph == nil || len(mp.Graph.Node) == 0 {
			t.Fatal("Parse accepted a model without a graph")
		}
		md, err := modelMetadata(mp)
		if err != nil {
			return
		}
		checkMetadata(t, md)
	})
}

// FuzzParseMetadata feeds ParseMetadata maps of the keys that latent writes,
// each present when its bit of present is set (bit i for onnxmeta.Keys[i]). It may not
// panic; metadata it accepts passes checkMetadata; a map without the format
// key gives onnxmeta.ErrNotLatent.
func FuzzParseMetadata(f *testing.F) {
	m := tinyModel()
	md, err := NewMetadata(m, Decoder, tinyStats(f))
	if err != nil {
		f.Fatal(err)
	}
	p := md.Props()
	all := uint8(1<<len(onnxmeta.Keys) - 1)
	f.Add(all, p[onnxmeta.KeyFormat], p[onnxmeta.KeyPart], p[onnxmeta.KeyKind], p[onnxmeta.KeyBottleneck], p[onnxmeta.KeyDataset], p[onnxmeta.KeyTraining], p[onnxmeta.KeyArch], p[onnxmeta.KeyStats])
	f.Add(all&^(1<<7), p[onnxmeta.KeyFormat], Encoder, p[onnxmeta.KeyKind], p[onnxmeta.KeyBottleneck], "", "", p[onnxmeta.KeyArch], "")
	f.Fuzz(func(t *testing.T, present uint8, format, part, kind, bottleneck, dataset, training, arch, stats string) {
		values := []string{format, part, kind, bottleneck, dataset, training, arch, stats}
		props := make(map[string]string)
		for i, k := range onnxmeta.Keys {
			if present&(1<<i) != 0 {
				props[k] = values[i]
			}
		}
		md, err := onnxmeta.Parse(props)
		if _, ok := props[onnxmeta.KeyFormat]; !ok && !errors.Is(err, onnxmeta.ErrNotLatent) {
			t.Fatalf("no format key: error %v, want onnxmeta.ErrNotLatent", err)
		}
		if err != nil {
			return
		}
		checkMetadata(t, md)
	})
}

// TestMetadataKeyTwice checks that a file with a metadata key twice, which
// ONNX Runtime and ReadMetadata could read differently, is refused.
func TestMetadataKeyTwice(t *testing.T) {
	mp, err := Build(tinyModel(), Encoder, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := modelMetadata(mp); err != nil {
		t.Fatal(err)
	}
	mp.MetadataProps = append(mp.MetadataProps, &onnx.StringStringEntryProto{Key: onnxmeta.KeyKind, Value: "conv"})
	if _, err := modelMetadata(mp); err == nil || !strings.Contains(err.Error(), `"kind" appears twice`) {
		t.Errorf("got error %v, want one about the key appearing twice", err)
	}
}
