package server

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"math/rand/v2"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/latent-ai/latent/dataset"
	"github.com/latent-ai/latent/figures"
	"github.com/latent-ai/latent/internal/mnisttest"
)

// pngBytes encodes img as PNG.
func pngBytes(t testing.TB, img image.Image) string {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestBadRequests(t *testing.T) {
	const maxBatch, maxBody = 4, 64 << 10
	s := newServer(t, testModel(t, true), Config{MaxBatch: maxBatch, MaxBodyBytes: maxBody})
	noStats := newServer(t, testModel(t, false), Config{MaxBatch: maxBatch, MaxBodyBytes: maxBody})
	half := func(i, j int) string { return "0.5" }
	image784 := func(v string) string {
		return jsonImages(1, 784, func(i, j int) string {
			if j == 100 {
				return v
			}
			return "0"
		})
	}
	code := func(vals ...string) string { return `{"codes": [[` + strings.Join(vals, ",") + `]]}` }
	zeros := func(n int) []string {
		v := make([]string, n)
		for i := range v {
			v[i] = "0"
		}
		return v
	}
	codeWith := func(v string) string { return code(append(zeros(testBottleneck-1), v)...) }
	const (
		js      = "application/json"
		pngType = "image/png"
	)
	tests := []struct {
		name   string
		s      *Server
		req    request
		status int
	}{
		// Methods and paths.
		{"encode GET", s, request{method: "GET", target: "/v1/encode"}, 405},
		{"encode PUT", s, request{method: "PUT", target: "/v1/encode", contentType: js, body: "{}"}, 405},
		{"decode DELETE", s, request{method: "DELETE", target: "/v1/decode"}, 405},
		{"sample GET", s, request{method: "GET", target: "/v1/sample"}, 405},
		{"model POST", s, request{method: "POST", target: "/v1/model", contentType: js, body: "{}"}, 405},
		{"examples POST", s, request{method: "POST", target: "/v1/examples"}, 405},
		{"healthz DELETE", s, request{method: "DELETE", target: "/healthz"}, 405},
		{"openapi POST", s, request{method: "POST", target: "/openapi.json"}, 405},
		{"explorer POST", s, request{method: "POST", target: "/", contentType: js, body: "{}"}, 405},
		{"unknown path", s, request{method: "GET", target: "/v1/unknown"}, 404},
		{"unknown file", s, request{method: "GET", target: "/secret.txt"}, 404},
		{"trailing slash", s, request{method: "POST", target: "/v1/encode/", contentType: js, body: "{}"}, 404},

		// Content types.
		{"no content type", s, request{method: "POST", target: "/v1/encode", body: "{}"}, 415},
		{"text/plain", s, request{method: "POST", target: "/v1/encode", contentType: "text/plain", body: "{}"}, 415},
		{"form", s, request{method: "POST", target: "/v1/decode", contentType: "application/x-www-form-urlencoded", body: "codes=1"}, 415},
		{"bad media type", s, request{method: "POST", target: "/v1/encode", contentType: "application/json; =", body: "{}"}, 415},
		{"png to decode", s, request{method: "POST", target: "/v1/decode", contentType: pngType, body: "x"}, 415},
		{"png to sample", s, request{method: "POST", target: "/v1/sample", contentType: pngType, body: "x"}, 415},

		// Malformed JSON.
		{"empty body", s, request{method: "POST", target: "/v1/encode", contentType: js}, 400},
		{"not JSON", s, request{method: "POST", target: "/v1/encode", contentType: js, body: "images"}, 400},
		{"truncated", s, request{method: "POST", target: "/v1/encode", contentType: js, body: `{"images": [[0.5, 0.5`}, 400},
		{"top-level array", s, request{method: "POST", target: "/v1/encode", contentType: js, body: `[[0.5]]`}, 400},
		{"top-level null", s, request{method: "POST", target: "/v1/encode", contentType: js, body: `null`}, 400},
		{"trailing data", s, request{method: "POST", target: "/v1/encode", contentType: js, body: jsonImages(1, 784, half) + " {}"}, 400},
		{"trailing garbage", s, request{method: "POST", target: "/v1/encode", contentType: js, body: jsonImages(1, 784, half) + "x"}, 400},
		{"unknown field", s, request{method: "POST", target: "/v1/encode", contentType: js, body: `{"images": [], "labels": [1]}`}, 400},
		{"images is an object", s, request{method: "POST", target: "/v1/encode", contentType: js, body: `{"images": {}}`}, 400},
		{"image is a number", s, request{method: "POST", target: "/v1/encode", contentType: js, body: `{"images": [0.5]}`}, 400},

		// Batches and lengths.
		{"no images", s, request{method: "POST", target: "/v1/encode", contentType: js, body: `{}`}, 400},
		{"null images", s, request{method: "POST", target: "/v1/encode", contentType: js, body: `{"images": null}`}, 400},
		{"empty batch", s, request{method: "POST", target: "/v1/encode", contentType: js, body: `{"images": []}`}, 400},
		{"short image", s, request{method: "POST", target: "/v1/encode", contentType: js, body: jsonImages(1, 783, half)}, 400},
		{"long image", s, request{method: "POST", target: "/v1/encode", contentType: js, body: jsonImages(1, 785, half)}, 400},
		{"second image short", s, request{method: "POST", target: "/v1/encode", contentType: js, body: `{"images": [` + strings.Repeat("0,", 783) + `0], [0]]}`}, 400},
		{"oversized batch", s, request{method: "POST", target: "/v1/encode", contentType: js, body: jsonImages(maxBatch+1, 784, func(i, j int) string { return "0" })}, 413},
		{"empty codes", s, request{method: "POST", target: "/v1/decode", contentType: js, body: `{"codes": []}`}, 400},
		{"short code", s, request{method: "POST", target: "/v1/decode", contentType: js, body: code(zeros(testBottleneck - 1)...)}, 400},
		{"long code", s, request{method: "POST", target: "/v1/decode", contentType: js, body: code(zeros(testBottleneck + 1)...)}, 400},
		{"oversized code batch", s, request{method: "POST", target: "/v1/decode", contentType: js, body: `{"codes": [` + strings.Repeat("["+strings.Join(zeros(testBottleneck), ",")+"],", maxBatch) + "[" + strings.Join(zeros(testBottleneck), ",") + "]]}"}, 413},

		// Values.
		{"pixel above 1", s, request{method: "POST", target: "/v1/encode", contentType: js, body: image784("1.0001")}, 400},
		{"pixel below 0", s, request{method: "POST", target: "/v1/encode", contentType: js, body: image784("-0.001")}, 400},
		{"pixel 255", s, request{method: "POST", target: "/v1/encode", contentType: js, body: image784("255")}, 400},
		{"pixel beyond float32", s, request{method: "POST", target: "/v1/encode", contentType: js, body: image784("1e39")}, 400},
		{"pixel beyond float64", s, request{method: "POST", target: "/v1/encode", contentType: js, body: image784("1e400")}, 400},
		{"pixel null", s, request{method: "POST", target: "/v1/encode", contentType: js, body: image784("null")}, 400},
		{"pixel string", s, request{method: "POST", target: "/v1/encode", contentType: js, body: image784(`"0.5"`)}, 400},
		{"pixel NaN string", s, request{method: "POST", target: "/v1/encode", contentType: js, body: image784(`"NaN"`)}, 400},
		{"pixel NaN literal", s, request{method: "POST", target: "/v1/encode", contentType: js, body: image784(`NaN`)}, 400},
		{"pixel true", s, request{method: "POST", target: "/v1/encode", contentType: js, body: image784(`true`)}, 400},
		{"pixel array", s, request{method: "POST", target: "/v1/encode", contentType: js, body: image784(`[0]`)}, 400},
		{"code huge", s, request{method: "POST", target: "/v1/decode", contentType: js, body: codeWith("1e5")}, 400},
		{"code -huge", s, request{method: "POST", target: "/v1/decode", contentType: js, body: codeWith("-10001")}, 400},
		{"code Infinity", s, request{method: "POST", target: "/v1/decode", contentType: js, body: codeWith("Infinity")}, 400},
		{"code -Infinity", s, request{method: "POST", target: "/v1/decode", contentType: js, body: codeWith("-Infinity")}, 400},
		{"code 1e309", s, request{method: "POST", target: "/v1/decode", contentType: js, body: codeWith("1e309")}, 400},
		{"code null", s, request{method: "POST", target: "/v1/decode", contentType: js, body: codeWith("null")}, 400},
		{"code hex", s, request{method: "POST", target: "/v1/decode", contentType: js, body: codeWith("0x10")}, 400},

		// Sizes of bodies.
		{"huge body", s, request{method: "POST", target: "/v1/encode", contentType: js, body: `{"images": [[` + strings.Repeat("0,", maxBody) + `0]]}`}, 413},
		{"huge body of spaces", s, request{method: "POST", target: "/v1/decode", contentType: js, body: `{"codes": ` + strings.Repeat(" ", maxBody) + `[]}`}, 413},
		{"huge png", s, request{method: "POST", target: "/v1/encode", contentType: pngType, body: strings.Repeat("x", maxBody+1)}, 413},

		// Query parameters.
		{"format gif", s, request{method: "POST", target: "/v1/decode?format=gif", contentType: js, body: codeWith("0")}, 400},
		{"scale 0", s, request{method: "POST", target: "/v1/decode?format=png&scale=0", contentType: js, body: codeWith("0")}, 400},
		{"scale 99", s, request{method: "POST", target: "/v1/decode?format=png&scale=99", contentType: js, body: codeWith("0")}, 400},
		{"scale word", s, request{method: "POST", target: "/v1/decode?format=png&scale=big", contentType: js, body: codeWith("0")}, 400},
		{"invert on JSON", s, request{method: "POST", target: "/v1/encode?invert=true", contentType: js, body: image784("0")}, 400},
		{"invert maybe", s, request{method: "POST", target: "/v1/encode?invert=maybe", contentType: pngType, body: "x"}, 400},

		// PNG input.
		{"not a PNG", s, request{method: "POST", target: "/v1/encode", contentType: pngType, body: "GIF89a"}, 400},
		{"empty PNG", s, request{method: "POST", target: "/v1/encode", contentType: pngType}, 400},
		{"truncated PNG", s, request{method: "POST", target: "/v1/encode", contentType: pngType, body: pngBytes(t, image.NewGray(image.Rect(0, 0, 28, 28)))[:60]}, 400},
		{"PNG too wide", s, request{method: "POST", target: "/v1/encode", contentType: pngType, body: pngBytes(t, image.NewGray(image.Rect(0, 0, MaxPNGSide+1, 1)))}, 413},

		// Sampling.
		{"sample n 0", s, request{method: "POST", target: "/v1/sample", contentType: js, body: `{"n": 0}`}, 400},
		{"sample no n", s, request{method: "POST", target: "/v1/sample", contentType: js, body: `{}`}, 400},
		{"sample n -1", s, request{method: "POST", target: "/v1/sample", contentType: js, body: `{"n": -1}`}, 400},
		{"sample n 1.5", s, request{method: "POST", target: "/v1/sample", contentType: js, body: `{"n": 1.5}`}, 400},
		{"sample n 1e30", s, request{method: "POST", target: "/v1/sample", contentType: js, body: `{"n": 1e30}`}, 400},
		{"sample n string", s, request{method: "POST", target: "/v1/sample", contentType: js, body: `{"n": "4"}`}, 400},
		{"sample n too many", s, request{method: "POST", target: "/v1/sample", contentType: js, body: fmt.Sprintf(`{"n": %d}`, maxBatch+1)}, 413},
		{"sample from uniform", s, request{method: "POST", target: "/v1/sample", contentType: js, body: `{"n": 1, "from": "uniform"}`}, 400},
		{"sample seed -1", s, request{method: "POST", target: "/v1/sample", contentType: js, body: `{"n": 1, "seed": -1}`}, 400},
		{"sample seed 2^64", s, request{method: "POST", target: "/v1/sample", contentType: js, body: `{"n": 1, "seed": 18446744073709551616}`}, 400},
		{"sample unknown field", s, request{method: "POST", target: "/v1/sample", contentType: js, body: `{"n": 1, "temperature": 2}`}, 400},
		{"sample fitted without stats", noStats, request{method: "POST", target: "/v1/sample", contentType: js, body: `{"n": 1, "from": "fitted"}`}, 400},

		// Examples.
		{"no examples", s, request{method: "GET", target: "/v1/examples"}, 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := do(tt.s.Handler(), tt.req)
			msg := checkError(t, w, tt.status)
			if w.Code == http.StatusMethodNotAllowed && w.Header().Get("Allow") == "" {
				t.Errorf("405 without an Allow header")
			}
			if testing.Verbose() {
				t.Logf("%d %s", w.Code, msg)
			}
		})
	}
}

