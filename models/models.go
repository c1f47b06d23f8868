// Package models declares the autoencoder architectures of latent.
//
// An architecture is declared once, as two lists of layers (the encoder and
// the decoder) that mirror PyTorch nn.Sequential modules. That declaration
// drives everything else: the Gorgonia trainer builds its graph from it, the
// exporter writes ONNX nodes from it, and checkpoints name their tensors after
// it with PyTorch's state-dict names ("encoder.0.weight", "decoder.4.bias"),
// so that weights move between latent and PyTorch unchanged: the names are
// those of the notebook's classes (../shared/reference/notebook_models.py),
// whose classic model keeps its flatten and unflatten outside the
// nn.Sequential modules, as attributes of their own (Layer.Attr).
//
// Every tensor shape here is in PyTorch's layout:
//
//	Linear           weight [out, in],              bias [out]
//	Conv2d           weight [out, in, k, k],        bias [out]
//	ConvTranspose2d  weight [in, out, k, k],        bias [out]
//
// Images are float32 in [0,1], laid out NCHW: [N, C, H, W], [N, 1, 28, 28]
// for MNIST. The input shape is part of the declaration (Arch.Input).
package models

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Op is the kind of one layer.
type Op string

// The layer kinds. Each matches the PyTorch module of the same name.
const (
	Linear          Op = "Linear"
	Conv2d          Op = "Conv2d"
	ConvTranspose2d Op = "ConvTranspose2d"
	MaxPool2d       Op = "MaxPool2d"
	ReLU            Op = "ReLU"
	Sigmoid         Op = "Sigmoid"
	Flatten         Op = "Flatten"   // [N, ...] -> [N, prod(...)]
	Unflatten       Op = "Unflatten" // [N, prod(Shape)] -> [N, Shape...]
)

// Ops lists every layer kind that a declaration may use. Each backend (the
// trainer's Gorgonia graph, the exporter's ONNX graph) declares the ones it
// supports, and a test runs each through both.
func Ops() []Op {
	return []Op{Linear, Conv2d, ConvTranspose2d, MaxPool2d, ReLU, Sigmoid, Flatten, Unflatten}
}

// Layer is one module of an nn.Sequential.
type Layer struct {
	Op Op `json:"op"`
	// In and Out are features for Linear and channels for the convolutions.
	In  int `json:"in,omitempty"`
	Out int `json:"out,omitempty"`
	// Kernel, Stride and Pad are the square kernel size, stride and zero
	// padding of Conv2d, ConvTranspose2d and MaxPool2d.
	Kernel int `json:"kernel,omitempty"`
	Stride int `json:"stride,omitempty"`
	Pad    int `json:"pad,omitempty"`
	// Shape is the per-sample shape that Unflatten produces.
	Shape []int `json:"shape,omitempty"`
	// Attr, when set, names a parameter-free layer that the PyTorch model
	// keeps as an attribute of its own rather than as an element of the
	// part's nn.Sequential, as the notebook's classic model keeps
	// self.flatten and self.unflatten. Such layers come first in the
	// encoder or last in the decoder and take no index: the Sequential's
	// elements are numbered without them.
	Attr string `json:"attr,omitempty"`
}

// HasParams reports whether the layer owns a weight and a bias.
func (l Layer) HasParams() bool {
	return l.Op == Linear || l.Op == Conv2d || l.Op == ConvTranspose2d
}

// WeightShape is the PyTorch shape of the layer's weight, or nil.
func (l Layer) WeightShape() []int {
	switch l.Op {
	case Linear:
		return []int{l.Out, l.In}
	case Conv2d:
		return []int{l.Out, l.In, l.Kernel, l.Kernel}
	case ConvTranspose2d:
		return []int{l.In, l.Out, l.Kernel, l.Kernel}
	}
	return nil
}

// FanIn is the fan-in that PyTorch's default initialisation uses for the
// layer: in·k·k for Linear and Conv2d, and out·k·k for ConvTranspose2d, whose
// weight is stored [in, out, k, k] and whose fan-in PyTorch reads from
// dimension 1.
func (l Layer) FanIn() int {
	switch l.Op {
	case Linear:
		return l.In
	case Conv2d:
		return l.In * l.Kernel * l.Kernel
	case ConvTranspose2d:
		return l.Out * l.Kernel * l.Kernel
	}
	return 0
}

