package trainer

// The trainer's Gorgonia ops.
//
// Every layer kind is one op with a hand-written forward pass, fused with
// the bias and the activation that follows it, and SymDiff builds its
// backward pass from a few more ops of this package, so that Gorgonia
// builds, differentiates and schedules the graph while the arithmetic runs
// in fused loops and in gemm (blas.go). The loops have no branches on the
// data and share large work among the pool's goroutines (as many as
// GOMAXPROCS when the first step ran; see workPool), each value always
// computed by one goroutine in one order: results do not depend on the
// goroutines, and training stays deterministic.
//
// Each op node owns its output: the op allocates it at the first run and
// writes into it at every later run, so a training step allocates no tensor
// data. That is safe because no op here ever writes into its inputs or into
// a register's previous value (none implements UsePreallocDoer or
// UnsafeDoer, none overwrites its input), and the graph holds no Gorgonia
// op that would. Every op works in float32 and float64 (the element type of
// its inputs).
//
// Gorgonia stays the graph and autodiff engine. The trainer works around
// three of its behaviours, all here, in opBase:
//
//   - Op ids. Gorgonia merges nodes whose ops hash alike into one node
//     with one output buffer (common subexpressions). Two layers of the
//     same shape would then share an output. Each op instance takes a
//     number from opIDs and writes it into its hash (WriteHash), so no two
//     ever merge.
//   - The after hook. Gorgonia's VM runs the ops in an order of its own and
//     offers no call between them. The trainer updates each Linear weight
//     as soon as the last op that reads it has run, while the weight is in
//     cache (graph.hookDeferred); an op runs opBase.after at the end of
//     each of its runs for that.
//   - Owned outputs. Gorgonia would allocate a new output tensor at every
//     run unless an op reuses one; each op here allocates its output once
//     and writes into it at every run (see above).

import (
	"fmt"
	"hash"
	"hash/fnv"
	"math"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/latent-ai/latent/trainer/internal/kernels"
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
	outData  any            // out.Data(), which allocates at every call
	outF32   G.F32          // owned scalar output
	outF64   G.F64
	// after, if set, runs at the end of every run of the op, once its
	// output is written: the weight updates that wait for it (see
	// graph.hookDeferred).
	after func()
	// in holds the backing slices of the inputs of the current run. The
	// inputs are other ops' outputs, parameters or the graph's input, whose
	// memory stays put from run to run: in keeps them to spare Data()'s
	// allocation.
	in [6]struct {
		ptr  uintptr
		size int
		data any
	}
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

func (o *opBase) ownBase() *opBase { return o }

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
		return tensor.Dtype{}, fmt.Errorf("%s: %d inputs, want %d", o.name, len(in), len(o.inShapes))
	}
	dt := in[0].Dtype()
	for i, v := range in {
		if v.Dtype() != dt {
			return tensor.Dtype{}, fmt.Errorf("%s: input %d is %v, input 0 %v", o.name, i, v.Dtype(), dt)
		}
		if s := o.inShapes[i]; s != nil && v.Size() != s.TotalSize() {
			return tensor.Dtype{}, fmt.Errorf("%s: input %d has %d values, want %v", o.name, i, v.Size(), s)
		}
	}
	if dt != tensor.Float32 && dt != tensor.Float64 {
		return tensor.Dtype{}, fmt.Errorf("%s: unsupported type %v", o.name, dt)
	}
	if len(in) > len(o.in) {
		return tensor.Dtype{}, fmt.Errorf("%s: %d inputs, at most %d supported", o.name, len(in), len(o.in))
	}
	for i, v := range in {
		c := &o.in[i]
		if c.data == nil || c.ptr != v.Uintptr() || c.size != v.Size() {
			c.ptr, c.size, c.data = v.Uintptr(), v.Size(), v.Data()
		}
	}
	return dt, nil
}

// output returns the op's own output tensor for element type dt.
func (o *opBase) output(dt tensor.Dtype) tensor.Tensor {
	if o.out == nil || o.out.Dtype() != dt {
		o.out = tensor.New(tensor.Of(dt), tensor.WithShape(o.shape.Clone()...))
		o.outData = o.out.Data()
	}
	return o.out
}

// scratch returns n values of the []T kept in *buf, replacing it by a new
// slice when it is not a []T of at least n values; ops keep such buffers
// from run to run.
func scratch[T float](buf *any, n int) []T {
	if s, ok := (*buf).([]T); ok && len(s) >= n {
		return s[:n]
	}
	s := make([]T, n)
	*buf = s
	return s
}

// args returns the backing slices of the tensor inputs of the current run
// (nil for a scalar), after check.
func args[T float](o *opBase) (a [6][]T) {
	for i := range o.inShapes {
		a[i], _ = o.in[i].data.([]T)
	}
	return a
}

