package exporter_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"

	"github.com/latent-ai/latent/checkpoint"
	"github.com/latent-ai/latent/exporter"
	"github.com/latent-ai/latent/models"
)

func ExampleExport() {
	arch, err := models.New("conv", 10)
	if err != nil {
		log.Fatal(err)
	}
	m := checkpoint.NewModel(arch) // zero weights; normally checkpoint.Load(RUN/model.safetensors)
	m.Meta.Dataset = "mnist"

	dir, err := os.MkdirTemp("", "export")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	enc, dec, err := exporter.Export(m, nil, dir)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(filepath.Base(enc), filepath.Base(dec))

	mp, err := exporter.Read(dec)
	if err != nil {
		log.Fatal(err)
	}
	var ops []string
	for _, n := range mp.Graph.Node {
		ops = append(ops, n.OpType)
	}
	fmt.Println(strings.Join(ops, " "))

	md, err := exporter.ReadMetadata(enc)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(md.Part, md.Arch.Kind, md.Arch.Bottleneck, md.Dataset, md.Stats == nil)
	// Output:
	// encoder.onnx decoder.onnx
	// Gemm Relu Gemm Relu Reshape ConvTranspose Relu ConvTranspose Sigmoid
	// encoder conv 10 mnist true
}
