package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/latent-ai/latent/atomicfile"
	"github.com/latent-ai/latent/checkpoint"
	"github.com/latent-ai/latent/dataset"
	"github.com/latent-ai/latent/exporter"
	"github.com/latent-ai/latent/inference"
	"github.com/latent-ai/latent/latentstats"
	"github.com/latent-ai/latent/onnxmeta"
	"github.com/latent-ai/latent/pca"
	"github.com/latent-ai/latent/trainer"
	"github.com/schollz/progressbar/v3"
)

func init() {
	register(&command{
		name:  "export",
		args:  "RUN",
		short: "export RUN/model.safetensors as RUN/encoder.onnx and RUN/decoder.onnx, with the latent statistics of the training set",
		setup: setupExport,
	})
}

func setupExport(fs *flag.FlagSet) func(context.Context, []string) error {
	var (
		noStats = fs.Bool("no-stats", false, "skip encoding the training set: no latent statistics, so no sampling from the fitted Gaussian")
		batch   = fs.Int("batch", 1000, "images per ONNX Runtime call while encoding the training set")
		quiet   = fs.Bool("quiet", false, "no progress bar")
	)
	var data dataFlags
	data.register(fs, "")
	var rt ortFlags
	rt.register(fs)
	return func(ctx context.Context, args []string) error {
		if len(args) != 1 {
			return usageError("want one run folder")
		}
		if *batch < 1 {
			return usageError("--batch %d: want at least 1", *batch)
		}
		opts, err := rt.options()
		if err != nil {
			return err
		}
		dir := args[0]
		m, err := checkpoint.Load(filepath.Join(dir, trainer.ModelFile))
		if err != nil {
			return err
		}
		if *noStats {
			paths, err := writeExport(m, nil, dir)
			if err != nil {
				return err
			}
			fmt.Println(strings.Join(paths, "\n"))
			return nil
		}
		if data.name == "" {
			data.name = m.Meta.Dataset
		}
		if data.name == "" {
			data.name = dataset.MNIST
		}
		stats, err := fitStats(ctx, m, dir, &data, opts, *batch, *quiet)
		if err != nil {
			return err
		}
		paths, err := writeExport(m, stats, dir)
		if err != nil {
			return err
		}
		total := 0.0
		for _, l := range stats.Eigenvalues {
			total += max(l, 0)
		}
		var top []string
		for k := 0; k < min(3, len(stats.Eigenvalues)); k++ {
			top = append(top, fmt.Sprintf("%.3g (%.0f%%)", stats.Eigenvalues[k], 100*max(stats.Eigenvalues[k], 0)/total))
		}
		fmt.Fprintf(os.Stderr, "latent variance %.4g; largest principal variances %s\n", total, strings.Join(top, ", "))
		fmt.Println(strings.Join(paths, "\n"))
		return nil
	}
}

// writeExport writes the encoder, the decoder and, when stats is not nil,
// the latent statistics of m into dir, and returns their paths. It writes
// all three or none: each is written in full beside its destination before
// any is moved into place, so that a full disk leaves an earlier export as
// it was rather than a new encoder beside an old decoder.
func writeExport(m *checkpoint.Model, stats *latentstats.Stats, dir string) ([]string, error) {
	type file struct {
		path  string
		write func(w io.Writer) error
	}
	files := []file{
		{filepath.Join(dir, onnxmeta.EncoderFile), func(w io.Writer) error { return exporter.WriteEncoder(w, m, stats) }},
		{filepath.Join(dir, onnxmeta.DecoderFile), func(w io.Writer) error { return exporter.WriteDecoder(w, m, stats) }},
	}
	if stats != nil {
		files = append(files, file{filepath.Join(dir, latentstats.FileName), func(w io.Writer) error {
			b, err := json.MarshalIndent(stats, "", " ") // as latentstats.Save writes it
			if err != nil {
				return err
			}
			_, err = w.Write(append(b, '\n'))
			return err
		}})
	}
	var pending []*atomicfile.Pending
	defer func() {
		for _, p := range pending {
			p.Discard()
		}
	}()
	for _, f := range files {
		var buf bytes.Buffer
		if err := f.write(&buf); err != nil {
			return nil, fmt.Errorf("export %s: %w", f.path, err)
		}
		p, err := atomicfile.PrepareBytes(f.path, buf.Bytes(), 0o644)
		if err != nil {
			return nil, err
		}
		pending = append(pending, p)
	}
	paths := make([]string, len(pending))
	for i, p := range pending {
		if err := p.Commit(); err != nil {
			return nil, err
		}
		paths[i] = p.Path()
	}
	return paths, nil
}

