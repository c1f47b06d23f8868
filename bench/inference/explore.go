package main

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sync"

	"github.com/latent-ai/latent/dataset"
	"github.com/latent-ai/latent/inference"
	"github.com/latent-ai/latent/onnxmeta"
	ort "github.com/yalue/onnxruntime_go"
)

// Variant is one way of running the encoder through ONNX Runtime directly,
// with session options that package inference does not offer (yet).
type Variant struct {
	Name         string    `json:"name"`
	Seconds      []float64 `json:"seconds"`
	ImagesPerSec float64   `json:"images_per_sec"`
	P50us        float64   `json:"single_p50_us"`
	P99us        float64   `json:"single_p99_us"`
	MaxDiff      float64   `json:"max_abs_diff"` // vs package inference's codes
}

type variantSpec struct {
	name    string
	threads int  // intra-op threads
	workers int  // goroutines sharing the session for the 60k encode
	reuse   bool // single image: one input and one output tensor, reused
	opts    func(*ort.SessionOptions) error
}

func explore(c config, dir string, set *dataset.Set, batch int) ([]Variant, error) {
	data, err := os.ReadFile(filepath.Join(dir, onnxmeta.EncoderFile))
	if err != nil {
		return nil, err
	}
	// Reference codes from package inference, to check every variant.
	ref, err := referenceCodes(dir, set, c.threads)
	if err != nil {
		return nil, err
	}
	n := c.threads
	config := func(k, v string) func(*ort.SessionOptions) error {
		return func(o *ort.SessionOptions) error { return o.AddSessionConfigEntry(k, v) }
	}
	specs := []variantSpec{
		{name: fmt.Sprintf("as package inference (intra %d)", n), threads: n},
		{name: fmt.Sprintf("intra %d, reused tensors", n), threads: n, reuse: true},
		{name: fmt.Sprintf("intra %d, no spinning", n), threads: n, opts: config("session.intra_op.allow_spinning", "0")},
		{name: fmt.Sprintf("intra %d, graph opt basic", n), threads: n, opts: func(o *ort.SessionOptions) error {
			return o.SetGraphOptimizationLevel(ort.GraphOptimizationLevelEnableBasic)
		}},
		{name: fmt.Sprintf("intra %d, graph opt off", n), threads: n, opts: func(o *ort.SessionOptions) error {
			return o.SetGraphOptimizationLevel(ort.GraphOptimizationLevelDisableAll)
		}},
		{name: fmt.Sprintf("intra %d, mem pattern+arena off", n), threads: n, opts: func(o *ort.SessionOptions) error {
			if err := o.SetMemPattern(false); err != nil {
				return err
			}
			return o.SetCpuMemArena(false)
		}},
		{name: "intra 1", threads: 1},
		{name: "intra 1, reused tensors", threads: 1, reuse: true},
	}
	if n > 1 {
		specs = append(specs, variantSpec{name: fmt.Sprintf("intra 1, %d goroutines", n), threads: 1, workers: n, reuse: true})
	}
	var out []Variant
	for _, s := range specs {
		v, err := runVariant(c, s, data, set, batch, ref)
		if err != nil {
			return out, fmt.Errorf("%s: %w", s.name, err)
		}
		fmt.Printf("  %-36s %8.0f images/s  single p50 %7.1f us  p99 %7.1f us  max|diff| %.1e\n", v.Name, v.ImagesPerSec, v.P50us, v.P99us, v.MaxDiff)
		out = append(out, v)
	}
	return out, nil
}

func referenceCodes(dir string, set *dataset.Set, threads int) ([]float32, error) {
	m, err := inference.OpenRun(dir, inference.Options{IntraOpThreads: threads})
	if err != nil {
		return nil, err
	}
	defer m.Close()
	return m.Encode(set.Floats(nil, 0, checkImages), checkImages)
}

const checkImages = 256

