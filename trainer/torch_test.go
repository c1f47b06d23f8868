package trainer

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"codeberg.org/sbinet/npyio"
	"github.com/latent-ai/latent/checkpoint"
	"github.com/latent-ai/latent/models"
	"gonum.org/v1/gonum/mat"
)

// torchPython is Debian's Python, which has python3-torch.
const torchPython = "/usr/bin/python3"

// needTorch skips the test where PyTorch is missing, except under CI, which
// installs it (scripts/setup.sh).
func needTorch(t *testing.T) {
	t.Helper()
	if err := exec.Command(torchPython, "-c", "import torch").Run(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("PyTorch is needed: %s -c 'import torch': %v (run scripts/setup.sh)", torchPython, err)
		}
		t.Skipf("PyTorch not installed (%v): run scripts/setup.sh", err)
	}
}

func benchScript(name string) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "bench", name)
}

// writeMatrix writes n rows of values as an [n, len/n] .npy file (float64,
// which holds every float32 exactly).
func writeMatrix(t *testing.T, path string, v []float32, n int) {
	t.Helper()
	d := make([]float64, len(v))
	for i, x := range v {
		d[i] = float64(x)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := npyio.Write(f, mat.NewDense(n, len(v)/n, d)); err != nil {
		t.Fatal(err)
	}
}

// TestPyTorchRoundTrip trains each model briefly in Go, loads the saved
// model into the notebook's PyTorch classes with load_state_dict(strict=True)
// (bench/torch_roundtrip.py), and checks that PyTorch gives the same codes
// (within 1e-4) and reconstructions (within 1e-5) on 1,000 real test images
// as the Gorgonia forward pass.
func TestPyTorchRoundTrip(t *testing.T) {
	needTorch(t)
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
			if _, err := tr.Run(context.Background(), dir, train, Data{}, nil, nil); err != nil {
				t.Fatal(err)
			}
			f := NewForward(tr.Weights())
			codes, err := f.Encode(test.Images, test.N)
			if err != nil {
				t.Fatal(err)
			}
			recons, err := f.Decode(codes, test.N)
			if err != nil {
				t.Fatal(err)
			}
			x, c, r := filepath.Join(dir, "x.npy"), filepath.Join(dir, "c.npy"), filepath.Join(dir, "r.npy")
			writeMatrix(t, x, test.Images, test.N)
			writeMatrix(t, c, codes, test.N)
			writeMatrix(t, r, recons, test.N)
			out, err := exec.Command(torchPython, benchScript("torch_roundtrip.py"), "--model", filepath.Join(dir, ModelFile),
				"--images", x, "--codes", c, "--recons", r, "--code-tol", "1e-4", "--recon-tol", "1e-5").Output()
			var exit *exec.ExitError
			if errors.As(err, &exit) {
				t.Fatalf("torch_roundtrip.py: %v\n%s\n%s", err, out, exit.Stderr)
			} else if err != nil {
				t.Fatal(err)
			}
			var res map[string]any
			if err := json.Unmarshal(out, &res); err != nil {
				t.Fatalf("torch_roundtrip.py printed %q: %v", out, err)
			}
			t.Logf("%s: %s", kind, out)
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
	needTorch(t)
	train, _ := realMNIST(t)
	for _, kind := range models.Kinds() {
		t.Run(kind, func(t *testing.T) {
			arch, _ := models.New(kind, 10)
			tr, err := New(DefaultConfig(arch))
			if err != nil {
				t.Fatal(err)
			}
			init := filepath.Join(t.TempDir(), "init.safetensors")
			if err := tr.Model().Save(init); err != nil {
				t.Fatal(err)
			}
			for s := 0; s < 3; s++ {
				if _, err := tr.Step(train.Images[s*64*784:(s+1)*64*784], 64); err != nil {
					t.Fatal(err)
				}
			}
			trained := filepath.Join(t.TempDir(), "trained.safetensors")
			if err := tr.Model().Save(trained); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(torchPython, benchScript("torch_steps.py"), "--init", init, "--trained", trained,
				"--data", mnistDirFor(t), "--steps", "3", "--tol", "1e-4").CombinedOutput()
			if err != nil {
				t.Fatalf("torch_steps.py: %v\n%s", err, out)
			}
			t.Logf("%s: %s", kind, out)
		})
	}
}

func readNpy(t *testing.T, path string) []float32 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var v []float32
	if err := npyio.Read(f, &v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return v
}

// TestPyTorchWeightsLoad has PyTorch initialise each notebook model and
// save its state dict, loads it in Go, and checks that the Gorgonia forward
// pass gives PyTorch's codes (within 1e-4) and reconstructions (within 1e-5)
// on 1,000 real test images: weights move from PyTorch to latent too.
func TestPyTorchWeightsLoad(t *testing.T) {
	needTorch(t)
	_, test := realMNIST(t)
	test = firstN(test, 1000)
	for _, kind := range models.Kinds() {
		t.Run(kind, func(t *testing.T) {
			dir := t.TempDir()
			x := filepath.Join(dir, "x.npy")
			writeMatrix(t, x, test.Images, test.N)
			model, c, r := filepath.Join(dir, "torch.safetensors"), filepath.Join(dir, "c.npy"), filepath.Join(dir, "r.npy")
			out, err := exec.Command(torchPython, benchScript("torch_roundtrip.py"), "--write-state-dict", model,
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
			codes, err := f.Encode(test.Images, test.N)
			if err != nil {
				t.Fatal(err)
			}
			recons, err := f.Decode(codes, test.N)
			if err != nil {
				t.Fatal(err)
			}
			if d := maxAbs(codes, readNpy(t, c)); d > 1e-4 {
				t.Errorf("codes differ from PyTorch's by up to %g", d)
			}
			if d := maxAbs(recons, readNpy(t, r)); d > 1e-5 {
				t.Errorf("reconstructions differ from PyTorch's by up to %g", d)
			}
		})
	}
}

func maxAbs(a, b []float32) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	var d float64
	for i := range a {
		d = math.Max(d, math.Abs(float64(a[i])-float64(b[i])))
	}
	return d
}
