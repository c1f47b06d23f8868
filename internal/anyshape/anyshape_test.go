package anyshape

import (
	"bytes"
	"context"
	"encoding/json"
	"image/png"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/latent-ai/latent/checkpoint"
	"github.com/latent-ai/latent/dataset"
	"github.com/latent-ai/latent/exporter"
	"github.com/latent-ai/latent/inference"
	"github.com/latent-ai/latent/internal/mnisttest"
	"github.com/latent-ai/latent/models"
	"github.com/latent-ai/latent/pca"
	"github.com/latent-ai/latent/report"
	"github.com/latent-ai/latent/run"
	"github.com/latent-ai/latent/server"
	"github.com/latent-ai/latent/trainer"
)

// shape is the colour input of this test, C×H×W.
var shape = []int{3, 32, 32}

// tinted returns the first n images of an MNIST split as 3×32×32 colour
// images: each digit padded by 2 pixels on every side and tinted with a
// seeded random colour.
func tinted(s *dataset.Set, n int, seed uint64) *dataset.Set {
	rng := rand.New(rand.NewPCG(seed, 7))
	const side = 32
	out := &dataset.Set{Name: "tinted-" + s.Name, Split: s.Split, N: n, Rows: side, Cols: side, Channels: 3,
		Pixels: make([]uint8, 0, n*3*side*side), Labels: s.Labels[:n]}
	for i := range n {
		img := s.Image(i)
		tint := [3]float32{float32(0.3 + 0.7*rng.Float64()), float32(0.3 + 0.7*rng.Float64()), float32(0.3 + 0.7*rng.Float64())}
		for c := range 3 {
			for y := range side {
				for x := range side {
					v := float32(0)
					if y >= 2 && y < 30 && x >= 2 && x < 30 {
						v = img[(y-2)*28+x-2] * tint[c]
					}
					out.Pixels = append(out.Pixels, uint8(v*255+0.5))
				}
			}
		}
	}
	return out
}

