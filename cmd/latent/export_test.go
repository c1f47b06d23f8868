package main

import (
	"bytes"
	"context"
	"image/png"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/latent-ai/latent/exporter"
	"github.com/latent-ai/latent/inference"
	"github.com/latent-ai/latent/internal/modeltest"
	"github.com/latent-ai/latent/latentstats"
	"github.com/latent-ai/latent/npyarray"
	"github.com/latent-ai/latent/onnxmeta"
)

// ortMNISTDir returns the folder of the MNIST files: $LATENT_DATA, else
// ../shared/datasets/mnist beside the repository, else
// /work/shared/datasets/mnist.
func ortMNISTDir(t *testing.T) string {
	t.Helper()
	for _, d := range []string{os.Getenv("LATENT_DATA"), filepath.Join("..", "..", "..", "shared", "datasets", "mnist"), "/work/shared/datasets/mnist"} {
		if d == "" {
			continue
		}
		if _, err := os.Stat(filepath.Join(d, "t10k-images-idx3-ubyte.gz")); err == nil {
			abs, _ := filepath.Abs(d)
			return abs
		}
	}
	t.Fatal("MNIST not found: set LATENT_DATA to the folder of its IDX files")
	return ""
}

// ortNeedRuntime fails the test when ONNX Runtime is missing, unless
// LATENT_SKIP_ORT=1.
func ortNeedRuntime(t *testing.T) {
	t.Helper()
	if _, _, err := inference.Runtime(); err != nil {
		if os.Getenv("LATENT_SKIP_ORT") == "1" {
			t.Skipf("LATENT_SKIP_ORT=1: %v", err)
		}
		t.Fatal(err)
	}
}

// ortRun writes a random classic model into a new run folder.
func ortRun(t *testing.T, bottleneck int) string {
	t.Helper()
	m := modeltest.Random(t, "classic", bottleneck, 11)
	dir := t.TempDir()
	if err := m.Save(filepath.Join(dir, "model.safetensors")); err != nil {
		t.Fatal(err)
	}
	return dir
}

// ortLatent runs the latent command with args and returns its exit code
// and stderr.
func ortLatent(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := latent(context.Background(), args, &stdout, &stderr)
	return code, stderr.String()
}

