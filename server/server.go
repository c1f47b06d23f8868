// Package server serves a latent model over HTTP: a JSON API to encode
// images, decode codes and draw samples, and the explorer, a web page (plain
// HTML and JavaScript embedded in the binary) to move through the latent
// space.
//
// # API
//
//	POST /v1/encode    {"images": [[C·H·W values in [0,1]], ...]} or a PNG → {"codes": [[b values], ...]}
//	POST /v1/decode    {"codes": [[b values], ...]} → {"images": [[C·H·W], ...]}, or a PNG grid
//	POST /v1/sample    {"n": 16, "from": "normal"|"fitted", "seed": 1} → codes and images
//	GET  /v1/model     the model's metadata and latent statistics
//	GET  /v1/examples  test images with their labels (?n=10&offset=0)
//	GET  /healthz      {"status": "ok", ...}
//	GET  /openapi.json the OpenAPI 3 description of all of the above
//	GET  /             the explorer
//
// Images follow the MNIST convention: row-major, 0 is black (background), 1
// is white (ink); a digit is white on black. An image has the model's shape,
// C×H×W (1×28×28, 784 values, for MNIST). A PNG sent to /v1/encode is
// converted to the model's channels, grayscale or RGB (transparent pixels
// count as black), resized to its H×W by averaging over areas, and scaled
// to [0,1] (package imageprep);
// with ?invert=true, black-on-white drawings are turned around first. It is
// not cropped or centred as MNIST digits are: send a digit that fills about
// the middle 20×20 of the picture.
//
// Every error is answered as JSON, {"error": "..."}, with a 4xx status for a
// mistake of the client (400 malformed or invalid input, 404 unknown path,
// 405 wrong method, 408 body sent too slowly, 413 body or batch too large,
// 415 wrong content type), 503 with a Retry-After header when the server is
// overloaded, shutting down or ran out of time for the request, and 500
// only for a failure of the server itself (logged).
//
// # Backpressure
//
// At most Config.MaxInFlight inference calls run at once. At most
// MaxInFlight+Config.MaxQueue requests that need one (encode, decode,
// sample) are admitted at a time; the others are answered 503 at once,
// before their body is read. An admitted request reads and checks its body,
// then waits at most Config.MaxWait for a free slot, or gets 503. Memory is
// thereby bounded by about (MaxInFlight+MaxQueue)·MaxBodyBytes for the
// request bodies, and the latency of an answer by about MaxWait plus the
// inference itself.
package server

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/latent-ai/latent/dataset"
	"github.com/latent-ai/latent/onnxmeta"
)

// Model is what the server needs of a model; *inference.Model implements
// it. Its methods must be safe for concurrent use.
type Model interface {
	// Encode maps n images (n*C*H*W values in [0,1]) to n codes (n*b).
	Encode(images []float32, n int) ([]float32, error)
	// Decode maps n codes (n*b finite values) to n images (n*C*H*W).
	Decode(codes []float32, n int) ([]float32, error)
	// Sample draws n codes from "normal" or "fitted" with rng and decodes
	// them.
	Sample(n int, from string, rng *rand.Rand) (codes, images []float32, err error)
	// Metadata is the model's metadata, or nil when the files carry none.
	Metadata() *onnxmeta.Metadata
	// Bottleneck is the code size b.
	Bottleneck() int
	// ImageShape is the per-sample image shape [C, H, W].
	ImageShape() []int
	// Device is where the model runs: "cpu" or "cuda".
	Device() string
}

// Defaults of Config.
const (
	DefaultMaxBodyBytes    = 8 << 20
	DefaultMaxBatch        = 256
	DefaultMaxWait         = time.Second
	DefaultRequestTimeout  = 15 * time.Second
	DefaultReadTimeout     = 30 * time.Second
	DefaultWriteTimeout    = 60 * time.Second
	DefaultIdleTimeout     = 2 * time.Minute
	DefaultShutdownTimeout = 10 * time.Second
	// DefaultMaxExamples is the most examples one /v1/examples call gives.
	DefaultMaxExamples = 100
)

// MaxCode is the largest magnitude of a code value that /v1/decode accepts.
// The codes of trained models stay far inside it; larger values are a
// client's mistake.
const MaxCode = 1e4

// MaxPNGSide is the largest width or height of a PNG sent to /v1/encode.
const MaxPNGSide = 2048