// TestChunkedHugeBody sends a body larger than the limit without a
// Content-Length, so that the limit trips while the body is read.
func TestChunkedHugeBody(t *testing.T) {
	s := newServer(t, testModel(t, true), Config{MaxBodyBytes: 1 << 10})
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	for _, ct := range []string{"application/json", "image/png"} {
		body := io.MultiReader(strings.NewReader(`{"images": [[`), strings.NewReader(strings.Repeat("0,", 4<<10)))
		req, _ := http.NewRequest("POST", ts.URL+"/v1/encode", body) // a plain io.Reader: sent chunked
		req.Header.Set("Content-Type", ct)
		res, err := ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(b), `"error"`) {
			t.Errorf("%s: %d %s, want 413 with a JSON error", ct, res.StatusCode, b)
		}
	}
}

func TestExamplesQuery(t *testing.T) {
	set := &dataset.Set{Name: "mnist", Split: "test", N: 3, Rows: 28, Cols: 28,
		Pixels: make([]uint8, 3*784), Labels: []uint8{7, 2, 1}}
	s := newServer(t, &fakeModel{b: 4}, Config{Examples: set, MaxExamples: 2})
	tests := []struct {
		target string
		status int
		labels []int
	}{
		{"/v1/examples", 200, []int{7, 2}},
		{"/v1/examples?n=1", 200, []int{7}},
		{"/v1/examples?n=2&offset=2", 200, []int{1}},
		{"/v1/examples?n=0", 400, nil},
		{"/v1/examples?n=3", 400, nil},
		{"/v1/examples?n=abc", 400, nil},
		{"/v1/examples?n=99999999999999999999", 400, nil},
		{"/v1/examples?offset=-1", 400, nil},
		{"/v1/examples?offset=3", 400, nil},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			w := do(s.Handler(), request{method: "GET", target: tt.target})
			if tt.status != 200 {
				checkError(t, w, tt.status)
				return
			}
			var got struct {
				Total    int `json:"total"`
				Examples []struct {
					Label int       `json:"label"`
					Image []float32 `json:"image"`
				} `json:"examples"`
			}
			if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &got) != nil {
				t.Fatalf("%d %.200s", w.Code, w.Body)
			}
			var labels []int
			for _, e := range got.Examples {
				labels = append(labels, e.Label)
				if len(e.Image) != 784 {
					t.Errorf("image of %d values", len(e.Image))
				}
			}
			if fmt.Sprint(labels) != fmt.Sprint(tt.labels) || got.Total != 3 {
				t.Errorf("labels %v of %d, want %v of 3", labels, got.Total, tt.labels)
			}
		})
	}
}

