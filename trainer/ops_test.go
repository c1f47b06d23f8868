package trainer

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/latent-ai/latent/models"
	"github.com/latent-ai/latent/trainer/internal/kernels"
	"gorgonia.org/tensor"
)

// opArchs exercise, in float64, the paths of the trainer's ops that the
// notebook's layer orders do not reach in TestGradientsFiniteDifference:
// convolutions after other layers (input gradients), with more output
// channels than kernel values, with stride 2 or no padding, without an
// activation; pooling windows that overlap or are 3×3, after a fused or a
// standalone ReLU or after no ReLU; standalone ReLU and Sigmoid; and
// transposed convolutions with kernels 2 and 3.
var opArchs = []struct {
	name string
	arch models.Arch
}{
	{"conv-stack", models.Arch{Kind: "t", Bottleneck: 3, Input: []int{2, 6, 6},
		Encoder: []models.Layer{
			{Op: models.Conv2d, In: 2, Out: 3, Kernel: 3, Stride: 1, Pad: 1}, {Op: models.ReLU}, // fused ReLU
			{Op: models.MaxPool2d, Kernel: 2, Stride: 1},                      // overlapping windows, after that ReLU
			{Op: models.Conv2d, In: 3, Out: 1, Kernel: 3, Stride: 1, Pad: 0},  // no activation, input gradient
			{Op: models.Conv2d, In: 1, Out: 12, Kernel: 3, Stride: 2, Pad: 1}, // channels > kernel values, stride 2
			{Op: models.Sigmoid},
			{Op: models.Flatten},
			{Op: models.Linear, In: 48, Out: 3}},
		Decoder: []models.Layer{
			{Op: models.Linear, In: 3, Out: 72},
			{Op: models.Unflatten, Shape: []int{2, 6, 6}},
			{Op: models.Sigmoid}}}}, // standalone
	{"pool-transpose", models.Arch{Kind: "t", Bottleneck: 2, Input: []int{1, 6, 6},
		Encoder: []models.Layer{
			{Op: models.Conv2d, In: 1, Out: 2, Kernel: 3, Stride: 1, Pad: 1},
			{Op: models.MaxPool2d, Kernel: 3, Stride: 1}, // 3×3 windows, no ReLU before
			{Op: models.ReLU}, // standalone
			{Op: models.MaxPool2d, Kernel: 2, Stride: 2}, // 2×2, after a standalone ReLU
			{Op: models.Flatten},
			{Op: models.Sigmoid}, // standalone
			{Op: models.Linear, In: 8, Out: 2}},
		Decoder: []models.Layer{
			{Op: models.Linear, In: 2, Out: 8}, {Op: models.ReLU},
			{Op: models.Unflatten, Shape: []int{2, 2, 2}},
			{Op: models.ConvTranspose2d, In: 2, Out: 3, Kernel: 3, Stride: 3}, {Op: models.ReLU},
			{Op: models.ConvTranspose2d, In: 3, Out: 1, Kernel: 1, Stride: 1}, {Op: models.Sigmoid}}}},
}