// Config configures a Server. The zero value of every field means its
// default.
type Config struct {
	// MaxBodyBytes is the largest request body; larger ones get 413.
	MaxBodyBytes int64
	// MaxBatch is the largest number of images or codes in one request, and
	// the largest n of /v1/sample; larger batches get 413.
	MaxBatch int
	// MaxInFlight is the number of inference calls that may run at once;
	// the default is twice the number of CPUs Go uses.
	MaxInFlight int
	// MaxQueue is the number of inference requests admitted beyond
	// MaxInFlight to wait for a free slot; the default is 4·MaxInFlight.
	MaxQueue int
	// MaxWait is how long an admitted request waits for a free slot before
	// it gets 503.
	MaxWait time.Duration
	// RequestTimeout bounds the handling of one API request; a request
	// still waiting or running after it gets 503.
	RequestTimeout time.Duration
	// ReadTimeout, WriteTimeout and IdleTimeout are those of http.Server;
	// ReadHeaderTimeout is min(ReadTimeout, 10s).
	ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	// ShutdownTimeout bounds the wait for requests in progress when Serve's
	// context is cancelled.
	ShutdownTimeout time.Duration
	// CORSOrigin, when set, lets browser pages from that origin
	// ("https://example.org") or from any ("*") call the API; empty keeps
	// browsers to the server's own origin.
	CORSOrigin string
	// Examples, when not nil, are the images that /v1/examples gives (the
	// test split of the model's data set); without them /v1/examples
	// answers 404.
	Examples *dataset.Set
	// MaxExamples is the largest n of /v1/examples.
	MaxExamples int
	// Logger receives one line per request and the server's notes; nil
	// means slog.Default().
	Logger *slog.Logger
}

// withDefaults returns c with its zero fields set to their defaults, or an
// error for a negative value.
func (c Config) withDefaults() (Config, error) {
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"MaxBodyBytes", c.MaxBodyBytes}, {"MaxBatch", int64(c.MaxBatch)},
		{"MaxInFlight", int64(c.MaxInFlight)}, {"MaxQueue", int64(c.MaxQueue)},
		{"MaxWait", int64(c.MaxWait)}, {"RequestTimeout", int64(c.RequestTimeout)},
		{"ReadTimeout", int64(c.ReadTimeout)}, {"WriteTimeout", int64(c.WriteTimeout)},
		{"IdleTimeout", int64(c.IdleTimeout)}, {"ShutdownTimeout", int64(c.ShutdownTimeout)},
		{"MaxExamples", int64(c.MaxExamples)},
	} {
		if f.v < 0 {
			return c, fmt.Errorf("server: %s is %d: want 0 (the default) or more", f.name, f.v)
		}
	}
	if o := c.CORSOrigin; o != "" && o != "*" {
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			return c, fmt.Errorf("server: CORS origin %q: want \"*\" or an origin such as https://example.org (a scheme and a host, no path)", o)
		}
		c.CORSOrigin = u.Scheme + "://" + u.Host
	}
	setDefault(&c.MaxBodyBytes, DefaultMaxBodyBytes)
	setDefault(&c.MaxBatch, DefaultMaxBatch)
	setDefault(&c.MaxInFlight, 2*runtime.GOMAXPROCS(0))
	setDefault(&c.MaxQueue, 4*c.MaxInFlight)
	setDefault(&c.MaxWait, DefaultMaxWait)
	setDefault(&c.RequestTimeout, DefaultRequestTimeout)
	setDefault(&c.ReadTimeout, DefaultReadTimeout)
	setDefault(&c.WriteTimeout, DefaultWriteTimeout)
	setDefault(&c.IdleTimeout, DefaultIdleTimeout)
	setDefault(&c.ShutdownTimeout, DefaultShutdownTimeout)
	setDefault(&c.MaxExamples, DefaultMaxExamples)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, nil
}

func setDefault[T int | int64 | time.Duration](p *T, v T) {
	if *p == 0 {
		*p = v
	}
}

// Server answers the API and serves the explorer. Make one with New.
type Server struct {
	model Model
	cfg   Config
	log   *slog.Logger

	bottleneck int
	imageShape []int // [C, H, W]
	imageSize  int   // C*H*W
	modelJSON  []byte

	// admitted counts the inference requests in progress, running or
	// waiting for a slot; it never exceeds MaxInFlight+MaxQueue.
	admitted atomic.Int64
	// slots holds one token per inference call running.
	slots chan struct{}
	// work tracks the goroutines that run inference calls, which may
	// outlive their request when it times out.
	work sync.WaitGroup

	handler http.Handler
}

