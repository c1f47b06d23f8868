package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/latent-ai/latent/checkpoint"
	"github.com/latent-ai/latent/trainer"
)

func init() {
	register(&command{
		name:  "info",
		args:  "RUN|FILE.safetensors",
		short: "show what a run folder or checkpoint holds",
		setup: setupInfo,
	})
}

func setupInfo(fs *flag.FlagSet) func(context.Context, []string) error {
	asJSON := fs.Bool("json", false, "print JSON")
	return func(ctx context.Context, args []string) error {
		if len(args) != 1 {
			return usageError("want one run folder or .safetensors file")
		}
		path := args[0]
		if st, err := os.Stat(path); err == nil && st.IsDir() {
			path = filepath.Join(path, trainer.ModelFile)
		}
		m, err := checkpoint.Load(path)
		if err != nil {
			return err
		}
		inspect, err := checkpoint.Inspect(path)
		if err != nil {
			return err
		}
		if *asJSON {
			out := map[string]any{"path": path, "kind": m.Arch.Kind, "bottleneck": m.Arch.Bottleneck,
				"parameters": m.Arch.NumParams(), "training": m.Meta, "tensors": inspect.Tensors}
			enc := json.NewEncoder(os.Stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(out)
		}
		fmt.Printf("file        %s\n", path)
		fmt.Printf("model       %s, bottleneck %d, %d parameters\n", m.Arch.Kind, m.Arch.Bottleneck, m.Arch.NumParams())
		fmt.Printf("dataset     %s\n", m.Meta.Dataset)
		fmt.Printf("recipe      batch %d, lr %g, seed %d, shuffle %v", m.Meta.Batch, m.Meta.LR, m.Meta.Seed, m.Meta.Shuffle)
		if m.Meta.Limit > 0 {
			fmt.Printf(", first %d images", m.Meta.Limit)
		}
		fmt.Printf("\nprogress    %d of %d epochs, %d steps\n", m.Meta.Epochs, m.Meta.EpochsPlanned, m.Meta.Step)
		for i := range m.Meta.TrainLoss {
			fmt.Printf("epoch %-5d train loss %.6f  test MSE %.6f\n", i+1, m.Meta.TrainLoss[i], m.Meta.TestLoss[i])
		}
		fmt.Println("tensors")
		sort.Slice(inspect.Tensors, func(i, j int) bool {
			return paramOrder(m, inspect.Tensors[i].Name) < paramOrder(m, inspect.Tensors[j].Name)
		})
		for _, t := range inspect.Tensors {
			dims := make([]string, len(t.Shape))
			for i, d := range t.Shape {
				dims[i] = fmt.Sprint(d)
			}
			fmt.Printf("  %-20s %s [%s]\n", t.Name, t.DType, strings.Join(dims, ", "))
		}
		return nil
	}
}

func paramOrder(m *checkpoint.Model, name string) int {
	for i, p := range m.Arch.Params() {
		if p.Name == name {
			return i
		}
	}
	return 1 << 30
}
