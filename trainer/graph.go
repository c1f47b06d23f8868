package trainer

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/latent-ai/latent/models"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/latent-ai/latent/trainer/internal/kernels"
)

// The parts of an architecture that a graph can compute.
const (
	partEncoder     = models.Encoder // image -> code
	partDecoder     = models.Decoder // code -> image
	partAutoencoder = "autoencoder"  // image -> image, with the MSE loss
)

// graph is a Gorgonia expression graph of one part of an architecture for
// one batch size, built from the declaration in models. Every layer is an op
// of this package (ops*.go) with a hand-written forward pass and a backward
// pass of more such ops, fused with the ReLU or Sigmoid that follows it: the
// graph holds no Gorgonia arithmetic op, which also keeps it clear of
// Gorgonia's element-wise ops overwriting reshaped views of their inputs.
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
	// deferred lists the Linear layers whose weight gradient the graph
	// leaves to the trainer (deferLinearWeights), in layer order.
	deferred []*deferredLinear
	// update is the optimizer step of the current run, for the deferred
	// layers that the graph updates during the run; nil runs none.
	update *deferredUpdate
	mse    *mseGradOp // the backward pass's first op, when training
	// vae is the bottleneck of a variational model (its heads and z), or
	// nil; a graph with one draws ε before each run that samples.
	vae *gaussOp
	vm  G.VM
	// tape runs vm's program on the caller's goroutine, or is nil where
	// run calls vm.RunAll (see tape).
	tape *tape
}

// deferredUpdate is the Adam step that a run applies to the deferred
// layers' weights as their gradients become ready.
type deferredUpdate struct {
	adam    *Adam
	step    kernels.AdamStep
	weights [][]float32 // by parameter index
	// left counts the update's tasks queued on workPool's backlog that
	// have not finished (deferredLinear.stepLater): the run's caller waits
	// for it to reach 0 (workPool.finish) before it reads the weights.
	left atomic.Int32
}

// overlapUpdates is whether a run queues its deferred weight updates on
// workPool's backlog (deferredLinear.stepLater), for a core to take up
// whenever it would otherwise wait for the other, instead of running each
// at once on all of them (deferredLinear.step). Both give the same bits;
// tests turn it off to check so. With a BLAS that runs its own threads
// (blasThreaded) the updates run at once.
var overlapUpdates = true

// buildMu serializes newGraph.
var buildMu sync.Mutex

// gradients says which gradients a graph computes.
type gradients int

const (
	noGradients  gradients = iota // the output only
	allGradients                  // the loss and every parameter's gradient
	// deferLinearWeights is the loss and every parameter's gradient but
	// the Linear layers' weights': those are computed block by block, and
	// each weight updated with them, during the run (hookDeferred,
	// deferredLinear.step).
	deferLinearWeights
)

// SupportedOps are the layer kinds the trainer's graph builds (builder.layer).
var SupportedOps = []models.Op{models.Linear, models.Conv2d, models.ConvTranspose2d, models.MaxPool2d,
	models.ReLU, models.Sigmoid, models.Flatten, models.Unflatten}

