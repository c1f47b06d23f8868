package trainer

import (
	"context"
	"github.com/latent-ai/latent/internal/pixel"
	"math"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/latent-ai/latent/checkpoint"
	"github.com/latent-ai/latent/dataset"
	"github.com/latent-ai/latent/internal/mnisttest"
	"github.com/latent-ai/latent/models"
)

var (
	mnistOnce             sync.Once
	mnistTrain, mnistTest *dataset.Set
	mnistErr              error
)

// realMNIST loads the real training and test sets once for all tests.
func realMNIST(t *testing.T) (train, test Data) {
	t.Helper()
	dir := mnisttest.Dir(t)
	mnistOnce.Do(func() {
		if mnistTrain, mnistErr = dataset.Load("mnist", dir, "train"); mnistErr != nil {
			return
		}
		mnistTest, mnistErr = dataset.Load("mnist", dir, "test")
	})
	if mnistErr != nil {
		t.Fatal(mnistErr)
	}
	return Data{Pixels: mnistTrain.Pixels, N: mnistTrain.N}, Data{Pixels: mnistTest.Pixels, N: mnistTest.N}
}

func firstN(d Data, n int) Data { return Data{Pixels: d.Pixels[:n*784], N: n} }

// floats returns the images of d as the models take them (pixel.ToFloat32).
func floats(d Data) []float32 { return pixel.ToFloat32(make([]float32, len(d.Pixels)), d.Pixels) }

// TestShortTrainingLearns trains each model for two epochs (conv: three) on
// the first 4096 real training images and checks that the test error falls well
// below the error of the untrained model and below 0.06, under the error of
// always predicting the mean test image (about 0.067 on MNIST).
func TestShortTrainingLearns(t *testing.T) {
	train, test := realMNIST(t)
	test = firstN(test, 1000)
	for _, kind := range []string{"classic", "conv"} {
		t.Run(kind, func(t *testing.T) {
			arch, err := models.New(kind, 10)
			if err != nil {
				t.Fatal(err)
			}
			cfg := DefaultConfig(arch)
			cfg.Epochs, cfg.Limit = 2, 4096
			if kind == "conv" {
				cfg.Epochs = 3 // the convolutional model starts slower
			}
			tr, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			before, err := tr.Evaluate(test)
			if err != nil {
				t.Fatal(err)
			}
			hist, err := tr.Run(context.Background(), filesIn(t.TempDir()), train, test, Hooks{})
			if err != nil {
				t.Fatal(err)
			}
			after := hist[len(hist)-1].TestMSE
			t.Logf("%s: test MSE %.4f before, %.4f after %d epochs of 4096 images", kind, before, after, cfg.Epochs)
			if !(after < 0.06) || !(after < before/2) {
				t.Errorf("test MSE %.4f after training (%.4f before): want < 0.06 and < half", after, before)
			}
			if hist[len(hist)-1].TrainLoss >= hist[0].TrainLoss {
				t.Errorf("train loss did not fall: %v", hist)
			}
		})
	}
}

