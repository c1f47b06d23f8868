// Package inference runs latent's exported ONNX encoder and decoder through
// ONNX Runtime.
//
// A Model holds one ONNX Runtime session per graph and is safe for
// concurrent use by many goroutines: every call makes its own input and
// output tensors and destroys them before it returns. Batches of any size
// are accepted and run in chunks of at most Options.MaxBatch samples, so the
// runtime's working memory stays bounded.
//
// Shapes, with b the bottleneck (code size) and [C,H,W] the image shape
// ([1,28,28] for MNIST), all float32, row-major, sample after sample:
//
//	images  n*C*H*W values, [n,C,H,W], each in [0,1]
//	codes   n*b values,     [n,b]
//
// Inputs are only read, never retained after a call returns. Returned slices
// are new and owned by the caller.
//
// Models open from paths (Open, OpenRun), from bytes (OpenBytes) or from an
// fs.FS (OpenFS), so that a service can go:embed its .onnx files. The
// graphs' inputs, outputs and metadata are read through ONNX Runtime
// itself. Each long call has a Context form (EncodeContext, DecodeContext,
// ReconstructContext, SampleContext) that returns the context's error once
// it is done: between chunks, and within a chunk by stopping ONNX Runtime.
//
// The package imports the standard library, onnxruntime_go and small latent
// packages (onnxmeta, models, latentstats, checkpoint's types) only: no graph,
// protobuf or linear-algebra library (TestLeanDependencies holds that line).
//
// The ONNX Runtime shared library is loaded at run time; see Runtime for
// where it is looked for. scripts/setup-onnxruntime.sh installs it.
package inference

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"sync"

	"github.com/latent-ai/latent/latentstats"
	"github.com/latent-ai/latent/onnxmeta"
	ort "github.com/yalue/onnxruntime_go"
)

// Devices that Options.Device names.
const (
	CPU  = "cpu"
	CUDA = "cuda"
	Auto = "auto"
)

// DefaultMaxBatch is the chunk size used when Options.MaxBatch is 0.
const DefaultMaxBatch = 1024

// maxSampleValues bounds n*C*H*W (and n*b) in Sample, whose n, unlike
// Encode's and Decode's, is not backed by an input slice: 2^30 float32
// values are 4 GiB (1.3 million 28x28 images), so that a mistaken n gets an
// error instead of an allocation that aborts the process. Callers that want
// more call Sample again.
const maxSampleValues = 1 << 30

// Sources of Sample.
const (
	// FromNormal draws codes from the standard normal N(0, I).
	FromNormal = "normal"
	// FromFitted draws codes from the Gaussian fitted to the training set's
	// codes, stored in the exported files' metadata.
	FromFitted = "fitted"
)

// ErrClosed is returned by the methods of a closed Model.
var ErrClosed = errors.New("inference: the model is closed")

// Options configure Open.
type Options struct {
	// Device is "cpu" (also when empty), "cuda" or "auto". "cuda" adds ONNX
	// Runtime's CUDA execution provider and fails if the library or the
	// machine cannot use it. "auto" tries CUDA and falls back to the CPU,
	// saying so through Logf and Model.Warning.
	Device string
	// CUDADevice is the GPU index for "cuda" and "auto".
	CUDADevice int
	// CUDAMemoryLimit caps, in bytes, the memory arena of the CUDA
	// provider on the GPU (its gpu_mem_limit); 0 leaves no cap.
	CUDAMemoryLimit int64
	// CUDAConvSearch is how the CUDA provider picks cuDNN's convolution
	// algorithms (its cudnn_conv_algo_search): "exhaustive" (also when
	// empty; ONNX Runtime's default: benchmarks each shape once, the best
	// for long runs of one batch size), "heuristic" (no benchmark: faster
	// to start) or "default" (one fixed algorithm).
	CUDAConvSearch string
	// IntraOpThreads is the number of threads ONNX Runtime uses within one
	// operator; 0 leaves ONNX Runtime's default (one per physical core).
	IntraOpThreads int
	// InterOpThreads is the number of threads ONNX Runtime uses to run
	// independent operators at once; 0 leaves its default.
	InterOpThreads int
	// NoSpinning stops ONNX Runtime's threads from spinning while they wait
	// for work (its allow_spinning settings): less CPU burnt between calls,
	// which suits a machine shared with other work, at a little more
	// latency a call.
	NoSpinning bool
	// Optimization is ONNX Runtime's graph optimisation level: "all" (also
	// when empty; ONNX Runtime's default), "extended", "basic" or
	// "disable".
	Optimization string
	// MaxBatch is the largest number of samples given to ONNX Runtime in
	// one run; 0 means DefaultMaxBatch.
	MaxBatch int
	// Logf, when not nil, receives notes such as a fallback to the CPU.
	Logf func(format string, args ...any)
}

