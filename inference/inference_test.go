package inference_test

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/latent-ai/latent/exporter"
	"github.com/latent-ai/latent/inference"
	"github.com/latent-ai/latent/onnxmeta"
)

func TestOpenReadsShapesAndMetadata(t *testing.T) {
	m, dir := exportRandom(t, "conv", 7, true)
	model := openRun(t, dir, inference.Options{})
	if model.Bottleneck() != 7 {
		t.Errorf("Bottleneck() = %d, want 7", model.Bottleneck())
	}
	if s := model.ImageShape(); len(s) != 3 || s[0] != 1 || s[1] != 28 || s[2] != 28 {
		t.Errorf("ImageShape() = %v, want [1 28 28]", s)
	}
	if model.Device() != inference.CPU || model.Warning() != "" {
		t.Errorf("Device() = %q, Warning() = %q; want cpu and no warning", model.Device(), model.Warning())
	}
	md := model.Metadata()
	if md == nil || md.Part != exporter.Decoder || !md.Arch.Equal(m.Arch) || md.Dataset != "mnist" {
		t.Fatalf("Metadata() = %+v", md)
	}
	if md.Stats == nil || md.Stats.Dim != 7 {
		t.Fatalf("Metadata().Stats = %+v, want stats of size 7", md.Stats)
	}
	// Metadata returns a copy.
	md.Stats.Mean[0] = 1e9
	if model.Stats().Mean[0] == 1e9 {
		t.Error("Metadata() shares its stats with the model")
	}
}

