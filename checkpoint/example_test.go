package checkpoint_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/latent-ai/latent/checkpoint"
	"github.com/latent-ai/latent/models"
)

func ExampleModel_Save() {
	arch, _ := models.New("classic", 10)
	m := checkpoint.NewModel(arch) // zeroed weights, PyTorch layout
	m.Meta.Dataset = "mnist"
	dir, _ := os.MkdirTemp("", "latent")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "model.safetensors")
	if err := m.Save(path); err != nil {
		fmt.Println(err)
		return
	}
	back, err := checkpoint.Load(path)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(back.Arch.Kind, back.Arch.Bottleneck, len(back.Params["encoder.0.weight"]))
	// Output: classic 10 401408
}