func TestEncodeDecodeAgreeWithInference(t *testing.T) {
	m := testModel(t, true)
	s := newServer(t, m, Config{})
	const n = 5
	images := randomImages(n, 1)
	want, err := m.Encode(images, n)
	if err != nil {
		t.Fatal(err)
	}
	var enc struct {
		Codes [][]float32 `json:"codes"`
	}
	postJSON(t, s.Handler(), "/v1/encode", map[string]any{"images": rows(images, n)}, &enc)
	if len(enc.Codes) != n {
		t.Fatalf("%d codes, want %d", len(enc.Codes), n)
	}
	for i, c := range enc.Codes {
		for j, v := range c {
			if v != want[i*testBottleneck+j] {
				t.Fatalf("code %d[%d] = %v, inference says %v", i, j, v, want[i*testBottleneck+j])
			}
		}
	}

	wantImages, err := m.Decode(want, n)
	if err != nil {
		t.Fatal(err)
	}
	var dec struct {
		Images [][]float32 `json:"images"`
	}
	postJSON(t, s.Handler(), "/v1/decode", map[string]any{"codes": enc.Codes}, &dec)
	if len(dec.Images) != n {
		t.Fatalf("%d images, want %d", len(dec.Images), n)
	}
	for i, img := range dec.Images {
		for j, v := range img {
			if v != wantImages[i*784+j] {
				t.Fatalf("image %d[%d] = %v, inference says %v", i, j, v, wantImages[i*784+j])
			}
		}
	}
}

