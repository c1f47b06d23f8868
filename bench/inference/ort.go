package main

import (
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/latent-ai/latent/dataset"
	"github.com/latent-ai/latent/inference"
)

// BatchResult is the 60k encode at one batch size.
type BatchResult struct {
	Batch        int       `json:"batch"`
	Seconds      []float64 `json:"seconds"` // each timed pass
	ImagesPerSec float64   `json:"images_per_sec"`
}

// ORTResult is what package inference achieved.
type ORTResult struct {
	Batches      []BatchResult `json:"batches"`
	BestBatch    int           `json:"best_batch"`
	ImagesPerSec float64       `json:"images_per_sec"`
	P50us        float64       `json:"single_p50_us"`
	P99us        float64       `json:"single_p99_us"`
	MeanUs       float64       `json:"single_mean_us"`
}

const warmSingle = 50

func benchORT(c config, dir string, set *dataset.Set) (ORTResult, error) {
	var r ORTResult
	for _, b := range c.batches {
		m, err := inference.OpenRun(dir, inference.Options{Device: inference.CPU, IntraOpThreads: c.threads, MaxBatch: b})
		if err != nil {
			return r, err
		}
		images := set.Floats(nil, 0, set.N)
		encode := func() error {
			_, err := m.Encode(images, set.N)
			return err
		}
		br, err := timePasses(encode, set.N, c.passes)
		m.Close()
		if err != nil {
			return r, err
		}
		br.Batch = b
		fmt.Printf("ORT batch %5d: %8.0f images/s (passes %s)\n", b, br.ImagesPerSec, fmtSeconds(br.Seconds))
		r.Batches = append(r.Batches, br)
		if br.ImagesPerSec > r.ImagesPerSec {
			r.ImagesPerSec, r.BestBatch = br.ImagesPerSec, b
		}
	}

	m, err := inference.OpenRun(dir, inference.Options{Device: inference.CPU, IntraOpThreads: c.threads, MaxBatch: r.BestBatch})
	if err != nil {
		return r, err
	}
	defer m.Close()
	lat, err := timeSingle(func(i int) error {
		_, err := m.Encode(set.Image(i%set.N), 1)
		return err
	}, c.single)
	if err != nil {
		return r, err
	}
	r.P50us, r.P99us, r.MeanUs = percentile(lat, 50), percentile(lat, 99), mean(lat)
	fmt.Printf("ORT single image: p50 %.1f us, p99 %.1f us, mean %.1f us (%d calls)\n", r.P50us, r.P99us, r.MeanUs, c.single)
	return r, nil
}

// timePasses runs pass once to warm up and then passes times, timing each;
// the best pass gives the images/s.
func timePasses(pass func() error, n, passes int) (BatchResult, error) {
	var br BatchResult
	if err := pass(); err != nil {
		return br, err
	}
	best := math.Inf(1)
	for range passes {
		t := time.Now()
		if err := pass(); err != nil {
			return br, err
		}
		s := time.Since(t).Seconds()
		br.Seconds = append(br.Seconds, s)
		best = min(best, s)
	}
	br.ImagesPerSec = float64(n) / best
	return br, nil
}

// timeSingle calls call(i) warmSingle times to warm up, then calls times,
// and returns each timed call's latency in microseconds.
func timeSingle(call func(i int) error, calls int) ([]float64, error) {
	for i := range warmSingle {
		if err := call(i); err != nil {
			return nil, err
		}
	}
	lat := make([]float64, calls)
	for i := range calls {
		t := time.Now()
		if err := call(i); err != nil {
			return nil, err
		}
		lat[i] = float64(time.Since(t).Nanoseconds()) / 1e3
	}
	return lat, nil
}

// percentile is numpy's default (linear) percentile, as torch_infer.py uses.
func percentile(x []float64, p float64) float64 {
	s := slices.Clone(x)
	slices.Sort(s)
	pos := p / 100 * float64(len(s)-1)
	lo := int(math.Floor(pos))
	hi := min(lo+1, len(s)-1)
	return s[lo] + (s[hi]-s[lo])*(pos-float64(lo))
}

func mean(x []float64) float64 {
	t := 0.0
	for _, v := range x {
		t += v
	}
	return t / float64(len(x))
}

func fmtSeconds(s []float64) string {
	out := ""
	for i, v := range s {
		if i > 0 {
			out += " "
		}
		out += fmt.Sprintf("%.3fs", v)
	}
	return out
}