func runVariant(c config, s variantSpec, data []byte, set *dataset.Set, batch int, ref []float32) (Variant, error) {
	v := Variant{Name: s.name}
	so, err := ort.NewSessionOptions()
	if err != nil {
		return v, err
	}
	defer so.Destroy()
	if err := so.SetIntraOpNumThreads(s.threads); err != nil {
		return v, err
	}
	if s.opts != nil {
		if err := s.opts(so); err != nil {
			return v, err
		}
	}
	sess, err := ort.NewDynamicAdvancedSessionWithONNXData(data, []string{onnxmeta.ImageName}, []string{onnxmeta.CodeName}, so)
	if err != nil {
		return v, err
	}
	defer sess.Destroy()
	const size = 28 * 28
	b := len(ref) / checkImages
	images := set.Floats(nil, 0, set.N)

	// encode runs images [lo,hi) in chunks of batch into codes.
	encode := func(lo, hi int, codes []float32) error {
		for off := lo; off < hi; off += batch {
			k := min(batch, hi-off)
			in, err := ort.NewTensor(ort.NewShape(int64(k), 1, 28, 28), images[off*size:(off+k)*size])
			if err != nil {
				return err
			}
			out, err := ort.NewTensor(ort.NewShape(int64(k), int64(b)), codes[off*b:(off+k)*b])
			if err != nil {
				in.Destroy()
				return err
			}
			err = sess.Run([]ort.Value{in}, []ort.Value{out})
			in.Destroy()
			out.Destroy()
			if err != nil {
				return err
			}
		}
		return nil
	}
	codes := make([]float32, set.N*b)
	if err := encode(0, checkImages, codes); err != nil {
		return v, err
	}
	for i, r := range ref {
		v.MaxDiff = math.Max(v.MaxDiff, math.Abs(float64(codes[i]-r)))
	}

	pass := func() error { return encode(0, set.N, codes) }
	if s.workers > 1 {
		pass = func() error {
			// Hand out whole batches to the workers, round robin by index.
			var wg sync.WaitGroup
			errs := make([]error, s.workers)
			for w := range s.workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for off := w * batch; off < set.N && errs[w] == nil; off += s.workers * batch {
						errs[w] = encode(off, min(off+batch, set.N), codes)
					}
				}()
			}
			wg.Wait()
			for _, e := range errs {
				if e != nil {
					return e
				}
			}
			return nil
		}
	}
	br, err := timePasses(pass, set.N, c.passes)
	if err != nil {
		return v, err
	}
	v.Seconds, v.ImagesPerSec = br.Seconds, br.ImagesPerSec

	var single func(i int) error
	if s.reuse {
		in, err := ort.NewEmptyTensor[float32](ort.NewShape(1, 1, 28, 28))
		if err != nil {
			return v, err
		}
		defer in.Destroy()
		out, err := ort.NewEmptyTensor[float32](ort.NewShape(1, int64(b)))
		if err != nil {
			return v, err
		}
		defer out.Destroy()
		inData := in.GetData()
		single = func(i int) error {
			copy(inData, set.Image(i%set.N))
			return sess.Run([]ort.Value{in}, []ort.Value{out})
		}
	} else {
		single = func(i int) error {
			i %= set.N
			return encode(i, i+1, codes)
		}
	}
	lat, err := timeSingle(single, c.single)
	if err != nil {
		return v, err
	}
	v.P50us, v.P99us = percentile(lat, 50), percentile(lat, 99)
	return v, nil
}

func printExplore(r Result) {
	fmt.Printf("\n%s: ONNX Runtime session options at batch %d (direct onnxruntime_go sessions, timed after the table's numbers; row 1 = the options package inference uses; package inference measured %.0f images/s, p50 %.1f us)\n",
		r.Kind, r.ORT.BestBatch, r.ORT.ImagesPerSec, r.ORT.P50us)
	fmt.Printf("  %-36s %10s %9s %8s %8s %8s\n", "variant", "images/s", "vs row 1", "vs torch", "p50 us", "p99 us")
	for _, v := range r.Explore {
		fmt.Printf("  %-36s %10.0f %8.2fx %7.2fx %8.1f %8.1f\n", v.Name, v.ImagesPerSec, v.ImagesPerSec/r.Explore[0].ImagesPerSec,
			v.ImagesPerSec/r.Torch.ImagesPerSec, v.P50us, v.P99us)
	}
}
