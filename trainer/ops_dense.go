package trainer

import (
	"fmt"
	"sync/atomic"
	"unsafe"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/latent-ai/latent/trainer/internal/kernels"
)

// linearOp is a Linear layer with its activation: y = a(x·W + b), x [n, in],
// W [in, out] (the trainer's layout), b [out]. Its backward pass is
//
//	dz = dy·a'(z)   (actGradOp; see applyActGrad)
//	dx = dz·Wᵀ      (matMulOp, only where x needs a gradient)
//	dW = xᵀ·dz      (matMulOp)
//	db = Σ_rows dz  (biasGradOp)
//
// With deferW, the graph leaves dW out: SymDiff keeps dz (in op.dz) and dx
// (in op.dx), and deferredLinear computes dW and updates W once dx is done.
type linearOp struct {
	opBase
	n, in, out int
	act        activation
	needX      bool
	deferW     bool
	dz         *G.Node // the gradient at the activation's input, once SymDiff ran
	dx         *G.Node // the gradient of x, once SymDiff ran; nil without needX
}

func newLinearOp(x, w, b *G.Node, act activation, needX bool) (*linearOp, error) {
	xs, ws := x.Shape(), w.Shape()
	if xs.Dims() != 2 || ws.Dims() != 2 || xs[1] != ws[0] || b.Shape().TotalSize() != ws[1] {
		return nil, fmt.Errorf("linear: x %v, W %v, b %v", xs, ws, b.Shape())
	}
	n, in, out := xs[0], ws[0], ws[1]
	return &linearOp{opBase: newBase(withAct("linear", act), tensor.Shape{n, out}, x, w, b), n: n, in: in, out: out, act: act, needX: needX}, nil
}

func (op *linearOp) Do(in ...G.Value) (G.Value, error) {
	return do(&op.opBase, in, op, linearForward[float32], linearForward[float64])
}

func linearForward[T float](op *linearOp, y []T, a [6][]T) {
	x, w, b := a[0], a[1], a[2]
	// The bias and the activation go on each block of y as soon as gemm
	// computed it, while it is in that core's cache.
	gemmThen(false, false, op.n, op.out, op.in, x, op.in, w, op.out, 0, y, op.out, func(r0, r1, c0, c1 int) {
		bias := b[c0:c1]
		for i := r0; i < r1; i++ {
			row := y[i*op.out+c0 : i*op.out+c1]
			switch op.act {
			case actReLU:
				biasReLU(row, bias)
			case actSigmoid:
				for j, v := range row {
					row[j] = v + bias[j]
				}
				activateSerial(actSigmoid, row)
			default:
				for j, v := range row {
					row[j] = v + bias[j]
				}
			}
		}
	})
}

func (op *linearOp) DiffWRT(int) []bool { return []bool{op.needX, !op.deferW, true} }

func (op *linearOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	x, w := inputs[0], inputs[1]
	dz, err := applyActGrad(op.act, output, grad)
	if err != nil {
		return nil, err
	}
	op.dz = dz
	grads := make(G.Nodes, 3)
	if op.needX {
		if outputsReLU(x) {
			// dx = dz·Wᵀ and the gradient of the ReLU whose output x is, in
			// one op (and applyActGrad adds none).
			grads[0], err = applyInputGradReLU(dz, w, x)
		} else {
			grads[0], err = applyMatMul(dz, w, false, true, nil)
		}
		if err != nil {
			return nil, err
		}
		op.dx = grads[0]
	}
	if !op.deferW {
		if grads[1], err = applyMatMul(x, dz, true, false, nil); err != nil {
			return nil, err
		}
	}
	db := newBiasGradOp(dz, op.n, op.out, 1)
	if mm, ok := dz.Op().(*matMulOp); ok && mm.relu && mm.n >= mm.m {
		// dz comes from the next layer's input gradient, in whole columns:
		// that op adds them up too, while they are in cache.
		mm.colSums = true
		db.from = mm
	}
	if grads[2], err = G.ApplyOp(db, dz); err != nil {
		return nil, err
	}
	return grads, nil
}

