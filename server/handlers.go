package server

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"mime/multipart"
	"net/http"
	"strings"
)

// sampleStream is the PCG stream of /v1/sample's generator, the same as
// "latent sample": a seed gives the same samples in both.
const sampleStream = 0x1a7e47

// maxSeed bounds the seeds the server picks: they stay exact as JavaScript
// numbers (2^53).
const maxSeed = 1 << 53

// handleEncode answers POST /v1/encode: images as JSON, one PNG or JPEG
// picture, or several pictures as multipart/form-data, to codes.
func (s *Server) handleEncode(w http.ResponseWriter, r *http.Request) error {
	ct, err := requireType(r, "application/json", "image/png", "image/jpeg", "multipart/form-data")
	if err != nil {
		return err
	}
	invert, err := boolParam(r, "invert")
	if err != nil {
		return err
	}
	in, err := body(w, r, s.cfg.MaxBodyBytes)
	if err != nil {
		return err
	}
	var (
		images []float32
		n      = 1
	)
	switch ct {
	case "image/png", "image/jpeg":
		images, err = readPNG(in, s.imageShape, invert)
	case "multipart/form-data":
		images, n, err = s.readParts(r, in, invert)
	default:
		if invert {
			return badRequest("?invert is for pictures (PNG, JPEG) only")
		}
		images, n, err = decodeImages(in, s.imageSize, s.cfg.MaxBatch)
	}
	if err != nil {
		return err
	}
	var codes []float32
	err = s.infer(r.Context(), func() (err error) {
		codes, err = s.model.Encode(images, n)
		return err
	})
	if err != nil {
		return err
	}
	if !finite(codes) {
		return errors.New("server: the encoder gave non-finite values")
	}
	return writeJSON(w, http.StatusOK, struct {
		Codes [][]float32 `json:"codes"`
	}{rows(codes, n)})
}

// handleDecode answers POST /v1/decode: codes to images, as JSON or as a
// PNG grid.
func (s *Server) handleDecode(w http.ResponseWriter, r *http.Request) error {
	asPNG, err := wantsPNG(r)
	if err != nil {
		return err
	}
	scale, err := intParam(r, "scale", 2, 1, 8)
	if err != nil {
		return err
	}
	if _, err := requireType(r, "application/json"); err != nil {
		return err
	}
	in, err := body(w, r, s.cfg.MaxBodyBytes)
	if err != nil {
		return err
	}
	codes, n, err := decodeCodes(in, s.bottleneck, s.cfg.MaxBatch)
	if err != nil {
		return err
	}
	var images []float32
	err = s.infer(r.Context(), func() (err error) {
		images, err = s.model.Decode(codes, n)
		return err
	})
	if err != nil {
		return err
	}
	if !finite(images) {
		return errors.New("server: the decoder gave non-finite values")
	}
	if asPNG {
		if s.imageShape[0] != 1 {
			return badRequest("PNG output needs a model of grayscale images: ask for JSON")
		}
		b, err := encodeGrid(images, n, s.imageShape, scale)
		if err != nil {
			return err
		}
		writeBody(w, http.StatusOK, "image/png", b)
		return nil
	}
	return writeJSON(w, http.StatusOK, struct {
		Images [][]float32 `json:"images"`
	}{rows(images, n)})
}

// wantsPNG reports whether /v1/decode should answer a PNG: ?format=png, or
// an Accept header that lists image/png (and no ?format=json).
func wantsPNG(r *http.Request) (bool, error) {
	switch f := r.URL.Query().Get("format"); f {
	case "png":
		return true, nil
	case "json":
		return false, nil
	case "":
	default:
		return false, badRequest("?format=%s: want json or png", clip([]byte(f)))
	}
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err == nil && mt == "image/png" && params["q"] != "0" {
			return true, nil
		}
	}
	return false, nil
}