func TestHalves(t *testing.T) {
	_, dir := exportRandom(t, "classic", 4, false)
	enc, err := inference.Open(filepath.Join(dir, onnxmeta.EncoderFile), "", inference.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	if !enc.HasEncoder() || enc.HasDecoder() {
		t.Fatal("HasEncoder/HasDecoder wrong for an encoder-only model")
	}
	if _, err := enc.Encode(make([]float32, 784), 1); err != nil {
		t.Fatal(err)
	}
	if _, err := enc.Decode(make([]float32, 4), 1); err == nil || !strings.Contains(err.Error(), "no decoder") {
		t.Errorf("Decode without a decoder: %v", err)
	}
	if _, _, err := enc.Sample(1, inference.FromNormal, nil); err == nil {
		t.Error("Sample without a decoder: no error")
	}

	dec, err := inference.Open("", filepath.Join(dir, onnxmeta.DecoderFile), inference.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	if _, err := dec.Encode(make([]float32, 784), 1); err == nil || !strings.Contains(err.Error(), "no encoder") {
		t.Errorf("Encode without an encoder: %v", err)
	}
	if _, err := dec.Decode(make([]float32, 4), 1); err != nil {
		t.Fatal(err)
	}
}

func TestChunkingGivesTheSameResult(t *testing.T) {
	_, dir := exportRandom(t, "conv", 5, false)
	const n = 101
	images := mnistTest(t, n)
	whole := openRun(t, dir, inference.Options{MaxBatch: 1000})
	chunked := openRun(t, dir, inference.Options{MaxBatch: 7, IntraOpThreads: 1})
	a, err := whole.Encode(images, n)
	if err != nil {
		t.Fatal(err)
	}
	b, err := chunked.Encode(images, n)
	if err != nil {
		t.Fatal(err)
	}
	for i := range a {
		if math.Abs(float64(a[i]-b[i])) > 1e-6 {
			t.Fatalf("code value %d: %v in one batch, %v in chunks of 7", i, a[i], b[i])
		}
	}
	ra, err := whole.Reconstruct(images, n)
	if err != nil {
		t.Fatal(err)
	}
	rb, err := chunked.Reconstruct(images, n)
	if err != nil {
		t.Fatal(err)
	}
	for i := range ra {
		if math.Abs(float64(ra[i]-rb[i])) > 1e-6 {
			t.Fatalf("reconstruction value %d: %v vs %v", i, ra[i], rb[i])
		}
	}
}

// TestConcurrent encodes and decodes from 8 goroutines at once and compares
// with results computed one call at a time. Run it with -race.
func TestConcurrent(t *testing.T) {
	_, dir := exportRandom(t, "conv", 10, true)
	model := openRun(t, dir, inference.Options{MaxBatch: 16})
	const workers, rounds = 8, 5
	images := mnistTest(t, 8*workers)

	type result struct{ codes, images []float32 }
	batch := func(w int) ([]float32, int) {
		n := 1 + 7*w%23 + w // sizes differ, some above MaxBatch
		off := (w * 8) % (8*workers - n)
		return images[off*784 : (off+n)*784], n
	}
	want := make([]result, workers)
	for w := range want {
		x, n := batch(w)
		c, err := model.Encode(x, n)
		if err != nil {
			t.Fatal(err)
		}
		d, err := model.Decode(c, n)
		if err != nil {
			t.Fatal(err)
		}
		want[w] = result{c, d}
	}

	var wg sync.WaitGroup
	errs := make(chan error, workers*rounds)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			x, n := batch(w)
			for r := 0; r < rounds; r++ {
				c, err := model.Encode(x, n)
				if err != nil {
					errs <- err
					return
				}
				d, err := model.Decode(c, n)
				if err != nil {
					errs <- err
					return
				}
				if dc, di := diff32(c, want[w].codes), diff32(d, want[w].images); dc > 1e-6 || di > 1e-6 {
					errs <- fmt.Errorf("worker %d, round %d, batch of %d: results differ from the single-threaded ones by up to %g (codes) and %g (images)", w, r, n, dc, di)
					return
				}
				if _, _, err := model.Sample(3, inference.FromFitted, rand.New(rand.NewPCG(uint64(w), uint64(r)))); err != nil {
					errs <- err
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// diff32 is the largest absolute difference between a and b, or +Inf if
// their lengths differ.
func diff32(a, b []float32) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	d := 0.0
	for i := range a {
		d = math.Max(d, math.Abs(float64(a[i]-b[i])))
	}
	return d
}

func close32(a, b []float32, tol float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Abs(float64(a[i]-b[i])) > tol {
			return false
		}
	}
	return true
}

func TestSample(t *testing.T) {
	_, dir := exportRandom(t, "classic", 6, true)
	model := openRun(t, dir, inference.Options{})
	for _, from := range []string{inference.FromNormal, inference.FromFitted} {
		codes, images, err := model.Sample(9, from, rand.New(rand.NewPCG(1, 2)))
		if err != nil {
			t.Fatal(err)
		}
		if len(codes) != 9*6 || len(images) != 9*784 {
			t.Fatalf("%s: %d codes and %d pixels, want %d and %d", from, len(codes), len(images), 9*6, 9*784)
		}
		for _, v := range images {
			if !(v >= 0 && v <= 1) {
				t.Fatalf("%s: pixel %v outside [0,1]", from, v)
			}
		}
		again, _, err := model.Sample(9, from, rand.New(rand.NewPCG(1, 2)))
		if err != nil {
			t.Fatal(err)
		}
		if !close32(codes, again, 0) {
			t.Errorf("%s: the same seed gave different codes", from)
		}
	}
	// Fitted codes follow the stats: their mean is near the fitted mean.
	codes, _, err := model.Sample(4000, inference.FromFitted, rand.New(rand.NewPCG(5, 6)))
	if err != nil {
		t.Fatal(err)
	}
	mean := model.Stats().Mean
	for j := 0; j < 6; j++ {
		s := 0.0
		for i := 0; i < 4000; i++ {
			s += float64(codes[i*6+j])
		}
		if d := math.Abs(s/4000 - mean[j]); d > 0.05 {
			t.Errorf("mean of fitted samples [%d] = %.3f, want %.3f", j, s/4000, mean[j])
		}
	}

	for _, tc := range []struct {
		n    int
		from string
		want string
	}{
		{0, inference.FromNormal, "want at least 1"},
		{-3, inference.FromNormal, "want at least 1"},
		{2, "uniform", "unknown source"},
	} {
		if _, _, err := model.Sample(tc.n, tc.from, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Sample(%d, %q): %v, want an error containing %q", tc.n, tc.from, err, tc.want)
		}
	}

	_, plain := exportRandom(t, "classic", 6, false)
	noStats := openRun(t, plain, inference.Options{})
	if _, _, err := noStats.Sample(2, inference.FromFitted, nil); err == nil || !strings.Contains(err.Error(), "no latent statistics") {
		t.Errorf("Sample fitted without stats: %v", err)
	}
	if _, _, err := noStats.Sample(2, inference.FromNormal, nil); err != nil {
		t.Errorf("Sample normal without stats: %v", err)
	}
}

func TestDevices(t *testing.T) {
	_, dir := exportRandom(t, "classic", 3, false)
	// The library from scripts/setup-onnxruntime.sh has no CUDA provider:
	// "cuda" must fail with a message that says so, "auto" must fall back.
	m, err := inference.OpenRun(dir, inference.Options{Device: inference.CUDA})
	if err == nil {
		defer m.Close()
		if m.Device() != inference.CUDA {
			t.Fatalf("device cuda opened a model on %q", m.Device())
		}
		t.Log("this ONNX Runtime library can use CUDA")
	} else {
		for _, want := range []string{"CUDA", "CPU-only", "cpu device", inference.LibraryEnv} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("device cuda: error %q does not mention %q", err, want)
			}
		}
	}

	var logged []string
	auto, err := inference.OpenRun(dir, inference.Options{Device: inference.Auto, Logf: func(f string, a ...any) {
		logged = append(logged, f)
	}})
	if err != nil {
		t.Fatalf("device auto: %v", err)
	}
	defer auto.Close()
	if auto.Device() == inference.CPU {
		if !strings.Contains(auto.Warning(), "running on the CPU") || len(logged) != 1 {
			t.Errorf("auto fell back to the CPU with warning %q and %d log lines", auto.Warning(), len(logged))
		}
	}
	if _, err := auto.Encode(make([]float32, 784), 1); err != nil {
		t.Fatal(err)
	}

	if _, err := inference.OpenRun(dir, inference.Options{Device: "tpu"}); err == nil || !strings.Contains(err.Error(), "unknown device") {
		t.Errorf("device tpu: %v", err)
	}
}

func TestBadInput(t *testing.T) {
	_, dir := exportRandom(t, "classic", 4, false)
	model := openRun(t, dir, inference.Options{})
	img := func(n int) []float32 { return make([]float32, n*784) }
	with := func(x []float32, i int, v float32) []float32 { x[i] = v; return x }
	nan, inf := float32(math.NaN()), float32(math.Inf(1))

	for _, tc := range []struct {
		name string
		call func() error
		want string
	}{
		{"encode short", func() error { _, err := model.Encode(img(2)[:1000], 2); return err }, "1000 values for 2 images"},
		{"encode long", func() error { _, err := model.Encode(img(3), 2); return err }, "want 1568"},
		{"encode empty", func() error { _, err := model.Encode(nil, 0); return err }, "batch of 0"},
		{"encode negative n", func() error { _, err := model.Encode(img(1), -1); return err }, "batch of -1"},
		{"encode NaN", func() error { _, err := model.Encode(with(img(2), 900, nan), 2); return err }, "image 1 holds NaN at index 116"},
		{"encode Inf", func() error { _, err := model.Encode(with(img(1), 3, -inf), 1); return err }, "-Inf"},
		{"encode 0-255 pixels", func() error { _, err := model.Encode(with(img(1), 7, 255), 1); return err }, "[0,1]"},
		{"encode huge n", func() error { _, err := model.Encode(img(1), math.MaxInt/100); return err }, "too large"},
		{"decode short", func() error { _, err := model.Decode(make([]float32, 7), 2); return err }, "7 values for 2 codes"},
		{"decode empty", func() error { _, err := model.Decode([]float32{}, 0); return err }, "batch of 0"},
		{"decode NaN", func() error { _, err := model.Decode([]float32{0, 0, 0, 0, 1, nan, 0, 0}, 2); return err }, "code 1 holds NaN"},
		{"decode Inf", func() error { _, err := model.Decode([]float32{inf, 0, 0, 0}, 1); return err }, "+Inf"},
		{"reconstruct NaN", func() error { _, err := model.Reconstruct(with(img(1), 0, nan), 1); return err }, "NaN"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
	// The model still works after bad calls.
	if _, err := model.Reconstruct(img(3), 3); err != nil {
		t.Fatal(err)
	}
}

func TestBadFiles(t *testing.T) {
	_, dir := exportRandom(t, "conv", 4, false)
	enc := filepath.Join(dir, onnxmeta.EncoderFile)
	dec := filepath.Join(dir, onnxmeta.DecoderFile)
	tmp := t.TempDir()
	garbage := filepath.Join(tmp, "garbage.onnx")
	os.WriteFile(garbage, []byte("not an onnx file at all"), 0o644)
	truncated := filepath.Join(tmp, "truncated.onnx")
	data, _ := os.ReadFile(enc)
	os.WriteFile(truncated, data[:len(data)/2], 0o644)
	empty := filepath.Join(tmp, "empty.onnx")
	os.WriteFile(empty, nil, 0o644)
	_, other := exportRandom(t, "classic", 6, false)

	for _, tc := range []struct {
		name     string
		enc, dec string
		want     string
	}{
		{"no paths", "", "", "no encoder and no decoder"},
		{"missing encoder", filepath.Join(tmp, "nope.onnx"), dec, "no such file"},
		{"missing decoder", enc, filepath.Join(tmp, "nope.onnx"), "no such file"},
		{"garbage", garbage, dec, "not a valid ONNX model"},
		{"truncated", truncated, dec, "not a valid ONNX model"},
		{"empty", empty, dec, "not a valid ONNX model"},
		{"graph that ONNX Runtime rejects", rejectedGraph(t, tmp), dec, "open encoder"},
		{"decoder as encoder", dec, dec, "looks like a decoder"},
		{"encoder as decoder", enc, enc, "looks like an encoder"},
		{"swapped", dec, enc, "not a latent encoder"},
		{"halves of different models", enc, filepath.Join(other, onnxmeta.DecoderFile), "do not belong together"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := inference.Open(tc.enc, tc.dec, inference.Options{})
			if err == nil {
				m.Close()
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open: error %v, want one containing %q", err, tc.want)
			}
		})
	}
	if _, err := inference.OpenRun(tmp, inference.Options{}); err == nil || !strings.Contains(err.Error(), "latent export") {
		t.Errorf("OpenRun of a folder without exported files: %v", err)
	}
	for _, o := range []inference.Options{{IntraOpThreads: -1}, {MaxBatch: -5}} {
		if _, err := inference.OpenRun(dir, o); err == nil {
			t.Errorf("Open with options %+v: no error", o)
		}
	}
}

func TestClose(t *testing.T) {
	_, dir := exportRandom(t, "classic", 2, true)
	m, err := inference.OpenRun(dir, inference.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := m.Encode(make([]float32, 784), 1); !errors.Is(err, inference.ErrClosed) {
		t.Errorf("Encode after Close: %v", err)
	}
	if _, err := m.Decode(make([]float32, 2), 1); !errors.Is(err, inference.ErrClosed) {
		t.Errorf("Decode after Close: %v", err)
	}
	if _, _, err := m.Sample(1, inference.FromNormal, nil); !errors.Is(err, inference.ErrClosed) {
		t.Errorf("Sample after Close: %v", err)
	}
}

// rss returns the resident set size of the process in bytes.
func rss(t *testing.T) int64 {
	t.Helper()
	debug.FreeOSMemory()
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		t.Skipf("no /proc/self/statm: %v", err)
	}
	f := strings.Fields(string(b))
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return pages * int64(os.Getpagesize())
}

// TestBadCallsDoNotLeak makes 2000 failing calls (bad batches, bad sample
// requests, opens of a truncated file) and checks that the resident memory
// does not grow. (Opens that fail inside ONNX Runtime are left out: glibc's
// per-thread arenas make their RSS swing by several MB either way.)
func TestBadCallsDoNotLeak(t *testing.T) {
	if testing.Short() {
		t.Skip("slow in -short mode")
	}
	_, dir := exportRandom(t, "classic", 4, false)
	model := openRun(t, dir, inference.Options{})
	enc := filepath.Join(dir, onnxmeta.EncoderFile)
	dec := filepath.Join(dir, onnxmeta.DecoderFile)
	garbage := filepath.Join(t.TempDir(), "garbage.onnx")
	data, _ := os.ReadFile(enc)
	os.WriteFile(garbage, data[:1000], 0o644)
	bad := make([]float32, 64*784)
	bad[len(bad)-1] = float32(math.NaN())
	pixels := make([]float32, 64*784)
	pixels[100] = 255

	round := func(i int) {
		var err error
		switch i % 8 {
		case 0:
			_, err = inference.Open(garbage, dec, inference.Options{})
		case 1:
			_, err = model.Decode(bad[len(bad)-8:], 2)
		case 2:
			_, _, err = model.Sample(1, inference.FromFitted, nil)
		case 3:
			_, _, err = model.Sample(0, inference.FromNormal, nil)
		case 4:
			_, err = model.Encode(pixels, 64)
		case 5:
			_, err = model.Reconstruct(bad[:784*10], 9)
		default:
			_, err = model.Encode(bad, 64)
		}
		if err == nil {
			t.Fatalf("bad call %d succeeded", i)
		}
	}
	for i := 0; i < 500; i++ { // warm up allocators and caches
		round(i)
	}
	before := rss(t)
	for i := 0; i < 2000; i++ {
		round(i)
	}
	after := rss(t)
	growth := after - before
	t.Logf("RSS %d MB before, %d MB after 2000 bad calls (%+d KB)", before>>20, after>>20, growth>>10)
	if growth > 4<<20 {
		t.Fatalf("RSS grew by %d KB over 2000 bad calls", growth>>10)
	}
}

// TestGoodCallsDoNotLeak checks that the tensors of successful calls are
// released: 2000 small reconstructions leave the resident memory as it was.
func TestGoodCallsDoNotLeak(t *testing.T) {
	if testing.Short() {
		t.Skip("slow in -short mode")
	}
	_, dir := exportRandom(t, "conv", 4, true)
	model := openRun(t, dir, inference.Options{MaxBatch: 3})
	images := mnistTest(t, 5)
	round := func() {
		if _, err := model.Reconstruct(images, 5); err != nil {
			t.Fatal(err)
		}
		if _, _, err := model.Sample(2, inference.FromFitted, nil); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 300; i++ {
		round()
	}
	before := rss(t)
	for i := 0; i < 2000; i++ {
		round()
	}
	after := rss(t)
	growth := after - before
	t.Logf("RSS %d MB before, %d MB after 2000 good rounds (%+d KB)", before>>20, after>>20, growth>>10)
	// A round passes 5 images in and out and 2 sampled images and their
	// codes: about 40 KB of tensors. Were a round's tensors kept, 2000
	// rounds would add some 80 MB; under -race, with the other tests' heap
	// beside it, RSS moves by several MB without any leak. A quarter of a
	// leak is the limit.
	const roundBytes = (5*784*2 + 5*4 + 2*784 + 2*4) * 4
	if limit := int64(2000 * roundBytes / 4); growth > limit {
		t.Fatalf("RSS grew by %d KB over 2000 good rounds: more than %d KB, a quarter of what keeping every round's tensors would add", growth>>10, limit>>10)
	}
}

// TestRuntimeErrors runs this test binary with a missing or unusable
// library: TestMain must fail with a message that says how to install ONNX
// Runtime, or skip everything under LATENT_SKIP_ORT=1.
func TestRuntimeErrors(t *testing.T) {
	notLib := filepath.Join(t.TempDir(), "libonnxruntime.so")
	os.WriteFile(notLib, []byte("not a shared library"), 0o644)
	emptyCache := t.TempDir()
	for _, tc := range []struct {
		name     string
		env      []string
		wantCode int
		want     []string
	}{
		{"missing file", []string{inference.LibraryEnv + "=" + filepath.Join(emptyCache, "nope.so")}, 1,
			[]string{inference.LibraryEnv, "no such file", "setup-onnxruntime.sh"}},
		{"not a library", []string{inference.LibraryEnv + "=" + notLib}, 1,
			[]string{notLib, "setup-onnxruntime.sh", "make setup"}},
		{"empty cache", []string{"LATENT_CACHE=" + emptyCache}, 1,
			[]string{"libonnxruntime.so", "setup-onnxruntime.sh", emptyCache}},
		{"skipped", []string{"LATENT_CACHE=" + emptyCache, "LATENT_SKIP_ORT=1"}, 0,
			[]string{"skipping the inference tests"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			for _, kv := range os.Environ() {
				if !strings.HasPrefix(kv, inference.LibraryEnv+"=") && !strings.HasPrefix(kv, "LATENT_SKIP_ORT=") {
					cmd.Env = append(cmd.Env, kv)
				}
			}
			cmd.Env = append(cmd.Env, tc.env...)
			out, err := cmd.CombinedOutput()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if tc.name == "empty cache" && code == 0 {
				t.Skip("this machine has ONNX Runtime in the system library path")
			}
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d:\n%s", code, tc.wantCode, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("output does not mention %q:\n%s", w, out)
				}
			}
		})
	}
}
