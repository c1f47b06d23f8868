package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"os"
	"strconv"
	"strings"
)

// This file holds the request decoders. Each reads one request body and
// either returns valid input for the model or an *apiError with a 4xx
// status that says what is wrong; none panics, whatever the body.

// number is a JSON number that fits a float32. Unlike a plain float32 it
// refuses null (which encoding/json would silently leave at 0), strings,
// booleans, arrays and objects, and numbers beyond ±math.MaxFloat32.
type number float32

// UnmarshalJSON parses one JSON value, which must be a number.
func (x *number) UnmarshalJSON(b []byte) error {
	f, err := strconv.ParseFloat(string(b), 32)
	if err != nil {
		if errors.Is(err, strconv.ErrRange) {
			return fmt.Errorf("number %s is out of range", clip(b))
		}
		return fmt.Errorf("%s is not a number", clip(b))
	}
	*x = number(f)
	return nil
}

// clip returns b as a string of at most 40 bytes, for messages.
func clip(b []byte) string {
	if len(b) > 40 {
		return string(b[:37]) + "..."
	}
	return string(b)
}

// imagesRequest is the JSON body of /v1/encode.
type imagesRequest struct {
	Images [][]number `json:"images"`
}

// codesRequest is the body of /v1/decode.
type codesRequest struct {
	Codes [][]number `json:"codes"`
}

// sampleRequest is the body of /v1/sample.
type sampleRequest struct {
	// N is the number of samples, 1 to MaxBatch.
	N int `json:"n"`
	// From is "normal", "fitted" or "" (fitted when the model has latent
	// statistics, else normal).
	From string `json:"from"`
	// Seed seeds the generator; nil asks for a random seed.
	Seed *uint64 `json:"seed"`
}

// decodeImages reads {"images": [[...], ...]} from body: 1 to maxBatch
// images of size values each, every value in [0,1]. It returns the images
// one after the other and their number.
func decodeImages(body io.Reader, size, maxBatch int) ([]float32, int, error) {
	var req imagesRequest
	if err := decodeJSON(body, &req); err != nil {
		return nil, 0, err
	}
	return flatten("images", req.Images, size, maxBatch, func(v float32) bool { return v >= 0 && v <= 1 }, "pixels in [0,1]")
}

// decodeCodes reads {"codes": [[...], ...]} from body: 1 to maxBatch codes
// of b values each, every value finite and at most MaxCode in magnitude.
func decodeCodes(body io.Reader, b, maxBatch int) ([]float32, int, error) {
	var req codesRequest
	if err := decodeJSON(body, &req); err != nil {
		return nil, 0, err
	}
	return flatten("codes", req.Codes, b, maxBatch, func(v float32) bool { return v >= -MaxCode && v <= MaxCode }, fmt.Sprintf("values in [%g,%g]", -MaxCode, float64(MaxCode)))
}

// decodeSample reads the body of /v1/sample and checks n and from.
func decodeSample(body io.Reader, maxBatch int) (sampleRequest, error) {
	var req sampleRequest
	if err := decodeJSON(body, &req); err != nil {
		return req, err
	}
	if req.N < 1 {
		return req, badRequest("n is %d: want 1 to %d samples", req.N, maxBatch)
	}
	if req.N > maxBatch {
		return req, tooLarge("n is %d: at most %d samples per request", req.N, maxBatch)
	}
	switch req.From {
	case "", "normal", "fitted":
	default:
		return req, badRequest("from is %q: want \"normal\" or \"fitted\"", clip([]byte(req.From)))
	}
	return req, nil
}

// flatten checks rows, the what ("images" or "codes") of a request: 1 to
// maxBatch rows of size values each, every value passing ok (want says
// what ok wants). It returns the rows one after the other and their number.
func flatten(what string, rows [][]number, size, maxBatch int, ok func(float32) bool, want string) ([]float32, int, error) {
	switch {
	case rows == nil:
		return nil, 0, badRequest("no %q in the request: want an array of 1 to %d arrays of %d numbers", what, maxBatch, size)
	case len(rows) == 0:
		return nil, 0, badRequest("%q is empty: want 1 to %d arrays of %d numbers", what, maxBatch, size)
	case len(rows) > maxBatch:
		return nil, 0, tooLarge("%d %s: at most %d per request", len(rows), what, maxBatch)
	}
	out := make([]float32, 0, len(rows)*size)
	for i, row := range rows {
		if len(row) != size {
			return nil, 0, badRequest("%s[%d] has %d values: want %d", what, i, len(row), size)
		}
		for j, v := range row {
			f := float32(v)
			if !ok(f) { // NaN fails every comparison, so also ends here
				return nil, 0, badRequest("%s[%d][%d] is %g: want %s", what, i, j, f, want)
			}
			out = append(out, f)
		}
	}
	return out, len(rows), nil
}

