package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/latent-ai/latent/checkpoint"
	"github.com/latent-ai/latent/exporter"
	"github.com/latent-ai/latent/inference"
	"github.com/latent-ai/latent/latentstats"
	"github.com/latent-ai/latent/models"
	"github.com/latent-ai/latent/onnxmeta"
	"github.com/latent-ai/latent/pca"
)

// testBottleneck is the code size of the test models.
const testBottleneck = 6

// TestMain fails the whole package with the runtime's message when ONNX
// Runtime cannot be loaded, unless LATENT_SKIP_ORT=1.
func TestMain(m *testing.M) {
	if _, _, err := inference.Runtime(); err != nil {
		if os.Getenv("LATENT_SKIP_ORT") == "1" {
			fmt.Printf("skipping the server tests (LATENT_SKIP_ORT=1): %v\n", err)
			os.Exit(0)
		}
		fmt.Fprintf(os.Stderr, "server tests: %v\n(set LATENT_SKIP_ORT=1 to skip them)\n", err)
		os.Exit(1)
	}
	code := m.Run()
	for _, dir := range runDirs {
		os.RemoveAll(dir)
	}
	os.Exit(code)
}

var (
	runMu      sync.Mutex
	runDirs    = map[bool]string{}           // by withStats
	openModels = map[bool]*inference.Model{} // by withStats
)

// testModel returns a random classic model, exported with latent stats
// fitted to random codes when withStats is set, and opened once for the
// whole package (it is safe for concurrent use).
func testModel(t testing.TB, withStats bool) *inference.Model {
	t.Helper()
	runMu.Lock()
	defer runMu.Unlock()
	if m := openModels[withStats]; m != nil {
		return m
	}
	dir, err := os.MkdirTemp("", "latent-server-test-")
	if err != nil {
		t.Fatal(err)
	}
	runDirs[withStats] = dir
	if err := exportRandom(dir, withStats); err != nil {
		t.Fatal(err)
	}
	m, err := inference.OpenRun(dir, inference.Options{IntraOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	openModels[withStats] = m
	return m
}

// testRunDir returns the folder of testModel(t, true).
func testRunDir(t testing.TB) string {
	testModel(t, true)
	runMu.Lock()
	defer runMu.Unlock()
	return runDirs[true]
}

// exportRandom writes encoder.onnx and decoder.onnx of a classic model with
// PyTorch's default initialisation into dir.
func exportRandom(dir string, withStats bool) error {
	a, err := models.New("classic", testBottleneck)
	if err != nil {
		return err
	}
	m := checkpoint.NewModel(a)
	m.Meta.Dataset = "mnist"
	m.Meta.Epochs = 1
	m.Meta.TestLoss = []float64{0.05}
	rng := rand.New(rand.NewPCG(42, 1))
	for _, p := range a.Params() {
		bound := p.Layer.InitBound()
		for i := range m.Params[p.Name] {
			m.Params[p.Name][i] = float32((2*rng.Float64() - 1) * bound)
		}
	}
	var stats *latentstats.Stats
	if withStats {
		codes := make([]float32, 500*testBottleneck)
		for i := range codes {
			codes[i] = float32(rng.NormFloat64()*0.5 + 0.1)
		}
		if stats, err = pca.Fit(codes, 500, testBottleneck); err != nil {
			return err
		}
	}
	_, _, err = exporter.Export(m, stats, dir)
	return err
}

// quiet is a logger that writes nothing.
var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// newServer returns a server of m with cfg, logging nowhere unless cfg
// has a logger.
func newServer(t testing.TB, m Model, cfg Config) *Server {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	s, err := New(m, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// request is one request of a test.
type request struct {
	method, target string
	contentType    string
	body           string
	header         map[string]string
}

// do runs req through h and returns the recorded answer.
func do(h http.Handler, req request) *httptest.ResponseRecorder {
	r := httptest.NewRequest(req.method, req.target, strings.NewReader(req.body))
	if req.contentType != "" {
		r.Header.Set("Content-Type", req.contentType)
	}
	for k, v := range req.header {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// postJSON posts v as JSON to target through h and decodes a 200 answer
// into out; any other status fails the test.
func postJSON(t testing.TB, h http.Handler, target string, v, out any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	w := do(h, request{method: "POST", target: target, contentType: "application/json", body: string(b)})
	if w.Code != http.StatusOK {
		t.Fatalf("POST %s: %d %s", target, w.Code, w.Body)
	}
	if err := json.Unmarshal(w.Body.Bytes(), out); err != nil {
		t.Fatalf("POST %s: %v in %.200s", target, err, w.Body)
	}
}

// checkError checks that w is a JSON error with the given status and a
// message.
func checkError(t testing.TB, w *httptest.ResponseRecorder, status int) string {
	t.Helper()
	if w.Code != status {
		t.Errorf("status %d, want %d; body %.300s", w.Code, status, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	var e struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Error == "" {
		t.Errorf("body %.300q: want {\"error\": \"...\"} (%v)", w.Body, err)
	}
	return e.Error
}

// jsonImages returns {"images": [...]} with n images of size pixels, each
// pixel set by pix.
func jsonImages(n, size int, pix func(i, j int) string) string {
	var b bytes.Buffer
	b.WriteString(`{"images": [`)
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('[')
		for j := 0; j < size; j++ {
			if j > 0 {
				b.WriteByte(',')
			}
			b.WriteString(pix(i, j))
		}
		b.WriteByte(']')
	}
	b.WriteString("]}")
	return b.String()
}

// randomImages returns n random images of 784 pixels in [0,1].
func randomImages(n int, seed uint64) []float32 {
	rng := rand.New(rand.NewPCG(seed, 7))
	x := make([]float32, n*784)
	for i := range x {
		x[i] = rng.Float32()
	}
	return x
}

// fakeModel is a Model that answers zeros, and can block or panic, for
// the tests of limits that do not need ONNX Runtime.
type fakeModel struct {
	b       int
	started chan struct{} // when not nil, receives once per call
	release chan struct{} // when not nil, each call waits for it
	panics  bool
}

func (f *fakeModel) wait() {
	if f.started != nil {
		f.started <- struct{}{}
	}
	if f.release != nil {
		<-f.release
	}
	if f.panics {
		panic("fake model panics")
	}
}

func (f *fakeModel) Encode(images []float32, n int) ([]float32, error) {
	f.wait()
	return make([]float32, n*f.b), nil
}

func (f *fakeModel) Decode(codes []float32, n int) ([]float32, error) {
	f.wait()
	return make([]float32, n*784), nil
}

func (f *fakeModel) Sample(n int, from string, rng *rand.Rand) ([]float32, []float32, error) {
	f.wait()
	return make([]float32, n*f.b), make([]float32, n*784), nil
}

func (f *fakeModel) Metadata() *onnxmeta.Metadata { return nil }
func (f *fakeModel) Bottleneck() int              { return f.b }
func (f *fakeModel) ImageShape() []int            { return []int{1, 28, 28} }
func (f *fakeModel) Device() string               { return "fake" }
