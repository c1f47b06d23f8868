// Package exporter writes a latent model as two ONNX graphs: an encoder
// (input "image" float32 [N,C,H,W] → output "code" float32 [N,bottleneck])
// and a decoder ("code" → "image"), both with a dynamic batch dimension N.
// A variational model's encoder has two outputs instead of "code": "mu"
// (the code) and "logvar", both float32 [N,bottleneck], from its heads
// "fc_mu" and "fc_logvar" (two Gemm nodes).
//
// The graphs are built by walking the architecture declaration
// (models.Arch.Encoder and Decoder) layer by layer:
//
//	Linear           Gemm (transB=1), weight [out,in] and bias initializers
//	Conv2d           Conv (kernel_shape, strides, pads)
//	ConvTranspose2d  ConvTranspose (weight [in,out,k,k], ONNX's layout too)
//	MaxPool2d        MaxPool
//	ReLU, Sigmoid    Relu, Sigmoid
//	Flatten          Flatten (axis=1)
//	Unflatten        Reshape to the constant shape [-1, C, H, W]
//
// Initializers keep the PyTorch state-dict names ("encoder.0.weight"), and
// each node is named after its module ("encoder.0", or "flatten" for a
// layer kept outside the Sequential). The files use IR
// version 8 and opset 17, so that older ONNX tools (onnx 1.12) accept them.
//
// Each file's metadata_props describe the model (see onnxmeta.Metadata): kind,
// bottleneck, dataset, training summary, architecture, and optionally the
// latent statistics of the training set, so that a pair of files is all that
// sampling needs.
package exporter

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"

	"github.com/advancedclimatesystems/gonnx/onnx"
	"github.com/latent-ai/latent/atomicfile"
	"github.com/latent-ai/latent/checkpoint"
	"github.com/latent-ai/latent/latentstats"
	"github.com/latent-ai/latent/models"
	"github.com/latent-ai/latent/onnxmeta"
	"google.golang.org/protobuf/proto"
)

// The versions the exported files declare.
const (
	IRVersion = 8
	Opset     = 17
)

// The parts of an autoencoder.
const (
	Encoder = models.Encoder
	Decoder = models.Decoder
)

// SupportedOps are the layer kinds that Build writes as ONNX nodes.
var SupportedOps = []models.Op{models.Linear, models.Conv2d, models.ConvTranspose2d, models.MaxPool2d,
	models.ReLU, models.Sigmoid, models.Flatten, models.Unflatten}

// Export writes onnxmeta.EncoderFile and onnxmeta.DecoderFile for m into
// dir, each atomically, and returns their paths. stats, when not nil, are the latent statistics of
// the training set and go into the metadata of both files; their size must
// be the model's bottleneck.
func Export(m *checkpoint.Model, stats *latentstats.Stats, dir string) (encoderPath, decoderPath string, err error) {
	encoderPath = filepath.Join(dir, onnxmeta.EncoderFile)
	decoderPath = filepath.Join(dir, onnxmeta.DecoderFile)
	if err := WriteFile(encoderPath, m, Encoder, stats); err != nil {
		return "", "", err
	}
	if err := WriteFile(decoderPath, m, Decoder, stats); err != nil {
		return "", "", err
	}
	return encoderPath, decoderPath, nil
}

// WriteFile writes one part ("encoder" or "decoder") of m to path
// atomically. stats may be nil.
func WriteFile(path string, m *checkpoint.Model, part string, stats *latentstats.Stats) error {
	var buf bytes.Buffer
	if err := write(&buf, m, part, stats); err != nil {
		return fmt.Errorf("export %s: %w", path, err)
	}
	return atomicfile.WriteBytes(path, buf.Bytes(), 0o644)
}

// WriteEncoder writes the encoder of m as a serialized ONNX ModelProto to w.
// stats may be nil.
func WriteEncoder(w io.Writer, m *checkpoint.Model, stats *latentstats.Stats) error {
	return write(w, m, Encoder, stats)
}

