package trainer

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/latent-ai/latent/checkpoint"
	"github.com/latent-ai/latent/internal/mnisttest"
	"github.com/latent-ai/latent/internal/torchtest"
	"github.com/latent-ai/latent/models"
)

// TestPyTorchRoundTrip trains each model briefly in Go, loads the saved
// model into the notebook's PyTorch classes with load_state_dict(strict=True)
// (bench/torch_roundtrip.py), and checks that PyTorch gives the same codes
// (within 1e-4) and reconstructions (within 1e-5) on 1,000 real test images
// as the Gorgonia forward pass.
func TestPyTorchRoundTrip(t *testing.T) {
	torchtest.Need(t)
	train, test := realMNIST(t)
	test = firstN(test, 1000)
	for _, kind := range models.Kinds() {
		t.Run(kind, func(t *testing.T) {
			arch, _ := models.New(kind, 10)
			cfg := DefaultConfig(arch)
			cfg.Epochs, cfg.Limit = 1, 640
			tr, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			if _, err := tr.Run(context.Background(), filesIn(dir), train, Data{}, Hooks{}); err != nil {
				t.Fatal(err)
			}
			f := NewForward(tr.Weights())
			codes, err := f.Encode(floats(test), test.N)
			if err != nil {
				t.Fatal(err)
			}
			recons, err := f.Decode(codes, test.N)
			if err != nil {
				t.Fatal(err)
			}
			x, c, r := filepath.Join(dir, "x.npy"), filepath.Join(dir, "c.npy"), filepath.Join(dir, "r.npy")
			torchtest.WriteMatrix(t, x, floats(test), test.N)
			torchtest.WriteMatrix(t, c, codes, test.N)
			torchtest.WriteMatrix(t, r, recons, test.N)
			res := torchtest.RoundTrip(t, filesIn(dir).Model, x, c, r)
			t.Logf("%s: codes within %v, reconstructions within %v of PyTorch", kind, res["code_max_abs_diff"], res["recon_max_abs_diff"])
		})
	}
}

// TestPyTorchSameSteps saves a model before its first step, trains it for
// three steps in Go, and checks that PyTorch's Adam, started from the same
// weights on the same batches, ends within 1e-4 of Go's weights
// (bench/torch_steps.py). Each step moves a weight by up to lr = 1e-3, and
// Adam's normalisation turns float rounding in a near-zero gradient into a
// visible part of a step, so 1e-4 is tight: a wrong gradient or update
// differs by about 1e-3.
func TestPyTorchSameSteps(t *testing.T) {
	torchtest.Need(t)
	train, _ := realMNIST(t)
	trainFloats := floats(firstN(train, 3*64))
	for _, tc := range []struct {
		kind    string
		decay   float64
		lrScale string
	}{{"classic", 0, ""}, {"conv", 0, ""}, {"classic", 10, ""}, {"conv", 10, ""}, {"conv", 10, "encoder.7.weight=0.1,decoder.2=3"}} {
		// A decay of 10 moves each weight by 1% a step: without it, the
		// weights would differ from PyTorch's AdamW by far more than 1e-4.
		// The factors make a step of encoder.7's weight 1e-4 and one of
		// decoder.2's weight and bias 3e-3: without them, 9e-4 and 2e-3 from
		// PyTorch's parameter groups.
		kind := tc.kind
		name := kind
		if tc.decay > 0 {
			name += "-adamw"
		}
		if tc.lrScale != "" {
			name += "-lr-scale"
		}
		t.Run(name, func(t *testing.T) {
			arch, _ := models.New(kind, 10)
			cfg := DefaultConfig(arch)
			cfg.WeightDecay = tc.decay
			var err error
			if cfg.LRScale, err = ParseLRScale(tc.lrScale); err != nil {
				t.Fatal(err)
			}
			tr, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			init := filepath.Join(t.TempDir(), "init.safetensors")
			if err := tr.Model().Save(init); err != nil {
				t.Fatal(err)
			}
			for s := 0; s < 3; s++ {
				if _, err := tr.Step(trainFloats[s*64*784:(s+1)*64*784], 64); err != nil {
					t.Fatal(err)
				}
			}
			trained := filepath.Join(t.TempDir(), "trained.safetensors")
			if err := tr.Model().Save(trained); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(torchtest.Python, torchtest.Script("torch_steps.py"), "--init", init, "--trained", trained,
				"--data", mnistDirFor(t), "--steps", "3", "--tol", "1e-4", "--weight-decay", fmt.Sprint(tc.decay), "--lr-scale", tc.lrScale).CombinedOutput()
			if err != nil {
				t.Fatalf("torch_steps.py: %v\n%s", err, out)
			}
			t.Logf("%s: %s", name, out)
		})
	}
}

