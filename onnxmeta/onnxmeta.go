// Package onnxmeta says what latent's exported ONNX files are: their file
// names in a run folder, the names of their inputs and outputs, and the
// metadata they carry about the model (Metadata), with its keys and its
// parsing. The exporter writes it; the inference package reads it through
// ONNX Runtime. It depends on small latent packages alone (models,
// checkpoint's types, latentstats), so that embedders stay light.
package onnxmeta

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/latent-ai/latent/checkpoint"
	"github.com/latent-ai/latent/latentstats"
	"github.com/latent-ai/latent/models"
)

// File names of an exported pair in a run folder.
const (
	EncoderFile = "encoder.onnx"
	DecoderFile = "decoder.onnx"
)

// Names of the graph inputs and outputs, and of the symbolic batch dimension.
const (
	ImageName = "image"
	CodeName  = "code"
	BatchDim  = "N"
	// A variational model's encoder has two outputs instead of CodeName:
	// μ, the code, and log σ², both [N, b]. Its decoder takes CodeName.
	MuName     = "mu"
	LogVarName = "logvar"
)

// The parts of an autoencoder, as Metadata.Part names them.
const (
	Encoder = models.Encoder
	Decoder = models.Decoder
)

// Format identifies latent's ONNX files in their metadata.
const Format = "latent-onnx/1"

// Metadata keys of the exported files.
const (
	KeyFormat     = "format"
	KeyPart       = "part"
	KeyKind       = "kind"
	KeyBottleneck = "bottleneck"
	KeyDataset    = "dataset"
	KeyTraining   = "training"
	KeyArch       = "arch"
	KeyStats      = "latent_stats"
)

// Keys lists every metadata key that latent writes, in the order written.
var Keys = []string{KeyFormat, KeyPart, KeyKind, KeyBottleneck, KeyDataset, KeyTraining, KeyArch, KeyStats}

// ErrNotLatent is wrapped by Parse's error for a file without
// latent's metadata (one not written by this package).
var ErrNotLatent = errors.New("no latent metadata: the file was not exported by latent")

// Metadata is what an exported file says about its model.
type Metadata struct {
	// Part is "encoder" or "decoder".
	Part string
	// Arch is the whole architecture, encoder and decoder.
	Arch models.Arch
	// Dataset is the data set the model was trained on.
	Dataset string
	// Training is the training summary of the checkpoint.
	Training checkpoint.Meta
	// Stats are the latent statistics of the training set, or nil when the
	// file was exported without them.
	Stats *latentstats.Stats
}

// New returns the metadata of part of a model: its architecture, its
// training summary (whose Dataset names the data set) and, when not nil,
// the latent statistics of its training set.
func New(part string, arch models.Arch, training checkpoint.Meta, stats *latentstats.Stats) (*Metadata, error) {
	if part != Encoder && part != Decoder {
		return nil, fmt.Errorf("metadata: unknown part %q", part)
	}
	return &Metadata{Part: part, Arch: arch, Dataset: training.Dataset, Training: training, Stats: stats}, nil
}

// Props returns the metadata as the key/value map that the files store.
func (md *Metadata) Props() map[string]string {
	out := make(map[string]string)
	for _, kv := range md.Pairs() {
		out[kv[0]] = kv[1]
	}
	return out
}

// Pairs returns the metadata as key/value pairs, in the order written.
func (md *Metadata) Pairs() [][2]string {
	training, _ := json.Marshal(md.Training)
	kv := [][2]string{
		{KeyFormat, Format},
		{KeyPart, md.Part},
		{KeyKind, md.Arch.Kind},
		{KeyBottleneck, strconv.Itoa(md.Arch.Bottleneck)},
		{KeyDataset, md.Dataset},
		{KeyTraining, string(training)},
		{KeyArch, md.Arch.JSON()},
	}
	if md.Stats != nil {
		s, _ := md.Stats.JSON()
		kv = append(kv, [2]string{KeyStats, string(s)})
	}
	return kv
}

// Parse reads the metadata_props of an exported file. It checks that
// the format is Format, the part "encoder" or "decoder", the architecture
// sound (see models.Arch.Validate: among others, a bottleneck of 1 to
// models.MaxBottleneck) and in agreement with the kind and bottleneck
// keys, the training summary, if any, valid JSON, and the stats, if any,
// valid (see latentstats.Stats.Validate) and of the bottleneck's size. A map
// without the format key gives an error that wraps ErrNotLatent. Keys it
// does not know are ignored.
func Parse(props map[string]string) (*Metadata, error) {
	f, ok := props[KeyFormat]
	if !ok {
		return nil, ErrNotLatent
	}
	if f != Format {
		return nil, fmt.Errorf("metadata format %q, want %q: the file was written by another version of latent", f, Format)
	}
	md := &Metadata{Part: props[KeyPart], Dataset: props[KeyDataset]}
	if md.Part != Encoder && md.Part != Decoder {
		return nil, fmt.Errorf("metadata: part %q, want %q or %q", md.Part, Encoder, Decoder)
	}
	var err error
	if md.Arch, err = models.ParseJSON(props[KeyArch]); err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	if k := props[KeyKind]; k != md.Arch.Kind {
		return nil, fmt.Errorf("metadata: kind %q but the architecture is %q", k, md.Arch.Kind)
	}
	if b := props[KeyBottleneck]; b != strconv.Itoa(md.Arch.Bottleneck) {
		return nil, fmt.Errorf("metadata: bottleneck %q but the architecture's is %d", b, md.Arch.Bottleneck)
	}
	if t := props[KeyTraining]; t != "" {
		if err := json.Unmarshal([]byte(t), &md.Training); err != nil {
			return nil, fmt.Errorf("metadata: training summary: %w", err)
		}
	}
	if s, ok := props[KeyStats]; ok {
		if md.Stats, err = latentstats.Parse([]byte(s)); err != nil {
			return nil, fmt.Errorf("metadata: %w", err)
		}
		if md.Stats.Dim != md.Arch.Bottleneck {
			return nil, fmt.Errorf("metadata: latent stats of size %d for bottleneck %d", md.Stats.Dim, md.Arch.Bottleneck)
		}
	}
	return md, nil
}

// Clone returns a deep copy of md: the caller may change it freely.
func (md *Metadata) Clone() *Metadata {
	c := *md
	c.Arch = md.Arch.Clone()
	if md.Stats != nil {
		s := *md.Stats
		s.Mean = slices.Clone(s.Mean)
		s.Eigenvalues = slices.Clone(s.Eigenvalues)
		s.Cov, s.Eigenvectors = cloneRows(s.Cov), cloneRows(s.Eigenvectors)
		c.Stats = &s
	}
	c.Training.TrainLoss = slices.Clone(md.Training.TrainLoss)
	c.Training.TestLoss = slices.Clone(md.Training.TestLoss)
	c.Training.Data = slices.Clone(md.Training.Data)
	return &c
}

func cloneRows(rows [][]float64) [][]float64 {
	out := make([][]float64, len(rows))
	for i, r := range rows {
		out[i] = slices.Clone(r)
	}
	return out
}