// optimizationLevels maps Options.Optimization to ONNX Runtime's levels.
var optimizationLevels = map[string]ort.GraphOptimizationLevel{
	"":         ort.GraphOptimizationLevelEnableAll,
	"all":      ort.GraphOptimizationLevelEnableAll,
	"extended": ort.GraphOptimizationLevelEnableExtended,
	"basic":    ort.GraphOptimizationLevelEnableBasic,
	"disable":  ort.GraphOptimizationLevelDisableAll,
}

// check checks the options' values.
func (o Options) check() error {
	switch o.Device {
	case "", CPU, CUDA, Auto:
	default:
		return fmt.Errorf("inference: unknown device %q: want %q, %q or %q", o.Device, CPU, CUDA, Auto)
	}
	if o.IntraOpThreads < 0 {
		return fmt.Errorf("inference: %d intra-op threads: want 0 (the default) or more", o.IntraOpThreads)
	}
	if o.InterOpThreads < 0 {
		return fmt.Errorf("inference: %d inter-op threads: want 0 (the default) or more", o.InterOpThreads)
	}
	if o.MaxBatch < 0 {
		return fmt.Errorf("inference: max batch %d: want 0 (the default) or more", o.MaxBatch)
	}
	if _, ok := optimizationLevels[o.Optimization]; !ok {
		return fmt.Errorf("inference: optimization %q: want all, extended, basic or disable", o.Optimization)
	}
	if o.CUDADevice < 0 || o.CUDAMemoryLimit < 0 {
		return fmt.Errorf("inference: CUDA device %d, memory limit %d: want 0 or more", o.CUDADevice, o.CUDAMemoryLimit)
	}
	if _, ok := convSearch[o.CUDAConvSearch]; !ok {
		return fmt.Errorf("inference: CUDA conv search %q: want exhaustive, heuristic or default", o.CUDAConvSearch)
	}
	return nil
}

// Model is an opened encoder/decoder pair, or one half of a pair.
type Model struct {
	// mu is read-held by every call that runs a session and write-held by
	// Close, so that Close never destroys a session in use.
	mu     sync.RWMutex
	closed bool

	enc, dec *graph // either may be nil, not both

	bottleneck int
	image      []int // per-sample image shape [C, H, W]
	imageSize  int   // C*H*W
	maxBatch   int
	device     string
	warning    string
	meta       *onnxmeta.Metadata // nil for files without latent metadata
}

// graph is one opened ONNX file.
type graph struct {
	name    string // for messages: the file's path, or what it was read from
	session *ort.DynamicAdvancedSession
	meta    *onnxmeta.Metadata
	in, out []int64 // shapes with the batch dimension first (-1)
	// outputs names the outputs the session gives: CodeName or ImageName,
	// or for a variational model's encoder MuName and LogVarName, both of
	// shape out.
	outputs []string
}

// OpenRun opens RUN/encoder.onnx and RUN/decoder.onnx, as written by
// "latent export RUN".
func OpenRun(dir string, opts Options) (*Model, error) {
	enc := filepath.Join(dir, onnxmeta.EncoderFile)
	dec := filepath.Join(dir, onnxmeta.DecoderFile)
	for _, p := range []string{enc, dec} {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("inference: %s: %w (run \"latent export %s\" first)", p, errors.Unwrap(err), dir)
		}
	}
	return Open(enc, dec, opts)
}

// OpenFS opens dir/encoder.onnx and dir/decoder.onnx of fsys, such as a run
// folder's files embedded with go:embed. dir is a slash-separated path in
// fsys ("." for its root).
func OpenFS(fsys fs.FS, dir string, opts Options) (*Model, error) {
	names := []string{path.Join(dir, onnxmeta.EncoderFile), path.Join(dir, onnxmeta.DecoderFile)}
	var data [2][]byte
	for i, name := range names {
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("inference: %w", err)
		}
		data[i] = b
	}
	return openData(data[0], data[1], names[0], names[1], opts)
}