// checkFiniteDifferences checks the gradient of the loss of arch on a
// random batch with respect to every parameter against central finite
// differences, in float64.
func checkFiniteDifferences(t *testing.T, arch models.Arch, batch int) {
	rng := rand.New(rand.NewPCG(3, 4))
	params := arch.Params()
	var values []tensor.Tensor
	var data [][]float64
	for _, p := range params {
		shape := p.Shape
		if p.Layer.Op == models.Linear && !p.Bias {
			shape = []int{shape[1], shape[0]}
		}
		v := make([]float64, p.Size())
		for i := range v {
			v[i] = rng.NormFloat64() * 0.7
		}
		data = append(data, v)
		values = append(values, tensor.New(tensor.WithShape(shape...), tensor.WithBacking(v)))
	}
	gr, err := newGraph(arch, partAutoencoder, batch, values, allGradients)
	if err != nil {
		t.Fatal(err)
	}
	in := gr.input.Value().Data().([]float64)
	for i := range in {
		in[i] = rng.Float64()
	}
	if gr.vae != nil {
		gr.vae.sample, gr.vae.beta = true, 0.7
		for i := range gr.vae.eps {
			gr.vae.eps[i] = rng.NormFloat64()
		}
	}
	loss := func() float64 {
		if err := gr.run(); err != nil {
			t.Fatal(err)
		}
		if gr.vae != nil {
			return scalar(gr.lossVal) + gr.vae.beta*gr.vae.kl
		}
		return scalar(gr.lossVal)
	}
	loss()
	var analytic [][]float64
	for i, p := range gr.params {
		g, err := p.Grad()
		if err != nil {
			t.Fatalf("%s: %v", params[i].Name, err)
		}
		analytic = append(analytic, slices.Clone(g.Data().([]float64)))
	}
	const h = 1e-6
	for i, v := range data {
		worst := 0.0
		for j := range v {
			orig := v[j]
			v[j] = orig + h
			up := loss()
			v[j] = orig - h
			down := loss()
			v[j] = orig
			num := (up - down) / (2 * h)
			err := math.Abs(num-analytic[i][j]) / math.Max(1e-3, math.Abs(num)+math.Abs(analytic[i][j]))
			worst = math.Max(worst, err)
		}
		if worst > 1e-4 {
			t.Errorf("%s (%s): worst relative gradient error %.2e", params[i].Name, params[i].Layer.Op, worst)
		}
	}
}

// TestStepsAreDeterministic trains two fresh copies of each notebook model
// on the same batches and checks that their weights and losses agree bit for
// bit: the goroutines that share the ops' work never change a result.
func TestStepsAreDeterministic(t *testing.T) {
	const batch, steps = 64, 3
	rng := rand.New(rand.NewPCG(5, 6))
	images := make([]float32, steps*batch*784)
	for i := range images {
		images[i] = rng.Float32()
	}
	for _, kind := range models.Kinds() {
		t.Run(kind, func(t *testing.T) {
			arch, err := models.New(kind, models.DefaultBottleneck)
			if err != nil {
				t.Fatal(err)
			}
			var weights [2][][]float32
			var losses [2][]float64
			for run := range weights {
				tr, err := New(DefaultConfig(arch))
				if err != nil {
					t.Fatal(err)
				}
				for s := 0; s < steps; s++ {
					loss, err := tr.Step(images[s*batch*784:(s+1)*batch*784], batch)
					if err != nil {
						t.Fatal(err)
					}
					losses[run] = append(losses[run], loss)
				}
				for _, v := range tr.Weights().Values {
					weights[run] = append(weights[run], slices.Clone(v))
				}
			}
			if !slices.Equal(losses[0], losses[1]) {
				t.Errorf("losses differ: %v and %v", losses[0], losses[1])
			}
			for i := range weights[0] {
				for j, v := range weights[0][i] {
					if math.Float32bits(v) != math.Float32bits(weights[1][i][j]) {
						t.Fatalf("%s[%d]: %v and %v", paramName(arch, i), j, v, weights[1][i][j])
					}
				}
			}
		})
	}
}

func paramName(arch models.Arch, i int) string { return arch.Params()[i].Name }