// matMulOp is C = op(A)·op(B) for matrices stored row-major, where op
// transposes where asked. With relu, it has a third input y, the output of
// a ReLU, of C's shape, and it passes the gradient of that ReLU on: C is
// zeroed where y <= 0 (y NaN keeps it, as actGradOp does), each block as
// soon as gemm computed it.
type matMulOp struct {
	opBase
	transA, transB bool
	m, n, k        int
	lda, ldb       int
	relu           bool
	// colSums has the op also add up each column of C, as biasGradOp would,
	// into sums, for the biasGradOp that takes them (biasGradOp.from).
	colSums bool
	sums    any // []T, n values
}

// applyMatMul adds the node op(a)·op(b), where a and b may have any shape
// whose first dimension is the matrix's rows and the rest its columns. The
// result has shape, or [rows, columns] if shape is nil.
func applyMatMul(a, b *G.Node, transA, transB bool, shape tensor.Shape) (*G.Node, error) {
	ar, ac := rowsCols(a.Shape())
	br, bc := rowsCols(b.Shape())
	m, k, k2, n := ar, ac, br, bc
	if transA {
		m, k = ac, ar
	}
	if transB {
		k2, n = bc, br
	}
	if k != k2 {
		return nil, fmt.Errorf("matmul: %v and %v (transposed %v, %v) do not match", a.Shape(), b.Shape(), transA, transB)
	}
	if shape == nil {
		shape = tensor.Shape{m, n}
	} else if shape.TotalSize() != m*n {
		return nil, fmt.Errorf("matmul: result shape %v for %d×%d", shape, m, n)
	}
	op := &matMulOp{opBase: newBase(fmt.Sprintf("matmul(%v,%v)", transA, transB), shape.Clone(), a, b),
		transA: transA, transB: transB, m: m, n: n, k: k, lda: ac, ldb: bc}
	return G.ApplyOp(op, a, b)
}

func rowsCols(s tensor.Shape) (int, int) { return s[0], s.TotalSize() / s[0] }

func (op *matMulOp) Do(in ...G.Value) (G.Value, error) {
	return do(&op.opBase, in, op, matMul[float32], matMul[float64])
}

// applyInputGradReLU adds the node of a Linear layer's input gradient
// dz·Wᵀ, fused with the gradient of the ReLU whose output its input x is.
func applyInputGradReLU(dz, w, x *G.Node) (*G.Node, error) {
	n, out := rowsCols(dz.Shape())
	in, out2 := rowsCols(w.Shape())
	if out != out2 || x.Shape().TotalSize() != n*in {
		return nil, fmt.Errorf("linear input gradient: dz %v, W %v, x %v do not match", dz.Shape(), w.Shape(), x.Shape())
	}
	op := &matMulOp{opBase: newBase("matmul(false,true)+relu-grad", x.Shape().Clone(), dz, w, x),
		transB: true, m: n, n: in, k: out, lda: out, ldb: out, relu: true}
	return G.ApplyOp(op, dz, w, x)
}

func matMul[T float](op *matMulOp, c []T, a [6][]T) {
	var then func(r0, r1, c0, c1 int)
	if op.relu {
		y, ldc := a[2], op.n
		var sums []T
		if op.colSums {
			sums = scratch[T](&op.sums, op.n)
		}
		then = func(r0, r1, c0, c1 int) {
			for r := r0; r < r1; r++ {
				reluGrad(c[r*ldc+c0:r*ldc+c1], y[r*ldc+c0:r*ldc+c1], c[r*ldc+c0:r*ldc+c1])
			}
			if sums != nil { // whole columns: r0 = 0, r1 = m
				// biasGrad's sums, in its order: row by row from zero.
				s := sums[c0:c1]
				clear(s)
				addRows(s, c[r0*ldc+c0:], r1-r0, ldc)
			}
		}
	}
	gemmThen(op.transA, op.transB, op.m, op.n, op.k, a[0], op.lda, a[1], op.ldb, 0, c, op.n, then)
}

// biasGradOp sums a gradient over everything but the channel: with the
// gradient viewed as [outer, channels, inner], db[c] = Σ_o Σ_i dz[o, c, i].
// A Linear layer's gradient [n, out] is outer n, inner 1; a convolution's
// [channels·f·f, n·h·w] is outer 1, inner f·f·n·h·w.
type biasGradOp struct {
	opBase
	outer, channels, inner int
	from                   biasSummer // if set, the op that added up dz already
}