// OutShape infers the per-sample output shape (without the batch dimension)
// of the layer for a per-sample input shape.
func (l Layer) OutShape(in []int) ([]int, error) {
	bad := func(want string) ([]int, error) {
		return nil, fmt.Errorf("%s: input shape %v, want %s", l.Op, in, want)
	}
	switch l.Op {
	case Linear:
		if len(in) != 1 || in[0] != l.In {
			return bad(fmt.Sprintf("[%d]", l.In))
		}
		return []int{l.Out}, nil
	case Conv2d:
		if len(in) != 3 || in[0] != l.In {
			return bad(fmt.Sprintf("[%d H W]", l.In))
		}
		h := (in[1]+2*l.Pad-l.Kernel)/l.Stride + 1
		w := (in[2]+2*l.Pad-l.Kernel)/l.Stride + 1
		return []int{l.Out, h, w}, nil
	case ConvTranspose2d:
		if len(in) != 3 || in[0] != l.In {
			return bad(fmt.Sprintf("[%d H W]", l.In))
		}
		h := (in[1]-1)*l.Stride - 2*l.Pad + l.Kernel
		w := (in[2]-1)*l.Stride - 2*l.Pad + l.Kernel
		return []int{l.Out, h, w}, nil
	case MaxPool2d:
		if len(in) != 3 {
			return bad("[C H W]")
		}
		return []int{in[0], (in[1]-l.Kernel)/l.Stride + 1, (in[2]-l.Kernel)/l.Stride + 1}, nil
	case ReLU, Sigmoid:
		return append([]int(nil), in...), nil
	case Flatten:
		return []int{prod(in)}, nil
	case Unflatten:
		if len(in) != 1 || in[0] != prod(l.Shape) {
			return bad(fmt.Sprintf("[%d]", prod(l.Shape)))
		}
		return append([]int(nil), l.Shape...), nil
	}
	return nil, fmt.Errorf("unknown layer op %q", l.Op)
}

// Arch is one autoencoder architecture.
type Arch struct {
	// Kind names the architecture: "classic", "conv", or their variational
	// versions "classic-vae" and "conv-vae".
	Kind string `json:"kind"`
	// Bottleneck is the size of the code.
	Bottleneck int `json:"bottleneck"`
	// Input is the per-sample image shape, C×H×W: [1, 28, 28] for MNIST.
	Input   []int   `json:"input"`
	Encoder []Layer `json:"encoder"`
	Decoder []Layer `json:"decoder"`
	// Variational makes the model a variational autoencoder. Its encoder
	// then ends before the bottleneck, with a flat output of h values, and
	// two Linear heads of h to Bottleneck values follow it (Heads): μ,
	// module "fc_mu", and log σ², module "fc_logvar". The code of an image
	// is μ; training decodes z = μ + σ·ε, ε ~ N(0, I).
	Variational bool `json:"variational,omitempty"`
}

// The module names of a variational model's heads (Arch.Heads), as the
// PyTorch reference module (bench/torch_vae.py) names its attributes.
const (
	HeadMu     = "fc_mu"
	HeadLogVar = "fc_logvar"
)

// Heads returns the two Linear heads of a variational model, μ then
// log σ² (modules HeadMu and HeadLogVar), each from the encoder's output
// to Bottleneck values; nil for a plain autoencoder.
func (a Arch) Heads() []Layer {
	if !a.Variational {
		return nil
	}
	h := a.Shapes(Encoder)
	in := prod(h[len(h)-1])
	l := Layer{Op: Linear, In: in, Out: a.Bottleneck}
	return []Layer{l, l}
}

// DefaultBottleneck is the notebook's code size.
const DefaultBottleneck = 10

// Kinds lists the architectures that New knows, sorted.
func Kinds() []string {
	k := make([]string, 0, len(builders))
	for name := range builders {
		k = append(k, name)
	}
	sort.Strings(k)
	return k
}

