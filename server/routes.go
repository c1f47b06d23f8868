package server

import (
	"bytes"
	"compress/gzip"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/latent-ai/latent/inference"
)

// staticFiles are the explorer's page, script and style sheet.
//
//go:embed static
var staticFiles embed.FS

// openAPI is the OpenAPI 3 description of the API, served at /openapi.json.
//
//go:embed openapi.json
var openAPI []byte

var staticFS = mustSub(staticFiles, "static")

// queryParams are the query parameters that each path of the API takes, as
// the OpenAPI document declares them: the one place they are listed.
var queryParams = mustQueryParams(openAPI)

// mustQueryParams reads the query parameters of each path from the
// OpenAPI document.
func mustQueryParams(doc []byte) map[string][]string {
	var d struct {
		Paths map[string]map[string]struct {
			Parameters []struct {
				Name string `json:"name"`
				In   string `json:"in"`
			} `json:"parameters"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(doc, &d); err != nil {
		panic(err) // the document is embedded, and a test parses it
	}
	out := map[string][]string{}
	for path, ops := range d.Paths {
		out[path] = []string{}
		for _, op := range ops {
			for _, p := range op.Parameters {
				if p.In == "query" {
					out[path] = append(out[path], p.Name)
				}
			}
		}
	}
	return out
}

func mustSub(f fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(f, dir)
	if err != nil {
		panic(err) // dir is a constant that go:embed checked
	}
	return sub
}

// A route is one path of the API.
type route struct {
	method string // GET (which also answers HEAD) or POST
	path   string
	// inference marks the routes that run the model: they are admitted
	// under MaxInFlight+MaxQueue and run in an inference slot.
	inference bool
	handle    func(w http.ResponseWriter, r *http.Request) error
}

// apiRoutes lists the routes of the API; the explorer's files are served
// at every other path.
func (s *Server) apiRoutes() []route {
	return []route{
		{http.MethodPost, "/v1/encode", true, s.handleEncode},
		{http.MethodPost, "/v1/decode", true, s.handleDecode},
		{http.MethodPost, "/v1/sample", true, s.handleSample},
		{http.MethodGet, "/v1/model", false, s.handleModel},
		{http.MethodGet, "/v1/examples", false, s.handleExamples},
		{http.MethodGet, "/healthz", false, s.handleHealth},
		{http.MethodGet, "/openapi.json", false, s.handleOpenAPI},
	}
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range s.apiRoutes() {
		mux.Handle(rt.path, s.api(rt))
	}
	mux.HandleFunc("/", s.handleStatic)
	return s.logged(s.cors(mux))
}

// cors answers browsers on Config.CORSOrigin (any origin for "*"): it
// allows their requests to the API and answers their preflight requests.
// Without a CORSOrigin it adds nothing, and browsers keep to the same
// origin.
func (s *Server) cors(next http.Handler) http.Handler {
	if s.cfg.CORSOrigin == "" {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		w.Header().Add("Vary", "Origin")
		if origin == "" || (s.cfg.CORSOrigin != "*" && origin != s.cfg.CORSOrigin) {
			next.ServeHTTP(w, r)
			return
		}
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", s.cfg.CORSOrigin)
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			h.Set("Access-Control-Allow-Methods", "GET, HEAD, POST")
			h.Set("Access-Control-Allow-Headers", "Content-Type, Accept")
			h.Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		h.Set("Access-Control-Expose-Headers", "Retry-After")
		next.ServeHTTP(w, r)
	})
}

// api wraps the handler of rt: it checks the method, admits inference
// requests, bounds the request's time and answers the handler's error.
func (s *Server) api(rt route) http.Handler {
	allow := rt.method
	if rt.method == http.MethodGet {
		allow = "GET, HEAD"
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w = &compressor{ResponseWriter: w, gzip: acceptsGzip(r)}
		w.Header().Set("Cache-Control", "no-store")
		if r.Method != rt.method && (rt.method != http.MethodGet || r.Method != http.MethodHead) {
			w.Header().Set("Allow", allow)
			s.fail(w, r, &apiError{status: http.StatusMethodNotAllowed,
				msg: fmt.Sprintf("method %s is not allowed on %s: use %s", r.Method, rt.path, rt.method)})
			return
		}
		for name := range r.URL.Query() {
			if known := queryParams[rt.path]; !slices.Contains(known, name) {
				takes := "no query parameters"
				if len(known) > 0 {
					takes = "only " + strings.Join(known, ", ")
				}
				s.fail(w, r, badRequest("unknown query parameter %q: %s takes %s", name, rt.path, takes))
				return
			}
		}
		if rt.inference {
			limit := int64(s.cfg.MaxInFlight + s.cfg.MaxQueue)
			if s.admitted.Add(1) > limit {
				s.admitted.Add(-1)
				s.fail(w, r, &apiError{status: http.StatusServiceUnavailable, retryAfter: 1,
					msg: fmt.Sprintf("server busy: %d inference requests in progress; retry later", limit)})
				return
			}
			defer s.admitted.Add(-1)
		}
		ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
		defer cancel()
		if err := rt.handle(w, r.WithContext(ctx)); err != nil {
			s.fail(w, r, err)
		}
	})
}

// apiError is an error answered to the client with its status.
type apiError struct {
	status     int
	msg        string
	retryAfter int // seconds, for a Retry-After header when > 0
}

func (e *apiError) Error() string { return e.msg }

// badRequest returns a 400 error.
func badRequest(format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, msg: fmt.Sprintf(format, args...)}
}

// tooLarge returns a 413 error.
func tooLarge(format string, args ...any) *apiError {
	return &apiError{status: http.StatusRequestEntityTooLarge, msg: fmt.Sprintf(format, args...)}
}

// fail answers err: an *apiError with its status and message, anything
// else (a bug or a failure of the model, never a client's mistake) with 500
// and a log line.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "error", err.Error())
		ae = &apiError{status: http.StatusInternalServerError, msg: "internal error"}
	}
	writeError(w, ae)
}

func writeError(w http.ResponseWriter, ae *apiError) {
	if ae.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(ae.retryAfter))
	}
	b, _ := json.Marshal(map[string]string{"error": ae.msg}) // a map of strings always marshals
	writeBody(w, ae.status, "application/json", append(b, '\n'))
}

// writeJSON answers v as JSON with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("server: encode the response: %w", err)
	}
	writeBody(w, status, "application/json", append(b, '\n'))
	return nil
}

// gzipMin is the smallest body that is compressed for a client that
// accepts gzip: below it, compression saves less than it costs.
const gzipMin = 1400

// compressor marks a response to a client that accepts gzip; writeBody
// compresses bodies of gzipMin bytes or more for it.
type compressor struct {
	http.ResponseWriter
	gzip bool
}

// Unwrap returns the writer underneath, for http.MaxBytesReader and
// http.ResponseController.
func (c *compressor) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// acceptsGzip reports whether r's Accept-Encoding allows gzip.
func acceptsGzip(r *http.Request) bool {
	for _, e := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		name, q, _ := strings.Cut(strings.TrimSpace(e), ";")
		if strings.EqualFold(strings.TrimSpace(name), "gzip") && strings.ReplaceAll(q, " ", "") != "q=0" {
			return true
		}
	}
	return false
}

func writeBody(w http.ResponseWriter, status int, contentType string, b []byte) {
	h := w.Header()
	if c, ok := w.(*compressor); ok {
		h.Add("Vary", "Accept-Encoding")
		if c.gzip && len(b) >= gzipMin {
			var buf bytes.Buffer
			zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed) // a valid level
			zw.Write(b)
			zw.Close()
			b = buf.Bytes()
			h.Set("Content-Encoding", "gzip")
		}
	}
	h.Set("Content-Type", contentType)
	h.Set("Content-Length", strconv.Itoa(len(b)))
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(b) // an error here is the client's going away: nothing to do
}

// infer runs f in an inference slot. It waits at most MaxWait for a free
// slot, less if ctx ends first, and returns a 503 error when none frees up.
// f runs in a goroutine of its own that holds the slot until f returns,
// even when ctx ends first and infer returns a 503 error: the slots bound
// the inference calls actually running. f must not touch the response.
func (s *Server) infer(ctx context.Context, f func() error) error {
	wait := time.NewTimer(s.cfg.MaxWait)
	defer wait.Stop()
	select {
	case s.slots <- struct{}{}:
	case <-wait.C:
		return &apiError{status: http.StatusServiceUnavailable, retryAfter: 1,
			msg: fmt.Sprintf("server busy: no inference slot came free within %v; retry later", s.cfg.MaxWait)}
	case <-ctx.Done():
		return s.timedOut(ctx)
	}
	done := make(chan error, 1)
	s.work.Add(1)
	go func() {
		defer s.work.Done()
		// The slot is given back before the result is: a caller that has
		// its answer finds the slot free, panic or not.
		err := s.call(f)
		<-s.slots
		done <- err
	}()
	select {
	case err := <-done:
		if errors.Is(err, inference.ErrClosed) {
			return &apiError{status: http.StatusServiceUnavailable, retryAfter: 1, msg: "the server is shutting down"}
		}
		return err
	case <-ctx.Done():
		return s.timedOut(ctx)
	}
}

// call runs f and turns a panic in it into an error.
func (s *Server) call(f func() error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("server: inference panicked: %v", v)
		}
	}()
	return f()
}

func (s *Server) timedOut(ctx context.Context) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return &apiError{status: http.StatusServiceUnavailable, retryAfter: 1,
			msg: fmt.Sprintf("request timed out after %v", s.cfg.RequestTimeout)}
	}
	// The client went away; what is answered is never read.
	return &apiError{status: http.StatusServiceUnavailable, msg: "request cancelled"}
}

// handleStatic serves the explorer's files: / is index.html. Unknown
// paths get a JSON 404.
func (s *Server) handleStatic(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, "/")
	if name == "" {
		name = "index.html"
	}
	info, err := fs.Stat(staticFS, name)
	if !fs.ValidPath(name) || err != nil || info.IsDir() {
		s.fail(w, r, &apiError{status: http.StatusNotFound, msg: fmt.Sprintf("no such page: %s (the API is under /v1; see /openapi.json)", r.URL.Path)})
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		s.fail(w, r, &apiError{status: http.StatusMethodNotAllowed, msg: fmt.Sprintf("method %s is not allowed on %s: use GET", r.Method, r.URL.Path)})
		return
	}
	h := w.Header()
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data: blob:; base-uri 'none'; frame-ancestors 'none'")
	http.ServeFileFS(w, r, staticFS, name)
}