// Open loads the encoder and decoder graphs at the given paths. Either path
// may be empty to open one half only; the methods that need the missing half
// then return an error. Open checks that the encoder maps "image"
// [N,C,H,W] to "code" [N,b] and the decoder "code" [N,b] to "image"
// [N,C,H,W], with a dynamic batch dimension N and the same b and [C,H,W] in
// both, so that swapped or foreign files are refused.
func Open(encoderPath, decoderPath string, opts Options) (*Model, error) {
	if encoderPath == "" && decoderPath == "" {
		return nil, errors.New("inference: no encoder and no decoder path given")
	}
	var data [2][]byte
	for i, p := range []string{encoderPath, decoderPath} {
		if p == "" {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("inference: open %s: %w", []string{onnxmeta.Encoder, onnxmeta.Decoder}[i], err)
		}
		data[i] = b
	}
	return openData(data[0], data[1], encoderPath, decoderPath, opts)
}

// OpenBytes is Open for graphs in memory: the bytes of an encoder.onnx and
// of a decoder.onnx, either nil to open one half only. The model keeps no
// reference to them.
func OpenBytes(encoder, decoder []byte, opts Options) (*Model, error) {
	var enc, dec string
	if encoder != nil {
		enc = "encoder bytes"
	}
	if decoder != nil {
		dec = "decoder bytes"
	}
	if enc == "" && dec == "" {
		return nil, errors.New("inference: no encoder and no decoder given")
	}
	return openData(encoder, decoder, enc, dec, opts)
}

// openData opens the graphs in encoder and decoder, named encName and
// decName in messages; a half with an empty name is not opened.
func openData(encoder, decoder []byte, encName, decName string, opts Options) (*Model, error) {
	if err := opts.check(); err != nil {
		return nil, err
	}
	if opts.Device == "" {
		opts.Device = CPU
	}
	if opts.MaxBatch == 0 {
		opts.MaxBatch = DefaultMaxBatch
	}
	if _, _, err := RuntimeFor(opts.Device); err != nil {
		return nil, err
	}

	m := &Model{maxBatch: opts.MaxBatch, device: opts.Device}
	if m.device == Auto {
		m.device = CUDA
	}
	ok := false
	defer func() {
		if !ok {
			m.destroy()
		}
	}()
	var err error
	if encName != "" {
		if m.enc, err = m.openGraph(encoder, encName, onnxmeta.Encoder, opts); err != nil {
			return nil, err
		}
	}
	if decName != "" {
		if m.dec, err = m.openGraph(decoder, decName, onnxmeta.Decoder, opts); err != nil {
			return nil, err
		}
	}
	if err := m.pair(); err != nil {
		return nil, err
	}
	ok = true
	return m, nil
}

// pair derives the shapes and metadata of m from its graphs and checks that
// the two halves agree.
func (m *Model) pair() error {
	if m.enc != nil {
		m.image = dims(m.enc.in[1:])
		m.bottleneck = int(m.enc.out[1])
		m.meta = m.enc.meta
	}
	if m.dec != nil {
		img, b := dims(m.dec.out[1:]), int(m.dec.in[1])
		if m.enc != nil && (b != m.bottleneck || !slices.Equal(img, m.image)) {
			return fmt.Errorf("inference: %s and %s do not belong together: the encoder maps %v to %d values, the decoder %d values to %v",
				m.enc.name, m.dec.name, m.image, m.bottleneck, b, img)
		}
		m.image, m.bottleneck = img, b
		if m.dec.meta != nil {
			m.meta = m.dec.meta
		}
	}
	if m.enc != nil && m.dec != nil && m.enc.meta != nil && m.dec.meta != nil && !m.enc.meta.Arch.Equal(m.dec.meta.Arch) {
		return fmt.Errorf("inference: %s and %s do not belong together: a %s encoder and a %s decoder",
			m.enc.name, m.dec.name, m.enc.meta.Arch.Kind, m.dec.meta.Arch.Kind)
	}
	if m.meta != nil && m.meta.Arch.Bottleneck != m.bottleneck {
		return fmt.Errorf("inference: metadata says bottleneck %d but the graph has %d", m.meta.Arch.Bottleneck, m.bottleneck)
	}
	m.imageSize = 1
	for _, d := range m.image {
		m.imageSize *= d
	}
	return nil
}