var builders = map[string]func(bottleneck int, in []int) (Arch, error){
	// classic is the notebook's MLP: 784-512-512-b / b-512-512-784 for
	// MNIST, with its flatten and unflatten outside the Sequentials, as the
	// notebook's ClassicAutoencoderMNIST has them. Its first and last
	// layers take C·H·W values for another input.
	"classic": func(b int, in []int) (Arch, error) {
		size := prod(in)
		return Arch{
			Kind: "classic", Bottleneck: b, Input: slices.Clone(in),
			Encoder: []Layer{
				{Op: Flatten, Attr: "flatten"},
				{Op: Linear, In: size, Out: 512}, {Op: ReLU},
				{Op: Linear, In: 512, Out: 512}, {Op: ReLU},
				{Op: Linear, In: 512, Out: b},
			},
			Decoder: []Layer{
				{Op: Linear, In: b, Out: 512}, {Op: ReLU},
				{Op: Linear, In: 512, Out: 512}, {Op: ReLU},
				{Op: Linear, In: 512, Out: size}, {Op: Sigmoid},
				{Op: Unflatten, Shape: slices.Clone(in), Attr: "unflatten"},
			},
		}, nil
	},
	// conv is the notebook's convolutional autoencoder: two 3×3
	// convolutions with 2×2 max pooling down to 32×(H/4)×(W/4), and two
	// 2×2 transposed convolutions back up. H and W must be multiples of 4.
	"conv": func(b int, in []int) (Arch, error) {
		c, h, w := in[0], in[1], in[2]
		if h%4 != 0 || w%4 != 0 {
			return Arch{}, fmt.Errorf("conv: input %d×%d×%d: the height and width must be multiples of 4 (two 2×2 poolings, undone by two stride-2 transposed convolutions)", c, h, w)
		}
		inner := []int{32, h / 4, w / 4}
		return Arch{
			Kind: "conv", Bottleneck: b, Input: slices.Clone(in),
			Encoder: []Layer{
				{Op: Conv2d, In: c, Out: 16, Kernel: 3, Stride: 1, Pad: 1}, {Op: ReLU},
				{Op: MaxPool2d, Kernel: 2, Stride: 2},
				{Op: Conv2d, In: 16, Out: 32, Kernel: 3, Stride: 1, Pad: 1}, {Op: ReLU},
				{Op: MaxPool2d, Kernel: 2, Stride: 2},
				{Op: Flatten},
				{Op: Linear, In: prod(inner), Out: 128}, {Op: ReLU},
				{Op: Linear, In: 128, Out: b},
			},
			Decoder: []Layer{
				{Op: Linear, In: b, Out: 128}, {Op: ReLU},
				{Op: Linear, In: 128, Out: prod(inner)}, {Op: ReLU},
				{Op: Unflatten, Shape: inner},
				{Op: ConvTranspose2d, In: 32, Out: 16, Kernel: 2, Stride: 2}, {Op: ReLU},
				{Op: ConvTranspose2d, In: 16, Out: c, Kernel: 2, Stride: 2}, {Op: Sigmoid},
			},
		}, nil
	},
}

// variational returns the variational version of the plain kind's
// architecture: the encoder's last layer (the Linear to the bottleneck)
// gives way to the two heads of Arch.Heads.
func variational(kind string) func(b int, in []int) (Arch, error) {
	return func(b int, in []int) (Arch, error) {
		a, err := builders[kind](b, in)
		if err != nil {
			return Arch{}, err
		}
		a.Kind = kind + "-vae"
		a.Encoder = a.Encoder[:len(a.Encoder)-1]
		a.Variational = true
		return a, nil
	}
}

func init() {
	// The variational kinds: "classic-vae" and "conv-vae".
	for _, kind := range []string{"classic", "conv"} {
		builders[kind+"-vae"] = variational(kind)
	}
}

// MNISTInput is the notebook's image shape, C×H×W: the default input.
var MNISTInput = []int{1, 28, 28}

// New returns the architecture of the given kind with the given bottleneck
// for MNIST's images (MNISTInput): the notebook's models.
func New(kind string, bottleneck int) (Arch, error) {
	return NewFor(kind, bottleneck, MNISTInput)
}

// NewFor returns the architecture of the given kind with the given
// bottleneck for images of shape input, C×H×W. Everything else (the
// trainer, the exporter, the figures, the server) takes the shape from the
// architecture.
func NewFor(kind string, bottleneck int, input []int) (Arch, error) {
	build, ok := builders[kind]
	if !ok {
		return Arch{}, fmt.Errorf("unknown model %q: want one of %s", kind, strings.Join(Kinds(), ", "))
	}
	if bottleneck < 1 || bottleneck > MaxBottleneck {
		return Arch{}, fmt.Errorf("bottleneck %d out of range: want 1 to %d", bottleneck, MaxBottleneck)
	}
	if len(input) != 3 {
		return Arch{}, fmt.Errorf("input shape %v: want C×H×W", input)
	}
	if err := checkShape("input", input); err != nil {
		return Arch{}, err
	}
	a, err := build(bottleneck, input)
	if err != nil {
		return Arch{}, err
	}
	if err := a.Validate(); err != nil {
		return Arch{}, err
	}
	return a, nil
}

// InputSize is the number of values of one input image, C·H·W.
func (a Arch) InputSize() int { return prod(a.Input) }