// newGraph builds the graph of part for batch samples. values holds one
// tensor per models.Param in the trainer's layout (see Weights), shared with
// the caller: updating them in place changes what the graph computes. grads
// says which gradients it computes, with the loss; only the autoencoder
// computes any.
func newGraph(arch models.Arch, part string, batch int, values []tensor.Tensor, grads gradients) (*graph, error) {
	// Gorgonia's symbolic differentiation shares constant nodes among all
	// graphs and caches their hashes lazily, so two graphs built at once
	// race (found by TestOverlappedUpdatesTwoTrainers under -race): build
	// one at a time.
	buildMu.Lock()
	defer buildMu.Unlock()
	train := grads != noGradients
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
	b := builder{needs: map[*G.Node]bool{}, deferW: grads == deferLinearWeights}
	x := gr.input
	var err error
	parts := []string{part}
	if part == partAutoencoder {
		parts = []string{partEncoder, partDecoder}
	}
	for _, name := range parts {
		layers, mods := arch.Layers(name), arch.Modules(name)
		for i := 0; i < len(layers); i++ {
			l := layers[i]
			mod := mods[i]
			var w, bias *G.Node
			act := actNone
			if l.HasParams() {
				wi := first[mod]
				w = G.NodeFromAny(gr.g, values[wi], G.WithName(params[wi].Name))
				bias = G.NodeFromAny(gr.g, values[wi+1], G.WithName(params[wi+1].Name))
				gr.params[wi], gr.params[wi+1] = w, bias
				// An activation right after the layer runs inside its op.
				if i+1 < len(layers) {
					act = activationOf(layers[i+1].Op)
				}
			}
			in := x
			if x, err = b.layer(l, x, w, bias, act); err != nil {
				return nil, fmt.Errorf("%s (%s): %w", mod, l.Op, err)
			}
			if op, ok := x.Op().(*linearOp); ok && op.deferW {
				gr.deferred = append(gr.deferred, &deferredLinear{param: first[mod], x: in, op: op})
			}
			if act != actNone {
				i++
			}
		}
		if name == partEncoder && arch.Variational {
			if x, err = gr.heads(&b, arch, x, values, first); err != nil {
				return nil, err
			}
		}
	}
	gr.output = x

	if train {
		if part != partAutoencoder {
			return nil, fmt.Errorf("only the autoencoder trains, not the %s", part)
		}
		loss := newMSEOp(gr.output, gr.input)
		if arch.Variational {
			loss = newBCEOp(gr.output, gr.input)
		}
		if gr.loss, err = G.ApplyOp(loss, gr.output, gr.input); err != nil {
			return nil, fmt.Errorf("loss: %w", err)
		}
		G.Read(gr.loss, &gr.lossVal)
		var bound G.Nodes
		for i, p := range gr.params {
			if p != nil && !gr.isDeferred(i) {
				bound = append(bound, p)
			}
		}
		if _, err := G.Grad(gr.loss, bound...); err != nil {
			return nil, fmt.Errorf("gradients: %w", err)
		}
		gr.hookDeferred()
	}
	// Without BindDualValues, a parameter's Grad() is the value of its
	// gradient node from the last run, which the run overwrites: gradients
	// do not add up from run to run.
	gr.vm = G.NewTapeMachine(gr.g)
	gr.tape = newTape(gr.vm)
	return gr, nil
}

// heads adds a variational model's bottleneck after the encoder's output
// h: a gaussOp, which gives z (or μ) to the decoder. Its heads' weights are
// updated after the run, with the gradients the graph computes.
func (gr *graph) heads(b *builder, arch models.Arch, h *G.Node, values []tensor.Tensor, first map[string]int) (*G.Node, error) {
	params := arch.Params()
	var in [4]*G.Node
	for k, mod := range []string{models.HeadMu, models.HeadLogVar} {
		wi := first[mod]
		in[2*k] = G.NodeFromAny(gr.g, values[wi], G.WithName(params[wi].Name))
		in[2*k+1] = G.NodeFromAny(gr.g, values[wi+1], G.WithName(params[wi+1].Name))
		gr.params[wi], gr.params[wi+1] = in[2*k], in[2*k+1]
	}
	op, err := newGaussOp(h, in[0], in[1], in[2], in[3])
	if err != nil {
		return nil, err
	}
	z, err := G.ApplyOp(op, h, in[0], in[1], in[2], in[3])
	if err != nil {
		return nil, fmt.Errorf("%s and %s: %w", models.HeadMu, models.HeadLogVar, err)
	}
	b.needs[z] = true
	gr.vae = op
	return z, nil
}

func withBatch(n int, s []int) []int { return append([]int{n}, s...) }

// activationOf returns the activation of an activation layer, or actNone.
func activationOf(op models.Op) activation {
	switch op {
	case models.ReLU:
		return actReLU
	case models.Sigmoid:
		return actSigmoid
	}
	return actNone
}

// builder adds layers to a graph.
type builder struct {
	// needs records which nodes depend on a parameter, and so need a
	// gradient; the input and what is computed from it alone do not.
	needs map[*G.Node]bool
	// deferW leaves the Linear layers' weight gradients out of the graph.
	deferW bool
}