// decodeJSON reads exactly one JSON object from body into v, refusing
// unknown fields and anything after the object.
func decodeJSON(body io.Reader, v any) error {
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		if err == nil {
			return badRequest("invalid JSON: more data after the object")
		}
		return jsonError(err)
	}
	return nil
}

// jsonError turns an error of json.Decoder, or of the body it reads, into
// an *apiError.
func jsonError(err error) error {
	var (
		maxBytes *http.MaxBytesError
		syntax   *json.SyntaxError
		typ      *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &maxBytes):
		return tooLarge("request body larger than %d bytes", maxBytes.Limit)
	case errors.Is(err, os.ErrDeadlineExceeded):
		return &apiError{status: http.StatusRequestTimeout, msg: "reading the request body timed out"}
	case errors.Is(err, io.EOF):
		return badRequest("empty body: want a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("invalid JSON: the body ends in the middle of a value")
	case errors.As(err, &syntax):
		return badRequest("invalid JSON at byte %d: %s", syntax.Offset, strings.TrimPrefix(syntax.Error(), "json: "))
	case errors.As(err, &typ):
		want := jsonType(typ.Type.Kind().String())
		if typ.Field == "" {
			return badRequest("invalid JSON: %s where the request wants %s", withArticle(typ.Value), withArticle(want))
		}
		return badRequest("invalid JSON: %s is %s, want %s", typ.Field, withArticle(typ.Value), withArticle(want))
	}
	return badRequest("invalid JSON: %s", strings.TrimPrefix(err.Error(), "json: "))
}

// withArticle puts "a" or "an" before s.
func withArticle(s string) string {
	if s != "" && strings.ContainsRune("aeiou", rune(s[0])) {
		return "an " + s
	}
	return "a " + s
}

// jsonType names a Go kind as JSON says it.
func jsonType(kind string) string {
	switch kind {
	case "struct", "map":
		return "object"
	case "slice", "array":
		return "array"
	case "string":
		return "string"
	case "bool":
		return "boolean"
	case "float32", "float64":
		return "number"
	case "int", "int64", "uint64":
		return "whole number in range"
	}
	return kind
}

// requireType checks that the request's Content-Type is one of types and
// returns it; a request without one or with another gets 415.
func requireType(r *http.Request, types ...string) (string, error) {
	want := strings.Join(types, " or ")
	v := r.Header.Get("Content-Type")
	if v == "" {
		return "", &apiError{status: http.StatusUnsupportedMediaType, msg: "no Content-Type: want " + want}
	}
	mt, _, err := mime.ParseMediaType(v)
	if err != nil {
		return "", &apiError{status: http.StatusUnsupportedMediaType, msg: fmt.Sprintf("Content-Type %q: %v: want %s", clip([]byte(v)), err, want)}
	}
	for _, t := range types {
		if mt == t {
			return mt, nil
		}
	}
	return "", &apiError{status: http.StatusUnsupportedMediaType, msg: fmt.Sprintf("Content-Type %s: want %s", clip([]byte(mt)), want)}
}

// body returns the request body limited to limit bytes; a body announced
// larger gets 413 without being read.
func body(w http.ResponseWriter, r *http.Request, limit int64) (io.Reader, error) {
	if r.ContentLength > limit {
		return nil, tooLarge("request body of %d bytes: at most %d", r.ContentLength, limit)
	}
	// MaxBytesReader tells the server to close the connection after a body
	// that is too large, when it is given the server's own writer.
	for {
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			break
		}
		w = u.Unwrap()
	}
	return http.MaxBytesReader(w, r.Body, limit), nil
}

// intParam reads the query parameter name as an integer in [lo, hi], or
// def when it is absent.
func intParam(r *http.Request, name string, def, lo, hi int) (int, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, badRequest("?%s=%s: want a whole number from %d to %d", name, clip([]byte(v)), lo, hi)
	}
	return n, nil
}

// boolParam reads the query parameter name as a boolean (1, true, 0,
// false...), false when absent.
func boolParam(r *http.Request, name string) (bool, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, badRequest("?%s=%s: want true or false", name, clip([]byte(v)))
	}
	return b, nil
}

// finite reports whether every value of x is finite.
func finite(x []float32) bool {
	for _, v := range x {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return false
		}
	}
	return true
}
