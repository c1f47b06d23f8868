package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/latent-ai/latent/checkpoint"
	"github.com/latent-ai/latent/exporter"
	"github.com/latent-ai/latent/internal/mnisttest"
)

// serveRun writes a random classic model and exports it, without latent
// stats, into a new run folder.
func serveRun(t *testing.T) string {
	t.Helper()
	dir := ortRun(t, 4)
	m, err := checkpoint.Load(filepath.Join(dir, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := exporter.Export(m, nil, dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestServeUsage(t *testing.T) {
	ortNeedRuntime(t)
	dir := serveRun(t)
	tests := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"no run", []string{"serve"}, 2, "want one run folder"},
		{"two runs", []string{"serve", dir, dir}, 2, "want one run folder"},
		{"negative batch", []string{"serve", dir, "--max-batch", "-1"}, 2, "--max-batch"},
		{"zero body", []string{"serve", dir, "--max-body", "0"}, 2, "must be positive"},
		{"negative wait", []string{"serve", dir, "--max-wait", "-1s"}, 2, "--max-wait"},
		{"bad device", []string{"serve", dir, "--device", "tpu"}, 2, "--device"},
		{"bad flag", []string{"serve", dir, "--port", "80"}, 2, ""},
		{"no export", []string{"serve", t.TempDir(), "--addr", "127.0.0.1:0"}, 1, "latent export"},
		{"missing data", []string{"serve", dir, "--addr", "127.0.0.1:0", "--data", t.TempDir()}, 1, "examples"},
		{"bad address", []string{"serve", dir, "--addr", "127.0.0.1:99999"}, 1, "serve"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stderr := ortLatent(t, tt.args...)
			if code != tt.code || !strings.Contains(stderr, tt.msg) {
				t.Errorf("exit %d, want %d; stderr %q, want %q in it", code, tt.code, stderr, tt.msg)
			}
		})
	}
}

// TestServe starts "latent serve" on a free loopback port, uses the API,
// and stops it by cancelling its context, as SIGINT and SIGTERM do.
func TestServe(t *testing.T) {
	ortNeedRuntime(t)
	data := mnisttest.Dir(t)
	dir := serveRun(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	exited := make(chan int, 1)
	go func() {
		exited <- latent(ctx, []string{"serve", dir, "--addr", addr, "--data", data, "--threads", "1", "--max-batch", "8"}, io.Discard, io.Discard)
	}()
	url := "http://" + addr
	deadline := time.Now().Add(20 * time.Second)
	for {
		res, err := http.Get(url + "/healthz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server did not come up: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}

	var model struct {
		Bottleneck int `json:"bottleneck"`
		Examples   int `json:"examples"`
		Limits     struct {
			MaxBatch int `json:"max_batch"`
		} `json:"limits"`
	}
	getJSON(t, url+"/v1/model", &model)
	if model.Bottleneck != 4 || model.Examples != 10000 || model.Limits.MaxBatch != 8 {
		t.Errorf("model %+v", model)
	}
	var ex struct {
		Examples []struct {
			Label int       `json:"label"`
			Image []float32 `json:"image"`
		} `json:"examples"`
	}
	getJSON(t, url+"/v1/examples?n=1", &ex)
	if len(ex.Examples) != 1 || ex.Examples[0].Label != 7 {
		t.Fatalf("examples %+v", ex)
	}
	body, _ := json.Marshal(map[string]any{"images": [][]float32{ex.Examples[0].Image}})
	res, err := http.Post(url+"/v1/encode", "application/json", strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	var codes struct {
		Codes [][]float32 `json:"codes"`
	}
	err = json.NewDecoder(res.Body).Decode(&codes)
	res.Body.Close()
	if err != nil || res.StatusCode != 200 || len(codes.Codes) != 1 || len(codes.Codes[0]) != 4 {
		t.Fatalf("encode: %d %v %+v", res.StatusCode, err, codes)
	}
	cancel()
	select {
	case code := <-exited:
		if code != 0 {
			t.Errorf("latent serve exited %d after the signal, want 0", code)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("latent serve did not stop")
	}
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("GET %s: %s", url, res.Status)
	}
	if err := json.NewDecoder(res.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}