// handleSample answers POST /v1/sample: n codes drawn from a Gaussian and
// their images.
func (s *Server) handleSample(w http.ResponseWriter, r *http.Request) error {
	if _, err := requireType(r, "application/json"); err != nil {
		return err
	}
	in, err := body(w, r, s.cfg.MaxBodyBytes)
	if err != nil {
		return err
	}
	req, err := decodeSample(in, s.cfg.MaxBatch)
	if err != nil {
		return err
	}
	hasStats := false
	if md := s.model.Metadata(); md != nil && md.Stats != nil {
		hasStats = true
	}
	from := req.From
	switch {
	case from == "" && hasStats:
		from = "fitted"
	case from == "":
		from = "normal"
	case from == "fitted" && !hasStats:
		return badRequest("the model holds no latent statistics to sample from: use \"from\": \"normal\"")
	}
	seed := rand.Uint64N(maxSeed)
	if req.Seed != nil {
		seed = *req.Seed
	}
	rng := rand.New(rand.NewPCG(seed, sampleStream))
	var codes, images []float32
	err = s.infer(r.Context(), func() (err error) {
		codes, images, err = s.model.Sample(req.N, from, rng)
		return err
	})
	if err != nil {
		return err
	}
	if !finite(codes) || !finite(images) {
		return errors.New("server: sampling gave non-finite values")
	}
	return writeJSON(w, http.StatusOK, struct {
		From   string      `json:"from"`
		Seed   uint64      `json:"seed"`
		Codes  [][]float32 `json:"codes"`
		Images [][]float32 `json:"images"`
	}{from, seed, rows(codes, req.N), rows(images, req.N)})
}

// handleModel answers GET /v1/model.
func (s *Server) handleModel(w http.ResponseWriter, r *http.Request) error {
	writeBody(w, http.StatusOK, "application/json", s.modelJSON)
	return nil
}

// example is one image of /v1/examples.
type example struct {
	Index int       `json:"index"`
	Label int       `json:"label"`
	Image []float32 `json:"image"`
}

// handleExamples answers GET /v1/examples?n=10&offset=0: images of the
// test set from offset on, with their labels.
func (s *Server) handleExamples(w http.ResponseWriter, r *http.Request) error {
	ex := s.cfg.Examples
	if ex == nil {
		return &apiError{status: http.StatusNotFound, msg: "no examples: the server was started without a test set (latent serve --data DIR)"}
	}
	n, err := intParam(r, "n", min(10, s.cfg.MaxExamples), 1, s.cfg.MaxExamples)
	if err != nil {
		return err
	}
	offset, err := intParam(r, "offset", 0, 0, ex.N-1)
	if err != nil {
		return err
	}
	end := min(offset+n, ex.N)
	out := make([]example, 0, end-offset)
	for i := offset; i < end; i++ {
		out = append(out, example{Index: i, Label: int(ex.Labels[i]), Image: ex.Image(i)})
	}
	return writeJSON(w, http.StatusOK, struct {
		Dataset  string    `json:"dataset"`
		Split    string    `json:"split"`
		Total    int       `json:"total"`
		Examples []example `json:"examples"`
	}{ex.Name, ex.Split, ex.N, out})
}

// handleHealth answers GET /healthz with the load of the server.
func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) error {
	return writeJSON(w, http.StatusOK, struct {
		Status      string `json:"status"`
		Running     int    `json:"running"`
		Admitted    int64  `json:"admitted"`
		MaxInFlight int    `json:"max_in_flight"`
		MaxQueue    int    `json:"max_queue"`
	}{"ok", len(s.slots), s.admitted.Load(), s.cfg.MaxInFlight, s.cfg.MaxQueue})
}

// handleOpenAPI answers GET /openapi.json.
func (s *Server) handleOpenAPI(w http.ResponseWriter, r *http.Request) error {
	writeBody(w, http.StatusOK, "application/json", openAPI)
	return nil
}

// rows splits n samples stored one after the other in x into n slices that
// share x's memory.
func rows(x []float32, n int) [][]float32 {
	size := len(x) / n
	out := make([][]float32, n)
	for i := range out {
		out[i] = x[i*size : (i+1)*size : (i+1)*size]
	}
	return out
}

// readParts reads the pictures of a multipart/form-data body, one a part,
// in order, up to MaxBatch, each converted as a single picture is.
func (s *Server) readParts(r *http.Request, in io.Reader, invert bool) ([]float32, int, error) {
	_, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	boundary := params["boundary"]
	if boundary == "" {
		return nil, 0, badRequest("multipart/form-data without a boundary")
	}
	mr := multipart.NewReader(in, boundary)
	var images []float32
	n := 0
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, 0, jsonError(err)
		}
		if n == s.cfg.MaxBatch {
			return nil, 0, tooLarge("more than %d pictures in one request", s.cfg.MaxBatch)
		}
		data, err := io.ReadAll(part)
		if err != nil {
			return nil, 0, jsonError(err)
		}
		pix, err := decodePNG(data, s.imageShape, invert)
		if err != nil {
			var ae *apiError
			if errors.As(err, &ae) {
				ae.msg = fmt.Sprintf("part %d (%q): %s", n+1, part.FileName(), ae.msg)
			}
			return nil, 0, err
		}
		images = append(images, pix...)
		n++
	}
	if n == 0 {
		return nil, 0, badRequest("multipart body with no picture")
	}
	return images, n, nil
}