// TestPyTorchSameStepsVAE is TestPyTorchSameSteps for the VAEs: PyTorch
// takes the noise ε that the Go trainer draws at each step (written to a
// .npy file), so both take the same three steps of BCE + β·KL from the same
// weights, with β = 4 so that a wrong KL gradient would show. Every value
// but at most 0.01% ends within 1e-4 of PyTorch's, and those few within the
// 3·lr that three steps can move a weight: the loss is summed over each
// image's pixels (and its gradient 25,000 times the mean MSE's), so float
// noise in a gradient that is zero in exact arithmetic stands well above
// Adam's eps (1e-8), and its normalisation can turn such noise of another
// sign into a whole step (conv-vae: 5 of 414,021 values).
func TestPyTorchSameStepsVAE(t *testing.T) {
	torchtest.Need(t)
	train, _ := realMNIST(t)
	trainFloats := floats(firstN(train, 3*64))
	for _, kind := range []string{"classic-vae", "conv-vae"} {
		t.Run(kind, func(t *testing.T) {
			arch, _ := models.New(kind, 10)
			cfg := DefaultConfig(arch)
			cfg.Beta, cfg.Seed = 4, 3
			tr, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			init := filepath.Join(dir, "init.safetensors")
			if err := tr.Model().Save(init); err != nil {
				t.Fatal(err)
			}
			var eps []float32
			for s := 0; s < 3; s++ {
				if _, err := tr.Step(trainFloats[s*64*784:(s+1)*64*784], 64); err != nil {
					t.Fatal(err)
				}
				gr := tr.train[64]
				for _, e := range gr.vae.eps {
					eps = append(eps, float32(e))
				}
			}
			epsFile := filepath.Join(dir, "eps.npy")
			torchtest.WriteMatrix(t, epsFile, eps, 3*64)
			trained := filepath.Join(dir, "trained.safetensors")
			if err := tr.Model().Save(trained); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(torchtest.Python, torchtest.Script("torch_steps.py"), "--init", init, "--trained", trained,
				"--data", mnistDirFor(t), "--steps", "3", "--tol", "1e-4", "--eps", epsFile, "--beta", "4",
				"--max-over", fmt.Sprint(arch.NumParams()/10000)).CombinedOutput()
			if err != nil {
				t.Fatalf("torch_steps.py: %v\n%s", err, out)
			}
			t.Logf("%s: %s", kind, out)
		})
	}
}

