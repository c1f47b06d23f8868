package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/latent-ai/latent/checkpoint"
	"github.com/latent-ai/latent/exporter"
	"github.com/latent-ai/latent/models"
	"github.com/latent-ai/latent/run"
	"github.com/latent-ai/latent/trainer"
)

func init() {
	register(&command{
		name:  "info",
		args:  "RUN|FILE",
		short: "show what a run folder, checkpoint, PyTorch state dict or ONNX file holds",
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
			if _, err := os.Stat(run.Folder(path).Path(run.ModelFile)); err != nil {
				_, err := run.Folder(path).Model() // says what the folder lacks
				return err
			}
			path = run.Folder(path).Path(run.ModelFile)
		}
		if other, err := describeOther(path); err != nil || other != "" {
			if err != nil {
				return err
			}
			fmt.Print(other)
			return nil
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
		for _, f := range m.Meta.Data {
			fmt.Printf("%-11s %s (MD5 %s)\n", f.Split+" data", f.Path, f.MD5)
		}
		if m.Meta.Imported != "" {
			fmt.Printf("weights     imported from %s (trained elsewhere: no recipe)\n", m.Meta.Imported)
		} else {
			fmt.Printf("recipe      batch %d, lr %g, seed %d, shuffle %v", m.Meta.Batch, m.Meta.LR, m.Meta.Seed, m.Meta.Shuffle)
			if m.Meta.Limit > 0 {
				fmt.Printf(", first %d images", m.Meta.Limit)
			}
			if s := m.Meta.Schedule; s != nil {
				fmt.Printf(", %s schedule", s.Kind)
				if s.Warmup > 0 {
					fmt.Printf(" after %d warm-up steps", s.Warmup)
				}
				if s.Kind == "step" {
					fmt.Printf(" (×%g every %d epochs)", s.Gamma, s.Every)
				}
			}
			if m.Meta.WeightDecay > 0 {
				fmt.Printf(", AdamW weight decay %g", m.Meta.WeightDecay)
			}
			if len(m.Meta.LRScale) > 0 {
				fmt.Printf(", lr factors %s", trainer.LRScaleString(m.Meta.LRScale))
			}
			if m.Arch.Variational {
				fmt.Printf(", loss BCE + %g·KL", m.Meta.Beta)
			}
			if m.Meta.Validation > 0 {
				fmt.Printf(", %g of the training images held out to validate", m.Meta.Validation)
				if m.Meta.Patience > 0 {
					fmt.Printf(", patience %d", m.Meta.Patience)
				}
				if m.Meta.Stopped {
					fmt.Printf(" (stopped early)")
				}
			}
			fmt.Printf("\nprogress    %d of %s, %s\n", m.Meta.Epochs, plural(m.Meta.EpochsPlanned, "epoch"), plural(m.Meta.Step, "step"))
		}
		for i := range m.Meta.TrainLoss {
			fmt.Printf("epoch %-5d train loss %.6f  test MSE %.6f", i+1, m.Meta.TrainLoss[i], m.Meta.TestLoss[i])
			if i < len(m.Meta.TestNegELBO) {
				fmt.Printf("  test −ELBO %.3f nats", m.Meta.TestNegELBO[i])
			}
			fmt.Println()
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

// describeOther returns what the file at path is and which command takes
// it, when it is not a latent model file: a PyTorch state dict, a plain
// safetensors state dict, or an ONNX graph. It returns "" for a latent model
// file, or for a file it cannot tell, which checkpoint.Load then explains.
func describeOther(path string) (string, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("no run folder or file %s: it does not exist", path)
	}
	if err != nil {
		return "", fmt.Errorf("info: %w", err)
	}
	defer f.Close()
	head := make([]byte, 8)
	n, _ := io.ReadFull(f, head)
	head = head[:n]
	var b strings.Builder
	switch {
	case bytes.HasPrefix(head, []byte("PK\x03\x04")):
		tensors, err := readStateDict(path)
		if err != nil {
			return "", fmt.Errorf("info: %s is a zip file, but %w", path, err)
		}
		fmt.Fprintf(&b, "file        %s\nkind        PyTorch state dict (torch.save), %d tensors\n", path, len(tensors))
		fmt.Fprintf(&b, "use         latent import %s --model %s --out RUN\n", path, guessKind(tensors))
		writeTensors(&b, tensors)
		return b.String(), nil
	case strings.EqualFold(filepath.Ext(path), ".onnx"):
		md, err := exporter.ReadMetadata(path)
		if err != nil {
			return "", fmt.Errorf("info: %w", err)
		}
		fmt.Fprintf(&b, "file        %s\nkind        ONNX %s graph exported by latent\n", path, md.Part)
		fmt.Fprintf(&b, "model       %s, bottleneck %d, trained on %s\n", md.Arch.Kind, md.Arch.Bottleneck, md.Dataset)
		fmt.Fprintf(&b, "statistics  %v\n", md.Stats != nil)
		fmt.Fprintf(&b, "use         latent encode, decode, sample or serve on its run folder; or the inference package\n")
		return b.String(), nil
	}
	info, err := checkpoint.Inspect(path)
	if err != nil || info.Metadata["kind"] != "" {
		return "", nil // a latent model file, or a damaged one: Load says which
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("info: %w", err)
	}
	tensors, err := checkpoint.ReadTensors(data)
	if err != nil {
		return "", nil
	}
	fmt.Fprintf(&b, "file        %s\nkind        safetensors state dict without latent's metadata, %d tensors\n", path, len(tensors))
	fmt.Fprintf(&b, "use         latent import %s --model %s --out RUN\n", path, guessKind(tensors))
	writeTensors(&b, tensors)
	return b.String(), nil
}

// guessKind names the model kind whose tensor names the state dict has, or
// "classic|conv" when none fits.
func guessKind(tensors []checkpoint.Tensor) string {
	for _, kind := range models.Kinds() {
		arch, _ := models.New(kind, models.DefaultBottleneck)
		names := map[string]bool{}
		for _, p := range arch.Params() {
			names[p.Name] = true
		}
		fits := len(tensors) == len(names)
		for _, t := range tensors {
			fits = fits && names[t.Name]
		}
		if fits {
			return kind
		}
	}
	return strings.Join(models.Kinds(), "|")
}

func writeTensors(b *strings.Builder, tensors []checkpoint.Tensor) {
	fmt.Fprintln(b, "tensors")
	for _, t := range tensors {
		fmt.Fprintf(b, "  %-20s %s %v\n", t.Name, t.DType, t.Shape)
	}
}
