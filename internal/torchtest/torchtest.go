// Package torchtest runs the PyTorch reference scripts of bench/ from Go
// tests.
package torchtest

import (
	"encoding/json"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"codeberg.org/sbinet/npyio"
	"gonum.org/v1/gonum/mat"
)

// Python is Debian's Python, which has python3-torch.
const Python = "/usr/bin/python3"

// Need skips the test where PyTorch is missing, except under CI (CI set in
// the environment), which installs it with scripts/setup.sh.
func Need(t testing.TB) {
	t.Helper()
	if err := exec.Command(Python, "-c", "import torch").Run(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("PyTorch is needed: %s -c 'import torch': %v (run scripts/setup.sh)", Python, err)
		}
		t.Skipf("PyTorch not installed (%v): run scripts/setup.sh", err)
	}
}

// Script returns the path of a script in bench/.
func Script(name string) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "bench", name)
}

// WriteMatrix writes n rows of v as an [n, len(v)/n] .npy file, in float64,
// which holds every float32 exactly.
func WriteMatrix(t testing.TB, path string, v []float32, n int) {
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

// ReadFloat32 reads a float32 .npy file of any shape, flattened.
func ReadFloat32(t testing.TB, path string) []float32 {
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

// RoundTrip runs bench/torch_roundtrip.py: it loads model into the
// notebook's PyTorch class, encodes the images of imagesPath and compares
// with codesPath within 1e-4, and decodes those codes and compares with
// reconsPath within 1e-5. It fails the test on any difference and returns
// the script's JSON report.
func RoundTrip(t testing.TB, model, imagesPath, codesPath, reconsPath string) map[string]any {
	t.Helper()
	out, err := exec.Command(Python, Script("torch_roundtrip.py"), "--model", model, "--images", imagesPath,
		"--codes", codesPath, "--recons", reconsPath, "--code-tol", "1e-4", "--recon-tol", "1e-5").Output()
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
	return res
}

// MaxAbsDiff is the largest absolute difference between a and b, or +Inf
// when their lengths differ.
func MaxAbsDiff(a, b []float32) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	var d float64
	for i := range a {
		d = math.Max(d, math.Abs(float64(a[i])-float64(b[i])))
	}
	return d
}