// openGraph checks the graph in data (named name in messages), opens a
// session for it on m's device, and reads its metadata.
func (m *Model) openGraph(data []byte, name, part string, opts Options) (*graph, error) {
	g := &graph{name: name}
	if err := g.checkIO(data, part); err != nil {
		return nil, err
	}
	in := onnxmeta.ImageName
	if part == onnxmeta.Decoder {
		in = onnxmeta.CodeName
	}
	var err error
	for {
		g.session, err = newSession(data, in, g.outputs, m.device, opts)
		if err == nil {
			break
		}
		if m.device == CUDA && opts.Device == Auto {
			m.device = CPU
			m.warning = fmt.Sprintf("device auto: CUDA is not available (%v); running on the CPU", err)
			if opts.Logf != nil {
				opts.Logf("inference: %s", m.warning)
			}
			continue
		}
		if m.device == CUDA {
			return nil, fmt.Errorf("inference: open %s %s on CUDA: %w", part, name, err)
		}
		return nil, fmt.Errorf("inference: open %s %s: %w", part, name, err)
	}
	if g.meta, err = sessionMetadata(g.session); err != nil {
		g.session.Destroy()
		return nil, fmt.Errorf("inference: %s: %w", name, err)
	}
	if g.meta != nil && g.meta.Part != part {
		g.session.Destroy()
		return nil, fmt.Errorf("inference: %s is a %s, not the %s asked for", name, g.meta.Part, part)
	}
	return g, nil
}

// tensorInfo is a graph input or output: its name, element type and
// dimensions, with -1 for a symbolic or unknown dimension.
type tensorInfo struct {
	name  string
	float bool
	dims  []int64
}

func (t tensorInfo) String() string {
	typ := "float32"
	if !t.float {
		typ = "non-float32"
	}
	d := ""
	for j, v := range t.dims {
		if j > 0 {
			d += ","
		}
		if v < 0 {
			d += "N"
		} else {
			d += strconv.FormatInt(v, 10)
		}
	}
	return fmt.Sprintf("%s %s [%s]", t.name, typ, d)
}

// graphIO lists the inputs and outputs of the ONNX model in data, as ONNX
// Runtime reads them (initializers listed as inputs are left out).
func graphIO(data []byte) (ins, outs []tensorInfo, err error) {
	if len(data) == 0 {
		return nil, nil, errors.New("not a valid ONNX model: the file is empty; export it again")
	}
	in, out, err := ort.GetInputOutputInfoWithONNXData(data)
	if err != nil {
		return nil, nil, fmt.Errorf("not a valid ONNX model, or one that ONNX Runtime cannot load (%v): the file is damaged or truncated; export it again", err)
	}
	info := func(v ort.InputOutputInfo) tensorInfo {
		t := tensorInfo{name: v.Name}
		if v.OrtValueType != ort.ONNXTypeTensor {
			return t
		}
		t.float = v.DataType == ort.TensorElementDataTypeFloat
		for _, d := range v.Dimensions {
			t.dims = append(t.dims, max(d, -1))
		}
		return t
	}
	for _, v := range in {
		ins = append(ins, info(v))
	}
	for _, v := range out {
		outs = append(outs, info(v))
	}
	return ins, outs, nil
}

// checkIO checks the inputs and outputs of the graph in data against what
// part needs, and records their shapes in g.
func (g *graph) checkIO(data []byte, part string) error {
	ins, outs, err := graphIO(data)
	if err != nil {
		return fmt.Errorf("inference: open %s %s: %w", part, g.name, err)
	}
	wantIn, wantOut := "image [N,C,H,W]", "code [N,b]"
	if part == onnxmeta.Decoder {
		wantIn, wantOut = wantOut, wantIn
	}
	bad := func() error {
		what := ""
		switch {
		case len(ins) == 1 && ins[0].name == onnxmeta.CodeName && part == onnxmeta.Encoder:
			what = " (it looks like a decoder)"
		case len(ins) == 1 && ins[0].name == onnxmeta.ImageName && part == onnxmeta.Decoder:
			what = " (it looks like an encoder)"
		}
		return fmt.Errorf("inference: %s is not a latent %s%s: it maps %v to %v, want float32 %s to float32 %s with a dynamic batch dimension",
			g.name, part, what, ins, outs, wantIn, wantOut)
	}
	if part == onnxmeta.Encoder && len(outs) == 2 && outs[0].name == onnxmeta.MuName && outs[1].name == onnxmeta.LogVarName {
		// A variational model's encoder: μ is the code.
		if !slices.Equal(outs[0].dims, outs[1].dims) || !outs[1].float {
			return bad()
		}
		g.outputs = []string{onnxmeta.MuName, onnxmeta.LogVarName}
		outs = outs[:1]
		outs[0].name = onnxmeta.CodeName
	}
	if len(ins) != 1 || len(outs) != 1 || !ins[0].float || !outs[0].float {
		return bad()
	}
	img, code := ins[0], outs[0]
	if part == onnxmeta.Decoder {
		img, code = code, img
	}
	if img.name != onnxmeta.ImageName || code.name != onnxmeta.CodeName {
		return bad()
	}
	if len(img.dims) != 4 || len(code.dims) != 2 || img.dims[0] != -1 || code.dims[0] != -1 {
		return bad()
	}
	for _, d := range append(img.dims[1:], code.dims[1]) {
		if d < 1 {
			return bad()
		}
	}
	g.in, g.out = ins[0].dims, outs[0].dims
	if g.outputs == nil {
		g.outputs = []string{outs[0].name}
	}
	return nil
}