// TestEncodeMNIST checks real digits: the JSON and PNG routes agree with
// inference on the first test images.
func TestEncodeMNIST(t *testing.T) {
	set, err := dataset.Load(dataset.MNIST, mnisttest.Dir(t), dataset.Test)
	if err != nil {
		t.Fatal(err)
	}
	m := testModel(t, true)
	s := newServer(t, m, Config{Examples: set})
	for i := 0; i < 3; i++ {
		want, err := m.Encode(set.Image(i), 1)
		if err != nil {
			t.Fatal(err)
		}
		img := image.NewGray(image.Rect(0, 0, 28, 28))
		for j, v := range set.Image(i) {
			img.Pix[j] = uint8(v*255 + 0.5)
		}
		w := do(s.Handler(), request{method: "POST", target: "/v1/encode", contentType: "image/png", body: pngBytes(t, img)})
		var got struct {
			Codes [][]float32 `json:"codes"`
		}
		if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &got) != nil || len(got.Codes) != 1 {
			t.Fatalf("PNG %d: %d %.200s", i, w.Code, w.Body)
		}
		for j, v := range got.Codes[0] {
			if v != want[j] {
				t.Fatalf("PNG of test image %d: code[%d] = %v, inference says %v", i, j, v, want[j])
			}
		}
	}
	// The examples are the test set.
	var ex struct {
		Examples []struct {
			Label int       `json:"label"`
			Image []float32 `json:"image"`
		} `json:"examples"`
	}
	w := do(s.Handler(), request{method: "GET", target: "/v1/examples?n=5"})
	if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &ex) != nil {
		t.Fatalf("%d %.200s", w.Code, w.Body)
	}
	for i, want := range []int{7, 2, 1, 0, 4} {
		if ex.Examples[i].Label != want {
			t.Errorf("example %d is a %d, want %d", i, ex.Examples[i].Label, want)
		}
	}
}

func TestDecodePNG(t *testing.T) {
	s := newServer(t, testModel(t, true), Config{})
	codes := `{"codes": [[0,0,0,0,0,0],[1,1,1,1,1,1],[-1,0,1,0,-1,0]]}`
	tests := []struct {
		name   string
		target string
		accept string
		png    bool
		scale  int
	}{
		{"format", "/v1/decode?format=png", "", true, 2},
		{"accept", "/v1/decode", "image/png", true, 2},
		{"accept list", "/v1/decode?scale=3", "text/html, image/png;q=0.9", true, 3},
		{"accept refused", "/v1/decode", "image/png;q=0", false, 0},
		{"format wins", "/v1/decode?format=json", "image/png", false, 0},
		{"default", "/v1/decode", "", false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := do(s.Handler(), request{method: "POST", target: tt.target, contentType: "application/json", body: codes,
				header: map[string]string{"Accept": tt.accept}})
			if w.Code != 200 {
				t.Fatalf("%d %.200s", w.Code, w.Body)
			}
			ct := w.Header().Get("Content-Type")
			if !tt.png {
				if ct != "application/json" {
					t.Fatalf("Content-Type %q, want JSON", ct)
				}
				return
			}
			if ct != "image/png" {
				t.Fatalf("Content-Type %q, want image/png", ct)
			}
			img, err := png.Decode(w.Body)
			if err != nil {
				t.Fatal(err)
			}
			g := figures.Grid{Rows: 2, Cols: 2, CellW: 28 * tt.scale, CellH: 28 * tt.scale, Gap: 2}
			gw, gh := g.Size()
			if b := img.Bounds(); b.Dx() != gw || b.Dy() != gh {
				t.Errorf("PNG of %v, want %dx%d", b, gw, gh)
			}
		})
	}
}