// do is the Do of an op whose work is f32 or f64 (one generic function,
// instantiated): it checks the inputs, makes the output tensor the first
// time, and calls the function for its element type with the output's data
// and the inputs'.
func do[O any](o *opBase, in []G.Value, op O, f32 func(O, []float32, [6][]float32), f64 func(O, []float64, [6][]float64)) (G.Value, error) {
	defer o.timed()()
	dt, err := o.check(in)
	if err != nil {
		return nil, err
	}
	out := o.output(dt)
	switch y := o.outData.(type) {
	case []float32:
		f32(op, y, args[float32](o))
	case []float64:
		f64(op, y, args[float64](o))
	}
	if o.after != nil {
		done := o.timedAfter()
		o.after()
		done()
	}
	return out, nil
}

// opTimes, when a benchmark sets it (BenchmarkStepOps), adds up the wall
// time of every run of each op of this package, by op, and of the weight
// updates that run after an op (opBase.after) apart; nil otherwise, and
// then timing costs a nil check. It is not safe for concurrent steps.
var opTimes map[string]time.Duration

// timed starts timing a run of o, for opTimes; call what it returns at
// the end of the run.
func (o *opBase) timed() func() {
	if opTimes == nil {
		return func() {}
	}
	t0 := time.Now()
	return func() { opTimes[o.timeKey()] += time.Since(t0) }
}

// timedAfter is timed for o's weight updates, which the time of o's run
// leaves out.
func (o *opBase) timedAfter() func() {
	if opTimes == nil {
		return func() {}
	}
	t0 := time.Now()
	return func() {
		d := time.Since(t0)
		opTimes["weight updates after "+o.timeKey()] += d
		opTimes[o.timeKey()] -= d
	}
}

// timedFinish is workPool.finish(left), timed for opTimes as the deferred
// weight updates still queued when the run ends.
func timedFinish(left *atomic.Int32) {
	if opTimes == nil {
		workPool.finish(left)
		return
	}
	t0 := time.Now()
	workPool.finish(left)
	opTimes["weight updates left at the run's end"] += time.Since(t0)
}

func (o *opBase) timeKey() string { return fmt.Sprintf("%s#%d %v", o.name, o.id, o.shape) }

// base returns the opBase of an op of this package, or nil.
func base(op G.Op) *opBase {
	if b, ok := op.(interface{ ownBase() *opBase }); ok {
		return b.ownBase()
	}
	return nil
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

// The element-wise loops below have no branches on the data: a CPU cannot
// predict the sign of an activation, and a mispredicted branch per value
// costs several times the arithmetic.

// activate applies a to v in place, on several goroutines when v is long.
func activate[T float](a activation, v []T) {
	if a == actNone {
		return
	}
	parallelFor(len(v), grain, func(lo, hi int) { activateSerial(a, v[lo:hi]) })
}

// activateSerial applies a to v in place. ReLU keeps NaN, as PyTorch's does.
func activateSerial[T float](a activation, v []T) { biasActivate(a, v, 0) }

// biasActivate sets v[i] = a(v[i] + b), in place.
func biasActivate[T float](a activation, v []T, b T) {
	switch a {
	case actNone:
		if b != 0 {
			for i, x := range v {
				v[i] = x + b
			}
		}
	case actReLU:
		if v32, ok := asFloat32(v); ok {
			kernels.BiasReLUScalar(v32, float32(b))
			return
		}
		for i, x := range v {
			x += b
			v[i] = keepIf(x, !(x <= 0))
		}
	case actSigmoid:
		if v32, ok := asFloat32(v); ok {
			kernels.BiasSigmoid(v32, float32(b))
			return
		}
		for i, x := range v {
			v[i] = sigmoid(x + b)
		}
	}
}

// sigmoid is 1/(1+e^-x): float32's through kernels.Sigmoid32, float64's with
// math.Exp.
func sigmoid[T float](x T) T {
	if unsafe.Sizeof(x) == 4 {
		return T(kernels.Sigmoid32(float32(x)))
	}
	return T(1 / (1 + math.Exp(-float64(x))))
}

// activationGrad sets dz = dy·a'(z) where y = a(z), from y and dy, on
// several goroutines when they are long.
func activationGrad[T float](a activation, dz, y, dy []T) {
	parallelFor(len(dz), grain, func(lo, hi int) { activationGradSerial(a, dz[lo:hi], y[lo:hi], dy[lo:hi]) })
}

// activationGradSerial sets dz = dy·a'(z) where y = a(z). ReLU's passes dy
// where y > 0 (or NaN) and 0 elsewhere, as PyTorch's threshold_backward.
func activationGradSerial[T float](a activation, dz, y, dy []T) {
	dy, y = dy[:len(dz)], y[:len(dz)]
	switch a {
	case actNone:
		copy(dz, dy)
	case actReLU:
		for i, v := range y {
			dz[i] = keepIf(dy[i], !(v <= 0))
		}
	case actSigmoid:
		for i, v := range y {
			dz[i] = kernels.SigmoidGrad(dy[i], v)
		}
	}
}

// keepIf returns v if keep, else 0, without a branch (and 0 even where v is
// NaN or infinite).
func keepIf[T float](v T, keep bool) T {
	if unsafe.Sizeof(v) == 4 {
		b := *(*uint32)(unsafe.Pointer(&v)) & -uint32(b2i(keep))
		return *(*T)(unsafe.Pointer(&b))
	}
	b := *(*uint64)(unsafe.Pointer(&v)) & -uint64(b2i(keep))
	return *(*T)(unsafe.Pointer(&b))
}

// b2i is 1 for true and 0 for false; it compiles to a SETcc, not a branch.
func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
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
	return do(&op.opBase, in, op, actForward[float32], actForward[float64])
}

