package inference_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/latent-ai/latent/checkpoint"
	"github.com/latent-ai/latent/dataset"
	"github.com/latent-ai/latent/exporter"
	"github.com/latent-ai/latent/inference"
	"github.com/latent-ai/latent/internal/mnisttest"
	"github.com/latent-ai/latent/internal/modeltest"
	"github.com/latent-ai/latent/latentstats"
	"github.com/latent-ai/latent/pca"
	"google.golang.org/protobuf/proto"
)

// TestMain fails the whole package with the runtime's message when ONNX
// Runtime cannot be loaded, unless LATENT_SKIP_ORT=1.
func TestMain(m *testing.M) {
	if _, _, err := inference.Runtime(); err != nil {
		if os.Getenv("LATENT_SKIP_ORT") == "1" {
			fmt.Printf("skipping the inference tests (LATENT_SKIP_ORT=1): %v\n", err)
			os.Exit(0)
		}
		fmt.Fprintf(os.Stderr, "inference tests: %v\n(set LATENT_SKIP_ORT=1 to skip them)\n", err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// randomModel returns a model of the given kind with PyTorch's default
// initialisation, uniform in ±1/sqrt(fan-in), from a fixed seed.
func randomModel(t testing.TB, kind string, bottleneck int, seed uint64) *checkpoint.Model {
	t.Helper()
	return modeltest.Random(t, kind, bottleneck, seed)
}

// exportRandom exports a random model into a new temporary folder, with
// latent stats fitted to random codes when withStats is set.
func exportRandom(t testing.TB, kind string, bottleneck int, withStats bool) (*checkpoint.Model, string) {
	t.Helper()
	m := randomModel(t, kind, bottleneck, 42)
	var stats *latentstats.Stats
	if withStats {
		rng := rand.New(rand.NewPCG(3, 3))
		codes := make([]float32, 500*bottleneck)
		for i := range codes {
			codes[i] = float32(rng.NormFloat64()*0.5 + 0.1)
		}
		var err error
		if stats, err = pca.Fit(codes, 500, bottleneck); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	if _, _, err := exporter.Export(m, stats, dir); err != nil {
		t.Fatal(err)
	}
	return m, dir
}

func openRun(t testing.TB, dir string, opts inference.Options) *inference.Model {
	t.Helper()
	m, err := inference.OpenRun(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// mnistTest returns the first n images of the MNIST test set as float32 in
// [0,1]. The set is looked for in $LATENT_DATA, in ../shared/datasets/mnist
// beside the repository (as in CI) and in /work/shared/datasets/mnist.
func mnistTest(t testing.TB, n int) []float32 {
	t.Helper()
	set, err := dataset.Load(dataset.MNIST, mnisttest.Dir(t), dataset.Test)
	if err != nil {
		t.Fatal(err)
	}
	if set.N < n {
		t.Fatalf("%d MNIST test images, want %d", set.N, n)
	}
	return set.Floats(nil, 0, n)
}

// rejectedGraph writes an encoder whose inputs and outputs look right but
// whose first weight has the wrong shape, so that ONNX Runtime refuses to
// load it.
func rejectedGraph(t testing.TB, dir string) string {
	t.Helper()
	mp, err := exporter.Build(randomModel(t, "classic", 4, 9), exporter.Encoder, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range mp.Graph.Initializer {
		if x.Name == "encoder.0.weight" {
			x.Dims = []int64{512, 783}
		}
	}
	b, err := proto.Marshal(mp)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "rejected.onnx")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