func TestPNGConversion(t *testing.T) {
	// A digit-like pattern: a bright 10×14 block.
	want := make([]float32, 784)
	for y := 7; y < 21; y++ {
		for x := 9; x < 19; x++ {
			want[y*28+x] = 1
		}
	}
	gray := image.NewGray(image.Rect(0, 0, 28, 28))
	// Twice the size, transparent background, white ink: as a browser
	// canvas exports it.
	canvas := image.NewNRGBA(image.Rect(0, 0, 56, 56))
	// Black on white, three times the size, as a scan.
	scan := image.NewRGBA(image.Rect(0, 0, 84, 84))
	for y := 0; y < 84; y++ {
		for x := 0; x < 84; x++ {
			scan.Set(x, y, color.White)
		}
	}
	for i, v := range want {
		x, y := i%28, i/28
		if v == 0 {
			canvas.SetNRGBA(2*x, 2*y, color.NRGBA{255, 0, 0, 0}) // transparent red counts as black
			continue
		}
		gray.SetGray(x, y, color.Gray{255})
		for dy := 0; dy < 2; dy++ {
			for dx := 0; dx < 2; dx++ {
				canvas.SetNRGBA(2*x+dx, 2*y+dy, color.NRGBA{255, 255, 255, 255})
			}
		}
		for dy := 0; dy < 3; dy++ {
			for dx := 0; dx < 3; dx++ {
				scan.Set(3*x+dx, 3*y+dy, color.Black)
			}
		}
	}
	// A paletted image goes through the generic path.
	pal := image.NewPaletted(image.Rect(0, 0, 28, 28), color.Palette{color.Black, color.White})
	for i, v := range want {
		if v == 1 {
			pal.SetColorIndex(i%28, i/28, 1)
		}
	}
	tests := []struct {
		name   string
		img    image.Image
		invert bool
	}{
		{"gray 28", gray, false},
		{"canvas 56", canvas, false},
		{"scan 84 inverted", scan, true},
		{"paletted 28", pal, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodePNG([]byte(pngBytes(t, tt.img)), []int{1, 28, 28}, tt.invert)
			if err != nil {
				t.Fatal(err)
			}
			for i := range want {
				if d := got[i] - want[i]; d > 1e-6 || d < -1e-6 {
					t.Fatalf("pixel %d = %v, want %v", i, got[i], want[i])
				}
			}
		})
	}
}

func TestSample(t *testing.T) {
	m := testModel(t, true)
	s := newServer(t, m, Config{})
	type samples struct {
		From   string      `json:"from"`
		Seed   uint64      `json:"seed"`
		Codes  [][]float32 `json:"codes"`
		Images [][]float32 `json:"images"`
	}
	var a, b, c samples
	postJSON(t, s.Handler(), "/v1/sample", map[string]any{"n": 3, "seed": 7}, &a)
	postJSON(t, s.Handler(), "/v1/sample", map[string]any{"n": 3, "seed": 7, "from": "fitted"}, &b)
	postJSON(t, s.Handler(), "/v1/sample", map[string]any{"n": 2, "from": "normal"}, &c)
	if a.From != "fitted" || len(a.Codes) != 3 || len(a.Images) != 3 || len(a.Codes[0]) != testBottleneck || len(a.Images[0]) != 784 {
		t.Fatalf("sample: from %q, %d codes, %d images", a.From, len(a.Codes), len(a.Images))
	}
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Errorf("the same seed gave different samples")
	}
	// As "latent sample --seed 7" draws them.
	wantCodes, wantImages, err := m.Sample(3, "fitted", rand.New(rand.NewPCG(7, sampleStream)))
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(a.Codes) != fmt.Sprint(rows(wantCodes, 3)) || fmt.Sprint(a.Images) != fmt.Sprint(rows(wantImages, 3)) {
		t.Errorf("samples differ from inference's with the same seed")
	}
	if c.From != "normal" || c.Seed >= maxSeed || len(c.Codes) != 2 {
		t.Errorf("normal sample: from %q, seed %d, %d codes", c.From, c.Seed, len(c.Codes))
	}
	// Without stats the default is normal.
	var d samples
	postJSON(t, newServer(t, testModel(t, false), Config{}).Handler(), "/v1/sample", map[string]any{"n": 1}, &d)
	if d.From != "normal" {
		t.Errorf("without stats: from %q, want normal", d.From)
	}
}

func TestModelInfo(t *testing.T) {
	for _, withStats := range []bool{true, false} {
		s := newServer(t, testModel(t, withStats), Config{MaxBatch: 32})
		w := do(s.Handler(), request{method: "GET", target: "/v1/model"})
		var got struct {
			Kind       string `json:"kind"`
			Bottleneck int    `json:"bottleneck"`
			ImageShape []int  `json:"image_shape"`
			Dataset    string `json:"dataset"`
			Training   struct {
				Epochs int `json:"epochs"`
			} `json:"training"`
			Stats *struct {
				Mean         []float64   `json:"mean"`
				Eigenvalues  []float64   `json:"eigenvalues"`
				Eigenvectors [][]float64 `json:"eigenvectors"`
			} `json:"stats"`
			Limits struct {
				MaxBatch int `json:"max_batch"`
			} `json:"limits"`
		}
		if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &got) != nil {
			t.Fatalf("%d %.200s", w.Code, w.Body)
		}
		if got.Kind != "classic" || got.Bottleneck != testBottleneck || fmt.Sprint(got.ImageShape) != "[1 28 28]" ||
			got.Dataset != "mnist" || got.Training.Epochs != 1 || got.Limits.MaxBatch != 32 {
			t.Errorf("model %+v", got)
		}
		if withStats != (got.Stats != nil) {
			t.Fatalf("stats %v, want stats: %v", got.Stats, withStats)
		}
		if got.Stats != nil && (len(got.Stats.Mean) != testBottleneck || len(got.Stats.Eigenvalues) != testBottleneck || len(got.Stats.Eigenvectors) != testBottleneck) {
			t.Errorf("stats %+v", got.Stats)
		}
	}
}