// WriteDecoder writes the decoder of m as a serialized ONNX ModelProto to w.
// stats may be nil.
func WriteDecoder(w io.Writer, m *checkpoint.Model, stats *latentstats.Stats) error {
	return write(w, m, Decoder, stats)
}

func write(w io.Writer, m *checkpoint.Model, part string, stats *latentstats.Stats) error {
	mp, err := Build(m, part, stats)
	if err != nil {
		return err
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(mp)
	if err != nil {
		return fmt.Errorf("export %s: %w", part, err)
	}
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("export %s: %w", part, err)
	}
	return nil
}

// Build returns the ONNX model of one part ("encoder" or "decoder") of m.
// The returned model holds copies of m's weights. stats may be nil.
func Build(m *checkpoint.Model, part string, stats *latentstats.Stats) (*onnx.ModelProto, error) {
	if err := check(m, stats); err != nil {
		return nil, fmt.Errorf("export %s: %w", part, err)
	}
	a := m.Arch
	var layers []models.Layer
	var in, out *onnx.ValueInfoProto
	code := []int{a.Bottleneck}
	switch part {
	case Encoder:
		layers = a.Encoder
		in, out = valueInfo(onnxmeta.ImageName, a.Input), valueInfo(onnxmeta.CodeName, code)
	case Decoder:
		layers = a.Decoder
		in, out = valueInfo(onnxmeta.CodeName, code), valueInfo(onnxmeta.ImageName, a.Input)
	default:
		return nil, fmt.Errorf("export: unknown part %q: want %q or %q", part, Encoder, Decoder)
	}

	if len(layers) == 0 {
		return nil, fmt.Errorf("export %s: the %s model has no %s layers", part, a.Kind, part)
	}
	g := &onnx.GraphProto{
		Name:   fmt.Sprintf("latent_%s_%s", a.Kind, part),
		Input:  []*onnx.ValueInfoProto{in},
		Output: []*onnx.ValueInfoProto{out},
	}
	heads := part == Encoder && a.Variational
	if heads {
		// The encoder's layers end before the bottleneck; its two heads
		// give the outputs mu and logvar.
		g.Output = []*onnx.ValueInfoProto{valueInfo(onnxmeta.MuName, code), valueInfo(onnxmeta.LogVarName, code)}
	}
	shapes := a.Shapes(part)
	cur := in.Name
	mods := a.Modules(part)
	for i, l := range layers {
		mod := mods[i]
		next := mod + ".output"
		if i == len(layers)-1 && !heads {
			next = out.Name
		} else {
			g.ValueInfo = append(g.ValueInfo, valueInfo(next, shapes[i+1]))
		}
		n := &onnx.NodeProto{Name: mod, Input: []string{cur}, Output: []string{next}}
		if l.HasParams() {
			w, b := mod+".weight", mod+".bias"
			g.Initializer = append(g.Initializer,
				floatTensor(w, l.WeightShape(), m.Params[w]),
				floatTensor(b, []int{l.Out}, m.Params[b]))
			n.Input = append(n.Input, w, b)
		}
		k, s, p := int64(l.Kernel), int64(l.Stride), int64(l.Pad)
		switch l.Op {
		case models.Linear:
			n.OpType = "Gemm"
			n.Attribute = []*onnx.AttributeProto{floatAttr("alpha", 1), floatAttr("beta", 1), intAttr("transB", 1)}
		case models.Conv2d:
			n.OpType = "Conv"
			n.Attribute = []*onnx.AttributeProto{
				intsAttr("kernel_shape", k, k), intsAttr("strides", s, s),
				intsAttr("pads", p, p, p, p), intsAttr("dilations", 1, 1), intAttr("group", 1),
			}
		case models.ConvTranspose2d:
			n.OpType = "ConvTranspose"
			n.Attribute = []*onnx.AttributeProto{
				intsAttr("kernel_shape", k, k), intsAttr("strides", s, s),
				intsAttr("pads", p, p, p, p), intsAttr("dilations", 1, 1), intAttr("group", 1),
			}
		case models.MaxPool2d:
			n.OpType = "MaxPool"
			n.Attribute = []*onnx.AttributeProto{
				intsAttr("kernel_shape", k, k), intsAttr("strides", s, s), intsAttr("pads", p, p, p, p),
			}
		case models.ReLU:
			n.OpType = "Relu"
		case models.Sigmoid:
			n.OpType = "Sigmoid"
		case models.Flatten:
			n.OpType = "Flatten"
			n.Attribute = []*onnx.AttributeProto{intAttr("axis", 1)}
		case models.Unflatten:
			n.OpType = "Reshape"
			shape := mod + ".shape"
			dims := []int64{-1}
			for _, d := range l.Shape {
				dims = append(dims, int64(d))
			}
			g.Initializer = append(g.Initializer, &onnx.TensorProto{
				Name: shape, Dims: []int64{int64(len(dims))},
				DataType: int32(onnx.TensorProto_INT64), Int64Data: dims,
			})
			n.Input = append(n.Input, shape)
		default:
			return nil, fmt.Errorf("export %s: layer %s: unsupported op %q", part, mod, l.Op)
		}
		g.Node = append(g.Node, n)
		cur = next
	}
	if heads {
		for k, mod := range []string{models.HeadMu, models.HeadLogVar} {
			l := a.Heads()[k]
			w, b := mod+".weight", mod+".bias"
			g.Initializer = append(g.Initializer,
				floatTensor(w, l.WeightShape(), m.Params[w]),
				floatTensor(b, []int{l.Out}, m.Params[b]))
			g.Node = append(g.Node, &onnx.NodeProto{Name: mod, OpType: "Gemm", Input: []string{cur, w, b},
				Output:    []string{g.Output[k].Name},
				Attribute: []*onnx.AttributeProto{floatAttr("alpha", 1), floatAttr("beta", 1), intAttr("transB", 1)}})
		}
	}
	md, err := NewMetadata(m, part, stats)
	if err != nil {
		return nil, err
	}
	mp := &onnx.ModelProto{
		IrVersion:    IRVersion,
		OpsetImport:  []*onnx.OperatorSetIdProto{{Domain: "", Version: Opset}},
		ProducerName: "latent",
		DocString: fmt.Sprintf("latent %s %s, bottleneck %d: %s",
			a.Kind, part, a.Bottleneck, describe(part, a)),
		Graph: g,
	}
	for _, kv := range md.Pairs() {
		mp.MetadataProps = append(mp.MetadataProps, &onnx.StringStringEntryProto{Key: kv[0], Value: kv[1]})
	}
	return mp, nil
}

