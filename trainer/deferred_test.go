package trainer

import (
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
)

// TestDeferredLinearSameSteps checks that Trainer.Step, which computes the
// Linear weights' gradients itself and updates each weight as it goes
// (deferredLinear), agrees with the plain way: a graph that computes every
// gradient, then Adam.Update. It runs a few steps of each model from the
// same weights, with each of step's paths (the fused kernel where the build
// and CPU have it, and bands of gemm and Adam), and compares every weight
// and both Adam moments within stepTolerance: the paths call the BLAS with
// other shapes, or sum in their own order, so they may round differently.
// Each path is checked to be deterministic, to the bit.
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

// TestOverlappedUpdatesSameBits checks that queueing the deferred weight
// updates on the pool's backlog (overlapUpdates), to run beside the rest of
// the backward pass, gives the same weights and Adam moments, to the bit,
// as running each at once, on each of step's paths, for every model kind.
func TestOverlappedUpdatesSameBits(t *testing.T) {
	const batch, steps = 64, 3
	images, _ := benchImages(batch)
	paths := []string{"bands"}
	if fusedKernel {
		paths = append(paths, "fused")
	}
	defer func(on, fused bool) { overlapUpdates, fusedKernel = on, fused }(overlapUpdates, fusedKernel)
	for _, path := range paths {
		fusedKernel = path == "fused"
		for _, kind := range []string{"classic", "conv", "classic-vae"} {
			t.Run(path+"/"+kind, func(t *testing.T) {
				overlapped, direct := notebookTrainer(t, kind), notebookTrainer(t, kind)
				for s := 0; s < steps; s++ {
					x := images[s*batch*784 : (s+1)*batch*784]
					overlapUpdates = true
					lossO, err := overlapped.Step(x, batch)
					if err != nil {
						t.Fatal(err)
					}
					overlapUpdates = false
					lossD, err := direct.Step(x, batch)
					if err != nil {
						t.Fatal(err)
					}
					if lossO != lossD {
						t.Fatalf("step %d: loss %v overlapped, %v not", s+1, lossO, lossD)
					}
				}
				queued := 0
				for _, d := range overlapped.train[batch].deferred {
					queued += len(d.tasks)
				}
				if queued == 0 && !blasThreaded {
					t.Fatal("no update was queued on the backlog")
				}
				for i, p := range overlapped.w.Params {
					for _, c := range []struct {
						what      string
						got, want []float32
					}{
						{"weight", overlapped.w.Values[i], direct.w.Values[i]},
						{"m", overlapped.adam.M[i], direct.adam.M[i]},
						{"v", overlapped.adam.V[i], direct.adam.V[i]},
					} {
						if !slices.Equal(c.got, c.want) {
							at, d := farthest(c.got, c.want)
							t.Errorf("%s %s after %d steps: overlapped updates differ ([%d] %v against %v, %.2g apart)", p.Name, c.what, steps, at, c.got[at], c.want[at], d)
						}
					}
				}
			})
		}
	}
}