func TestHealthAndExplorer(t *testing.T) {
	s := newServer(t, &fakeModel{b: 4}, Config{})
	tests := []struct {
		method, target string
		contentType    string
		contains       string
	}{
		{"GET", "/healthz", "application/json", `"status":"ok"`},
		{"HEAD", "/healthz", "application/json", ""},
		{"GET", "/", "text/html; charset=utf-8", "<canvas id=\"pad\""},
		{"GET", "/explorer.js", "text/javascript; charset=utf-8", "/v1/decode"},
		{"GET", "/explorer.css", "text/css; charset=utf-8", "canvas"},
		{"HEAD", "/", "text/html; charset=utf-8", ""},
	}
	for _, tt := range tests {
		w := do(s.Handler(), request{method: tt.method, target: tt.target})
		if w.Code != 200 || w.Header().Get("Content-Type") != tt.contentType || !strings.Contains(w.Body.String(), tt.contains) {
			t.Errorf("%s %s: %d %q %.100q", tt.method, tt.target, w.Code, w.Header().Get("Content-Type"), w.Body)
		}
	}
}

func TestOpenAPICoversEveryRoute(t *testing.T) {
	s := newServer(t, &fakeModel{b: 4}, Config{})
	w := do(s.Handler(), request{method: "GET", target: "/openapi.json"})
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &doc) != nil {
		t.Fatalf("%d %.200s", w.Code, w.Body)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Errorf("openapi %q, want 3.x", doc.OpenAPI)
	}
	routes := map[string]bool{}
	for _, rt := range s.apiRoutes() {
		routes[rt.path] = true
		op, ok := doc.Paths[rt.path][strings.ToLower(rt.method)]
		if !ok {
			t.Errorf("%s %s is not in openapi.json", rt.method, rt.path)
			continue
		}
		var o struct {
			Responses map[string]json.RawMessage `json:"responses"`
		}
		if err := json.Unmarshal(op, &o); err != nil || o.Responses["200"] == nil {
			t.Errorf("%s %s: no 200 response in openapi.json", rt.method, rt.path)
		}
		if o.Responses["405"] == nil {
			t.Errorf("%s %s: no 405 response in openapi.json", rt.method, rt.path)
		}
	}
	for p, ops := range doc.Paths {
		if !routes[p] {
			t.Errorf("openapi.json describes %s, which the server does not serve", p)
		}
		if len(ops) != 1 {
			t.Errorf("openapi.json gives %s %d methods, want 1", p, len(ops))
		}
	}
	// Every $ref points to a component that exists.
	var all map[string]any
	json.Unmarshal(w.Body.Bytes(), &all)
	comps := all["components"].(map[string]any)
	for _, ref := range refs(all) {
		parts := strings.Split(strings.TrimPrefix(ref, "#/components/"), "/")
		if len(parts) != 2 || comps[parts[0]] == nil || comps[parts[0]].(map[string]any)[parts[1]] == nil {
			t.Errorf("dangling $ref %s", ref)
		}
	}
}

// refs returns every "$ref" value in v.
func refs(v any) []string {
	var out []string
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if s, ok := e.(string); ok && k == "$ref" {
				out = append(out, s)
			}
			out = append(out, refs(e)...)
		}
	case []any:
		for _, e := range x {
			out = append(out, refs(e)...)
		}
	}
	return out
}

// TestConcurrent runs many requests at once on the real model (run it
// with -race).
func TestConcurrent(t *testing.T) {
	m := testModel(t, true)
	s := newServer(t, m, Config{MaxInFlight: 3, MaxQueue: 64, MaxWait: DefaultRequestTimeout})
	images := randomImages(2, 3)
	want, err := m.Encode(images, 2)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(map[string]any{"images": rows(images, 2)})
	var wg sync.WaitGroup
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 5; i++ {
				w := do(s.Handler(), request{method: "POST", target: "/v1/encode", contentType: "application/json", body: string(body)})
				var got struct {
					Codes [][]float32 `json:"codes"`
				}
				if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &got) != nil {
					t.Errorf("%d %.200s", w.Code, w.Body)
					return
				}
				if fmt.Sprint(got.Codes) != fmt.Sprint(rows(want, 2)) {
					t.Errorf("codes %v, want %v", got.Codes, rows(want, 2))
					return
				}
				do(s.Handler(), request{method: "POST", target: "/v1/sample", contentType: "application/json", body: `{"n": 2}`})
			}
		}()
	}
	wg.Wait()
}