// newSession opens a session for the ONNX model in data on device.
func newSession(data []byte, in string, outs []string, device string, opts Options) (*ort.DynamicAdvancedSession, error) {
	so, err := ort.NewSessionOptions()
	if err != nil {
		return nil, err
	}
	defer so.Destroy()
	if opts.IntraOpThreads > 0 {
		if err := so.SetIntraOpNumThreads(opts.IntraOpThreads); err != nil {
			return nil, err
		}
	}
	if opts.InterOpThreads > 0 {
		if err := so.SetInterOpNumThreads(opts.InterOpThreads); err != nil {
			return nil, err
		}
	}
	if opts.NoSpinning {
		for _, key := range []string{"session.intra_op.allow_spinning", "session.inter_op.allow_spinning"} {
			if err := so.AddSessionConfigEntry(key, "0"); err != nil {
				return nil, err
			}
		}
	}
	if err := so.SetGraphOptimizationLevel(optimizationLevels[opts.Optimization]); err != nil {
		return nil, err
	}
	if device == CUDA {
		if err := appendCUDA(so, opts); err != nil {
			return nil, err
		}
	}
	return ort.NewDynamicAdvancedSessionWithONNXData(data, []string{in}, outs, so)
}

// convSearch maps Options.CUDAConvSearch to the CUDA provider's values.
var convSearch = map[string]string{"": "EXHAUSTIVE", "exhaustive": "EXHAUSTIVE", "heuristic": "HEURISTIC", "default": "DEFAULT"}

// appendCUDA adds the CUDA provider to so, after checking that the library
// in use has it and that this machine has what it needs, so that the
// error names what is missing rather than ONNX Runtime's long message.
func appendCUDA(so *ort.SessionOptions, opts Options) error {
	path, version, _ := Runtime()
	if err := cudaError(path, version); err != nil {
		return err
	}
	co, err := ort.NewCUDAProviderOptions()
	if err != nil {
		return fmt.Errorf("CUDA provider options: %s", shortORTError(err))
	}
	defer co.Destroy()
	settings := map[string]string{"device_id": strconv.Itoa(opts.CUDADevice), "cudnn_conv_algo_search": convSearch[opts.CUDAConvSearch]}
	if opts.CUDAMemoryLimit > 0 {
		settings["gpu_mem_limit"] = strconv.FormatInt(opts.CUDAMemoryLimit, 10)
	}
	if err := co.Update(settings); err != nil {
		return fmt.Errorf("CUDA provider options %v: %s", settings, shortORTError(err))
	}
	if err := so.AppendExecutionProviderCUDA(co); err != nil {
		return fmt.Errorf("the CUDA provider of ONNX Runtime %s did not start (no GPU, or a driver too old for CUDA 13?): %s", version, shortORTError(err))
	}
	return nil
}

// sessionMetadata reads latent's metadata through ONNX Runtime. It returns
// nil, nil for a file without it.
func sessionMetadata(s *ort.DynamicAdvancedSession) (*onnxmeta.Metadata, error) {
	md, err := s.GetModelMetadata()
	if err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	defer md.Destroy()
	props := make(map[string]string)
	for _, k := range onnxmeta.Keys {
		v, ok, err := md.LookupCustomMetadataMap(k)
		if err != nil {
			return nil, fmt.Errorf("metadata %s: %w", k, err)
		}
		if ok {
			props[k] = v
		}
	}
	meta, err := onnxmeta.Parse(props)
	if errors.Is(err, onnxmeta.ErrNotLatent) {
		return nil, nil
	}
	return meta, err
}

