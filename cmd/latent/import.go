package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/latent-ai/latent/checkpoint"
	"github.com/latent-ai/latent/dataset"
	"github.com/latent-ai/latent/models"
	"github.com/latent-ai/latent/run"
	"github.com/latent-ai/latent/torchfile"
)

func init() {
	register(&command{
		name:  "import",
		args:  "FILE",
		short: "make a run folder from weights trained elsewhere: a PyTorch state dict (.pth) or a plain safetensors file",
		setup: setupImport,
	})
}

// maxImportBytes bounds the file that import reads into memory: far above
// any model latent declares (the classic model's weights are 4 MB).
const maxImportBytes = 1 << 30

func setupImport(fs *flag.FlagSet) func(context.Context, []string) error {
	var (
		kind       = fs.String("model", "", "architecture of the weights: "+fmt.Sprint(models.Kinds())+" (required)")
		bottleneck = fs.Int("bottleneck", 0, "size of the code (default: read from the file)")
		name       = fs.String("dataset", dataset.MNIST, "data set the weights were trained on, for encode, eval and report: mnist or fashion-mnist")
		out        = fs.String("out", "", "run folder to write (required)")
		force      = fs.Bool("force", false, "overwrite a run folder that already holds a model")
	)
	return func(ctx context.Context, args []string) error {
		if len(args) != 1 {
			return usageError("want one file: what torch.save(model.state_dict(), path) wrote, or a safetensors state dict")
		}
		if *kind == "" || *out == "" {
			return usageError("--model and --out are required")
		}
		if _, err := models.New(*kind, models.DefaultBottleneck); err != nil {
			return usageError("%v", err)
		}
		if *name != dataset.MNIST && *name != dataset.FashionMNIST {
			return usageError("--dataset %q: want mnist or fashion-mnist", *name)
		}
		path := args[0]
		tensors, err := readStateDict(path)
		if err != nil {
			return err
		}
		b := *bottleneck
		if b == 0 {
			b = codeSize(*kind, tensors)
		}
		arch, err := models.New(*kind, b)
		if err != nil {
			return usageError("%v", err)
		}
		m, err := checkpoint.FromStateDict(arch, tensors)
		if err != nil {
			return fmt.Errorf("import %s: %w", path, err)
		}
		abs, err := filepath.Abs(path)
		if err != nil {
			abs = path
		}
		m.Meta = checkpoint.Meta{Dataset: *name, Imported: abs}
		target := run.Folder(*out).Path(run.ModelFile)
		if _, err := os.Stat(target); err == nil && !*force {
			return fmt.Errorf("%s already holds a model: use --force to replace it, or another --out", *out)
		}
		if err := run.CheckWritable(*out); err != nil {
			return err
		}
		if err := os.MkdirAll(*out, 0o755); err != nil {
			return fmt.Errorf("import: %w", err)
		}
		// A replaced run's training files belong to the old weights.
		for _, stale := range []string{run.StateFile, run.MetricsFile} {
			if err := os.Remove(filepath.Join(*out, stale)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("import: %w", err)
			}
		}
		if err := m.Save(target); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "imported a %s model (bottleneck %d, %d parameters) from %s\n", arch.Kind, b, arch.NumParams(), path)
		fmt.Printf("%s\tnext: latent export %s\n", target, *out)
		return nil
	}
}

// readStateDict reads the tensors of a PyTorch .pth file or of a plain
// safetensors file, telling the two apart by their content.
func readStateDict(path string) ([]checkpoint.Tensor, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	if st.Size() > maxImportBytes {
		return nil, fmt.Errorf("import %s: %d bytes, more than the %d that a state dict of latent's models can need", path, st.Size(), maxImportBytes)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	if torchfile.Sniff(data) {
		ts, err := torchfile.Read(data)
		if err != nil {
			return nil, fmt.Errorf("import %s: %w", path, err)
		}
		out := make([]checkpoint.Tensor, len(ts))
		for i, t := range ts {
			out[i] = checkpoint.Tensor{Name: t.Name, DType: t.DType, Shape: t.Shape, Data: t.Data}
		}
		return out, nil
	}
	ts, err := checkpoint.ReadTensors(data)
	if err != nil {
		return nil, fmt.Errorf("import %s: neither a PyTorch state dict (a zip written by torch.save) nor a safetensors file: %w", path, err)
	}
	return ts, nil
}

// codeSize returns the bottleneck that the state dict's tensors imply for
// the model kind: the length of the encoder's last bias (a VAE's μ head's),
// or the default
// when the file has no such tensor (FromStateDict then says what is wrong).
func codeSize(kind string, tensors []checkpoint.Tensor) int {
	arch, _ := models.New(kind, models.DefaultBottleneck)
	var last string
	for _, p := range arch.Params() {
		if p.Bias && (strings.HasPrefix(p.Module, models.Encoder+".") || p.Module == models.HeadMu) {
			last = p.Name // a VAE's: its μ head's
		}
	}
	old := map[string]string{}
	for i, p := range arch.Indexed().Params() {
		old[p.Name] = arch.Params()[i].Name
	}
	for _, t := range tensors {
		if (t.Name == last || old[t.Name] == last) && len(t.Shape) == 1 && t.Shape[0] >= 1 && t.Shape[0] <= models.MaxBottleneck {
			return t.Shape[0]
		}
	}
	return models.DefaultBottleneck
}