// TestColourEndToEnd trains both models on 3×32×32 tinted digits, exports
// them, runs them through ONNX Runtime, draws the report's figures and
// serves them.
func TestColourEndToEnd(t *testing.T) {
	if _, _, err := inference.Runtime(); err != nil {
		t.Fatal(err)
	}
	dir := mnisttest.Dir(t)
	trainSet, err := dataset.Load(dataset.MNIST, dir, dataset.Train)
	if err != nil {
		t.Fatal(err)
	}
	testSet, err := dataset.Load(dataset.MNIST, dir, dataset.Test)
	if err != nil {
		t.Fatal(err)
	}
	train, test := tinted(trainSet, 1024, 1), tinted(testSet, 256, 2)
	for _, kind := range []string{"classic", "conv"} {
		t.Run(kind, func(t *testing.T) {
			arch, err := models.NewFor(kind, 6, shape)
			if err != nil {
				t.Fatal(err)
			}
			runDir := t.TempDir()
			tr, err := trainer.New(trainer.Config{Arch: arch, Dataset: "tinted-mnist", Epochs: 2, Batch: 64, LR: 1e-3, Seed: 1})
			if err != nil {
				t.Fatal(err)
			}
			testData := trainer.Data{Pixels: test.Pixels, N: test.N}
			before, err := tr.Evaluate(testData)
			if err != nil {
				t.Fatal(err)
			}
			history, err := tr.Run(context.Background(), run.Folder(runDir).Trainer(), trainer.Data{Pixels: train.Pixels, N: train.N}, testData, trainer.Hooks{})
			if err != nil {
				t.Fatal(err)
			}
			after := history[len(history)-1].TestMSE
			if !(after < 0.8*before) {
				t.Errorf("test MSE %.5f before training, %.5f after 2 epochs: it did not learn", before, after)
			}
			t.Logf("%s on %v: test MSE %.5f untrained, %.5f after 2 epochs", kind, shape, before, after)

			// Export, with the latent statistics of the training codes.
			m, err := checkpoint.Load(run.Folder(runDir).Path(run.ModelFile))
			if err != nil {
				t.Fatal(err)
			}
			w, err := trainer.FromModel(m)
			if err != nil {
				t.Fatal(err)
			}
			fwd := trainer.NewForward(w)
			trainCodes, err := fwd.Encode(train.Floats(nil, 0, train.N), train.N)
			if err != nil {
				t.Fatal(err)
			}
			stats, err := pca.Fit(trainCodes, train.N, 6)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := exporter.Export(m, stats, runDir); err != nil {
				t.Fatal(err)
			}
			model, err := inference.OpenRun(runDir, inference.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer model.Close()
			if got := model.ImageShape(); len(got) != 3 || got[0] != 3 || got[1] != 32 || got[2] != 32 {
				t.Fatalf("ONNX image shape %v, want %v", got, shape)
			}
			codes, err := model.Encode(test.Floats(nil, 0, test.N), test.N)
			if err != nil {
				t.Fatal(err)
			}
			want, err := fwd.Encode(test.Floats(nil, 0, test.N), test.N)
			if err != nil {
				t.Fatal(err)
			}
			for i := range codes {
				if math.Abs(float64(codes[i]-want[i])) > 1e-4*max(1, math.Abs(float64(want[i]))) {
					t.Fatalf("code value %d: ONNX Runtime %v, the trainer's forward pass %v", i, codes[i], want[i])
				}
			}

			// The report's figures, in colour.
			figDir := filepath.Join(runDir, "figures")
			figs, err := report.Draw(figDir, report.Inputs{Codec: model, Train: train, Test: test, TestCodes: codes,
				Stats: stats, TrainLoss: m.Meta.TrainLoss, TestLoss: m.Meta.TestLoss, Seed: 1})
			if err != nil {
				t.Fatal(err)
			}
			if len(figs) < 7 {
				t.Errorf("%d figures", len(figs))
			}
			if !colourful(t, filepath.Join(figDir, "reconstructions.png")) {
				t.Error("reconstructions.png has no coloured pixel: the colour images were drawn in gray")
			}

			// The server takes and gives images of the runDir's shape.
			srv, err := server.New(model, server.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				t.Fatal(err)
			}
			h := srv.Handler()
			post := func(body []byte) *httptest.ResponseRecorder {
				req := httptest.NewRequest("POST", "/v1/encode", bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				return rec
			}
			body, _ := json.Marshal(map[string]any{"images": [][]float32{test.Floats(nil, 0, 1)}})
			rec := post(body)
			var got struct {
				Codes [][]float32 `json:"codes"`
			}
			if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &got) != nil || len(got.Codes) != 1 || len(got.Codes[0]) != 6 {
				t.Fatalf("POST /v1/encode of one 3×32×32 image: %d %s", rec.Code, rec.Body.String())
			}
			body, _ = json.Marshal(map[string]any{"images": [][]float32{make([]float32, 784)}})
			rec = post(body)
			if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "3072") {
				t.Errorf("POST /v1/encode of a 784-value image: %d %s, want 400 naming 3072 values", rec.Code, rec.Body.String())
			}
		})
	}
}

// colourful reports whether the PNG at path has a pixel whose red, green
// and blue differ.
func colourful(t *testing.T, path string) bool {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if r != g || g != bl {
				return true
			}
		}
	}
	return false
}

// TestEveryOpInEveryBackend checks that each backend declares every layer
// kind of package models, and that the conv model, which TestColourEndToEnd
// runs through the trainer and through ONNX Runtime and compares, uses
// every one of them.
func TestEveryOpInEveryBackend(t *testing.T) {
	for _, b := range []struct {
		name string
		ops  []models.Op
	}{{"trainer", trainer.SupportedOps}, {"exporter", exporter.SupportedOps}} {
		for _, op := range models.Ops() {
			if !slices.Contains(b.ops, op) {
				t.Errorf("the %s does not support %s", b.name, op)
			}
		}
	}
	arch, err := models.NewFor("conv", 6, shape)
	if err != nil {
		t.Fatal(err)
	}
	used := map[models.Op]bool{}
	for _, l := range append(slices.Clone(arch.Encoder), arch.Decoder...) {
		used[l.Op] = true
	}
	for _, op := range models.Ops() {
		if !used[op] {
			t.Errorf("the conv model does not use %s, so no test runs it through both backends", op)
		}
	}
}
