package trainer

// The trainer's Gorgonia ops.
//
// Every layer kind is one op (or two, for the convolutions) with a
// hand-written forward pass, and SymDiff builds its backward pass from a few
// more ops of this package, so that Gorgonia builds, differentiates and
// schedules the graph while the arithmetic runs in fused loops and in gemm.
//
// Each op node owns its output: the op allocates it at the first run and
// writes into it at every later run, so a training step allocates no tensor
// data. That is safe because no op here ever writes into its inputs or into
// a register's previous value (none implements UsePreallocDoer or
// UnsafeDoer, none overwrites its input), and the graph holds no Gorgonia
// op that would. Every op works in float32 and float64 (the element type of
// its inputs).

import (
	"fmt"
	"hash"
	"hash/fnv"
	"math"
	"sync/atomic"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// opIDs numbers op instances, so that no two nodes share a hash and
// Gorgonia never merges two of them into one node with one output buffer.
var opIDs atomic.Int64

// opBase holds what every op of this package shares: its name, the shapes
// of its inputs and of its output, and the output it owns.
type opBase struct {
	name     string
	id       int64
	inShapes []tensor.Shape // nil entry for a scalar input
	shape    tensor.Shape   // the output's; nil for a scalar
	out      tensor.Tensor  // owned output, allocated by the first run
	outF32   G.F32          // owned scalar output
	outF64   G.F64
}

func newBase(name string, shape tensor.Shape, inputs ...*G.Node) opBase {
	o := opBase{name: name, id: opIDs.Add(1), shape: shape}
	for _, n := range inputs {
		var s tensor.Shape
		if !n.IsScalar() {
			s = n.Shape().Clone()
		}
		o.inShapes = append(o.inShapes, s)
	}
	return o
}

func (o *opBase) Arity() int { return len(o.inShapes) }

// Type is a → … → a over tensors of the inputs' and the output's ranks, with
// one element type a.
func (o *opBase) Type() hm.Type {
	a := hm.TypeVariable('a')
	of := func(s tensor.Shape) hm.Type {
		if s == nil {
			return a
		}
		return G.TensorType{Dims: len(s), Of: a}
	}
	ts := make([]hm.Type, 0, len(o.inShapes)+1)
	for _, s := range o.inShapes {
		ts = append(ts, of(s))
	}
	return hm.NewFnType(append(ts, of(o.shape))...)
}

func (o *opBase) InferShape(...G.DimSizer) (tensor.Shape, error) {
	if o.shape == nil {
		return tensor.ScalarShape(), nil
	}
	return o.shape.Clone(), nil
}

func (o *opBase) ReturnsPtr() bool      { return false }
func (o *opBase) CallsExtern() bool     { return false }
func (o *opBase) OverwritesInput() int  { return -1 }
func (o *opBase) WriteHash(h hash.Hash) { fmt.Fprintf(h, "latent.%s#%d", o.name, o.id) }
func (o *opBase) String() string        { return o.name }

func (o *opBase) Hashcode() uint32 {
	h := fnv.New32a()
	o.WriteHash(h)
	return h.Sum32()
}

// check verifies that the inputs of a run have the sizes and the one
// element type that the op was built for, and returns that type.
func (o *opBase) check(in []G.Value) (tensor.Dtype, error) {
	if len(in) != len(o.inShapes) {
		return nil, fmt.Errorf("%s: %d inputs, want %d", o.name, len(in), len(o.inShapes))
	}
	dt := in[0].Dtype()
	for i, v := range in {
		if v.Dtype() != dt {
			return nil, fmt.Errorf("%s: input %d is %v, input 0 %v", o.name, i, v.Dtype(), dt)
		}
		if s := o.inShapes[i]; s != nil && v.Size() != s.TotalSize() {
			return nil, fmt.Errorf("%s: input %d has %d values, want %v", o.name, i, v.Size(), s)
		}
	}
	if dt != tensor.Float32 && dt != tensor.Float64 {
		return nil, fmt.Errorf("%s: unsupported type %v", o.name, dt)
	}
	return dt, nil
}

// output returns the op's own output tensor for element type dt.
func (o *opBase) output(dt tensor.Dtype) tensor.Tensor {
	if o.out == nil || o.out.Dtype() != dt {
		o.out = tensor.New(tensor.Of(dt), tensor.WithShape(o.shape.Clone()...))
	}
	return o.out
}

// scratch returns buf grown to n values; ops keep such buffers across runs.
func scratch[T float](buf *[]T, n int) []T {
	if cap(*buf) < n {
		*buf = make([]T, n)
	}
	return (*buf)[:n]
}

// data is the backing slice of a tensor value.
func data[T float](v G.Value) []T { return v.Data().([]T) }

// args returns the backing slices of up to four tensor inputs.
func args[T float](in []G.Value) (a [4][]T) {
	for i, v := range in {
		if d, ok := v.Data().([]T); ok {
			a[i] = d
		}
	}
	return a
}

// unaryDiff is DiffWRT for single-input ops.
func unaryDiff(need bool) []bool { return []bool{need} }

// activation is an element-wise function fused into an op's output.
type activation int

const (
	actNone activation = iota
	actReLU
	actSigmoid
)

func (a activation) String() string {
	return [...]string{"", "relu", "sigmoid"}[a]
}

// grain is the least number of values worth splitting across goroutines in
// element-wise loops.
const grain = 1 << 14

// activate applies a to v in place.
func activate[T float](a activation, v []T) {
	switch a {
	case actReLU:
		parallelFor(len(v), grain, func(lo, hi int) {
			for i, x := range v[lo:hi] {
				if !(x > 0) { // NaN stays NaN below
					if x == x {
						v[lo+i] = 0
					}
				}
			}
		})
	case actSigmoid:
		parallelFor(len(v), grain/8, func(lo, hi int) {
			for i, x := range v[lo:hi] {
				v[lo+i] = T(1 / (1 + math.Exp(-float64(x))))
			}
		})
	}
}

// activationGrad sets dz = dy·a'(z) where y = a(z), from y and dy.
func activationGrad[T float](a activation, dz, y, dy []T) {
	switch a {
	case actNone:
		copy(dz, dy)
	case actReLU:
		parallelFor(len(dz), grain, func(lo, hi int) {
			for i, v := range y[lo:hi] {
				if v > 0 {
					dz[lo+i] = dy[lo+i]
				} else {
					dz[lo+i] = 0
				}
			}
		})
	case actSigmoid:
		parallelFor(len(dz), grain, func(lo, hi int) {
			for i, v := range y[lo:hi] {
				dz[lo+i] = dy[lo+i] * v * (1 - v)
			}
		})
	}
}

// actOp is a ReLU or Sigmoid that follows no layer it could be fused into.
type actOp struct {
	opBase
	act  activation
	need bool // whether x needs a gradient
}

func newActOp(act activation, x *G.Node, need bool) *actOp {
	return &actOp{opBase: newBase(act.String(), x.Shape().Clone(), x), act: act, need: need}
}

func (op *actOp) Do(in ...G.Value) (G.Value, error) {
	dt, err := op.check(in)
	if err != nil {
		return nil, err
	}
	out := op.output(dt)
	switch y := out.Data().(type) {
	case []float32:
		copy(y, data[float32](in[0]))
		activate(op.act, y)
	case []float64:
		copy(y, data[float64](in[0]))
		activate(op.act, y)
	}
	return out, nil
}

func (op *actOp) DiffWRT(int) []bool { return unaryDiff(op.need) }

func (op *actOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	dx, err := G.ApplyOp(newActGradOp(op.act, output, grad), output, grad)
	return G.Nodes{dx}, err
}

// actGradOp computes dz = dy·a'(z) from y = a(z) and dy, all of one shape.
type actGradOp struct {
	opBase
	act activation
}

func newActGradOp(act activation, y, dy *G.Node) *actGradOp {
	return &actGradOp{opBase: newBase(act.String()+"-grad", y.Shape().Clone(), y, dy), act: act}
}

func (op *actGradOp) Do(in ...G.Value) (G.Value, error) {
	dt, err := op.check(in)
	if err != nil {
		return nil, err
	}
	out := op.output(dt)
	switch dz := out.Data().(type) {
	case []float32:
		a := args[float32](in)
		activationGrad(op.act, dz, a[0], a[1])
	case []float64:
		a := args[float64](in)
		activationGrad(op.act, dz, a[0], a[1])
	}
	return out, nil
}

// reshapeOp gives its input another shape of the same size, as a view that
// shares the input's values (no op here writes into its inputs).
type reshapeOp struct {
	opBase
	need bool
}

func newReshapeOp(x *G.Node, shape tensor.Shape, need bool) (*reshapeOp, error) {
	if x.Shape().TotalSize() != shape.TotalSize() {
		return nil, fmt.Errorf("cannot reshape %v to %v", x.Shape(), shape)
	}
	return &reshapeOp{opBase: newBase(fmt.Sprintf("reshape%v", shape), shape.Clone(), x), need: need}, nil
}

func (op *reshapeOp) Do(in ...G.Value) (G.Value, error) {
	if _, err := op.check(in); err != nil {
		return nil, err
	}
	// The inputs are other ops' outputs or the graph's input: their memory
	// stays put from run to run, and so can the view.
	if op.out == nil || op.out.Uintptr() != in[0].Uintptr() || op.out.Dtype() != in[0].Dtype() {
		op.out = tensor.New(tensor.WithShape(op.shape.Clone()...), tensor.WithBacking(in[0].Data()))
	}
	return op.out, nil
}

func (op *reshapeOp) DiffWRT(int) []bool { return unaryDiff(op.need) }

func (op *reshapeOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	back, err := newReshapeOp(grad, inputs[0].Shape(), false)
	if err != nil {
		return nil, err
	}
	dx, err := G.ApplyOp(back, grad)
	return G.Nodes{dx}, err
}

// mseOp is the loss: the mean over all values of (y - x)², where y is the
// reconstruction and x the input. It sums in float64.
type mseOp struct {
	opBase
}

func newMSEOp(y, x *G.Node) *mseOp { return &mseOp{opBase: newBase("mse", nil, y, x)} }

func (op *mseOp) Do(in ...G.Value) (G.Value, error) {
	dt, err := op.check(in)
	if err != nil {
		return nil, err
	}
	if dt == tensor.Float32 {
		a := args[float32](in)
		op.outF32 = G.F32(meanSquaredError(a[0], a[1]))
		return &op.outF32, nil
	}
	a := args[float64](in)
	op.outF64 = G.F64(meanSquaredError(a[0], a[1]))
	return &op.outF64, nil
}

func meanSquaredError[T float](y, x []T) float64 {
	var sum float64
	for i, v := range y {
		d := float64(v - x[i])
		sum += d * d
	}
	return sum / float64(len(y))
}

// The input is data, not a parameter: only y has a gradient.
func (op *mseOp) DiffWRT(int) []bool { return []bool{true, false} }

func (op *mseOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	y, x := inputs[0], inputs[1]
	dy, err := G.ApplyOp(&mseGradOp{opBase: newBase("mse-grad", y.Shape().Clone(), y, x, grad)}, y, x, grad)
	return G.Nodes{dy, nil}, err
}

// mseGradOp computes dy = g·2(y - x)/N from y, x and the loss's gradient g.
type mseGradOp struct {
	opBase
}

func (op *mseGradOp) Do(in ...G.Value) (G.Value, error) {
	dt, err := op.check(in)
	if err != nil {
		return nil, err
	}
	g := scalar(in[2])
	out := op.output(dt)
	switch dy := out.Data().(type) {
	case []float32:
		a := args[float32](in)
		mseGrad(dy, a[0], a[1], g)
	case []float64:
		a := args[float64](in)
		mseGrad(dy, a[0], a[1], g)
	}
	return out, nil
}

func mseGrad[T float](dy, y, x []T, g float64) {
	k := T(2 * g / float64(len(y)))
	parallelFor(len(dy), grain, func(lo, hi int) {
		for i, v := range y[lo:hi] {
			dy[lo+i] = k * (v - x[lo+i])
		}
	})
}
