package trainer

import (
	"fmt"

	"github.com/latent-ai/latent/models"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// The parts of an architecture that a graph can compute.
const (
	partEncoder     = "encoder"     // image -> code
	partDecoder     = "decoder"     // code -> image
	partAutoencoder = "autoencoder" // image -> image, with the MSE loss
)

// graph is a Gorgonia expression graph of one part of an architecture for
// one batch size, built from the declaration in models.
type graph struct {
	g      *G.ExprGraph
	batch  int
	input  *G.Node // [batch, input shape...]
	output *G.Node // [batch, output shape...]
	// loss is the mean squared error between output and input, and lossVal
	// receives its value; both are nil unless the graph trains.
	loss    *G.Node
	lossVal G.Value
	params  []*G.Node // one node per models.Param; nil where not in the part
	vm      G.VM
}

// newGraph builds the graph of part for batch samples. values holds one
// tensor per models.Param in the trainer's layout (see Weights), shared with
// the caller: updating them in place changes what the graph computes. With
// train, the graph computes the loss and the gradients of every parameter
// in the part.
func newGraph(arch models.Arch, part string, batch int, values []tensor.Tensor, train bool) (*graph, error) {
	dt := values[0].Dtype()
	gr := &graph{g: G.NewGraph(), batch: batch, params: make([]*G.Node, len(values))}
	var inShape []int
	switch part {
	case partEncoder, partAutoencoder:
		inShape = arch.Input
	case partDecoder:
		inShape = []int{arch.Bottleneck}
	default:
		return nil, fmt.Errorf("unknown part %q", part)
	}
	gr.input = G.NewTensor(gr.g, dt, len(inShape)+1, G.WithShape(withBatch(batch, inShape)...), G.WithName("input"),
		G.WithValue(tensor.New(tensor.Of(dt), tensor.WithShape(withBatch(batch, inShape)...))))

	// Parameters are numbered as in arch.Params(): encoder modules first.
	params := arch.Params()
	first := map[string]int{} // module name -> index of its weight
	for i, p := range params {
		if !p.Bias {
			first[p.Module] = i
		}
	}
	x := gr.input
	var err error
	parts := []string{part}
	if part == partAutoencoder {
		parts = []string{partEncoder, partDecoder}
	}
	for _, name := range parts {
		layers := arch.Encoder
		if name == partDecoder {
			layers = arch.Decoder
		}
		for i, l := range reshapesFirst(layers) {
			mod := fmt.Sprintf("%s.%d", name, i)
			var w, b *G.Node
			if l.HasParams() {
				wi := first[mod]
				w = G.NodeFromAny(gr.g, values[wi], G.WithName(params[wi].Name))
				b = G.NodeFromAny(gr.g, values[wi+1], G.WithName(params[wi+1].Name))
				gr.params[wi], gr.params[wi+1] = w, b
			}
			if x, err = layer(l, x, w, b); err != nil {
				return nil, fmt.Errorf("%s (%s): %w", mod, l.Op, err)
			}
		}
	}
	gr.output = x

	var bound G.Nodes
	for _, p := range gr.params {
		if p != nil {
			bound = append(bound, p)
		}
	}
	if train {
		if part != partAutoencoder {
			return nil, fmt.Errorf("only the autoencoder trains, not the %s", part)
		}
		diff, err := G.Sub(gr.output, gr.input)
		if err != nil {
			return nil, fmt.Errorf("loss: %w", err)
		}
		if gr.loss, err = G.Mean(G.Must(G.Square(diff))); err != nil {
			return nil, fmt.Errorf("loss: %w", err)
		}
		G.Read(gr.loss, &gr.lossVal)
		if _, err := G.Grad(gr.loss, bound...); err != nil {
			return nil, fmt.Errorf("gradients: %w", err)
		}
		gr.vm = G.NewTapeMachine(gr.g, G.BindDualValues(bound...))
	} else {
		gr.vm = G.NewTapeMachine(gr.g)
	}
	return gr, nil
}

// reshapesFirst returns the layers with every Flatten or Unflatten that
// directly follows a ReLU or Sigmoid moved before it. The result is the same
// (the activations act on each value alone), but Gorgonia's gradients are
// not: its element-wise ops may overwrite a reshaped view of an activation's
// output that the activation's own gradient still needs. Module names keep
// the declared indices, since the swapped layers have no parameters.
func reshapesFirst(layers []models.Layer) []models.Layer {
	out := append([]models.Layer(nil), layers...)
	for i := 0; i+1 < len(out); i++ {
		act := out[i].Op == models.ReLU || out[i].Op == models.Sigmoid
		reshape := out[i+1].Op == models.Flatten || out[i+1].Op == models.Unflatten
		if act && reshape {
			out[i], out[i+1] = out[i+1], out[i]
			i++
		}
	}
	return out
}

func withBatch(n int, s []int) []int { return append([]int{n}, s...) }

// layer applies one declared layer to x, with w and b its parameters in the
// trainer's layout.
func layer(l models.Layer, x, w, b *G.Node) (*G.Node, error) {
	n := x.Shape()[0]
	switch l.Op {
	case models.Linear:
		y, err := G.Mul(x, w) // [n, in]·[in, out]
		if err != nil {
			return nil, err
		}
		b1, err := G.Reshape(b, tensor.Shape{1, l.Out})
		if err != nil {
			return nil, err
		}
		return G.BroadcastAdd(y, b1, nil, []byte{0})
	case models.Conv2d:
		y, err := G.Conv2d(x, w, tensor.Shape{l.Kernel, l.Kernel}, []int{l.Pad, l.Pad}, []int{l.Stride, l.Stride}, []int{1, 1})
		if err != nil {
			return nil, err
		}
		return addChannelBias(y, b, l.Out)
	case models.ConvTranspose2d:
		return convTranspose(l, x, w, b)
	case models.MaxPool2d:
		return G.MaxPool2D(x, tensor.Shape{l.Kernel, l.Kernel}, []int{0, 0}, []int{l.Stride, l.Stride})
	case models.ReLU:
		return G.Rectify(x)
	case models.Sigmoid:
		return G.Sigmoid(x)
	case models.Flatten:
		size := 1
		for _, d := range x.Shape()[1:] {
			size *= d
		}
		return G.Reshape(x, tensor.Shape{n, size})
	case models.Unflatten:
		return G.Reshape(x, tensor.Shape(withBatch(n, l.Shape)))
	}
	return nil, fmt.Errorf("the trainer has no %s layer", l.Op)
}

func addChannelBias(y, b *G.Node, c int) (*G.Node, error) {
	b4, err := G.Reshape(b, tensor.Shape{1, c, 1, 1})
	if err != nil {
		return nil, err
	}
	return G.BroadcastAdd(y, b4, nil, []byte{0, 2, 3})
}

// convTranspose computes a ConvTranspose2d whose kernel equals its stride
// (k×k, stride k, no padding), where output patches do not overlap:
//
//	out[n, co, k·h+i, k·w+j] = Σ_ci x[n, ci, h, w]·W[ci, co, i, j] + b[co]
//
// as one matrix product [n·H·W, Cin]·[Cin, Cout·k·k] followed by a
// depth-to-space rearrangement. Gorgonia differentiates through it.
func convTranspose(l models.Layer, x, w, b *G.Node) (*G.Node, error) {
	if l.Kernel != l.Stride || l.Pad != 0 {
		return nil, fmt.Errorf("only kernel == stride with no padding is supported, not kernel %d stride %d pad %d", l.Kernel, l.Stride, l.Pad)
	}
	s := x.Shape()
	n, cin, h, wd := s[0], s[1], s[2], s[3]
	k, cout := l.Kernel, l.Out
	xt, err := G.Transpose(x, 0, 2, 3, 1) // [n, h, w, cin]
	if err != nil {
		return nil, err
	}
	x2, err := G.Reshape(xt, tensor.Shape{n * h * wd, cin})
	if err != nil {
		return nil, err
	}
	wm, err := G.Reshape(w, tensor.Shape{cin, cout * k * k})
	if err != nil {
		return nil, err
	}
	y, err := G.Mul(x2, wm) // [n·h·w, cout·k·k]
	if err != nil {
		return nil, err
	}
	y6, err := G.Reshape(y, tensor.Shape{n, h, wd, cout, k, k})
	if err != nil {
		return nil, err
	}
	yt, err := G.Transpose(y6, 0, 3, 1, 4, 2, 5) // [n, cout, h, k, w, k]
	if err != nil {
		return nil, err
	}
	y4, err := G.Reshape(yt, tensor.Shape{n, cout, h * k, wd * k})
	if err != nil {
		return nil, err
	}
	return addChannelBias(y4, b, cout)
}

// run executes the graph once on the values in its input node and resets
// the machine so that the next run computes again.
func (gr *graph) run() error {
	defer gr.vm.Reset()
	return gr.vm.RunAll()
}

// inputData is the backing slice of the input node, to fill before run.
func (gr *graph) inputData() []float32 { return gr.input.Value().Data().([]float32) }

// outputData is the backing slice of the output after run; the graph owns it.
func (gr *graph) outputData() []float32 { return gr.output.Value().Data().([]float32) }