func TestExportEncodeDecodeSample(t *testing.T) {
	ortNeedRuntime(t)
	data := ortMNISTDir(t)
	dir := ortRun(t, 6)

	if code, stderr := ortLatent(t, "export", dir, "--data", data, "--quiet", "--threads", "2"); code != 0 {
		t.Fatalf("export: exit %d: %s", code, stderr)
	}
	stats, err := latentstats.Load(filepath.Join(dir, latentstats.FileName))
	if err != nil {
		t.Fatal(err)
	}
	if stats.N != 60000 || stats.Dim != 6 {
		t.Fatalf("stats fitted to %d codes of size %d, want 60000 of size 6", stats.N, stats.Dim)
	}
	for _, f := range []string{onnxmeta.EncoderFile, onnxmeta.DecoderFile} {
		md, err := exporter.ReadMetadata(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if md.Stats == nil || md.Stats.N != 60000 || md.Dataset != "mnist" {
			t.Fatalf("%s: metadata stats %v, dataset %q", f, md.Stats, md.Dataset)
		}
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("export left %s behind", e.Name())
		}
	}

	// encode: flags after the run folder; codes and labels readable.
	codesPath := filepath.Join(t.TempDir(), "codes.npy")
	if code, stderr := ortLatent(t, "encode", dir, "--split", "test", "--out", codesPath, "--data", data, "--quiet", "--batch", "777"); code != 0 {
		t.Fatalf("encode: exit %d: %s", code, stderr)
	}
	codes, shape, err := npyarray.ReadFile(codesPath)
	if err != nil {
		t.Fatal(err)
	}
	if len(shape) != 2 || shape[0] != 10000 || shape[1] != 6 || len(codes) != 60000 {
		t.Fatalf("codes of shape %v (%d values), want [10000 6]", shape, len(codes))
	}
	labels, err := os.ReadFile(strings.TrimSuffix(codesPath, ".npy") + "-labels.npy")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(labels[:128], []byte("'|u1'")) || !bytes.Contains(labels[:128], []byte("(10000,)")) {
		t.Fatalf("labels header %q", labels[:128])
	}
	// The first test labels of MNIST are 7 2 1 0 4.
	if tail := labels[len(labels)-10000:]; !bytes.Equal(tail[:5], []byte{7, 2, 1, 0, 4}) {
		t.Fatalf("first labels %v, want [7 2 1 0 4]", tail[:5])
	}
	// The streamed codes match a direct Encode of the same images.
	model, err := inference.OpenRun(dir, inference.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer model.Close()
	imgs := ortMNISTImages(t, data, 10000)
	direct, err := model.Encode(imgs, 10000)
	if err != nil {
		t.Fatal(err)
	}
	for i := range direct {
		if math.Abs(float64(direct[i]-codes[i])) > 1e-6 {
			t.Fatalf("code value %d: %v in the file, %v from Encode", i, codes[i], direct[i])
		}
	}
	// Calls in flight at once keep the batches in order: three calls of
	// 333 images, or one call on two threads, give the same codes.
	for _, flags := range [][]string{{"--calls", "3", "--batch", "333"}, {"--calls", "1", "--threads", "2"}} {
		path := filepath.Join(t.TempDir(), "codes.npy")
		args := append([]string{"encode", dir, "--split", "test", "--out", path, "--data", data, "--quiet"}, flags...)
		if code, stderr := ortLatent(t, args...); code != 0 {
			t.Fatalf("encode %v: exit %d: %s", flags, code, stderr)
		}
		again, _, err := npyarray.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for i := range direct {
			if math.Abs(float64(direct[i]-again[i])) > 1e-6 {
				t.Fatalf("encode %v: code value %d: %v in the file, %v from Encode", flags, i, again[i], direct[i])
			}
		}
	}

	// decode to a PNG grid and to .npy.
	pngPath := filepath.Join(t.TempDir(), "digits.png")
	if code, stderr := ortLatent(t, "decode", dir, "--codes", codesPath, "--limit", "25", "--out", pngPath, "--scale", "3", "--quiet"); code != 0 {
		t.Fatalf("decode png: exit %d: %s", code, stderr)
	}
	ortCheckPNG(t, pngPath, 5*(28*3+3)+3, 5*(28*3+3)+3)
	npyPath := filepath.Join(t.TempDir(), "digits.npy")
	if code, stderr := ortLatent(t, "decode", "--codes", codesPath, "--limit", "4", "--out", npyPath, dir); code != 0 {
		t.Fatalf("decode npy: exit %d: %s", code, stderr)
	}
	images, shape, err := npyarray.ReadFile(npyPath)
	if err != nil {
		t.Fatal(err)
	}
	if len(shape) != 4 || shape[0] != 4 || shape[1] != 1 || shape[2] != 28 || shape[3] != 28 {
		t.Fatalf("decoded images of shape %v, want [4 1 28 28]", shape)
	}
	want, err := model.Decode(codes[:4*6], 4)
	if err != nil {
		t.Fatal(err)
	}
	for i := range want {
		if images[i] != want[i] {
			t.Fatalf("decoded value %d: %v in the file, %v from Decode", i, images[i], want[i])
		}
	}

	// sample from both sources, as PNG and .npy.
	samplePNG := filepath.Join(t.TempDir(), "s.png")
	if code, stderr := ortLatent(t, "sample", dir, "-n", "10", "--seed", "5", "--out", samplePNG, "--cols", "5"); code != 0 {
		t.Fatalf("sample: exit %d: %s", code, stderr)
	}
	ortCheckPNG(t, samplePNG, 5*(28*2+2)+2, 2*(28*2+2)+2)
	sampleNPY := filepath.Join(t.TempDir(), "s.npy")
	if code, stderr := ortLatent(t, "sample", dir, "-n", "3", "--from", "normal", "--out", sampleNPY); code != 0 {
		t.Fatalf("sample normal: exit %d: %s", code, stderr)
	}
	if _, shape, err := npyarray.ReadFile(sampleNPY); err != nil || len(shape) != 4 || shape[0] != 3 {
		t.Fatalf("samples: shape %v, %v", shape, err)
	}

	// NumPy reads what latent writes, when it is there.
	if exec.Command("/usr/bin/python3", "-c", "import numpy").Run() == nil {
		script := `
import sys, numpy as np
c = np.load(sys.argv[1]); l = np.load(sys.argv[2]); d = np.load(sys.argv[3])
assert c.shape == (10000, 6) and c.dtype == np.float32, (c.shape, c.dtype)
assert l.shape == (10000,) and l.dtype == np.uint8 and list(l[:5]) == [7, 2, 1, 0, 4]
assert d.shape == (4, 1, 28, 28) and d.dtype == np.float32
print("numpy ok")
`
		out, err := exec.Command("/usr/bin/python3", "-c", script, codesPath, strings.TrimSuffix(codesPath, ".npy")+"-labels.npy", npyPath).CombinedOutput()
		if err != nil {
			t.Fatalf("numpy.load: %v\n%s", err, out)
		}
	}
}

func ortCheckPNG(t *testing.T, path string, w, h int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if b := img.Bounds(); b.Dx() != w || b.Dy() != h {
		t.Fatalf("%s is %dx%d, want %dx%d", path, b.Dx(), b.Dy(), w, h)
	}
}

// ortMNISTImages reads the first n test images through the dataset
// package, as the commands do.
func ortMNISTImages(t *testing.T, dir string, n int) []float32 {
	t.Helper()
	d := dataFlags{name: "mnist", dir: dir}
	set, err := d.load(context.Background(), "test")
	if err != nil {
		t.Fatal(err)
	}
	return set.Floats(nil, 0, n)
}

func TestExportNoStats(t *testing.T) {
	ortNeedRuntime(t)
	dir := ortRun(t, 3)
	if code, stderr := ortLatent(t, "export", "--no-stats", dir); code != 0 {
		t.Fatalf("export --no-stats: exit %d: %s", code, stderr)
	}
	md, err := exporter.ReadMetadata(filepath.Join(dir, onnxmeta.DecoderFile))
	if err != nil {
		t.Fatal(err)
	}
	if md.Stats != nil {
		t.Fatal("export --no-stats wrote stats")
	}
	code, stderr := ortLatent(t, "sample", dir, "--from", "fitted", "--out", filepath.Join(t.TempDir(), "s.png"))
	if code != 1 || !strings.Contains(stderr, "no latent statistics") {
		t.Fatalf("sample --from fitted without stats: exit %d: %s", code, stderr)
	}
	if code, stderr := ortLatent(t, "sample", dir, "--from", "normal", "--out", filepath.Join(t.TempDir(), "s.png")); code != 0 {
		t.Fatalf("sample --from normal: exit %d: %s", code, stderr)
	}
}

func TestORTCommandErrors(t *testing.T) {
	ortNeedRuntime(t)
	exported := ortRun(t, 3)
	if code, stderr := ortLatent(t, "export", "--no-stats", exported); code != 0 {
		t.Fatalf("export: %s", stderr)
	}
	bare := ortRun(t, 3)
	tmp := t.TempDir()
	wrongCodes := filepath.Join(tmp, "wrong.npy")
	var buf bytes.Buffer
	npyarray.Write(&buf, make([]float32, 10), []int{2, 5})
	os.WriteFile(wrongCodes, buf.Bytes(), 0o644)
	notNPY := filepath.Join(tmp, "not.npy")
	os.WriteFile(notNPY, []byte("hello"), 0o644)
	nanCodes := filepath.Join(tmp, "nan.npy")
	buf.Reset()
	npyarray.Write(&buf, []float32{0, float32(math.NaN()), 0}, []int{1, 3})
	os.WriteFile(nanCodes, buf.Bytes(), 0o644)

	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"export without a model", []string{"export", tmp}, 1, "model.safetensors"},
		{"export without a folder", []string{"export"}, 2, "want one run folder"},
		{"export bad device", []string{"export", exported, "--device", "tpu"}, 2, "--device"},
		{"export unknown flag", []string{"export", exported, "--nope"}, 2, "flag provided but not defined"},
		{"encode before export", []string{"encode", bare, "--out", filepath.Join(tmp, "c.npy")}, 1, "latent export"},
		{"encode bad split", []string{"encode", exported, "--split", "val"}, 2, "--split"},
		{"encode bad out", []string{"encode", exported, "--out", filepath.Join(tmp, "c.txt")}, 2, ".npy, .parquet, .csv or .jsonl"},
		{"encode negative calls", []string{"encode", exported, "--calls", "-1", "--out", filepath.Join(tmp, "c.npy")}, 2, "--calls -1: want 0 or more"},
		{"encode on cuda", []string{"encode", exported, "--device", "cuda", "--out", filepath.Join(tmp, "c.npy")}, 1, "CUDA"},
		{"decode without codes", []string{"decode", exported, "--out", filepath.Join(tmp, "x.png")}, 2, "required"},
		{"decode codes of another size", []string{"decode", exported, "--codes", wrongCodes, "--out", filepath.Join(tmp, "x.png")}, 1, "bottleneck 3"},
		{"decode not npy", []string{"decode", exported, "--codes", notNPY, "--out", filepath.Join(tmp, "x.png")}, 1, "not a NumPy"},
		{"decode NaN", []string{"decode", exported, "--codes", nanCodes, "--out", filepath.Join(tmp, "x.npy")}, 1, "NaN"},
		{"decode missing codes", []string{"decode", exported, "--codes", filepath.Join(tmp, "none.npy"), "--out", filepath.Join(tmp, "x.png")}, 1, "no such file"},
		{"sample n 0", []string{"sample", exported, "-n", "0"}, 2, "-n 0"},
		{"sample bad source", []string{"sample", exported, "--from", "uniform"}, 2, "--from"},
		{"sample bad out", []string{"sample", exported, "--out", filepath.Join(tmp, "x.jpg")}, 2, ".png or .npy"},
		{"sample before export", []string{"sample", bare}, 1, "latent export"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stderr := ortLatent(t, tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.want) {
				t.Fatalf("exit %d, stderr %q; want exit %d and %q", code, stderr, tc.code, tc.want)
			}
		})
	}
	// Nothing half-written was left behind.
	for _, f := range []string{"x.png", "x.npy", "c.npy"} {
		if _, err := os.Stat(filepath.Join(tmp, f)); err == nil {
			t.Errorf("a failed command left %s", f)
		}
	}
	// --help after the run folder prints the usage and succeeds.
	if code, _ := ortLatent(t, "sample", exported, "--help"); code != 0 {
		t.Errorf("sample RUN --help: exit %d", code)
	}
}

