package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"image"
	"image/png"
	"net/http"
	"net/http/httptest"
	"testing"
)

// The fuzz targets check that no input makes a request decoder or handler
// panic or answer anything but valid input or a 4xx error. Their seed
// corpora are in testdata/fuzz; run one with, for example,
//
//	go test ./server -run '^$' -fuzz FuzzDecodeEncodeRequest -fuzztime 30s

// check4xx fails unless err is an *apiError with a 4xx status.
func check4xx(t *testing.T, err error) {
	t.Helper()
	var ae *apiError
	if !errors.As(err, &ae) {
		t.Fatalf("error %v (%T) is not an *apiError", err, err)
	}
	if ae.status < 400 || ae.status > 499 || ae.msg == "" {
		t.Fatalf("status %d, message %q: want 4xx with a message", ae.status, ae.msg)
	}
}

// checkBatch fails unless x holds n samples of size values, 1 <= n <= max,
// each value passing ok.
func checkBatch(t *testing.T, x []float32, n, size, max int, ok func(float32) bool) {
	t.Helper()
	if n < 1 || n > max || len(x) != n*size {
		t.Fatalf("%d values for %d samples of %d (at most %d)", len(x), n, size, max)
	}
	for i, v := range x {
		if !ok(v) {
			t.Fatalf("value %d is %v", i, v)
		}
	}
}

func FuzzDecodeEncodeRequest(f *testing.F) {
	for _, s := range []string{
		`{"images": [[0, 0.5, 1]]}`,
		`{"images": [[0, 0.5, 1], [1, 1, 1]]}`,
		`{"images": [[0, 0.5, 1.5]]}`,
		`{"images": []}`,
		`{"images": [[null, 0, 0]]}`,
		`{"images": [[1e39, 0, 0]]}`,
		`{"Images": [[0, 0, 0]]}`,
		`{"images": [[0, 0, 0]]} {}`,
		`[`,
		``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		x, n, err := decodeImages(bytes.NewReader(data), 3, 4)
		if err != nil {
			check4xx(t, err)
			return
		}
		checkBatch(t, x, n, 3, 4, func(v float32) bool { return v >= 0 && v <= 1 })
	})
}

func FuzzDecodeDecodeRequest(f *testing.F) {
	for _, s := range []string{
		`{"codes": [[0, -1.5]]}`,
		`{"codes": [[10000, -10000], [3, 4]]}`,
		`{"codes": [[10001, 0]]}`,
		`{"codes": [[-Infinity, 0]]}`,
		`{"codes": [[1e309, 0]]}`,
		`{"codes": null}`,
		`{"codes": [[0, 0]], "extra": 1}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		x, n, err := decodeCodes(bytes.NewReader(data), 2, 4)
		if err != nil {
			check4xx(t, err)
			return
		}
		checkBatch(t, x, n, 2, 4, func(v float32) bool { return v >= -MaxCode && v <= MaxCode })
	})
}

func FuzzDecodeSampleRequest(f *testing.F) {
	for _, s := range []string{
		`{"n": 16, "from": "normal", "seed": 1}`,
		`{"n": 1}`,
		`{"n": 5, "from": "fitted"}`,
		`{"n": 0}`,
		`{"n": 1, "seed": -1}`,
		`{"n": 1, "from": "uniform"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := decodeSample(bytes.NewReader(data), 4)
		if err != nil {
			check4xx(t, err)
			return
		}
		if req.N < 1 || req.N > 4 || (req.From != "" && req.From != "normal" && req.From != "fitted") {
			t.Fatalf("accepted %+v", req)
		}
	})
}

// pngSignature starts every PNG file.
const pngSignature = "\x89PNG\r\n\x1a\n"

func FuzzDecodePNG(f *testing.F) {
	for _, r := range []image.Rectangle{image.Rect(0, 0, 28, 28), image.Rect(0, 0, 3, 50), image.Rect(0, 0, 1, 1)} {
		var b bytes.Buffer
		png.Encode(&b, image.NewNRGBA(r))
		f.Add(b.Bytes())
	}
	f.Add([]byte(pngSignature))
	f.Fuzz(func(t *testing.T, data []byte) {
		x, err := decodePNG(data, []int{1, 28, 28}, false)
		if err != nil {
			check4xx(t, err)
			return
		}
		checkBatch(t, x, 1, 784, 1, func(v float32) bool { return v >= 0 && v <= 1 })
	})
}

// FuzzHandler sends arbitrary requests through the whole handler, with a
// model that answers zeros: every answer is below 500, and every error is
// JSON.
func FuzzHandler(f *testing.F) {
	f.Add(uint8(0), "application/json", "", []byte(`{"images": [[0.5]]}`))
	f.Add(uint8(1), "application/json", "format=png&scale=2", []byte(`{"codes": [[0, 1, 2, 3]]}`))
	f.Add(uint8(2), "application/json", "", []byte(`{"n": 2, "seed": 3}`))
	f.Add(uint8(3), "", "", []byte(nil))
	f.Add(uint8(4), "", "n=3&offset=1", []byte(nil))
	f.Add(uint8(0), "image/png", "invert=1", []byte(pngSignature))
	s := newServer(f, &fakeModel{b: 4}, Config{MaxBatch: 8, MaxBodyBytes: 1 << 16})
	targets := []struct{ method, path string }{
		{"POST", "/v1/encode"}, {"POST", "/v1/decode"}, {"POST", "/v1/sample"},
		{"GET", "/v1/model"}, {"GET", "/v1/examples"}, {"GET", "/healthz"},
		{"GET", "/openapi.json"}, {"GET", "/"}, {"PATCH", "/v1/encode"},
	}
	f.Fuzz(func(t *testing.T, target uint8, contentType, query string, body []byte) {
		tg := targets[int(target)%len(targets)]
		r, err := http.NewRequest(tg.method, "http://127.0.0.1"+tg.path+"?"+query, bytes.NewReader(body))
		if err != nil {
			return // not a request a client could send
		}
		r.Header.Set("Content-Type", contentType)
		w := httptest.NewRecorder()
		s.Handler().ServeHTTP(w, r)
		if w.Code >= 500 {
			t.Fatalf("%s %s?%s (%s): %d %s", tg.method, tg.path, query, contentType, w.Code, w.Body)
		}
		if w.Code >= 400 {
			var e struct {
				Error string `json:"error"`
			}
			if json.Unmarshal(w.Body.Bytes(), &e) != nil || e.Error == "" {
				t.Fatalf("%d answer is not a JSON error: %.200s", w.Code, w.Body)
			}
		}
	})
}