func actForward[T float](op *actOp, y []T, a [6][]T) {
	copy(y, a[0])
	activate(op.act, y)
}

func (op *actOp) DiffWRT(int) []bool { return unaryDiff(op.need) }

func (op *actOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	dx, err := applyActGrad(op.act, output, grad)
	return G.Nodes{dx}, err
}

// applyActGrad returns the node of dz = dy·a'(z) for y = a(z) and dy the
// gradient grad of y: grad itself without an activation, or for a ReLU
// whose gradient the max pooling that reads y has already applied (see
// maxPoolOp).
func applyActGrad(act activation, y, grad *G.Node) (*G.Node, error) {
	if act == actNone {
		return grad, nil
	}
	if pg, ok := grad.Op().(*maxPoolGradOp); ok && act == actReLU && pg.relu {
		return grad, nil
	}
	if mm, ok := grad.Op().(*matMulOp); ok && act == actReLU && mm.relu {
		return grad, nil
	}
	if act == actSigmoid {
		// y feeds the loss alone, or through reshapes (else its gradient
		// would be a sum): the loss's gradient op computes the sigmoid's
		// too, and grad is it or a view of it.
		g := grad
		for rs, ok := g.Op().(*reshapeOp); ok; rs, ok = g.Op().(*reshapeOp) {
			g = rs.x
		}
		if lg, ok := g.Op().(*mseGradOp); ok && !lg.bce {
			lg.sigmoid = true
			return grad, nil
		}
	}
	if rs, ok := grad.Op().(*reshapeOp); ok && act == actReLU {
		if gx, ok := rs.x.Op().(*convTGradXOp); ok && gx.relu {
			return grad, nil // a view of gx's output, which passed the ReLU's gradient
		}
	}
	return G.ApplyOp(newActGradOp(act, y, grad), y, grad)
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
	return do(&op.opBase, in, op, actBackward[float32], actBackward[float64])
}

func actBackward[T float](op *actGradOp, dz []T, a [6][]T) { activationGrad(op.act, dz, a[0], a[1]) }

// reshapeOp gives its input another shape of the same size, as a view that
// shares the input's values (no op here writes into its inputs).
type reshapeOp struct {
	opBase
	need bool
	x    *G.Node // the input
}

func newReshapeOp(x *G.Node, shape tensor.Shape, need bool) (*reshapeOp, error) {
	if x.Shape().TotalSize() != shape.TotalSize() {
		return nil, fmt.Errorf("cannot reshape %v to %v", x.Shape(), shape)
	}
	return &reshapeOp{opBase: newBase(fmt.Sprintf("reshape%v", shape), shape.Clone(), x), need: need, x: x}, nil
}