// New returns a server of m. It does not start serving: see Handler and
// Serve.
func New(m Model, cfg Config) (*Server, error) {
	if m == nil {
		return nil, errors.New("server: no model")
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Server{
		model:      m,
		cfg:        cfg,
		log:        cfg.Logger,
		bottleneck: m.Bottleneck(),
		imageShape: m.ImageShape(),
		slots:      make(chan struct{}, cfg.MaxInFlight),
	}
	if s.bottleneck < 1 || len(s.imageShape) != 3 {
		return nil, fmt.Errorf("server: model with bottleneck %d and image shape %v: want a bottleneck of at least 1 and a shape [C,H,W]", s.bottleneck, s.imageShape)
	}
	s.imageSize = s.imageShape[0] * s.imageShape[1] * s.imageShape[2]
	if ex := cfg.Examples; ex != nil && (max(ex.Channels, 1)*ex.Rows*ex.Cols != s.imageSize || len(ex.Pixels) != ex.N*s.imageSize || len(ex.Labels) != ex.N) {
		return nil, fmt.Errorf("server: %d examples of %d×%d×%d do not fit the model's images %v", ex.N, max(ex.Channels, 1), ex.Rows, ex.Cols, s.imageShape)
	}
	if s.modelJSON, err = s.describeModel(); err != nil {
		return nil, err
	}
	s.handler = s.routes()
	return s, nil
}

// Handler returns the server's HTTP handler: the API, the explorer, request
// logs and recovery from panics.
func (s *Server) Handler() http.Handler { return s.handler }

// Serve answers HTTP requests on ln until ctx is cancelled, then shuts down
// gracefully: it stops accepting connections, lets the requests in progress
// finish for up to Config.ShutdownTimeout, and returns nil. It returns an
// error if serving fails or the requests do not finish in time. ln is
// closed when Serve returns.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: min(s.cfg.ReadTimeout, 10*time.Second),
		ReadTimeout:       s.cfg.ReadTimeout,
		WriteTimeout:      s.cfg.WriteTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	s.log.Info("serving", "addr", ln.Addr().String(), "max_in_flight", s.cfg.MaxInFlight, "max_queue", s.cfg.MaxQueue)
	select {
	case err := <-errc:
		return fmt.Errorf("server: %w", err)
	case <-ctx.Done():
	}
	s.log.Info("shutting down", "reason", context.Cause(ctx).Error(), "timeout", s.cfg.ShutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	err := hs.Shutdown(sctx)
	<-errc // http.ErrServerClosed, now that Shutdown has begun
	if err != nil {
		hs.Close()
		return fmt.Errorf("server: shutdown: %w", err)
	}
	// Inference calls whose requests timed out may still run.
	done := make(chan struct{})
	go func() { s.work.Wait(); close(done) }()
	select {
	case <-done:
	case <-sctx.Done():
		return fmt.Errorf("server: shutdown: inference calls still running after %v", s.cfg.ShutdownTimeout)
	}
	s.log.Info("stopped")
	return nil
}

// describeModel returns the body of GET /v1/model.
func (s *Server) describeModel() ([]byte, error) {
	type limits struct {
		MaxBatch     int   `json:"max_batch"`
		MaxBodyBytes int64 `json:"max_body_bytes"`
		MaxExamples  int   `json:"max_examples"`
		MaxCode      int   `json:"max_code"`
	}
	type model struct {
		Kind       string          `json:"kind"`
		Bottleneck int             `json:"bottleneck"`
		ImageShape []int           `json:"image_shape"`
		Dataset    string          `json:"dataset"`
		Device     string          `json:"device"`
		Training   any             `json:"training"`
		Arch       json.RawMessage `json:"arch"`
		Stats      any             `json:"stats"`
		Examples   int             `json:"examples"`
		Limits     limits          `json:"limits"`
	}
	out := model{
		Bottleneck: s.bottleneck,
		ImageShape: s.imageShape,
		Device:     s.model.Device(),
		Arch:       json.RawMessage("null"),
		Limits:     limits{s.cfg.MaxBatch, s.cfg.MaxBodyBytes, s.cfg.MaxExamples, MaxCode},
	}
	if md := s.model.Metadata(); md != nil {
		out.Kind, out.Dataset, out.Training = md.Arch.Kind, md.Dataset, md.Training
		out.Arch = json.RawMessage(md.Arch.JSON())
		if md.Stats != nil {
			out.Stats = md.Stats
		}
	}
	if s.cfg.Examples != nil {
		out.Examples = s.cfg.Examples.N
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("server: describe the model: %w", err)
	}
	return b, nil
}

// statusWriter records the status and size of a response for the log.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// logged logs one line per request: method, path, status, duration and
// response size. It also turns a panic into a 500 answer (a bug of the
// server, never a client's mistake) and logs it.
func (s *Server) logged(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				buf := make([]byte, 4<<10)
				buf = buf[:runtime.Stack(buf, false)]
				s.log.Error("panic", "method", r.Method, "path", r.URL.Path, "panic", fmt.Sprint(v), "stack", string(buf))
				if sw.status == 0 {
					writeError(sw, &apiError{status: http.StatusInternalServerError, msg: "internal error"})
				}
			}
			level := slog.LevelInfo
			if sw.status >= 500 {
				level = slog.LevelWarn
			}
			s.log.LogAttrs(r.Context(), level, "request",
				slog.String("method", r.Method),
				slog.String("path", r.URL.Path),
				slog.Int("status", sw.status),
				slog.Duration("duration", time.Since(start)),
				slog.Int64("bytes", sw.bytes),
				slog.String("remote", r.RemoteAddr),
			)
		}()
		next.ServeHTTP(sw, r)
	})
}