func describe(part string, a models.Arch) string {
	img := fmt.Sprintf("%s float32 [N,%d,%d,%d] in [0,1]", onnxmeta.ImageName, a.Input[0], a.Input[1], a.Input[2])
	code := fmt.Sprintf("%s float32 [N,%d]", onnxmeta.CodeName, a.Bottleneck)
	if part == Encoder {
		if a.Variational {
			return fmt.Sprintf("%s -> %s, %s float32 [N,%d] (the code is %s)", img, onnxmeta.MuName, onnxmeta.LogVarName, a.Bottleneck, onnxmeta.MuName)
		}
		return img + " -> " + code
	}
	return code + " -> " + img
}

// check validates the model and the stats before export.
func check(m *checkpoint.Model, stats *latentstats.Stats) error {
	if m == nil {
		return errors.New("nil model")
	}
	if err := m.Arch.Validate(); err != nil {
		return err
	}
	if len(m.Arch.Input) != 3 {
		return fmt.Errorf("input shape %v: want [C H W]", m.Arch.Input)
	}
	for _, p := range m.Arch.Params() {
		v, ok := m.Params[p.Name]
		if !ok {
			return fmt.Errorf("parameter %s missing", p.Name)
		}
		if len(v) != p.Size() {
			return fmt.Errorf("parameter %s has %d values, want %d (shape %v)", p.Name, len(v), p.Size(), p.Shape)
		}
		for i, x := range v {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				return fmt.Errorf("parameter %s holds %v at index %d", p.Name, x, i)
			}
		}
	}
	if stats != nil {
		if err := stats.Validate(); err != nil {
			return err
		}
		if stats.Dim != m.Arch.Bottleneck {
			return fmt.Errorf("latent stats of size %d for a model with bottleneck %d", stats.Dim, m.Arch.Bottleneck)
		}
	}
	return nil
}