// TestConvGradW checks a Conv2d's weight gradient in float32, for the
// notebook's two convolutions (K >= C: with AVX-512, kernels.Conv3x3GradW,
// else im2col again, and with OpenBLAS dZ transposed; K < C: the columns
// that the forward pass kept), and once more without kept columns,
// against the sums of the products in float64:
// within the error bound of a float32 sum of the batch's products in any
// order, (n−1)·2⁻²⁴·Σ|products| (BLAS kernels sum in different orders from
// one CPU to another).
func TestConvGradW(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, tc := range []struct{ n, cin, side, cout int }{
		{5, 16, 14, 32},
		{5, 1, 28, 16},
	} {
		g, err := newConvGeom(tensor.Shape{tc.n, tc.cin, tc.side, tc.side}, 3, 1, 1)
		if err != nil {
			t.Fatal(err)
		}
		random := func(n int) []float32 {
			v := make([]float32, n)
			for i := range v {
				v[i] = float32(rng.NormFloat64())
			}
			return v
		}
		K, ohw := g.K(), g.ohw()
		x, w, b := random(g.n*g.chw()), random(tc.cout*K), random(tc.cout)
		dz := random(g.n * tc.cout * ohw)
		conv := &convOp{g: g, C: tc.cout, act: actReLU}
		conv.keep = K < tc.cout && !conv.directW(tensor.Float32) // as SymDiff sets it
		convForward(conv, make([]float32, g.n*tc.cout*ohw), [6][]float32{x, w, b})
		if conv.keptValid != conv.keep {
			t.Fatalf("%+v: kept columns %v, want %v", tc, conv.keptValid, conv.keep)
		}
		gw := &convGradWOp{conv: conv}
		kept, again := make([]float32, tc.cout*K), make([]float32, tc.cout*K)
		convGradW(gw, kept, [6][]float32{x, dz})
		if conv.keptValid {
			t.Fatal("the weight gradient left the kept columns valid for another run")
		}
		convGradW(gw, again, [6][]float32{x, dz}) // nothing kept now
		cols := make([]float32, g.n*K*ohw)
		for s := range g.n {
			im2col(g, cols[s*K*ohw:], x[s*g.chw():(s+1)*g.chw()], 0, K)
		}
		for c := range tc.cout {
			for k := range K {
				var sum, bound float64
				for s := range g.n {
					for p := range ohw {
						v := float64(dz[(s*tc.cout+c)*ohw+p]) * float64(cols[(s*K+k)*ohw+p])
						sum += v
						bound += math.Abs(v)
					}
				}
				tol := float64(g.n*ohw) * 0x1p-24 * bound
				for name, got := range map[string][]float32{"kept": kept, "again": again} {
					if d := math.Abs(float64(got[c*K+k]) - sum); !(d <= tol) {
						t.Fatalf("%+v (%s): dW[%d,%d] = %v, want %v (bound %g)", tc, name, c, k, got[c*K+k], sum, tol)
					}
				}
			}
		}
	}
}

// TestConvForwardGradX checks a 3×3 "same" convolution's forward pass and
// input gradient, in float32 (kernels.Conv3x3 on a CPU with AVX-512, else
// im2col and a product) and float64, against float64 sums of their
// definitions, within the rounding bound of a float32 sum of n terms in
// any order, (n−1)·2⁻²⁴·Σ|terms| (plus the bias, added after).
func TestConvForwardGradX(t *testing.T) {
	for _, tc := range []struct{ n, cin, side, cout int }{{3, 16, 14, 32}, {2, 8, 7, 16}, {2, 1, 28, 16}} {
		testConvForwardGradX[float32](t, tc.n, tc.cin, tc.side, tc.cout)
		testConvForwardGradX[float64](t, tc.n, tc.cin, tc.side, tc.cout)
	}
}

