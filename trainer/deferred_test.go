package trainer

import (
	"math"
	"slices"
	"strings"
	"testing"
)

// TestDeferredLinearSameSteps checks that Trainer.Step, which computes the
// Linear weights' gradients itself and updates each weight as it goes
// (deferredLinear), gives the same bits as the plain way: a graph that
// computes every gradient, then Adam.Update. It runs a few steps of each
// model from the same weights, with each of step's paths (the fused kernel
// where the build and CPU have it, and bands of gemm and Adam), and
// compares every weight and both Adam moments.
func TestDeferredLinearSameSteps(t *testing.T) {
	const batch, steps = 64, 4
	images, _ := benchImages(batch)
	paths := []string{"bands"} // deferredLinear.step's gemm and Adam on bands
	if fusedKernel {
		paths = append(paths, "fused") // its kernel, the gradient in registers
	}
	defer func(on bool) { fusedKernel = on }(fusedKernel)
	for _, path := range paths {
		fusedKernel = path == "fused"
		for _, kind := range []string{"classic", "conv"} {
			t.Run(path+"/"+kind, func(t *testing.T) { checkDeferredSameSteps(t, kind, batch, steps, images) })
		}
	}
}

// checkDeferredSameSteps runs steps steps of the model kind both ways and
// compares the results.
func checkDeferredSameSteps(t *testing.T, kind string, batch, steps int, images []float32) {
	fused, plain := notebookTrainer(t, kind), notebookTrainer(t, kind)
	gr, err := newGraph(plain.cfg.Arch, partAutoencoder, batch, plain.tensors, allGradients)
	if err != nil {
		t.Fatal(err)
	}
	deferred := 0
	for s := 0; s < steps; s++ {
		x := images[s*batch*784 : (s+1)*batch*784]
		lossF, err := fused.Step(x, batch)
		if err != nil {
			t.Fatal(err)
		}
		deferred = len(fused.train[batch].deferred)
		copy(gr.inputData(), x)
		if err := gr.run(); err != nil {
			t.Fatal(err)
		}
		grads := make([][]float32, len(gr.params))
		for i, p := range gr.params {
			g, err := p.Grad()
			if err != nil {
				t.Fatal(err)
			}
			grads[i] = g.Data().([]float32)
		}
		plain.adam.Update(plain.w.Values, grads)
		if lossP := scalar(gr.lossVal); lossF != lossP {
			t.Fatalf("step %d: loss %v, plain graph %v", s+1, lossF, lossP)
		}
	}
	if want := map[string]int{"classic": 6, "conv": 4}[kind]; deferred != want {
		t.Fatalf("%d Linear weights deferred, want %d", deferred, want)
	}
	for _, d := range fused.train[batch].deferred {
		if !d.inRun {
			t.Errorf("%s: updated after the run, not during it", fused.w.Params[d.param].Name)
		}
	}
	for i, p := range fused.w.Params {
		for _, c := range []struct {
			what      string
			got, want []float32
		}{
			{"weight", fused.w.Values[i], plain.w.Values[i]},
			{"m", fused.adam.M[i], plain.adam.M[i]},
			{"v", fused.adam.V[i], plain.adam.V[i]},
		} {
			for j := range c.got {
				if math.Float32bits(c.got[j]) != math.Float32bits(c.want[j]) {
					t.Fatalf("%s %s[%d] after %d steps: %v, plain graph %v", p.Name, c.what, j, steps, c.got[j], c.want[j])
				}
			}
		}
	}
}