// Validate checks an architecture, such as one read from a damaged or
// hostile file. First, before any shape inference could divide by zero or
// overflow:
//
//   - a non-empty kind and a bottleneck of 1 to MaxBottleneck;
//   - an input shape [C, H, W] and, for each part, 1 to MaxLayers layers of
//     known ops;
//   - Linear and the convolutions: In and Out of 1 to MaxValues; the
//     convolutions and MaxPool2d: Kernel and Stride of 1 to MaxKernel and Pad
//     of 0 to MaxKernel (0 for MaxPool2d, whose shape inference has none),
//     and a kernel no larger than the padded input of Conv2d and MaxPool2d;
//     Unflatten: 1 to 3 dimensions;
//   - every dimension of every activation is 1 to MaxValues, every per-sample
//     activation and every weight tensor has at most MaxValues values.
//
// Then shape inference through the encoder and the decoder must give a code
// of Bottleneck values and an output of Input's shape. So every shape and
// size derived from a valid architecture is positive and at most MaxValues.
func (a Arch) Validate() error {
	if err := a.checkBounds(); err != nil {
		return err
	}
	code, err := infer(Encoder, a.Input, a.Encoder)
	if err != nil {
		return err
	}
	if a.Variational && len(code) == 1 {
		code = []int{a.Bottleneck} // through the heads
	}
	if len(code) != 1 || code[0] != a.Bottleneck {
		return fmt.Errorf("%s: encoder gives %v, want [%d]", a.Kind, code, a.Bottleneck)
	}
	out, err := infer(Decoder, code, a.Decoder)
	if err != nil {
		return err
	}
	if !slices.Equal(out, a.Input) {
		return fmt.Errorf("%s: decoder gives %v, want %v", a.Kind, out, a.Input)
	}
	return nil
}

func infer(part string, in []int, layers []Layer) ([]int, error) {
	s := in
	for i, l := range layers {
		var err error
		if s, err = l.OutShape(s); err != nil {
			return nil, fmt.Errorf("%s.%d: %w", part, i, err)
		}
	}
	return s, nil
}

// Shapes returns the per-sample input shape of every layer of a part
// ("encoder" or "decoder") followed by the part's output shape, so that
// Shapes(part)[i] is layer i's input and Shapes(part)[i+1] its output.
func (a Arch) Shapes(part string) [][]int {
	s, layers := a.Input, a.Encoder
	if part == Decoder {
		s, layers = []int{a.Bottleneck}, a.Decoder
	}
	out := [][]int{s}
	for _, l := range layers {
		s, _ = l.OutShape(s)
		out = append(out, s)
	}
	return out
}

// MultiplyAdds returns the multiply-adds per sample of the forward pass of
// each layer with parameters, encoder (and a variational model's heads)
// then decoder: in·out for Linear and
// in·out·k·k per output position of Conv2d (per input position of
// ConvTranspose2d). These are the matrix products that dominate the cost;
// a training step does each three times (forward, input gradient, weight
// gradient) except the first layer's input gradient.
func (a Arch) MultiplyAdds() []int {
	var macs []int
	for _, part := range []string{Encoder, Decoder} {
		layers := a.Encoder
		if part == Decoder {
			layers = a.Decoder
		}
		shapes := a.Shapes(part)
		for i, l := range layers {
			switch l.Op {
			case Linear:
				macs = append(macs, l.In*l.Out)
			case Conv2d:
				macs = append(macs, l.In*l.Out*l.Kernel*l.Kernel*prod(shapes[i+1][1:]))
			case ConvTranspose2d:
				macs = append(macs, l.In*l.Out*l.Kernel*l.Kernel*prod(shapes[i][1:]))
			}
		}
		if part == Encoder {
			for _, h := range a.Heads() {
				macs = append(macs, h.In*h.Out)
			}
		}
	}
	return macs
}

// Param is one trainable tensor of an architecture.
type Param struct {
	// Name is the PyTorch state-dict name, such as "encoder.0.weight".
	Name string
	// Module is the name of the owning module, such as "encoder.0".
	Module string
	// Shape is the tensor's shape in PyTorch's layout.
	Shape []int
	// Bias is true for a bias and false for a weight.
	Bias bool
	// Layer is the owning layer.
	Layer Layer
}

// Size is the number of values in the tensor.
func (p Param) Size() int { return prod(p.Shape) }