func testConvForwardGradX[T float](t *testing.T, n, cin, side, cout int) {
	t.Helper()
	rng := rand.New(rand.NewPCG(uint64(cin), uint64(side)))
	g, err := newConvGeom(tensor.Shape{n, cin, side, side}, 3, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	random := func(m int) []T {
		v := make([]T, m)
		for i := range v {
			v[i] = T(float32(rng.NormFloat64()))
		}
		return v
	}
	K, hw := g.K(), g.ohw()
	x, w, b, dz := random(n*g.chw()), random(cout*K), random(cout), random(n*cout*hw)
	conv := &convOp{g: g, C: cout, act: actNone}
	y := make([]T, n*cout*hw)
	convForward(conv, y, [6][]T{x, w, b})
	dx := make([]T, n*g.chw())
	convGradX(&convGradXOp{conv: conv}, dx, [6][]T{w, dz})
	at := func(v []T, s, c, r, col int) float64 { // v[s, c, r, col], 0 outside
		if r < 0 || r >= side || col < 0 || col >= side {
			return 0
		}
		return float64(v[((s*len(v)/n/(side*side)+c)*side+r)*side+col])
	}
	for s := range n {
		for co := range cout {
			for r := range side {
				for c := range side {
					sum, mag := float64(b[co]), math.Abs(float64(b[co]))
					for ci := range cin {
						for k := range 9 {
							v := float64(w[(co*cin+ci)*9+k]) * at(x, s, ci, r+k/3-1, c+k%3-1)
							sum, mag = sum+v, mag+math.Abs(v)
						}
					}
					got := float64(y[((s*cout+co)*side+r)*side+c])
					if d := math.Abs(got - sum); !(d <= float64(K)*0x1p-24*mag) {
						t.Fatalf("%T %d→%d: y[%d,%d,%d,%d] = %v, want %v", y, cin, cout, s, co, r, c, got, sum)
					}
				}
			}
		}
		for ci := range cin {
			for r := range side {
				for c := range side {
					var sum, mag float64
					for co := range cout {
						for k := range 9 {
							// dz at the output that this input feeds through kernel position k.
							v := float64(w[(co*cin+ci)*9+k]) * at(dz, s, co, r-k/3+1, c-k%3+1)
							sum, mag = sum+v, mag+math.Abs(v)
						}
					}
					got := float64(dx[((s*cin+ci)*side+r)*side+c])
					if d := math.Abs(got - sum); !(d <= float64(cout*9)*0x1p-24*mag) {
						t.Fatalf("%T %d→%d: dx[%d,%d,%d,%d] = %v, want %v", dx, cin, cout, s, ci, r, c, got, sum)
					}
				}
			}
		}
	}
}

// TestIm2colSame checks im2col against kernels.Im2ColSameGo, a reading of
// its definition, for "same" convolutions: in float64, the trainer's own
// loop, and in float32, kernels.Im2ColSame where the CPU has it.
func TestIm2colSame(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 9))
	for _, s := range []struct{ c, side, k, pad int }{{16, 14, 3, 1}, {1, 28, 3, 1}, {2, 9, 5, 2}} {
		g, err := newConvGeom(tensor.Shape{1, s.c, s.side, s.side}, s.k, 1, s.pad)
		if err != nil {
			t.Fatal(err)
		}
		K, hw := g.K(), g.ohw()
		x64 := make([]float64, g.chw())
		x32 := make([]float32, g.chw())
		for i := range x64 {
			x32[i] = float32(rng.NormFloat64())
			x64[i] = float64(x32[i])
		}
		for _, rows := range [][2]int{{0, K}, {K / 2, K}} {
			r0, r1 := rows[0], rows[1]
			got64, want64 := make([]float64, (r1-r0)*hw), make([]float64, (r1-r0)*hw)
			im2col(g, got64, x64, r0, r1)
			kernels.Im2ColSameGo(want64, x64, g.c, g.h, g.w, g.k, g.pad, r0, r1)
			got32, want32 := make([]float32, (r1-r0)*hw), make([]float32, (r1-r0)*hw)
			im2col(g, got32, x32, r0, r1)
			kernels.Im2ColSameGo(want32, x32, g.c, g.h, g.w, g.k, g.pad, r0, r1)
			if !slices.Equal(got64, want64) || !slices.Equal(got32, want32) {
				t.Fatalf("%+v rows [%d,%d): im2col differs from its definition", s, r0, r1)
			}
		}
	}
}