// TestLinearWeightStep checks the fused weight-gradient and Adam kernel of
// the openblas build against gemm and the Adam kernel, to the bit, on
// shapes with row and column remainders, and on a range of rows.
func TestLinearWeightStep(t *testing.T) {
	tests := []struct{ n, in, out, r0, r1 int }{
		{64, 784, 512, 0, 784},
		{64, 784, 512, 101, 390},
		{64, 13, 10, 0, 13},
		{3, 7, 70, 2, 7},
		{1, 5, 16, 0, 5},
		{64, 128, 1568, 0, 128},
		{130, 9, 65, 0, 9},
		{384, 20, 100, 0, 20},
		{1000, 20, 100, 0, 20}, // past fusedMaxBatch: no fused kernel
	}
	for _, tc := range tests {
		x, dz := make([]float32, tc.n*tc.in), make([]float32, tc.n*tc.out)
		for i := range x {
			x[i] = float32(math.Sin(float64(i)))
		}
		for i := range dz {
			dz[i] = float32(math.Cos(float64(i)*0.7)) * 1e-2
		}
		size := tc.in * tc.out
		p, m, v := make([]float32, size), make([]float32, size), make([]float32, size)
		for i := range p {
			p[i], m[i], v[i] = float32(i%11)*0.01, float32(i%5-2)*1e-3, float32(i%3)*1e-6
		}
		p2, m2, v2 := slices.Clone(p), slices.Clone(m), slices.Clone(v)
		s := adamStep{stepSize: 1e-3 / 0.1, invBC2Sqrt: 31.6, b1: 0.9, b2: 0.999, eps: 1e-8}
		if !linearWeightStep(x, dz, tc.n, tc.in, tc.out, tc.r0, tc.r1, p, m, v, s) {
			if tc.n <= fusedMaxBatch && fusedKernel {
				t.Fatalf("%+v: no fused step on a CPU with AVX-512", tc)
			}
			if !slices.Equal(p, p2) {
				t.Fatalf("%+v: reported no fused step, but changed the weights", tc)
			}
			continue
		}
		if tc.n > fusedMaxBatch {
			t.Fatalf("%+v: fused step past fusedMaxBatch %d", tc, fusedMaxBatch)
		}
		rows := tc.r1 - tc.r0
		g := make([]float32, rows*tc.out)
		gemmCall(true, false, rows, tc.out, tc.n, x[tc.r0:], tc.in, dz, tc.out, 0, g, tc.out)
		lo, hi := tc.r0*tc.out, tc.r1*tc.out
		adamKernel(p2[lo:hi], g, m2[lo:hi], v2[lo:hi], s.stepSize, s.invBC2Sqrt, s.b1, s.b2, s.eps)
		for i := range p {
			if math.Float32bits(p[i]) != math.Float32bits(p2[i]) || math.Float32bits(m[i]) != math.Float32bits(m2[i]) ||
				math.Float32bits(v[i]) != math.Float32bits(v2[i]) {
				t.Fatalf("%+v: value %d (row %d): fused p,m,v = %v,%v,%v; gemm and Adam %v,%v,%v",
					tc, i, i/tc.out, p[i], m[i], v[i], p2[i], m2[i], v2[i])
			}
		}
	}
}

// TestDivergedStepChangesNothing checks that a step whose loss is not
// finite returns an error and leaves every weight, both Adam moments and
// the step count as they were, although the run updates the Linear weights
// while it goes (graph.hookDeferred), and that training then goes on.
func TestDivergedStepChangesNothing(t *testing.T) {
	const batch = 64
	images, _ := benchImages(batch)
	for _, kind := range []string{"classic", "conv"} {
		t.Run(kind, func(t *testing.T) {
			tr := notebookTrainer(t, kind)
			if _, err := tr.Step(images[:batch*784], batch); err != nil {
				t.Fatal(err)
			}
			var before [][]float32
			for i := range tr.w.Values {
				before = append(before, slices.Clone(tr.w.Values[i]), slices.Clone(tr.adam.M[i]), slices.Clone(tr.adam.V[i]))
			}
			step := tr.adam.Step
			bad := slices.Clone(images[batch*784 : 2*batch*784])
			bad[100] = float32(math.Inf(1))
			if _, err := tr.Step(bad, batch); err == nil || !strings.Contains(err.Error(), "diverged") {
				t.Fatalf("step on an infinite pixel: error %v, want one that says training diverged", err)
			}
			if tr.adam.Step != step {
				t.Errorf("Adam step %d after the failed step, want %d", tr.adam.Step, step)
			}
			for i := range tr.w.Values {
				for j, now := range [][]float32{tr.w.Values[i], tr.adam.M[i], tr.adam.V[i]} {
					if !slices.Equal(now, before[3*i+j]) {
						t.Fatalf("%s (%s) changed by a failed step", tr.w.Params[i].Name, []string{"weight", "m", "v"}[j])
					}
				}
			}
			if _, err := tr.Step(images[batch*784:2*batch*784], batch); err != nil {
				t.Fatalf("step after the failed one: %v", err)
			}
		})
	}
}
