package trainer_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/latent-ai/latent/checkpoint"
	"github.com/latent-ai/latent/models"
	"github.com/latent-ai/latent/trainer"
)

func Example() {
	// 256 synthetic 28×28 images: a bright bar whose row depends on i.
	const n = 256
	pixels := make([]uint8, n*784)
	for i := 0; i < n; i++ {
		row := 4 + i%20
		for c := 4; c < 24; c++ {
			pixels[i*784+row*28+c] = 255
		}
	}
	data := trainer.Data{Pixels: pixels, N: n}

	arch, _ := models.New("classic", 10)
	cfg := trainer.DefaultConfig(arch) // the notebook's recipe: Adam 1e-3, batch 64
	cfg.Epochs = 3
	t, err := trainer.New(cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	dir, _ := os.MkdirTemp("", "run")
	defer os.RemoveAll(dir)
	// Where the run's files go: package run names those of a run folder,
	// run.Folder(dir).Trainer().
	files := trainer.Files{Model: filepath.Join(dir, "model.safetensors"),
		State: filepath.Join(dir, "optimizer.safetensors"), Metrics: filepath.Join(dir, "metrics.jsonl")}
	history, err := t.Run(context.Background(), files, data, data, trainer.Hooks{})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("epochs:", len(history))
	fmt.Println("test MSE fell:", history[2].TestMSE < history[0].TestMSE)

	// The run folder holds a model in PyTorch's state-dict layout.
	m, err := checkpoint.Load(files.Model)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(m.Arch.Kind, m.Meta.Epochs, m.Meta.Step)
	// Output:
	// epochs: 3
	// test MSE fell: true
	// classic 3 12
}