// TestResumeIsBitIdentical checks that a run stopped after one epoch and
// resumed from its folder ends with the same weights, bit for bit, as one
// that trains straight through, with and without shuffling; and that the
// same seed gives the same weights while another seed does not.
func TestResumeIsBitIdentical(t *testing.T) {
	train, _ := realMNIST(t)
	train = firstN(train, 300) // 4 full batches and one of 44
	for _, tc := range []struct {
		kind    string
		shuffle bool
		recipe  bool // a cosine schedule with warm-up, AdamW, learning-rate factors and a validation share
	}{
		{"classic", false, false}, {"classic", true, false}, {"classic-vae", true, true},
	} {
		shuffle := tc.shuffle
		arch, _ := models.New(tc.kind, 10)
		cfg := DefaultConfig(arch)
		cfg.Epochs, cfg.Shuffle, cfg.Seed = 2, shuffle, 7
		if tc.recipe {
			cfg.Schedule = &checkpoint.Schedule{Kind: ScheduleCosine, Warmup: 3}
			cfg.WeightDecay, cfg.Validation, cfg.Beta = 0.1, 0.2, 0.5
			cfg.LRScale = map[string]float64{"encoder.2": 0.5, "decoder.0.weight": 2}
		}

		straight, _ := New(cfg)
		if _, err := straight.Run(context.Background(), filesIn(t.TempDir()), train, Data{}, Hooks{}); err != nil {
			t.Fatal(err)
		}

		dir := t.TempDir()
		first := cfg
		first.Epochs = 1
		part, _ := New(first)
		if _, err := part.Run(context.Background(), filesIn(dir), train, Data{}, Hooks{}); err != nil {
			t.Fatal(err)
		}
		resumed, err := Resume(filesIn(dir), 2)
		if err != nil {
			t.Fatal(err)
		}
		if resumed.EpochsDone() != 1 {
			t.Fatalf("resumed after %d epochs, want 1", resumed.EpochsDone())
		}
		if _, err := resumed.Run(context.Background(), filesIn(dir), train, Data{}, Hooks{}); err != nil {
			t.Fatal(err)
		}
		if d := maxDiff(straight.Weights(), resumed.Weights()); d != 0 {
			t.Errorf("%+v: resumed weights differ from straight ones by up to %g", tc, d)
		}
		saved, err := checkpoint.Load(filesIn(dir).Model)
		if err != nil {
			t.Fatal(err)
		}
		w, _ := FromModel(saved)
		if d := maxDiff(straight.Weights(), w); d != 0 {
			t.Errorf("%+v: saved weights differ from trained ones by up to %g", tc, d)
		}
		steps := 10
		if tc.recipe {
			steps = 8 // 240 images after validation's 60: 3 full batches and one of 48
		}
		if saved.Meta.Epochs != 2 || len(saved.Meta.TrainLoss) != 2 || saved.Meta.Step != steps {
			t.Errorf("%s: saved summary %+v, want 2 epochs, 2 losses, %d steps", tc.kind, saved.Meta, steps)
		}
	}

	arch, _ := models.New("conv", 10)
	if d := maxDiff(Init(arch, 3), Init(arch, 3)); d != 0 {
		t.Errorf("same seed, weights differ by %g", d)
	}
	if d := maxDiff(Init(arch, 3), Init(arch, 4)); d == 0 {
		t.Errorf("seeds 3 and 4 gave the same weights")
	}
}

func maxDiff(a, b *Weights) float64 {
	var d float64
	for i := range a.Values {
		for j := range a.Values[i] {
			d = math.Max(d, math.Abs(float64(a.Values[i][j])-float64(b.Values[i][j])))
		}
	}
	return d
}

// TestInitMatchesPyTorchBounds checks the spread of the initial weights of
// every parameter against PyTorch's default: uniform in ±1/sqrt(fan-in),
// with fan-in out·k·k for ConvTranspose2d.
func TestInitMatchesPyTorchBounds(t *testing.T) {
	for _, kind := range models.Kinds() {
		arch, _ := models.New(kind, 10)
		w := Init(arch, 0)
		for i, p := range w.Params {
			bound := p.Layer.InitBound()
			var maxAbs, sumSq float64
			for _, v := range w.Values[i] {
				maxAbs = math.Max(maxAbs, math.Abs(float64(v)))
				sumSq += float64(v) * float64(v)
			}
			if maxAbs > bound {
				t.Errorf("%s %s: |value| up to %g, over the bound %g", kind, p.Name, maxAbs, bound)
			}
			if n := len(w.Values[i]); n >= 100 {
				// A uniform on ±b has variance b²/3.
				if rms, want := math.Sqrt(sumSq/float64(n)), bound/math.Sqrt(3); math.Abs(rms-want) > 0.1*want {
					t.Errorf("%s %s: RMS %g, want about %g", kind, p.Name, rms, want)
				}
			}
		}
	}
	ct := models.Layer{Op: models.ConvTranspose2d, In: 32, Out: 16, Kernel: 2, Stride: 2}
	if got := ct.FanIn(); got != 64 {
		t.Errorf("ConvTranspose2d(32, 16, 2) fan-in %d, want 16·2·2 = 64 as PyTorch computes it", got)
	}
}

func mnistDirFor(t *testing.T) string { return mnisttest.Dir(t) }

func TestTrainFLOPs(t *testing.T) {
	arch, err := models.New("classic", models.DefaultBottleneck)
	if err != nil {
		t.Fatal(err)
	}
	// Forward 784·512 + 512·512 + 512·10 + 10·512 + 512·512 + 512·784
	// multiply-adds, three times, less the first layer's input gradient.
	fwd := 784*512 + 512*512 + 512*10 + 10*512 + 512*512 + 512*784
	if got, want := TrainFLOPs(arch), 2*(3*fwd-784*512); got != want {
		t.Errorf("TrainFLOPs(classic) = %d, want %d", got, want)
	}
}