// TestPyTorchWeightsLoad has PyTorch initialise each notebook model and
// save its state dict, loads it in Go, and checks that the Gorgonia forward
// pass gives PyTorch's codes (within 1e-4) and reconstructions (within 1e-5)
// on 1,000 real test images: weights move from PyTorch to latent too.
func TestPyTorchWeightsLoad(t *testing.T) {
	torchtest.Need(t)
	_, test := realMNIST(t)
	test = firstN(test, 1000)
	for _, kind := range models.Kinds() {
		t.Run(kind, func(t *testing.T) {
			dir := t.TempDir()
			x := filepath.Join(dir, "x.npy")
			torchtest.WriteMatrix(t, x, floats(test), test.N)
			model, c, r := filepath.Join(dir, "torch.safetensors"), filepath.Join(dir, "c.npy"), filepath.Join(dir, "r.npy")
			out, err := exec.Command(torchtest.Python, torchtest.Script("torch_roundtrip.py"), "--write-state-dict", model,
				"--kind", kind, "--seed", "5", "--images", x, "--codes", c, "--recons", r).CombinedOutput()
			if err != nil {
				t.Fatalf("torch_roundtrip.py: %v\n%s", err, out)
			}
			m, err := checkpoint.Load(model)
			if err != nil {
				t.Fatal(err)
			}
			w, err := FromModel(m)
			if err != nil {
				t.Fatal(err)
			}
			f := NewForward(w)
			codes, err := f.Encode(floats(test), test.N)
			if err != nil {
				t.Fatal(err)
			}
			recons, err := f.Decode(codes, test.N)
			if err != nil {
				t.Fatal(err)
			}
			if d := torchtest.MaxAbsDiff(codes, torchtest.ReadFloat32(t, c)); d > 1e-4 {
				t.Errorf("codes differ from PyTorch's by up to %g", d)
			}
			if d := torchtest.MaxAbsDiff(recons, torchtest.ReadFloat32(t, r)); d > 1e-5 {
				t.Errorf("reconstructions differ from PyTorch's by up to %g", d)
			}
		})
	}
}

// TestDeadUnitsScript runs bench/dead_units.py, which the README's recipe
// search uses to count the ReLU units that never fire, on a conv model with
// planted units: a Linear feature and a convolution channel whose biases
// (-1e6) keep them below zero on every image, and a feature whose bias
// (+1e6) keeps it above. The script must list the first two and not the
// third, on real test images, with each ReLU's width from the architecture.
func TestDeadUnitsScript(t *testing.T) {
	torchtest.Need(t)
	dir := mnisttest.Dir(t)
	arch, err := models.New("conv", 10)
	if err != nil {
		t.Fatal(err)
	}
	w := Init(arch, 0)
	plant := map[string]struct {
		unit int
		bias float32
	}{"encoder.7.bias": {5, -1e6}, "encoder.0.bias": {3, -1e6}, "decoder.0.bias": {7, 1e6}}
	for i, p := range w.Params {
		if pl, ok := plant[p.Name]; ok {
			w.Values[i][pl.unit] = pl.bias
		}
	}
	model := filepath.Join(t.TempDir(), "model.safetensors")
	if err := w.Model().Save(model); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(torchtest.Python, torchtest.Script("dead_units.py"), model, "--data", dir,
		"--split", "test", "--limit", "300", "--json").CombinedOutput()
	if err != nil {
		t.Fatalf("dead_units.py: %v\n%s", err, out)
	}
	var report map[string]struct {
		Units int   `json:"units"`
		Dead  []int `json:"dead"`
	}
	if err := json.Unmarshal(out, &report); err != nil {
		t.Fatalf("dead_units.py printed %q: %v", out, err)
	}
	want := map[string]int{"encoder.1": 16, "encoder.4": 32, "encoder.8": 128, "decoder.1": 128, "decoder.3": 1568, "decoder.6": 16}
	if len(report) != len(want) {
		t.Fatalf("dead_units.py reports %d ReLUs, want %d: %s", len(report), len(want), out)
	}
	for name, units := range want {
		if r := report[name]; r.Units != units {
			t.Errorf("%s: %d units, want %d", name, r.Units, units)
		}
	}
	for _, c := range []struct {
		relu string
		unit int
		dead bool
	}{{"encoder.8", 5, true}, {"encoder.1", 3, true}, {"decoder.1", 7, false}} {
		if got := slices.Contains(report[c.relu].Dead, c.unit); got != c.dead {
			t.Errorf("%s unit %d: listed as dead %v, want %v (dead: %v)", c.relu, c.unit, got, c.dead, report[c.relu].Dead)
		}
	}
}