func TestNewConfig(t *testing.T) {
	tests := []struct {
		name string
		m    Model
		cfg  Config
		ok   bool
	}{
		{"defaults", &fakeModel{b: 4}, Config{}, true},
		{"no model", nil, Config{}, false},
		{"negative batch", &fakeModel{b: 4}, Config{MaxBatch: -1}, false},
		{"negative body", &fakeModel{b: 4}, Config{MaxBodyBytes: -1}, false},
		{"negative wait", &fakeModel{b: 4}, Config{MaxWait: -1}, false},
		{"zero bottleneck", &fakeModel{b: 0}, Config{}, false},
		{"examples of another size", &fakeModel{b: 4}, Config{Examples: &dataset.Set{N: 1, Rows: 2, Cols: 2, Pixels: make([]uint8, 4), Labels: []uint8{1}}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.m, Config{Logger: quiet, MaxBatch: tt.cfg.MaxBatch, MaxBodyBytes: tt.cfg.MaxBodyBytes, MaxWait: tt.cfg.MaxWait, Examples: tt.cfg.Examples})
			if (err == nil) != tt.ok {
				t.Errorf("New: %v, want ok %v", err, tt.ok)
			}
		})
	}
	s := newServer(t, &fakeModel{b: 4}, Config{})
	if s.cfg.MaxBatch != DefaultMaxBatch || s.cfg.MaxBodyBytes != DefaultMaxBodyBytes || s.cfg.MaxInFlight < 2 || s.cfg.MaxQueue != 4*s.cfg.MaxInFlight {
		t.Errorf("defaults %+v", s.cfg)
	}
}

// redoclyPath returns the OpenAPI linter that scripts/setup.sh installs.
func redoclyPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("LATENT_REDOCLY"); p != "" {
		return p
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(cache, "latent", "redocly", "node_modules", ".bin", "redocly")
	if _, err := os.Stat(p); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("@redocly/cli is not installed at %s: run scripts/setup.sh", p)
		}
		t.Skipf("@redocly/cli is not installed (%v): run scripts/setup.sh", err)
	}
	return p
}