// TestConvPoolsInPlace checks that a Conv2d followed by a 2×2 max pooling
// pools each sample in its forward pass (convOp.pool) exactly as the
// pooling's own pass would: the same maxima, bit for bit, and the same
// record of where they are, in float32 and float64.
func TestConvPoolsInPlace(t *testing.T) {
	t.Run("float32", func(t *testing.T) { checkConvPools[float32](t) })
	t.Run("float64", func(t *testing.T) { checkConvPools[float64](t) })
}

func checkConvPools[T float](t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	g, err := newConvGeom(tensor.Shape{3, 16, 14, 14}, 3, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	const C = 32
	random := func(n int) []T {
		v := make([]T, n)
		for i := range v {
			v[i] = T(rng.NormFloat64())
		}
		return v
	}
	x, w, b := random(g.n*g.chw()), random(C*g.K()), random(C)
	pg, err := newConvGeom(tensor.Shape{g.n, C, g.oh, g.ow}, 2, 2, 0)
	if err != nil {
		t.Fatal(err)
	}
	pool := &maxPoolOp{opBase: opBase{shape: tensor.Shape{g.n, C, pg.oh, pg.ow}}, g: pg, train: true}
	conv := &convOp{g: g, C: C, act: actReLU, pool: pool}
	y := make([]T, g.n*C*g.ohw())
	convForward(conv, y, [6][]T{x, w, b})
	if !pool.ready {
		t.Fatal("the convolution did not pool")
	}
	want, where := make([]T, pool.shape.TotalSize()), make([]uint8, pool.shape.TotalSize())
	maxPool(pg, want, y, where)
	if got := pool.outData.([]T); !slices.Equal(got, want) || !slices.Equal(pool.where, where) {
		t.Fatal("the pooling in the convolution's pass differs from the pooling's own")
	}
}

// TestConvPoolGrad checks the first layer's fused gradient (convPoolGradOp)
// against the ops it replaces: the pooling's gradient spread out into dz
// (maxPoolGrad, with the ReLU's), the weight gradient from dz (convGradW,
// from the columns the forward pass keeps) and the bias gradient
// (biasGrad). With OpenBLAS's SkylakeX kernels, whose sums the kernel
// forms, they must agree bit for bit; with another BLAS, within twice the
// rounding bound of the sums, n·h·w·2⁻²⁴·Σ|terms| (the bias gradient is
// ours in either case: bit for bit). The forward pass with
// the fused gradient writes no output, only the pooled values, which must
// be the same.
func TestConvPoolGrad(t *testing.T) {
	if !kernels.Conv3x3PoolGradFits() {
		t.Skip("no AVX-512 on this CPU: the trainer takes the first layer's gradients from dz")
	}
	const n, C, side = 6, 16, 28
	g, pgeom, x, w, b, dy := poolGradCase(t, 11, n, 1, C, side, 0.3)
	var dz []float32 // the unfused run's
	run := func(fused bool) (dw, db, pooled []float32) {
		pool := &maxPoolOp{opBase: opBase{shape: tensor.Shape{n, C, pgeom.oh, pgeom.ow}}, g: pgeom, relu: true, train: true}
		conv := &convOp{g: g, C: C, act: actReLU, pool: pool, poolOnly: fused}
		conv.keep = !fused && g.K() < C && !conv.directW(tensor.Float32) // as SymDiff sets it
		y := make([]float32, n*C*g.ohw())
		convForward(conv, y, [6][]float32{x, w, b})
		pooled = slices.Clone(pool.outData.([]float32))
		dw, db = make([]float32, C*9), make([]float32, C)
		if fused {
			if slices.ContainsFunc(y, func(v float32) bool { return v != 0 }) {
				t.Fatal("the forward pass wrote its output, which nothing reads")
			}
			op := &convPoolGradOp{conv: conv}
			convPoolGrad(op, dw, [6][]float32{x, dy})
			biasGrad(&biasGradOp{outer: 1, channels: C, inner: 9, from: op}, db, [6][]float32{dw})
			return dw, db, pooled
		}
		dz = make([]float32, len(y))
		maxPoolGrad(pgeom, dz, y, dy, pool.where, true)
		convGradW(&convGradWOp{conv: conv}, dw, [6][]float32{x, dz})
		biasGrad(&biasGradOp{outer: n, channels: C, inner: g.ohw()}, db, [6][]float32{dz})
		return dw, db, pooled
	}
	dw, db, pooled := run(true)
	wantW, wantB, wantPooled := run(false)
	if !slices.Equal(pooled, wantPooled) {
		t.Fatal("the pooled values differ without the output")
	}
	if !slices.Equal(db, wantB) {
		t.Fatalf("bias gradient %v, want %v", db, wantB)
	}
	if gemmTransBSlow {
		if !slices.Equal(dw, wantW) {
			t.Fatalf("with OpenBLAS's SkylakeX kernels, weight gradient %v, want their %v", dw, wantW)
		}
		return
	}
	for i := range dw {
		c, k := i/9, i%9
		var bound float64
		for s := range n {
			for p := range g.ohw() {
				r, col := p/side+k/3-1, p%side+k%3-1
				if r >= 0 && r < side && col >= 0 && col < side {
					bound += math.Abs(float64(dz[(s*C+c)*g.ohw()+p]) * float64(x[s*side*side+r*side+col]))
				}
			}
		}
		tol := 2 * float64(n*g.ohw()) * 0x1p-24 * bound // each sum within the bound of the exact one
		if d := math.Abs(float64(dw[i]) - float64(wantW[i])); !(d <= tol) {
			t.Fatalf("dW[%d] = %v, want %v within %g", i, dw[i], wantW[i], tol)
		}
	}
}

// TestConvSparsePoolGrad checks the gradients that a later convolution
// (16→32, as in the conv model) takes from its pooling's gradient
// (convOp.sparsePoolGrad: conv+pool-grad-x and conv+pool-grad-w with the
// bias's sums) against the ops they replace, which spread the pooling's
// gradient out into dz first: the same values, bit for bit, and the same
// pooled output though the forward pass writes no other.
func TestConvSparsePoolGrad(t *testing.T) {
	const n, cin, C, side = 5, 16, 32, 14
	if !kernels.Conv3x3PoolGradSparseFits(cin, side, side) {
		t.Skip("no AVX-512 on this CPU: the trainer takes the layer's gradients from dz")
	}
	g, pgeom, x, w, b, dy := poolGradCase(t, 13, n, cin, C, side, 0.1)
	run := func(sparse bool) (dx, dw, db, pooled []float32) {
		pool := &maxPoolOp{opBase: opBase{shape: tensor.Shape{n, C, pgeom.oh, pgeom.ow}}, g: pgeom, relu: true, train: true}
		conv := &convOp{g: g, C: C, act: actReLU, pool: pool, poolOnly: sparse, needX: true}
		y := make([]float32, n*C*g.ohw())
		convForward(conv, y, [6][]float32{x, w, b})
		pooled = slices.Clone(pool.outData.([]float32))
		dx, dw, db = make([]float32, len(x)), make([]float32, len(w)), make([]float32, C)
		if sparse {
			if slices.ContainsFunc(y, func(v float32) bool { return v != 0 }) {
				t.Fatal("the forward pass wrote its output, which nothing reads")
			}
			op := &convPoolGradOp{conv: conv}
			convPoolGrad(op, dw, [6][]float32{x, dy})
			biasGrad(&biasGradOp{outer: 1, channels: C, inner: g.K(), from: op}, db, [6][]float32{dw})
			convPoolGradX(&convPoolGradXOp{conv: conv}, dx, [6][]float32{w, dy})
			return dx, dw, db, pooled
		}
		dz := make([]float32, len(y))
		maxPoolGrad(pgeom, dz, y, dy, pool.where, true)
		convGradW(&convGradWOp{conv: conv}, dw, [6][]float32{x, dz})
		biasGrad(&biasGradOp{outer: n, channels: C, inner: g.ohw()}, db, [6][]float32{dz})
		convGradX(&convGradXOp{conv: conv}, dx, [6][]float32{w, dz})
		return dx, dw, db, pooled
	}
	dx, dw, db, pooled := run(true)
	wantX, wantW, wantB, wantPooled := run(false)
	for _, c := range []struct {
		name      string
		got, want []float32
	}{{"pooled output", pooled, wantPooled}, {"input gradient", dx, wantX}, {"weight gradient", dw, wantW}, {"bias gradient", db, wantB}} {
		for i := range c.got {
			if math.Float32bits(c.got[i]) != math.Float32bits(c.want[i]) {
				t.Fatalf("%s[%d] = %v, without the sparse kernels %v", c.name, i, c.got[i], c.want[i])
			}
		}
	}
}

// poolGradCase returns a test case of a 3×3 "same" convolution of n
// samples of cin channels of side×side to C channels, with a ReLU and a
// 2×2 pooling after it: the geometries of both, an input like a ReLU's
// output (a third zeros), weights of the given scale, biases and the
// pooling's gradient, drawn from seed.
func poolGradCase(t *testing.T, seed uint64, n, cin, C, side int, scale float64) (g, pgeom convGeom, x, w, b, dy []float32) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, seed+1))
	var err error
	if g, err = newConvGeom(tensor.Shape{n, cin, side, side}, 3, 1, 1); err != nil {
		t.Fatal(err)
	}
	if pgeom, err = newConvGeom(tensor.Shape{n, C, side, side}, 2, 2, 0); err != nil {
		t.Fatal(err)
	}
	random := func(n int, scale float64) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(rng.NormFloat64() * scale)
		}
		return v
	}
	x, w, b = make([]float32, n*cin*side*side), random(C*cin*9, scale), random(C, 0.1)
	for i := range x {
		if rng.IntN(3) > 0 {
			x[i] = rng.Float32()
		}
	}
	return g, pgeom, x, w, b, random(n*C*pgeom.ohw(), 0.01)
}

