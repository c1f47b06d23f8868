package main

import (
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/latent-ai/latent/inference"
	"github.com/latent-ai/latent/internal/modeltest"
	"github.com/latent-ai/latent/models"
	"github.com/latent-ai/latent/npyarray"
)

// gpuBuild returns the GPU build's core library that make setup-cuda
// installs. CI installs it (make check), so there its absence fails the
// test; elsewhere it skips, saying how to install it.
func gpuBuild(t *testing.T) string {
	t.Helper()
	core := inference.CachedGPULibraryPath()
	if _, err := os.Stat(core); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("the GPU build is not installed in CI (%v): make check runs make setup-cuda", err)
		}
		t.Skipf("the GPU build is not installed (%v): run make setup-cuda", err)
	}
	return core
}

// randomRun writes a model of kind with seeded random weights into a new
// run folder and exports it.
func randomRun(t *testing.T, kind string) string {
	t.Helper()
	m := modeltest.Random(t, kind, 6, 3)
	dir := t.TempDir()
	if err := m.Save(filepath.Join(dir, "model.safetensors")); err != nil {
		t.Fatal(err)
	}
	if code, stderr := ortLatent(t, "export", dir, "--no-stats", "--quiet"); code != 0 {
		t.Fatalf("export: exit %d: %s", code, stderr)
	}
	return dir
}

// withLibrary runs latent with args in a child process whose
// ONNXRUNTIME_SHARED_LIBRARY_PATH is lib ("" for the default library), and
// returns its exit code, stdout and stderr.
func withLibrary(t *testing.T, lib string, args ...string) (int, string, string) {
	t.Helper()
	cmd := latentCmd(args...)
	env := cmd.Env[:0:0]
	for _, e := range cmd.Env {
		if !strings.HasPrefix(e, inference.LibraryEnv+"=") {
			env = append(env, e)
		}
	}
	if lib != "" {
		env = append(env, inference.LibraryEnv+"="+lib)
	}
	cmd.Env = env
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	code := 0
	if err := cmd.Run(); err != nil {
		exit, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatal(err)
		}
		code = exit.ExitCode()
	}
	return code, stdout.String(), stderr.String()
}

// maxDiff returns the largest absolute difference of two .npy files of
// the same shape.
func maxDiff(t *testing.T, a, b string) float64 {
	t.Helper()
	x, xs, err := npyarray.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	y, ys, err := npyarray.ReadFile(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(x) != len(y) || len(xs) != len(ys) {
		t.Fatalf("%s has shape %v, %s %v", a, xs, b, ys)
	}
	d := 0.0
	for i := range x {
		d = max(d, math.Abs(float64(x[i])-float64(y[i])))
	}
	return d
}

// TestGPUBuildOnThisMachine runs the GPU build of ONNX Runtime that make
// setup-cuda installs on this machine: CPU inference through its core
// library gives the outputs of the CPU build within 1e-6, for both models,
// encoding and decoding; latent version names it and its providers; and,
// on a machine without CUDA, --device cuda fails with one error that names
// the missing libraries and what to install, while --device auto falls
// back to the CPU and says why.
func TestGPUBuildOnThisMachine(t *testing.T) {
	ortNeedRuntime(t)
	core := gpuBuild(t)
	data := ortMNISTDir(t)
	code, stdout, stderr := withLibrary(t, "", "version")
	if code != 0 || !strings.Contains(stdout, "gpu build    "+inference.GPULibraryVersion+" ("+core+")") || !strings.Contains(stdout, "provider     cuda (") {
		t.Fatalf("latent version: exit %d: %s%s", code, stdout, stderr)
	}
	for _, kind := range models.Kinds() {
		t.Run(kind, func(t *testing.T) {
			dir := randomRun(t, kind)
			out := func(name string) string { return filepath.Join(dir, name) }
			for _, run := range []struct{ lib, suffix string }{{"", "cpu"}, {core, "gpu"}} {
				for _, args := range [][]string{
					{"encode", dir, "--data", data, "--split", "test", "--out", out("codes-" + run.suffix + ".npy"), "--quiet"},
					// Both libraries decode the CPU build's codes.
					{"decode", dir, "--codes", out("codes-cpu.npy"), "--out", out("images-" + run.suffix + ".npy")},
				} {
					if code, _, stderr := withLibrary(t, run.lib, args...); code != 0 {
						t.Fatalf("latent %s with %q: exit %d: %s", strings.Join(args, " "), run.lib, code, stderr)
					}
				}
			}
			for _, pair := range [][2]string{{"codes-cpu.npy", "codes-gpu.npy"}, {"images-cpu.npy", "images-gpu.npy"}} {
				if d := maxDiff(t, out(pair[0]), out(pair[1])); d > 1e-6 {
					t.Errorf("%s and %s differ by %g: want within 1e-6", pair[0], pair[1], d)
				} else {
					t.Logf("%s: ONNX Runtime %s (GPU build, on the CPU) within %g of %s", pair[1], inference.GPULibraryVersion, d, inference.LibraryVersion)
				}
			}

			code, _, stderr := withLibrary(t, "", "encode", dir, "--data", data, "--device", "cuda", "--out", out("cuda.npy"), "--quiet")
			cuda := inference.Providers(core)[0]
			if len(cuda.Missing) == 0 {
				t.Logf("this machine has every library of the CUDA provider: --device cuda exited %d: %s", code, stderr)
				return
			}
			if code != 1 || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
				t.Errorf("--device cuda without CUDA: exit %d, want 1 and one line: %s", code, stderr)
			}
			for _, want := range append(cuda.Missing, "CUDA provider", "the README's GPU section", "--device cpu") {
				if !strings.Contains(stderr, want) {
					t.Errorf("--device cuda: the error lacks %q: %s", want, stderr)
				}
			}
			if _, err := os.Stat(out("cuda.npy")); err == nil {
				t.Error("--device cuda failed but wrote its output")
			}
			code, _, stderr = withLibrary(t, "", "encode", dir, "--data", data, "--split", "test", "--device", "auto", "--out", out("auto.npy"), "--quiet")
			if code != 0 || !strings.Contains(stderr, "device auto: CUDA is not available") || !strings.Contains(stderr, "running on the CPU") {
				t.Fatalf("--device auto: exit %d: %s", code, stderr)
			}
			if d := maxDiff(t, out("auto.npy"), out("codes-cpu.npy")); d > 1e-6 {
				t.Errorf("--device auto's codes differ from the CPU build's by %g", d)
			}
		})
	}
}