// biasSummer is an op that adds up a bias gradient as it runs, for the
// biasGradOp that takes its sums ([]T, one a channel).
type biasSummer interface{ biasSums() any }

func (op *matMulOp) biasSums() any { return op.sums }

func newBiasGradOp(dz *G.Node, outer, channels, inner int) *biasGradOp {
	if outer*channels*inner != dz.Shape().TotalSize() {
		panic(fmt.Sprintf("bias gradient: %d×%d×%d is not the size of %v", outer, channels, inner, dz.Shape()))
	}
	return &biasGradOp{opBase: newBase("bias-grad", tensor.Shape{channels}, dz), outer: outer, channels: channels, inner: inner}
}

func (op *biasGradOp) Do(in ...G.Value) (G.Value, error) {
	return do(&op.opBase, in, op, biasGrad[float32], biasGrad[float64])
}

func biasGrad[T float](op *biasGradOp, db []T, a [6][]T) {
	if op.from != nil {
		copy(db, op.from.biasSums().([]T))
		return
	}
	dz := a[0]
	c, inner := op.channels, op.inner
	// The goroutines share the channels; each adds up its own in order.
	parallelFor(c, max(1, grain/(op.outer*inner)), func(lo, hi int) {
		d := db[lo:hi]
		clear(d)
		if inner == 1 {
			// Each channel's column added row after row, 16 channels at a
			// time in C where the build has it.
			addRows(d, dz[lo:], op.outer, c)
			return
		}
		for o := 0; o < op.outer; o++ {
			block := dz[o*c*inner : (o+1)*c*inner]
			if d32, ok := any(d).([]float32); ok {
				kernels.ChannelSums(d32, any(block[lo*inner:hi*inner]).([]float32), inner)
				continue
			}
			kernels.ChannelSumsGo(d, block[lo*inner:hi*inner], inner)
		}
	})
}

// deferredLinear is a Linear layer whose weight gradient the graph leaves
// out (deferLinearWeights): step computes it, during the run
// (graph.hookDeferred) or after it, from the layer's input x [n, in] and the
// gradient dz [n, out] at its activation's input, and updates the weight
// with it at once.
type deferredLinear struct {
	param int            // the weight's index in Arch.Params()
	x     *G.Node        // the layer's input
	op    *linearOp      // the layer, whose dz the backward pass set
	bands scratchPool    // a band of dW for each goroutine of the pool
	u     weightUpdate   // this run's update (update), which tasks read
	tasks []func(wk int) // stepLater's, one a band of u, made once
	// inRun is whether the graph runs step itself, at the end of the last
	// op that needs the weight's old value or computes dz (hookDeferred).
	inRun bool
}

// linearBand is the size in bytes of the band of dW rows that step computes
// at a time where it has no fused kernel: small enough to stay in a core's
// L2 cache until Adam reads it.
const linearBand = 128 << 10

// step computes the weight's gradient dW = xᵀ·dz and applies Adam's step s
// to it as it goes, where the graph's matMulOp would write all of dW out to
// memory for Adam to read back. Its rows are shared among the pool's
// goroutines. Each goroutine runs the fused kernel of the openblas build
// (kernels.LinearWeightStep: dW in registers) or, without one, computes its rows a
// band at a time with gemm and updates each band while it is in cache.
// Either way the update is the same as Adam.Update's with the graph's
// gradient, to the bit (TestDeferredLinearSameSteps). w is the weight,
// [in, out].
func (d *deferredLinear) step(a *Adam, s kernels.AdamStep, w []float32) {
	u := d.update(a, s, w)
	parallelParts(d.op.in, u.parts, func(wk, lo, hi int) {
		for r0 := lo; r0 < hi; r0 += u.rows {
			u.rowsOf(wk, r0, min(r0+u.rows, hi))
		}
	})
}