// TestOverlappedUpdatesTwoTrainers steps two trainers at once, on two
// goroutines that share the pool's backlog (and may run each other's
// tasks), and checks that both end with the weights of a trainer stepped
// alone with its updates run at once, to the bit.
func TestOverlappedUpdatesTwoTrainers(t *testing.T) {
	const batch, steps = 64, 6
	images, _ := benchImages(batch)
	defer func(on bool) { overlapUpdates = on }(overlapUpdates)
	overlapUpdates = true
	both := []*Trainer{notebookTrainer(t, "classic"), notebookTrainer(t, "classic")}
	var wg sync.WaitGroup
	for _, tr := range both {
		wg.Go(func() {
			for s := 0; s < steps; s++ {
				if _, err := tr.Step(images[s*batch*784:(s+1)*batch*784], batch); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	overlapUpdates = false
	alone := notebookTrainer(t, "classic")
	for s := 0; s < steps; s++ {
		if _, err := alone.Step(images[s*batch*784:(s+1)*batch*784], batch); err != nil {
			t.Fatal(err)
		}
	}
	for k, tr := range both {
		for i, p := range tr.w.Params {
			if !slices.Equal(tr.w.Values[i], alone.w.Values[i]) || !slices.Equal(tr.adam.M[i], alone.adam.M[i]) || !slices.Equal(tr.adam.V[i], alone.adam.V[i]) {
				t.Errorf("trainer %d: %s after %d steps beside another differs from a trainer's alone", k, p.Name, steps)
			}
		}
	}
}

// Tolerances of TestDeferredLinearSameSteps, after 4 steps from the same
// weights. Where a gradient is the sum of terms that nearly cancel, its
// rounding can change its sign, and Adam then moves the weight by up to lr
// the other way, so a few values may differ by up to 2·lr a step; nearly all
// must agree to a few float32 roundings.
const (
	// stepTolerance bounds relDiff for all but a stepOutliers share of the
	// values of each tensor.
	stepTolerance = 1e-4
	stepOutliers  = 1e-3
	// lossTolerance bounds the relative difference of each step's loss.
	lossTolerance = 1e-5
)

// checkDeferredSameSteps runs steps steps of the model kind both ways, and
// the deferred way a second time, and compares the results.
func checkDeferredSameSteps(t *testing.T, kind string, batch, steps int, images []float32) {
	fused, again, plain := notebookTrainer(t, kind), notebookTrainer(t, kind), notebookTrainer(t, kind)
	gr, err := newGraph(plain.cfg.Arch, partAutoencoder, batch, plain.tensors, allGradients)
	if err != nil {
		t.Fatal(err)
	}
	lr := plain.adam.LR
	deferred := 0
	for s := 0; s < steps; s++ {
		x := images[s*batch*784 : (s+1)*batch*784]
		lossF, err := fused.Step(x, batch)
		if err != nil {
			t.Fatal(err)
		}
		lossA, err := again.Step(x, batch)
		if err != nil {
			t.Fatal(err)
		}
		if lossA != lossF {
			t.Fatalf("step %d: loss %v, then %v from the same weights: not deterministic", s+1, lossF, lossA)
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
		if lossP := scalar(gr.lossVal); math.Abs(lossF-lossP) > lossTolerance*math.Abs(lossP) {
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
			what             string
			got, again, want []float32
			most             float64 // the largest difference a step can make, times steps, twice
		}{
			{"weight", fused.w.Values[i], again.w.Values[i], plain.w.Values[i], 2 * float64(steps) * lr},
			{"m", fused.adam.M[i], again.adam.M[i], plain.adam.M[i], math.Inf(1)},
			{"v", fused.adam.V[i], again.adam.V[i], plain.adam.V[i], math.Inf(1)},
		} {
			if !slices.Equal(c.got, c.again) {
				t.Fatalf("%s %s after %d steps: two runs from the same weights differ: not deterministic", p.Name, c.what, steps)
			}
			far := 0
			for j := range c.got {
				if relDiff(c.got[j], c.want[j]) > stepTolerance {
					far++
				}
				if d := math.Abs(float64(c.got[j]) - float64(c.want[j])); d > c.most {
					t.Fatalf("%s %s[%d] after %d steps: %v, plain graph %v: further apart than Adam can move it", p.Name, c.what, j, steps, c.got[j], c.want[j])
				}
			}
			if far > 0 {
				t.Logf("%s %s: %d of %d values further than %g from the plain graph's", p.Name, c.what, far, len(c.got), stepTolerance)
			}
			if float64(far) > stepOutliers*float64(len(c.got)) {
				at, d := farthest(c.got, c.want)
				t.Errorf("%s %s after %d steps: %d of %d values further than %g from the plain graph's (the farthest: [%d] %v against %v, %.2g apart)",
					p.Name, c.what, steps, far, len(c.got), stepTolerance, at, c.got[at], c.want[at], d)
			}
		}
	}
}

// relDiff is how far a and b are apart relative to the larger of their
// sizes, with sizes below 1e-6 counted as 1e-6.
func relDiff(a, b float32) float64 {
	return math.Abs(float64(a)-float64(b)) / max(math.Abs(float64(a)), math.Abs(float64(b)), 1e-6)
}

// farthest returns the index of the value of got farthest from want's, by
// relDiff, and that distance.
func farthest(got, want []float32) (int, float64) {
	at, worst := 0, 0.0
	for i := range got {
		if d := relDiff(got[i], want[i]); d > worst {
			at, worst = i, d
		}
	}
	return at, worst
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