// fitStats writes a temporary encoder without stats, encodes the training
// set through ONNX Runtime and fits the latent statistics of the codes.
func fitStats(ctx context.Context, m *checkpoint.Model, dir string, data *dataFlags, opts inference.Options, batch int, quiet bool) (*latentstats.Stats, error) {
	tmp, err := stagingDir(dir, "export")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	encPath := filepath.Join(tmp, onnxmeta.EncoderFile)
	if err := exporter.WriteFile(encPath, m, exporter.Encoder, nil); err != nil {
		return nil, stagedError("export", dir, err)
	}
	model, err := inference.Open(encPath, "", opts)
	if err != nil {
		return nil, err
	}
	defer model.Close()

	train, err := data.load(ctx, dataset.Train)
	if err != nil {
		return nil, err
	}
	b := model.Bottleneck()
	codes := make([]float32, 0, train.N*b)
	bar := newProgress(train.N, "encoding "+data.name+" train", quiet)
	start := time.Now()
	size := train.Rows * train.Cols
	for off := 0; off < train.N; off += batch {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("export: interrupted: %w; nothing was written", err)
		}
		n := min(batch, train.N-off)
		c, err := model.Encode(train.Images[off*size:(off+n)*size], n)
		if err != nil {
			return nil, fmt.Errorf("export: encoding training images %d to %d: %w", off, off+n-1, err)
		}
		codes = append(codes, c...)
		bar.Add(n)
	}
	bar.Finish()
	elapsed := time.Since(start)
	fmt.Fprintf(os.Stderr, "encoded %d images on %s in %.2fs (%.0f images/s)\n",
		train.N, model.Device(), elapsed.Seconds(), float64(train.N)/elapsed.Seconds())
	stats, err := pca.Fit(codes, train.N, b)
	if err != nil {
		return nil, fmt.Errorf("export: latent statistics: %w", err)
	}
	return stats, nil
}

// ortFlags are the flags of the commands that run ONNX Runtime.
type ortFlags struct {
	device  string
	threads int
}

func (o *ortFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&o.device, "device", inference.CPU, "where ONNX Runtime runs: cpu, cuda, or auto (cuda when it works, else cpu)")
	fs.IntVar(&o.threads, "threads", 0, "ONNX Runtime threads per operator (0: one per core)")
}

// options returns the inference options the flags ask for. Notes from
// inference (such as a fallback to the CPU) go to stderr.
func (o *ortFlags) options() (inference.Options, error) {
	switch o.device {
	case inference.CPU, inference.CUDA, inference.Auto:
	default:
		return inference.Options{}, usageError("--device %q: want cpu, cuda or auto", o.device)
	}
	if o.threads < 0 {
		return inference.Options{}, usageError("--threads %d: want 0 or more", o.threads)
	}
	return inference.Options{
		Device:         o.device,
		IntraOpThreads: o.threads,
		Logf: func(format string, args ...any) {
			fmt.Fprintf(os.Stderr, format+"\n", args...)
		},
	}, nil
}

// newProgress returns a progress bar of n steps on stderr, or a silent one.
func newProgress(n int, what string, quiet bool) *progressbar.ProgressBar {
	var w io.Writer = os.Stderr
	if quiet {
		w = io.Discard
	}
	return progressbar.NewOptions(n,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(what),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("images"),
		progressbar.OptionThrottle(200*time.Millisecond),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
	)
}
