// Command gpucheck runs exported latent models on CUDA and on the CPU, in one
// process, through the GPU build of ONNX Runtime: it encodes a split of
// MNIST, decodes the codes and samples from N(0, I) on both devices,
// compares the outputs, and prints images/s for batch encoding and the
// latency of one image. scripts/gpu-check.sh runs it; see there.
//
//	gpucheck -data DIR [-split test] [-batch 1000] RUN...
//
// It exits 1 when CUDA does not start or when the devices disagree by more
// than 1e-4 (codes) or 1e-3 (images).
package main

import (
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"time"

	"github.com/latent-ai/latent/dataset"
	"github.com/latent-ai/latent/inference"
)

func main() {
	data := flag.String("data", os.Getenv("LATENT_DATA"), "MNIST's folder of IDX files")
	split := flag.String("split", dataset.Test, "the split to encode")
	batch := flag.Int("batch", 1000, "images per call for batch encoding")
	flag.Parse()
	if flag.NArg() == 0 || *data == "" {
		fmt.Fprintln(os.Stderr, "usage: gpucheck -data DIR RUN...")
		os.Exit(2)
	}
	path, version, err := inference.RuntimeFor(inference.CUDA)
	if err != nil {
		fail(err)
	}
	fmt.Printf("ONNX Runtime %s at %s\n", version, path)
	for _, p := range inference.Providers(path) {
		fmt.Printf("provider %s: %s\n", p.Name, map[bool]string{true: "ready", false: "needs " + p.Needs()}[len(p.Missing) == 0])
	}
	set, err := dataset.Load(dataset.MNIST, *data, *split)
	if err != nil {
		fail(err)
	}
	images := set.Floats(nil, 0, set.N)
	ok := true
	for _, dir := range flag.Args() {
		ok = check(dir, images, set.N, *batch) && ok
	}
	if !ok {
		os.Exit(1)
	}
}

// check runs the run dir's models on both devices and prints the table
// rows; it reports whether they agree.
func check(dir string, images []float32, n, batch int) bool {
	var models [2]*inference.Model
	for i, dev := range []string{inference.CPU, inference.CUDA} {
		m, err := inference.OpenRun(dir, inference.Options{Device: dev, MaxBatch: batch})
		if err != nil {
			fmt.Printf("%s: %s: %v\n", dir, dev, err)
			return false
		}
		defer m.Close()
		models[i] = m
	}
	kind := "model"
	if md := models[0].Metadata(); md != nil {
		kind = md.Arch.Kind
	}
	var codes, recons, samples [2][]float32
	for i, m := range models {
		start := time.Now()
		c, err := m.Encode(images, n)
		if err != nil {
			fail(err)
		}
		secs := time.Since(start).Seconds()
		codes[i] = c
		if recons[i], err = m.Decode(codes[0], n); err != nil {
			fail(err)
		}
		if _, samples[i], err = m.Sample(64, inference.FromNormal, rand.New(rand.NewPCG(1, 2))); err != nil {
			fail(err)
		}
		size := len(images) / n
		var lat []time.Duration
		for j := range 200 {
			t0 := time.Now()
			if _, err := m.Encode(images[(j%n)*size:(j%n+1)*size], 1); err != nil {
				fail(err)
			}
			lat = append(lat, time.Since(t0))
		}
		slices.Sort(lat)
		fmt.Printf("%-8s %-5s encode %7.0f images/s (batch %d, first call included)   one image: median %v, p99 %v\n",
			kind, m.Device(), float64(n)/secs, batch, lat[len(lat)/2], lat[len(lat)*99/100])
	}
	dc, dr, ds := maxDiff(codes[0], codes[1]), maxDiff(recons[0], recons[1]), maxDiff(samples[0], samples[1])
	agree := dc <= 1e-4 && dr <= 1e-3 && ds <= 1e-3
	fmt.Printf("%-8s cuda against cpu: codes %.2g (≤ 1e-4), decoded %.2g, samples %.2g (≤ 1e-3): %s\n",
		kind, dc, dr, ds, map[bool]string{true: "agree", false: "DISAGREE"}[agree])
	return agree
}

// maxDiff is the largest absolute difference of a and b.
func maxDiff(a, b []float32) float64 {
	d := 0.0
	for i := range a {
		d = max(d, math.Abs(float64(a[i])-float64(b[i])))
	}
	return d
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "gpucheck:", err)
	os.Exit(1)
}