// Close releases the sessions. It waits for calls in progress to finish;
// later calls return ErrClosed. Closing twice is harmless.
func (m *Model) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	return m.destroy()
}

func (m *Model) destroy() error {
	var errs []error
	for _, g := range []*graph{m.enc, m.dec} {
		if g != nil && g.session != nil {
			errs = append(errs, g.session.Destroy())
			g.session = nil
		}
	}
	return errors.Join(errs...)
}

// Bottleneck is the code size b.
func (m *Model) Bottleneck() int { return m.bottleneck }

// ImageShape is the per-sample image shape [C, H, W]; the slice is new.
func (m *Model) ImageShape() []int { return append([]int(nil), m.image...) }

// Device is the device in use: "cpu" or "cuda" (never "auto").
func (m *Model) Device() string { return m.device }

// Warning is a note about the model, such as why "auto" fell back to the
// CPU, or "" if there is none.
func (m *Model) Warning() string { return m.warning }

// HasEncoder and HasDecoder report which halves are open.
func (m *Model) HasEncoder() bool { return m.enc != nil }

// HasDecoder reports whether the decoder is open.
func (m *Model) HasDecoder() bool { return m.dec != nil }

// Metadata returns a copy of the model's metadata (the decoder's when both
// halves are open), or nil when the files carry none (they were not
// exported by latent).
func (m *Model) Metadata() *onnxmeta.Metadata {
	if m.meta == nil {
		return nil
	}
	return m.meta.Clone()
}

// Stats returns the latent statistics stored in the files, or nil.
func (m *Model) Stats() *latentstats.Stats {
	if md := m.Metadata(); md != nil {
		return md.Stats
	}
	return nil
}

// Encode maps n images (n*C*H*W values in [0,1]) to n codes (n*b values).
func (m *Model) Encode(images []float32, n int) ([]float32, error) {
	return m.EncodeContext(context.Background(), images, n)
}

// EncodeContext is Encode, stopped with ctx's error once ctx is done.
func (m *Model) EncodeContext(ctx context.Context, images []float32, n int) ([]float32, error) {
	return m.encode(ctx, nil, images, n)
}

// EncodeInto is EncodeContext writing the n codes into codes, which must
// hold exactly n*b values: for callers that encode batch after batch into
// buffers of their own (latent encode does). The caller owns both slices;
// the model keeps neither after it returns. Concurrent calls need distinct
// codes slices. On an error, codes may hold part of the results.
func (m *Model) EncodeInto(ctx context.Context, codes, images []float32, n int) error {
	if codes == nil {
		codes = []float32{} // not nil: encode allocates for nil
	}
	_, err := m.encode(ctx, codes, images, n)
	return err
}

// encode encodes n images into codes, or into a new slice when codes is
// nil (made once the batch is checked), and returns it.
func (m *Model) encode(ctx context.Context, codes, images []float32, n int) ([]float32, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if err := m.ready(m.enc, onnxmeta.Encoder); err != nil {
		return nil, err
	}
	if err := checkBatch("encode", "images", images, n, m.imageSize, true); err != nil {
		return nil, err
	}
	if codes == nil {
		codes = make([]float32, n*m.bottleneck)
	} else if len(codes) != n*m.bottleneck {
		return nil, fmt.Errorf("inference: encode: a codes buffer of %d values for %d codes of %d: want %d", len(codes), n, m.bottleneck, n*m.bottleneck)
	}
	outs := [][]float32{codes}
	if m.Variational() {
		outs = append(outs, make([]float32, n*m.bottleneck)) // log σ², unused
	}
	if err := m.run(ctx, m.enc, images, n, m.imageSize, m.bottleneck, outs...); err != nil {
		return nil, fmt.Errorf("inference: encode: %w", err)
	}
	return codes, nil
}

// Variational reports whether the model is a variational autoencoder: its
// encoder gives μ and log σ² (EncodeDistribution), and its codes are μ.
func (m *Model) Variational() bool { return m.enc != nil && len(m.enc.outputs) == 2 }

// EncodeDistribution maps n images (n*C*H*W values in [0,1]) to the
// Gaussian q(z|x) = N(μ, σ²) of a variational model's encoder: mu and
// logVar, n*b values each (log σ²). Encode gives mu alone. A plain
// autoencoder has no distribution: it returns an error.
func (m *Model) EncodeDistribution(images []float32, n int) (mu, logVar []float32, err error) {
	return m.EncodeDistributionContext(context.Background(), images, n)
}