// layer applies one declared layer to x, with w and b its parameters in the
// trainer's layout and act the activation that follows it, fused in:
//
//	Linear           linearOp        y = a(x·W + b)
//	Conv2d           convOp          im2col and gemm, sample by sample
//	ConvTranspose2d  convTOp         gemm and depth-to-space (kernel = stride)
//	MaxPool2d        maxPoolOp
//	ReLU, Sigmoid    actOp           where no layer with parameters precedes
//	Flatten, Unflatten  reshapeOp    a view
//
// and the loss is mseOp.
func (bd *builder) layer(l models.Layer, x, w, b *G.Node, act activation) (*G.Node, error) {
	need := bd.needs[x]
	var y *G.Node
	var err error
	// unary adds the node of an op of x alone, given its constructor's results.
	unary := func(op G.Op, err error) (*G.Node, error) {
		if err != nil {
			return nil, err
		}
		return G.ApplyOp(op, x)
	}
	switch l.Op {
	case models.Linear:
		var op *linearOp
		if op, err = newLinearOp(x, w, b, act, need); err == nil {
			op.deferW = bd.deferW
			y, err = G.ApplyOp(op, x, w, b)
		}
		need = true
	case models.Conv2d:
		var op *convOp
		if op, err = newConvOp(x, w, b, l.Kernel, l.Stride, l.Pad, act, need); err == nil {
			y, err = G.ApplyOp(op, x, w, b)
		}
		need = true
	case models.ConvTranspose2d:
		if l.Kernel != l.Stride || l.Pad != 0 {
			return nil, fmt.Errorf("only kernel == stride with no padding is supported, not kernel %d stride %d pad %d", l.Kernel, l.Stride, l.Pad)
		}
		var op *convTOp
		if op, err = newConvTOp(x, w, b, act, need); err == nil {
			y, err = G.ApplyOp(op, x, w, b)
		}
		need = true
	case models.MaxPool2d:
		if l.Pad != 0 {
			return nil, fmt.Errorf("padding %d is not supported", l.Pad)
		}
		y, err = unary(newMaxPoolOp(x, l.Kernel, l.Stride, need))
	case models.ReLU, models.Sigmoid:
		y, err = G.ApplyOp(newActOp(activationOf(l.Op), x, need), x)
	case models.Flatten, models.Unflatten:
		n := x.Shape()[0]
		shape := tensor.Shape{n, x.Shape().TotalSize() / n}
		if l.Op == models.Unflatten {
			shape = withBatch(n, l.Shape)
		}
		y, err = unary(newReshapeOp(x, shape, need))
	default:
		return nil, fmt.Errorf("the trainer has no %s layer", l.Op)
	}
	if err != nil {
		return nil, err
	}
	bd.needs[y] = need
	return y, nil
}

// run executes the graph once on the values in its input node and resets
// the machine so that the next run computes again.
func (gr *graph) run() error {
	workPool.keepSpare()
	defer gr.vm.Reset()
	if gr.tape != nil {
		return gr.tape.run()
	}
	return gr.vm.RunAll()
}

// inputData is the backing slice of the input node, to fill before run.
func (gr *graph) inputData() []float32 { return gr.input.Value().Data().([]float32) }

// outputData is the backing slice of the output after run; the graph owns it.
func (gr *graph) outputData() []float32 { return gr.output.Value().Data().([]float32) }

// isDeferred reports whether parameter i is a weight whose gradient the
// trainer computes (deferred).
func (gr *graph) isDeferred(i int) bool {
	for _, d := range gr.deferred {
		if d.param == i {
			return true
		}
	}
	return false
}

// hookDeferred has the run itself update each deferred layer's weight as
// soon as it can: at the end of the op that computes the layer's input
// gradient dx, the last to read the weight, or, for a first layer, which has
// none, of the op that computes its dz. Both the weight and dz are then in
// cache. The update waits for the backward pass's first op (mse) to find
// the run's loss finite, so that a diverged step changes no weight. A layer
// whose op is not one of this package's is updated after the run.
func (gr *graph) hookDeferred() {
	for _, n := range gr.g.AllNodes() {
		if op, ok := n.Op().(*mseGradOp); ok {
			gr.mse = op
		}
	}
	if gr.mse == nil {
		return
	}
	for _, d := range gr.deferred {
		at := d.op.dx
		if at == nil {
			at = d.op.dz
		}
		ob := base(at.Op())
		if ob == nil {
			continue
		}
		d.inRun = true
		prev := ob.after
		ob.after = func() {
			if prev != nil {
				prev()
			}
			if u := gr.update; u != nil && gr.mse.finite {
				if overlapUpdates && !blasThreaded {
					d.stepLater(u.adam, u.step, u.weights[d.param], &u.left)
				} else {
					d.step(u.adam, u.step, u.weights[d.param])
				}
			}
		}
	}
}