// stepLater is step queued on workPool's backlog, a band of rows a task,
// for the pool's goroutines to run when they have nothing else to do: the
// rest of the backward pass reads neither the weight nor its moments, and
// x and dz stay as they are until the next run. The bands are step's, so
// the result is step's to the bit. left counts the tasks until they end
// (pool.later); the run's caller waits for it before it reads the weight
// or runs the graph again.
func (d *deferredLinear) stepLater(a *Adam, s kernels.AdamStep, w []float32, left *atomic.Int32) {
	u := d.update(a, s, w)
	if d.tasks == nil {
		// The bands depend on the layer's shape and workPool.size() alone, and
		// each task reads this run's update from d.u.
		for p := 0; p < u.parts; p++ {
			lo, hi := p*d.op.in/u.parts, (p+1)*d.op.in/u.parts
			for r0 := lo; r0 < hi; r0 += u.rows {
				r1 := min(r0+u.rows, hi)
				d.tasks = append(d.tasks, func(wk int) { d.u.rowsOf(wk, r0, r1) })
			}
		}
	}
	workPool.later(left, d.tasks...)
}

// weightUpdate is one step's update of a deferred layer's weight, a band of
// rows at a time.
type weightUpdate struct {
	d           *deferredLinear
	a           *Adam
	s           kernels.AdamStep
	w, x, dz    []float32
	parts, rows int
}

func (d *deferredLinear) update(a *Adam, s kernels.AdamStep, w []float32) *weightUpdate {
	x := d.x.Value().Data().([]float32)
	// Within a run, the op that computes dz may not have handed its output
	// to its node yet; the output is the op's own buffer either way.
	var dz []float32
	if ob := base(d.op.dz.Op()); ob != nil && ob.outData != nil {
		dz = ob.outData.([]float32)
	} else {
		dz = d.op.dz.Value().Data().([]float32)
	}
	in, out := d.op.in, d.op.out
	parts := workers(in*out, 1<<15)
	d.bands.grow(max(parts, workPool.size()))
	d.u = weightUpdate{d: d, a: a, s: a.stepOf(s, d.param), w: w, x: x, dz: dz,
		parts: parts, rows: max(1, linearBand/4/out)}
	return &d.u
}

// rowsOf updates rows [r0, r1) of the weight on goroutine wk of
// parallelParts (whose scratch band it uses).
func (u *weightUpdate) rowsOf(wk, r0, r1 int) {
	d, a := u.d, u.a
	n, in, out := d.op.n, d.op.in, d.op.out
	if fusedKernel && kernels.LinearWeightStep(u.x, u.dz, n, in, out, r0, r1, u.w, a.M[d.param], a.V[d.param], u.s) {
		return
	}
	g := poolScratch[float32](d.bands, wk, (r1-r0)*out)
	gemmCall(true, false, r1-r0, out, n, u.x[r0:], in, u.dz, out, 0, g, out)
	a.update(u.s, d.param, u.w[r0*out:r1*out], g, r0*out)
}

// asFloat32 is v as a []float32 where T is float32.
func asFloat32[T float](v []T) ([]float32, bool) {
	var z T
	if unsafe.Sizeof(z) != 4 || len(v) == 0 {
		return nil, false
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(&v[0])), len(v)), true
}

// biasReLU sets v[j] = max(v[j]+b[j], 0), in C where the build has it
// (kernels.BiasReLU).
func biasReLU[T float](v, b []T) {
	if v32, ok := asFloat32(v); ok {
		b32, _ := asFloat32(b[:len(v)])
		kernels.BiasReLU(v32, b32)
		return
	}
	kernels.BiasReLUGo(v, b)
}

// reluGrad sets dz[j] = dy[j] where y[j] > 0 or is NaN, else 0, in C where
// the build has it (kernels.ReLUGrad).
func reluGrad[T float](dz, y, dy []T) {
	if dz32, ok := asFloat32(dz); ok {
		y32, _ := asFloat32(y[:len(dz)])
		dy32, _ := asFloat32(dy[:len(dz)])
		kernels.ReLUGrad(dz32, y32, dy32)
		return
	}
	activationGradSerial(actReLU, dz, y, dy)
}

// addRows adds rows rows of v, len(s) values each and ld apart, to s, a row
// at a time, in C where the build has it (kernels.AddRows).
func addRows[T float](s, v []T, rows, ld int) {
	if s32, ok := asFloat32(s); ok && rows > 0 {
		v32, _ := asFloat32(v[:(rows-1)*ld+len(s)])
		kernels.AddRows(s32, v32, rows, ld)
		return
	}
	kernels.AddRowsGo(s, v, rows, ld)
}