// EncodeDistributionContext is EncodeDistribution, stopped with ctx's
// error once ctx is done.
func (m *Model) EncodeDistributionContext(ctx context.Context, images []float32, n int) (mu, logVar []float32, err error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if err := m.ready(m.enc, onnxmeta.Encoder); err != nil {
		return nil, nil, err
	}
	if !m.Variational() {
		return nil, nil, fmt.Errorf("inference: encode distribution: %s is a plain autoencoder's encoder, with one output (code), not a variational one's (mu, logvar)", m.enc.name)
	}
	if err := checkBatch("encode", "images", images, n, m.imageSize, true); err != nil {
		return nil, nil, err
	}
	mu, logVar = make([]float32, n*m.bottleneck), make([]float32, n*m.bottleneck)
	if err := m.run(ctx, m.enc, images, n, m.imageSize, m.bottleneck, mu, logVar); err != nil {
		return nil, nil, fmt.Errorf("inference: encode: %w", err)
	}
	return mu, logVar, nil
}

// Decode maps n codes (n*b finite values) to n images (n*C*H*W values in
// [0,1]).
func (m *Model) Decode(codes []float32, n int) ([]float32, error) {
	return m.DecodeContext(context.Background(), codes, n)
}

// DecodeContext is Decode, stopped with ctx's error once ctx is done.
func (m *Model) DecodeContext(ctx context.Context, codes []float32, n int) ([]float32, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.decode(ctx, codes, n)
}

func (m *Model) decode(ctx context.Context, codes []float32, n int) ([]float32, error) {
	if err := m.ready(m.dec, onnxmeta.Decoder); err != nil {
		return nil, err
	}
	if err := checkBatch("decode", "codes", codes, n, m.bottleneck, false); err != nil {
		return nil, err
	}
	images := make([]float32, n*m.imageSize)
	if err := m.run(ctx, m.dec, codes, n, m.bottleneck, m.imageSize, images); err != nil {
		return nil, fmt.Errorf("inference: decode: %w", err)
	}
	return images, nil
}

// Reconstruct encodes and decodes n images: it returns the n reconstructed
// images (n*C*H*W values).
func (m *Model) Reconstruct(images []float32, n int) ([]float32, error) {
	return m.ReconstructContext(context.Background(), images, n)
}

// ReconstructContext is Reconstruct, stopped with ctx's error once ctx is
// done.
func (m *Model) ReconstructContext(ctx context.Context, images []float32, n int) ([]float32, error) {
	codes, err := m.EncodeContext(ctx, images, n)
	if err != nil {
		return nil, err
	}
	return m.DecodeContext(ctx, codes, n)
}

// Sample draws n codes and decodes them. from is FromNormal (codes from
// N(0, I)) or FromFitted (codes from the Gaussian fitted to the training
// set, which needs files exported with latent stats). A nil rng uses a
// randomly seeded generator. It returns the codes (n*b values) and the
// images (n*C*H*W values). n*C*H*W may be at most 2^30 (4 GiB of images);
// larger n is an error.
func (m *Model) Sample(n int, from string, rng *rand.Rand) (codes, images []float32, err error) {
	return m.SampleContext(context.Background(), n, from, rng)
}

