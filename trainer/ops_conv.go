package trainer

import (
	"fmt"
	"math"

	"github.com/latent-ai/latent/trainer/internal/kernels"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// The convolutions work one sample at a time, so that what a sample needs
// (its im2col columns, its products) stays in the CPU's caches, and the
// samples are shared among goroutines. For sample s, with K = Cin·k·k:
//
//	Conv2d           cols_s = im2col(x_s)                      [K, oh·ow]
//	                 y_s    = a(W·cols_s + b)                  W [C, K]
//	  backward       dZ_s   = dy_s·a'(…)     (actGradOp, or the max pooling's gradient)
//	                 dW     = Σ_s dZ_s·cols_sᵀ                  (convGradWOp)
//	                 dx_s   = col2im(Wᵀ·dZ_s)                   (convGradXOp)
//	                 db     = Σ dZ                              (biasGradOp)
//
//	                 A 3×3 "same" convolution in float32 on a CPU with
//	                 AVX-512, or AVX2 and FMA, skips the columns: y_s and
//	                 dx_s come from kernels.Conv3x3, a direct convolution
//	                 (conv3x3). Followed by a ReLU and a 2×2 max pooling,
//	                 it takes its gradients from the pooling's, without
//	                 dZ: the first layer's (one input channel) with
//	                 kernels.Conv3x3PoolGrad, a later one's (channels a
//	                 multiple of 16) with kernels.Conv3x3PoolGradW and
//	                 Conv3x3PoolGradX, from the places that get one.
//
//	ConvTranspose2d  (kernel k = stride, no padding: output patches do not
//	                 overlap) with x_s [Cin, h·w] and W [Cin, C·k·k]:
//	                 Y_s = Wᵀ·x_s                               [C·k·k, h·w]
//	                 y[s, c, k·i+p, k·j+q] = a(Y_s[(c·k+p)·k+q, i·w+j] + b[c])
//	  backward       dZ_s   = the same gather of dy_s·a'(…)     (convTGradZOp)
//	                 dW     = Σ_s x_s·dZ_sᵀ                     (convTGradWOp)
//	                 dx_s   = W·dZ_s                            (convTGradXOp)
//	                 db     = Σ dZ                              (biasGradOp)

// convGeom is the geometry of a convolution or pooling window: input
// [n, c, h, w], a k×k window with stride and zero padding, output oh×ow.
type convGeom struct {
	n, c, h, w, k, stride, pad, oh, ow int
}

func newConvGeom(x tensor.Shape, k, stride, pad int) (convGeom, error) {
	if x.Dims() != 4 {
		return convGeom{}, fmt.Errorf("input %v, want [n c h w]", x)
	}
	g := convGeom{n: x[0], c: x[1], h: x[2], w: x[3], k: k, stride: stride, pad: pad}
	if k < 1 || stride < 1 || pad < 0 || g.h+2*pad < k || g.w+2*pad < k {
		return convGeom{}, fmt.Errorf("kernel %d stride %d padding %d on %v", k, stride, pad, x)
	}
	g.oh = (g.h+2*pad-k)/stride + 1
	g.ow = (g.w+2*pad-k)/stride + 1
	return g, nil
}

func (g convGeom) K() int   { return g.c * g.k * g.k } // rows of a sample's columns
func (g convGeom) ohw() int { return g.oh * g.ow }
func (g convGeom) chw() int { return g.c * g.h * g.w }

// validRange returns the output positions [lo, hi) whose input position
// o·stride - pad + i lies in [0, size), clipped to [0, outSize).
func validRange(i, size, outSize, stride, pad int) (lo, hi int) {
	if pad-i > 0 {
		lo = (pad - i + stride - 1) / stride
	}
	if top := size - 1 + pad - i; top >= 0 {
		hi = min(outSize, top/stride+1)
	}
	lo = min(lo, outSize)
	return lo, max(lo, hi)
}

// im2col writes rows [r0, r1) of the columns of one sample x [c, h, w]
// into dst [r1-r0, oh·ow]:
// cols[(ch·k+i)·k+j, oy·ow+ox] = x[ch, oy·stride-pad+i, ox·stride-pad+j],
// and 0 outside x.
func im2col[T float](g convGeom, dst, x []T, r0, r1 int) {
	if g.stride == 1 && g.oh == g.h && g.ow == g.w {
		if d32, ok := any(dst).([]float32); ok && kernels.Im2ColSame(d32, any(x).([]float32), g.c, g.h, g.w, g.k, g.pad, r0, r1) {
			return
		}
	}
	ohw, hw := g.ohw(), g.h*g.w
	for r := r0; r < r1; r++ {
		ch, i, j := r/(g.k*g.k), r/g.k%g.k, r%g.k
		ylo, yhi := validRange(i, g.h, g.oh, g.stride, g.pad)
		xlo, xhi := validRange(j, g.w, g.ow, g.stride, g.pad)
		src := x[ch*hw : (ch+1)*hw]
		d := dst[(r-r0)*ohw : (r-r0+1)*ohw]
		clear(d[:ylo*g.ow])
		clear(d[yhi*g.ow:])
		if g.stride == 1 && g.ow == g.w {
			// A "same" convolution: the valid rows are src shifted by a
			// constant, but for the columns that wrap round.
			if start, end := ylo*g.ow+xlo, (yhi-1)*g.ow+xhi; start < end {
				copy(d[start:end], src[start+(i-g.pad)*g.w+j-g.pad:])
			}
			if xlo > 0 || xhi < g.ow {
				for oy := ylo; oy < yhi; oy++ {
					row := d[oy*g.ow : (oy+1)*g.ow]
					for x := 0; x < xlo; x++ {
						row[x] = 0
					}
					for x := xhi; x < len(row); x++ {
						row[x] = 0
					}
				}
			}
			continue
		}
		for oy := ylo; oy < yhi; oy++ {
			row := d[oy*g.ow : (oy+1)*g.ow]
			clear(row[:xlo])
			clear(row[xhi:])
			in := src[(oy*g.stride-g.pad+i)*g.w : (oy*g.stride-g.pad+i+1)*g.w]
			for ox := xlo; ox < xhi; ox++ {
				row[ox] = in[ox*g.stride-g.pad+j]
			}
		}
	}
}

// col2im sets dx [c, h, w] of one sample to the sum of its columns' values
// cols [K, oh·ow] at the positions they came from, adding the kernel
// positions in order.
func col2im[T float](g convGeom, dx, cols []T) {
	if g.stride == 1 {
		if dx32, ok := any(dx).([]float32); ok {
			kernels.Col2Im1(dx32, any(cols).([]float32), g.c, g.k, g.h, g.w, g.oh, g.ow, g.pad)
		} else {
			kernels.Col2Im1Go(dx, cols, g.c, g.k, g.h, g.w, g.oh, g.ow, g.pad)
		}
		return
	}
	ohw, hw := g.ohw(), g.h*g.w
	clear(dx)
	for r := 0; r < g.K(); r++ {
		ch, i, j := r/(g.k*g.k), r/g.k%g.k, r%g.k
		ylo, yhi := validRange(i, g.h, g.oh, g.stride, g.pad)
		xlo, xhi := validRange(j, g.w, g.ow, g.stride, g.pad)
		src := cols[r*ohw : (r+1)*ohw]
		dst := dx[ch*hw : (ch+1)*hw]
		for oy := ylo; oy < yhi; oy++ {
			in := src[oy*g.ow+xlo : oy*g.ow+xhi]
			iy := oy*g.stride - g.pad + i
			out := dst[iy*g.w : (iy+1)*g.w]
			if g.stride == 1 {
				out = out[xlo-g.pad+j:]
				out = out[:len(in)]
				for t, v := range in {
					out[t] += v
				}
				continue
			}
			for t, v := range in {
				out[(xlo+t)*g.stride-g.pad+j] += v
			}
		}
	}
}

// convOp is a Conv2d layer with its activation, x [n, Cin, h, w], W [C, Cin,
// k, k], b [C].
type convOp struct {
	opBase
	g     convGeom
	C     int
	act   activation
	needX bool
	cols  scratchPool
	// kept holds the columns of the last forward run's samples, [n, K,
	// oh·ow] as im2col writes them, for convGradWOp where keep (set by
	// SymDiff). keptValid says they are the current run's: the forward
	// sets it, the weight gradient clears it.
	kept      any
	keep      bool
	keptValid bool
	// pool, when set, is the 2×2 max pooling (stride 2) that takes this
	// op's output: the forward pass pools each sample as soon as it is
	// computed, while it is in cache, and the pooling's own run then
	// has nothing left to do.
	pool *maxPoolOp
	// poolOnly says that nothing reads the output, only the pooling's
	// (convPoolGradOp takes the gradients from the pooling's): where the
	// kernel pools in registers, it writes no output.
	poolOnly bool
}

func newConvOp(x, w, b *G.Node, k, stride, pad int, act activation, needX bool) (*convOp, error) {
	g, err := newConvGeom(x.Shape(), k, stride, pad)
	if err != nil {
		return nil, err
	}
	ws := w.Shape()
	if ws.Dims() != 4 || ws[1] != g.c || ws[2] != k || ws[3] != k || b.Shape().TotalSize() != ws[0] {
		return nil, fmt.Errorf("conv: x %v, W %v, b %v", x.Shape(), ws, b.Shape())
	}
	C := ws[0]
	return &convOp{opBase: newBase(withAct("conv", act), tensor.Shape{g.n, C, g.oh, g.ow}, x, w, b),
		g: g, C: C, act: act, needX: needX}, nil
}

func withAct(name string, act activation) string {
	if act == actNone {
		return name
	}
	return name + "+" + act.String()
}

func (op *convOp) Do(in ...G.Value) (G.Value, error) {
	return do(&op.opBase, in, op, convForward[float32], convForward[float64])
}

func convForward[T float](op *convOp, y []T, a [6][]T) {
	x, w, b := a[0], a[1], a[2]
	g, C := op.g, op.C
	K, ohw := g.K(), g.ohw()
	parts := gemmWorkers(g.n, 1)
	op.cols.grow(parts)
	var kept []T
	if op.keep {
		kept = scratch[T](&op.kept, g.n*K*ohw)
	}
	var pooled []T
	var where []uint8
	pool, pohw := op.pool, 0
	if pool != nil {
		dt := tensor.Float64
		if _, ok := any(y).([]float32); ok {
			dt = tensor.Float32
		}
		pool.output(dt)
		pooled, where, pohw = pool.outData.([]T), pool.whereBuf(), pool.g.oh*pool.g.ow
	}
	parallelParts(g.n, parts, func(wk, lo, hi int) {
		if kept != nil {
			// Kept for the weight gradient.
			for s := lo; s < hi; s++ {
				im2col(g, kept[s*K*ohw:(s+1)*K*ohw], x[s*g.chw():(s+1)*g.chw()], 0, K)
			}
		}
		ys, xs := y[lo*C*ohw:hi*C*ohw], x[lo*g.chw():hi*g.chw()]
		var ps []T
		var wp []uint8
		if pooled != nil {
			ps = pooled[lo*C*pohw : hi*C*pohw]
			if where != nil {
				wp = where[lo*C*pohw : hi*C*pohw]
			}
			yk := ys
			if op.poolOnly {
				yk = nil // nothing reads y
			}
			if op.act == actReLU && conv3x3ReLUPool(g, yk, xs, w, b, C, hi-lo, ps, wp) {
				return
			}
		}
		direct := conv3x3(g, ys, xs, w, C, hi-lo)
		var cols []T // im2col's scratch, where nothing was kept
		for s := lo; s < hi; s++ {
			ys, xs := y[s*C*ohw:(s+1)*C*ohw], x[s*g.chw():(s+1)*g.chw()]
			if !direct {
				if kept != nil {
					cols = kept[s*K*ohw : (s+1)*K*ohw]
				} else {
					if cols == nil {
						cols = poolScratch[T](op.cols, wk, K*ohw)
					}
					im2col(g, cols, xs, 0, K)
				}
				gemmCall(false, false, C, ohw, K, w, K, cols, ohw, 0, ys, ohw)
			}
			for c, v := range b {
				biasActivate(op.act, ys[c*ohw:(c+1)*ohw], v)
			}
			if ps != nil {
				var wps []uint8
				if wp != nil {
					wps = wp[(s-lo)*C*pohw : (s-lo+1)*C*pohw]
				}
				maxPool2x2(pool.g, ps[(s-lo)*C*pohw:(s-lo+1)*C*pohw], ys, C, wps)
			}
		}
	})
	op.keptValid = kept != nil
	if pool != nil {
		pool.ready = true
	}
}

// directW reports whether kernels.Conv3x3GradW takes this layer's weight
// gradient in dtype dt: a 3×3 "same" convolution in float32, with output
// channels that the kernel takes and more than one input channel. (The
// goroutines share the input channels: on the first layer's one, the
// kernel would run on one core, at twice the time of the product of the
// columns that the forward pass keeps.) With OpenBLAS's SkylakeX kernels,
// the kernel's sums are the product's, bit for bit.
func (op *convOp) directW(dt tensor.Dtype) bool {
	g := op.g
	return dt == tensor.Float32 && g.k == 3 && g.stride == 1 && g.pad == 1 && g.c > 1 && kernels.Conv3x3GradWFits(op.C)
}

// conv3x3 sets y [n, C, oh, ow] to the convolutions of n samples x [n,
// Cin, h, w] by w [C, Cin, k, k], without bias, with kernels.Conv3x3, and
// reports whether it could: float32, a 3×3 kernel with stride 1 and
// padding 1, and what the kernel takes (AVX-512, or AVX2 and FMA; rows of
// at most 30 values, C a multiple of 8, or of 4 for rows over 14 values).
// It sums each value's terms in another order than the matrix product of
// the im2col columns does (over the input channels, then the kernel's rows
// and columns, one fused multiply-add a term), so its bits are its own,
// the same on every CPU that runs it.
func conv3x3[T float](g convGeom, y, x, w []T, C, n int) bool {
	y32, ok := any(y).([]float32)
	if !ok || g.k != 3 || g.stride != 1 || g.pad != 1 {
		return false
	}
	return kernels.Conv3x3(y32, any(x).([]float32), any(w).([]float32), n, g.c, C, g.h, g.w)
}

// conv3x3ReLUPool is conv3x3 with kernels.Conv3x3ReLUPool: the bias, the
// ReLU and the 2×2 pooling (into pooled [n, C, oh/2, ow/2] and where) done
// as each output row leaves the registers, the same values as biasActivate
// and maxPool2x2 after conv3x3. It reports whether it could (what conv3x3
// needs, and an even number of rows and columns).
func conv3x3ReLUPool[T float](g convGeom, y, x, w, b []T, C, n int, pooled []T, where []uint8) bool {
	y32, ok := any(y).([]float32)
	if !ok || g.k != 3 || g.stride != 1 || g.pad != 1 {
		return false
	}
	return kernels.Conv3x3ReLUPool(y32, any(x).([]float32), any(w).([]float32), any(b).([]float32), n, g.c, C, g.h, g.w,
		any(pooled).([]float32), where)
}

// transposeSamples sets dst [n, hw, C] to the n samples of dz [n, C, hw],
// each transposed: a convolution's output gradient with its channels last.
// The goroutines share the samples.
func transposeSamples[T float](dst, dz []T, n, C, hw int) {
	parallelFor(n, 1, func(lo, hi int) {
		for s := lo; s < hi; s++ {
			transpose(dst[s*C*hw:(s+1)*C*hw], dz[s*C*hw:(s+1)*C*hw], C, hw)
		}
	})
}

// transpose sets dst [cols, rows] to the transpose of src [rows, cols],
// both row-major.
func transpose[T float](dst, src []T, rows, cols int) {
	if d32, ok := any(dst).([]float32); ok {
		kernels.Transpose(d32, any(src).([]float32), rows, cols)
		return
	}
	kernels.TransposeGo(dst, src, rows, cols)
}

func (op *convOp) DiffWRT(int) []bool { return []bool{op.needX, true, true} }

func (op *convOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	x, w := inputs[0], inputs[1]
	dz, err := applyActGrad(op.act, output, grad)
	if err != nil {
		return nil, err
	}
	grads := make(G.Nodes, 3)
	if pg, ok := grad.Op().(*maxPoolGradOp); ok && (op.fusesPoolGrad(pg, x.Dtype()) || op.sparsePoolGrad(pg, x.Dtype())) {
		// The gradients from the pooling's, which the pooling's gradient op
		// then need not spread out into dz: the first layer's weight and
		// bias gradients, or a later layer's (the 16→32 one) three, from
		// the positions that get one, a quarter of them. The forward pass
		// writes no output but the pooled one.
		pg.skip, op.poolOnly = true, true
		if op.needX {
			gx := &convPoolGradXOp{opBase: newBase("conv+pool-grad-x", x.Shape().Clone(), w, pg.dy), conv: op}
			if grads[0], err = G.ApplyOp(gx, w, pg.dy); err != nil {
				return nil, err
			}
		}
		gw := &convPoolGradOp{opBase: newBase("conv+pool-grad-w", w.Shape().Clone(), x, pg.dy), conv: op}
		if grads[1], err = G.ApplyOp(gw, x, pg.dy); err != nil {
			return nil, err
		}
		db := newBiasGradOp(grads[1], 1, op.C, op.g.K())
		db.from = gw
		if grads[2], err = G.ApplyOp(db, grads[1]); err != nil {
			return nil, err
		}
		return grads, nil
	}
	if op.needX {
		gx := &convGradXOp{opBase: newBase("conv-grad-x", x.Shape().Clone(), w, dz), conv: op}
		if grads[0], err = G.ApplyOp(gx, w, dz); err != nil {
			return nil, err
		}
	}
	gw := &convGradWOp{opBase: newBase("conv-grad-w", w.Shape().Clone(), x, dz), conv: op}
	// The forward pass keeps its columns for the weight gradient where they
	// are few (K < C; see convGradWOp) and the direct kernel does not take
	// the gradient.
	op.keep = op.g.K() < op.C && !op.directW(x.Dtype())
	if grads[1], err = G.ApplyOp(gw, x, dz); err != nil {
		return nil, err
	}
	if grads[2], err = G.ApplyOp(newBiasGradOp(dz, op.g.n, op.C, op.g.ohw()), dz); err != nil {
		return nil, err
	}
	return grads, nil
}

// fusesPoolGrad reports whether convPoolGradOp takes this layer's weight
// and bias gradients from the gradient of the 2×2 pooling after it, pg
// (with the ReLU's between them), in dtype dt: a 3×3 "same" convolution
// of one input channel, in float32, on a CPU with AVX-512, or AVX2 and
// FMA, whose input gradient the graph does not need (the first layer).
func (op *convOp) fusesPoolGrad(pg *maxPoolGradOp, dt tensor.Dtype) bool {
	g := op.g
	return kernels.Conv3x3PoolGradFits() && dt == tensor.Float32 && pg.relu && op.act == actReLU && pg.pool == op.pool && op.pool.is2x2() &&
		!op.needX && g.c == 1 && g.k == 3 && g.stride == 1 && g.pad == 1 && g.h%2 == 0 && g.w%2 == 0
}

// sparsePoolGrad reports whether kernels.Conv3x3PoolGradW and
// Conv3x3PoolGradX take this layer's gradients from the gradient of the
// 2×2 pooling after it, pg (with the ReLU's between them), in dtype dt: a
// 3×3 "same" convolution of a multiple of 16 input channels, in float32,
// on a CPU with AVX-512, or AVX2 and FMA. Their values are those of the
// dense path, bit for
// bit, while the input and the weights are finite (TestConvSparsePoolGrad).
func (op *convOp) sparsePoolGrad(pg *maxPoolGradOp, dt tensor.Dtype) bool {
	g := op.g
	return kernels.Conv3x3PoolGradSparseFits(g.c, g.h, g.w) && dt == tensor.Float32 && pg.relu && op.act == actReLU &&
		pg.pool == op.pool && op.pool.is2x2() && g.k == 3 && g.stride == 1 && g.pad == 1
}

// convPoolGradOp is the weight gradient of a Conv2d that convOp.fusesPoolGrad
// or sparsePoolGrad takes, from x and the pooling's gradient dy. For the
// latter it is kernels.Conv3x3PoolGradW's, the goroutines sharing the
// output channels, with the bias gradient beside it. For the first layer
// it is kernels.Conv3x3PoolGrad's
// sums, the goroutines sharing the samples, added up over the samples in
// order. It sums the bias gradient too (biasGradOp.from). Each sample's
// dz is written only to the cache, not out to memory for the whole batch
// (3.2 MB at batch 64 for the conv model's first layer), and the forward
// pass writes no output (poolOnly). Its bias gradient is biasGrad's, bit
// for bit, and its weight gradient the sums of the product that convGradW
// runs with OpenBLAS's SkylakeX kernels (another BLAS rounds that product
// differently): TestConvPoolGrad.
type convPoolGradOp struct {
	opBase
	conv    *convOp
	part    any // []float32: [n, 10, C], the samples' sums
	sums    any // []float32: the bias gradient
	scratch scratchPool
}

func (op *convPoolGradOp) Do(in ...G.Value) (G.Value, error) {
	return do(&op.opBase, in, op, convPoolGrad, func(*convPoolGradOp, []float64, [6][]float64) {
		panic("trainer: conv+pool-grad-w runs in float32 only (convOp.fusesPoolGrad)")
	})
}

func (op *convPoolGradOp) biasSums() any { return op.sums }

func convPoolGrad(op *convPoolGradOp, dw []float32, a [6][]float32) {
	x, dy := a[0], a[1]
	g, C := op.conv.g, op.conv.C
	where := op.conv.pool.where
	if g.c > 1 {
		db := scratch[float32](&op.sums, C)
		// A quarter of the dense product's terms.
		parts := min(gemmWorkers(g.n*C*g.h*g.w*9*g.c/4, gemmGrain), C)
		op.scratch.grow(parts)
		parallelParts(C, parts, func(wk, lo, hi int) {
			sc := poolScratch[float32](op.scratch, wk, kernels.Conv3x3PoolGradWScratch(g.c, g.h, g.w, hi-lo))
			if !kernels.Conv3x3PoolGradW(dw, db, x, dy, where, g.n, g.c, C, g.h, g.w, lo, hi, sc) {
				panic("trainer: kernels.Conv3x3PoolGradW refused a convolution that it fits")
			}
		})
		return
	}
	part := scratch[float32](&op.part, g.n*10*C)
	parts := gemmWorkers(g.n*C*g.h*g.w*9, gemmGrain)
	op.scratch.grow(parts)
	parallelParts(g.n, parts, func(wk, lo, hi int) {
		sc := poolScratch[float32](op.scratch, wk, kernels.Conv3x3PoolGradScratch(C, g.h, g.w))
		if !kernels.Conv3x3PoolGrad(part[lo*10*C:hi*10*C], x, dy, where, true, lo, hi, C, g.h, g.w, sc) {
			panic("trainer: kernels.Conv3x3PoolGrad refused a convolution that it fits")
		}
	})
	kernels.Conv3x3PoolGradTotal(dw, scratch[float32](&op.sums, C), part, g.n, C)
}

// convPoolGradXOp is the input gradient of a Conv2d that
// convOp.sparsePoolGrad takes, from its weights and the pooling's gradient
// dy: kernels.Conv3x3PoolGradX's, the goroutines sharing the samples.
type convPoolGradXOp struct {
	opBase
	conv    *convOp
	scratch scratchPool
}

func (op *convPoolGradXOp) Do(in ...G.Value) (G.Value, error) {
	return do(&op.opBase, in, op, convPoolGradX, func(*convPoolGradXOp, []float64, [6][]float64) {
		panic("trainer: conv+pool-grad-x runs in float32 only (convOp.sparsePoolGrad)")
	})
}

func convPoolGradX(op *convPoolGradXOp, dx []float32, a [6][]float32) {
	w, dy := a[0], a[1]
	g, C := op.conv.g, op.conv.C
	where := op.conv.pool.where
	parts := gemmWorkers(g.n, 1)
	op.scratch.grow(parts)
	parallelParts(g.n, parts, func(wk, lo, hi int) {
		sc := poolScratch[float32](op.scratch, wk, kernels.Conv3x3PoolGradXScratch(g.c, C, g.h, g.w))
		if !kernels.Conv3x3PoolGradX(dx, w, dy, where, lo, hi, g.c, C, g.h, g.w, sc) {
			panic("trainer: kernels.Conv3x3PoolGradX refused a convolution that it fits")
		}
	})
}

// convGradWOp is a Conv2d's weight gradient, dW = Σ_s dZ_s·cols_sᵀ, from x
// and dZ. Where kernels.Conv3x3GradW takes the layer (convOp.directW), it
// computes it from x and dZ transposed, without columns, the goroutines
// sharing the input channels; each value adds up the samples' sums, sample
// after sample, whatever the split. Otherwise too each value is summed
// sample by sample, in order. Where there are
// fewer rows of columns than channels (K < C), the goroutines share the
// channels and read the columns that the forward pass kept. Where there
// are more, the goroutines share the rows of the columns, and each
// computes its rows again (keeping them all would write 7 MB out to memory
// in the 16→32 layer at batch 64, which slowed its forward pass by more
// than it saved here); with OpenBLAS (gemmTransBSlow) it then multiplies
// them by dZ_s transposed, dWᵀ = Σ_s cols_s·dZ_sᵀ [K, C], a product without
// a transposed operand, which OpenBLAS runs about twice as fast at these
// sizes as dZ_s·cols_sᵀ, whose second operand it transposes as it packs
// it (the same sums in the same order; gonum's gemm would round them
// differently, so its build keeps dZ_s·cols_sᵀ).
type convGradWOp struct {
	opBase
	conv *convOp
	cols scratchPool
	dzT  any // dZ_s transposed for each sample, then dWᵀ
}

func (op *convGradWOp) Do(in ...G.Value) (G.Value, error) {
	return do(&op.opBase, in, op, convGradW[float32], convGradW[float64])
}

func convGradW[T float](op *convGradWOp, dw []T, a [6][]T) {
	x, dz := a[0], a[1]
	g, C := op.conv.g, op.conv.C
	K, ohw := g.K(), g.ohw()
	if _, f32 := any(dw).([]float32); f32 && op.conv.directW(tensor.Float32) {
		op.conv.keptValid = false
		// dZ with its channels last, then input channels shared among the
		// goroutines: each value is summed by one call, whatever the split.
		dzT := scratch[T](&op.dzT, g.n*C*ohw)
		transposeSamples(dzT, dz, g.n, C, ohw)
		parts := min(gemmWorkers(C*K*ohw*g.n, gemmGrain), g.c)
		op.cols.grow(parts)
		parallelParts(g.c, parts, func(wk, lo, hi int) {
			sc := poolScratch[T](op.cols, wk, kernels.Conv3x3GradWScratch(hi-lo, C, g.h, g.w))
			if !kernels.Conv3x3GradW(any(dw).([]float32), any(x).([]float32), any(dzT).([]float32), g.n, g.c, C, g.h, g.w,
				lo, hi, any(sc).([]float32)) {
				panic("trainer: kernels.Conv3x3GradW refused a convolution that it fits")
			}
		})
		return
	}
	if K >= C {
		var dzT, dwT []T
		if gemmTransBSlow {
			dzT = scratch[T](&op.dzT, g.n*C*ohw+K*C)
			dzT, dwT = dzT[:g.n*C*ohw], dzT[g.n*C*ohw:]
			transposeSamples(dzT, dz, g.n, C, ohw)
		}
		parts := gemmWorkers(K, 4)
		op.cols.grow(parts)
		parallelParts(K, parts, func(wk, lo, hi int) {
			cols := poolScratch[T](op.cols, wk, (hi-lo)*ohw)
			for s := 0; s < g.n; s++ {
				im2col(g, cols, x[s*g.chw():(s+1)*g.chw()], lo, hi)
				if dzT != nil {
					gemmCall(false, false, hi-lo, C, ohw, cols, ohw, dzT[s*C*ohw:], C, T(min(s, 1)), dwT[lo*C:], C)
				} else {
					gemmCall(false, true, C, hi-lo, ohw, dz[s*C*ohw:], ohw, cols, ohw, T(min(s, 1)), dw[lo:], K)
				}
			}
		})
		if dzT != nil {
			transpose(dw, dwT, K, C)
		}
		return
	}
	kept, ok := op.conv.kept.([]T)
	ok = ok && op.conv.keptValid
	op.conv.keptValid = false
	parts := gemmWorkers(C, 4)
	op.cols.grow(parts)
	parallelParts(C, parts, func(wk, lo, hi int) {
		var cols []T
		if !ok {
			cols = poolScratch[T](op.cols, wk, K*ohw)
		}
		for s := 0; s < g.n; s++ {
			if ok {
				cols = kept[s*K*ohw : (s+1)*K*ohw]
			} else {
				im2col(g, cols, x[s*g.chw():(s+1)*g.chw()], 0, K)
			}
			gemmCall(false, true, hi-lo, K, ohw, dz[(s*C+lo)*ohw:], ohw, cols, ohw, T(min(s, 1)), dw[lo*K:], K)
		}
	})
}

// convGradXOp is a Conv2d's input gradient, dx_s = col2im(Wᵀ·dZ_s), from W
// and dZ. A 3×3 "same" convolution's is the convolution of dZ_s by W
// flipped (its rows and columns reversed, its input and output channels
// swapped), which conv3x3 computes where it can.
type convGradXOp struct {
	opBase
	conv    *convOp
	dcols   scratchPool
	flipped any // W flipped, for conv3x3
}

func (op *convGradXOp) Do(in ...G.Value) (G.Value, error) {
	return do(&op.opBase, in, op, convGradX[float32], convGradX[float64])
}

func convGradX[T float](op *convGradXOp, dx []T, a [6][]T) {
	w, dz := a[0], a[1]
	g, C := op.conv.g, op.conv.C
	K, ohw := g.K(), g.ohw()
	var flipped []T
	if _, f32 := any(w).([]float32); f32 && kernels.DirectConv && g.k == 3 && g.stride == 1 && g.pad == 1 && g.oh == g.h && g.ow == g.w {
		flipped = scratch[T](&op.flipped, len(w))
		for co := range C {
			for ci := range g.c {
				for t := range 9 {
					flipped[(ci*C+co)*9+8-t] = w[(co*g.c+ci)*9+t]
				}
			}
		}
	}
	fg := convGeom{n: g.n, c: C, h: g.oh, w: g.ow, k: 3, stride: 1, pad: 1, oh: g.h, ow: g.w}
	parts := gemmWorkers(g.n, 1)
	op.dcols.grow(parts)
	parallelParts(g.n, parts, func(wk, lo, hi int) {
		if flipped != nil && conv3x3(fg, dx[lo*g.chw():hi*g.chw()], dz[lo*C*ohw:hi*C*ohw], flipped, g.c, hi-lo) {
			return
		}
		dcols := poolScratch[T](op.dcols, wk, K*ohw)
		for s := lo; s < hi; s++ {
			dxs, dzs := dx[s*g.chw():(s+1)*g.chw()], dz[s*C*ohw:(s+1)*C*ohw]
			gemmCall(true, false, K, ohw, C, w, K, dzs, ohw, 0, dcols, ohw)
			col2im(g, dxs, dcols)
		}
	})
}

// convTOp is a ConvTranspose2d layer whose kernel equals its stride, with no
// padding, and its activation: x [n, Cin, h, w], W [Cin, C, k, k], b [C].
type convTOp struct {
	opBase
	n, cin, h, w, C, f int
	act                activation
	needX              bool
	y                  scratchPool
	order              []int32 // gradZOrder
	wt                 any     // Wᵀ [C·k·k, Cin], for kernels.Sgemm
}

func newConvTOp(x, w, b *G.Node, act activation, needX bool) (*convTOp, error) {
	xs, ws := x.Shape(), w.Shape()
	if xs.Dims() != 4 || ws.Dims() != 4 || ws[0] != xs[1] || ws[2] != ws[3] || b.Shape().TotalSize() != ws[1] {
		return nil, fmt.Errorf("convtranspose: x %v, W %v, b %v", xs, ws, b.Shape())
	}
	f := ws[2]
	op := &convTOp{n: xs[0], cin: xs[1], h: xs[2], w: xs[3], C: ws[1], f: f, act: act, needX: needX}
	op.opBase = newBase(withAct("convtranspose", act), tensor.Shape{op.n, op.C, op.h * f, op.w * f}, x, w, b)
	return op, nil
}

func (op *convTOp) R() int { return op.C * op.f * op.f } // rows of Y_s

func (op *convTOp) Do(in ...G.Value) (G.Value, error) {
	return do(&op.opBase, in, op, convTForward[float32], convTForward[float64])
}

func convTForward[T float](op *convTOp, out []T, a [6][]T) {
	x, w, b := a[0], a[1], a[2]
	R, hw, f := op.R(), op.h*op.w, op.f
	OW, plane := op.w*f, hw*f*f
	// Y_s = Wᵀ·x_s [R, hw]. On kernels.Sgemm (where ownGemm allows) it
	// takes Wᵀ, transposed once, and skips a BLAS call's packing for each
	// sample; its sums (one chain of fused multiply-adds over Cin) are
	// those of OpenBLAS's SkylakeX kernels for the conv model's two layers
	// (Cin of 32 and 16): an epoch of conv ends with the same weights.
	var wt []float32
	if _, ok := any(w).([]float32); ok && ownGemm {
		wt = scratch[float32](&op.wt, R*op.cin)
		transpose(wt, any(w).([]float32), op.cin, R)
	}
	parts := gemmWorkers(op.n, 1)
	op.y.grow(parts)
	parallelParts(op.n, parts, func(wk, lo, hi int) {
		y := poolScratch[T](op.y, wk, R*hw)
		for s := lo; s < hi; s++ {
			xs := x[s*op.cin*hw:]
			if wt == nil || !kernels.Sgemm(false, R, hw, op.cin, wt, op.cin, any(xs).([]float32), hw, any(y).([]float32), hw) {
				gemmCall(true, false, R, hw, op.cin, w, R, xs, hw, 0, y, hw)
			}
			if f == 2 {
				interleave2(out[s*op.C*plane:(s+1)*op.C*plane], y, op.C, op.h, op.w, b, op.act)
				continue
			}
			for c := 0; c < op.C; c++ {
				dst := out[(s*op.C+c)*plane : (s*op.C+c+1)*plane]
				bias := b[c]
				for p := 0; p < f; p++ {
					for q := 0; q < f; q++ {
						src := y[((c*f+p)*f+q)*hw : ((c*f+p)*f+q+1)*hw]
						for i := 0; i < op.h; i++ {
							row := dst[(i*f+p)*OW+q:]
							for j, v := range src[i*op.w : (i+1)*op.w] {
								row[j*f] = v + bias
							}
						}
					}
				}
				activateSerial(op.act, dst)
			}
		}
	})
}

func (op *convTOp) DiffWRT(int) []bool { return []bool{op.needX, true, true} }

func (op *convTOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	x, w := inputs[0], inputs[1]
	hw := op.h * op.w
	gz := &convTGradZOp{opBase: newBase("convtranspose-grad-z", tensor.Shape{op.n, op.R(), hw}, output, grad), conv: op}
	dz, err := G.ApplyOp(gz, output, grad)
	if err != nil {
		return nil, err
	}
	grads := make(G.Nodes, 3)
	if op.needX {
		if rs, ok := x.Op().(*reshapeOp); ok && outputsReLU(rs.x) {
			// x is a view of a ReLU's output (a Linear layer's, unflattened):
			// dx and the ReLU's gradient, each sample's while it is in cache
			// (and applyActGrad adds none). A ConvTranspose2d's own ReLU
			// gradient is in its gradient gather (convTGradZ).
			gx := &convTGradXOp{opBase: newBase("convtranspose-grad-x+relu-grad", x.Shape().Clone(), w, dz, x), conv: op, relu: true}
			grads[0], err = G.ApplyOp(gx, w, dz, x)
		} else {
			gx := &convTGradXOp{opBase: newBase("convtranspose-grad-x", x.Shape().Clone(), w, dz), conv: op}
			grads[0], err = G.ApplyOp(gx, w, dz)
		}
		if err != nil {
			return nil, err
		}
	}
	gw := &convTGradWOp{opBase: newBase("convtranspose-grad-w", w.Shape().Clone(), x, dz), conv: op}
	if grads[1], err = G.ApplyOp(gw, x, dz); err != nil {
		return nil, err
	}
	if grads[2], err = G.ApplyOp(newBiasGradOp(dz, op.n, op.C, op.f*op.f*hw), dz); err != nil {
		return nil, err
	}
	return grads, nil
}

// convTGradZOp gathers dZ_s [C·k·k, h·w], the gradient of Y_s, from a
// ConvTranspose2d's output y and its gradient dy.
type convTGradZOp struct {
	opBase
	conv *convTOp
}

func (op *convTGradZOp) Do(in ...G.Value) (G.Value, error) {
	return do(&op.opBase, in, op.conv, convTGradZ[float32], convTGradZ[float64])
}

func convTGradZ[T float](op *convTOp, dz []T, a [6][]T) {
	if dz32, ok := any(dz).([]float32); ok {
		convTGradZ32(op, dz32, any(a[0]).([]float32), any(a[1]).([]float32))
		return
	}
	y, dy := a[0], a[1]
	hw, f := op.h*op.w, op.f
	OW, plane := op.w*f, hw*f*f
	parallelFor(op.n*op.C, 8, func(lo, hi int) {
		for sc := lo; sc < hi; sc++ {
			ys, dys := y[sc*plane:(sc+1)*plane], dy[sc*plane:(sc+1)*plane]
			s, c := sc/op.C, sc%op.C
			for p := 0; p < f; p++ {
				for q := 0; q < f; q++ {
					dst := dz[(s*op.R()+(c*f+p)*f+q)*hw : (s*op.R()+(c*f+p)*f+q+1)*hw]
					for i := 0; i < op.h; i++ {
						for j := 0; j < op.w; j++ {
							at := (i*f+p)*OW + j*f + q
							dst[i*op.w+j] = actGrad(op.act, ys[at], dys[at])
						}
					}
				}
			}
		}
	})
}

// interleave2 writes planes output planes of a ConvTranspose2d with kernel
// and stride 2, each from its four rows of the product in src
// (kernels.Interleave2Go) with its bias, then the activation act: in one
// call of kernels.Interleave2 (with the ReLU's) for float32.
func interleave2[T float](dst, src []T, planes, h, w int, bias []T, act activation) {
	if d32, ok := any(dst).([]float32); ok {
		kernels.Interleave2(d32, any(src).([]float32), planes, h, w, any(bias).([]float32), act == actReLU)
		if act == actSigmoid {
			activateSerial(act, d32)
		}
		return
	}
	plane := 4 * h * w
	for c := range planes {
		kernels.Interleave2Go(dst[c*plane:(c+1)*plane], src[c*plane:(c+1)*plane], h, w, bias[c])
		activateSerial(act, dst[c*plane:(c+1)*plane])
	}
}

// convTGradZ32 is convTGradZ in float32: the same values, bit for bit.
// With kernel 2, kernels.Deinterleave2 gathers them. Otherwise, for
// channel c of sample s, the output plane y [k·h, k·w] and the rows of dZ_s
// for c, [k·k, h·w] and contiguous, hold the same values in two orders, so
// one loop over the plane scatters them through the permutation at.
func convTGradZ32(op *convTOp, dz, y, dy []float32) {
	hw, f, R := op.h*op.w, op.f, op.R()
	plane := hw * f * f
	act := op.act
	if f == 2 {
		kact := [...]kernels.Act{actNone: kernels.ActNone, actReLU: kernels.ActReLU, actSigmoid: kernels.ActSigmoid}[act]
		// Plane sc = s·C+c of dz, [4, hw] at (s·R + 4c)·hw = sc·plane, and
		// of y and dy: consecutive planes alike.
		parallelFor(op.n*op.C, 8, func(lo, hi int) {
			kernels.Deinterleave2(dz[lo*plane:hi*plane], y[lo*plane:hi*plane], dy[lo*plane:hi*plane], hi-lo, op.h, op.w, kact)
		})
		return
	}
	at := op.gradZOrder()
	parallelFor(op.n*op.C, 8, func(lo, hi int) {
		for sc := lo; sc < hi; sc++ {
			ys, dys := y[sc*plane:(sc+1)*plane], dy[sc*plane:(sc+1)*plane]
			s, c := sc/op.C, sc%op.C
			dst := dz[(s*R+c*f*f)*hw : (s*R+(c+1)*f*f)*hw]
			dys = dys[:len(ys)]
			at := at[:len(ys)]
			switch act {
			case actReLU:
				for t, v := range ys {
					dst[at[t]] = keepIf32(dys[t], !(v <= 0))
				}
			case actSigmoid:
				for t, v := range ys {
					dst[at[t]] = kernels.SigmoidGrad(dys[t], v)
				}
			default:
				for t, d := range dys {
					dst[at[t]] = d
				}
			}
		}
	})
}

// gradZOrder returns, for each position t = (k·i+p)·k·w + k·j+q of an
// output plane, the position ((p·k+q)·h+i)·w+j of its value among a
// channel's rows of dZ_s (made once).
func (op *convTOp) gradZOrder() []int32 {
	hw, f, w := op.h*op.w, op.f, op.w
	if len(op.order) == hw*f*f {
		return op.order
	}
	op.order = make([]int32, hw*f*f)
	for i := 0; i < op.h; i++ {
		for p := 0; p < f; p++ {
			for j := 0; j < w; j++ {
				for q := 0; q < f; q++ {
					op.order[(i*f+p)*w*f+j*f+q] = int32(((p*f+q)*op.h+i)*w + j)
				}
			}
		}
	}
	return op.order
}

// actGrad is the activation's gradient at output y times dy, as
// activationGradSerial computes it.
func actGrad[T float](a activation, y, dy T) T {
	switch a {
	case actReLU:
		return keepIf(dy, !(y <= 0))
	case actSigmoid:
		return kernels.SigmoidGrad(dy, y)
	}
	return dy
}

// keepIf32 is keepIf for float32.
func keepIf32(v float32, keep bool) float32 {
	return math.Float32frombits(math.Float32bits(v) & -uint32(b2i(keep)))
}

// convTGradWOp is a ConvTranspose2d's weight gradient, dW = Σ_s x_s·dZ_sᵀ,
// from x and dZ; the goroutines share the columns of dW. (Multiplying by
// dZ_s transposed first, as convGradWOp does, made the 32→16 layer's
// 0.33 ms 0.2, but OpenBLAS's kernels then round some sums differently.)
type convTGradWOp struct {
	opBase
	conv *convTOp
}

func (op *convTGradWOp) Do(in ...G.Value) (G.Value, error) {
	return do(&op.opBase, in, op.conv, convTGradW[float32], convTGradW[float64])
}

func convTGradW[T float](op *convTOp, dw []T, a [6][]T) {
	x, dz := a[0], a[1]
	R, hw := op.R(), op.h*op.w
	parallelParts(R, gemmWorkers(R, 4), func(_, lo, hi int) {
		for s := 0; s < op.n; s++ {
			gemmCall(false, true, op.cin, hi-lo, hw, x[s*op.cin*hw:], hw, dz[(s*R+lo)*hw:], hw, T(min(s, 1)), dw[lo:], R)
		}
	})
}

// convTGradXOp is a ConvTranspose2d's input gradient, dx_s = W·dZ_s, from W
// and dZ.
type convTGradXOp struct {
	opBase
	conv *convTOp
	// relu: a third input, x itself, the output of a ReLU, whose gradient
	// the op passes on: dx is +0 where x <= 0 (NaN keeps it, as actGradOp
	// does).
	relu bool
}

func (op *convTGradXOp) Do(in ...G.Value) (G.Value, error) {
	return do(&op.opBase, in, op, convTGradX[float32], convTGradX[float64])
}

func convTGradX[T float](gx *convTGradXOp, dx []T, a [6][]T) {
	op, w, dz := gx.conv, a[0], a[1]
	R, hw := op.R(), op.h*op.w
	parallelParts(op.n, gemmWorkers(op.n, 1), func(_, lo, hi int) {
		for s := lo; s < hi; s++ {
			ds := dx[s*op.cin*hw : (s+1)*op.cin*hw]
			gemmCall(false, false, op.cin, hw, R, w, R, dz[s*R*hw:], hw, 0, ds, hw)
			if gx.relu {
				reluGrad(ds, a[2][s*op.cin*hw:(s+1)*op.cin*hw], ds)
			}
		}
	})
}

// maxPoolOp is MaxPool2d with a k×k window, a stride and no padding: every
// output is the largest value of its window (NaN wins, as in PyTorch).
//
// When x is the output of a ReLU (relu), the gradient that the pooling
// passes back is already the ReLU's input gradient: a window's gradient goes
// to the position of its maximum m, where ReLU's gradient is 1 if m > 0 and
// 0 otherwise, and every other position gets 0 either way. The op that
// applied the ReLU then skips its own gradient pass (applyActGrad), one pass
// fewer over the largest activations of a convolutional network.
//
// In a graph that trains, 2×2 windows with stride 2 record where their
// maximum is (and whether it is positive) as they go, for the gradient.
type maxPoolOp struct {
	opBase
	g     convGeom
	need  bool
	relu  bool
	train bool    // set by SymDiff: record where
	where []uint8 // per output: bits 0-1 the maximum's position, bit 2 m > 0
	// ready says that the convolution before has pooled this run's input
	// already (convOp.pool).
	ready bool
}

func newMaxPoolOp(x *G.Node, k, stride int, need bool) (*maxPoolOp, error) {
	g, err := newConvGeom(x.Shape(), k, stride, 0)
	if err != nil {
		return nil, fmt.Errorf("maxpool: %w", err)
	}
	op := &maxPoolOp{opBase: newBase(fmt.Sprintf("maxpool(k%d,s%d)", k, stride), tensor.Shape{g.n, g.c, g.oh, g.ow}, x),
		g: g, need: need, relu: outputsReLU(x)}
	if conv, ok := x.Op().(*convOp); ok && op.is2x2() {
		conv.pool = op
	}
	return op, nil
}

// outputsReLU reports whether node x is the output of a ReLU of this package.
func outputsReLU(x *G.Node) bool {
	switch op := x.Op().(type) {
	case *linearOp:
		return op.act == actReLU
	case *convOp:
		return op.act == actReLU
	case *convTOp:
		return op.act == actReLU
	case *actOp:
		return op.act == actReLU
	}
	return false
}

func (op *maxPoolOp) is2x2() bool { return op.g.k == 2 && op.g.stride == 2 }

func (op *maxPoolOp) Do(in ...G.Value) (G.Value, error) {
	defer op.timed()()
	dt, err := op.check(in)
	if err != nil {
		return nil, err
	}
	out := op.output(dt)
	if op.ready {
		op.ready = false
		return out, nil
	}
	where := op.whereBuf()
	switch y := op.outData.(type) {
	case []float32:
		maxPool(op.g, y, args[float32](&op.opBase)[0], where)
	case []float64:
		maxPool(op.g, y, args[float64](&op.opBase)[0], where)
	}
	return out, nil
}

// whereBuf returns the buffer in which 2×2 windows record where their
// maximum is, in a graph that trains; nil otherwise.
func (op *maxPoolOp) whereBuf() []uint8 {
	if !op.train || !op.is2x2() {
		return nil
	}
	if len(op.where) != op.shape.TotalSize() {
		op.where = make([]uint8, op.shape.TotalSize())
	}
	return op.where
}

// maxPool2x2 pools planes planes of x [planes, g.h, g.w] into y [planes,
// g.oh, g.ow] with 2×2 windows, stride 2, recording in where, when not
// nil, where each maximum is.
func maxPool2x2[T float](g convGeom, y, x []T, planes int, where []uint8) {
	hw := g.h * g.w
	if x32, ok := any(x).([]float32); ok {
		kernels.MaxPool2x2(x32[:planes*hw], planes, g.w, hw, g.oh, g.ow, any(y).([]float32), where)
		return
	}
	kernels.MaxPool2x2Go(x[:planes*hw], planes, g.w, hw, g.oh, g.ow, y, where)
}

// maxPool writes the window maxima of x into y, and with where (2×2
// windows, stride 2), where each maximum is.
func maxPool[T float](g convGeom, y, x []T, where []uint8) {
	hw, ohw := g.h*g.w, g.oh*g.ow
	parallelFor(g.n*g.c, 8, func(lo, hi int) {
		if g.k == 2 && g.stride == 2 {
			var wp []uint8
			if where != nil {
				wp = where[lo*ohw : hi*ohw]
			}
			maxPool2x2(g, y[lo*ohw:hi*ohw], x[lo*hw:], hi-lo, wp)
			return
		}
		for p := lo; p < hi; p++ {
			src, yp := x[p*hw:(p+1)*hw], y[p*ohw:(p+1)*ohw]
			for oy := 0; oy < g.oh; oy++ {
				for ox := 0; ox < g.ow; ox++ {
					_, yp[oy*g.ow+ox] = windowMax(g, src, oy, ox)
				}
			}
		}
	})
}

// windowMax returns the position in its plane and the value of the maximum
// of window (oy, ox): the first in row-major order, or the last NaN, as
// PyTorch's.
func windowMax[T float](g convGeom, src []T, oy, ox int) (int, T) {
	best := oy*g.stride*g.w + ox*g.stride
	m := src[best]
	for i := 0; i < g.k; i++ {
		row := (oy*g.stride+i)*g.w + ox*g.stride
		for j, v := range src[row : row+g.k] {
			if v > m || v != v {
				m, best = v, row+j
			}
		}
	}
	return best, m
}

func (op *maxPoolOp) DiffWRT(int) []bool { return unaryDiff(op.need) }

func (op *maxPoolOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	name := "maxpool-grad"
	if op.relu {
		name += "+relu-grad"
	}
	op.train = true
	back := &maxPoolGradOp{opBase: newBase(name, inputs[0].Shape().Clone(), inputs[0], grad), pool: op, relu: op.relu, dy: grad}
	dx, err := G.ApplyOp(back, inputs[0], grad)
	return G.Nodes{dx}, err
}

// maxPoolGradOp is maxPoolOp's gradient, from its input x and dy; with
// relu, followed by the gradient of the ReLU whose output x is. It reads
// where the pooling recorded the maxima, or finds them again in x.
type maxPoolGradOp struct {
	opBase
	pool *maxPoolOp
	relu bool
	dy   *G.Node // the pooling's gradient
	// skip says that the convolution before takes its gradients from dy
	// (convPoolGradOp): nothing reads this op's output, and it writes none.
	skip bool
}

func (op *maxPoolGradOp) Do(in ...G.Value) (G.Value, error) {
	defer op.timed()()
	dt, err := op.check(in)
	if err != nil {
		return nil, err
	}
	out := op.output(dt)
	if op.skip {
		return out, nil
	}
	where := op.pool.where
	if !op.pool.is2x2() {
		where = nil
	}
	switch dx := op.outData.(type) {
	case []float32:
		a := args[float32](&op.opBase)
		maxPoolGrad(op.pool.g, dx, a[0], a[1], where, op.relu)
	case []float64:
		a := args[float64](&op.opBase)
		maxPoolGrad(op.pool.g, dx, a[0], a[1], where, op.relu)
	}
	return out, nil
}

// maxPoolGrad writes the gradient dx of x for the gradient dy of the
// pooling, sending each window's gradient to the position of its maximum
// (with relu, only where the maximum is positive or NaN).
func maxPoolGrad[T float](g convGeom, dx, x, dy []T, where []uint8, relu bool) {
	hw, ohw := g.h*g.w, g.oh*g.ow
	parallelFor(g.n*g.c, 8, func(lo, hi int) {
		if where != nil {
			wp := where[lo*ohw : hi*ohw]
			if dx32, ok := any(dx).([]float32); ok {
				kernels.MaxPool2x2Grad(dx32[lo*hw:hi*hw], hi-lo, g.w, hw, g.oh, g.ow, any(dy).([]float32)[lo*ohw:hi*ohw], wp, relu)
			} else {
				kernels.MaxPool2x2GradGo(dx[lo*hw:hi*hw], hi-lo, g.w, hw, g.oh, g.ow, dy[lo*ohw:hi*ohw], wp, relu)
			}
			return
		}
		for p := lo; p < hi; p++ {
			grad, dyp := dx[p*hw:(p+1)*hw], dy[p*ohw:(p+1)*ohw]
			clear(grad)
			src := x[p*hw : (p+1)*hw]
			for oy := 0; oy < g.oh; oy++ {
				for ox := 0; ox < g.ow; ox++ {
					best, m := windowMax(g, src, oy, ox)
					grad[best] += keepIf(dyp[oy*g.ow+ox], !relu || !(m <= 0))
				}
			}
		}
	})
}
