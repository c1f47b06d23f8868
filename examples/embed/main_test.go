package main

import (
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/latent-ai/latent/checkpoint"
	"github.com/latent-ai/latent/exporter"
	"github.com/latent-ai/latent/inference"
	"github.com/latent-ai/latent/models"
)

// TestService exports a small model, serves it with newHandler, and checks
// that /encode gives the inference package's codes and that bad requests
// get JSON errors.
func TestService(t *testing.T) {
	arch, err := models.New("classic", 3)
	if err != nil {
		t.Fatal(err)
	}
	ck := checkpoint.NewModel(arch)
	for _, p := range arch.Params() {
		for i := range ck.Params[p.Name] {
			ck.Params[p.Name][i] = float32(0.05 * math.Sin(float64(i+len(p.Name))))
		}
	}
	dir := t.TempDir()
	if _, _, err := exporter.Export(ck, nil, dir); err != nil {
		t.Fatal(err)
	}
	m, err := inference.OpenRun(dir, inference.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	srv := httptest.NewServer(newHandler(m))
	defer srv.Close()

	img := make([]float32, 784)
	for i := range img {
		img[i] = float32(i%7) / 7
	}
	want, err := m.Encode(img, 1)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(map[string]any{"images": [][]float32{img}})
	resp, err := http.Post(srv.URL+"/encode", "application/json", strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Codes [][]float32 `json:"codes"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || resp.StatusCode != 200 {
		t.Fatalf("encode: %d, %v", resp.StatusCode, err)
	}
	resp.Body.Close()
	if len(got.Codes) != 1 || len(got.Codes[0]) != 3 {
		t.Fatalf("codes %v", got.Codes)
	}
	for i := range want {
		if got.Codes[0][i] != want[i] {
			t.Fatalf("code %d: service %v, inference %v", i, got.Codes[0][i], want[i])
		}
	}
	for _, tc := range []struct{ path, body, want string }{
		{"/encode", `{"images": [[0.5]]}`, "values for 1 images"},
		{"/encode", `{"pictures": []}`, "unknown field"},
		{"/sample", `{"n": 1000}`, "want 1 to 64"},
	} {
		resp, err := http.Post(srv.URL+tc.path, "application/json", strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		var e struct {
			Error string `json:"error"`
		}
		json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if resp.StatusCode != 400 || !strings.Contains(e.Error, tc.want) {
			t.Errorf("%s %s: %d %q, want 400 saying %q", tc.path, tc.body, resp.StatusCode, e.Error, tc.want)
		}
	}
	resp, err = http.Post(srv.URL+"/sample", "application/json", strings.NewReader(`{"n": 2}`))
	if err != nil {
		t.Fatal(err)
	}
	var s struct {
		Images [][]float32 `json:"images"`
	}
	json.NewDecoder(resp.Body).Decode(&s)
	resp.Body.Close()
	if len(s.Images) != 2 || len(s.Images[0]) != 784 {
		t.Errorf("sample: %d images", len(s.Images))
	}
}