// SampleContext is Sample, stopped with ctx's error once ctx is done.
func (m *Model) SampleContext(ctx context.Context, n int, from string, rng *rand.Rand) (codes, images []float32, err error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if err := m.ready(m.dec, onnxmeta.Decoder); err != nil {
		return nil, nil, err
	}
	if n <= 0 {
		return nil, nil, fmt.Errorf("inference: sample: %d samples: want at least 1", n)
	}
	if most := maxSampleValues / int64(max(m.bottleneck, m.imageSize)); int64(n) > most {
		return nil, nil, fmt.Errorf("inference: sample: %d samples is too many: want at most %d", n, most)
	}
	if rng == nil {
		rng = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	b := m.bottleneck
	codes = make([]float32, 0, n*b)
	switch from {
	case FromNormal:
		for i := 0; i < n*b; i++ {
			codes = append(codes, float32(rng.NormFloat64()))
		}
	case FromFitted:
		if m.meta == nil || m.meta.Stats == nil {
			return nil, nil, errors.New("inference: sample: the model files hold no latent statistics: export them with stats (latent export without --no-stats) or sample from normal")
		}
		for _, c := range m.meta.Stats.Sample(rng, n) {
			for _, v := range c {
				codes = append(codes, float32(v))
			}
		}
	default:
		return nil, nil, fmt.Errorf("inference: sample: unknown source %q: want %q or %q", from, FromNormal, FromFitted)
	}
	images, err = m.decode(ctx, codes, n)
	if err != nil {
		return nil, nil, err
	}
	return codes, images, nil
}

// ready checks that m is open and has the half g.
func (m *Model) ready(g *graph, part string) error {
	if m.closed {
		return ErrClosed
	}
	if g == nil {
		return fmt.Errorf("inference: no %s: the model was opened without one", part)
	}
	return nil
}

// checkBatch checks that x holds n samples of size values each, all finite,
// and in [0,1] if unit.
func checkBatch(op, what string, x []float32, n, size int, unit bool) error {
	if n <= 0 {
		return fmt.Errorf("inference: %s: batch of %d %s: want at least 1", op, n, what)
	}
	if n > math.MaxInt/size {
		return fmt.Errorf("inference: %s: batch of %d %s is too large", op, n, what)
	}
	if len(x) != n*size {
		return fmt.Errorf("inference: %s: %d values for %d %s of %d values each: want %d", op, len(x), n, what, size, n*size)
	}
	for i, v := range x {
		f := float64(v)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return fmt.Errorf("inference: %s: %s %d holds %v at index %d: want finite values", op, what[:len(what)-1], i/size, v, i%size)
		}
		if unit && (v < 0 || v > 1) {
			return fmt.Errorf("inference: %s: image %d holds %v at index %d: pixels must be in [0,1] (divide 0-255 bytes by 255)", op, i/size, v, i%size)
		}
	}
	return nil
}

// run feeds n samples of x (inSize values each) through g in chunks of at
// most m.maxBatch and writes the results into ys, one slice for each of
// g's outputs (outSize values a sample each). It returns ctx's error once
// ctx is done. Every tensor it makes is destroyed before it returns.
func (m *Model) run(ctx context.Context, g *graph, x []float32, n, inSize, outSize int, ys ...[]float32) error {
	chunks := make([][]float32, len(ys))
	for off := 0; off < n; off += m.maxBatch {
		if err := ctx.Err(); err != nil {
			return err
		}
		c := min(m.maxBatch, n-off)
		inShape := batchShape(c, g.in)
		outShape := batchShape(c, g.out)
		for i, y := range ys {
			chunks[i] = y[off*outSize : (off+c)*outSize]
		}
		if err := runChunk(ctx, g.session, inShape, x[off*inSize:(off+c)*inSize], outShape, chunks...); err != nil {
			return err
		}
	}
	return nil
}

// runChunk runs s on one chunk, with one output slice for each of s's
// outputs, all of outShape. With a ctx that can be done, the run gets run
// options that ctx's end terminates, so that a long chunk stops too.
func runChunk(ctx context.Context, s *ort.DynamicAdvancedSession, inShape ort.Shape, x []float32, outShape ort.Shape, ys ...[]float32) error {
	in, err := ort.NewTensor(inShape, x)
	if err != nil {
		return fmt.Errorf("input tensor: %w", err)
	}
	defer in.Destroy()
	outs := make([]ort.Value, len(ys))
	for i, y := range ys {
		out, err := ort.NewTensor(outShape, y)
		if err != nil {
			return fmt.Errorf("output tensor: %w", err)
		}
		defer out.Destroy()
		outs[i] = out
	}
	if ctx.Done() == nil {
		return s.Run([]ort.Value{in}, outs)
	}
	ro, err := ort.NewRunOptions()
	if err != nil {
		return fmt.Errorf("run options: %w", err)
	}
	terminated := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		ro.Terminate()
		close(terminated)
	})
	defer func() {
		if !stop() {
			<-terminated // Terminate is running: let it finish before Destroy
		}
		ro.Destroy()
	}()
	err = s.RunWithOptions([]ort.Value{in}, outs, ro)
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	return err
}

// batchShape returns a copy of s with the dynamic batch dimension set to n.
// (ort.NewShape does not copy, and s is shared by concurrent calls.)
func batchShape(n int, s []int64) ort.Shape {
	out := make(ort.Shape, len(s))
	copy(out, s)
	out[0] = int64(n)
	return out
}

func dims(s []int64) []int {
	out := make([]int, len(s))
	for i, d := range s {
		out[i] = int(d)
	}
	return out
}