// TestLossSigmoidGrad checks that the classic model's loss gradient also
// passes its sigmoid's (mseGradOp.sigmoid), with no sigmoid-grad op left in
// the graph, and that the fused gradient has the bits of the two steps
// apart: the loss's gradient k·(y − x), then kernels.SigmoidGrad.
func TestLossSigmoidGrad(t *testing.T) {
	const batch = 64
	tr := notebookTrainer(t, "classic")
	gr, err := newGraph(tr.cfg.Arch, partAutoencoder, batch, tr.tensors, allGradients)
	if err != nil {
		t.Fatal(err)
	}
	var lg *mseGradOp
	for _, n := range gr.g.AllNodes() {
		switch op := n.Op().(type) {
		case *mseGradOp:
			lg = op
		case *actGradOp:
			t.Errorf("graph still has a %s op", op.name)
		}
	}
	if lg == nil || !lg.sigmoid {
		t.Fatal("the loss's gradient does not pass the sigmoid's")
	}
	images, _ := benchImages(batch)
	x := images[:batch*784]
	copy(gr.inputData(), x)
	if err := gr.run(); err != nil {
		t.Fatal(err)
	}
	y := gr.outputData()
	got := lg.outData.([]float32)
	k := float32(2.0 / float64(len(y)))
	flushed := 0
	for i, v := range y {
		want := kernels.SigmoidGrad(k*(v-x[i]), v)
		if math.Float32bits(got[i]) != math.Float32bits(want) {
			t.Fatalf("dz[%d] = %v, want %v (y %v, x %v)", i, got[i], want, v, x[i])
		}
		if want == 0 && v != x[i] {
			flushed++
		}
	}
	t.Logf("%d of %d values; %d flushed to zero", len(y), len(y), flushed)
}