// Params lists the trainable tensors in state-dict order: for each module
// with parameters, encoder first, then a variational model's heads (μ,
// log σ²), then the decoder, its weight then its bias.
func (a Arch) Params() []Param {
	var ps []Param
	for _, part := range []struct {
		name   string
		layers []Layer
	}{{Encoder, a.Encoder}, {Decoder, a.Decoder}} {
		mods := a.Modules(part.name)
		for i, l := range part.layers {
			if !l.HasParams() {
				continue
			}
			mod := mods[i]
			ps = append(ps, layerParams(mod, l)...)
		}
		if part.name == Encoder {
			for i, h := range a.Heads() {
				ps = append(ps, layerParams([]string{HeadMu, HeadLogVar}[i], h)...)
			}
		}
	}
	return ps
}

func layerParams(mod string, l Layer) []Param {
	return []Param{
		{Name: mod + ".weight", Module: mod, Shape: l.WeightShape(), Layer: l},
		{Name: mod + ".bias", Module: mod, Shape: []int{l.Out}, Bias: true, Layer: l},
	}
}

// Parts of an architecture, as Shapes and Modules take them.
const (
	Encoder = "encoder"
	Decoder = "decoder"
)

// Layers returns the layers of a part: Encoder or Decoder.
func (a Arch) Layers(part string) []Layer {
	if part == Decoder {
		return a.Decoder
	}
	return a.Encoder
}

// Modules returns the PyTorch module name of each layer of a part (Encoder
// or Decoder): "encoder.3" for the element at index 3 of the part's
// nn.Sequential, or the layer's Attr for one kept outside it. This is the
// one place where module names are made; checkpoints, the trainer's graph
// and the exporter's ONNX nodes all take them from here.
func (a Arch) Modules(part string) []string {
	layers := a.Layers(part)
	names := make([]string, len(layers))
	index := 0
	for i, l := range layers {
		if l.Attr != "" {
			names[i] = l.Attr
			continue
		}
		names[i] = part + "." + strconv.Itoa(index)
		index++
	}
	return names
}

// Indexed returns the architecture with every layer inside its part's
// Sequential (no Attr). It is the layout of latent's model files written
// before the classic model's names followed the notebook's class: their
// classic tensors are encoder.1/3/5, where the notebook has encoder.0/2/4.
// Readers use Indexed().Params() to find the tensors of such files.
func (a Arch) Indexed() Arch {
	b := a
	b.Encoder, b.Decoder = slices.Clone(a.Encoder), slices.Clone(a.Decoder)
	for _, part := range [][]Layer{b.Encoder, b.Decoder} {
		for i := range part {
			part[i].Attr = ""
		}
	}
	return b
}

// NumParams is the total number of trainable values.
func (a Arch) NumParams() int {
	n := 0
	for _, p := range a.Params() {
		n += p.Size()
	}
	return n
}

// InitBound is the half-width of PyTorch's default uniform initialisation
// for the layer's weight and bias: 1/sqrt(fan-in). (For weights this is
// kaiming_uniform_ with a=sqrt(5).)
func (l Layer) InitBound() float64 { return 1 / math.Sqrt(float64(l.FanIn())) }

// JSON returns the declaration as JSON, for metadata.
func (a Arch) JSON() string {
	b, _ := json.Marshal(a)
	return string(b)
}

// ParseJSON reads a declaration written by JSON and validates it. A
// declaration of one of New's models in the layout of older files (see
// Indexed) comes back as New declares it today.
func ParseJSON(s string) (Arch, error) {
	var a Arch
	if err := json.Unmarshal([]byte(s), &a); err != nil {
		return Arch{}, fmt.Errorf("architecture: %w", err)
	}
	if err := a.Validate(); err != nil {
		return Arch{}, fmt.Errorf("architecture: %w", err)
	}
	if now, err := NewFor(a.Kind, a.Bottleneck, a.Input); err == nil && !now.Equal(a) && now.Indexed().Equal(a) {
		return now, nil
	}
	return a, nil
}

// Equal reports whether two architectures declare the same layers.
func (a Arch) Equal(b Arch) bool { return a.JSON() == b.JSON() }

func prod(s []int) int {
	n := 1
	for _, v := range s {
		n *= v
	}
	return n
}

// Clone returns a deep copy of a: its slices, and the layers' shapes, are
// new.
func (a Arch) Clone() Arch {
	a.Input = slices.Clone(a.Input)
	a.Encoder = slices.Clone(a.Encoder)
	a.Decoder = slices.Clone(a.Decoder)
	for _, ls := range [][]Layer{a.Encoder, a.Decoder} {
		for i := range ls {
			ls[i].Shape = slices.Clone(ls[i].Shape)
		}
	}
	return a
}
