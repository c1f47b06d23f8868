// Command embed is a complete, tiny encoding service built on latent's
// inference package alone: what a Go service that embeds a trained latent
// model needs, and nothing of the trainer's world.
//
//	latent export runs/conv                       # writes encoder.onnx and decoder.onnx
//	go run ./examples/embed -model runs/conv -addr 127.0.0.1:8090
//	curl -s localhost:8090/encode -d '{"images": [[0, 0, ...784 values in [0,1]...]]}'
//	curl -s localhost:8090/sample -d '{"n": 2}'
//
// To ship the model inside the binary, copy the two .onnx files beside
// this file and open them with inference.OpenFS:
//
//	//go:embed model/encoder.onnx model/decoder.onnx
//	var files embed.FS
//	m, err := inference.OpenFS(files, "model", inference.Options{})
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/latent-ai/latent/inference"
)

// maxBody bounds a request body: some 500 MNIST images as JSON.
const maxBody = 8 << 20

func main() {
	dir := flag.String("model", "", "run folder holding encoder.onnx and decoder.onnx (from latent export)")
	addr := flag.String("addr", "127.0.0.1:8090", "address to listen on")
	flag.Parse()
	if *dir == "" {
		log.Fatal("embed: -model is required: a run folder that latent export wrote")
	}
	m, err := inference.OpenRun(*dir, inference.Options{IntraOpThreads: 1, NoSpinning: true})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()

	srv := &http.Server{Addr: *addr, Handler: newHandler(m), ReadHeaderTimeout: 5 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(shutdown)
	}()
	log.Printf("embed: %s model, code size %d, image %v, on http://%s", m.Metadata().Arch.Kind, m.Bottleneck(), m.ImageShape(), *addr)
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}

// newHandler serves POST /encode ({"images": [[...C·H·W values...]]} →
// {"codes": [[...b values...]]}) and POST /sample ({"n": N} → {"images":
// [[...]]}) with the model m. Errors are JSON too: {"error": "..."}.
func newHandler(m *inference.Model) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /encode", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Images [][]float32 `json:"images"`
		}
		if !decode(w, r, &req) {
			return
		}
		var flat []float32
		for _, img := range req.Images {
			flat = append(flat, img...)
		}
		codes, err := m.EncodeContext(r.Context(), flat, len(req.Images))
		if err != nil {
			reply(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		reply(w, http.StatusOK, map[string]any{"codes": split(codes, m.Bottleneck())})
	})
	mux.HandleFunc("POST /sample", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			N int `json:"n"`
		}
		if !decode(w, r, &req) {
			return
		}
		if req.N < 1 || req.N > 64 {
			reply(w, http.StatusBadRequest, map[string]string{"error": "n: want 1 to 64"})
			return
		}
		_, images, err := m.SampleContext(r.Context(), req.N, inference.FromNormal, nil)
		if err != nil {
			reply(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
			return
		}
		size := 1
		for _, d := range m.ImageShape() {
			size *= d
		}
		reply(w, http.StatusOK, map[string]any{"images": split(images, size)})
	})
	return mux
}

// decode reads the JSON body into v, answering 400 itself when it cannot.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		reply(w, http.StatusBadRequest, map[string]string{"error": "bad JSON body: " + err.Error()})
		return false
	}
	return true
}

func reply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// split cuts v into rows of size values.
func split(v []float32, size int) [][]float32 {
	rows := make([][]float32, 0, len(v)/size)
	for i := 0; i+size <= len(v); i += size {
		rows = append(rows, v[i:i+size])
	}
	return rows
}