// TestEncodeInterrupted stops latent encode midway, with calls in flight:
// it exits 1 saying so, the codes file written before is untouched, no
// temporary file is left, and no goroutine outlives it.
func TestEncodeInterrupted(t *testing.T) {
	ortNeedRuntime(t)
	data := ortMNISTDir(t)
	dir := ortRun(t, 4)
	if code, stderr := ortLatent(t, "export", dir, "--data", data, "--quiet"); code != 0 {
		t.Fatalf("export: exit %d: %s", code, stderr)
	}
	out := t.TempDir()
	codes := filepath.Join(out, "codes.npy")
	if err := os.WriteFile(codes, []byte("the codes of an earlier run"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := runtime.NumGoroutine()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		// Cancel once the output is being written, and the model busy.
		for {
			entries, _ := os.ReadDir(out)
			if len(entries) > 1 || ctx.Err() != nil {
				break
			}
			time.Sleep(time.Millisecond)
		}
		time.Sleep(20 * time.Millisecond)
		cancel()
	}()
	var stdout, stderr bytes.Buffer
	code := latent(ctx, []string{"encode", dir, "--split", "all", "--data", data, "--out", codes, "--batch", "50", "--calls", "3", "--quiet"}, &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "interrupted") {
		t.Fatalf("exit %d, stderr %q: want 1 and \"interrupted\"", code, stderr.String())
	}
	if b, _ := os.ReadFile(codes); string(b) != "the codes of an earlier run" {
		t.Fatalf("the earlier codes file holds %q after the interrupted run", b)
	}
	if entries, _ := os.ReadDir(out); len(entries) != 1 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Fatalf("the output folder holds %v, want the earlier codes file alone", names)
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines after the run, %d before", n, before)
	}
}
