package run

import (
	"context"
	"math"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/latent-ai/latent/dataset"
	"github.com/latent-ai/latent/evaluation"
	"github.com/latent-ai/latent/inference"
	"github.com/latent-ai/latent/internal/mnisttest"
	"github.com/latent-ai/latent/models"
	"github.com/latent-ai/latent/trainer"
)

// needRuntime fails the test when ONNX Runtime is missing, unless
// LATENT_SKIP_ORT=1.
func needRuntime(t *testing.T) {
	t.Helper()
	if _, _, err := inference.Runtime(); err != nil {
		if os.Getenv("LATENT_SKIP_ORT") == "1" {
			t.Skipf("LATENT_SKIP_ORT=1: %v", err)
		}
		t.Fatal(err)
	}
}

// trainedClassic trains the notebook's classic model (bottleneck 10, its
// recipe) on the first images of MNIST's training split for steps
// batches, saves and exports it, and returns the folder and both splits.
func trainedClassic(t *testing.T, steps int) (Folder, *dataset.Set, *dataset.Set) {
	t.Helper()
	dir := mnisttest.Dir(t)
	train, err := dataset.Load(dataset.MNIST, dir, dataset.Train)
	if err != nil {
		t.Fatal(err)
	}
	test, err := dataset.Load(dataset.MNIST, dir, dataset.Test)
	if err != nil {
		t.Fatal(err)
	}
	arch, err := models.New("classic", 10)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := trainer.New(trainer.DefaultConfig(arch))
	if err != nil {
		t.Fatal(err)
	}
	const batch = 64
	var images []float32
	for s := range steps {
		images = train.Floats(images, s*batch%(train.N-batch), batch)
		if _, err := tr.Step(images, batch); err != nil {
			t.Fatal(err)
		}
	}
	f := Folder(t.TempDir())
	if err := tr.Model().Save(f.Path(ModelFile)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.Export(context.Background(), ExportOptions{Train: train}); err != nil {
		t.Fatal(err)
	}
	return f, train, test
}

// TestSampleQualityOnMNIST scores the samples of a classic model trained
// with the notebook's recipe for 1,000 batches (about an epoch), with
// 1,000 samples a source against the first 2,000 test images, and checks
// what holds of such a model (and of the 5-epoch one, README): the
// samples of the fitted Gaussian cover far more of the test images
// (recall) than those of N(0, I), which are faint, blurred digits near
// the centre of the code space, most of them labelled 1 by the pixel
// k-NN; that classifier is right on more than 95% of the test images; the
// class shares sum to 1. It does not compare the precisions: in pixel
// space the faint N(0, I) samples fall in the balls of the few test
// images whose third neighbour is farther than the black image, so their
// precision is about 1, above that of the fitted Gaussian's.
func TestSampleQualityOnMNIST(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a model for 1,000 batches: not with -short")
	}
	needRuntime(t)
	start := time.Now()
	f, train, test := trainedClassic(t, 1000)
	trained := time.Since(start)
	const nTest = 2000
	sub := *test
	sub.N, sub.Pixels, sub.Labels = nTest, test.Pixels[:nTest*784], test.Labels[:nTest]
	var steps []string
	start = time.Now()
	a, err := f.Analyse(context.Background(), AnalyseOptions{Train: train, Test: &sub, Samples: 1000, SampleSeed: 1,
		Progress: func(what string, _, _ int) {
			if len(steps) == 0 || steps[len(steps)-1] != what {
				steps = append(steps, what)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	s := a.Eval.Samples
	t.Logf("trained in %v, analysed in %v", trained.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	if s == nil || s.Normal == nil || s.Fitted == nil {
		t.Fatalf("samples %+v", s)
	}
	for _, q := range []struct {
		name string
		q    any
	}{{"normal", *s.Normal}, {"fitted", *s.Fitted}} {
		t.Logf("%s: %+v", q.name, q.q)
	}
	t.Logf("pixel kNN (k=%d) accuracy on %d test images: %.4f", s.PixelKNNK, s.Real, s.PixelKNNAccuracy)
	if s.N != 1000 || s.Seed != 1 || s.Real != nTest || s.K != SampleK || s.PixelKNNK != SampleK {
		t.Errorf("n %d, seed %d, real %d, k %d, pixel kNN k %d", s.N, s.Seed, s.Real, s.K, s.PixelKNNK)
	}
	if s.PixelKNNAccuracy <= 0.95 {
		t.Errorf("pixel kNN accuracy %.4f, want > 0.95", s.PixelKNNAccuracy)
	}
	for _, q := range []*struct {
		name string
		p, r float64
		c    []float64
	}{{"normal", s.Normal.Precision, s.Normal.Recall, s.Normal.Classes}, {"fitted", s.Fitted.Precision, s.Fitted.Recall, s.Fitted.Classes}} {
		if q.p < 0 || q.p > 1 || q.r < 0 || q.r > 1 {
			t.Errorf("%s: precision %v, recall %v outside [0, 1]", q.name, q.p, q.r)
		}
		sum := 0.0
		for _, c := range q.c {
			sum += c
		}
		if len(q.c) != 10 || math.Abs(sum-1) > 1e-12 {
			t.Errorf("%s: %d class shares summing to %v", q.name, len(q.c), sum)
		}
	}
	if s.Fitted.Recall < s.Normal.Recall+0.03 {
		t.Errorf("recall: fitted %v, normal %v: want the fitted Gaussian's samples to cover far more of the test images", s.Fitted.Recall, s.Normal.Recall)
	}
	// Coverage, which outlying test images cannot lift: observed 0.41
	// and 0.73.
	if s.Fitted.Coverage < s.Normal.Coverage+0.15 || s.Normal.Density <= 0 {
		t.Errorf("coverage: fitted %v, normal %v (density %v): want the fitted Gaussian's samples to cover far more of the test images", s.Fitted.Coverage, s.Normal.Coverage, s.Normal.Density)
	}
	if n, f := slices.Max(s.Normal.Classes), slices.Max(s.Fitted.Classes); n < 2*f || n != s.Normal.Classes[1] {
		t.Errorf("largest class share: %v of the N(0, I) samples, %v of the fitted; want the N(0, I) samples' twice as large, and class 1", n, f)
	}
	t.Logf("progress: %q", steps)
}

// TestSampleQualityUnlabelled analyses a random model on unlabelled data
// (labels all 0): precision and recall but no class shares, and no
// sample quality at all with a negative Samples.
func TestSampleQualityUnlabelled(t *testing.T) {
	needRuntime(t)
	f, _ := newFolder(t)
	train, test := randomSet(200), randomSet(40)
	test.Split = dataset.Test
	if _, _, err := f.Export(context.Background(), ExportOptions{Train: train}); err != nil {
		t.Fatal(err)
	}
	a, err := f.Analyse(context.Background(), AnalyseOptions{Train: train, Test: test, Samples: 30, SampleSeed: 7})
	if err != nil {
		t.Fatal(err)
	}
	s := a.Eval.Samples
	a.Close()
	if s == nil || s.N != 30 || s.Seed != 7 || s.Real != 40 || s.PixelKNNK != 0 || s.PixelKNNAccuracy != 0 {
		t.Fatalf("samples %+v", s)
	}
	for _, q := range []*evaluation.SampleQuality{s.Normal, s.Fitted} {
		if q == nil || q.Classes != nil || q.Precision < 0 || q.Precision > 1 || q.Recall < 0 || q.Recall > 1 {
			t.Errorf("source %+v", q)
		}
	}
	b, err := f.SaveEval(a.Eval)
	if err != nil {
		t.Fatal(err)
	}
	if js := string(b); !strings.Contains(js, `"samples": {`) || strings.Contains(js, "classes") || strings.Contains(js, "pixel_knn") {
		t.Errorf("eval.json:\n%s", js)
	}

	a, err = f.Analyse(context.Background(), AnalyseOptions{Train: train, Test: test, Samples: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if a.Eval.Samples != nil {
		t.Errorf("Samples -1: samples %+v", a.Eval.Samples)
	}
	// Too few samples for k = 3.
	if _, err := a.SampleQuality(context.Background(), 3, 1, nil); err == nil || !strings.Contains(err.Error(), "3 samples: want more than k = 3") {
		t.Errorf("3 samples: %v", err)
	}
}

func TestSampleTable(t *testing.T) {
	test := &dataset.Set{Name: dataset.MNIST, N: 4, Labels: []uint8{0, 1, 1, 9}}
	shares := func(v float64) []float64 { s := make([]float64, 10); s[1] = v; s[0] = 1 - v; return s }
	s := &evaluation.Samples{N: 100, Seed: 1, Real: 4, K: 3, PixelKNNK: 3, PixelKNNAccuracy: 0.9717,
		Normal: &evaluation.SampleQuality{Precision: 1, Recall: 0, Classes: shares(0.75)},
		Fitted: &evaluation.SampleQuality{Precision: 0.9376, Recall: 0.2296, Density: 2.8022, Coverage: 0.6707, Classes: shares(0.125)}}
	tab := sampleTable(s, test)
	if len(tab.Header) != 15 || tab.Header[5] != "0" || tab.Header[14] != "9" || len(tab.Rows) != 3 {
		t.Fatalf("header %q, %d rows", tab.Header, len(tab.Rows))
	}
	if want := []string{"test images (their labels)", "", "", "", "", "25.0%", "50.0%"}; !slices.Equal(tab.Rows[0][:7], want) || tab.Rows[0][14] != "25.0%" {
		t.Errorf("test row %q", tab.Rows[0])
	}
	if want := []string{"fitted Gaussian", "0.9376", "0.2296", "2.8022", "0.6707", "87.5%", "12.5%", "0.0%"}; !slices.Equal(tab.Rows[2][:8], want) {
		t.Errorf("fitted row %q", tab.Rows[2])
	}
	for _, w := range []string{"100 images decoded", "seed 1", "the 4 test images", "3rd nearest", "3-NN classifier", "97.17%", "Naeem"} {
		if !strings.Contains(tab.Caption, w) {
			t.Errorf("caption lacks %q: %s", w, tab.Caption)
		}
	}
	// Unlabelled: no classes, no test row.
	s.Normal.Classes, s.Fitted.Classes = nil, nil
	if tab := sampleTable(s, test); len(tab.Header) != 5 || len(tab.Rows) != 2 || strings.Contains(tab.Caption, "classifier") {
		t.Errorf("unlabelled: header %q, %d rows, caption %s", tab.Header, len(tab.Rows), tab.Caption)
	}
	if sampleTable(nil, test) != nil {
		t.Error("no samples: a table")
	}
}