// TestOpenAPILint lints the served OpenAPI document with @redocly/cli's
// recommended rules: no error and no warning.
func TestOpenAPILint(t *testing.T) {
	redocly := redoclyPath(t)
	path := filepath.Join(t.TempDir(), "openapi.json")
	if err := os.WriteFile(path, openAPI, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(redocly, "lint", path, "--extends=recommended", "--format=stylish").CombinedOutput()
	problems := regexp.MustCompile(`(?m)^\s+\d+:\d+\s+(warning|error)\s.*$`).FindAllString(string(out), -1)
	if err != nil || len(problems) > 0 {
		t.Fatalf("redocly lint: %v\n%s", err, strings.Join(problems, "\n"))
	}
}

// TestQueryParameters checks that a query parameter the OpenAPI document
// does not declare for a path gets a 400 that names it, as an unknown JSON
// field does, and that the declared ones still work.
func TestQueryParameters(t *testing.T) {
	s := newServer(t, &fakeModel{b: 4}, Config{})
	h := s.Handler()
	for _, tc := range []struct {
		target string
		status int
		want   string
	}{
		{"/healthz?verbose=1", 400, `unknown query parameter "verbose": /healthz takes no query parameters`},
		{"/v1/model?x=1", 400, `unknown query parameter "x"`},
		{"/healthz", 200, ""},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", tc.target, nil))
		var e struct {
			Error string `json:"error"`
		}
		json.Unmarshal(rec.Body.Bytes(), &e)
		if rec.Code != tc.status || !strings.Contains(e.Error, tc.want) {
			t.Errorf("GET %s: %d %s, want %d saying %q", tc.target, rec.Code, rec.Body.String(), tc.status, tc.want)
		}
	}
	req := httptest.NewRequest("POST", "/v1/decode?format=png&scale=2&colour=red", strings.NewReader(`{"codes": [[0, 1, 2, 3]]}`))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 400 || !strings.Contains(rec.Body.String(), `\"colour\"`) || !strings.Contains(rec.Body.String(), "takes only format, scale") {
		t.Errorf("decode with an unknown parameter: %d %s", rec.Code, rec.Body.String())
	}
}

// TestGzip checks that a large response is compressed for a client that
// accepts gzip, and decompresses to the same JSON; that a small one and a
// client that does not ask are answered plain.
func TestGzip(t *testing.T) {
	s := newServer(t, &fakeModel{b: 4}, Config{})
	h := s.Handler()
	post := func(enc string, n int) *httptest.ResponseRecorder {
		req := httptest.NewRequest("POST", "/v1/sample", strings.NewReader(fmt.Sprintf(`{"n": %d, "seed": 1}`, n)))
		req.Header.Set("Content-Type", "application/json")
		if enc != "" {
			req.Header.Set("Accept-Encoding", enc)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	plain := post("", 8)
	zipped := post("gzip, deflate", 8)
	if plain.Code != 200 || zipped.Code != 200 {
		t.Fatalf("status %d and %d", plain.Code, zipped.Code)
	}
	if zipped.Header().Get("Content-Encoding") != "gzip" || plain.Header().Get("Content-Encoding") != "" {
		t.Fatalf("Content-Encoding %q with gzip accepted, %q without", zipped.Header().Get("Content-Encoding"), plain.Header().Get("Content-Encoding"))
	}
	zippedLen := zipped.Body.Len()
	zr, err := gzip.NewReader(zipped.Body)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if string(body) != plain.Body.String() {
		t.Error("the gzipped body differs from the plain one")
	}
	if zippedLen >= plain.Body.Len() || zipped.Header().Get("Content-Length") != strconv.Itoa(zippedLen) {
		t.Errorf("gzipped %d bytes (Content-Length %s) for %d plain", zippedLen, zipped.Header().Get("Content-Length"), plain.Body.Len())
	}
	if !strings.Contains(zipped.Header().Get("Vary"), "Accept-Encoding") {
		t.Error("no Vary: Accept-Encoding")
	}
	req := httptest.NewRequest("GET", "/healthz", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Header().Get("Content-Encoding") != "" {
		t.Error("a small response was compressed")
	}
	if post("gzip;q=0", 8).Header().Get("Content-Encoding") != "" {
		t.Error("compressed for a client that refuses gzip")
	}
}

// TestCORS checks the answers to a browser on the configured origin, on
// another, and to a preflight request, and that a bad origin is refused.
func TestCORS(t *testing.T) {
	s := newServer(t, &fakeModel{b: 4}, Config{CORSOrigin: "https://app.example.org"})
	h := s.Handler()
	get := func(origin string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("GET", "/healthz", nil)
		req.Header.Set("Origin", origin)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	if got := get("https://app.example.org").Header().Get("Access-Control-Allow-Origin"); got != "https://app.example.org" {
		t.Errorf("allowed origin: Access-Control-Allow-Origin %q", got)
	}
	if got := get("https://evil.example.com").Header().Get("Access-Control-Allow-Origin"); got != "" {
		t.Errorf("another origin: Access-Control-Allow-Origin %q", got)
	}
	req := httptest.NewRequest("OPTIONS", "/v1/encode", nil)
	req.Header.Set("Origin", "https://app.example.org")
	req.Header.Set("Access-Control-Request-Method", "POST")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 204 || !strings.Contains(rec.Header().Get("Access-Control-Allow-Methods"), "POST") ||
		!strings.Contains(rec.Header().Get("Access-Control-Allow-Headers"), "Content-Type") {
		t.Errorf("preflight: %d %v", rec.Code, rec.Header())
	}
	for _, bad := range []string{"app.example.org", "https://app.example.org/path", "ftp://x"} {
		if _, err := New(&fakeModel{b: 4}, Config{CORSOrigin: bad}); err == nil || !strings.Contains(err.Error(), "CORS origin") {
			t.Errorf("CORS origin %q: %v", bad, err)
		}
	}
}

// TestEncodeJPEGAndMultipart sends one JPEG, and three pictures (PNG and
// JPEG) as multipart/form-data, and checks the codes against the model's
// for the same conversion.
func TestEncodeJPEGAndMultipart(t *testing.T) {
	m := &fakeModel{b: 4}
	s := newServer(t, m, Config{MaxBatch: 3})
	h := s.Handler()
	gray := image.NewGray(image.Rect(0, 0, 28, 28))
	for i := range gray.Pix {
		gray.Pix[i] = uint8(i % 251)
	}
	var jb bytes.Buffer
	if err := jpeg.Encode(&jb, gray, &jpeg.Options{Quality: 95}); err != nil {
		t.Fatal(err)
	}
	post := func(ct string, body []byte) *httptest.ResponseRecorder {
		req := httptest.NewRequest("POST", "/v1/encode", bytes.NewReader(body))
		req.Header.Set("Content-Type", ct)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	var one struct {
		Codes [][]float32 `json:"codes"`
	}
	rec := post("image/jpeg", jb.Bytes())
	if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &one) != nil || len(one.Codes) != 1 {
		t.Fatalf("one JPEG: %d %s", rec.Code, rec.Body.String())
	}
	multi := func(files ...[]byte) (string, []byte) {
		var b bytes.Buffer
		mw := multipart.NewWriter(&b)
		for i, f := range files {
			w, _ := mw.CreateFormFile("images", fmt.Sprintf("p%d", i))
			w.Write(f)
		}
		mw.Close()
		return mw.FormDataContentType(), b.Bytes()
	}
	pngData := []byte(pngBytes(t, gray))
	ct, body := multi(pngData, jb.Bytes(), pngData)
	rec = post(ct, body)
	var three struct {
		Codes [][]float32 `json:"codes"`
	}
	if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &three) != nil || len(three.Codes) != 3 {
		t.Fatalf("three pictures: %d %s", rec.Code, rec.Body.String())
	}
	if !slices.Equal(three.Codes[1], one.Codes[0]) || !slices.Equal(three.Codes[0], three.Codes[2]) {
		t.Errorf("multipart codes %v, the JPEG alone %v", three.Codes, one.Codes)
	}
	for _, tc := range []struct {
		files  [][]byte
		status int
		want   string
	}{
		{[][]byte{pngData, pngData, pngData, pngData}, 413, "more than 3 pictures"},
		{[][]byte{pngData, []byte("GIF89a")}, 400, `part 2 (\"p1\")`},
		{nil, 400, "no picture"},
	} {
		ct, body := multi(tc.files...)
		rec := post(ct, body)
		if rec.Code != tc.status || !strings.Contains(rec.Body.String(), tc.want) {
			t.Errorf("%d parts: %d %s, want %d saying %q", len(tc.files), rec.Code, rec.Body.String(), tc.status, tc.want)
		}
	}
}
