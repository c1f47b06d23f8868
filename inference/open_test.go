package inference_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/latent-ai/latent/inference"
	"github.com/latent-ai/latent/onnxmeta"
)

// TestOpenBytesAndFS opens the same exported pair from paths, from bytes
// and from an fs.FS (as go:embed gives it), and checks that all three give
// the same codes, bit for bit, and the same metadata.
func TestOpenBytesAndFS(t *testing.T) {
	_, dir := exportRandom(t, "classic", 4, true)
	enc, err := os.ReadFile(filepath.Join(dir, onnxmeta.EncoderFile))
	if err != nil {
		t.Fatal(err)
	}
	dec, err := os.ReadFile(filepath.Join(dir, onnxmeta.DecoderFile))
	if err != nil {
		t.Fatal(err)
	}
	fsys := fstest.MapFS{
		"models/mnist/" + onnxmeta.EncoderFile: {Data: enc},
		"models/mnist/" + onnxmeta.DecoderFile: {Data: dec},
	}
	const n = 9
	images := mnistTest(t, n)
	fromPath := openRun(t, dir, inference.Options{})
	want, err := fromPath.Encode(images, n)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		open func() (*inference.Model, error)
	}{
		{"bytes", func() (*inference.Model, error) { return inference.OpenBytes(enc, dec, inference.Options{}) }},
		{"fs", func() (*inference.Model, error) { return inference.OpenFS(fsys, "models/mnist", inference.Options{}) }},
		{"os.DirFS", func() (*inference.Model, error) { return inference.OpenFS(os.DirFS(dir), ".", inference.Options{}) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := tc.open()
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			got, err := m.Encode(images, n)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, want) {
				t.Errorf("codes differ from those of the files opened by path")
			}
			if md := m.Metadata(); md == nil || md.Stats == nil || !md.Arch.Equal(fromPath.Metadata().Arch) {
				t.Errorf("metadata %+v", md)
			}
		})
	}
	encOnly, err := inference.OpenBytes(enc, nil, inference.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer encOnly.Close()
	if encOnly.HasDecoder() || !encOnly.HasEncoder() {
		t.Error("OpenBytes(enc, nil) opened the wrong halves")
	}
	for _, tc := range []struct {
		name string
		open func() (*inference.Model, error)
		want string
	}{
		{"no bytes", func() (*inference.Model, error) { return inference.OpenBytes(nil, nil, inference.Options{}) }, "no encoder and no decoder"},
		{"empty bytes", func() (*inference.Model, error) { return inference.OpenBytes([]byte{}, nil, inference.Options{}) }, "not a valid ONNX model"},
		{"garbage", func() (*inference.Model, error) {
			return inference.OpenBytes(nil, []byte("not onnx"), inference.Options{})
		}, "not a valid ONNX model"},
		{"swapped", func() (*inference.Model, error) { return inference.OpenBytes(dec, enc, inference.Options{}) }, "looks like a decoder"},
		{"missing in the FS", func() (*inference.Model, error) { return inference.OpenFS(fsys, "models/other", inference.Options{}) }, "models/other/encoder.onnx"},
	} {
		m, err := tc.open()
		if err == nil {
			m.Close()
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.want)
		}
	}
}

// TestSessionOptions opens a model with each of ONNX Runtime's settings
// that Options passes through, and checks that the results do not change
// and that bad values are refused.
func TestSessionOptions(t *testing.T) {
	_, dir := exportRandom(t, "conv", 3, false)
	const n = 17
	images := mnistTest(t, n)
	want, err := openRun(t, dir, inference.Options{}).Encode(images, n)
	if err != nil {
		t.Fatal(err)
	}
	for _, opts := range []inference.Options{
		{IntraOpThreads: 1, InterOpThreads: 1},
		{NoSpinning: true},
		{Optimization: "disable"},
		{Optimization: "basic"},
		{Optimization: "extended", NoSpinning: true, IntraOpThreads: 2},
	} {
		got, err := openRun(t, dir, opts).Encode(images, n)
		if err != nil {
			t.Fatalf("%+v: %v", opts, err)
		}
		if d := diff32(got, want); d > 1e-5 {
			t.Errorf("%+v: codes %g from the default options'", opts, d)
		}
	}
	for _, tc := range []struct {
		opts inference.Options
		want string
	}{
		{inference.Options{Optimization: "max"}, `optimization "max"`},
		{inference.Options{InterOpThreads: -1}, "inter-op threads"},
		{inference.Options{Device: "tpu"}, `unknown device "tpu"`},
	} {
		if m, err := inference.OpenRun(dir, tc.opts); err == nil || !strings.Contains(err.Error(), tc.want) {
			if err == nil {
				m.Close()
			}
			t.Errorf("%+v: error %v, want one containing %q", tc.opts, err, tc.want)
		}
	}
}

// TestContextStops checks that the Context forms return the context's
// error: at once for a context already done, and soon for one cancelled
// while a large batch runs, and that the model stays usable afterwards.
func TestContextStops(t *testing.T) {
	_, dir := exportRandom(t, "conv", 6, true)
	m := openRun(t, dir, inference.Options{MaxBatch: 64})
	const n = 64
	images := mnistTest(t, n)

	done, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := m.EncodeContext(done, images, n); !errors.Is(err, context.Canceled) {
		t.Errorf("EncodeContext with a cancelled context: %v", err)
	}
	if _, err := m.DecodeContext(done, make([]float32, 6), 1); !errors.Is(err, context.Canceled) {
		t.Errorf("DecodeContext with a cancelled context: %v", err)
	}
	if _, _, err := m.SampleContext(done, 3, inference.FromFitted, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("SampleContext with a cancelled context: %v", err)
	}

	// 400 copies of the 64 images, far more than 10 ms of work: in chunks of
	// 64 (stopped between chunks), and in one chunk (stopped within it, by
	// ONNX Runtime's terminate flag).
	big := slices.Repeat(images, 400)
	for _, m := range []*inference.Model{m, openRun(t, dir, inference.Options{MaxBatch: 400 * n})} {
		ctx, stop := context.WithTimeout(context.Background(), 10*time.Millisecond)
		start := time.Now()
		_, err := m.EncodeContext(ctx, big, 400*n)
		took := time.Since(start)
		stop()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("EncodeContext past its deadline: %v after %v", err, took)
		}
		t.Logf("stopped after %v", took)
	}
	if _, err := m.Encode(images, n); err != nil {
		t.Fatalf("Encode after a stopped call: %v", err)
	}
}