func valueInfo(name string, perSample []int) *onnx.ValueInfoProto {
	dims := []*onnx.TensorShapeProto_Dimension{
		{Value: &onnx.TensorShapeProto_Dimension_DimParam{DimParam: onnxmeta.BatchDim}},
	}
	for _, d := range perSample {
		dims = append(dims, &onnx.TensorShapeProto_Dimension{Value: &onnx.TensorShapeProto_Dimension_DimValue{DimValue: int64(d)}})
	}
	return &onnx.ValueInfoProto{
		Name: name,
		Type: &onnx.TypeProto{Value: &onnx.TypeProto_TensorType{TensorType: &onnx.TypeProto_Tensor{
			ElemType: int32(onnx.TensorProto_FLOAT),
			Shape:    &onnx.TensorShapeProto{Dim: dims},
		}}},
	}
}

func floatTensor(name string, shape []int, v []float32) *onnx.TensorProto {
	dims := make([]int64, len(shape))
	for i, d := range shape {
		dims[i] = int64(d)
	}
	raw := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(x))
	}
	return &onnx.TensorProto{Name: name, Dims: dims, DataType: int32(onnx.TensorProto_FLOAT), RawData: raw}
}

func intAttr(name string, v int64) *onnx.AttributeProto {
	return &onnx.AttributeProto{Name: name, Type: onnx.AttributeProto_INT, I: v}
}

func intsAttr(name string, v ...int64) *onnx.AttributeProto {
	return &onnx.AttributeProto{Name: name, Type: onnx.AttributeProto_INTS, Ints: v}
}

func floatAttr(name string, v float32) *onnx.AttributeProto {
	return &onnx.AttributeProto{Name: name, Type: onnx.AttributeProto_FLOAT, F: v}
}

// NewMetadata returns the metadata of part of m. stats may be nil.
func NewMetadata(m *checkpoint.Model, part string, stats *latentstats.Stats) (*onnxmeta.Metadata, error) {
	return onnxmeta.New(part, m.Arch, m.Meta, stats)
}

// Read parses the ONNX model in the file at path.
func Read(path string) (*onnx.ModelProto, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read onnx: %w", err)
	}
	mp, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return mp, nil
}

// Parse parses a serialized ONNX model. It checks only that data is a
// ModelProto with a graph.
func Parse(data []byte) (*onnx.ModelProto, error) {
	mp := &onnx.ModelProto{}
	if err := proto.Unmarshal(data, mp); err != nil {
		return nil, fmt.Errorf("not a valid ONNX model (%v): the file is damaged or truncated; export it again", err)
	}
	if mp.Graph == nil || len(mp.Graph.Node) == 0 {
		return nil, errors.New("not a valid ONNX model: no graph; the file is damaged or truncated; export it again")
	}
	return mp, nil
}

// ReadMetadata reads the metadata of the ONNX file at path without running
// it. See ParseMetadata; a key that appears twice is an error, as in the
// ONNX checker.
func ReadMetadata(path string) (*onnxmeta.Metadata, error) {
	mp, err := Read(path)
	if err != nil {
		return nil, err
	}
	md, err := modelMetadata(mp)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return md, nil
}

// modelMetadata parses the metadata_props of mp; see ReadMetadata.
func modelMetadata(mp *onnx.ModelProto) (*onnxmeta.Metadata, error) {
	props := make(map[string]string, len(mp.MetadataProps))
	for _, kv := range mp.MetadataProps {
		if _, ok := props[kv.GetKey()]; ok {
			return nil, fmt.Errorf("metadata key %q appears twice", kv.GetKey())
		}
		props[kv.GetKey()] = kv.GetValue()
	}
	return onnxmeta.Parse(props)
}
