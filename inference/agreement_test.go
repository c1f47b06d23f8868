package inference_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/latent-ai/latent/dataset"
	"github.com/latent-ai/latent/exporter"
	"github.com/latent-ai/latent/inference"
	"github.com/latent-ai/latent/internal/mnisttest"
	"github.com/latent-ai/latent/internal/torchtest"
	"github.com/latent-ai/latent/models"
	"github.com/latent-ai/latent/run"
	"github.com/latent-ai/latent/trainer"
)

// TestAgreementWithGorgoniaAndPyTorch trains each model briefly with the
// Gorgonia trainer, exports it, and checks on 1,000 real test images that
// ONNX Runtime's encoder and decoder agree with the Gorgonia forward pass
// and with PyTorch (the notebook's classes loaded with the same weights):
// within 1e-4 max abs for codes and 1e-5 for decoded images. Each decoder
// decodes the same codes, so that it is checked on its own.
func TestAgreementWithGorgoniaAndPyTorch(t *testing.T) {
	torchtest.Need(t)
	dir := mnisttest.Dir(t)
	train, err := dataset.Load(dataset.MNIST, dir, dataset.Train)
	if err != nil {
		t.Fatal(err)
	}
	const n = 1000
	x := mnistTest(t, n)
	for _, kind := range models.Kinds() {
		t.Run(kind, func(t *testing.T) {
			arch, _ := models.New(kind, 10)
			cfg := trainer.DefaultConfig(arch)
			cfg.Epochs, cfg.Limit = 1, 640
			tr, err := trainer.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			runDir := t.TempDir()
			if _, err := tr.Run(context.Background(), run.Folder(runDir).Trainer(), trainer.Data{Pixels: train.Pixels, N: train.N}, trainer.Data{}, trainer.Hooks{}); err != nil {
				t.Fatal(err)
			}
			if _, _, err := exporter.Export(tr.Model(), nil, runDir); err != nil {
				t.Fatal(err)
			}
			m, err := inference.OpenRun(runDir, inference.Options{Device: inference.CPU, IntraOpThreads: 2})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			codes, err := m.Encode(x, n)
			if err != nil {
				t.Fatal(err)
			}
			images, err := m.Decode(codes, n)
			if err != nil {
				t.Fatal(err)
			}

			f := trainer.NewForward(tr.Weights())
			gCodes, err := f.Encode(x, n)
			if err != nil {
				t.Fatal(err)
			}
			gImages, err := f.Decode(codes, n)
			if err != nil {
				t.Fatal(err)
			}
			if d := torchtest.MaxAbsDiff(codes, gCodes); d > 1e-4 {
				t.Errorf("ONNX Runtime codes differ from Gorgonia's by up to %g", d)
			}
			if d := torchtest.MaxAbsDiff(images, gImages); d > 1e-5 {
				t.Errorf("ONNX Runtime images differ from Gorgonia's by up to %g", d)
			}

			xs, cs, is := filepath.Join(runDir, "x.npy"), filepath.Join(runDir, "codes.npy"), filepath.Join(runDir, "images.npy")
			torchtest.WriteMatrix(t, xs, x, n)
			torchtest.WriteMatrix(t, cs, codes, n)
			torchtest.WriteMatrix(t, is, images, n)
			res := torchtest.RoundTrip(t, run.Folder(runDir).Path(run.ModelFile), xs, cs, is)
			t.Logf("%s: ORT vs Gorgonia: codes %.2g, images %.2g; ORT vs PyTorch: codes %v, images %v", kind,
				torchtest.MaxAbsDiff(codes, gCodes), torchtest.MaxAbsDiff(images, gImages), res["code_max_abs_diff"], res["recon_max_abs_diff"])
		})
	}
}