func (op *reshapeOp) Do(in ...G.Value) (G.Value, error) {
	defer op.timed()()
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
//
// With bce, the loss is instead the binary cross-entropy summed over each
// image's values and averaged over the images (the standard VAE's
// reconstruction term):
//
//	−Σ [x·log y + (1 − x)·log(1 − y)] / images
//
// with each log clamped at −100, as PyTorch's binary_cross_entropy does.
type mseOp struct {
	opBase
	bce    bool
	images int
}

func newMSEOp(y, x *G.Node) *mseOp { return &mseOp{opBase: newBase("mse", nil, y, x)} }

// newBCEOp returns the binary cross-entropy loss of mseOp's doc.
func newBCEOp(y, x *G.Node) *mseOp {
	return &mseOp{opBase: newBase("bce", nil, y, x), bce: true, images: y.Shape()[0]}
}

// crossEntropy is the bce loss of mseOp, summed in float64.
func crossEntropy[T float](y, x []T, images int) float64 {
	var sum float64
	for i, v := range y {
		t := float64(x[i])
		sum -= t*max(math.Log(float64(v)), -100) + (1-t)*max(math.Log(1-float64(v)), -100)
	}
	return sum / float64(images)
}

func (op *mseOp) Do(in ...G.Value) (G.Value, error) {
	defer op.timed()()
	dt, err := op.check(in)
	if err != nil {
		return nil, err
	}
	if dt == tensor.Float32 {
		a := args[float32](&op.opBase)
		if op.bce {
			op.outF32 = G.F32(crossEntropy(a[0], a[1], op.images))
		} else {
			op.outF32 = G.F32(meanSquaredError(a[0], a[1]))
		}
		return &op.outF32, nil
	}
	a := args[float64](&op.opBase)
	if op.bce {
		op.outF64 = G.F64(crossEntropy(a[0], a[1], op.images))
	} else {
		op.outF64 = G.F64(meanSquaredError(a[0], a[1]))
	}
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
	dy, err := G.ApplyOp(&mseGradOp{opBase: newBase(op.name+"-grad", y.Shape().Clone(), y, x, grad), bce: op.bce, images: op.images}, y, x, grad)
	return G.Nodes{dy, nil}, err
}

// mseGradOp computes dy = g·2(y - x)/N from y, x and the loss's gradient g,
// or with bce dy = g·(y − x)/max(y·(1 − y), 1e-12)/images, PyTorch's
// gradient of binary_cross_entropy.
// It is the first op of the backward pass, which every other depends on:
// finite says whether the run's output, and so its loss, is finite, before
// any gradient is computed from it.
//
// With sigmoid, y is a sigmoid's output whose gradient the op passes on
// too: it computes dz = SigmoidGrad(dy, y), in the same pass, with the
// same bits as actGradOp after it (see applyActGrad).
type mseGradOp struct {
	opBase
	finite  bool
	bce     bool
	sigmoid bool
	images  int
}

func (op *mseGradOp) Do(in ...G.Value) (G.Value, error) {
	defer op.timed()()
	dt, err := op.check(in)
	if err != nil {
		return nil, err
	}
	g := scalar(in[2])
	out := op.output(dt)
	switch dy := op.outData.(type) {
	case []float32:
		a := args[float32](&op.opBase)
		op.finite = lossGrad(op, dy, a[0], a[1], g)
	case []float64:
		a := args[float64](&op.opBase)
		op.finite = lossGrad(op, dy, a[0], a[1], g)
	}
	if op.after != nil {
		op.after()
	}
	return out, nil
}

func lossGrad[T float](op *mseGradOp, dy, y, x []T, g float64) bool {
	if op.bce {
		return bceGrad(dy, y, x, g/float64(op.images))
	}
	return mseGrad(dy, y, x, g, op.sigmoid)
}

// bceGrad sets dy = k·(y − x)/max(y·(1 − y), 1e-12) and reports whether
// every y − x is finite.
func bceGrad[T float](dy, y, x []T, k float64) bool {
	var bad atomic.Bool
	parallelFor(len(dy), grain, func(lo, hi int) {
		var sum T
		for i, v := range y[lo:hi] {
			d := v - x[lo+i]
			sum += d - d
			dy[lo+i] = T(k * float64(d) / max(float64(v)*(1-float64(v)), 1e-12))
		}
		if sum != 0 {
			bad.Store(true)
		}
	})
	return !bad.Load()
}

// mseGrad sets dy = k·(y − x), with k = 2g/N, and reports whether every
// y − x is finite. With sigmoid, y is a sigmoid's output and it sets its
// input's gradient instead, SigmoidGrad(k·(y − x), y), in the same pass
// (kernels.MSESigmoidGrad).
func mseGrad[T float](dy, y, x []T, g float64, sigmoid bool) bool {
	k := T(2 * g / float64(len(y)))
	var bad atomic.Bool
	parallelFor(len(dy), grain, func(lo, hi int) {
		var ok bool
		switch dy32, is32 := asFloat32(dy[lo:hi]); {
		case sigmoid && is32:
			y32, _ := asFloat32(y[lo:hi])
			x32, _ := asFloat32(x[lo:hi])
			ok = kernels.MSESigmoidGrad(dy32, y32, x32, float32(k))
		case sigmoid:
			ok = kernels.MSESigmoidGradGo(dy[lo:hi], y[lo:hi], x[lo:hi], k)
		default:
			var sum T // NaN or ±Inf once any difference is
			for i, v := range y[lo:hi] {
				d := v - x[lo+i]
				sum += d - d
				dy[lo+i] = k * d
			}
			ok = sum == 0
		}
		if !ok {
			bad.Store(true)
		}
	})
	return !bad.Load()
}
