package inference_test

import (
	"context"
	"fmt"
	"log"
	"math"
	"math/rand/v2"
	"os"
	"slices"

	"github.com/latent-ai/latent/checkpoint"
	"github.com/latent-ai/latent/exporter"
	"github.com/latent-ai/latent/inference"
	"github.com/latent-ai/latent/models"
)

// exampleRun exports a small untrained conv model into a temporary run
// folder, as "latent export" would from RUN/model.safetensors.
func exampleRun() string {
	arch, err := models.New("conv", 8)
	if err != nil {
		log.Fatal(err)
	}
	m := checkpoint.NewModel(arch)
	for _, p := range arch.Params() {
		for i := range m.Params[p.Name] {
			m.Params[p.Name][i] = float32(0.1 * math.Sin(float64(i)))
		}
	}
	dir, err := os.MkdirTemp("", "latent-run")
	if err != nil {
		log.Fatal(err)
	}
	if _, _, err := exporter.Export(m, nil, dir); err != nil {
		log.Fatal(err)
	}
	return dir
}

// exampleModel opens exampleRun's model, as ExampleOpenRun shows; done
// closes it and removes the folder.
func exampleModel() (m *inference.Model, done func()) {
	dir := exampleRun()
	m, err := inference.OpenRun(dir, inference.Options{})
	if err != nil {
		log.Fatal(err)
	}
	return m, func() {
		m.Close()
		os.RemoveAll(dir)
	}
}

func ExampleOpenRun() {
	dir := exampleRun()
	defer os.RemoveAll(dir)

	m, err := inference.OpenRun(dir, inference.Options{Device: "cpu"})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()

	// Three blank images [3,1,28,28] become three codes [3,8].
	images := make([]float32, 3*28*28)
	codes, err := m.Encode(images, 3)
	if err != nil {
		log.Fatal(err)
	}
	recon, err := m.Decode(codes, 3)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("device:", m.Device())
	fmt.Println("codes:", len(codes), "values, bottleneck", m.Bottleneck())
	fmt.Println("images:", len(recon), "values of shape", m.ImageShape())

	// Bad input is an error, never a panic.
	_, err = m.Encode(images[:100], 3)
	fmt.Println(err)
	// Output:
	// device: cpu
	// codes: 24 values, bottleneck 8
	// images: 2352 values of shape [1 28 28]
	// inference: encode: 100 values for 3 images of 784 values each: want 2352
}

// EncodeInto encodes batch after batch into one buffer of the caller's,
// with no allocation for the codes: the way to encode a whole data set.
func ExampleModel_EncodeInto() {
	m, done := exampleModel()
	defer done()

	const batch = 4
	images := make([]float32, batch*28*28)
	codes := make([]float32, batch*m.Bottleneck()) // reused for every batch
	for b := 0; b < 3; b++ {
		for i := range images {
			images[i] = float32(b) / 2 // batch b: images of gray level b/2
		}
		if err := m.EncodeInto(context.Background(), codes, images, batch); err != nil {
			log.Fatal(err)
		}
		// The codes equal Encode's, into the caller's buffer.
		want, _ := m.Encode(images, batch)
		fmt.Printf("batch %d: %d codes, the same as Encode's: %v\n", b, batch, slices.Equal(codes, want))
	}

	// A buffer of the wrong size is an error.
	fmt.Println(m.EncodeInto(context.Background(), codes[:5], images, batch))
	// Output:
	// batch 0: 4 codes, the same as Encode's: true
	// batch 1: 4 codes, the same as Encode's: true
	// batch 2: 4 codes, the same as Encode's: true
	// inference: encode: a codes buffer of 5 values for 4 codes of 8: want 32
}

func ExampleModel_Sample() {
	m, done := exampleModel()
	defer done()

	rng := rand.New(rand.NewPCG(1, 2))
	codes, images, err := m.Sample(16, inference.FromNormal, rng)
	if err != nil {
		log.Fatal(err)
	}
	inRange := true
	for _, v := range images {
		inRange = inRange && v >= 0 && v <= 1
	}
	fmt.Println(len(codes)/m.Bottleneck(), "samples, pixels in [0,1]:", inRange)

	// This export has no latent statistics, so "fitted" is refused.
	_, _, err = m.Sample(16, inference.FromFitted, rng)
	fmt.Println(err != nil)
	// Output:
	// 16 samples, pixels in [0,1]: true
	// true
}
