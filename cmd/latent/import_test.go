package main

import (
	"encoding/binary"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/latent-ai/latent/checkpoint"
	"github.com/latent-ai/latent/internal/torchtest"
	"github.com/latent-ai/latent/npyarray"
	"github.com/nlpodyssey/safetensors"
)

// codesTolerance is how far latent's codes of an imported model may be
// from PyTorch's: 1e-5, relative to codes larger than 1. The two sum each
// code's 512 or 1568 products in their own orders.
const codesTolerance = 1e-5

// TestImportNotebookPth trains the notebook's own classes in PyTorch (1
// epoch on 640 images, the notebook's recipe), saves each with the
// notebook's save cell (bench/notebook_pth.py), and checks that
// `latent import`, `export` and `encode` give PyTorch's codes of the whole
// MNIST test set, for both models; and that `latent info` says what the .pth
// file is.
func TestImportNotebookPth(t *testing.T) {
	torchtest.Need(t)
	ortNeedRuntime(t)
	data := ortMNISTDir(t)
	for _, kind := range []string{"classic", "conv"} {
		t.Run(kind, func(t *testing.T) {
			tmp := t.TempDir()
			torchDir, run := filepath.Join(tmp, "torch"), filepath.Join(tmp, "run")
			out, err := exec.Command(torchtest.Python, torchtest.Script("notebook_pth.py"), "--kind", kind, "--out", torchDir,
				"--data", data).CombinedOutput()
			if err != nil {
				t.Fatalf("notebook_pth.py: %v\n%s", err, out)
			}
			t.Logf("%s", out)
			pth := filepath.Join(torchDir, "model.pth")

			code, stdout, stderr := latentOut(t, "info", pth)
			if code != 0 || !strings.Contains(stdout, "PyTorch state dict") || !strings.Contains(stdout, "latent import "+pth+" --model "+kind) {
				t.Errorf("info on the .pth: exit %d, stdout %q, stderr %q", code, stdout, stderr)
			}
			for _, args := range [][]string{
				{"import", pth, "--model", kind, "--out", run},
				{"export", run, "--no-stats", "--quiet"},
				{"encode", run, "--data", data, "--split", "test", "--out", filepath.Join(run, "codes.npy"), "--quiet"},
			} {
				if code, stderr := ortLatent(t, args...); code != 0 {
					t.Fatalf("latent %s: exit %d: %s", strings.Join(args, " "), code, stderr)
				}
			}
			m, err := checkpoint.Load(filepath.Join(run, modelFile))
			if err != nil {
				t.Fatal(err)
			}
			if m.Meta.Imported != pth {
				t.Errorf("recorded as imported from %q, want %q", m.Meta.Imported, pth)
			}
			got, gshape, err := npyarray.ReadFile(filepath.Join(run, "codes.npy"))
			if err != nil {
				t.Fatal(err)
			}
			want, wshape, err := npyarray.ReadFile(filepath.Join(torchDir, "codes.npy"))
			if err != nil {
				t.Fatal(err)
			}
			if len(gshape) != 2 || gshape[0] != 10000 || gshape[0] != wshape[0] || gshape[1] != wshape[1] {
				t.Fatalf("latent's codes %v, PyTorch's %v", gshape, wshape)
			}
			worst := 0.0
			for i := range got {
				d := math.Abs(float64(got[i])-float64(want[i])) / max(1, math.Abs(float64(want[i])))
				if d > codesTolerance {
					t.Fatalf("code %d of image %d: latent %v, PyTorch %v", i%gshape[1], i/gshape[1], got[i], want[i])
				}
				worst = max(worst, d)
			}
			t.Logf("%s: 10,000 test codes within %.2g of PyTorch's", kind, worst)
		})
	}
}

// TestImportErrors checks that import names each tensor that does not fit
// and refuses what is not a state dict, and that info tells a plain
// safetensors state dict from a latent model file.
func TestImportErrors(t *testing.T) {
	tmp := t.TempDir()
	classic := ortRun(t, 10) // a classic model file in a run folder
	plainDir := filepath.Join(tmp, "plain")
	os.MkdirAll(plainDir, 0o755)
	// A state dict without latent's metadata, as safetensors.torch.save_file writes.
	m, err := checkpoint.Load(filepath.Join(classic, modelFile))
	if err != nil {
		t.Fatal(err)
	}
	plain := filepath.Join(plainDir, "weights.safetensors")
	writePlainSafetensors(t, plain, m)

	code, stdout, _ := latentOut(t, "info", plain)
	if code != 0 || !strings.Contains(stdout, "safetensors state dict without latent's metadata") || !strings.Contains(stdout, "--model classic") {
		t.Errorf("info on a plain safetensors state dict: exit %d, %q", code, stdout)
	}
	if code, stderr := ortLatent(t, "import", plain, "--model", "classic", "--out", filepath.Join(tmp, "ok")); code != 0 {
		t.Fatalf("import of a plain safetensors state dict: exit %d: %s", code, stderr)
	}
	garbage := filepath.Join(tmp, "garbage.pth")
	os.WriteFile(garbage, []byte("PK\x03\x04 not really a zip"), 0o644)
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"import", plain, "--model", "conv", "--out", filepath.Join(tmp, "r1")},
			[]string{"encoder.0.weight has shape [512 784], want [16 1 3 3]", "encoder.9.weight missing", "unexpected tensor decoder.4.bias"}},
		{[]string{"import", plain, "--model", "classic", "--bottleneck", "7", "--out", filepath.Join(tmp, "r2")},
			[]string{"encoder.4.weight has shape [10 512], want [7 512]"}},
		{[]string{"import", garbage, "--model", "classic", "--out", filepath.Join(tmp, "r3")}, []string{garbage}},
		{[]string{"import", plain, "--out", filepath.Join(tmp, "r4")}, []string{"--model and --out are required"}},
		{[]string{"import", plain, "--model", "classic", "--out", filepath.Join(tmp, "ok")}, []string{"already holds a model"}},
	} {
		code, stderr := ortLatent(t, tc.args...)
		if code == 0 {
			t.Errorf("latent %s: exit 0, want an error", strings.Join(tc.args, " "))
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(stderr, w) {
				t.Errorf("latent %s: %q does not say %q", strings.Join(tc.args, " "), stderr, w)
			}
		}
	}
}

// latentOut runs latent with args as a process of its own and returns its
// exit code, stdout and stderr.
func latentOut(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	cmd := latentCmd(args...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if err != nil {
		var exit *exec.ExitError
		if !errors.As(err, &exit) {
			t.Fatal(err)
		}
		code = exit.ExitCode()
	}
	return code, stdout.String(), stderr.String()
}

// writePlainSafetensors writes the weights of m as a safetensors state dict
// with no metadata, as safetensors.torch.save_file(model.state_dict()) does.
func writePlainSafetensors(t *testing.T, path string, m *checkpoint.Model) {
	t.Helper()
	ts := map[string]safetensors.TensorView{}
	for _, p := range m.Arch.Params() {
		shape := make([]uint64, len(p.Shape))
		for i, d := range p.Shape {
			shape[i] = uint64(d)
		}
		b := make([]byte, 4*len(m.Params[p.Name]))
		for i, v := range m.Params[p.Name] {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
		}
		tv, err := safetensors.NewTensorView(safetensors.F32, shape, b)
		if err != nil {
			t.Fatal(err)
		}
		ts[p.Name] = tv
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := safetensors.SerializeToWriter(ts, nil, f); err != nil {
		t.Fatal(err)
	}
}