// TestResumeChecksData checks that a run records its data files when it
// starts, and that a resumed run refuses files of other checksums.
func TestResumeChecksData(t *testing.T) {
	tr := notebookTrainer(t, "classic")
	files := []checkpoint.DataFile{{Split: "train", Path: "a/train.gz", MD5: "aa"}, {Split: "test", Path: "a/test.gz", MD5: "bb"}}
	if err := tr.recordData(files); err != nil {
		t.Fatal(err)
	}
	if len(tr.meta.Data) != 2 || tr.meta.Data[1].MD5 != "bb" {
		t.Fatalf("recorded %v", tr.meta.Data)
	}
	tr.meta.Epochs = 1 // as after an epoch, or a resume
	moved := []checkpoint.DataFile{{Split: "train", Path: "b/train.gz", MD5: "aa"}, {Split: "test", Path: "b/test.gz", MD5: "bb"}}
	if err := tr.recordData(moved); err != nil {
		t.Errorf("the same files in another folder: %v", err)
	}
	other := []checkpoint.DataFile{{Split: "train", Path: "c/train.gz", MD5: "aa"}, {Split: "test", Path: "c/test.gz", MD5: "cc"}}
	if err := tr.recordData(other); err == nil || !strings.Contains(err.Error(), "c/test.gz has MD5 cc, but the run started on a/test.gz with MD5 bb") {
		t.Errorf("other test files: error %v", err)
	}
}

// filesIn returns the files of a run folder dir, named as package run
// names them (which the trainer's tests cannot import).
func filesIn(dir string) Files {
	return Files{Model: filepath.Join(dir, "model.safetensors"), State: filepath.Join(dir, "optimizer.safetensors"),
		Metrics: filepath.Join(dir, "metrics.jsonl")}
}

// TestVAELearns trains each VAE briefly on real MNIST and checks that its
// test negative ELBO falls, that it is the BCE of the reconstructions plus
// its KL term (the KL positive, the ELBO near what a few epochs give), and
// that NegELBO draws the same noise at every call.
func TestVAELearns(t *testing.T) {
	train, test := realMNIST(t)
	test = firstN(test, 1000)
	for _, kind := range []string{"classic-vae", "conv-vae"} {
		t.Run(kind, func(t *testing.T) {
			arch, err := models.New(kind, 10)
			if err != nil {
				t.Fatal(err)
			}
			cfg := DefaultConfig(arch)
			cfg.Epochs, cfg.Limit = 2, 4096
			tr, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			before, _, err := tr.NegELBO(test)
			if err != nil {
				t.Fatal(err)
			}
			hist, err := tr.Run(context.Background(), filesIn(t.TempDir()), train, test, Hooks{})
			if err != nil {
				t.Fatal(err)
			}
			last := hist[len(hist)-1]
			t.Logf("%s: test −ELBO %.2f nats before, %.2f (KL %.2f) after; test MSE through μ %.4f", kind, before, last.TestNegELBO, last.TestKL, last.TestMSE)
			// An untrained model's BCE is about 784·log 2 = 543 nats.
			if !(before > 400) || !(last.TestNegELBO < 250) || !(last.TestKL > 0) || !(last.TestKL < last.TestNegELBO) {
				t.Errorf("test −ELBO %.2f before, %.2f after, KL %.2f: want above 400, below 250, and a positive KL below it", before, last.TestNegELBO, last.TestKL)
			}
			if !(last.TestMSE < 0.08) {
				t.Errorf("test MSE through μ %.4f, want below 0.08", last.TestMSE)
			}
			again, kl, err := tr.NegELBO(test)
			if err != nil || again != last.TestNegELBO || kl != last.TestKL {
				t.Errorf("NegELBO again: %v, %v, %v; want %v, %v", again, kl, err, last.TestNegELBO, last.TestKL)
			}
		})
	}
	plain, _ := New(DefaultConfig(mustArch(t, "classic")))
	if _, _, err := plain.NegELBO(test); err == nil {
		t.Error("a plain autoencoder gave an ELBO")
	}
}

func mustArch(t *testing.T, kind string) models.Arch {
	t.Helper()
	a, err := models.New(kind, 10)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
